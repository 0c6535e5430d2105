//! Our own extractors, so every rejection uses the error shape of CORE-4, and the auth
//! extractors that say who is asking (`Caller`, `AdminCaller`, `Meta`). Tokens never reach a
//! log: nothing here is instrumented with its arguments.

use super::credentials;
use super::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method, StatusCode};
use bytes::Bytes;
use conclave_core::credential::Credential;
use conclave_core::service::identity::{Csrf, Presented, PresentedCredential, Shown};
use conclave_core::service::{Actor, ClientMeta, ServerAdmin, Services};
use serde::de::DeserializeOwned;
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

/// Maps a typed-deserialization error (syntax was checked before) to 422, naming the field (a
/// JSON pointer): a request body's, or an MCP tool's arguments'.
pub fn body_error(err: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
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

/// The ids of a route's path, in path order, each parsed to its type: `()` for none, `OrgId`
/// for one, `(OrgId, UserId)` for several; 400 naming the first malformed one.
async fn path_ids<P: DeserializeOwned>(parts: &mut Parts) -> ApiResult<P> {
    use serde::de::value::{Error, SeqDeserializer};
    use serde::de::IntoDeserializer;
    let params = PathParams::from_request_parts(parts, &()).await?;
    let ids = (params.0.iter())
        .map(|(name, _)| params.id(name).map(|id: Uuid| id.to_string()))
        .collect::<ApiResult<Vec<String>>>()?;
    let typed: Result<P, Error> = match ids.as_slice() {
        [] => P::deserialize(().into_deserializer()),
        [one] => P::deserialize(one.as_str().into_deserializer()),
        _ => P::deserialize(SeqDeserializer::new(ids.into_iter())),
    };
    // Only a handler asking for other ids than its route has gets here.
    typed.map_err(|e| {
        tracing::error!(error = %e, path = %parts.uri.path(), "path ids do not fit the handler");
        ApiError::internal()
    })
}

/// A query string parsed into `T`; 400 naming the parameter when a value has the wrong type,
/// 422 naming it when a required one is missing or one is given twice (CORE-4).
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(Self)
            .map_err(query_error)
    }
}

/// Maps a query's typed-deserialization error to its answer, naming the parameter. serde
/// reports a missing or repeated parameter at the query's root (path `.`), so its name is
/// read from the message, as [`body_error`] does for a body's.
fn query_error<E: std::fmt::Display>(err: serde_path_to_error::Error<E>) -> ApiError {
    let text = err.inner().to_string();
    let named = |prefix: &str| {
        text.strip_prefix(prefix)
            .and_then(|r| r.split('`').next())
            .map(str::to_owned)
    };
    if let Some(name) = named("missing field `") {
        return ApiError::invalid("missing_field", format!("`{name}` is required"), name);
    }
    if let Some(name) = named("duplicate field `") {
        return ApiError::invalid("duplicate_field", format!("`{name}` was sent twice"), name);
    }
    let field = err.path().to_string();
    let field = if field == "." { String::new() } else { field };
    ApiError::bad_request(
        "invalid_query",
        format!("query parameter `{field}` is not valid"),
        field,
    )
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

/// Where the request came from, for the session record and the audit log.
pub struct Meta(pub ClientMeta);

impl FromRequestParts<AppState> for Meta {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(Self(request_meta(parts, state)))
    }
}

/// A request that brings no credential (sign-up, sign-in): the state and where it came from.
pub struct Guest {
    pub state: AppState,
    pub meta: ClientMeta,
}

impl FromRequestParts<AppState> for Guest {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let meta = request_meta(parts, state);
        let state = state.clone();
        Ok(Self { state, meta })
    }
}

