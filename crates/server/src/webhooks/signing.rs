//! Signing a webhook delivery per Standard Webhooks (HOOK-1), plus `X-Webhook-Signature`.
//!
//! A secret is `whsec_` + base64 of 32 random bytes; the HMAC key is those decoded bytes, for
//! both headers. A delivery carries
//! - `webhook-id`, `webhook-timestamp` (Unix seconds),
//! - `webhook-signature: v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>` — one entry
//!   per live secret, space-separated, newest first, so receivers holding either secret verify
//!   during a rotation's overlap,
//! - `X-Webhook-Signature: sha256=<hex HMAC-SHA256(key, body)>` with the newest secret only
//!   (that header has one value; receivers that must survive a rotation use the Standard
//!   Webhooks header). It does not cover the timestamp, so it does not stop replays.
//!
//! This lives in the server next to delivery, its only user; core stays free of HTTP headers.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderName, HeaderValue};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use sha2::Sha256;

const PREFIX: &str = "whsec_";
/// Bytes of a generated secret.
const GENERATED_BYTES: usize = 32;
/// Accepted decoded lengths (the Standard Webhooks libraries generate 24 bytes).
const MIN_BYTES: usize = 24;
const MAX_BYTES: usize = 64;
/// Longest `webhook-id` accepted.
const MAX_ID_LEN: usize = 256;

/// Base64 that accepts a secret with or without its `=` padding.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    #[error("a webhook secret is whsec_ followed by base64 of 24 to 64 bytes")]
    BadSecret,
    #[error("a delivery needs at least one secret")]
    NoSecret,
    #[error("a webhook id is 1 to 256 visible ASCII characters without '.'")]
    BadId,
    #[error("a webhook timestamp is not before 1970")]
    BadTimestamp,
}

/// The key a webhook endpoint's deliveries are signed with. `Debug` never shows it.
pub struct WebhookSecret(SecretSlice<u8>);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(whsec_[redacted])")
    }
}

type HmacSha256 = Hmac<Sha256>;

impl WebhookSecret {
    /// 32 bytes from the operating system's random generator.
    #[must_use]
    pub fn generate() -> Self {
        let mut key = vec![0u8; GENERATED_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut key);
        Self(key.into())
    }

    /// Reads `whsec_<base64>` (as shown to the user, or as unsealed from storage).
    pub fn parse(text: &str) -> Result<Self, SigningError> {
        let b64 = text.strip_prefix(PREFIX).ok_or(SigningError::BadSecret)?;
        let key = LENIENT.decode(b64).map_err(|_| SigningError::BadSecret)?;
        if !(MIN_BYTES..=MAX_BYTES).contains(&key.len()) {
            return Err(SigningError::BadSecret);
        }
        Ok(Self(key.into()))
    }

    /// `whsec_<base64>`: shown once to the user, sealed at rest.
    #[must_use]
    pub fn to_whsec(&self) -> SecretString {
        format!("{PREFIX}{}", STANDARD.encode(self.0.expose_secret())).into()
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(self.0.expose_secret()).expect("HMAC takes keys of any length")
    }

    /// `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`.
    #[must_use]
    pub fn sign_v1(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = self.mac();
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }

    /// `sha256=<hex HMAC-SHA256(key, body)>`.
    #[must_use]
    pub fn sign_body(&self, body: &[u8]) -> String {
        let mut mac = self.mac();
        mac.update(body);
        let digest = mac.finalize().into_bytes();
        let mut out = String::with_capacity(7 + 64);
        out.push_str("sha256=");
        for byte in digest {
            out.push(char::from(b"0123456789abcdef"[usize::from(byte >> 4)]));
            out.push(char::from(b"0123456789abcdef"[usize::from(byte & 0xf)]));
        }
        out
    }
}

/// The four signature headers of one delivery. `secrets` are the endpoint's live secrets,
/// newest first (two during a rotation's overlap). The id must not contain `.`, so the signed
/// string `{id}.{timestamp}.{body}` splits one way only.
pub fn signature_headers(
    secrets: &[&WebhookSecret],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<HeaderMap, SigningError> {
    let newest = secrets.first().ok_or(SigningError::NoSecret)?;
    if id.is_empty()
        || id.len() > MAX_ID_LEN
        || !id.bytes().all(|b| b.is_ascii_graphic() && b != b'.')
    {
        return Err(SigningError::BadId);
    }
    if timestamp < 0 {
        return Err(SigningError::BadTimestamp);
    }
    let signatures: Vec<String> = secrets
        .iter()
        .map(|s| s.sign_v1(id, timestamp, body))
        .collect();
    let value = |s: String| HeaderValue::try_from(s).expect("ASCII without control characters");
    let mut headers = HeaderMap::new();
    headers.insert(HeaderName::from_static("webhook-id"), value(id.to_owned()));
    headers.insert(
        HeaderName::from_static("webhook-timestamp"),
        value(timestamp.to_string()),
    );
    headers.insert(
        HeaderName::from_static("webhook-signature"),
        value(signatures.join(" ")),
    );
    headers.insert(
        HeaderName::from_static("x-webhook-signature"),
        value(newest.sign_body(body)),
    );
    Ok(headers)
}

#[cfg(test)]
mod tests;
