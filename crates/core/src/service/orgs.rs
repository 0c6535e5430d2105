//! Organizations, their members, invites and teams, and the permissions matrix.
//!
//! Joining an org needs the invitee's consent (AZ-7): owners and admins make invite codes or
//! invite a username, which that user sees in their pending invites and accepts; only a server
//! admin (or the management token) adds an existing account directly. Bots and keys limited to
//! a conversation list never change anything org-wide (AZ-5a), and an impersonated session
//! changes nothing here (AUTH-12).

use super::credentials::INSUFFICIENT_SCOPE;
use super::{Actor, Result, ServerAdmin, Services};
use crate::error::ServiceError;
use crate::event::{Control, Event};
use crate::ids::*;
use crate::model::*;
use crate::policy::{self, OrgAction};
use crate::store::{OrgPatch, Page};
use crate::token::{self, TokenKind};
use crate::types::*;
use chrono::{DateTime, Duration, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

/// How long an invite lasts when its maker does not say (AZ-7).
pub const INVITE_DEFAULT_TTL: Duration = Duration::days(7);

/// The shortest audit retention an org may set, whatever the server allows (DATA-5).
pub const AUDIT_RETENTION_FLOOR_DAYS: u32 = 30;

/// One row of the matrix: an action and, per role, whether it is allowed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MatrixEntry {
    pub action: OrgAction,
    pub owner: bool,
    pub admin: bool,
    pub member: bool,
    pub viewer: bool,
}

/// Who can do what in an org, computed by `policy`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PermissionsMatrix {
    pub org_id: OrgId,
    /// Per org action, which roles may do it.
    pub roles: Vec<MatrixEntry>,
    /// Per member, the actions their role allows.
    pub members: Vec<MemberPermissions>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MemberPermissions {
    pub user_id: UserId,
    pub username: String,
    pub role: OrgRole,
    pub actions: Vec<OrgAction>,
}

impl Services {
    /// The caller's role in the org; 404 for non-members (nothing leaks across orgs), 403
    /// `insufficient_scope` for a bot or key of another org.
    /// 403 `mfa_setup_required` when the org requires 2FA and the caller has not enabled it.
    pub(super) async fn org_role(&self, actor: &Actor, org: OrgId) -> Result<OrgRole> {
        let standing = self
            .store
            .org_standing(org, actor.user.id)
            .await?
            .ok_or(ServiceError::NotFound("organization"))?;
        Self::check_org_credential(actor, org)?;
        self.check_2fa_standing(actor, org, &standing).await?;
        Ok(standing.role)
    }

    pub(super) async fn require_org(
        &self,
        actor: &Actor,
        org: OrgId,
        action: OrgAction,
    ) -> Result<OrgRole> {
        let role = self.org_role(actor, org).await?;
        if !policy::credential_allows_org_action(&actor.credential, action) {
            self.audit_denied(actor, "org.denied", "insufficient_scope", Some(org), None)
                .await;
            return Err(INSUFFICIENT_SCOPE);
        }
        if policy::org_allows(role, action) {
            Ok(role)
        } else {
            Err(ServiceError::forbidden(
                "forbidden",
                "your role in this organization does not allow this",
            ))
        }
    }

    pub async fn create_org(&self, actor: &Actor, name: Name) -> Result<(Org, OrgRole)> {
        if actor.user.kind == UserKind::Bot {
            return Err(ServiceError::forbidden(
                "forbidden",
                "bots cannot create organizations",
            ));
        }
        Self::require_own_session(actor)?;
        let org = Org {
            id: OrgId::new(),
            name: name.into_inner(),
            require_2fa: false,
            message_retention_days: None,
            audit_retention_days: None,
            erasure: ErasurePolicy::Tombstone,
            created_at: self.clock.now(),
        };
        let audit = self
            .audit(actor, "org.created")
            .resource("org", org.id)
            .org(org.id);
        self.store.create_org(&org, actor.user.id, &[audit]).await?;
        Ok((org, OrgRole::Owner))
    }

