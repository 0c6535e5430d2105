//! `/api/v1/widget/*`: the embeddable support widget's visitor API (WEB-4).
//!
//! [`gate`] runs in front of the server-wide CORS layer for these paths only: a call needs a
//! live widget key in `X-Widget-Key` and a page `Origin` the key allows (403 otherwise, with
//! no CORS header); the answer — errors included — then carries
//! `Access-Control-Allow-Origin` for exactly that origin. A preflight (which carries no key)
//! is answered for an origin some live key allows, and refused otherwise. The server-wide
//! CORS allowlist never applies here (`http::cors`).
//!
//! A visitor's calls after the session is made carry `X-Widget-Visitor` (the visitor secret,
//! checked by `Services::identify_visitor`). Each call is charged to the key's, the visitor's
//! and the client IP's widget buckets. The event stream is Server-Sent Events: `message`,
//! `delta` and `status`, each with an `id` (the fan-out position) a reconnect sends back as
//! `Last-Event-ID` to replay what it missed (`crate::widget_streams`).

use super::credentials::is_widget_path;
use super::error::{ApiError, ApiResult};
use super::extract::{request_meta, ApiJson, ApiQuery};
use crate::fanout::WireEvent;
use crate::ratelimit::Outcome;
use crate::sso::host_jwt::{verify_widget_token, JwtRefusal};
use crate::state::AppState;
use crate::widget_streams::{shown, KeyWatch, Subscription};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use conclave_core::error::ServiceError;
use conclave_core::event::EventKind;
use conclave_core::model::UserSummary;
use conclave_core::service::widget::{
    widget_message, HostIdentity, HostUser, MessageFacts, SignedIdentity, Visitor, VisitorProfile,
    WidgetMessage,
};
use conclave_core::store::widget::{WidgetConversation, WidgetKey};
use conclave_core::types::{
    DisplayName, Email, MessageFormat, MessageStatus, MessageText, UserKind,
};
use conclave_core::widget::{ExternalUserId, IdentityMode, WidgetSessionId, WidgetStatus};
use conclave_core::{ConversationId, MessageId, UserId};
use serde::{Deserialize, Serialize};
use std::convert::Infallible;
use std::net::IpAddr;
use std::time::Duration;
use tokio::sync::mpsc;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The headers a widget page may send.
const ALLOWED_HEADERS: &str = "content-type, x-widget-key, x-widget-visitor, last-event-id";
/// The heartbeat comment of an idle stream.
const HEARTBEAT: Duration = Duration::from_secs(15);
/// How often a stream without a live conversation looks for a new one anyway (the fan-out
/// wakes it when one is made; this is a backstop).
const RECHECK: Duration = Duration::from_secs(30);

pub fn router() -> OpenApiRouter<AppState> {
    use super::credentials::{declare, RouteAccess};
    declare(
        OpenApiRouter::new()
            .routes(routes!(widget_session))
            .routes(routes!(widget_send, widget_history))
            .routes(routes!(widget_handoff))
            .routes(routes!(widget_stream)),
        RouteAccess::PUBLIC,
    )
}

/// The key [`gate`] let in, and the origin it allows.
#[derive(Clone)]
struct Gated {
    key: WidgetKey,
    origin: Option<String>,
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn cors_headers(res: &mut Response, origin: HeaderValue) {
    let h = res.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.append(header::VARY, HeaderValue::from_static("origin"));
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("retry-after, x-request-id"),
    );
}

