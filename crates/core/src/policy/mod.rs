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
//!
//! The rules are split by area: `orgs` and `conversations`; `limits` is what a bot's or
//! key's credential and an impersonated session take away. The `permissions` lists on the org
//! and conversation objects are computed by `org_permissions` and `conversation_permissions`,
//! so a client learns what its user may do instead of copying these rules.

mod conversations;
pub mod credentials;
pub mod delivery;
pub mod files;
mod limits;
mod orgs;
#[cfg(test)]
mod testing;

pub use conversations::{
    conversation_allows, conversation_permissions, impersonation_may_delete_message,
    may_delete_message, may_edit_message, may_grant_participant_role,
    may_remove_participant_with_role, may_stop_stream, search_within, ConversationAccess,
    ConversationAction,
};
pub use limits::CallerLimits;
pub use orgs::{
    credential_allows_org_action, holds_own_second_factor, invite_still_grants,
    may_add_member_directly, may_change_member_role, may_change_security_setting, may_create_org,
    may_join_org_directly, may_manage_member_with_role, may_own_org, may_remove_member, org_allows,
    org_permissions, widget_inbox_allows, OrgAction,
};

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

/// Server-wide administration (admin API). Only server admins or the management token.
#[must_use]
pub const fn server_admin_allows(is_server_admin: bool) -> bool {
    is_server_admin
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impersonation_allows_only_the_users_own_messages() {
        assert!(impersonation_allows(ImpersonatedRequest::OwnMessage));
        assert!(impersonation_allows(ImpersonatedRequest::Read));
        assert!(!impersonation_allows(ImpersonatedRequest::ModerateMessage));
        assert!(!impersonation_allows(ImpersonatedRequest::OtherWrite));
    }
}
