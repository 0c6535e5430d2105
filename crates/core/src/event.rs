//! Events: what services announce after a mutation commits. The gateway delivers them to the
//! sockets allowed to see them; the fan-out carries them between nodes. `d` is the object
//! exactly as REST returns it.
//!
//! Each event carries its routing facts typed, set where it is made: its kind (the typed `t`),
//! its audience (which names the conversation, or the user), its control, and the org it
//! belongs to when the maker knows it. The gateway decides delivery from these alone, by
//! asking `policy::delivery`; it never reads `d`.
//!
//! Webhooks (`service::webhooks`) carry the events whose kind has a webhook name, on the node
//! that made them: each says what they receive as `data` ([`Hook`]). An event no client sees
//! and no gateway applies (a member's, which GATEWAY.md does not define) is for webhooks only
//! ([`Event::reaches_gateways`]).

use crate::ids::*;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::sync::Arc;

/// An event's payload, serialized once where the event is made (`Event::new`): every reader —
/// the fan-out and its frames, the webhook worker, the REST answer of a send — shares these
/// bytes instead of walking and serializing a JSON tree again. A reader that needs a field
/// parses only that field ([`Data::value`] for the whole tree, in tests and rare paths).
#[derive(Clone)]
pub struct Data(Arc<RawValue>);

impl Data {
    /// `d` as JSON (`null` if it cannot be serialized, which no model type does).
    pub fn of(d: impl Serialize) -> Self {
        let raw = serde_json::value::to_raw_value(&d).unwrap_or_else(|_| null());
        Self(Arc::from(raw))
    }

    /// The JSON text.
    #[must_use]
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// The JSON as a borrowed raw value (for embedding in a larger document).
    #[must_use]
    pub fn raw(&self) -> &RawValue {
        &self.0
    }

    /// The JSON as a tree.
    #[must_use]
    pub fn value(&self) -> serde_json::Value {
        serde_json::from_str(self.get()).unwrap_or(serde_json::Value::Null)
    }

    /// Reads the fields of `T` out of the JSON (`None` when it does not have them).
    #[must_use]
    pub fn read<'a, T: Deserialize<'a>>(&'a self) -> Option<T> {
        serde_json::from_str(self.get()).ok()
    }
}

fn null() -> Box<RawValue> {
    RawValue::from_string("null".to_owned()).unwrap_or_else(|_| unreachable!("null is JSON"))
}

impl std::fmt::Debug for Data {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.get())
    }
}

/// Equal when the JSON texts are (one serializer makes them, so equal values read alike).
impl PartialEq for Data {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl Serialize for Data {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Data {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Box::<RawValue>::deserialize(d).map(|raw| Self(Arc::from(raw)))
    }
}

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
    /// Data nodes cache about these (the `cache` module) changed in a way no other control says
    /// (a role, a setting, an account, a credential): every node forgets what it holds of them.
    /// No socket is touched.
    Stale { cached: Vec<Cached> },
    /// A widget key was revoked or changed (WEB-4): the support widget's visitor streams of
    /// that key on every node check it again and end when it no longer admits them (revoked,
    /// their page's origin no longer allowed, signed visitors now required). No socket is
    /// touched. `revoked`: the key is gone, its streams end without looking.
    WidgetKey { key: uuid::Uuid, revoked: bool },
    /// A node's view of a user's presence changed; gateways aggregate across nodes and tell
    /// users who share one of `conversations`.
    Presence {
        user: UserId,
        node: String,
        status: PresenceStatus,
        conversations: Vec<ConversationId>,
    },
}

/// What a [`Control`] makes stale in every node's cache (the `cache` module): everything cached
/// about one user (their account, credentials, 2FA, memberships, participations, teams), one
/// credential (a login session, or a bot's or key's secret, by the id its sockets carry), one
/// conversation (its settings and everyone's access to it), or one org (its settings and
/// everyone's standing in it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cached {
    User(UserId),
    Credential(SessionId),
    Conversation(ConversationId),
    Org(OrgId),
}

impl Control {
    /// What this control makes stale in a node's cache. Each control names at least what it
    /// revokes or changes; presence changes nothing cached.
    #[must_use]
    pub fn stale(&self) -> Vec<Cached> {
        match self {
            Self::Subscribe { user, .. }
            | Self::Unsubscribe { user, .. }
            | Self::RevokeUser { user, .. }
            | Self::OrgAccess { user, .. }
            | Self::RequireSecondFactor { user } => vec![Cached::User(*user)],
            Self::Drop { conversation } => vec![Cached::Conversation(*conversation)],
            Self::RevokeSession { session } => vec![Cached::Credential(*session)],
            Self::Stale { cached } => cached.clone(),
            Self::Presence { .. } | Self::WidgetKey { .. } => Vec::new(),
        }
    }
}

