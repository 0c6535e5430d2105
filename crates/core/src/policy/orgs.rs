//! Who may do what in an organization: the org roles (owner, admin, member, viewer), what a
//! bot or key limited to conversations may not do org-wide (AZ-5a), who adds members without
//! their consent (AZ-7), who relaxes security settings (AUTH-4a, DATA-5), and the caller's
//! `permissions` list on the org object.

use super::{CallerLimits, ImpersonatedRequest};
use crate::credential::{Credential, Scope};
use crate::types::{OrgRole, UserKind};
use serde::Serialize;

/// Actions on an organization, as listed by the matrix and by the org's `permissions`.
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
    /// Create, change, rotate, test and inspect the org's webhooks (HOOK-1, HOOK-2).
    ManageWebhooks,
    /// Create, change and delete the org's AI agents, see their usage and set the org's monthly
    /// token budget (AGENT-1, AGENT-4).
    ManageAgents,
    /// Manage the org's content guards and review what they flagged (RATE-6).
    ManageGuards,
    /// Create, change and revoke the org's support widget keys (WEB-4).
    ManageWidgetKeys,
    /// Register and delete the org's OAuth clients, list and revoke the OAuth grants made for
    /// the org (MCP-2).
    #[serde(rename = "manage_oauth")]
    ManageOAuth,
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
        Self::ManageWebhooks,
        Self::ManageAgents,
        Self::ManageGuards,
        Self::ManageWidgetKeys,
        Self::ManageOAuth,
    ];

    /// Whether the action only looks.
    const fn reads(self) -> bool {
        matches!(self, Self::ViewOrg | Self::ViewMembers | Self::ViewTeams)
    }

    /// The API-key scope the action's routes need; `None` where no bot or key may act: where
    /// credentials are made (`/api-keys`, where a key's tier is set; `/orgs/{org}/bots`).
    #[must_use]
    pub const fn scope(self) -> Option<Scope> {
        use OrgAction::*;
        match self {
            ViewOrg | ViewMembers | ViewTeams => Some(Scope::OrgRead),
            CreateConversation | JoinConversation | AdministerConversations => {
                Some(Scope::ConversationsAdmin)
            }
            SetKeyTier | ManageBots => None,
            ManageWebhooks => Some(Scope::WebhooksAdmin),
            UpdateOrg | DeleteOrg | TransferOrg | ManageMembers | ManageOwners | CreateInvite
            | ManageTeams | ManageAgents | ViewAudit | ManageSecurity | ManageGuards
            | ManageWidgetKeys | ManageOAuth => Some(Scope::OrgAdmin),
        }
    }

    /// What the action is to an impersonated session (AUTH-12).
    #[must_use]
    pub const fn impersonated(self) -> ImpersonatedRequest {
        if self.reads() || matches!(self, Self::ViewAudit) {
            ImpersonatedRequest::Read
        } else {
            ImpersonatedRequest::OtherWrite
        }
    }
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
        | ViewAudit
        | ManageWebhooks
        | ManageAgents
        | ManageGuards
        | ManageWidgetKeys
        | ManageOAuth => role.rank() >= OrgRole::Admin.rank(),
        DeleteOrg | TransferOrg | ManageOwners | ManageSecurity => role == OrgRole::Owner,
        CreateConversation => role.rank() >= OrgRole::Member.rank(),
    }
}

