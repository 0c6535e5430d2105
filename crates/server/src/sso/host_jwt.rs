//! Host-app identity (AUTH-11): a host that embeds Conclave signs a short-lived JWT naming its
//! user, and [`HostJwtVerifier::verify`] decides whether to believe it. Signatures are checked
//! by the `jsonwebtoken` crate; this module decides which key and which algorithms apply, and
//! checks the claims against the server's clock:
//!
//! - the token's `iss` picks the `[[host_jwt]]` (issuers are unique); an unknown one is refused;
//! - the header's `alg` must be one the host lists, and every listed algorithm is of the host
//!   key's kind (checked at start): a secret verifies HS* only, a public key or a JWKS never
//!   does, so HS/RS confusion cannot happen; `none` is no algorithm at all here;
//! - JWKS keys come through the SSRF guard, are cached ([`JWKS_TTL`]), and an unknown `kid`
//!   refetches the set at most once per [`JWKS_REFETCH_MIN`]; symmetric (`oct`) keys in a set and
//!   keys whose `alg`/`use` disagree are ignored;
//! - `iss`, `aud`, `sub`, `exp` and `iat` are required; `exp` must be in the future and `iat`,
//!   `nbf` not, within `leeway_secs`; `exp - iat` at most `max_lifetime_secs`; with
//!   `single_use` a `jti` is required too (the service spends it, `core::service::sso`).
//!
//! The verifier is shared by everything that accepts host identities (the sign-in route, the
//! widget's visitor identity).

use crate::outbound::{Limits, OutboundGuard, OutboundRequest};
use chrono::{DateTime, Utc};
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use secrecy::{ExposeSecret, SecretBox};
use serde::Deserialize;

/// How long a fetched key set is used before it is fetched again.
pub const JWKS_TTL: chrono::Duration = chrono::Duration::minutes(10);
/// An unknown `kid` refetches the set at most this often (a flood of made-up ids costs the
/// host one request per interval).
pub const JWKS_REFETCH_MIN: chrono::Duration = chrono::Duration::seconds(30);
/// Longer tokens are refused before anything is decoded.
const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// The longest `sub` accepted.
const MAX_SUBJECT_CHARS: usize = 255;

/// The kind of key an algorithm needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtFamily {
    Hmac,
    Rsa,
    Ec,
    Ed,
}

impl JwtFamily {
    #[must_use]
    pub fn of(alg: Algorithm) -> Self {
        match alg {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => Self::Hmac,
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => Self::Rsa,
            Algorithm::ES256 | Algorithm::ES384 => Self::Ec,
            Algorithm::EdDSA => Self::Ed,
        }
    }

    fn of_jwk(jwk: &Jwk) -> Option<Self> {
        match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Some(Self::Rsa),
            AlgorithmParameters::EllipticCurve(_) => Some(Self::Ec),
            AlgorithmParameters::OctetKeyPair(_) => Some(Self::Ed),
            // A symmetric key has no place in a published key set.
            AlgorithmParameters::OctetKey(_) => None,
        }
    }
}

/// Where a host's verification keys come from.
pub enum HostKeys {
    /// The shared HMAC secret.
    Secret(SecretBox<Vec<u8>>),
    /// A configured public key.
    PublicKey(DecodingKey),
    /// A JWKS URL.
    Jwks(String),
}

/// A `[[host_jwt]]`, parsed (`config::sso`).
pub struct HostJwt {
    pub id: String,
    pub issuer: String,
    pub audience: String,
    pub algorithms: Vec<Algorithm>,
    pub keys: HostKeys,
    pub single_use: bool,
    pub create_users: bool,
    pub max_lifetime_secs: i64,
    pub leeway_secs: i64,
}

/// Why a token is not believed. `code` and `message` are what the client is told; nothing
/// about keys or the token's content beyond the failing rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JwtRefusal {
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("no host app is configured for this issuer")]
    UnknownIssuer,
    #[error("the token's algorithm is not accepted for this host")]
    AlgorithmNotAllowed,
    #[error("no key of the host matches the token")]
    UnknownKey,
    #[error("the signature does not verify")]
    BadSignature,
    #[error("the token names another audience")]
    WrongAudience,
    #[error("the token names another issuer")]
    WrongIssuer,
    #[error("a required claim (iss, aud, sub, exp, iat; jti for single-use hosts) is missing or invalid")]
    MissingClaim,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token lives longer than the host's max_lifetime_secs")]
    LifetimeTooLong,
}

