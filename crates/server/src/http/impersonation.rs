//! AUTH-12 at the HTTP edge: an impersonated session reads, writes the user's own messages,
//! types, moves read markers and signs itself out — nothing else. The route decides which of
//! these a request is (`classify`), `policy::impersonation_allows` decides, and every refusal
//! answers 403 `impersonation_forbidden` and is audited with outcome `denied` (within the
//! per-actor budget of `Services::audit_denied`). Routes not listed are refused, so a new route
//! is refused under impersonation until it is listed here. The services check again for what
//! the route cannot tell (deleting someone else's message is moderation).

use super::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::extract::MatchedPath;
use axum::http::request::Parts;
use axum::http::Method;
use conclave_core::policy::{self, ImpersonatedRequest};
use conclave_core::service::Actor;

/// What a request is, for an impersonated session: `path` is the matched route with its
/// `/api/v1` prefix.
#[must_use]
pub fn classify(method: &Method, path: &str) -> ImpersonatedRequest {
    use ImpersonatedRequest::*;
    let p = path.strip_prefix("/api/v1").unwrap_or(path);
    match (method.as_str(), p) {
        // An export is personal data leaving the server, even though it is a read.
        ("GET", "/users/@me/export") => OtherWrite,
        ("GET" | "HEAD" | "OPTIONS", _) => Read,
        ("POST", "/conversations/{c}/messages") | ("PATCH" | "DELETE", "/messages/{m}") => {
            OwnMessage
        }
        ("POST", "/conversations/{c}/typing") => Typing,
        ("PUT", "/conversations/{c}/read-marker") => ReadMarker,
        ("POST", "/auth/logout") => SignOut,
        _ => OtherWrite,
    }
}

/// Refuses (and audits) what an impersonated session may not do; other sessions pass.
pub async fn check(parts: &Parts, state: &AppState, actor: &Actor) -> ApiResult<()> {
    if actor.session.impersonator.is_none() {
        return Ok(());
    }
    let path = parts
        .extensions
        .get::<MatchedPath>()
        .map(MatchedPath::as_str)
        .unwrap_or_default();
    if policy::impersonation_allows(classify(&parts.method, path)) {
        return Ok(());
    }
    state
        .services
        .audit_denied(
            actor,
            "impersonation.denied",
            "impersonation_forbidden",
            None,
            Some(("route", format!("{} {path}", parts.method))),
        )
        .await;
    Err(ApiError::forbidden(
        "impersonation_forbidden",
        "an impersonated session cannot do this",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_reads_own_messages_typing_markers_and_sign_out_pass() {
        let ok = |m: Method, p: &str| policy::impersonation_allows(classify(&m, p));
        assert!(ok(Method::GET, "/api/v1/conversations/{c}/messages"));
        assert!(ok(Method::POST, "/api/v1/conversations/{c}/messages"));
        assert!(ok(Method::PATCH, "/api/v1/messages/{m}"));
        assert!(ok(Method::DELETE, "/api/v1/messages/{m}"));
        assert!(ok(Method::POST, "/api/v1/conversations/{c}/typing"));
        assert!(ok(Method::PUT, "/api/v1/conversations/{c}/read-marker"));
        assert!(ok(Method::POST, "/api/v1/auth/logout"));
        for (m, p) in [
            (Method::POST, "/api/v1/orgs/{org}/members"),
            (Method::POST, "/api/v1/orgs/{org}/invites"),
            (Method::POST, "/api/v1/orgs/invites/{id}/accept"),
            (Method::PATCH, "/api/v1/orgs/{org}"),
            (Method::POST, "/api/v1/orgs/{org}/transfer"),
            (Method::DELETE, "/api/v1/conversations/{c}"),
            (Method::POST, "/api/v1/conversations/{c}/participants"),
            (Method::POST, "/api/v1/api-keys"),
            (Method::POST, "/api/v1/auth/password"),
            (Method::PATCH, "/api/v1/users/@me"),
            (Method::GET, "/api/v1/users/@me/export"),
            (Method::DELETE, "/api/v1/users/@me"),
        ] {
            assert!(!ok(m.clone(), p), "{m} {p} is refused");
        }
    }
}
