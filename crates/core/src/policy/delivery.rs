//! Who may receive a gateway event (AZ-5, AZ-5a, AUTH-4a). The hub asks these for every socket
//! an event concerns; they decide from the event's typed routing facts (kind, conversation,
//! org) and the socket's credential, never from the payload. The credential's reach is its
//! own rule (`Credential::covers_org`, `covers_conversation`, `allows`), asked here, not copied.

use crate::credential::{Credential, Scope};
use crate::event::EventKind;
use crate::ids::{ConversationId, OrgId};
use crate::types::{Visibility, VisibilityScope};
use std::collections::HashSet;

/// The scope an API key needs to receive an event of `kind` on the gateway: the scope that
/// reads the same thing over REST (AZ-5a). Events about access itself need none; an unknown
/// kind needs `messages:read`, the scope every key socket has.
#[must_use]
pub const fn scope_to_read(kind: EventKind) -> Option<Scope> {
    match kind {
        EventKind::OrgAccessLost | EventKind::OrgAccessRestored => None,
        EventKind::PresenceUpdate
        | EventKind::ConversationCreate
        | EventKind::ConversationUpdate
        | EventKind::ConversationDelete
        | EventKind::ParticipantAdd
        | EventKind::ParticipantRemove
        | EventKind::InboxUpdate => Some(Scope::ConversationsRead),
        // No socket is their audience (webhooks only); were one, it would read the member list.
        EventKind::MemberAdded | EventKind::MemberRemoved | EventKind::MemberRoleChanged => {
            Some(Scope::OrgRead)
        }
        EventKind::MessageCreate
        | EventKind::MessageUpdate
        | EventKind::MessageDelete
        | EventKind::MessageStream
        | EventKind::TypingStart
        | EventKind::ReadMarkerUpdate
        | EventKind::Control
        | EventKind::Other => Some(Scope::MessagesRead),
    }
}

/// The scope a credential needs to subscribe a webhook endpoint to event `name`: the scope
/// that reads the same thing over REST (AZ-5: a key never reaches past its scopes through an
/// endpoint it makes — a `webhooks:admin` key without `messages:read` gets no message).
#[must_use]
pub fn scope_to_hear(name: &str) -> Option<Scope> {
    match name.split_once('.').map(|(area, _)| area) {
        Some("message") => Some(Scope::MessagesRead),
        Some("conversation" | "participant") => Some(Scope::ConversationsRead),
        Some("member") => Some(Scope::OrgRead),
        _ => None,
    }
}

/// Whether an endpoint of the whole org (not of one conversation) hears of a conversation
/// with `visibility`: only of those every member of the org may read (AZ-3: only participants
/// read a direct, private or team conversation; an org admin is not one by managing
/// webhooks). An endpoint scoped to one conversation was made by someone who could read it.
#[must_use]
pub fn org_endpoint_hears(visibility: &Visibility) -> bool {
    matches!(visibility, Visibility::Scope(VisibilityScope::Org))
}

/// Whether a socket authenticated with `credential` may receive an event of `kind`: a key
/// needs the scope that reads it; sessions and bots receive every kind.
#[must_use]
pub fn may_receive(credential: &Credential, kind: EventKind) -> bool {
    scope_to_read(kind).is_none_or(|scope| credential.allows(scope))
}

/// Whether a socket authenticated with `credential` may take a subscription to `conv` of
/// `org`: a bot or key only within its org, and its listed conversations when it lists some.
/// A socket that may not never receives that conversation's events, nor the one announcing it.
#[must_use]
pub fn may_subscribe(credential: &Credential, org: OrgId, conv: ConversationId) -> bool {
    credential.covers_conversation(org, conv)
}

/// Whether a socket authenticated with `credential` hears of the widget inbox of `org`
/// (`INBOX_UPDATE`): as the inbox itself is read (WEB-4) — a login session, or a key of that
/// org not limited to listed conversations; never a bot; and not while the org is `locked` to
/// its user (AUTH-4a: a member the org's 2FA rule shuts out gets none of its events).
#[must_use]
pub fn hears_of_inbox(
    credential: &Credential,
    org: Option<OrgId>,
    locked: &HashSet<OrgId>,
) -> bool {
    !matches!(credential, Credential::Bot { .. })
        && credential.conversations().is_none()
        && org.is_some_and(|o| credential.covers_org(o) && !locked.contains(&o))
}

/// Whether a socket authenticated with `credential` hears about `org` at all (its access to
/// the org lost or restored): a bot or key only about its own org.
#[must_use]
pub fn hears_of_org(credential: &Credential, org: OrgId) -> bool {
    credential.covers_org(org)
}

