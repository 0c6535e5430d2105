//! Every permission decision in Conclave. Services ask these predicates; handlers never compare
//! roles. The permissions matrix endpoint is computed from the same functions, so what it shows
//! is what is enforced.
//!
//! Rules in words:
//! - Any org member may view the org, its members, teams and the matrix. Owners and admins
//!   manage the org's settings, members, invites and teams; only owners delete or transfer the
//!   org and only owners grant, change or remove the owner role.
//! - Viewers are read-only: they may read conversations they take part in, join visible ones
//!   and leave, but never write (send, create conversations, add people).
//! - A conversation is visible to its participants, to everyone in the org (`org`), to members
//!   of listed teams (`teams`), and to org owners and admins (who administer it). Only
//!   participants read messages or participants.
//! - Conversation owners and moderators manage participants and settings; moderators cannot
//!   remove owners. Org owners and admins may do the same without participating.
//! - Authors edit their own messages; authors, conversation owners/moderators and org
//!   owners/admins delete them.
//! - Owners and admins manage the org's bots and give API keys a tier above `free`. A bot or
//!   key never has more rights than its user; `credential` narrows them further (AZ-5).
//! - A bot or key limited to a conversation list never acts org-wide (AZ-5a): it may look at
//!   the org, its members and teams, and work in its conversations, nothing more.
//! - Joining an org needs the invitee's consent (AZ-7): owners and admins invite; only a server
//!   admin adds an existing account directly. An invite never grants more than its maker could.
//! - Once an org requires 2FA only an owner turns it off, and only owners change how long the
//!   org's audit log is kept (AUTH-4a, DATA-5).
//! - An impersonated session (AUTH-12) reads, and writes only the user's own messages, typing
//!   and read markers; every other change is refused.

pub mod credentials;
pub mod delivery;

use crate::credential::Credential;
use crate::types::{ConversationKind, ConversationRole, OrgRole};
use serde::Serialize;

/// Actions on an organization, as listed by the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrgAction {
    ViewOrg,
    UpdateOrg,
    DeleteOrg,
    TransferOrg,
    ViewMembers,
    ManageMembers,
    ManageOwners,
    CreateInvite,
    ViewTeams,
    ManageTeams,
    CreateConversation,
    JoinConversation,
    AdministerConversations,
    /// Create bots, list them and rotate their tokens (AUTH-6).
    ManageBots,
    /// Give an API key a rate-limit tier above `free` (AUTH-7, RATE-1).
    SetKeyTier,
    /// Read the org's audit log (DATA-4).
    ViewAudit,
    /// Turn off a 2FA requirement and change the audit retention (AUTH-4a, DATA-5).
    ManageSecurity,
}

impl OrgAction {
    pub const ALL: &'static [OrgAction] = &[
        Self::ViewOrg,
        Self::UpdateOrg,
        Self::DeleteOrg,
        Self::TransferOrg,
        Self::ViewMembers,
        Self::ManageMembers,
        Self::ManageOwners,
        Self::CreateInvite,
        Self::ViewTeams,
        Self::ManageTeams,
        Self::CreateConversation,
        Self::JoinConversation,
        Self::AdministerConversations,
        Self::ManageBots,
        Self::SetKeyTier,
        Self::ViewAudit,
        Self::ManageSecurity,
    ];
}

/// Whether a member with `role` may do `action` in their org.
#[must_use]
pub fn org_allows(role: OrgRole, action: OrgAction) -> bool {
    use OrgAction::*;
    match action {
        ViewOrg | ViewMembers | ViewTeams | JoinConversation => true,
        UpdateOrg
        | ManageMembers
        | CreateInvite
        | ManageTeams
        | AdministerConversations
        | ManageBots
        | SetKeyTier
        | ViewAudit => role.rank() >= OrgRole::Admin.rank(),
        DeleteOrg | TransferOrg | ManageOwners | ManageSecurity => role == OrgRole::Owner,
        CreateConversation => role.rank() >= OrgRole::Member.rank(),
    }
}

/// Whether `actor` may give a member `role` (at invite, add or role change), or change or
/// remove a member who holds `role`. Owners are handled only by owners.
#[must_use]
pub fn may_manage_member_with_role(actor: OrgRole, role: OrgRole) -> bool {
    if role == OrgRole::Owner {
        org_allows(actor, OrgAction::ManageOwners)
    } else {
        org_allows(actor, OrgAction::ManageMembers)
    }
}

