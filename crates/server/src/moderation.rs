//! The remote checks of content guards (RATE-6): core's `RemoteScreen`, made through the SSRF
//! guard like every server-side request. A moderation endpoint gets the OpenAI moderation API
//! shape — `POST {"input": text}` with the guard's key as `Authorization: Bearer`, answered
//! `{"results":[{"flagged":bool,…}]}` — within the guard's timeout and a 64 KiB answer. What
//! goes wrong is named by kind only: never the text, the key, the address or the answer.

use crate::outbound::{Limits, OutboundGuard, OutboundRequest};
use axum::http::{header, HeaderMap, HeaderValue};
use bytes::Bytes;
use conclave_core::guards::{RemoteFailure, RemoteGuard, RemoteScreen, RemoteTarget};
use secrecy::ExposeSecret;
use serde::Deserialize;

/// The largest answer read from a moderation endpoint.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Asks moderation endpoints through the SSRF guard.
pub struct ModerationClient {
    outbound: OutboundGuard,
}

impl ModerationClient {
    #[must_use]
    pub const fn new(outbound: OutboundGuard) -> Self {
        Self { outbound }
    }
}

#[derive(Deserialize)]
struct Answer {
    results: Vec<Verdict>,
}

#[derive(Deserialize)]
struct Verdict {
    flagged: bool,
}

fn failure(why: impl Into<String>) -> RemoteFailure {
    RemoteFailure(why.into())
}

/// Whether a moderation answer flags the input: any result flagged. An answer without
/// results is no answer.
fn flagged(body: &[u8]) -> Result<bool, RemoteFailure> {
    let answer: Answer = serde_json::from_slice(body)
        .map_err(|_| failure("the endpoint's answer is not a moderation result"))?;
    if answer.results.is_empty() {
        return Err(failure("the endpoint's answer has no results"));
    }
    Ok(answer.results.iter().any(|r| r.flagged))
}

#[async_trait::async_trait]
impl RemoteScreen for ModerationClient {
    async fn objects(&self, guard: &RemoteGuard, text: &str) -> Result<bool, RemoteFailure> {
        let RemoteTarget::Moderation { url, api_key } = &guard.target;
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(key) = api_key {
            let mut value = HeaderValue::from_str(&format!("Bearer {}", key.expose_secret()))
                .map_err(|_| failure("the API key cannot be sent as a header"))?;
            value.set_sensitive(true);
            headers.insert(header::AUTHORIZATION, value);
        }
        let body = serde_json::to_vec(&serde_json::json!({ "input": text }))
            .map_err(|_| failure("the text cannot be encoded"))?;
        let mut request = OutboundRequest::post(url.clone(), headers, Bytes::from(body));
        request.limits = Limits {
            timeout: guard.timeout,
            max_response_bytes: MAX_ANSWER_BYTES,
        };
        let fetched = self
            .outbound
            .send(request)
            .await
            .map_err(|e| failure(format!("the request failed: {e}")))?;
        if !fetched.status.is_success() {
            return Err(failure(format!(
                "the endpoint answered status {}",
                fetched.status.as_u16()
            )));
        }
        flagged(&fetched.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_in_the_openai_shape() {
        assert_eq!(
            flagged(br#"{"id":"m","results":[{"flagged":true,"categories":{"hate":true}}]}"#),
            Ok(true)
        );
        assert_eq!(flagged(br#"{"results":[{"flagged":false}]}"#), Ok(false));
        assert_eq!(
            flagged(br#"{"results":[{"flagged":false},{"flagged":true}]}"#),
            Ok(true)
        );
        assert!(flagged(br#"{"results":[]}"#).is_err());
        assert!(flagged(b"ALLOW").is_err());
        assert!(flagged(br#"{"results":[{"flagged":"yes"}]}"#).is_err());
    }
}