    /// The caller's orgs, leaving out those they may not read now (AUTH-4a: an org that
    /// requires 2FA they lack shows nothing of itself, its name included; its routes answer
    /// 403 `mfa_setup_required`, and enabling 2FA needs none of them).
    pub async fn my_orgs(&self, actor: &Actor) -> Result<Vec<(Org, OrgRole)>> {
        let mut orgs = self.store.orgs_for_user(actor.user.id).await?;
        orgs.retain(|(org, _)| actor.credential.covers_org(org.id));
        let locked = self.locked_orgs(actor, orgs.iter().map(|(o, _)| o)).await?;
        orgs.retain(|(org, _)| !locked.contains(&org.id));
        Ok(orgs)
    }

    pub async fn get_org(&self, actor: &Actor, id: OrgId) -> Result<(Org, OrgRole)> {
        let role = self.require_org(actor, id, OrgAction::ViewOrg).await?;
        Ok((self.store.org(id).await?, role))
    }

    pub async fn update_org(
        &self,
        actor: &Actor,
        id: OrgId,
        patch: OrgPatch,
    ) -> Result<(Org, OrgRole)> {
        Self::require_not_impersonated(actor)?;
        let role = self.require_org(actor, id, OrgAction::UpdateOrg).await?;
        let before = self.store.org(id).await?;
        let relaxes_2fa = before.require_2fa && patch.require_2fa == Some(false);
        let retention_change = patch
            .audit_retention_days
            .filter(|&days| days != before.audit_retention_days);
        if (relaxes_2fa || retention_change.is_some()) && !policy::may_change_security_setting(role)
        {
            return Err(ServiceError::forbidden(
                "owner_required",
                "only an owner turns off required 2FA or changes the audit retention",
            ));
        }
        if let Some(Some(days)) = retention_change {
            let floor = self.audit_retention_floor_days();
            if u32::try_from(days).map_or(true, |d| d < floor) {
                return Err(ServiceError::invalid(
                    "audit_retention_days",
                    "below_floor",
                    format!("must be at least {floor} days, or null to keep the log forever"),
                ));
            }
        }
        if patch.require_2fa == Some(true) && !self.has_2fa(actor.user.id).await? {
            // Requiring 2FA without having it would lock the caller out of their own org.
            return Err(ServiceError::conflict(
                "mfa_required_for_owner",
                "enable two-factor authentication on your own account before requiring it",
            ));
        }
        let mut changed = Vec::new();
        if patch.name.is_some() {
            changed.push("name");
        }
        if patch.require_2fa.is_some() {
            changed.push("require_2fa");
        }
        if patch.message_retention_days.is_some() {
            changed.push("message_retention_days");
        }
        if patch.audit_retention_days.is_some() {
            changed.push("audit_retention_days");
        }
        if patch.erasure.is_some() {
            changed.push("erasure");
        }
        let audit = self
            .audit(actor, "org.settings_changed")
            .resource("org", id)
            .org(id)
            .detail(serde_json::json!({ "changed": changed }));
        let mut entries = vec![audit];
        if let Some(days) = retention_change {
            // Recorded in the server's chain too, which the org's owners cannot prune (DATA-5).
            entries.push(
                self.audit(actor, "org.audit_retention_changed")
                    .resource("org", id)
                    .detail(serde_json::json!({
                        "org_id": id,
                        "from": before.audit_retention_days,
                        "to": days,
                    })),
            );
        }
        let org = self.store.update_org(id, &patch, &entries).await?;
        if org.require_2fa != before.require_2fa {
            // Enforcement holds on open sockets too (AUTH-4a): members without 2FA (and their
            // bots) get ORG_ACCESS_LOST and nothing more of this org, or ORG_ACCESS_RESTORED.
            self.announce_org_2fa(id).await?;
        }
        Ok((org, role))
    }

    /// Every member of an org, read page by page.
    pub(super) async fn all_members(&self, org: OrgId) -> Result<Vec<Member>> {
        let mut all = Vec::new();
        let limit = Limit::parse(Some(100)).unwrap_or_default();
        let mut cursor = crate::store::Cursor::After(UserId(uuid::Uuid::nil()));
        loop {
            let page = self.store.members(org, Page { cursor, limit }).await?;
            let full = page.len() == 100;
            if let Some(last) = page.last() {
                cursor = crate::store::Cursor::After(last.user.id);
            }
            all.extend(page);
            if !full {
                return Ok(all);
            }
        }
    }

