//! Conclave's own OAuth 2.1 authorization server for MCP clients (MCP-2): the records (clients,
//! pending authorizations, codes, grants), their lifetimes, PKCE S256 and the rules a redirect
//! URI and a Client ID Metadata Document must meet. The flow itself is `service::oauth`; the
//! HTTP edge (`/oauth/*`, `/.well-known/*`) only parses and answers.

use crate::credential::Scope;
use crate::ids::*;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use utoipa::ToSchema;

/// How long a pending authorization waits for the user's consent.
pub const REQUEST_TTL: Duration = Duration::minutes(10);
/// How long an authorization code may be redeemed (once).
pub const CODE_TTL: Duration = Duration::seconds(60);
/// How long an access token works.
pub const ACCESS_TTL: Duration = Duration::hours(1);
/// How long a refresh token works (each rotation issues a new one for as long).
pub const REFRESH_TTL: Duration = Duration::days(30);

/// How many redirect URIs a client may register, and how long each may be.
pub const MAX_REDIRECT_URIS: usize = 10;
const MAX_URI_LEN: usize = 2000;

/// The scopes a client gets when it asks for none: what the MCP tools use.
pub const DEFAULT_SCOPES: &[Scope] = &[
    Scope::ConversationsRead,
    Scope::MessagesRead,
    Scope::MessagesWrite,
    Scope::OrgRead,
];

/// An OAuth client registered by an org admin: public (PKCE alone) or confidential (a secret,
/// shown once, stored as a keyed hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct OAuthClient {
    /// The `client_id` it presents.
    pub id: OAuthClientId,
    pub org_id: OrgId,
    pub name: String,
    /// Compared as exact strings with the `redirect_uri` of each request.
    pub redirect_uris: Vec<String>,
    /// Public clients have no secret.
    pub public: bool,
    pub created_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
    #[serde(skip)]
    pub secret_hash: Option<Vec<u8>>,
    /// The secret's last four characters (checksum), for confidential clients.
    #[serde(skip)]
    pub secret_hint: Option<String>,
}

/// Who a client is, as far as one authorization is concerned: what it presents as `client_id`
/// and the registered client behind it (none for a Client ID Metadata Document).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRef {
    pub client_id: String,
    pub registered: Option<OAuthClientId>,
    pub name: String,
}

/// An authorization waiting for the user's consent (`GET /oauth/authorize` stored it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationRequest {
    pub id: OAuthRequestId,
    pub client: ClientRef,
    pub redirect_uri: String,
    pub scopes: Vec<Scope>,
    pub state: Option<String>,
    pub code_challenge: String,
    pub resource: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// An authorization code as stored (its text only as a keyed hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationCode {
    pub id: uuid::Uuid,
    pub client: ClientRef,
    pub user_id: UserId,
    pub org_id: OrgId,
    pub scopes: Vec<Scope>,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub resource: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// One consent of a user to a client for an org: the family of its tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Grant {
    pub id: GrantId,
    pub user_id: UserId,
    pub org_id: OrgId,
    pub client_id: String,
    pub client_name: String,
    pub scopes: Vec<Scope>,
    /// The resource its tokens are bound to (`<public URL>/mcp`).
    pub resource: String,
    pub created_at: DateTime<Utc>,
    #[serde(skip)]
    pub registered_client: Option<OAuthClientId>,
    #[serde(skip)]
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A token to store: its row id, keyed hash and end.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub id: uuid::Uuid,
    pub hash: [u8; 32],
    pub expires_at: DateTime<Utc>,
}

/// The access and refresh token an exchange or rotation issues.
#[derive(Debug, Clone)]
pub struct NewTokens {
    pub access: NewToken,
    pub refresh: NewToken,
}

/// What redeeming a code found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeExchange {
    /// The code was fresh and matched: its grant, created with the tokens.
    Issued(Grant),
    /// No such code, or one that expired or did not match (it is used up now either way).
    Invalid,
    /// The code was redeemed before; the grant it made, if any, must be revoked.
    Replayed(Option<GrantId>),
}

/// What presenting a refresh token found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshRotation {
    /// Rotated: the grant, with the new tokens stored.
    Rotated(Grant),
    /// No such live token (or not this client's, which uses it up).
    Invalid,
    /// A token rotated away before: the family it belongs to must be revoked.
    Reused(GrantId),
}

