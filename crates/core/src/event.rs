//! Events: what services announce after a mutation commits. The gateway delivers them to the
//! sockets allowed to see them; the fan-out carries them between nodes. `d` is the object
//! exactly as REST returns it.

use crate::ids::*;
use serde::{Deserialize, Serialize};

/// Who may receive an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    /// Every session of every current participant.
    Conversation(ConversationId),
    /// Every session of one user.
    User(UserId),
    /// Users who share any of these conversations with `user` (presence).
    Peers {
        user: UserId,
        conversations: Vec<ConversationId>,
    },
    /// No client: a control event only.
    Nobody,
}

/// State changes that gateways apply before (or instead of) delivering, so that authorization
/// on open sockets follows the database at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Control {
    /// The user now receives the conversation's events (applied before delivery).
    Subscribe {
        user: UserId,
        conversation: ConversationId,
    },
    /// The user stops receiving them (applied after delivery, so the removal is their last event).
    Unsubscribe {
        user: UserId,
        conversation: ConversationId,
    },
    /// Nobody receives them any more (applied after delivery).
    Drop { conversation: ConversationId },
    /// Close sockets authenticated with this login session (4004).
    RevokeSession { session: SessionId },
    /// Close every socket of the user except those of `except` (4004).
    RevokeUser {
        user: UserId,
        except: Option<SessionId>,
    },
    /// A node's view of a user's presence changed; gateways aggregate across nodes and tell
    /// users who share one of `conversations`.
    Presence {
        user: UserId,
        node: String,
        status: PresenceStatus,
        conversations: Vec<ConversationId>,
    },
}

/// Presence of a user on one node, or across all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PresenceStatus {
    Offline,
    Idle,
    Online,
}

/// One event. `t` is the gateway event name (`MESSAGE_CREATE`, …); control-only events use `_CONTROL`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub t: String,
    pub audience: Audience,
    pub d: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control: Option<Control>,
}

impl Event {
    /// An event for the conversation's participants.
    pub fn conversation(t: &str, conv: ConversationId, d: impl Serialize) -> Self {
        Self {
            t: t.into(),
            audience: Audience::Conversation(conv),
            d: to_value(d),
            control: None,
        }
    }

    /// An event for one user's sessions.
    pub fn user(t: &str, user: UserId, d: impl Serialize) -> Self {
        Self {
            t: t.into(),
            audience: Audience::User(user),
            d: to_value(d),
            control: None,
        }
    }

    /// A control-only event no client sees.
    #[must_use]
    pub fn control(control: Control) -> Self {
        Self {
            t: "_CONTROL".into(),
            audience: Audience::Nobody,
            d: serde_json::Value::Null,
            control: Some(control),
        }
    }

    #[must_use]
    pub fn with_control(mut self, control: Control) -> Self {
        self.control = Some(control);
        self
    }
}

fn to_value(d: impl Serialize) -> serde_json::Value {
    serde_json::to_value(d).unwrap_or(serde_json::Value::Null)
}

/// Where services hand events after commit. Implementations must not block and must keep the
/// order of calls from one node.
pub trait EventSink: Send + Sync + 'static {
    fn publish(&self, event: Event);
}

/// A sink that keeps events in memory, in order (tests and tools).
#[derive(Debug, Default)]
pub struct RecordingSink {
    pub events: std::sync::Mutex<Vec<Event>>,
}

impl EventSink for RecordingSink {
    fn publish(&self, event: Event) {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(event);
    }
}