    pub async fn delete_org(&self, actor: &Actor, id: OrgId) -> Result<()> {
        Self::require_not_impersonated(actor)?;
        self.require_org(actor, id, OrgAction::DeleteOrg).await?;
        // Every conversation of the org goes with it: collect them first to tell open sockets.
        let mut conversations = std::collections::BTreeSet::new();
        for m in self.all_members(id).await? {
            conversations.extend(
                self.store
                    .user_conversation_ids(m.user.id, Some(id))
                    .await?,
            );
        }
        let mut objects = Vec::with_capacity(conversations.len());
        for conv in conversations {
            objects.push(self.store.conversation(conv).await?);
        }
        // Recorded in the org's own chain (which outlives it) and in the server's.
        let in_org = self.audit(actor, "org.deleted").resource("org", id).org(id);
        let on_server = self.audit(actor, "org.deleted").resource("org", id);
        self.store.delete_org(id, &[in_org, on_server]).await?;
        for conv in objects {
            let drop = Control::Drop {
                conversation: conv.id,
            };
            self.emit(
                Event::conversation("CONVERSATION_DELETE", conv.id, &conv)
                    .in_org(conv.org_id)
                    .with_control(drop),
            );
        }
        Ok(())
    }

    pub async fn transfer_org(&self, actor: &Actor, id: OrgId, to: UserId) -> Result<()> {
        Self::require_not_impersonated(actor)?;
        self.require_org(actor, id, OrgAction::TransferOrg).await?;
        if to == actor.user.id {
            return Err(ServiceError::invalid(
                "user_id",
                "invalid_value",
                "you already own this organization",
            ));
        }
        if self.store.membership(id, to).await?.is_none() {
            return Err(ServiceError::invalid(
                "user_id",
                "not_a_member",
                "the new owner must be a member of the organization",
            ));
        }
        let audit = self
            .audit(actor, "org.ownership_transferred")
            .resource("user", to)
            .org(id);
        Ok(self
            .store
            .transfer_org(id, actor.user.id, to, &[audit])
            .await?)
    }

    pub async fn members(
        &self,
        actor: &Actor,
        org: OrgId,
        page: Page<UserId>,
    ) -> Result<Vec<Member>> {
        self.require_org(actor, org, OrgAction::ViewMembers).await?;
        Ok(self.store.members(org, page).await?)
    }

    /// `POST /orgs/{org}/members`: only a server admin's own signed-in session adds an existing
    /// account without its consent (AZ-7); everyone else is told to invite.
    pub async fn add_member(
        &self,
        actor: &Actor,
        org: OrgId,
        user: UserRef,
        role: OrgRole,
    ) -> Result<Member> {
        Self::require_not_impersonated(actor)?;
        self.require_membership_change(actor, org).await?;
        if !policy::may_add_member_directly(actor.user.server_admin, &actor.credential) {
            // Outsiders learn nothing about the org (AZ-1): 404 before the refusal.
            self.org_role(actor, org).await?;
            self.audit_denied(
                actor,
                "member.add_denied",
                "invite_required",
                Some(org),
                None,
            )
            .await;
            return Err(ServiceError::forbidden(
                "forbidden",
                "only server admins add members directly; send an invite instead",
            ));
        }
        let admin = self.admin_from_actor(actor)?;
        self.admin_add_member(&admin, org, user, role).await
    }

    /// Adds an existing user (by id or username) to an org, for a server admin or the
    /// management token (`POST /admin/orgs/{org}/members`, AZ-7).
    pub async fn admin_add_member(
        &self,
        admin: &ServerAdmin,
        org: OrgId,
        user: UserRef,
        role: OrgRole,
    ) -> Result<Member> {
        self.store.org(org).await.map_err(|e| match e {
            crate::store::StoreError::NotFound => ServiceError::NotFound("organization"),
            other => other.into(),
        })?;
        let found = match user {
            UserRef::Id(id) => self
                .store
                .user(id)
                .await
                .map_err(|_| ServiceError::NotFound("user"))?,
            UserRef::Name(name) => {
                self.store
                    .user_by_username(&name.key())
                    .await?
                    .ok_or(ServiceError::NotFound("user"))?
                    .0
            }
        };
        if found.kind == UserKind::Bot {
            // A bot belongs to the org it was created in (AUTH-6), and joins it only then.
            return Err(ServiceError::invalid(
                "user_id",
                "bot_not_allowed",
                "bots are created in their organization and cannot be added to another",
            ));
        }
        let user_id = found.id;
        self.store
            .add_member(
                org,
                user_id,
                role,
                self.clock.now(),
                &[self
                    .admin_audit(admin, "member.added")
                    .resource("user", user_id)
                    .org(org)
                    .detail(serde_json::json!({ "role": role, "direct": true }))],
            )
            .await?;
        Ok(self.store.member(org, user_id).await?)
    }