/// AZ-5a: whether a request through `credential` may do `action` at all, whatever its scopes.
/// A bot or key limited to a conversation list may only look at the org (its settings, members
/// and teams) and join conversations (which its list still bounds); every org-wide change —
/// members, roles, invites, teams, bots, keys, settings, the audit log — is beyond it.
#[must_use]
pub fn credential_allows_org_action(credential: &Credential, action: OrgAction) -> bool {
    use OrgAction::*;
    credential.conversations().is_none()
        || matches!(action, ViewOrg | ViewMembers | ViewTeams | JoinConversation)
}

/// AZ-7: whether the caller may add an existing account to an org without its consent. Only a
/// server admin's own signed-in session (or the management token, on `/admin`) may; everyone
/// else invites.
#[must_use]
pub fn may_add_member_directly(is_server_admin: bool, credential: &Credential) -> bool {
    is_server_admin && !credential.is_limited()
}

/// AUTH-4a, DATA-5: whether a member with `role` may make this change to the org's security
/// settings: turning off a 2FA requirement, or changing the audit retention.
#[must_use]
pub fn may_change_security_setting(role: OrgRole) -> bool {
    org_allows(role, OrgAction::ManageSecurity)
}

/// What an impersonated session (AUTH-12) asks to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImpersonatedRequest {
    /// Any read.
    Read,
    /// Send a message, or edit or delete one of the user's own messages.
    OwnMessage,
    /// Delete someone else's message (moderation).
    ModerateMessage,
    Typing,
    ReadMarker,
    /// End the impersonated session itself.
    SignOut,
    /// Anything else that changes state: memberships, roles, invites, teams, org settings,
    /// transfers, deletions, credentials, keys, bots, 2FA, exports, erasure.
    OtherWrite,
}

/// AUTH-12: whether an impersonated session may do this. It may read, write the user's own
/// messages, type, move read markers and end itself; nothing else.
#[must_use]
pub const fn impersonation_allows(request: ImpersonatedRequest) -> bool {
    use ImpersonatedRequest::*;
    matches!(request, Read | OwnMessage | Typing | ReadMarker | SignOut)
}

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

/// Actions on one conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConversationAction {
    /// Know that it exists (otherwise 404).
    See,
    /// Read messages, participants, history, typing.
    Read,
    Send,
    Join,
    Leave,
    Update,
    Delete,
    AddParticipant,
    RemoveParticipant,
    /// Delete another person's message.
    ModerateMessages,
}

impl ConversationAction {
    pub const ALL: &'static [ConversationAction] = &[
        Self::See,
        Self::Read,
        Self::Send,
        Self::Join,
        Self::Leave,
        Self::Update,
        Self::Delete,
        Self::AddParticipant,
        Self::RemoveParticipant,
        Self::ModerateMessages,
    ];
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
    match action {
        See => participant || a.in_scope || a.org_admin(),
        Read => participant,
        Send => participant && a.writer() && !a.archived,
        Join => !participant && a.in_scope && a.kind == ConversationKind::Group && !a.archived,
        Leave => participant,
        Update => {
            a.kind == ConversationKind::Group && a.writer() && (a.conv_manager() || a.org_admin())
        }
        Delete => a.writer() && (a.participant == Some(ConversationRole::Owner) || a.org_admin()),
        AddParticipant => {
            a.kind == ConversationKind::Group
                && a.writer()
                && !a.archived
                && (a.conv_manager() || a.org_admin())
        }
        RemoveParticipant | ModerateMessages => a.writer() && (a.conv_manager() || a.org_admin()),
    }
}

/// Whether the caller may remove a participant holding `target` (beyond `RemoveParticipant`):
/// moderators cannot remove owners.
#[must_use]
pub fn may_remove_participant_with_role(a: &ConversationAccess, target: ConversationRole) -> bool {
    conversation_allows(a, ConversationAction::RemoveParticipant)
        && (target != ConversationRole::Owner
            || a.participant == Some(ConversationRole::Owner)
            || a.org_admin())
}

/// Whether the caller may grant `role` when adding a participant.
#[must_use]
pub fn may_grant_participant_role(a: &ConversationAccess, role: ConversationRole) -> bool {
    conversation_allows(a, ConversationAction::AddParticipant)
        && (role != ConversationRole::Owner
            || a.participant == Some(ConversationRole::Owner)
            || a.org_admin())
}

/// Whether the caller may edit a message: only its author, while still a writing participant.
#[must_use]
pub fn may_edit_message(a: &ConversationAccess, is_author: bool) -> bool {
    is_author && conversation_allows(a, ConversationAction::Send)
}

/// Whether the caller may delete a message: its author while participating, or a moderator.
#[must_use]
pub fn may_delete_message(a: &ConversationAccess, is_author: bool) -> bool {
    (is_author && a.participant.is_some() && a.writer())
        || conversation_allows(a, ConversationAction::ModerateMessages)
}