/// WEB-1, WEB-4: the widget routes' own origin check and CORS (see the module docs).
pub async fn gate(
    State(state): State<AppState>,
    mut req: Request,
    next: axum::middleware::Next,
) -> Response {
    if !is_widget_path(req.uri().path()) {
        return next.run(req).await;
    }
    let origin = req.headers().get(header::ORIGIN).cloned();
    let origin_text = origin.as_ref().and_then(|o| o.to_str().ok());
    if req.method() == Method::OPTIONS {
        let known = match origin_text {
            Some(o) => state.services.widget_origin_known(o).await,
            None => Ok(false),
        };
        return match (known, origin) {
            (Ok(true), Some(origin)) => {
                let mut res = StatusCode::NO_CONTENT.into_response();
                cors_headers(&mut res, origin);
                let h = res.headers_mut();
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_METHODS,
                    HeaderValue::from_static("GET, POST"),
                );
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_HEADERS,
                    HeaderValue::from_static(ALLOWED_HEADERS),
                );
                h.insert(
                    header::ACCESS_CONTROL_MAX_AGE,
                    HeaderValue::from_static("600"),
                );
                res
            }
            (Err(e), _) => ApiError::from(e).into_response(),
            _ => ApiError::forbidden(
                "origin_not_allowed",
                "this page's origin may not use the widget",
            )
            .into_response(),
        };
    }
    let key = header_text(req.headers(), "x-widget-key");
    match state.services.identify_widget(key, origin_text).await {
        Ok(key) => {
            let gated = Gated {
                key,
                origin: origin_text.map(str::to_owned),
            };
            let origin = origin.unwrap_or_else(|| HeaderValue::from_static("null"));
            req.extensions_mut().insert(gated);
            let mut res = next.run(req).await;
            cors_headers(&mut res, origin);
            res
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// A widget call that passed [`gate`]: its key, and what the request showed.
pub struct WidgetCall {
    key: WidgetKey,
    /// The page's origin (one the key allows).
    origin: Option<String>,
    ip: Option<IpAddr>,
    meta: conclave_core::service::ClientMeta,
    secret: Option<String>,
    last_event_id: Option<String>,
    state: AppState,
}

impl FromRequestParts<AppState> for WidgetCall {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(gated) = parts.extensions.get::<Gated>().cloned() else {
            return Err(ApiError::forbidden(
                "widget_key_invalid",
                "the widget key is missing, unknown or revoked",
            ));
        };
        Ok(Self {
            key: gated.key,
            origin: gated.origin,
            ip: super::client_ip::of_request(parts, state),
            meta: request_meta(parts, state),
            secret: header_text(&parts.headers, "x-widget-visitor").map(str::to_owned),
            last_event_id: header_text(&parts.headers, "last-event-id").map(str::to_owned),
            state: state.clone(),
        })
    }
}

fn rate_limited(what: &str, retry_after_secs: u64) -> ApiError {
    let mut e = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("too many requests: {what} was reached; retry in {retry_after_secs} s"),
    );
    e.retry_after = Some(retry_after_secs);
    e
}

impl WidgetCall {
    /// Charges the key's, the session's (when known) and the IP's widget buckets.
    async fn charge(&self, session: Option<&str>) -> ApiResult<()> {
        let limiter = &self.state.limiter;
        let layers = limiter.widget_layers(self.key.id, session, self.ip);
        if layers.is_empty() {
            return Ok(());
        }
        match limiter.check(&layers).await {
            Outcome::Allowed(_) => Ok(()),
            Outcome::Denied {
                what,
                retry_after_secs,
                ..
            } => Err(rate_limited(what, retry_after_secs)),
        }
    }

    /// The visitor of session `id`, once the request showed its secret; charged first, so
    /// guessing secrets is limited too.
    async fn visitor(&self, id: &WidgetSessionId) -> ApiResult<Visitor> {
        self.charge(Some(id.as_str())).await?;
        Ok(self
            .state
            .services
            .identify_visitor(
                self.key.clone(),
                id,
                self.secret.as_deref(),
                self.meta.clone(),
            )
            .await?)
    }
}

/// How the host vouches for its signed-in visitor: `user_id` with `hash`, or `token`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentityBody {
    /// The host application's user id.
    user_id: Option<ExternalUserId>,
    name: Option<DisplayName>,
    email: Option<Email>,
    /// HMAC-SHA256 of `user_id` keyed with the widget key's identity secret, hex.
    #[schema(max_length = 128)]
    hash: Option<String>,
    /// Instead of `user_id` and `hash`: a short-lived JWT signed HS256 with the widget key's
    /// identity secret; `sub` is the user id, `exp` and `iat` are required (at most one hour
    /// apart), `name` and `email` are read when present.
    #[schema(max_length = 8192)]
    token: Option<String>,
}

/// The longest visitor token read.
const MAX_TOKEN_CHARS: usize = 8192;

/// What the identity body holds: a signature, or a token to check.
enum Proof {
    Signed(SignedIdentity),
    Token(String),
}

