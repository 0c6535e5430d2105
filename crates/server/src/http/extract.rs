//! Our own extractors, so every rejection uses the error shape of CORE-4, and the auth
//! extractors that say who is asking. Tokens never reach a log: nothing here is instrumented
//! with its arguments.

use super::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method, StatusCode};
use bytes::Bytes;
use conclave_core::service::{Actor, ServerAdmin};
use conclave_core::token::{self, TokenKind};
use conclave_core::ServiceError;
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;
use std::net::{IpAddr, SocketAddr};
use uuid::Uuid;

/// The session cookie on a plain-HTTP (development) server.
pub const SESSION_COOKIE: &str = "conclave_session";
/// The session cookie when the public URL is https: the `__Host-` prefix makes browsers
/// refuse it unless it is `Secure`, has `Path=/` and no `Domain` (AUTH-3).
pub const SECURE_SESSION_COOKIE: &str = "__Host-conclave_session";

/// The name of the session cookie on this server (AUTH-3).
#[must_use]
pub fn session_cookie_name(state: &AppState) -> &'static str {
    if state.secure_cookies {
        SECURE_SESSION_COOKIE
    } else {
        SESSION_COOKIE
    }
}

/// The session cookie's value, read under this server's cookie name only.
#[must_use]
pub fn session_cookie<'a>(headers: &'a HeaderMap, state: &AppState) -> Option<&'a str> {
    cookie(headers, session_cookie_name(state))
}

/// A JSON body: 415 for another content type, 413 over the limit, 400 for malformed JSON,
/// 422 naming the field for a value that parsed but is not acceptable (or unknown).
pub struct ApiJson<T>(pub T);

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<mime::Mime>().ok())
        .is_some_and(|m| {
            m.type_() == "application"
                && (m.subtype() == "json" || m.suffix().is_some_and(|s| s == "json"))
        })
}

fn pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => out.push_str(&format!("/{index}")),
            Segment::Map { key } => {
                out.push_str(&format!("/{}", key.replace('~', "~0").replace('/', "~1")))
            }
            Segment::Enum { variant } => out.push_str(&format!("/{variant}")),
            Segment::Unknown => {}
        }
    }
    out
}

/// Maps a typed-deserialization error (syntax was checked before) to 422, naming the field.
fn body_error(err: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let mut field = pointer(err.path());
    // serde's messages end with " at line L column C"; clients need the field, not that.
    let text = err.inner().to_string();
    let text = text
        .split(" at line ")
        .next()
        .unwrap_or_default()
        .to_owned();
    let named = |prefix: &str| {
        text.strip_prefix(prefix)
            .and_then(|r| r.split('`').next())
            .map(str::to_owned)
    };
    if let Some(name) = named("unknown field `") {
        if !field.ends_with(&format!("/{name}")) {
            field.push('/');
            field.push_str(&name);
        }
        return ApiError::invalid("unknown_field", format!("unknown field `{name}`"), field);
    }
    if let Some(name) = named("missing field `") {
        field.push('/');
        field.push_str(&name);
        return ApiError::invalid("missing_field", format!("`{name}` is required"), field);
    }
    let label = if field.is_empty() {
        "the body".to_owned()
    } else {
        format!("`{field}`")
    };
    ApiError::invalid("invalid_value", format!("{label}: {text}"), field)
}