/// Server-wide administration (admin API). Only server admins or the management token.
#[must_use]
pub const fn server_admin_allows(is_server_admin: bool) -> bool {
    is_server_admin
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn outsiders_of_the_org_can_do_nothing() {
        for action in ConversationAction::ALL {
            assert!(!conversation_allows(
                &access(None, Some(ConversationRole::Owner), true),
                *action
            ));
        }
    }

    #[test]
    fn viewers_read_but_never_write() {
        let v = access(Some(OrgRole::Viewer), Some(ConversationRole::Member), true);
        assert!(conversation_allows(&v, ConversationAction::Read));
        assert!(!conversation_allows(&v, ConversationAction::Send));
        assert!(!org_allows(OrgRole::Viewer, OrgAction::CreateConversation));
        let vo = access(Some(OrgRole::Viewer), Some(ConversationRole::Owner), true);
        assert!(!conversation_allows(
            &vo,
            ConversationAction::AddParticipant
        ));
        assert!(!conversation_allows(&vo, ConversationAction::Delete));
    }

    #[test]
    fn non_participants_see_only_what_is_in_scope() {
        let m = access(Some(OrgRole::Member), None, false);
        assert!(!conversation_allows(&m, ConversationAction::See));
        let scoped = access(Some(OrgRole::Member), None, true);
        assert!(conversation_allows(&scoped, ConversationAction::See));
        assert!(!conversation_allows(&scoped, ConversationAction::Read));
        assert!(conversation_allows(&scoped, ConversationAction::Join));
        let admin = access(Some(OrgRole::Admin), None, false);
        assert!(conversation_allows(&admin, ConversationAction::See));
        assert!(!conversation_allows(&admin, ConversationAction::Read));
        assert!(!conversation_allows(&admin, ConversationAction::Join));
    }

    #[test]
    fn moderators_cannot_remove_owners_and_only_owners_manage_owners() {
        let m = access(
            Some(OrgRole::Member),
            Some(ConversationRole::Moderator),
            true,
        );
        assert!(may_remove_participant_with_role(
            &m,
            ConversationRole::Member
        ));
        assert!(!may_remove_participant_with_role(
            &m,
            ConversationRole::Owner
        ));
        assert!(!may_manage_member_with_role(OrgRole::Admin, OrgRole::Owner));
        assert!(may_manage_member_with_role(OrgRole::Admin, OrgRole::Member));
        assert!(may_manage_member_with_role(OrgRole::Owner, OrgRole::Owner));
    }

    #[test]
    fn listed_credentials_never_act_org_wide() {
        use crate::ids::*;
        let listed = Credential::ApiKey {
            key: ApiKeyId::new(),
            org: OrgId::new(),
            scopes: crate::credential::Scope::ALL.to_vec(),
            conversations: Some(vec![ConversationId::new()]),
            tier: crate::types::KeyTier::Free,
        };
        let bot = Credential::Bot {
            bot: BotId::new(),
            org: OrgId::new(),
            conversations: Some(vec![ConversationId::new()]),
        };
        for action in OrgAction::ALL {
            let read_only = matches!(
                action,
                OrgAction::ViewOrg
                    | OrgAction::ViewMembers
                    | OrgAction::ViewTeams
                    | OrgAction::JoinConversation
            );
            assert_eq!(credential_allows_org_action(&listed, *action), read_only);
            assert_eq!(credential_allows_org_action(&bot, *action), read_only);
            assert!(credential_allows_org_action(&Credential::Session, *action));
        }
        assert!(!may_add_member_directly(true, &listed));
        assert!(!may_add_member_directly(false, &Credential::Session));
        assert!(may_add_member_directly(true, &Credential::Session));
    }

    #[test]
    fn only_owners_relax_security_and_impersonation_only_messages() {
        assert!(may_change_security_setting(OrgRole::Owner));
        assert!(!may_change_security_setting(OrgRole::Admin));
        assert!(impersonation_allows(ImpersonatedRequest::OwnMessage));
        assert!(!impersonation_allows(ImpersonatedRequest::ModerateMessage));
        assert!(!impersonation_allows(ImpersonatedRequest::OtherWrite));
    }

    #[test]
    fn direct_conversations_are_closed() {
        let mut a = access(Some(OrgRole::Owner), Some(ConversationRole::Owner), true);
        a.kind = ConversationKind::Direct;
        assert!(!conversation_allows(&a, ConversationAction::AddParticipant));
        assert!(!conversation_allows(&a, ConversationAction::Join));
        assert!(!conversation_allows(&a, ConversationAction::Update));
    }
}