impl JwtRefusal {
    #[must_use]
    pub const fn code(self) -> &'static str {
        match self {
            Self::Malformed => "jwt_malformed",
            Self::UnknownIssuer => "jwt_unknown_issuer",
            Self::AlgorithmNotAllowed => "jwt_algorithm_not_allowed",
            Self::UnknownKey => "jwt_unknown_key",
            Self::BadSignature => "jwt_bad_signature",
            Self::WrongAudience => "jwt_wrong_audience",
            Self::WrongIssuer => "jwt_wrong_issuer",
            Self::MissingClaim => "jwt_missing_claim",
            Self::Expired => "jwt_expired",
            Self::NotYetValid => "jwt_not_yet_valid",
            Self::LifetimeTooLong => "jwt_lifetime_too_long",
        }
    }

    #[must_use]
    pub const fn message(self) -> &'static str {
        match self {
            Self::Malformed => "the token is not a well-formed JWT",
            Self::UnknownIssuer => "no host app is configured for this issuer",
            Self::AlgorithmNotAllowed => "the token's algorithm is not accepted for this host",
            Self::UnknownKey => "no key of the host matches the token",
            Self::BadSignature => "the signature does not verify",
            Self::WrongAudience => "the token names another audience",
            Self::WrongIssuer => "the token names another issuer",
            Self::MissingClaim => {
                "a required claim (iss, aud, sub, exp, iat; jti for single-use hosts) is missing or invalid"
            }
            Self::Expired => "the token has expired",
            Self::NotYetValid => "the token is not valid yet",
            Self::LifetimeTooLong => "the token lives longer than the host allows",
        }
    }
}

/// What checking a token can end with besides its claims.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostJwtError {
    #[error(transparent)]
    Refused(#[from] JwtRefusal),
    /// The host's key set could not be fetched (and none is cached): nothing was decided.
    #[error("the host's keys could not be fetched")]
    KeysUnavailable,
}

/// A token's claims once everything checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedClaims {
    /// The `[[host_jwt]]` id whose key verified it.
    pub host: String,
    pub subject: String,
    pub preferred_username: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    /// `jti`, present whenever the host is single-use.
    pub token_id: Option<String>,
    /// `exp`.
    pub expires_at: DateTime<Utc>,
    /// Until when a single-use id must be remembered: `exp` plus the leeway.
    pub remember_until: DateTime<Utc>,
    pub single_use: bool,
    pub create_users: bool,
}

/// A NumericDate (RFC 7519 §2): seconds, possibly fractional; fractions are dropped.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(untagged)]
enum NumericDate {
    Int(i64),
    Float(f64),
}

impl NumericDate {
    fn secs(self) -> Option<i64> {
        match self {
            Self::Int(n) => Some(n),
            Self::Float(f) if f.is_finite() && f.abs() < 1e15 =>
            {
                #[allow(
                    clippy::cast_possible_truncation,
                    reason = "finite and bounded above; the fraction is meant to go"
                )]
                Some(f.floor() as i64)
            }
            Self::Float(_) => None,
        }
    }
}

/// The claims read from a verified token.
#[derive(Debug, Deserialize)]
struct Claims {
    sub: Option<String>,
    exp: Option<NumericDate>,
    iat: Option<NumericDate>,
    nbf: Option<NumericDate>,
    jti: Option<String>,
    preferred_username: Option<String>,
    name: Option<String>,
    email: Option<String>,
}

/// What an unverified token says about its issuer (to pick the host) and subject (to key the
/// sign-in counters): nothing here is believed.
#[derive(Debug, Deserialize)]
struct Unverified {
    iss: Option<String>,
    sub: Option<String>,
}

/// A host with its key cache.
struct Host {
    config: HostJwt,
    jwks: Option<JwksCache>,
}

/// Verifies host-app JWTs for every configured host. Build one at start and share it.
pub struct HostJwtVerifier {
    hosts: Vec<Host>,
}

impl std::fmt::Debug for HostJwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.hosts.iter().map(|h| h.config.id.as_str()).collect();
        f.debug_struct("HostJwtVerifier")
            .field("hosts", &ids)
            .finish()
    }
}

impl HostJwtVerifier {
    /// A verifier for `hosts`; JWKS fetches go through `guard`.
    #[must_use]
    pub fn new(hosts: Vec<HostJwt>, guard: &OutboundGuard) -> Self {
        let hosts = hosts
            .into_iter()
            .map(|config| {
                let jwks = match &config.keys {
                    HostKeys::Jwks(url) => Some(JwksCache::new(url.clone(), guard.clone())),
                    _ => None,
                };
                Host { config, jwks }
            })
            .collect();
        Self { hosts }
    }