/// JSON does not tell `5.0` from `5` (RFC 8259 §6), nor does JSON Schema's `integer`: reads the
/// body again with every whole number written as a fraction or with an exponent made an
/// integer (only when a typed read refused a fraction, so other bodies keep the strict path).
fn whole_numbers_as_integers<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    fn walk(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Number(n) if !(n.is_i64() || n.is_u64()) => {
                if let Some(f) = n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15) {
                    *v = serde_json::Value::from(f as i64);
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(walk),
            serde_json::Value::Object(map) => map.values_mut().for_each(walk),
            _ => {}
        }
    }
    let mut value: serde_json::Value = serde_json::from_slice(bytes).map_err(|_| {
        ApiError::bad_request("malformed_json", "the request body is not valid JSON", "")
    })?;
    walk(&mut value);
    serde_path_to_error::deserialize(value).map_err(body_error)
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let json = is_json(req.headers());
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "the request body is too large",
                )
            } else {
                ApiError::bad_request("unreadable_body", "the request body could not be read", "")
            }
        })?;
        let bytes: &[u8] = if bytes.is_empty() {
            b"{}"
        } else if !json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send JSON with Content-Type: application/json",
            ));
        } else {
            &bytes
        };
        // Syntax first (including trailing characters), so malformed JSON is always 400.
        serde_json::from_slice::<serde::de::IgnoredAny>(bytes).map_err(|_| {
            ApiError::bad_request("malformed_json", "the request body is not valid JSON", "")
        })?;
        // Every body is an object: serde would also read a struct from an array of its
        // members in order (`[null]`), which no client means and the document does not allow.
        if bytes.trim_ascii_start().first() != Some(&b'{') {
            return Err(ApiError::invalid(
                "invalid_value",
                "the body must be a JSON object",
                "",
            ));
        }
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let value: T = match serde_path_to_error::deserialize(&mut de) {
            Ok(value) => value,
            Err(e)
                if e.inner()
                    .to_string()
                    .starts_with("invalid type: floating point") =>
            {
                whole_numbers_as_integers(bytes)?
            }
            Err(e) => return Err(body_error(e)),
        };
        Ok(Self(value))
    }
}

/// Path parameters as text, parsed one by one so a bad one is named (400).
pub struct PathParams(Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for PathParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let raw = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| {
                ApiError::bad_request("invalid_path", "a path parameter is not valid UTF-8", "")
            })?;
        Ok(Self(
            raw.iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        ))
    }
}

impl PathParams {
    /// The parameter `name` as a UUID-backed id; 400 naming it when malformed.
    pub fn id<T: From<Uuid>>(&self, name: &str) -> ApiResult<T> {
        let raw = self
            .0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default();
        Uuid::try_parse(raw).map(T::from).map_err(|_| {
            ApiError::bad_request("invalid_id", format!("`{name}` is not a valid id"), name)
        })
    }
}

/// A query string parsed into `T`; 400 naming the parameter when a value has the wrong type.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de).map(Self).map_err(|e| {
            let field = e.path().to_string();
            let field = if field == "." { String::new() } else { field };
            ApiError::bad_request(
                "invalid_query",
                format!("query parameter `{field}` is not valid"),
                field,
            )
        })
    }
}

/// The client's address (RATE-2, `client_ip::resolve`): the socket peer, or the forwarded
/// client when the peer is a trusted proxy.
pub fn client_ip(parts: &Parts, state: &AppState) -> Option<IpAddr> {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())?;
    Some(super::client_ip::resolve(
        peer,
        &parts.headers,
        &state.trusted_proxies,
        state.proxy_header,
    ))
}

/// The User-Agent, for the session list.
pub fn user_agent(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The value of a cookie.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// How the caller authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthVia {
    Bearer,
    Cookie,
    /// `Authorization: Bot <token>` (AUTH-6).
    Bot,
    /// `Authorization: Bearer cnv_k_…` (AUTH-7).
    ApiKey,
}

/// An authenticated user. Bearer tokens come from `Authorization`; browsers use the session
/// cookie and must send `X-CSRF-Token` on every state-changing request. Bots and API keys
/// (`Bot …`, `Bearer cnv_k_…`) must also hold the scope of the route (`credentials`).
pub struct Caller {
    pub actor: Actor,
    pub via: AuthVia,
}

