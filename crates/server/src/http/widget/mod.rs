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
//! `delta`, `delete` and `status`, each with an `id` (the fan-out position) a reconnect sends back as
//! `Last-Event-ID` to replay what it missed (`crate::widget_streams`).
//!
//! Here: the gate, the call extractor and the handlers; `identity` reads what the host vouches
//! for a signed-in visitor, `stream` feeds the event stream.

mod identity;
mod stream;

use super::credentials::is_widget_path;
use super::error::{ApiError, ApiResult};
use super::extract::{request_meta, ApiJson, ApiQuery};
use crate::ratelimit::Outcome;
use crate::state::AppState;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use conclave_core::service::widget::{
    widget_message, HostIdentity, MessageFacts, Visitor, VisitorProfile, WidgetMessage,
};
use conclave_core::store::widget::WidgetKey;
use conclave_core::types::{DisplayName, Email, MessageText};
use conclave_core::widget::{IdentityMode, WidgetSessionId, WidgetStatus};
use conclave_core::ConversationId;
use identity::{token_user, IdentityBody, Proof};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The headers a widget page may send.
const ALLOWED_HEADERS: &str = "content-type, x-widget-key, x-widget-visitor, last-event-id";

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
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    if !is_widget_path(req.uri().path()) {
        return next.run(req).await;
    }
    // The client IP's widget bucket first: a refused call (an unknown origin or key) costs a
    // lookup too, and is counted like any other (WEB-4, RATE-1).
    let (parts, body) = req.into_parts();
    let ip = super::client_ip::of_request(&parts, &state);
    let mut req = Request::from_parts(parts, body);
    let layers = state.limiter.widget_ip_layers(ip);
    if !layers.is_empty() {
        if let Outcome::Denied {
            what,
            retry_after_secs,
            ..
        } = state.limiter.check(&layers).await
        {
            return ApiError::rate_limited(what, retry_after_secs).into_response();
        }
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
            meta: request_meta(parts, state),
            secret: header_text(&parts.headers, "x-widget-visitor").map(str::to_owned),
            last_event_id: header_text(&parts.headers, "last-event-id").map(str::to_owned),
            state: state.clone(),
        })
    }
}

impl WidgetCall {
    /// Charges the key's and the session's (when known) widget buckets (the IP's was charged
    /// at the gate).
    async fn charge(&self, session: Option<&str>) -> ApiResult<()> {
        let limiter = &self.state.limiter;
        let layers = limiter.widget_layers(self.key.id, session);
        if layers.is_empty() {
            return Ok(());
        }
        match limiter.check(&layers).await {
            Outcome::Allowed(_) => Ok(()),
            Outcome::Denied {
                what,
                retry_after_secs,
                ..
            } => Err(ApiError::rate_limited(what, retry_after_secs)),
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
/// answer), `delete` (`{message_id}` of a message deleted) and `status`
/// (`{conversation_id, status}`), each with an `id`; reconnecting with
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
    Ok(stream::open(&call, v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_visitor_api_is_a_widget_path() {
        assert!(is_widget_path("/api/v1/widget/chat"));
        assert!(!is_widget_path("/api/v1/widgets"));
    }
}
