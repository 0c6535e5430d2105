//! Who may do what in a conversation: its visibility, the conversation roles (owner,
//! moderator, member), org owners and admins who administer it without taking part, read-only
//! viewers, messages, and the caller's `permissions` list on the conversation object.

use super::{impersonation_allows, org_allows, CallerLimits, ImpersonatedRequest, OrgAction};
use crate::credential::{Credential, Scope};
use crate::ids::ConversationId;
use crate::types::{ConversationKind, ConversationRole, OrgRole};
use serde::Serialize;

/// What is known about a caller and a conversation when deciding.
#[derive(Debug, Clone, Copy)]
pub struct ConversationAccess {
    /// The caller's role in the conversation's org (`None`: not a member).
    pub org_role: Option<OrgRole>,
    /// The caller's role in the conversation (`None`: not a participant).
    pub participant: Option<ConversationRole>,
    /// Whether the conversation's visibility (org-wide, or a team the caller is in) covers them.
    pub in_scope: bool,
    pub kind: ConversationKind,
    pub archived: bool,
}

impl ConversationAccess {
    fn org_admin(&self) -> bool {
        self.org_role
            .is_some_and(|r| org_allows(r, OrgAction::AdministerConversations))
    }

    fn writer(&self) -> bool {
        self.org_role.is_some_and(|r| r != OrgRole::Viewer)
    }

    fn conv_manager(&self) -> bool {
        matches!(
            self.participant,
            Some(ConversationRole::Owner | ConversationRole::Moderator)
        )
    }
}

/// Actions on one conversation, as listed by the conversation's `permissions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConversationAction {
    /// Know that it exists (otherwise 404).
    See,
    /// Read messages, participants, history, typing.
    Read,
    /// Send messages (and type).
    SendMessages,
    Join,
    Leave,
    /// Rename, archive or change the visibility.
    Update,
    Delete,
    AddParticipants,
    /// Remove participants who are not owners.
    RemoveParticipants,
    /// Grant the owner role when adding a participant, and remove owners.
    ManageOwners,
    /// Delete another person's message (moderation).
    DeleteAnyMessage,
}

impl ConversationAction {
    pub const ALL: &'static [ConversationAction] = &[
        Self::See,
        Self::Read,
        Self::SendMessages,
        Self::Join,
        Self::Leave,
        Self::Update,
        Self::Delete,
        Self::AddParticipants,
        Self::RemoveParticipants,
        Self::ManageOwners,
        Self::DeleteAnyMessage,
    ];

    /// The API-key scope the action's routes need.
    #[must_use]
    pub const fn scope(self) -> Scope {
        use ConversationAction::*;
        match self {
            See => Scope::ConversationsRead,
            Read => Scope::MessagesRead,
            SendMessages | DeleteAnyMessage => Scope::MessagesWrite,
            Join | Leave | Update | Delete | AddParticipants | RemoveParticipants
            | ManageOwners => Scope::ConversationsAdmin,
        }
    }

    /// What the action is to an impersonated session (AUTH-12).
    #[must_use]
    pub const fn impersonated(self) -> ImpersonatedRequest {
        use ConversationAction::*;
        match self {
            See | Read => ImpersonatedRequest::Read,
            SendMessages => ImpersonatedRequest::OwnMessage,
            DeleteAnyMessage => ImpersonatedRequest::ModerateMessage,
            Join | Leave | Update | Delete | AddParticipants | RemoveParticipants
            | ManageOwners => ImpersonatedRequest::OtherWrite,
        }
    }
}

/// Whether the caller described by `a` may do `action` on the conversation.
#[must_use]
pub fn conversation_allows(a: &ConversationAccess, action: ConversationAction) -> bool {
    use ConversationAction::*;
    if a.org_role.is_none() {
        // Nothing crosses orgs: a non-member can do nothing, not even know it exists.
        return false;
    }
    let participant = a.participant.is_some();
    let group = a.kind == ConversationKind::Group;
    let manager = a.writer() && (a.conv_manager() || a.org_admin());
    match action {
        See => participant || a.in_scope || a.org_admin(),
        Read | Leave => participant,
        SendMessages => participant && a.writer() && !a.archived,
        Join => !participant && a.in_scope && group && !a.archived,
        Update => group && manager,
        Delete => a.writer() && (a.participant == Some(ConversationRole::Owner) || a.org_admin()),
        AddParticipants => group && manager && !a.archived,
        // MSG-1: a direct conversation is its pair's; its starter is its owner only so that
        // it has one, and takes nobody out of it nor moderates the other's messages (an org
        // admin still moderates).
        RemoveParticipants => group && manager,
        DeleteAnyMessage => manager && (group || a.org_admin()),
        ManageOwners => {
            a.writer() && (a.participant == Some(ConversationRole::Owner) || a.org_admin())
        }
    }
}