/// Whether a path is outside the access-token gate: the public documents a client reads before
/// it can know the gate exists (capabilities, the OpenAPI document), and everything that is
/// not the REST API — probes, the web client's files (public by nature) and the gateway
/// upgrade (the gateway checks `access_token` in IDENTIFY and RESUME instead).
fn gate_exempt(path: &str) -> bool {
    let path = path.strip_suffix('/').unwrap_or(path);
    !(path == "/api" || path.starts_with("/api/"))
        || path == "/api/v1/capabilities"
        || path == "/api/v1/openapi.json"
}

/// AUTH-9: with `access_token` set, every REST request but the public documents — bearer,
/// cookie, bot, API key or management token, and every sign-in (login, its 2FA step,
/// bootstrap, register) — must carry `X-API-Access-Token` (401 `access_token_required`).
/// Runs after the per-IP limits, so guessing the access token is rate-limited like any request.
pub async fn access_gate(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if gate_exempt(req.uri().path()) {
        return next.run(req).await;
    }
    match check_access_gate(req.headers(), &state) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

fn check_access_gate(headers: &HeaderMap, state: &AppState) -> ApiResult<()> {
    let Some(expected) = &state.access_token else {
        return Ok(());
    };
    let given = headers
        .get("x-api-access-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if token::secrets_equal(given, expected.expose_secret()) {
        Ok(())
    } else {
        Err(ApiError::unauthorized(
            "access_token_required",
            "a valid X-API-Access-Token header is required",
        ))
    }
}

/// A user a server admin requires to use 2FA reaches only their account and the 2FA routes
/// until they turn it on (403 `mfa_setup_required` elsewhere).
async fn personal_2fa(parts: &Parts, state: &AppState, actor: &Actor) -> ApiResult<()> {
    // The route as matched (with its `/api/v1` prefix), not the URI a nested router sees.
    let path = parts
        .extensions
        .get::<axum::extract::MatchedPath>()
        .map(axum::extract::MatchedPath::as_str)
        .unwrap_or_default();
    let allowed = path.starts_with("/api/v1/auth/")
        || path == "/api/v1/users/@me"
        || path == "/api/v1/users/@me/security-events";
    Ok(state.services.check_personal_2fa(actor, allowed).await?)
}

fn unauthenticated() -> ApiError {
    ApiError::unauthorized("unauthenticated", "authentication is required")
}

fn auth_error(e: ServiceError) -> ApiError {
    match e {
        ServiceError::Unauthorized { .. } => ApiError::unauthorized(
            "invalid_token",
            "the credential is invalid, expired or revoked",
        ),
        other => other.into(),
    }
}

/// The credential in `Authorization`, if any: `Ok(None)` when absent.
fn bearer(headers: &HeaderMap) -> ApiResult<Option<&str>> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::unauthorized("invalid_token", "malformed Authorization header"))?;
    let (scheme, rest) = text.split_once(' ').unwrap_or((text, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::unauthorized(
            "unsupported_scheme",
            "use Authorization: Bearer <token>",
        ));
    }
    Ok(Some(rest.trim()))
}