/// Whether a conversation's event reaches a socket: it subscribes to the conversation, and its
/// user may read the conversation's org now (`org`, when known; AUTH-4a holds a locked org's
/// conversations back without unsubscribing them).
#[must_use]
pub fn reads_conversation(subscribed: bool, org: Option<OrgId>, locked: &HashSet<OrgId>) -> bool {
    subscribed && org.is_none_or(|org| !locked.contains(&org))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::BotId;
    use crate::policy::testing::api_key;

    #[test]
    fn each_event_needs_the_scope_that_reads_it_over_rest() {
        let messages = Some(Scope::MessagesRead);
        let convs = Some(Scope::ConversationsRead);
        let cases: &[(Option<Scope>, &[&str])] = &[
            (messages, &["MESSAGE_CREATE", "MESSAGE_UPDATE"]),
            (messages, &["MESSAGE_DELETE", "MESSAGE_STREAM"]),
            (messages, &["TYPING_START", "READ_MARKER_UPDATE"]),
            (convs, &["CONVERSATION_CREATE", "CONVERSATION_UPDATE"]),
            (convs, &["CONVERSATION_DELETE", "PRESENCE_UPDATE"]),
            (convs, &["PARTICIPANT_ADD", "PARTICIPANT_REMOVE"]),
            (None, &["ORG_ACCESS_LOST", "ORG_ACCESS_RESTORED"]),
            (Some(Scope::OrgRead), &["_MEMBER_ADDED", "_MEMBER_REMOVED"]),
            (Some(Scope::OrgRead), &["_MEMBER_ROLE_CHANGED"]),
        ];
        for (scope, kinds) in cases {
            for t in *kinds {
                assert_eq!(scope_to_read(EventKind::of(t)), *scope, "{t}");
            }
        }
    }

    #[test]
    fn a_key_receives_only_the_kinds_its_scopes_read() {
        let org = OrgId::new();
        let messages = api_key(org, &[Scope::MessagesRead], None);
        assert!(may_receive(&messages, EventKind::MessageCreate));
        assert!(may_receive(&messages, EventKind::ReadMarkerUpdate));
        assert!(may_receive(&messages, EventKind::Other));
        assert!(!may_receive(&messages, EventKind::ParticipantAdd));
        assert!(!may_receive(&messages, EventKind::PresenceUpdate));
        assert!(
            may_receive(&messages, EventKind::OrgAccessLost),
            "access needs no scope"
        );
        let conversations = api_key(org, &[Scope::ConversationsRead], None);
        assert!(!may_receive(&conversations, EventKind::TypingStart));
        assert!(may_receive(&conversations, EventKind::ConversationUpdate));
        for kind in [EventKind::MessageCreate, EventKind::ConversationDelete] {
            assert!(may_receive(&Credential::Session, kind));
            let bot = Credential::Bot {
                bot: BotId::new(),
                org,
                conversations: None,
            };
            assert!(may_receive(&bot, kind), "a bot has no scopes to lack");
        }
    }

    #[test]
    fn the_inbox_is_heard_by_sessions_and_whole_org_keys_of_an_unlocked_org_only() {
        let (org, other) = (OrgId::new(), OrgId::new());
        let open = HashSet::new();
        let locked: HashSet<OrgId> = [org].into();
        assert!(hears_of_inbox(&Credential::Session, Some(org), &open));
        assert!(
            !hears_of_inbox(&Credential::Session, Some(org), &locked),
            "the org's 2FA rule shuts its user out (AUTH-4a)"
        );
        assert!(hears_of_inbox(&Credential::Session, Some(other), &locked));
        assert!(!hears_of_inbox(&Credential::Session, None, &open));
        let key = api_key(org, &[Scope::ConversationsRead], None);
        assert!(hears_of_inbox(&key, Some(org), &open));
        assert!(!hears_of_inbox(&key, Some(org), &locked));
        assert!(!hears_of_inbox(&key, Some(other), &open));
        let listed = api_key(
            org,
            &[Scope::ConversationsRead],
            Some(vec![ConversationId::new()]),
        );
        assert!(!hears_of_inbox(&listed, Some(org), &open));
        let bot = Credential::Bot {
            bot: BotId::new(),
            org,
            conversations: None,
        };
        assert!(!hears_of_inbox(&bot, Some(org), &open));
    }

    #[test]
    fn a_limited_credential_subscribes_within_its_org_and_list_only() {
        let (org, other) = (OrgId::new(), OrgId::new());
        let (listed, unlisted) = (ConversationId::new(), ConversationId::new());
        let bot = Credential::Bot {
            bot: BotId::new(),
            org,
            conversations: Some(vec![listed]),
        };
        assert!(may_subscribe(&bot, org, listed));
        assert!(!may_subscribe(&bot, org, unlisted));
        assert!(!may_subscribe(&bot, other, listed));
        let whole_org = api_key(org, &[Scope::MessagesRead], None);
        assert!(may_subscribe(&whole_org, org, unlisted));
        assert!(!may_subscribe(&whole_org, other, unlisted));
        assert!(may_subscribe(&Credential::Session, other, unlisted));
        assert!(hears_of_org(&bot, org) && !hears_of_org(&bot, other));
        assert!(hears_of_org(&Credential::Session, other));
    }

    #[test]
    fn a_locked_org_holds_its_conversations_back() {
        let (locked_org, open_org) = (OrgId::new(), OrgId::new());
        let locked: HashSet<OrgId> = [locked_org].into_iter().collect();
        assert!(!reads_conversation(true, Some(locked_org), &locked));
        assert!(reads_conversation(true, Some(open_org), &locked));
        assert!(
            reads_conversation(true, None, &locked),
            "org unknown: subscription decides"
        );
        assert!(!reads_conversation(false, Some(open_org), &locked));
    }
}
