//! `GET /gateway?v=1`: the HTTP side of the gateway. Checks the protocol version, that the node
//! is not shutting down, the browser's origin and the per-address connection cap, collects what
//! IDENTIFY may need from the upgrade request (the session cookie, the access-token header, the
//! client address), and upgrades. From then on the socket belongs to the gateway module, which
//! owns the transport and the protocol.

use crate::gateway::socket::Handshake;
use crate::gateway::UpgradeContext;
use crate::http::client_ip;
use crate::http::error::ApiError;
use crate::http::extract::session_cookie;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(serde::Deserialize)]
struct Version {
    v: Option<String>,
}

fn shutting_down() -> Response {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "shutting_down",
        "this node is shutting down; reconnect",
    )
    .into_response()
}

/// `GET /gateway?v=1`: checks version, origin and per-IP caps, then upgrades.
pub async fn upgrade(State(state): State<AppState>, req: Request) -> Response {
    let gw = state.gateway.clone();
    let (mut parts, _) = req.into_parts();
    let query = parts.uri.query().unwrap_or_default();
    let v = serde_urlencoded::from_str::<Version>(query)
        .ok()
        .and_then(|q| q.v);
    if v.as_deref() != Some("1") {
        return ApiError::bad_request(
            "unsupported_version",
            "the gateway speaks protocol version 1: use ?v=1",
            "v",
        )
        .into_response();
    }
    if gw.is_closing() {
        return shutting_down();
    }
    let origin = parts
        .headers
        .get("origin")
        .and_then(|o| o.to_str().ok())
        .map(str::to_owned);
    if let Some(o) = &origin {
        if !gw.origin_allowed(o) {
            return ApiError::forbidden(
                "origin_not_allowed",
                "this origin may not open the gateway",
            )
            .into_response();
        }
    }
    let cookie_token = origin
        .as_ref()
        .and_then(|_| session_cookie(&parts.headers, &state))
        .map(str::to_owned);
    let access_header = parts
        .headers
        .get("x-api-access-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let ip = client_ip::of_request(&parts, &state);
    let Some(slot) = gw.ip_slot(ip.map(crate::ratelimit::ip_key)) else {
        return ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_connections",
            "too many gateway connections from this address",
        )
        .with_retry_after(10)
        .into_response();
    };
    let Some(handshake) = Handshake::of(&mut parts) else {
        return ApiError::bad_request(
            "not_a_websocket",
            "this endpoint needs a WebSocket upgrade",
            "",
        )
        .into_response();
    };
    let Some(admission) = gw.admit(slot) else {
        return shutting_down();
    };
    let ctx = UpgradeContext {
        ip,
        cookie_token,
        access_header,
    };
    let limits = gw.socket_limits();
    handshake.accept(limits, move |socket| gw.serve(socket, ctx, admission))
}
