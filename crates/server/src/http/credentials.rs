//! Bots and API keys at the HTTP edge (AUTH-6, AUTH-7, AZ-5): which `Authorization` values are
//! theirs, and the one scope check every route passes through. `openapi::scope_for` is the
//! single source of which scope a route needs; a route without one (sign-in and sessions,
//! server administration, API-key management) refuses bots and keys alike.

use super::error::{ApiError, ApiResult};
use super::extract::AuthVia;
use super::openapi::scope_for;
use crate::ratelimit::{Subject, Tier};
use crate::state::AppState;
use axum::extract::{FromRequestParts, MatchedPath, RawPathParams};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use conclave_core::credential::{Credential, Scope};
use conclave_core::service::{Actor, Resource};
use conclave_core::token::TokenKind;
use conclave_core::types::KeyTier;
use conclave_core::ServiceError;
use uuid::Uuid;

/// `Authorization: Bot <token>` (a bot) or `Authorization: Bearer cnv_k_…` (an API key);
/// `None` for anything else, which the session path handles (and refuses if it is not a
/// session). A bot token sent as `Bearer`, or a key or session token sent as `Bot`, fails its
/// own check: 401 `invalid_token`.
#[must_use]
pub fn machine_credential(headers: &HeaderMap) -> Option<(AuthVia, String)> {
    let text = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = text.split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bot") {
        return Some((AuthVia::Bot, rest.to_owned()));
    }
    let is_key = rest
        .strip_prefix(TokenKind::ApiKey.prefix())
        .is_some_and(|r| r.starts_with('_'));
    (scheme.eq_ignore_ascii_case("bearer") && is_key).then(|| (AuthVia::ApiKey, rest.to_owned()))
}

/// Checks a bot token or API key (see `Services::authenticate_bot`/`authenticate_api_key`).
pub async fn authenticate(
    state: &AppState,
    via: AuthVia,
    token: &str,
    ip: Option<&str>,
) -> Result<Actor, ServiceError> {
    match via {
        AuthVia::Bot => state.services.authenticate_bot(token, ip).await,
        _ => state.services.authenticate_api_key(token, ip).await,
    }
}

fn insufficient_scope() -> ApiError {
    ApiError::forbidden(
        "insufficient_scope",
        "this credential's scopes do not cover this request",
    )
}

/// The most specific resource a route names: a message, a conversation, an org or a user.
fn named_resource(params: &RawPathParams, path: &str) -> Option<(Resource, &'static str)> {
    let id = |name: &str| {
        params
            .iter()
            .find(|(k, _)| *k == name)
            .and_then(|(_, v)| Uuid::try_parse(v).ok())
    };
    if let Some(m) = id("m") {
        return Some((Resource::Message(m.into()), "message"));
    }
    if let Some(c) = id("c") {
        return Some((Resource::Conversation(c.into()), "conversation"));
    }
    if let Some(org) = id("org") {
        return Some((Resource::Org(org.into()), "organization"));
    }
    if path.starts_with("/api/v1/users/") {
        return id("id").map(|u| (Resource::User(u.into()), "user"));
    }
    None
}

/// AZ-5 at the edge: a bot or key may use only routes that have a scope, and a key only those
/// whose scope it holds. Outside its scopes a key gets 403 `insufficient_scope`, or 404 when its
/// owner could not see the named resource either. The services then apply the owner's current
/// rights and the credential's org and conversation limits.
pub async fn require_scope(parts: &mut Parts, state: &AppState, actor: &Actor) -> ApiResult<()> {
    let path = parts
        .extensions
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let needed = scope_for(parts.method.as_str(), &path).and_then(|s| Scope::parse(s).ok());
    let Some(scope) = needed else {
        return Err(insufficient_scope());
    };
    if actor.credential.allows(scope) {
        return Ok(());
    }
    let Ok(params) = RawPathParams::from_request_parts(parts, state).await else {
        return Err(insufficient_scope());
    };
    match named_resource(&params, &path) {
        Some((resource, what)) if !state.services.owner_sees(actor, resource).await? => {
            Err(ApiError::not_found(what))
        }
        _ => Err(insufficient_scope()),
    }
}

/// Who a bot's or key's request is charged to: a key's tier replaces the per-user limits
/// (RATE-1), and both count against their org.
#[must_use]
pub fn rate_subject(actor: &Actor) -> Subject {
    let user = actor.user.id;
    match &actor.credential {
        Credential::ApiKey { key, org, tier, .. } => Subject {
            user,
            org: Some(*org),
            api_key: Some((
                key.0,
                match tier {
                    KeyTier::Free => Tier::Free,
                    KeyTier::Pro => Tier::Pro,
                    KeyTier::Team => Tier::Team,
                    KeyTier::Enterprise => Tier::Enterprise,
                },
            )),
        },
        Credential::Bot { org, .. } => Subject {
            user,
            org: Some(*org),
            api_key: None,
        },
        Credential::Session => Subject {
            user,
            org: None,
            api_key: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(auth).unwrap());
        h
    }

    #[test]
    fn schemes_pick_the_credential_kind() {
        assert_eq!(
            machine_credential(&headers("Bot cnv_b_x")),
            Some((AuthVia::Bot, "cnv_b_x".into()))
        );
        assert_eq!(
            machine_credential(&headers("bot  cnv_k_y ")),
            Some((AuthVia::Bot, "cnv_k_y".into())),
            "a key sent as Bot is checked as a bot token (and fails)"
        );
        assert_eq!(
            machine_credential(&headers("Bearer cnv_k_y")),
            Some((AuthVia::ApiKey, "cnv_k_y".into()))
        );
        assert_eq!(machine_credential(&headers("Bearer cnv_s_z")), None);
        assert_eq!(machine_credential(&headers("Bearer cnv_b_z")), None);
        assert_eq!(machine_credential(&HeaderMap::new()), None);
    }
}
