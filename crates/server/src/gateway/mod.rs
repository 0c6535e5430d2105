//! The WebSocket gateway at `/gateway` (GATEWAY.md, MSG-4/5, RATE-3, CORE-10). Shaped like
//! mini-redis: a typed frame codec (`protocol`), one task and one `select!` loop per connection
//! (`connection`), a hub task that routes the fan-out stream (`hub`), broadcast shutdown.

pub mod connection;
pub mod hub;
pub mod protocol;

use crate::fanout::FanOut;
use crate::http::error::ApiError;
use crate::http::extract::{client_ip, session_cookie};
use crate::state::AppState;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use conclave_core::service::Services;
use secrecy::SecretString;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Gateway limits and timings (reported in capabilities where clients need them).
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub heartbeat_interval: Duration,
    pub identify_timeout: Duration,
    pub resume_window: Duration,
    pub frame_max_bytes: usize,
    /// Frames a connection may send per minute (close 4008 beyond).
    pub frames_per_minute: u32,
    pub max_connections_per_user: usize,
    pub max_connections_per_ip: usize,
    /// Frames queued for a slow client before it is disconnected.
    pub queue_frames: usize,
    /// `false` when `CONCLAVE_RATE_LIMITS=off`: frame and connection caps are lifted.
    pub limits_on: bool,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_secs(30),
            identify_timeout: Duration::from_secs(10),
            resume_window: Duration::from_secs(300),
            frame_max_bytes: 64 * 1024,
            frames_per_minute: 120,
            max_connections_per_user: 10,
            max_connections_per_ip: 200,
            queue_frames: 1024,
            limits_on: true,
        }
    }
}

/// Who may connect: origins for browsers, the minimum client version, the access-token gate.
pub struct ClientPolicy {
    pub allowed_origins: Vec<String>,
    pub public_url: String,
    pub min_client_version: Option<semver::Version>,
    pub access_token: Option<SecretString>,
}

/// Everything connections share.
pub struct Gateway {
    pub config: GatewayConfig,
    pub services: Services,
    pub fanout: Arc<dyn FanOut>,
    pub hub: mpsc::Sender<hub::Command>,
    next_conn: AtomicU64,
    /// Open sockets per client address as the limits key it (`ratelimit::ip_key`: IPv6 by /64).
    per_ip: Mutex<HashMap<String, usize>>,
    shutdown: watch::Sender<bool>,
    closing: AtomicBool,
    /// Each connection holds a clone; shutdown waits until all are gone.
    live: Mutex<Option<mpsc::Sender<()>>>,
    live_rx: tokio::sync::Mutex<mpsc::Receiver<()>>,
    pub allowed_origins: Vec<String>,
    pub own_origin: String,
    pub min_client_version: Option<semver::Version>,
    pub access_token: Option<SecretString>,
}

impl Gateway {
    /// Starts the hub on this node's fan-out stream.
    pub fn start(
        config: GatewayConfig,
        services: Services,
        fanout: Arc<dyn FanOut>,
        node: String,
        clients: ClientPolicy,
    ) -> Arc<Self> {
        let (hub_tx, hub_rx) = mpsc::channel(4096);
        let stream = fanout
            .take_stream()
            .unwrap_or_else(|| mpsc::unbounded_channel().1);
        let publisher = fanout.clone();
        let limits = hub::HubLimits {
            max_connections_per_user: if config.limits_on {
                config.max_connections_per_user
            } else {
                usize::MAX
            },
            queue_frames: config.queue_frames,
            max_unacked: 100_000,
            max_buffered: 100_000,
        };
        let hub = hub::Hub::new(node, limits, Arc::new(move |e| publisher.publish(e)));
        tokio::spawn(hub.run(hub_rx, stream));
        let (shutdown, _) = watch::channel(false);
        let (live_tx, live_rx) = mpsc::channel(1);
        Arc::new(Self {
            config,
            services,
            fanout,
            hub: hub_tx,
            next_conn: AtomicU64::new(1),
            per_ip: Mutex::new(HashMap::new()),
            shutdown,
            closing: AtomicBool::new(false),
            live: Mutex::new(Some(live_tx)),
            live_rx: tokio::sync::Mutex::new(live_rx),
            own_origin: origin_of(&clients.public_url),
            allowed_origins: clients.allowed_origins,
            min_client_version: clients.min_client_version,
            access_token: clients.access_token,
        })
    }