    /// Refuses what a bot or key limited to conversations, or an impersonated session, may
    /// not do to memberships (AZ-5a, AUTH-12).
    async fn require_membership_change(&self, actor: &Actor, org: OrgId) -> Result<()> {
        Self::require_not_impersonated(actor)?;
        if policy::credential_allows_org_action(&actor.credential, OrgAction::ManageMembers) {
            Ok(())
        } else {
            self.audit_denied(actor, "org.denied", "insufficient_scope", Some(org), None)
                .await;
            Err(INSUFFICIENT_SCOPE)
        }
    }

    pub async fn set_member_role(
        &self,
        actor: &Actor,
        org: OrgId,
        user: UserId,
        role: OrgRole,
    ) -> Result<Member> {
        self.require_membership_change(actor, org).await?;
        let mine = self.require_org(actor, org, OrgAction::ViewMembers).await?;
        let current = self
            .store
            .membership(org, user)
            .await?
            .ok_or(ServiceError::NotFound("member"))?;
        if !policy::may_manage_member_with_role(mine, current)
            || !policy::may_manage_member_with_role(mine, role)
        {
            return Err(ServiceError::forbidden(
                "forbidden",
                "your role cannot change this member's role",
            ));
        }
        let audit = self
            .audit(actor, "member.role_changed")
            .resource("user", user)
            .org(org)
            .detail(serde_json::json!({ "role": role }));
        self.store
            .set_member_role(org, user, role, &[audit])
            .await?;
        Ok(self.store.member(org, user).await?)
    }

    /// Removes a member, or lets a member leave (any role may leave, but not the last owner).
    pub async fn remove_member(&self, actor: &Actor, org: OrgId, user: UserId) -> Result<()> {
        let mine = self.org_role(actor, org).await?;
        self.require_membership_change(actor, org).await?;
        let target = self
            .store
            .membership(org, user)
            .await?
            .ok_or(ServiceError::NotFound("member"))?;
        if user != actor.user.id && !policy::may_manage_member_with_role(mine, target) {
            return Err(ServiceError::forbidden(
                "forbidden",
                "your role cannot remove this member",
            ));
        }
        let conversations = self.store.user_conversation_ids(user, Some(org)).await?;
        let event = if user == actor.user.id {
            "member.left"
        } else {
            "member.removed"
        };
        let audit = self.audit(actor, event).resource("user", user).org(org);
        self.store.remove_member(org, user, &[audit]).await?;
        for conv in conversations {
            self.announce_removed(conv, user, None);
        }
        Ok(())
    }

