//! The WebSocket gateway at `/gateway` (GATEWAY.md, MSG-4/5, RATE-3, CORE-10), a layer beside
//! HTTP: `http::gateway` checks the request, `socket` does the WebSocket handshake and takes the
//! socket over. Shaped like mini-redis: a typed frame codec (`protocol`), one task and one
//! `select!` loop per connection (`connection`), a hub task that routes the fan-out stream
//! (`hub`) and writes every connection's frames through its `outbox`, broadcast shutdown.

pub mod connection;
pub mod hub;
mod identify;
pub mod outbox;
pub mod pace;
pub mod protocol;
pub mod socket;
mod start;

use crate::config::GatewayConfig;
use crate::fanout::FanOut;
use conclave_core::service::Services;
use hub::ConnId;
use socket::{Socket, SocketLimits};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Who may connect: origins for browsers, the minimum client version, the access-token gate.
pub struct ClientPolicy {
    pub allowed_origins: Vec<String>,
    pub public_url: String,
    pub min_client_version: Option<semver::Version>,
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
    /// The support widget's visitor streams on this node, fed by the hub (WEB-4).
    pub widget_streams: Arc<crate::widget_streams::WidgetStreams>,
    /// How far the hub is behind: message sends wait for it (`pace`).
    pub pace: Arc<pace::Pace>,
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
            coalesce: config.write_coalesce,
        };
        let cache = services.clone();
        let widget_streams = Arc::new(crate::widget_streams::WidgetStreams::default());
        let tapped = widget_streams.clone();
        let pace = Arc::new(pace::Pace::new(fanout.clone()));
        let hub = hub::Hub::new(node, limits, Arc::new(move |e| publisher.publish(&e)))
            .invalidating(Arc::new(move |control| cache.invalidate(control)))
            .tapping(Arc::new(move |ev| tapped.tap(ev)))
            .pacing(pace.clone());
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
            widget_streams,
            pace,
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

    /// Whether the node is shutting down (no new connections).
    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }

    /// Whether a browser page from `origin` may open the gateway: our own origin or a listed one.
    #[must_use]
    pub fn origin_allowed(&self, origin: &str) -> bool {
        let origin = origin.trim_end_matches('/');
        origin == self.own_origin
            || self
                .allowed_origins
                .iter()
                .any(|o| o.trim_end_matches('/') == origin)
    }
}

impl Gateway {
    /// Takes a connection slot for the client address `key` (none without an address);
    /// `None` when the address has all it may have.
    pub fn ip_slot(self: &Arc<Self>, key: Option<String>) -> Option<IpSlot> {
        if let Some(key) = &key {
            let mut map = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
            let n = map.entry(key.clone()).or_insert(0);
            if self.config.limits_on && *n >= self.config.max_connections_per_ip {
                return None;
            }
            *n += 1;
        }
        Some(IpSlot {
            gateway: self.clone(),
            key,
        })
    }

    /// Accepts a connection holding `slot`; `None` once shutdown has begun.
    pub fn admit(&self, slot: IpSlot) -> Option<Admission> {
        let live = self
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()?;
        Some(Admission {
            conn: self.next_conn.fetch_add(1, Ordering::Relaxed),
            slot,
            live,
            shutdown: self.shutdown.subscribe(),
        })
    }

    /// How this node's sockets are set up: the codec refuses only the absurd (frames are
    /// checked against our own limit, close 4010); the hub drops a client that leaves
    /// `queue_frames` frames unread.
    #[must_use]
    pub fn socket_limits(&self) -> SocketLimits {
        SocketLimits {
            frame_max_bytes: self.config.frame_max_bytes * 4,
            queue_frames: self.config.queue_frames,
        }
    }

    /// Runs an upgraded socket to its end: the protocol, from HELLO on.
    pub async fn serve(
        self: Arc<Self>,
        socket: Box<Socket>,
        ctx: UpgradeContext,
        admission: Admission,
    ) {
        let Admission {
            conn,
            slot,
            live,
            shutdown,
        } = admission;
        connection::run(self, socket, conn, ctx, shutdown).await;
        drop(slot);
        drop(live);
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

/// A connection the node accepted: its id, its per-IP slot, and what keeps shutdown waiting
/// for it.
pub struct Admission {
    conn: ConnId,
    slot: IpSlot,
    live: mpsc::Sender<()>,
    shutdown: watch::Receiver<bool>,
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
