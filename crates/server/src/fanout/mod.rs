//! `FanOut`: how events committed on any node reach the gateway hub of every node, in one
//! order, and how a resuming session gets back what it missed. Two implementations: in-process
//! (embedded default) and NATS JetStream (cluster).

pub mod local;
pub mod nats;
pub mod retained;

use async_trait::async_trait;
use conclave_core::event::{Audience, Control, Data, Event, EventKind};
use conclave_core::OrgId;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio::sync::mpsc;

/// An event as it travels: `d` is the event's payload as it was serialized where the event was
/// made, and its bytes are shared by every recipient. The routing facts stay typed beside it
/// (`kind` is read back from `t`, so the wire carries the name only).
#[derive(Debug, Serialize, Deserialize)]
#[serde(from = "WireFields")]
pub struct WireEvent {
    pub t: String,
    pub audience: Audience,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control: Option<Control>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<OrgId>,
    pub d: Data,
    #[serde(skip)]
    pub kind: EventKind,
}

/// The fields of a `WireEvent` on the wire.
#[derive(Deserialize)]
struct WireFields {
    t: String,
    audience: Audience,
    #[serde(default)]
    control: Option<Control>,
    #[serde(default)]
    org: Option<OrgId>,
    d: Data,
}

impl From<WireFields> for WireEvent {
    fn from(w: WireFields) -> Self {
        Self {
            kind: EventKind::of(&w.t),
            t: w.t,
            audience: w.audience,
            control: w.control,
            org: w.org,
            d: w.d,
        }
    }
}

impl WireEvent {
    /// A core event as it travels (its payload shared, not copied).
    #[must_use]
    pub fn from_event(event: &Event) -> Self {
        Self {
            t: event.t.clone(),
            audience: event.audience.clone(),
            control: event.control.clone(),
            org: event.org,
            d: event.d.clone(),
            kind: event.kind,
        }
    }
}

/// An event with its position in the fan-out stream (strictly increasing, one order for every
/// node).
#[derive(Debug, Clone)]
pub struct Delivered {
    pub position: u64,
    pub event: Arc<WireEvent>,
}

#[derive(Debug, thiserror::Error)]
pub enum FanOutError {
    #[error("fan-out unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait FanOut: Send + Sync + 'static {
    /// Hands a committed event over for delivery to every node. Never blocks; the order of
    /// calls on one node is the order in which every node sees the events.
    fn publish(&self, event: &Event);
    /// The live stream of every event, for this node's hub. Called once.
    fn take_stream(&self) -> Option<mpsc::UnboundedReceiver<Delivered>>;
    /// Retained events with `after < position <= upto`, in order; `None` when some of them are
    /// no longer retained (older than the resume window).
    async fn replay(&self, after: u64, upto: u64) -> Result<Option<Vec<Delivered>>, FanOutError>;
    /// Names the position space: positions from another epoch mean nothing here.
    fn epoch(&self) -> String;
    /// The position of the newest event this node has published and knows the position of
    /// (0 when the transport cannot tell). Every event at or below it was published after its
    /// change committed, so a snapshot read from the store afterwards already holds it: a
    /// connection starting now need not be sent it again (GATEWAY: nothing before READY).
    fn published(&self) -> u64 {
        0
    }
    /// Waits until every event published so far has left this node.
    async fn flush(&self);
    /// Whether the transport is reachable (readiness).
    async fn ready(&self) -> bool;
}