fn csrf_ok(parts: &Parts, state: &AppState, actor: &Actor) -> bool {
    let given = parts
        .headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    token::secrets_equal(given, &state.services.csrf_token(&actor.session))
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let client = client_ip(parts, state);
        // Sessions record the address as limits key it (RATE-2: IPv6 by /64), like sign-in
        // does; an API key's allowlist is checked against the address itself.
        let ip = client.map(crate::ratelimit::ip_key);
        if let Some((via, tok)) = super::credentials::machine_credential(&parts.headers) {
            let exact = client.map(|i| i.to_string());
            let mut actor = super::credentials::authenticate(state, via, &tok, exact.as_deref())
                .await
                .map_err(auth_error)?;
            actor.meta = super::auth::request_meta(parts, state);
            // The per-user 2FA requirement reaches the user's keys too (AUTH-4a).
            personal_2fa(parts, state, &actor).await?;
            // Charged before the scope check, so refused requests count against the key too.
            crate::ratelimit::check_caller(parts, state, super::credentials::rate_subject(&actor))
                .await?;
            if let Err(e) = super::credentials::require_scope(parts, state, &actor).await {
                // A scope refusal is a denied attempt (AUTH-12), within the audit budget.
                let route = format!("{} {}", parts.method, parts.uri.path());
                (state.services)
                    .audit_denied(&actor, "scope.denied", e.code, None, Some(("route", route)))
                    .await;
                return Err(e);
            }
            return Ok(Self { actor, via });
        }
        if let Some(tok) = bearer(&parts.headers)? {
            let mut actor = state
                .services
                .authenticate(tok, ip.as_deref())
                .await
                .map_err(auth_error)?;
            actor.meta = super::auth::request_meta(parts, state);
            personal_2fa(parts, state, &actor).await?;
            super::impersonation::check(parts, state, &actor).await?;
            crate::ratelimit::check_caller(
                parts,
                state,
                crate::ratelimit::Subject {
                    user: actor.user.id,
                    org: None,
                    api_key: None,
                },
            )
            .await?;
            return Ok(Self {
                actor,
                via: AuthVia::Bearer,
            });
        }
        if let Some(tok) = session_cookie(&parts.headers, state) {
            let mut actor = state
                .services
                .authenticate(tok, ip.as_deref())
                .await
                .map_err(auth_error)?;
            actor.meta = super::auth::request_meta(parts, state);
            personal_2fa(parts, state, &actor).await?;
            super::impersonation::check(parts, state, &actor).await?;
            if !actor.session.cookie {
                return Err(ApiError::unauthorized(
                    "invalid_token",
                    "the credential is invalid, expired or revoked",
                ));
            }
            let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
            if !safe && !csrf_ok(parts, state, &actor) {
                return Err(ApiError::forbidden(
                    "csrf_failed",
                    "missing or wrong X-CSRF-Token",
                ));
            }
            crate::ratelimit::check_caller(
                parts,
                state,
                crate::ratelimit::Subject {
                    user: actor.user.id,
                    org: None,
                    api_key: None,
                },
            )
            .await?;
            return Ok(Self {
                actor,
                via: AuthVia::Cookie,
            });
        }
        Err(unauthenticated())
    }
}

/// A caller of the server admin API: a server admin's session, or the management token
/// (compared in constant time; valid only here).
pub struct AdminCaller {
    pub admin: ServerAdmin,
    /// The signed-in admin, when it is not the management token.
    pub actor: Option<Actor>,
}

impl FromRequestParts<AppState> for AdminCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // Bots and API keys go the `Caller` way, which refuses them here: /admin has no scope.
        let machine = super::credentials::machine_credential(&parts.headers).is_some();
        let management = if machine {
            None
        } else {
            bearer(&parts.headers)?
        };
        if let Some(tok) = management {
            if !token::well_formed(TokenKind::Session, tok) {
                // An empty token never matches, even if the configuration check were bypassed
                // (CORE-3a).
                let ok = !tok.is_empty()
                    && state
                        .admin_token
                        .as_ref()
                        .is_some_and(|t| token::secrets_equal(tok, t.expose_secret()));
                if !ok {
                    return Err(ApiError::unauthorized(
                        "invalid_token",
                        "the credential is invalid, expired or revoked",
                    ));
                }
                return Ok(Self {
                    admin: state
                        .services
                        .admin_from_management_token(super::auth::request_meta(parts, state)),
                    actor: None,
                });
            }
        }
        let caller = Caller::from_request_parts(parts, state).await?;
        let admin = match state.services.admin_from_actor(&caller.actor) {
            Ok(admin) => admin,
            Err(e) => {
                let route = format!("{} {}", parts.method, parts.uri.path());
                (state.services)
                    .audit_denied(
                        &caller.actor,
                        "admin.denied",
                        "forbidden",
                        None,
                        Some(("route", route)),
                    )
                    .await;
                return Err(e.into());
            }
        };
        Ok(Self {
            admin,
            actor: Some(caller.actor),
        })
    }
}