    /// Whether any host is configured.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// The configured hosts.
    pub fn hosts(&self) -> impl Iterator<Item = &HostJwt> {
        self.hosts.iter().map(|h| &h.config)
    }

    /// The host a token claims to come from and the subject it claims, unverified: for
    /// keying the sign-in counters and the audit log before anything is checked.
    #[must_use]
    pub fn claimed(&self, token: &str) -> (Option<&str>, Option<String>) {
        let Some(u) = unverified(token) else {
            return (None, None);
        };
        let host = u
            .iss
            .as_deref()
            .and_then(|iss| self.hosts.iter().find(|h| h.config.issuer == iss))
            .map(|h| h.config.id.as_str());
        (host, u.sub)
    }

    /// Verifies `token` at `now` (the server's clock): its claims, or why not.
    pub async fn verify(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<VerifiedClaims, HostJwtError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(JwtRefusal::Malformed.into());
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| JwtRefusal::Malformed)?;
        let iss = unverified(token)
            .ok_or(JwtRefusal::Malformed)?
            .iss
            .ok_or(JwtRefusal::MissingClaim)?;
        let host = self
            .hosts
            .iter()
            .find(|h| h.config.issuer == iss)
            .ok_or(JwtRefusal::UnknownIssuer)?;
        let c = &host.config;
        if !c.algorithms.contains(&header.alg) {
            return Err(JwtRefusal::AlgorithmNotAllowed.into());
        }
        let key = match (&c.keys, &host.jwks) {
            (HostKeys::Secret(s), _) => DecodingKey::from_secret(s.expose_secret()),
            (HostKeys::PublicKey(k), _) => k.clone(),
            (HostKeys::Jwks(_), Some(cache)) => {
                cache.key(header.kid.as_deref(), header.alg, now).await?
            }
            (HostKeys::Jwks(_), None) => return Err(HostJwtError::KeysUnavailable),
        };
        let claims = check_signature(token, &key, header.alg, c)?;
        check_claims(claims, c, now)
    }
}

/// The issuer and subject a token states, read without any check.
fn unverified(token: &str) -> Option<Unverified> {
    let mut validation = Validation::default();
    validation.insecure_disable_signature_validation();
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    jsonwebtoken::decode::<Unverified>(token, &DecodingKey::from_secret(&[]), &validation)
        .ok()
        .map(|d| d.claims)
}

/// Verifies the signature with `key` for exactly `alg` and the issuer and audience of `host`
/// (the time claims are checked against the server's clock afterwards).
fn check_signature(
    token: &str,
    key: &DecodingKey,
    alg: Algorithm,
    host: &HostJwt,
) -> Result<Claims, JwtRefusal> {
    let mut validation = Validation::new(alg);
    validation.set_issuer(&[&host.issuer]);
    validation.set_audience(&[&host.audience]);
    validation.set_required_spec_claims(&["iss", "aud", "sub", "exp"]);
    decode_checked(token, key, validation)
}

/// Decodes `token` with `key` under `validation` (whose time checks are turned off: they are
/// made against the server's clock afterwards), naming the failing rule.
fn decode_checked(
    token: &str,
    key: &DecodingKey,
    mut validation: Validation,
) -> Result<Claims, JwtRefusal> {
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.leeway = 0;
    jsonwebtoken::decode::<Claims>(token, key, &validation)
        .map(|d| d.claims)
        .map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::InvalidSignature => JwtRefusal::BadSignature,
                K::InvalidAlgorithm | K::InvalidAlgorithmName | K::MissingAlgorithm => {
                    JwtRefusal::AlgorithmNotAllowed
                }
                K::InvalidIssuer => JwtRefusal::WrongIssuer,
                K::InvalidAudience => JwtRefusal::WrongAudience,
                K::MissingRequiredClaim(_) | K::InvalidSubject => JwtRefusal::MissingClaim,
                K::InvalidKeyFormat | K::InvalidRsaKey(_) | K::InvalidEcdsaKey => {
                    JwtRefusal::UnknownKey
                }
                _ => JwtRefusal::Malformed,
            }
        })
}

