//! Events: what services announce after a mutation commits. The gateway delivers them to the
//! sockets allowed to see them; the fan-out carries them between nodes. `d` is the object
//! exactly as REST returns it.

use crate::credential::Scope;
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
    /// The sessions of one user that receive `conversation` (their read marker in it).
    Reader {
        user: UserId,
        conversation: ConversationId,
    },
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
    /// The user now receives the conversation's events (applied before delivery). `org` is
    /// the conversation's org; `locked` says the user may not read that org now (AUTH-4a: it
    /// requires 2FA they lack), so the subscription is kept but nothing of it is delivered
    /// until `OrgAccess { restored: true }`.
    Subscribe {
        user: UserId,
        conversation: ConversationId,
        org: OrgId,
        locked: bool,
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
    /// The user lost (or regained) the right to read `org` (AUTH-4a, org-enforced 2FA): no
    /// event of the org's conversations reaches their sockets until it is restored. Sockets
    /// keep their subscriptions, so a restored socket receives the same conversations again.
    OrgAccess {
        user: UserId,
        org: OrgId,
        restored: bool,
    },
    /// The user must turn on 2FA before using any credential (the per-user requirement,
    /// AUTH-4a): close every socket of theirs (4014).
    RequireSecondFactor { user: UserId },
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

    /// An event for the sessions of one user that receive `conv` (a read marker).
    pub fn reader(t: &str, user: UserId, conv: ConversationId, d: impl Serialize) -> Self {
        Self {
            t: t.into(),
            audience: Audience::Reader {
                user,
                conversation: conv,
            },
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

    /// `ORG_ACCESS_LOST {org_id, reason}` to the user's sockets, which stop receiving the org's
    /// events.
    #[must_use]
    pub fn org_access_lost(user: UserId, org: OrgId, reason: &str) -> Self {
        Self::user(
            "ORG_ACCESS_LOST",
            user,
            serde_json::json!({ "org_id": org, "reason": reason }),
        )
        .with_control(Control::OrgAccess {
            user,
            org,
            restored: false,
        })
    }

    /// `ORG_ACCESS_RESTORED {org_id}`: the user's sockets receive the org's events again.
    #[must_use]
    pub fn org_access_restored(user: UserId, org: OrgId) -> Self {
        Self::user(
            "ORG_ACCESS_RESTORED",
            user,
            serde_json::json!({ "org_id": org }),
        )
        .with_control(Control::OrgAccess {
            user,
            org,
            restored: true,
        })
    }

    #[must_use]
    pub fn with_control(mut self, control: Control) -> Self {
        self.control = Some(control);
        self
    }
}

/// The scope an API key needs to receive an event named `t` on the gateway: the scope that
/// reads the same thing over REST (AZ-5a). Events about access itself need none; an unknown
/// name needs `messages:read`, the scope every key socket has.
#[must_use]
pub fn scope_to_read(t: &str) -> Option<Scope> {
    match t {
        "ORG_ACCESS_LOST" | "ORG_ACCESS_RESTORED" => None,
        "PRESENCE_UPDATE" => Some(Scope::ConversationsRead),
        _ if t.starts_with("CONVERSATION_") || t.starts_with("PARTICIPANT_") => {
            Some(Scope::ConversationsRead)
        }
        // MESSAGE_*, MESSAGE_STREAM, TYPING_START, READ_MARKER_UPDATE.
        _ => Some(Scope::MessagesRead),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_event_needs_the_scope_that_reads_it_over_rest() {
        for t in [
            "MESSAGE_CREATE",
            "MESSAGE_UPDATE",
            "MESSAGE_DELETE",
            "MESSAGE_STREAM",
            "TYPING_START",
            "READ_MARKER_UPDATE",
        ] {
            assert_eq!(scope_to_read(t), Some(Scope::MessagesRead), "{t}");
        }
        for t in [
            "CONVERSATION_CREATE",
            "CONVERSATION_UPDATE",
            "CONVERSATION_DELETE",
            "PARTICIPANT_ADD",
            "PARTICIPANT_REMOVE",
            "PRESENCE_UPDATE",
        ] {
            assert_eq!(scope_to_read(t), Some(Scope::ConversationsRead), "{t}");
        }
        assert_eq!(scope_to_read("ORG_ACCESS_LOST"), None);
        assert_eq!(scope_to_read("ORG_ACCESS_RESTORED"), None);
    }
}