impl IdentityBody {
    fn proof(self) -> ApiResult<Proof> {
        if let Some(token) = self.token {
            if self.user_id.is_some() || self.hash.is_some() || self.name.is_some() {
                return Err(ApiError::invalid(
                    "not_combinable",
                    "give either `token` or `user_id` and `hash` (the token names the user)",
                    "/identity/token",
                ));
            }
            if self.email.is_some() {
                return Err(ApiError::invalid(
                    "not_combinable",
                    "with a `token`, the e-mail address is the token's `email` claim",
                    "/identity/email",
                ));
            }
            if token.is_empty() || token.len() > MAX_TOKEN_CHARS {
                return Err(ApiError::invalid(
                    "invalid_length",
                    "`token` must be 1 to 8192 characters",
                    "/identity/token",
                ));
            }
            return Ok(Proof::Token(token));
        }
        let Some(user_id) = self.user_id else {
            return Err(ApiError::invalid(
                "required",
                "`user_id` is required (or a `token`)",
                "/identity/user_id",
            ));
        };
        let Some(hash) = self.hash.filter(|h| h.len() <= 128) else {
            return Err(ApiError::invalid(
                "required",
                "`hash` is required (at most 128 hex digits)",
                "/identity/hash",
            ));
        };
        Ok(Proof::Signed(SignedIdentity {
            user: HostUser {
                user_id,
                name: self.name,
                email: self.email,
            },
            hash,
        }))
    }
}

/// Why a visitor token is refused: 403 `identity_invalid` naming the failing rule (nothing of
/// the token or the secret).
fn token_refused(why: JwtRefusal) -> ServiceError {
    let message = match why {
        JwtRefusal::Malformed => "the identity token is not a well-formed JWT",
        JwtRefusal::AlgorithmNotAllowed => "the identity token must be signed with HS256",
        JwtRefusal::BadSignature | JwtRefusal::UnknownKey => {
            "the identity token's signature does not verify with this widget key's identity secret"
        }
        JwtRefusal::Expired => "the identity token has expired",
        JwtRefusal::NotYetValid => "the identity token is not valid yet (`iat` or `nbf` is ahead)",
        JwtRefusal::LifetimeTooLong => {
            "the identity token's lifetime (`exp` - `iat`) must be above zero and at most one hour"
        }
        JwtRefusal::MissingClaim
        | JwtRefusal::UnknownIssuer
        | JwtRefusal::WrongAudience
        | JwtRefusal::WrongIssuer => {
            "a required claim of the identity token (sub, exp, iat) is missing or invalid"
        }
    };
    ServiceError::forbidden("identity_invalid", message)
}

/// WEB-4: the host user a visitor token names, once `verify_widget_token` believed it with the
/// key's identity secret; its `sub`, `name` and `email` are checked like the fields of a
/// signed identity.
fn token_user(token: &str, secret: &[u8], now: DateTime<Utc>) -> Result<HostUser, ServiceError> {
    let claims = verify_widget_token(token, secret, now).map_err(token_refused)?;
    let bad = |claim: &str, r: conclave_core::types::Rejection| {
        ServiceError::invalid(
            "/identity/token",
            r.code,
            format!("the identity token's `{claim}` claim {}", r.message),
        )
    };
    let user_id = ExternalUserId::parse(&claims.subject).map_err(|r| bad("sub", r))?;
    let name = (claims.name.as_deref())
        .map(DisplayName::parse)
        .transpose()
        .map_err(|r| bad("name", r))?;
    let email = (claims.email.as_deref())
        .map(Email::parse)
        .transpose()
        .map_err(|r| bad("email", r))?;
    Ok(HostUser {
        user_id,
        name,
        email,
    })
}

/// What the pre-chat form asked.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ProfileBody {
    name: Option<DisplayName>,
    email: Option<Email>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    /// A session to resume: with its secret in `X-Widget-Visitor` it is resumed, otherwise a
    /// new one is made.
    session_id: Option<WidgetSessionId>,
    identity: Option<IdentityBody>,
    profile: Option<ProfileBody>,
}