/// Presence of a user on one node, or across all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PresenceStatus {
    Offline,
    Idle,
    Online,
}

/// What an event is, typed: the gateway event name `t` parsed once, where the event is made
/// (or read off the wire). `policy::delivery` decides from it which scope reads the event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum EventKind {
    MessageCreate,
    MessageUpdate,
    MessageDelete,
    MessageStream,
    TypingStart,
    ReadMarkerUpdate,
    ConversationCreate,
    ConversationUpdate,
    ConversationDelete,
    ParticipantAdd,
    ParticipantRemove,
    PresenceUpdate,
    OrgAccessLost,
    OrgAccessRestored,
    /// `INBOX_UPDATE {conversation_id, org_id, status}`: a widget conversation of a support
    /// team was created, changed status or got a visitor's message (WEB-4), to each person who
    /// works that inbox — they are not its participants until they take it.
    InboxUpdate,
    /// `_MEMBER_ADDED`, `_MEMBER_REMOVED`, `_MEMBER_ROLE_CHANGED`: an org's membership changed.
    /// The gateway protocol has no such event (the `_` says no client sees it); webhooks carry
    /// them as `member.added|removed|role_changed`.
    MemberAdded,
    MemberRemoved,
    MemberRoleChanged,
    /// `_CONTROL`: a control-only event no client sees.
    Control,
    /// A name this build does not know: read as a message event.
    #[default]
    Other,
}

impl EventKind {
    const NAMES: [(&'static str, Self); 19] = [
        ("MESSAGE_CREATE", Self::MessageCreate),
        ("MESSAGE_UPDATE", Self::MessageUpdate),
        ("MESSAGE_DELETE", Self::MessageDelete),
        ("MESSAGE_STREAM", Self::MessageStream),
        ("TYPING_START", Self::TypingStart),
        ("READ_MARKER_UPDATE", Self::ReadMarkerUpdate),
        ("CONVERSATION_CREATE", Self::ConversationCreate),
        ("CONVERSATION_UPDATE", Self::ConversationUpdate),
        ("CONVERSATION_DELETE", Self::ConversationDelete),
        ("PARTICIPANT_ADD", Self::ParticipantAdd),
        ("PARTICIPANT_REMOVE", Self::ParticipantRemove),
        ("PRESENCE_UPDATE", Self::PresenceUpdate),
        ("ORG_ACCESS_LOST", Self::OrgAccessLost),
        ("ORG_ACCESS_RESTORED", Self::OrgAccessRestored),
        ("INBOX_UPDATE", Self::InboxUpdate),
        ("_MEMBER_ADDED", Self::MemberAdded),
        ("_MEMBER_REMOVED", Self::MemberRemoved),
        ("_MEMBER_ROLE_CHANGED", Self::MemberRoleChanged),
        ("_CONTROL", Self::Control),
    ];

    /// The kind of the event named `t`.
    #[must_use]
    pub fn of(t: &str) -> Self {
        Self::NAMES
            .iter()
            .find(|(name, _)| *name == t)
            .map_or(Self::Other, |(_, kind)| *kind)
    }

    /// Every kind with a name.
    pub fn named() -> impl Iterator<Item = Self> {
        Self::NAMES.iter().map(|(_, kind)| *kind)
    }

    /// The gateway name of this kind (`None` for `Other`).
    #[must_use]
    pub fn name(self) -> Option<&'static str> {
        Self::NAMES
            .iter()
            .find(|(_, kind)| *kind == self)
            .map(|(name, _)| *name)
    }
}

/// What webhooks receive of an event whose kind they carry (not on the wire: webhooks are
/// queued on the node that made the event).
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Hook {
    /// `d`, which is the REST object.
    #[default]
    D,
    /// This REST object, where the gateway's `d` is a smaller shape (`PARTICIPANT_ADD|REMOVE`:
    /// `{conversation_id,user_id,role}` there, the participant object for webhooks).
    Object(Data),
    /// Nothing: the gateway's repeat of something webhooks heard of once (`CONVERSATION_CREATE`
    /// to each further participant of a conversation).
    Skip,
}

/// One event. `t` is the gateway event name (`MESSAGE_CREATE`, …); control-only events use
/// `_CONTROL`, and events for webhooks only another name starting with `_`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub t: String,
    pub audience: Audience,
    pub d: Data,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control: Option<Control>,
    /// `t`, typed (not on the wire: read back from `t`).
    #[serde(skip)]
    pub kind: EventKind,
    /// The org the event belongs to, when its maker knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<OrgId>,
    /// What webhooks receive of it, when its kind is one they carry.
    #[serde(skip)]
    pub hook: Hook,
}