/// An error of the OAuth endpoints, in RFC 6749 terms (§4.1.2.1, §5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub error: &'static str,
    pub description: Cow<'static, str>,
}

impl OAuthError {
    #[must_use]
    pub fn new(error: &'static str, description: impl Into<Cow<'static, str>>) -> Self {
        Self {
            error,
            description: description.into(),
        }
    }

    #[must_use]
    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new("invalid_request", description)
    }

    #[must_use]
    pub fn invalid_grant(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new("invalid_grant", description)
    }

    #[must_use]
    pub fn invalid_client() -> Self {
        Self::new("invalid_client", "client authentication failed")
    }
}

/// The PKCE S256 challenge of `verifier` (RFC 7636 §4.2): BASE64URL(SHA256(verifier)).
#[must_use]
pub fn s256(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Whether `verifier` is a PKCE code verifier: 43–128 unreserved characters (RFC 7636 §4.1).
#[must_use]
pub fn verifier_well_formed(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Whether `challenge` can be an S256 challenge: 43 characters of base64url.
#[must_use]
pub fn challenge_well_formed(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

/// What a redirect URI may be (RFC 8252, OAuth 2.1 §2.3.1): `https://` to a host name or
/// address, `http://` to a loopback address only, or an app's private-use scheme written as a
/// reverse domain name (`com.example.app:/callback`, RFC 8252 §7.1) — so `javascript:`,
/// `data:`, `file:` and their kind never match; then a path and query without white space or
/// fragment. The parser is this pattern, so the OpenAPI schema and the code cannot disagree.
pub const REDIRECT_URI_PATTERN: &str = concat!(
    r"^(?:(?:https://[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*",
    r"|http://(?:127\.0\.0\.1|localhost|\[::1\]))(?::[0-9]{1,5})?(?:[/?][A-Za-z0-9._~!$&'()*+,;=:@%/?-]*)?",
    r"|[a-z][a-z0-9+-]*(?:\.[a-z0-9+-]+)+:/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*)$"
);

static REDIRECT_URI: std::sync::LazyLock<regex::Regex> =
    std::sync::LazyLock::new(|| regex::Regex::new(REDIRECT_URI_PATTERN).expect("a valid pattern"));

/// Why `uri` cannot be a redirect URI, if it cannot (see [`REDIRECT_URI_PATTERN`]).
#[must_use]
pub fn redirect_uri_refusal(uri: &str) -> Option<&'static str> {
    if uri.is_empty() || uri.chars().count() > MAX_URI_LEN {
        Some("must be 1 to 2000 characters")
    } else if REDIRECT_URI.is_match(uri) {
        None
    } else {
        Some("must be https, http to a loopback address, or an app's reverse-domain scheme, without a fragment")
    }
}

/// A redirect URI as a client registers it (see [`REDIRECT_URI_PATTERN`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct RedirectUri(String);

impl RedirectUri {
    #[must_use]
    pub fn into_inner(self) -> String {
        self.0
    }
}

impl TryFrom<String> for RedirectUri {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, String> {
        match redirect_uri_refusal(&raw) {
            None => Ok(Self(raw)),
            Some(why) => Err(why.to_owned()),
        }
    }
}

crate::types::schema!(
    RedirectUri,
    crate::types::string_schema(
        "A redirect URI: https, http to a loopback address, or an app's reverse-domain scheme; no fragment",
        1,
        Some(MAX_URI_LEN),
        REDIRECT_URI_PATTERN,
    )
);

/// The host of an `http(s)://` URI (without port or user info), if it has one.
#[must_use]
pub fn uri_host(uri: &str) -> Option<&str> {
    let rest = uri.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    if let Some(v6) = host_port.strip_prefix('[') {
        return v6.split(']').next();
    }
    Some(host_port.split(':').next().unwrap_or_default())
}

/// The client a Client ID Metadata Document describes, once checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientDocument {
    pub client_id: String,
    pub name: String,
    pub redirect_uris: Vec<String>,
}

/// Checks a fetched Client ID Metadata Document: a JSON object whose `client_id` is exactly
/// the URL it was fetched from, with 1–10 acceptable `redirect_uris`, an optional
/// `client_name` (the URL's host otherwise; control and invisible format characters dropped,
/// refused when nothing visible is left) and, when given, `token_endpoint_auth_method` `none`
/// (such clients are public: PKCE alone).
pub fn parse_client_document(url: &str, body: &[u8]) -> Result<ClientDocument, OAuthError> {
    let bad = |why: &'static str| OAuthError::new("invalid_client", why);
    let doc: serde_json::Value = serde_json::from_slice(body)
        .map_err(|_| bad("the client metadata document is not JSON"))?;
    let obj = doc
        .as_object()
        .ok_or_else(|| bad("the client metadata document is not a JSON object"))?;
    if obj.get("client_id").and_then(|v| v.as_str()) != Some(url) {
        return Err(bad(
            "the client metadata document's client_id is not its own URL",
        ));
    }
    if let Some(method) = obj.get("token_endpoint_auth_method") {
        if method.as_str() != Some("none") {
            return Err(bad(
                "clients identified by a metadata document must use token_endpoint_auth_method none",
            ));
        }
    }
    let uris: Vec<String> = obj
        .get("redirect_uris")
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|u| u.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if uris.is_empty()
        || uris.len() > MAX_REDIRECT_URIS
        || uris.iter().any(|u| redirect_uri_refusal(u).is_some())
    {
        return Err(bad(
            "the client metadata document needs 1 to 10 acceptable redirect_uris",
        ));
    }
    let given = obj
        .get("client_name")
        .and_then(|v| v.as_str())
        .map(str::trim)
        .filter(|n| !n.is_empty());
    let name = match given {
        Some(raw) => {
            let cleaned = visible_name(raw);
            if cleaned.is_empty() {
                return Err(bad(
                    "the client metadata document's client_name has no visible characters",
                ));
            }
            cleaned
        }
        None => uri_host(url)
            .map(str::to_owned)
            .unwrap_or_else(|| url.to_owned()),
    };
    Ok(ClientDocument {
        client_id: url.to_owned(),
        name,
        redirect_uris: uris,
    })
}

/// A `client_name` as the consent page shows it: control characters (NUL included, which
/// PostgreSQL's text cannot hold) and invisible format characters dropped, trimmed, at most
/// 100 characters. Empty when nothing visible was left.
fn visible_name(raw: &str) -> String {
    let cleaned: String = raw
        .chars()
        .filter(|&c| !c.is_control() && !crate::files::is_invisible_control(c))
        .collect();
    let capped: String = cleaned.trim().chars().take(100).collect();
    capped.trim_end().to_owned()
}

/// Whether a `client_id` names a Client ID Metadata Document (a URL) rather than a registered
/// client.
#[must_use]
pub fn is_document_client_id(client_id: &str) -> bool {
    client_id.starts_with("https://") || client_id.starts_with("http://")
}

/// Scopes as OAuth writes them: space-separated.
#[must_use]
pub fn scope_text(scopes: &[Scope]) -> String {
    scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Reads a `scope` parameter: space-separated scope names, at least one, no unknown one.
pub fn parse_scope_text(text: &str) -> Result<Vec<Scope>, OAuthError> {
    let mut scopes = Vec::new();
    for part in text.split(' ').filter(|p| !p.is_empty()) {
        let scope = Scope::parse(part)
            .map_err(|_| OAuthError::new("invalid_scope", format!("unknown scope {part:?}")))?;
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    if scopes.is_empty() {
        return Err(OAuthError::new("invalid_scope", "name at least one scope"));
    }
    scopes.sort();
    Ok(scopes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn s256_matches_the_rfc_7636_example() {
        // RFC 7636 Appendix B.
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert!(verifier_well_formed(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
        ));
        assert!(!verifier_well_formed("short"));
        assert!(!verifier_well_formed(&"a".repeat(129)));
        assert!(!verifier_well_formed(&format!("{}!", "a".repeat(50))));
        assert!(challenge_well_formed(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(!challenge_well_formed("plain-challenge"));
    }

    #[test]
    fn redirect_uris_are_https_loopback_or_an_apps_scheme() {
        for ok in [
            "https://client.example/cb",
            "https://client.example",
            "https://client.example:8443/cb?x=1",
            "http://127.0.0.1:33418/callback",
            "http://localhost/cb",
            "http://[::1]:8080/cb",
            "com.example.app:/oauth2redirect",
        ] {
            assert_eq!(redirect_uri_refusal(ok), None, "{ok}");
        }
        for bad in [
            "",
            "/relative",
            "http://client.example/cb",
            "http://127.0.0.1.evil.example/cb",
            "https://client.example/cb#frag",
            "javascript:alert(1)",
            "data:text/html,x",
            "https:///nohost",
            "https://client.example/a b",
            "cursor://no-reverse-domain/cb",
            "javascript:/alert(1)",
            "HTTPS://client.example/cb",
        ] {
            assert!(redirect_uri_refusal(bad).is_some(), "{bad}");
        }
        assert_eq!(
            uri_host("https://u:p@h.example:8443/x?y"),
            Some("h.example")
        );
        assert_eq!(uri_host("http://[::1]:80/"), Some("::1"));
    }

    #[test]
    fn client_documents_must_name_their_own_url() {
        let url = "https://client.example/meta.json";
        let doc = serde_json::json!({
            "client_id": url, "client_name": "Tool", "redirect_uris": ["https://client.example/cb"]
        });
        let parsed = parse_client_document(url, doc.to_string().as_bytes()).unwrap();
        assert_eq!(parsed.name, "Tool");
        assert_eq!(parsed.redirect_uris, ["https://client.example/cb"]);
        let other = serde_json::json!({
            "client_id": "https://evil.example/meta.json", "redirect_uris": ["https://client.example/cb"]
        });
        assert!(parse_client_document(url, other.to_string().as_bytes()).is_err());
        let secret = serde_json::json!({
            "client_id": url, "redirect_uris": ["https://client.example/cb"],
            "token_endpoint_auth_method": "client_secret_basic"
        });
        assert!(parse_client_document(url, secret.to_string().as_bytes()).is_err());
        let none = serde_json::json!({ "client_id": url, "redirect_uris": [] });
        assert!(parse_client_document(url, none.to_string().as_bytes()).is_err());
        assert!(parse_client_document(url, b"[]").is_err());
        let unnamed =
            serde_json::json!({ "client_id": url, "redirect_uris": ["https://client.example/cb"] });
        let parsed = parse_client_document(url, unnamed.to_string().as_bytes()).unwrap();
        assert_eq!(parsed.name, "client.example");
    }

    #[test]
    fn client_names_lose_control_and_invisible_characters() {
        let url = "https://client.example/meta.json";
        let named = |name: &str| {
            let doc = serde_json::json!({
                "client_id": url, "client_name": name, "redirect_uris": ["https://client.example/cb"]
            });
            parse_client_document(url, doc.to_string().as_bytes())
        };
        let parsed = named("\u{202E}Good\u{0} Tool\u{200B}\u{FEFF}\u{2066}\n").unwrap();
        assert_eq!(parsed.name, "Good Tool");
        assert_eq!(named("  a\u{7}b  ").unwrap().name, "ab");
        // Nothing visible left: refused, not shown as a blank name.
        for blank in ["\u{0}", "\u{200B}\u{200F}", "\u{202A}\u{0}\u{2069}\u{FEFF}"] {
            let e = named(blank).unwrap_err();
            assert_eq!(e.error, "invalid_client", "{blank:?}");
        }
        // The cap counts what is left.
        let long = format!("{}{}", "\u{200B}".repeat(50), "x".repeat(150));
        assert_eq!(named(&long).unwrap().name, "x".repeat(100));
        // No name, or only white space: the URL's host, as before.
        assert_eq!(named("   ").unwrap().name, "client.example");
    }

    #[test]
    fn scope_text_round_trips() {
        let scopes = parse_scope_text("messages:read  org:read messages:read").unwrap();
        assert_eq!(scopes, [Scope::MessagesRead, Scope::OrgRead]);
        assert_eq!(scope_text(&scopes), "messages:read org:read");
        assert_eq!(
            parse_scope_text("messages:delete").unwrap_err().error,
            "invalid_scope"
        );
        assert_eq!(parse_scope_text(" ").unwrap_err().error, "invalid_scope");
    }

    proptest! {
        #[test]
        fn arbitrary_redirect_uris_never_panic(uri in any::<String>()) {
            let _ = redirect_uri_refusal(&uri);
            let _ = uri_host(&uri);
        }
    }
}