/// How the widget should look and behave.
#[derive(Serialize, ToSchema)]
pub struct WidgetSettings {
    title: String,
    prechat_form: bool,
    identity: IdentityMode,
    agent_name: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct SessionAnswer {
    session_id: String,
    /// Send it as `X-Widget-Visitor` on every later call; it is never shown again.
    visitor_secret: String,
    conversation_id: Option<ConversationId>,
    status: Option<WidgetStatus>,
    settings: WidgetSettings,
}

/// Begin (or resume) a visitor session. With `identity: required` the host must sign the
/// visitor (403 `identity_required` / `identity_invalid` otherwise); a verified visitor finds
/// their conversation from any browser.
#[utoipa::path(post, path = "/widget/sessions", tag = "widget", request_body = CreateSession,
    params(("X-Widget-Key" = String, Header, description = "The publishable widget key")),
    responses((status = 200, body = SessionAnswer), (status = 403, body = super::error::ErrorBody)))]
async fn widget_session(
    call: WidgetCall,
    ApiJson(body): ApiJson<CreateSession>,
) -> ApiResult<Json<SessionAnswer>> {
    call.charge(body.session_id.as_ref().map(WidgetSessionId::as_str))
        .await?;
    let (signed, token) = match body.identity.map(IdentityBody::proof).transpose()? {
        Some(Proof::Signed(s)) => (Some(s), None),
        Some(Proof::Token(t)) => (None, Some(t)),
        None => (None, None),
    };
    let token_text = token.as_deref().unwrap_or_default();
    let check = |secret: &[u8], now: DateTime<Utc>| token_user(token_text, secret, now);
    let identity = match (signed, &token) {
        (Some(s), _) => Some(HostIdentity::Signed(s)),
        (None, Some(_)) => Some(HostIdentity::Token(&check)),
        (None, None) => None,
    };
    let services = &call.state.services;
    let resume = match (&body.session_id, &call.secret) {
        (Some(id), Some(secret)) => services
            .identify_visitor(
                call.key.clone(),
                id,
                Some(secret.as_str()),
                call.meta.clone(),
            )
            .await
            .ok(),
        _ => None,
    };
    let profile = body.profile.unwrap_or_default();
    let profile = VisitorProfile {
        name: profile.name,
        email: profile.email,
    };
    let (started, resumed) = services
        .start_widget_session(&call.key, resume, identity, profile)
        .await?;
    use secrecy::ExposeSecret;
    let visitor_secret = if resumed {
        call.secret.clone().unwrap_or_default()
    } else {
        started.visitor_secret.expose_secret().to_owned()
    };
    let agent_name = services.widget_agent_name(&call.key).await?;
    Ok(Json(SessionAnswer {
        session_id: started.session_id,
        visitor_secret,
        conversation_id: started.conversation.as_ref().map(|w| w.conversation_id),
        status: started.conversation.as_ref().map(|w| w.status),
        settings: WidgetSettings {
            title: call.key.name.clone(),
            prechat_form: call.key.prechat_form,
            identity: call.key.identity,
            agent_name,
        },
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendBody {
    session_id: WidgetSessionId,
    /// 1–4000 characters of plain text.
    message: MessageText,
}

/// Send the visitor's message (the conversation is made with the first one); answered with
/// the message as the widget shows it.
#[utoipa::path(post, path = "/widget/chat", tag = "widget", request_body = SendBody,
    params(("X-Widget-Key" = String, Header), ("X-Widget-Visitor" = String, Header)),
    responses((status = 201, body = WidgetMessage), (status = 403, body = super::error::ErrorBody), (status = 401, body = super::error::ErrorBody)))]
async fn widget_send(
    call: WidgetCall,
    ApiJson(body): ApiJson<SendBody>,
) -> ApiResult<(StatusCode, Json<WidgetMessage>)> {
    let v = call.visitor(&body.session_id).await?;
    let services = &call.state.services;
    let (message, _, _) = services.widget_send(&v, body.message).await?;
    let shown = widget_message(&v.key, &v.visitor, &MessageFacts::from(&message))
        .ok_or_else(ApiError::internal)?;
    Ok((StatusCode::CREATED, Json(shown)))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SessionQuery {
    #[param(value_type = String, pattern = "^[A-Za-z0-9._:-]{1,128}$")]
    session_id: WidgetSessionId,
}

#[derive(Serialize, ToSchema)]
pub struct History {
    conversation_id: Option<ConversationId>,
    status: Option<WidgetStatus>,
    /// Oldest first (at most the newest 200).
    messages: Vec<WidgetMessage>,
}

/// The visitor's current conversation and its messages.
#[utoipa::path(get, path = "/widget/chat", tag = "widget",
    params(SessionQuery, ("X-Widget-Key" = String, Header), ("X-Widget-Visitor" = String, Header)),
    responses((status = 200, body = History), (status = 403, body = super::error::ErrorBody), (status = 401, body = super::error::ErrorBody)))]
async fn widget_history(
    call: WidgetCall,
    ApiQuery(q): ApiQuery<SessionQuery>,
) -> ApiResult<Json<History>> {
    let v = call.visitor(&q.session_id).await?;
    let (w, messages) = call.state.services.widget_history(&v).await?;
    Ok(Json(History {
        conversation_id: w.as_ref().map(|w| w.conversation_id),
        status: w.as_ref().map(|w| w.status),
        messages,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HandoffBody {
    session_id: WidgetSessionId,
}

#[derive(Serialize, ToSchema)]
pub struct StatusView {
    conversation_id: ConversationId,
    status: WidgetStatus,
}

/// Ask for a person: the conversation moves from `bot` to `open` (audited); 404 before the
/// first message.
#[utoipa::path(post, path = "/widget/handoff", tag = "widget", request_body = HandoffBody,
    params(("X-Widget-Key" = String, Header), ("X-Widget-Visitor" = String, Header)),
    responses((status = 200, body = StatusView), (status = 403, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody), (status = 401, body = super::error::ErrorBody)))]
async fn widget_handoff(
    call: WidgetCall,
    ApiJson(body): ApiJson<HandoffBody>,
) -> ApiResult<Json<StatusView>> {
    let v = call.visitor(&body.session_id).await?;
    let w = call.state.services.widget_handoff(&v).await?;
    Ok(Json(StatusView {
        conversation_id: w.conversation_id,
        status: w.status,
    }))
}

/// The visitor's live events as Server-Sent Events: `message` (a message object, sent again
/// with the same id when it changes), `delta` (`{message_id, index, delta}` of a streaming
/// answer) and `status` (`{conversation_id, status}`), each with an `id`; reconnecting with
/// `Last-Event-ID` replays what was missed, without it the current messages come first.
#[utoipa::path(get, path = "/widget/chat/stream", tag = "widget",
    params(SessionQuery, ("X-Widget-Key" = String, Header), ("X-Widget-Visitor" = String, Header),
        ("Last-Event-ID" = Option<String>, Header)),
    responses((status = 200, content_type = "text/event-stream", body = String), (status = 403, body = super::error::ErrorBody), (status = 401, body = super::error::ErrorBody)))]
async fn widget_stream(
    call: WidgetCall,
    ApiQuery(q): ApiQuery<SessionQuery>,
) -> ApiResult<Response> {
    let v = call.visitor(&q.session_id).await?;
    let epoch = epoch_tag(&call.state.gateway.fanout.epoch());
    let last = call
        .last_event_id
        .as_deref()
        .and_then(|id| position_of(id, &epoch));
    let (tx, rx) = mpsc::channel::<SseEvent>(64);
    let state = call.state.clone();
    let origin = call.origin.clone();
    tokio::spawn(async move {
        let streams = state.gateway.widget_streams.clone();
        let watch = streams.watch_key(v.key.id);
        // Watching before looking: a change from now on wakes the stream; one made since the
        // gate let the call in is seen here.
        let key = KeyCheck {
            state: &state,
            v: &v,
            origin: origin.as_deref(),
            watch: &watch,
        };
        if key.admits().await {
            follow_visitor(&state, &v, &key, epoch, last, tx).await;
        }
        streams.unwatch_key(v.key.id, &watch);
    });
    let events = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx))
    });
    let mut res = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(HEARTBEAT))
        .into_response();
    res.headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(res)
}