    /// Creates an invite; the code is returned once. It expires after 7 days unless told
    /// otherwise. An invite naming a username is for that user only (one use): they see it in
    /// their pending invites. Whether such an account exists is never looked up here, so the
    /// answer (and the work done) is the same either way (AZ-7).
    pub async fn create_invite(
        &self,
        actor: &Actor,
        org: OrgId,
        role: OrgRole,
        max_uses: Option<i32>,
        expires_at: Option<DateTime<Utc>>,
        username: Option<Username>,
    ) -> Result<(Invite, SecretString)> {
        Self::require_not_impersonated(actor)?;
        let mine = self
            .require_org(actor, org, OrgAction::CreateInvite)
            .await?;
        if !policy::may_manage_member_with_role(mine, role) {
            return Err(ServiceError::forbidden(
                "forbidden",
                "your role cannot invite with that role",
            ));
        }
        if let Some(m) = max_uses {
            if !(1..=100_000).contains(&m) {
                return Err(ServiceError::invalid(
                    "max_uses",
                    "out_of_range",
                    "must be between 1 and 100000",
                ));
            }
            if username.is_some() && m != 1 {
                return Err(ServiceError::invalid(
                    "max_uses",
                    "out_of_range",
                    "an invite naming a user is used once",
                ));
            }
        }
        let now = self.clock.now();
        if expires_at.is_some_and(|e| e <= now) {
            return Err(ServiceError::invalid(
                "expires_at",
                "in_past",
                "must be in the future",
            ));
        }
        let invite = Invite {
            id: InviteId::new(),
            org_id: org,
            role,
            max_uses: if username.is_some() {
                Some(1)
            } else {
                max_uses
            },
            uses: 0,
            expires_at: Some(expires_at.unwrap_or(now + INVITE_DEFAULT_TTL)),
            username: username.map(|u| u.key()),
            created_by: actor.user.id,
            created_at: now,
        };
        let code = token::generate(TokenKind::Invite);
        self.store
            .create_invite(
                &invite,
                &token::hash(&self.keys.token_pepper, code.expose_secret()),
                &[self
                    .audit(actor, "invite.created")
                    .resource("invite", invite.id)
                    .org(invite.org_id)
                    .detail(serde_json::json!({
                        "role": invite.role,
                        "max_uses": invite.max_uses,
                        "username": invite.username,
                        "expires_at": invite.expires_at,
                    }))],
            )
            .await?;
        Ok((invite, code))
    }

    /// The org's invites, for those who may make them.
    pub async fn invites(&self, actor: &Actor, org: OrgId) -> Result<Vec<Invite>> {
        self.require_org(actor, org, OrgAction::CreateInvite)
            .await?;
        Ok(self.store.org_invites(org).await?)
    }

    /// Revokes an invite of the org: its code and its pending entry stop working at once.
    pub async fn revoke_invite(&self, actor: &Actor, org: OrgId, id: InviteId) -> Result<()> {
        Self::require_not_impersonated(actor)?;
        self.require_org(actor, org, OrgAction::CreateInvite)
            .await?;
        let audit = self
            .audit(actor, "invite.revoked")
            .resource("invite", id)
            .org(org);
        self.store
            .revoke_invite(org, id, &[audit])
            .await
            .map_err(|e| match e {
                crate::store::StoreError::NotFound => ServiceError::NotFound("invite"),
                other => other.into(),
            })
    }

    /// The invites naming the caller that they can still accept.
    pub async fn my_invites(&self, actor: &Actor) -> Result<Vec<PendingInvite>> {
        Self::require_session(actor)?;
        Ok(self
            .store
            .pending_invites(actor.user.id, self.clock.now())
            .await?)
    }

    /// Accepts an invite naming the caller: their consent to join (AZ-7). 404 for an invite
    /// that does not name them, is used, expired or revoked.
    pub async fn accept_invite(&self, actor: &Actor, id: InviteId) -> Result<(Org, OrgRole)> {
        Self::require_own_session(actor)?;
        // The org is known only once the invite is taken; the row names it in its detail and
        // is filed in the org's chain from the invite itself.
        let pending = self
            .store
            .pending_invites(actor.user.id, self.clock.now())
            .await?;
        let mut audit = self
            .audit(actor, "invite.accepted")
            .resource("invite", id)
            .detail(serde_json::json!({ "user_id": actor.user.id }));
        if let Some(p) = pending.iter().find(|p| p.id == id) {
            audit = audit
                .org(p.org_id)
                .detail(serde_json::json!({ "user_id": actor.user.id, "role": p.role }));
        }
        let invite = self
            .store
            .accept_invite(id, actor.user.id, self.clock.now(), &[audit])
            .await
            .map_err(|e| match e {
                crate::store::StoreError::NotFound => ServiceError::NotFound("invite"),
                other => other.into(),
            })?;
        Ok((self.store.org(invite.org_id).await?, invite.role))
    }

