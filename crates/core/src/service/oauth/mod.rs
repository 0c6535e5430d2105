//! The OAuth 2.1 flow of Conclave's own authorization server (MCP-2): an authorization request
//! checked and stored for consent, the user's consent (cookie sessions only) turning it into a
//! 60-second single-use code, the token endpoint (code + PKCE S256, refresh-token rotation
//! with reuse detection), revocation (RFC 7009), and access tokens as callers — through
//! `identity`, on `/mcp` only. Grants and clients are `oauth_grants`.

mod consent;
mod tokens;

use crate::credential::Scope;
use crate::error::ServiceError;
use crate::ids::*;
use crate::oauth::*;
use crate::store::StoreError;
use crate::token::{self, TokenKind};
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use utoipa::ToSchema;

/// The issuer (the public URL) and the one resource its tokens are for (`<public URL>/mcp`).
#[derive(Debug, Clone, Default)]
pub struct OAuthSettings {
    pub issuer: String,
    pub resource: String,
}

impl OAuthSettings {
    /// Where the resource's RFC 9728 metadata is (RFC 9728 §3.1: the well-known path with the
    /// resource's path after it): what `/mcp`'s 401 names in `WWW-Authenticate: Bearer
    /// resource_metadata="…"`.
    #[must_use]
    pub fn resource_metadata_url(&self) -> String {
        format!("{}/.well-known/oauth-protected-resource/mcp", self.issuer)
    }
}

/// `GET /oauth/authorize`'s parameters, as given (each checked here, in RFC 6749 §4.1.2.1's
/// order: the client and its redirect URI first).
#[derive(Debug, Clone, Default)]
pub struct AuthorizeRequest {
    pub redirect_uri: Option<String>,
    pub response_type: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub state: Option<String>,
    pub scope: Option<String>,
    pub resource: Option<String>,
}

/// The client an authorization names: a registered client's id as given, or the checked
/// Client ID Metadata Document fetched from the URL it gave.
#[derive(Debug, Clone)]
pub enum AuthorizeClient {
    Registered(String),
    Document(ClientDocument),
}

/// Why an authorization request is refused.
#[derive(Debug)]
pub enum AuthorizeRefusal {
    /// Before the redirect URI is trusted (unknown client, redirect URI not registered): shown
    /// to the user, never sent anywhere.
    Shown(OAuthError),
    /// Sent back to the client at its verified redirect URI (this URL).
    Redirect(String),
    Service(ServiceError),
}

impl From<StoreError> for AuthorizeRefusal {
    fn from(e: StoreError) -> Self {
        Self::Service(e.into())
    }
}

/// What the consent page shows (`GET /api/v1/oauth/requests/{id}`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConsentView {
    pub id: OAuthRequestId,
    pub client_id: String,
    pub client_name: String,
    /// Whether an org admin registered the client (otherwise it named itself in a metadata
    /// document at `client_id`).
    pub registered: bool,
    /// Where the browser goes after the decision.
    pub redirect_host: String,
    pub scopes: Vec<Scope>,
    /// The orgs the user may grant access to (a registered client: its own org only).
    pub orgs: Vec<ConsentOrg>,
    pub expires_at: DateTime<Utc>,
}

/// An org offered on the consent page, with the caller's role in it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConsentOrg {
    pub id: OrgId,
    pub name: String,
    pub role: crate::types::OrgRole,
}

/// How a client authenticated at the token or revocation endpoint: `client_id` (form or
/// Basic) and, for confidential clients, the secret.
#[derive(Debug, Default)]
pub struct ClientAuth {
    pub client_id: Option<String>,
    pub secret: Option<SecretString>,
}

/// A token request (RFC 6749 §4.1.3, §6).
#[derive(Debug)]
pub enum TokenRequest {
    AuthorizationCode {
        code: String,
        code_verifier: Option<String>,
        redirect_uri: Option<String>,
        resource: Option<String>,
    },
    RefreshToken {
        refresh_token: String,
        scope: Option<String>,
        resource: Option<String>,
    },
}

/// What the token endpoint answers: the tokens (shown once) and what they allow.
#[derive(Debug)]
pub struct IssuedTokens {
    pub access_token: SecretString,
    pub refresh_token: SecretString,
    pub expires_in: i64,
    pub scopes: Vec<Scope>,
}

/// Why a token or revocation request failed: an RFC 6749 §5.2 error, or a failure of ours.
#[derive(Debug)]
pub enum TokenFailure {
    OAuth(OAuthError),
    Service(ServiceError),
}

impl From<OAuthError> for TokenFailure {
    fn from(e: OAuthError) -> Self {
        Self::OAuth(e)
    }
}

impl From<StoreError> for TokenFailure {
    fn from(e: StoreError) -> Self {
        Self::Service(e.into())
    }
}

impl From<ServiceError> for TokenFailure {
    fn from(e: ServiceError) -> Self {
        Self::Service(e)
    }
}

/// `uri` with `params` added to its query.
fn with_query(uri: &str, params: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        query.append_pair(k, v);
    }
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}{}", query.finish())
}

/// A fresh token of `kind` and how it is stored.
fn new_token(
    kind: TokenKind,
    pepper: &secrecy::SecretBox<[u8; 32]>,
    expires_at: DateTime<Utc>,
) -> (SecretString, NewToken) {
    let text = token::generate(kind);
    let stored = NewToken {
        id: uuid::Uuid::now_v7(),
        hash: token::hash(pepper, text.expose_secret()),
        expires_at,
    };
    (text, stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resource_metadata_url_follows_rfc_9728() {
        let s = OAuthSettings {
            issuer: "https://chat.example".into(),
            resource: "https://chat.example/mcp".into(),
        };
        assert_eq!(
            s.resource_metadata_url(),
            "https://chat.example/.well-known/oauth-protected-resource/mcp"
        );
    }

    #[test]
    fn redirects_add_to_the_query() {
        assert_eq!(
            with_query("https://c.example/cb", &[("code", "a b"), ("state", "x&y")]),
            "https://c.example/cb?code=a+b&state=x%26y"
        );
        assert_eq!(
            with_query("https://c.example/cb?k=1", &[("error", "access_denied")]),
            "https://c.example/cb?k=1&error=access_denied"
        );
    }
}