/// A short tag of the fan-out's epoch: ids of another epoch (a restarted node) replay nothing.
fn epoch_tag(epoch: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(epoch.as_bytes());
    digest[..4].iter().map(|b| format!("{b:02x}")).collect()
}

fn event_id(epoch: &str, position: u64) -> String {
    format!("{epoch}-{position}")
}

/// The position an event id names, if it is of this epoch.
fn position_of(id: &str, epoch: &str) -> Option<u64> {
    let (tag, pos) = id.trim().rsplit_once('-')?;
    (tag == epoch).then(|| pos.parse().ok()).flatten()
}

/// A message event's REST object, as far as the widget reads it.
#[derive(Deserialize)]
struct WireMessage {
    id: MessageId,
    author: WireAuthor,
    content: Option<String>,
    format: MessageFormat,
    #[serde(default = "complete")]
    status: MessageStatus,
    created_at: chrono::DateTime<chrono::Utc>,
    deleted_at: Option<chrono::DateTime<chrono::Utc>>,
}

fn complete() -> MessageStatus {
    MessageStatus::Complete
}

#[derive(Deserialize)]
struct WireAuthor {
    id: UserId,
    username: String,
    display_name: Option<String>,
    kind: UserKind,
}

#[derive(Deserialize, Serialize)]
struct Delta {
    message_id: MessageId,
    index: u64,
    delta: String,
}