impl Event {
    /// An event named `t` for `audience`.
    pub fn new(t: &str, audience: Audience, d: impl Serialize) -> Self {
        Self::with_data(t, audience, Data::of(d))
    }

    /// An event named `t` for `audience` carrying `d` as it is (already serialized).
    #[must_use]
    pub fn with_data(t: &str, audience: Audience, d: Data) -> Self {
        Self {
            t: t.into(),
            audience,
            d,
            control: None,
            kind: EventKind::of(t),
            org: None,
            hook: Hook::D,
        }
    }

    /// `t` (a `_MEMBER_*` name) about `member`, for the webhooks of its org only: no client
    /// receives it (GATEWAY.md defines no member event).
    pub fn member(t: &str, member: &crate::model::Member) -> Self {
        Self::new(t, Audience::Nobody, member).in_org(member.org_id)
    }

    /// An event for the conversation's participants.
    pub fn conversation(t: &str, conv: ConversationId, d: impl Serialize) -> Self {
        Self::new(t, Audience::Conversation(conv), d)
    }

    /// An event for one user's sessions.
    pub fn user(t: &str, user: UserId, d: impl Serialize) -> Self {
        Self::new(t, Audience::User(user), d)
    }

    /// An event for the sessions of one user that receive `conv` (a read marker).
    pub fn reader(t: &str, user: UserId, conv: ConversationId, d: impl Serialize) -> Self {
        let audience = Audience::Reader {
            user,
            conversation: conv,
        };
        Self::new(t, audience, d)
    }

    /// A control-only event no client sees.
    #[must_use]
    pub fn control(control: Control) -> Self {
        Self::new("_CONTROL", Audience::Nobody, serde_json::Value::Null).with_control(control)
    }

    /// `ORG_ACCESS_LOST {org_id, reason}` to the user's sockets, which stop receiving the org's
    /// events.
    #[must_use]
    pub fn org_access_lost(user: UserId, org: OrgId, reason: &str) -> Self {
        let d = serde_json::json!({ "org_id": org, "reason": reason });
        Self::org_access("ORG_ACCESS_LOST", user, org, d, false)
    }

    /// `ORG_ACCESS_RESTORED {org_id}`: the user's sockets receive the org's events again.
    #[must_use]
    pub fn org_access_restored(user: UserId, org: OrgId) -> Self {
        let d = serde_json::json!({ "org_id": org });
        Self::org_access("ORG_ACCESS_RESTORED", user, org, d, true)
    }

    /// Event `t` telling `user`'s sockets that their access to `org` was lost or restored.
    fn org_access(t: &str, user: UserId, org: OrgId, d: serde_json::Value, restored: bool) -> Self {
        Self::user(t, user, d).with_control(Control::OrgAccess {
            user,
            org,
            restored,
        })
    }

    /// Names the org the event belongs to (a conversation's), so delivery can judge the event
    /// by its own org.
    #[must_use]
    pub fn in_org(mut self, org: OrgId) -> Self {
        self.org = Some(org);
        self
    }

    /// Webhooks receive `object` (the REST object) instead of `d`.
    #[must_use]
    pub fn hook_with(mut self, object: impl Serialize) -> Self {
        self.hook = Hook::Object(Data::of(object));
        self
    }

    /// Webhooks do not receive this one: the gateway's repeat of something they heard of once.
    #[must_use]
    pub fn gateway_only(mut self) -> Self {
        self.hook = Hook::Skip;
        self
    }

    /// What webhooks receive as `data` (`None`: nothing of this event).
    #[must_use]
    pub fn hook_data(&self) -> Option<&Data> {
        match &self.hook {
            Hook::D => Some(&self.d),
            Hook::Object(object) => Some(object),
            Hook::Skip => None,
        }
    }

    /// Whether any gateway needs the event: one no client receives and without a control (a
    /// webhook-only event) does not travel the fan-out.
    #[must_use]
    pub fn reaches_gateways(&self) -> bool {
        self.audience != Audience::Nobody || self.control.is_some()
    }

    /// Adds a control; one that names an org (subscribe, org access) also sets the event's org.
    #[must_use]
    pub fn with_control(mut self, control: Control) -> Self {
        if let Control::Subscribe { org, .. } | Control::OrgAccess { org, .. } = &control {
            self.org = Some(*org);
        }
        self.control = Some(control);
        self
    }

    /// The conversation the event is about, when its audience names one.
    #[must_use]
    pub fn conversation_id(&self) -> Option<ConversationId> {
        self.audience.conversation()
    }
}