/// The time and identity claims of a signed token, checked at `now`.
fn check_claims(
    claims: Claims,
    host: &HostJwt,
    now: DateTime<Utc>,
) -> Result<VerifiedClaims, HostJwtError> {
    let leeway = host.leeway_secs;
    let exp = check_times(&claims, now, leeway, host.max_lifetime_secs)?;
    let subject = claims
        .sub
        .filter(|s| !s.trim().is_empty() && s.chars().count() <= MAX_SUBJECT_CHARS)
        .ok_or(JwtRefusal::MissingClaim)?;
    let token_id = claims
        .jti
        .filter(|j| !j.is_empty() && j.chars().count() <= MAX_SUBJECT_CHARS);
    if host.single_use && token_id.is_none() {
        return Err(JwtRefusal::MissingClaim.into());
    }
    let expires_at = DateTime::from_timestamp(exp, 0).ok_or(JwtRefusal::MissingClaim)?;
    let remember_until =
        DateTime::from_timestamp(exp.saturating_add(leeway), 0).unwrap_or(expires_at);
    Ok(VerifiedClaims {
        host: host.id.clone(),
        subject,
        preferred_username: claims.preferred_username,
        name: claims.name,
        email: claims.email,
        token_id,
        expires_at,
        remember_until,
        single_use: host.single_use,
        create_users: host.create_users,
    })
}

/// Checks `exp` (required, in the future), `iat` (required, not in the future) and `nbf` (if
/// any, not in the future) at `now`, each within `leeway` seconds, and that the token lives
/// (`exp - iat`) at most `max_lifetime` seconds; answers `exp`.
fn check_times(
    claims: &Claims,
    now: DateTime<Utc>,
    leeway: i64,
    max_lifetime: i64,
) -> Result<i64, JwtRefusal> {
    let at = |d: Option<NumericDate>| -> Result<Option<i64>, JwtRefusal> {
        d.map(|d| d.secs().ok_or(JwtRefusal::MissingClaim))
            .transpose()
    };
    let exp = at(claims.exp)?.ok_or(JwtRefusal::MissingClaim)?;
    let iat = at(claims.iat)?.ok_or(JwtRefusal::MissingClaim)?;
    let nbf = at(claims.nbf)?;
    let now_s = now.timestamp();
    if exp <= now_s.saturating_sub(leeway) {
        return Err(JwtRefusal::Expired);
    }
    if iat > now_s.saturating_add(leeway) || nbf.is_some_and(|n| n > now_s.saturating_add(leeway)) {
        return Err(JwtRefusal::NotYetValid);
    }
    if exp <= iat || exp - iat > max_lifetime {
        return Err(JwtRefusal::LifetimeTooLong);
    }
    Ok(exp)
}

/// WEB-4: the longest a widget visitor token may live (`exp - iat`).
pub const WIDGET_MAX_LIFETIME_SECS: i64 = 3600;
/// WEB-4: the clock skew allowed on a widget visitor token's `exp`, `iat` and `nbf`.
pub const WIDGET_LEEWAY_SECS: i64 = 60;

/// A widget visitor token's claims once everything checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WidgetClaims {
    /// `sub`: the host's user id (the same namespace as the HMAC identity's `user_id`).
    pub subject: String,
    pub name: Option<String>,
    pub email: Option<String>,
}

/// WEB-4: verifies a support widget visitor token — a JWT the host signs **HS256 with the
/// widget key's identity secret** (the secret of the HMAC identity too) — at `now` (the
/// server's clock). The header's `alg` must be HS256 (`none`, RS*, other HS* are refused before
/// anything is checked, and `jsonwebtoken` is told HS256 only); the signature is checked by
/// `jsonwebtoken` (a constant-time MAC comparison); `sub`, `exp` and `iat` are required, `exp`
/// in the future and `iat`/`nbf` not, within [`WIDGET_LEEWAY_SECS`]; `exp - iat` at most
/// [`WIDGET_MAX_LIFETIME_SECS`]. `iss` and `aud` are not read: the secret belongs to one key.
pub fn verify_widget_token(
    token: &str,
    secret: &[u8],
    now: DateTime<Utc>,
) -> Result<WidgetClaims, JwtRefusal> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(JwtRefusal::Malformed);
    }
    let header = jsonwebtoken::decode_header(token).map_err(|_| JwtRefusal::Malformed)?;
    if header.alg != Algorithm::HS256 {
        return Err(JwtRefusal::AlgorithmNotAllowed);
    }
    let mut validation = Validation::new(Algorithm::HS256);
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["sub", "exp"]);
    let claims = decode_checked(token, &DecodingKey::from_secret(secret), validation)?;
    check_times(&claims, now, WIDGET_LEEWAY_SECS, WIDGET_MAX_LIFETIME_SECS)?;
    let subject = claims
        .sub
        .filter(|s| !s.trim().is_empty())
        .ok_or(JwtRefusal::MissingClaim)?;
    Ok(WidgetClaims {
        subject,
        name: claims.name,
        email: claims.email,
    })
}

