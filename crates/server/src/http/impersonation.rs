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
        const PASS: bool = true;
        for (m, p, passes) in [
            (Method::GET, "/api/v1/conversations/{c}/messages", PASS),
            (Method::POST, "/api/v1/conversations/{c}/messages", PASS),
            (Method::PATCH, "/api/v1/messages/{m}", PASS),
            (Method::DELETE, "/api/v1/messages/{m}", PASS),
            (Method::POST, "/api/v1/conversations/{c}/typing", PASS),
            (Method::PUT, "/api/v1/conversations/{c}/read-marker", PASS),
            (Method::POST, "/api/v1/auth/logout", PASS),
            (Method::POST, "/api/v1/orgs/{org}/members", !PASS),
            (Method::POST, "/api/v1/orgs/{org}/invites", !PASS),
            (Method::POST, "/api/v1/orgs/invites/{id}/accept", !PASS),
            (Method::PATCH, "/api/v1/orgs/{org}", !PASS),
            (Method::POST, "/api/v1/orgs/{org}/transfer", !PASS),
            (Method::DELETE, "/api/v1/conversations/{c}", !PASS),
            (
                Method::POST,
                "/api/v1/conversations/{c}/participants",
                !PASS,
            ),
            (Method::POST, "/api/v1/api-keys", !PASS),
            (Method::POST, "/api/v1/auth/password", !PASS),
            (Method::PATCH, "/api/v1/users/@me", !PASS),
            (Method::GET, "/api/v1/users/@me/export", !PASS),
            (Method::DELETE, "/api/v1/users/@me", !PASS),
        ] {
            let allowed = policy::impersonation_allows(classify(&m, p));
            assert_eq!(allowed, passes, "{m} {p}: passes = {passes}");
        }
    }
}