impl Audience {
    /// The one conversation this audience is about, if any.
    #[must_use]
    pub fn conversation(&self) -> Option<ConversationId> {
        match self {
            Self::Conversation(c)
            | Self::Reader {
                conversation: c, ..
            } => Some(*c),
            Self::User(_) | Self::Peers { .. } | Self::Nobody => None,
        }
    }
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
    fn kinds_are_parsed_once_and_name_themselves() {
        for (name, kind) in EventKind::NAMES {
            assert_eq!(EventKind::of(name), kind);
            assert_eq!(kind.name(), Some(name));
        }
        assert_eq!(EventKind::of("SOMETHING_NEW"), EventKind::Other);
        assert_eq!(EventKind::Other.name(), None);
        let e = Event::reader(
            "READ_MARKER_UPDATE",
            UserId::new(),
            ConversationId::new(),
            1,
        );
        assert_eq!(e.kind, EventKind::ReadMarkerUpdate);
        assert!(e.conversation_id().is_some() && e.org.is_none());
        let org = OrgId::new();
        let lost = Event::org_access_lost(UserId::new(), org, "mfa_setup_required");
        assert_eq!((lost.kind, lost.org), (EventKind::OrgAccessLost, Some(org)));
        let control = Event::control(Control::Drop {
            conversation: ConversationId::new(),
        });
        assert_eq!((control.kind, control.org), (EventKind::Control, None));
        assert!(
            control.reaches_gateways(),
            "a control is applied by every gateway"
        );
    }

    #[test]
    fn member_events_are_for_their_orgs_webhooks_only() {
        let member = crate::model::Member {
            org_id: OrgId::new(),
            user: crate::model::UserSummary {
                id: UserId::new(),
                username: "bob".into(),
                display_name: None,
                kind: crate::types::UserKind::User,
            },
            role: crate::types::OrgRole::Admin,
            joined_at: chrono::DateTime::UNIX_EPOCH,
        };
        let e = Event::member("_MEMBER_ROLE_CHANGED", &member);
        assert_eq!(e.kind, EventKind::MemberRoleChanged);
        assert_eq!((e.org, e.conversation_id()), (Some(member.org_id), None));
        assert_eq!(e.audience, Audience::Nobody);
        assert!(!e.reaches_gateways());
        assert_eq!(e.hook_data(), Some(&Data::of(&member)));
        let d = e.d.value();
        assert!(d["role"] == "admin" && d["user"]["username"] == "bob");
    }

    #[test]
    fn data_is_serialized_once_and_embedded_as_it_is() {
        let summary = crate::model::UserSummary {
            id: UserId::new(),
            username: "bob \"the\" builder".into(),
            display_name: None,
            kind: crate::types::UserKind::User,
        };
        let d = Data::of(&summary);
        // The same bytes as the REST object (struct order, not a tree's sorted keys).
        assert_eq!(d.get(), serde_json::to_string(&summary).unwrap());
        let e = Event::with_data("USER_UPDATE", Audience::User(summary.id), d.clone());
        assert_eq!(e.d, d);
        assert_eq!(e.hook_data(), Some(&d), "webhooks get the same bytes");
        // Embedded in a larger document, the text is copied as it is.
        #[derive(Serialize)]
        struct Outer<'a> {
            d: &'a Data,
        }
        let text = serde_json::to_string(&Outer { d: &d }).unwrap();
        assert_eq!(text, format!(r#"{{"d":{}}}"#, d.get()));
        // Read back: the text kept, the tree and single fields on demand.
        let back: Data = serde_json::from_str(&format!(" {} ", d.get())).unwrap();
        assert_eq!(back, d);
        assert_eq!(back.value()["username"], "bob \"the\" builder");
        #[derive(Deserialize)]
        struct Name<'a> {
            #[serde(borrow)]
            username: std::borrow::Cow<'a, str>,
        }
        assert_eq!(
            back.read::<Name<'_>>().unwrap().username,
            "bob \"the\" builder"
        );
        assert!(back.read::<Audience>().is_none(), "not an audience");
        assert_eq!(
            Data::of(f64::NAN).get(),
            "null",
            "a number JSON cannot hold"
        );
    }

    #[test]
    fn webhooks_receive_d_another_object_or_nothing() {
        let conv = ConversationId::new();
        let plain = Event::conversation("MESSAGE_CREATE", conv, serde_json::json!({"id": 1}));
        assert_eq!(plain.hook_data(), Some(&plain.d));
        assert!(plain.reaches_gateways());
        let object = Event::conversation("PARTICIPANT_ADD", conv, serde_json::json!({"a": 1}))
            .hook_with(serde_json::json!({"b": 2}));
        assert_eq!(
            object.hook_data().map(Data::value),
            Some(serde_json::json!({"b": 2}))
        );
        assert_eq!(
            object.d.value(),
            serde_json::json!({"a": 1}),
            "the gateway's d is kept"
        );
        let repeat = Event::user("CONVERSATION_CREATE", UserId::new(), 1).gateway_only();
        assert_eq!(repeat.hook_data(), None);
    }
}