/// A host's published key set, fetched through the SSRF guard and cached.
struct JwksCache {
    url: String,
    guard: OutboundGuard,
    state: tokio::sync::Mutex<JwksState>,
}

#[derive(Default)]
struct JwksState {
    keys: Vec<Jwk>,
    /// When the set was fetched (on the server's clock); `None` before the first success.
    fetched_at: Option<DateTime<Utc>>,
    /// When a fetch was last tried, successful or not.
    tried_at: Option<DateTime<Utc>>,
}

impl JwksCache {
    fn new(url: String, guard: OutboundGuard) -> Self {
        Self {
            url,
            guard,
            state: tokio::sync::Mutex::new(JwksState::default()),
        }
    }

    /// The key for `kid` and `alg`: from the cached set while it is fresh, else from a new
    /// fetch; an unknown `kid` refetches (rate limited) in case the host rotated its keys.
    async fn key(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
        now: DateTime<Utc>,
    ) -> Result<DecodingKey, HostJwtError> {
        let mut state = self.state.lock().await;
        let may_try = state.tried_at.is_none_or(|t| now - t >= JWKS_REFETCH_MIN);
        let stale = state.fetched_at.is_none_or(|t| now - t >= JWKS_TTL);
        if stale && may_try {
            self.refresh(&mut state, now).await;
        }
        if state.fetched_at.is_none() {
            return Err(HostJwtError::KeysUnavailable);
        }
        if let Some(key) = pick(&state.keys, kid, alg) {
            return Ok(key);
        }
        // An unknown key: the host may have rotated. Refetch, at most once per interval.
        if state.tried_at.is_none_or(|t| now - t >= JWKS_REFETCH_MIN) {
            self.refresh(&mut state, now).await;
            if let Some(key) = pick(&state.keys, kid, alg) {
                return Ok(key);
            }
        }
        Err(JwtRefusal::UnknownKey.into())
    }

    /// Fetches the set; on failure the set held so far stays (if there is one) and the next
    /// try waits for the refetch interval.
    async fn refresh(&self, state: &mut JwksState, now: DateTime<Utc>) {
        state.tried_at = Some(now);
        match fetch_jwks(&self.guard, &self.url).await {
            Ok(keys) => {
                state.keys = keys;
                state.fetched_at = Some(now);
            }
            Err(why) => {
                tracing::warn!(url = %self.url, error = %why, "fetching a JWKS failed");
            }
        }
    }
}

/// Fetches a JWKS through the guard: the usable signing keys it holds (others are skipped).
pub(crate) async fn fetch_jwks(guard: &OutboundGuard, url: &str) -> Result<Vec<Jwk>, String> {
    let mut req = OutboundRequest::get(url);
    req.limits = Limits {
        timeout: std::time::Duration::from_secs(5),
        max_response_bytes: 256 * 1024,
    };
    let fetched = guard.send(req).await.map_err(|e| e.to_string())?;
    if !fetched.status.is_success() {
        return Err(format!("status {}", fetched.status));
    }
    #[derive(Deserialize)]
    struct Set {
        keys: Vec<serde_json::Value>,
    }
    let set: Set = serde_json::from_slice(&fetched.body).map_err(|_| "not a JWKS".to_owned())?;
    Ok(set
        .keys
        .into_iter()
        .filter_map(|k| serde_json::from_value::<Jwk>(k).ok())
        .collect())
}

/// The key of `keys` for a token with `kid` and `alg`: the one with that id (or the only one
/// when the token names none), of the algorithm's kind, for signatures, and — when the key
/// names an algorithm — that one.
pub(crate) fn pick(keys: &[Jwk], kid: Option<&str>, alg: Algorithm) -> Option<DecodingKey> {
    let usable = |k: &&Jwk| {
        JwtFamily::of_jwk(k) == Some(JwtFamily::of(alg))
            && k.common
                .public_key_use
                .as_ref()
                .is_none_or(|u| *u == PublicKeyUse::Signature)
            && k.common
                .key_algorithm
                .is_none_or(|a| a.to_string() == format!("{alg:?}"))
    };
    let candidates: Vec<&Jwk> = keys.iter().filter(usable).collect();
    let chosen = match kid {
        Some(kid) => candidates
            .into_iter()
            .find(|k| k.common.key_id.as_deref() == Some(kid)),
        None if candidates.len() == 1 => candidates.into_iter().next(),
        None => None,
    }?;
    DecodingKey::from_jwk(chosen).ok()
}

#[cfg(test)]
#[path = "host_jwt_tests.rs"]
mod tests;