/// MSG-6: what a search reads is what [`ConversationAction::Read`] allows — conversations the
/// caller takes part in while an org member (the store's query joins both rows, so nothing
/// else can come back) — and, for a bot or key limited to a list of conversations, only those.
#[must_use]
pub fn search_within(credential: &Credential) -> Option<&[ConversationId]> {
    credential.conversations()
}

/// What the caller may do in the conversation through a request with `limits` (which must
/// reach it): the conversation's `permissions` list. Each listed action is one its routes then
/// allow.
#[must_use]
pub fn conversation_permissions(
    a: &ConversationAccess,
    limits: CallerLimits<'_>,
) -> Vec<ConversationAction> {
    ConversationAction::ALL
        .iter()
        .copied()
        .filter(|&action| {
            conversation_allows(a, action)
                && limits.allow(Some(action.scope()), action.impersonated())
        })
        .collect()
}

/// Whether the caller may remove a participant holding `target`: moderators cannot remove
/// owners.
#[must_use]
pub fn may_remove_participant_with_role(a: &ConversationAccess, target: ConversationRole) -> bool {
    conversation_allows(a, ConversationAction::RemoveParticipants)
        && (target != ConversationRole::Owner
            || conversation_allows(a, ConversationAction::ManageOwners))
}

/// Whether the caller may grant `role` when adding a participant.
#[must_use]
pub fn may_grant_participant_role(a: &ConversationAccess, role: ConversationRole) -> bool {
    conversation_allows(a, ConversationAction::AddParticipants)
        && (role != ConversationRole::Owner
            || conversation_allows(a, ConversationAction::ManageOwners))
}

/// Whether the caller may edit a message: only its author, while still a writing participant.
#[must_use]
pub fn may_edit_message(a: &ConversationAccess, is_author: bool) -> bool {
    is_author && conversation_allows(a, ConversationAction::SendMessages)
}

/// Whether the caller may stop an agent's streaming answer (AGENT-3): a participant who may
/// read and send in the conversation (a Viewer may not; the conversation archived, nobody may).
#[must_use]
pub fn may_stop_stream(a: &ConversationAccess) -> bool {
    conversation_allows(a, ConversationAction::Read)
        && conversation_allows(a, ConversationAction::SendMessages)
}

/// Whether the caller may delete a message: its author while participating, or a moderator.
#[must_use]
pub fn may_delete_message(a: &ConversationAccess, is_author: bool) -> bool {
    (is_author && a.participant.is_some() && a.writer())
        || conversation_allows(a, ConversationAction::DeleteAnyMessage)
}