    /// Joins the org of an invite code.
    pub async fn join_org(&self, actor: &Actor, code: &str) -> Result<(Org, OrgRole)> {
        Self::require_own_session(actor)?;
        let hash = self
            .usable_invite(code, &actor.user.username.to_ascii_lowercase())
            .await
            .map_err(|_| {
                ServiceError::invalid(
                    "code",
                    "invite_invalid",
                    "the invite code is invalid, expired or used up",
                )
            })?;
        let mut audit = self
            .audit(actor, "member.joined")
            .resource("user", actor.user.id);
        if let Some(i) = self.store.invite_by_code(&hash).await? {
            audit = audit
                .org(i.org_id)
                .detail(serde_json::json!({ "role": i.role, "invite_id": i.id }));
        }
        let invite = self
            .store
            .redeem_invite(&hash, actor.user.id, self.clock.now(), &[audit])
            .await?;
        Ok((self.store.org(invite.org_id).await?, invite.role))
    }

    pub async fn teams(&self, actor: &Actor, org: OrgId) -> Result<Vec<Team>> {
        self.require_org(actor, org, OrgAction::ViewTeams).await?;
        Ok(self.store.teams(org).await?)
    }

    pub async fn create_team(&self, actor: &Actor, org: OrgId, name: Name) -> Result<Team> {
        Self::require_not_impersonated(actor)?;
        self.require_org(actor, org, OrgAction::ManageTeams).await?;
        let team = Team {
            id: TeamId::new(),
            org_id: org,
            name: name.into_inner(),
            member_ids: vec![],
            created_at: self.clock.now(),
        };
        let audit = self
            .audit(actor, "team.created")
            .resource("team", team.id)
            .org(org);
        self.store.create_team(&team, &[audit]).await?;
        Ok(team)
    }

    async fn org_team(&self, actor: &Actor, org: OrgId, team: TeamId) -> Result<Team> {
        Self::require_not_impersonated(actor)?;
        self.require_org(actor, org, OrgAction::ManageTeams).await?;
        let t = self
            .store
            .team(team)
            .await
            .map_err(|_| ServiceError::NotFound("team"))?;
        if t.org_id != org {
            return Err(ServiceError::NotFound("team"));
        }
        Ok(t)
    }

    pub async fn add_team_member(
        &self,
        actor: &Actor,
        org: OrgId,
        team: TeamId,
        user: UserId,
    ) -> Result<Team> {
        self.org_team(actor, org, team).await?;
        if self.store.membership(org, user).await?.is_none() {
            return Err(ServiceError::NotFound("member"));
        }
        let audit = self
            .audit(actor, "team.member_added")
            .resource("user", user)
            .org(org)
            .detail(serde_json::json!({ "team_id": team }));
        self.store.add_team_member(team, user, &[audit]).await?;
        Ok(self.store.team(team).await?)
    }

    pub async fn remove_team_member(
        &self,
        actor: &Actor,
        org: OrgId,
        team: TeamId,
        user: UserId,
    ) -> Result<()> {
        self.org_team(actor, org, team).await?;
        self.store
            .remove_team_member(
                team,
                user,
                &[self
                    .audit(actor, "team.member_removed")
                    .resource("user", user)
                    .org(org)
                    .detail(serde_json::json!({ "team_id": team }))],
            )
            .await
            .map_err(|_| ServiceError::NotFound("team member"))
    }

    /// The matrix of org actions by role, and what each member may do.
    pub async fn permissions_matrix(&self, actor: &Actor, org: OrgId) -> Result<PermissionsMatrix> {
        self.require_org(actor, org, OrgAction::ViewMembers).await?;
        let roles = OrgAction::ALL
            .iter()
            .map(|&action| MatrixEntry {
                action,
                owner: policy::org_allows(OrgRole::Owner, action),
                admin: policy::org_allows(OrgRole::Admin, action),
                member: policy::org_allows(OrgRole::Member, action),
                viewer: policy::org_allows(OrgRole::Viewer, action),
            })
            .collect();
        let members = self
            .all_members(org)
            .await?
            .into_iter()
            .map(|m| MemberPermissions {
                user_id: m.user.id,
                username: m.user.username,
                role: m.role,
                actions: OrgAction::ALL
                    .iter()
                    .copied()
                    .filter(|&a| policy::org_allows(m.role, a))
                    .collect(),
            })
            .collect();
        Ok(PermissionsMatrix {
            org_id: org,
            roles,
            members,
        })
    }
}

/// A user named by id or by username.
#[derive(Debug, Clone)]
pub enum UserRef {
    Id(UserId),
    Name(Username),
}