#[derive(Deserialize)]
struct StatusChange {
    id: ConversationId,
    status: Option<WidgetStatus>,
}

/// The SSE event a fan-out event of the visitor's conversation is, if any (and a status it
/// announces).
fn sse_of(v: &Visitor, ev: &WireEvent, id: &str) -> Option<(SseEvent, Option<WidgetStatus>)> {
    let d = ev.d.get();
    let event = |name: &str, data: String| SseEvent::default().event(name).id(id).data(data);
    match ev.kind {
        EventKind::MessageCreate | EventKind::MessageUpdate => {
            let m: WireMessage = serde_json::from_str(d).ok()?;
            let author = UserSummary {
                id: m.author.id,
                username: m.author.username,
                display_name: m.author.display_name,
                kind: m.author.kind,
            };
            let facts = MessageFacts {
                id: m.id,
                author: &author,
                content: m.content.as_deref(),
                format: m.format,
                status: m.status,
                created_at: m.created_at,
                deleted: m.deleted_at.is_some(),
            };
            let shown = widget_message(&v.key, &v.visitor, &facts)?;
            Some((event("message", serde_json::to_string(&shown).ok()?), None))
        }
        EventKind::MessageStream => {
            let delta: Delta = serde_json::from_str(d).ok()?;
            Some((event("delta", serde_json::to_string(&delta).ok()?), None))
        }
        EventKind::ConversationUpdate => {
            let change: StatusChange = serde_json::from_str(d).ok()?;
            let status = change.status?;
            let data = serde_json::json!({"conversation_id": change.id, "status": status});
            Some((event("status", data.to_string()), Some(status)))
        }
        _ => None,
    }
}

fn status_event(w: &WidgetConversation, id: &str) -> SseEvent {
    let data = serde_json::json!({"conversation_id": w.conversation_id, "status": w.status});
    SseEvent::default()
        .event("status")
        .id(id)
        .data(data.to_string())
}

/// What an open stream checks when its widget key changed.
struct KeyCheck<'a> {
    state: &'a AppState,
    v: &'a Visitor,
    origin: Option<&'a str>,
    watch: &'a KeyWatch,
}

impl KeyCheck<'_> {
    /// Whether the key still admits the stream's visitor and page (a revoked key does not,
    /// nor does one that cannot be read now).
    async fn admits(&self) -> bool {
        if self.watch.revoked() {
            return false;
        }
        match self
            .state
            .services
            .widget_key_admits(self.v, self.origin)
            .await
        {
            Ok(admits) => admits,
            Err(e) => {
                tracing::warn!(error = %e, "a widget stream could not read its key");
                false
            }
        }
    }
}

/// Feeds one visitor's stream until the client goes (or the key no longer admits it): their
/// current conversation's events, switching when a new conversation of theirs appears.
async fn follow_visitor(
    state: &AppState,
    v: &Visitor,
    key: &KeyCheck<'_>,
    epoch: String,
    mut last: Option<u64>,
    tx: mpsc::Sender<SseEvent>,
) {
    let streams = state.gateway.widget_streams.clone();
    let waiter = streams.waiter(v.visitor.id);
    loop {
        // Listening before looking: a conversation made in between still wakes the stream.
        let mut notified = Box::pin(waiter.notified());
        notified.as_mut().enable();
        let current = match state.services.widget_current(v).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "a widget stream could not read its conversation");
                break;
            }
        };
        let Some(w) = current else {
            let gone = tokio::select! {
                () = notified.as_mut() => false,
                () = tokio::time::sleep(RECHECK) => false,
                () = key.watch.changed.notified() => !key.admits().await,
                () = tx.closed() => true,
            };
            if gone {
                break;
            }
            continue;
        };
        // Not listening here any more: a wake-up goes to the loop below.
        drop(notified);
        let sub = streams.subscribe(w.conversation_id);
        let ctx = Follow {
            state,
            v,
            epoch: &epoch,
            tx: &tx,
            waiter: &waiter,
            key,
        };
        if !ctx.conversation(w, sub, &mut last).await {
            break;
        }
    }
    streams.release(v.visitor.id, &waiter);
}