/// AUTH-12: whether an impersonated session (`impersonated`) may delete this message: only the
/// user's own; moderation is refused, whatever the user's role.
#[must_use]
pub fn impersonation_may_delete_message(impersonated: bool, is_author: bool) -> bool {
    !impersonated
        || impersonation_allows(if is_author {
            ImpersonatedRequest::OwnMessage
        } else {
            ImpersonatedRequest::ModerateMessage
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::testing::{scoped_key, with, IMPERSONATED};
    use ConversationAction::*;

    fn access(
        org: Option<OrgRole>,
        p: Option<ConversationRole>,
        in_scope: bool,
    ) -> ConversationAccess {
        ConversationAccess {
            org_role: org,
            participant: p,
            in_scope,
            kind: ConversationKind::Group,
            archived: false,
        }
    }

    /// Checks that `a` allows every action of `allowed` and none of `refused`.
    fn expect(
        a: &ConversationAccess,
        allowed: &[ConversationAction],
        refused: &[ConversationAction],
    ) {
        for action in allowed {
            assert!(conversation_allows(a, *action), "{action:?} is allowed");
        }
        for action in refused {
            assert!(!conversation_allows(a, *action), "{action:?} is refused");
        }
    }

    #[test]
    fn outsiders_of_the_org_can_do_nothing() {
        expect(
            &access(None, Some(ConversationRole::Owner), true),
            &[],
            ConversationAction::ALL,
        );
    }

    #[test]
    fn viewers_read_but_never_write() {
        let v = access(Some(OrgRole::Viewer), Some(ConversationRole::Member), true);
        expect(&v, &[Read], &[SendMessages]);
        assert!(!org_allows(OrgRole::Viewer, OrgAction::CreateConversation));
        let vo = access(Some(OrgRole::Viewer), Some(ConversationRole::Owner), true);
        expect(&vo, &[], &[AddParticipants, Delete, ManageOwners]);
    }

    #[test]
    fn non_participants_see_only_what_is_in_scope() {
        expect(&access(Some(OrgRole::Member), None, false), &[], &[See]);
        expect(
            &access(Some(OrgRole::Member), None, true),
            &[See, Join],
            &[Read],
        );
        expect(
            &access(Some(OrgRole::Admin), None, false),
            &[See],
            &[Read, Join],
        );
    }

    #[test]
    fn moderators_remove_members_but_not_owners() {
        use ConversationRole::{Member, Moderator, Owner};
        let m = access(Some(OrgRole::Member), Some(Moderator), true);
        assert!(!may_grant_participant_role(&m, Owner));
        assert!(may_grant_participant_role(&m, Moderator));
        let o = access(Some(OrgRole::Member), Some(Owner), true);
        let admin = access(Some(OrgRole::Admin), None, false);
        let member = access(Some(OrgRole::Member), Some(Member), true);
        for (who, target, may) in [
            (&m, Member, true),
            (&m, Owner, false),
            (&o, Owner, true),
            (&admin, Owner, true),
            (&member, Member, false),
        ] {
            let got = may_remove_participant_with_role(who, target);
            assert_eq!(got, may, "{who:?} removing a {target:?}");
        }
    }

    #[test]
    fn impersonated_sessions_delete_only_their_users_messages() {
        assert!(impersonation_may_delete_message(true, true));
        assert!(!impersonation_may_delete_message(true, false));
        assert!(impersonation_may_delete_message(false, false));
    }

    #[test]
    fn direct_conversations_are_closed() {
        let mut a = access(Some(OrgRole::Owner), Some(ConversationRole::Owner), true);
        a.kind = ConversationKind::Direct;
        expect(
            &a,
            &[],
            &[AddParticipants, Join, Update, RemoveParticipants],
        );
        // Its starter (the owner) neither takes the other out nor moderates their messages;
        // an org admin still moderates.
        let mut starter = access(Some(OrgRole::Member), Some(ConversationRole::Owner), true);
        starter.kind = ConversationKind::Direct;
        expect(
            &starter,
            &[Read, SendMessages, Leave],
            &[RemoveParticipants, DeleteAnyMessage],
        );
        assert!(!may_delete_message(&starter, false));
        assert!(may_delete_message(&starter, true));
        expect(&a, &[DeleteAnyMessage], &[]);
    }

    #[test]
    fn permissions_follow_the_role_and_the_limits() {
        let moderator = access(
            Some(OrgRole::Member),
            Some(ConversationRole::Moderator),
            true,
        );
        let own = conversation_permissions(&moderator, CallerLimits::OWN_SESSION);
        assert_eq!(
            own,
            [
                See,
                Read,
                SendMessages,
                Leave,
                Update,
                AddParticipants,
                RemoveParticipants,
                DeleteAnyMessage
            ]
        );
        let member = access(Some(OrgRole::Member), Some(ConversationRole::Member), true);
        assert_eq!(
            conversation_permissions(&member, CallerLimits::OWN_SESSION),
            [See, Read, SendMessages, Leave]
        );
        let reader = scoped_key(&[Scope::MessagesRead, Scope::ConversationsRead]);
        assert_eq!(
            conversation_permissions(&moderator, with(&reader)),
            [See, Read]
        );
        assert_eq!(
            conversation_permissions(&moderator, IMPERSONATED),
            [See, Read, SendMessages]
        );
    }
}