/// Where a request came from: client address, User-Agent and the request id. The address is
/// the one limits key (RATE-2: an IPv6 client by its /64), so the brute-force counters fed
/// from it cannot be dodged by hopping through one's own /64.
pub fn request_meta(parts: &Parts, state: &AppState) -> ClientMeta {
    let id = super::error::current_request_id();
    ClientMeta {
        ip: super::client_ip::of_request(parts, state).map(crate::ratelimit::ip_key),
        user_agent: user_agent(parts),
        request_id: (!id.is_empty()).then_some(id),
        surface: conclave_core::credential::Surface::Api,
    }
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

/// An authenticated user: `conclave_core::service::identity` reads the credential — `Authorization`
/// (a session, a bot's `Bot …`, an API key's `Bearer cnv_k_…`) or, for browsers, the session
/// cookie, with `X-CSRF-Token` on every state-changing request — and this extractor adds what
/// only HTTP knows: the route's declaration (`credentials::RouteAccess`: its scope and 2FA
/// exemption), the impersonation rules of the route and the per-caller rate limit.
pub struct Caller<P = ()> {
    pub actor: Actor,
    pub via: AuthVia,
    /// The ids in the route's path (see [`path_ids`]), read once the caller is let in.
    pub at: P,
    state: AppState,
}

impl<P> Caller<P> {
    /// The services a handler calls on this caller's behalf (`me.services().x(&me.actor, …)`).
    pub fn services(&self) -> &Services {
        &self.state.services
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }
}

/// `Authorization` as text: `None` when absent, 401 when it is not visible ASCII.
pub fn authorization(headers: &HeaderMap) -> ApiResult<Option<&str>> {
    headers
        .get(header::AUTHORIZATION)
        .map(|v| {
            v.to_str().map_err(|_| {
                ApiError::unauthorized("invalid_token", "malformed Authorization header")
            })
        })
        .transpose()
}

impl<P: DeserializeOwned + Send> FromRequestParts<AppState> for Caller<P> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (actor, via) = authenticate(parts, state).await?;
        let at = path_ids(parts).await?;
        let state = state.clone();
        Ok(Self {
            actor,
            via,
            at,
            state,
        })
    }
}

/// Who is asking, on a route that takes a credential (see [`Caller`]).
async fn authenticate(parts: &mut Parts, state: &AppState) -> ApiResult<(Actor, AuthVia)> {
    let access = credentials::access_granted(parts, state)?;
    let route = credentials::RouteAccess::of(parts);
    let credential = match authorization(&parts.headers)? {
        Some(value) => Shown::Authorization(value),
        None => {
            let token = session_cookie(&parts.headers, state).ok_or_else(|| {
                ApiError::unauthorized("unauthenticated", "authentication is required")
            })?;
            let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
            let csrf = if safe {
                Csrf::NotNeeded
            } else {
                Csrf::Given(
                    (parts.headers.get("x-csrf-token"))
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default(),
                )
            };
            Shown::Cookie { token, csrf }
        }
    };
    let presented = Presented {
        credential,
        ip: super::client_ip::of_request(parts, state),
        meta: request_meta(parts, state),
        before_2fa: route.before_2fa,
    };
    let actor = state.services.identify(&access, presented).await?;
    let via = match (&actor.credential, credential) {
        (_, Shown::Cookie { .. }) => AuthVia::Cookie,
        (Credential::Session | Credential::OAuth { .. }, _) => AuthVia::Bearer,
        (Credential::Bot { .. }, _) => AuthVia::Bot,
        (Credential::ApiKey { .. }, _) => AuthVia::ApiKey,
    };
    if !actor.credential.is_limited() {
        super::impersonation::check(parts, state, &actor).await?;
    }
    // Charged before the scope check, so refused requests count against a key too.
    super::limits::check_caller(parts, state, credentials::rate_subject(&actor)).await?;
    if let Err(e) = credentials::require_scope(parts, state, &actor, route).await {
        // A scope refusal is a denied attempt (AUTH-12), within the audit budget.
        let route = format!("{} {}", parts.method, parts.uri.path());
        (state.services)
            .audit_denied(&actor, "scope.denied", e.code, None, Some(("route", route)))
            .await;
        return Err(e);
    }
    Ok((actor, via))
}