/// What a member with `role` may do in their org through a request with `limits`: the org's
/// `permissions` list. Each listed action is one the org's routes then allow.
#[must_use]
pub fn org_permissions(role: OrgRole, limits: CallerLimits<'_>) -> Vec<OrgAction> {
    OrgAction::ALL
        .iter()
        .copied()
        .filter(|&a| {
            org_allows(role, a)
                && credential_allows_org_action(limits.credential, a)
                && limits.allow(a.scope(), a.impersonated())
        })
        .collect()
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

/// Whether an invite still admits with `role` when its maker now holds `maker` in the org
/// (`None`: no longer a member, or their account is disabled): an invite never grants more
/// than its maker could at the time it is used (AZ-7) — a removed or demoted admin's codes
/// stop working.
#[must_use]
pub fn invite_still_grants(maker: Option<OrgRole>, role: OrgRole) -> bool {
    maker.is_some_and(|m| {
        org_allows(m, OrgAction::CreateInvite) && may_manage_member_with_role(m, role)
    })
}

/// Whether `actor` may move a member from `current` to `new`: both roles must be theirs to
/// handle (an admin neither promotes to nor demotes from owner).
#[must_use]
pub fn may_change_member_role(actor: OrgRole, current: OrgRole, new: OrgRole) -> bool {
    may_manage_member_with_role(actor, current) && may_manage_member_with_role(actor, new)
}

/// Whether `actor` may remove a member holding `target`; anyone may leave (`is_self`), and
/// whether the last owner may is the store's to refuse.
#[must_use]
pub fn may_remove_member(actor: OrgRole, target: OrgRole, is_self: bool) -> bool {
    is_self || may_manage_member_with_role(actor, target)
}

/// AZ-5a: whether a request through `credential` may do `action` at all, whatever its scopes.
/// A bot or key limited to a conversation list may only look at the org (its settings, members
/// and teams) and join conversations (which its list still bounds); every org-wide change —
/// members, roles, invites, teams, bots, keys, settings, the audit log — is beyond it.
#[must_use]
pub fn credential_allows_org_action(credential: &Credential, action: OrgAction) -> bool {
    credential.conversations().is_none()
        || action.reads()
        || matches!(action, OrgAction::JoinConversation)
}

/// WEB-4: whether a caller may work a support widget inbox (list widget conversations, open or
/// resolve them): an org admin, or a member (not a viewer) of the key's support team
/// (`in_team`) — through a login session or an API key, never a bot (a visitor's messages are
/// written by one) and never a credential limited to listed conversations (AZ-5a, checked by
/// the caller before).
#[must_use]
pub fn widget_inbox_allows(
    credential: &Credential,
    role: OrgRole,
    admin: bool,
    in_team: bool,
) -> bool {
    !matches!(credential, Credential::Bot { .. })
        && (admin || (in_team && role.rank() >= OrgRole::Member.rank()))
}

/// Whether an account of `kind` may create organizations: bots act only in the org they were
/// made in (AUTH-6).
#[must_use]
pub fn may_create_org(kind: UserKind) -> bool {
    kind != UserKind::Bot
}

/// Whether an account of `kind` may be added to an org directly: a bot belongs to the org it
/// was created in, and joins it only then (AUTH-6).
#[must_use]
pub fn may_join_org_directly(kind: UserKind) -> bool {
    kind != UserKind::Bot
}

/// AUTH-4a: whether an account of `kind` holds its own second factor. A bot cannot: the member
/// who created it answers for it when its org requires 2FA.
#[must_use]
pub fn holds_own_second_factor(kind: UserKind) -> bool {
    kind != UserKind::Bot
}

/// AZ-1: whether an account of `kind` may own an org. A bot may not: an owner answers for the
/// org (its deletion, its 2FA rule, its transfer), which a program acting on a token — an
/// agent's or a widget's bot has none at all — cannot; and a bot owner would let the last
/// person owning the org leave it.
#[must_use]
pub fn may_own_org(kind: UserKind) -> bool {
    kind != UserKind::Bot
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::*;
    use crate::policy::testing::{api_key, scoped_key, with, IMPERSONATED};

    #[test]
    fn only_owners_handle_owners() {
        assert!(!may_manage_member_with_role(OrgRole::Admin, OrgRole::Owner));
        assert!(may_manage_member_with_role(OrgRole::Admin, OrgRole::Member));
        assert!(may_manage_member_with_role(OrgRole::Owner, OrgRole::Owner));
        assert!(!may_change_member_role(
            OrgRole::Admin,
            OrgRole::Member,
            OrgRole::Owner
        ));
        assert!(!may_change_member_role(
            OrgRole::Admin,
            OrgRole::Owner,
            OrgRole::Admin
        ));
        assert!(may_change_member_role(
            OrgRole::Admin,
            OrgRole::Viewer,
            OrgRole::Admin
        ));
        assert!(!may_remove_member(OrgRole::Member, OrgRole::Viewer, false));
        assert!(may_remove_member(OrgRole::Viewer, OrgRole::Viewer, true));
        assert!(!may_remove_member(OrgRole::Admin, OrgRole::Owner, false));
    }

    #[test]
    fn bots_neither_create_nor_join_orgs() {
        assert!(!may_create_org(UserKind::Bot));
        assert!(may_create_org(UserKind::User));
        assert!(!may_join_org_directly(UserKind::Bot));
        assert!(may_join_org_directly(UserKind::User));
        assert!(!holds_own_second_factor(UserKind::Bot));
        assert!(holds_own_second_factor(UserKind::User));
    }

    #[test]
    fn listed_credentials_never_act_org_wide() {
        let listed = api_key(OrgId::new(), Scope::ALL, Some(vec![ConversationId::new()]));
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
    fn permissions_are_the_role_narrowed_by_the_limits() {
        let own = org_permissions(OrgRole::Owner, CallerLimits::OWN_SESSION);
        assert_eq!(own, OrgAction::ALL);
        let viewer = org_permissions(OrgRole::Viewer, CallerLimits::OWN_SESSION);
        assert_eq!(
            viewer,
            [
                OrgAction::ViewOrg,
                OrgAction::ViewMembers,
                OrgAction::ViewTeams,
                OrgAction::JoinConversation
            ]
        );
        let reader = scoped_key(&[Scope::OrgRead]);
        for a in org_permissions(OrgRole::Owner, with(&reader)) {
            assert_eq!(a.scope(), Some(Scope::OrgRead));
        }
        let impersonated = IMPERSONATED;
        assert!(!org_permissions(OrgRole::Owner, impersonated).contains(&OrgAction::CreateInvite));
        assert!(org_permissions(OrgRole::Owner, impersonated).contains(&OrgAction::ViewAudit));
    }

    #[test]
    fn only_owners_relax_security() {
        assert!(may_change_security_setting(OrgRole::Owner));
        assert!(!may_change_security_setting(OrgRole::Admin));
    }

    #[test]
    fn an_invite_grants_no_more_than_its_maker_can_now() {
        use OrgRole::*;
        assert!(invite_still_grants(Some(Owner), Owner));
        assert!(invite_still_grants(Some(Admin), Admin));
        assert!(invite_still_grants(Some(Admin), Member));
        assert!(!invite_still_grants(Some(Admin), Owner));
        assert!(!invite_still_grants(Some(Member), Member));
        assert!(!invite_still_grants(Some(Viewer), Viewer));
        assert!(!invite_still_grants(None, Member));
    }
}