struct Follow<'a> {
    state: &'a AppState,
    v: &'a Visitor,
    epoch: &'a str,
    tx: &'a mpsc::Sender<SseEvent>,
    waiter: &'a tokio::sync::Notify,
    key: &'a KeyCheck<'a>,
}

impl Follow<'_> {
    async fn send(&self, e: SseEvent) -> bool {
        self.tx.send(e).await.is_ok()
    }

    /// Whether the visitor's newest conversation is another one now.
    async fn switched(&self, conv: ConversationId) -> bool {
        match self.state.services.widget_current(self.v).await {
            Ok(Some(w)) => w.conversation_id != conv,
            _ => false,
        }
    }

    /// Sends what the client missed of `w` (a replay from `last`, or the current messages),
    /// then its live events; `false` once the client is gone (or fell too far behind),
    /// `true` when the visitor's conversation changed.
    async fn conversation(
        &self,
        w: WidgetConversation,
        mut sub: Subscription,
        last: &mut Option<u64>,
    ) -> bool {
        let conv = w.conversation_id;
        let upto = sub.from;
        let replayed = match *last {
            Some(p) if p >= upto => Some(Vec::new()),
            Some(p) => self
                .state
                .gateway
                .fanout
                .replay(p, upto)
                .await
                .ok()
                .flatten(),
            None => None,
        };
        let mut resolved = w.status == WidgetStatus::Resolved;
        match replayed {
            Some(events) => {
                for ev in events {
                    if ev.event.audience.conversation() != Some(conv) || !shown(ev.event.kind) {
                        continue;
                    }
                    let id = event_id(self.epoch, ev.position);
                    if let Some((e, status)) = sse_of(self.v, &ev.event, &id) {
                        resolved = status.map_or(resolved, |s| s == WidgetStatus::Resolved);
                        if !self.send(e).await {
                            return false;
                        }
                    }
                }
            }
            None => {
                let id = event_id(self.epoch, upto);
                let messages = match self.state.services.widget_messages(self.v, conv).await {
                    Ok(m) => m,
                    Err(_) => return false,
                };
                for m in messages {
                    let Ok(data) = serde_json::to_string(&m) else {
                        continue;
                    };
                    let e = SseEvent::default().event("message").id(&id).data(data);
                    if !self.send(e).await {
                        return false;
                    }
                }
                if !self.send(status_event(&w, &id)).await {
                    return false;
                }
            }
        }
        *last = Some(last.unwrap_or(0).max(upto));
        loop {
            tokio::select! {
                ev = sub.events.recv() => {
                    let Some(ev) = ev else { return false };
                    if last.is_some_and(|l| ev.position <= l) {
                        continue;
                    }
                    *last = Some(ev.position);
                    let id = event_id(self.epoch, ev.position);
                    if let Some((e, status)) = sse_of(self.v, &ev.event, &id) {
                        resolved = status.map_or(resolved, |s| s == WidgetStatus::Resolved);
                        if !self.send(e).await {
                            return false;
                        }
                    }
                }
                () = self.waiter.notified() => {
                    if self.switched(conv).await {
                        return true;
                    }
                }
                () = tokio::time::sleep(RECHECK), if resolved => {
                    if self.switched(conv).await {
                        return true;
                    }
                }
                () = self.key.watch.changed.notified() => {
                    if !self.key.admits().await {
                        return false;
                    }
                }
                () = self.tx.closed() => return false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_round_trip_within_their_epoch() {
        let e = epoch_tag("local:abc");
        assert_eq!(position_of(&event_id(&e, 42), &e), Some(42));
        assert_eq!(position_of(&event_id(&e, 42), &epoch_tag("other")), None);
        assert_eq!(position_of("garbage", &e), None);
        assert!(is_widget_path("/api/v1/widget/chat"));
        assert!(!is_widget_path("/api/v1/widgets"));
    }
}