/// A caller of the server admin API: a server admin's session, or the management token
/// (valid only here; compared by core, which alone makes the [`ServerAdmin`] proof).
pub struct AdminCaller<P = ()> {
    pub admin: ServerAdmin,
    /// The signed-in admin, when it is not the management token.
    pub actor: Option<Actor>,
    /// The ids in the route's path, as [`Caller::at`].
    pub at: P,
    state: AppState,
}

impl<P> AdminCaller<P> {
    /// The services a handler calls with this admin's proof (`a.services().x(&a.admin, …)`).
    pub fn services(&self) -> &Services {
        &self.state.services
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }
}

impl<P: DeserializeOwned + Send> FromRequestParts<AppState> for AdminCaller<P> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (admin, actor) = authenticate_admin(parts, state).await?;
        let at = path_ids(parts).await?;
        let state = state.clone();
        Ok(Self {
            admin,
            actor,
            at,
            state,
        })
    }
}

/// The server admin proof of a request to the admin API, and the signed-in admin (none for
/// the management token).
async fn authenticate_admin(
    parts: &mut Parts,
    state: &AppState,
) -> ApiResult<(ServerAdmin, Option<Actor>)> {
    let presented = authorization(&parts.headers)?.map(PresentedCredential::parse);
    if let Some(Ok(credential @ PresentedCredential::Management(_))) = presented {
        let access = credentials::access_granted(parts, state)?;
        let meta = request_meta(parts, state);
        let admin = (state.services).identify_management(&access, &credential, meta)?;
        return Ok((admin, None));
    }
    // Sessions, and bots and keys (which `Caller` refuses here: /admin has no scope).
    let (actor, _) = authenticate(parts, state).await?;
    match state.services.admin_from_actor(&actor) {
        Ok(admin) => Ok((admin, Some(actor))),
        Err(e) => {
            let route = format!("{} {}", parts.method, parts.uri.path());
            (state.services)
                .audit_denied(
                    &actor,
                    "admin.denied",
                    "forbidden",
                    None,
                    Some(("route", route)),
                )
                .await;
            Err(e.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    /// A query with a required parameter and an optional one.
    #[derive(Debug, Deserialize)]
    struct Wanted {
        name: String,
        limit: Option<i64>,
    }

    async fn query(q: &str) -> Result<Wanted, ApiError> {
        let request = axum::http::Request::builder()
            .uri(format!("/x?{q}"))
            .body(())
            .unwrap();
        let (mut parts, ()) = request.into_parts();
        let read = ApiQuery::<Wanted>::from_request_parts(&mut parts, &()).await;
        read.map(|ApiQuery(w)| w)
    }

    /// The status, code and field of a refusal.
    fn refusal(e: ApiError) -> (u16, &'static str, Option<String>) {
        (e.status.as_u16(), e.code, e.field)
    }

    #[tokio::test]
    async fn missing_and_repeated_parameters_are_named() {
        let ok = query("name=a&limit=5").await.unwrap();
        assert_eq!((ok.name.as_str(), ok.limit), ("a", Some(5)));
        let missing = query("limit=5").await.unwrap_err();
        assert_eq!(
            refusal(missing),
            (422, "missing_field", Some("name".to_owned()))
        );
        let twice = query("name=a&limit=5&limit=6").await.unwrap_err();
        assert_eq!(
            refusal(twice),
            (422, "duplicate_field", Some("limit".to_owned()))
        );
        let twice = query("name=a&name=b").await.unwrap_err();
        assert_eq!(
            refusal(twice),
            (422, "duplicate_field", Some("name".to_owned()))
        );
        // A value of the wrong type is still a 400 naming its parameter.
        let typed = query("name=a&limit=ten").await.unwrap_err();
        assert_eq!(
            refusal(typed),
            (400, "invalid_query", Some("limit".to_owned()))
        );
    }
}