    /// CORE-10: tells every client to reconnect (their sessions are saved for RESUME on any
    /// node), and waits for the connections to finish, at most `grace`.
    pub async fn shutdown(&self, grace: Duration) {
        self.closing.store(true, Ordering::SeqCst);
        let _ = self.shutdown.send(true);
        self.live.lock().unwrap_or_else(|e| e.into_inner()).take();
        let mut rx = self.live_rx.lock().await;
        let _ = tokio::time::timeout(grace, rx.recv()).await;
    }

    fn origin_allowed(&self, origin: &str) -> bool {
        let origin = origin.trim_end_matches('/');
        origin == self.own_origin
            || self
                .allowed_origins
                .iter()
                .any(|o| o.trim_end_matches('/') == origin)
    }
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let host = rest.split('/').next().unwrap_or_default();
    format!("{scheme}://{host}")
}

/// Holds a per-IP connection slot until dropped.
pub struct IpSlot {
    gateway: Arc<Gateway>,
    key: Option<String>,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        if let Some(key) = &self.key {
            let mut map = self
                .gateway
                .per_ip
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Some(n) = map.get_mut(key) {
                *n -= 1;
                if *n == 0 {
                    map.remove(key);
                }
            }
        }
    }
}

/// What the upgrade request told us, for IDENTIFY.
pub struct UpgradeContext {
    pub ip: Option<IpAddr>,
    /// The session cookie, only when the request's Origin is allowed (browsers).
    pub cookie_token: Option<String>,
    /// The upgrade request's `X-API-Access-Token` (AUTH-9; judged when IDENTIFY or RESUME
    /// carries no `access_token`).
    pub access_header: Option<String>,
}

#[derive(serde::Deserialize)]
struct Version {
    v: Option<String>,
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
    if gw.closing.load(Ordering::SeqCst) {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "this node is shutting down; reconnect",
        )
        .into_response();
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
    let access_header = (parts.headers.get("x-api-access-token"))
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let ip = client_ip(&parts, &state);
    let key = ip.map(crate::ratelimit::ip_key);
    if let Some(key) = &key {
        let mut map = gw.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(key.clone()).or_insert(0);
        if gw.config.limits_on && *n >= gw.config.max_connections_per_ip {
            drop(map);
            let mut e = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_connections",
                "too many gateway connections from this address",
            );
            e.retry_after = Some(10);
            return e.into_response();
        }
        *n += 1;
    }
    let slot = IpSlot {
        gateway: gw.clone(),
        key,
    };
    let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &state).await {
        Ok(ws) => ws,
        Err(_) => {
            return ApiError::bad_request(
                "not_a_websocket",
                "this endpoint needs a WebSocket upgrade",
                "",
            )
            .into_response()
        }
    };
    let live = gw.live.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let Some(live) = live else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "this node is shutting down; reconnect",
        )
        .into_response();
    };
    let conn = gw.next_conn.fetch_add(1, Ordering::Relaxed);
    let ctx = UpgradeContext {
        ip,
        cookie_token,
        access_header,
    };
    let shutdown = gw.shutdown.subscribe();
    // Frames are checked against our own limit (close 4010); the transport only refuses the absurd.
    ws.max_message_size(gw.config.frame_max_bytes * 4)
        .max_frame_size(gw.config.frame_max_bytes * 4)
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .on_upgrade(move |socket| async move {
            connection::run(gw, socket, conn, ctx, shutdown).await;
            drop(slot);
            drop(live);
        })
}
