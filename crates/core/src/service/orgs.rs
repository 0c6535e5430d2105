//! Organizations, their members, invites and teams, and the permissions matrix.

use super::{Actor, Result, Services};
use crate::error::ServiceError;
use crate::event::{Control, Event};
use crate::ids::*;
use crate::model::*;
use crate::policy::{self, OrgAction};
use crate::store::{OrgPatch, Page};
use crate::token::{self, TokenKind};
use crate::types::*;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

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
        Self::require_session(actor)?;
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
        let role = self.require_org(actor, id, OrgAction::UpdateOrg).await?;
        if patch.require_2fa == Some(true) && !self.has_2fa(actor.user.id).await? {
            // Requiring 2FA without having it would lock the caller out of their own org.
            return Err(ServiceError::conflict(
                "mfa_required_for_owner",
                "enable two-factor authentication on your own account before requiring it",
            ));
        }
        let before = self.store.org(id).await?;
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
        let org = self.store.update_org(id, &patch, &[audit]).await?;
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
                Event::conversation("CONVERSATION_DELETE", conv.id, &conv).with_control(drop),
            );
        }
        Ok(())
    }

    pub async fn transfer_org(&self, actor: &Actor, id: OrgId, to: UserId) -> Result<()> {
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

    /// Adds an existing user (by id or username) with a role the caller may grant.
    pub async fn add_member(
        &self,
        actor: &Actor,
        org: OrgId,
        user: UserRef,
        role: OrgRole,
    ) -> Result<Member> {
        let mine = self
            .require_org(actor, org, OrgAction::ManageMembers)
            .await?;
        if !policy::may_manage_member_with_role(mine, role) {
            return Err(ServiceError::forbidden(
                "forbidden",
                "your role cannot grant that role",
            ));
        }
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
                    .audit(actor, "member.added")
                    .resource("user", user_id)
                    .org(org)
                    .detail(serde_json::json!({ "role": role }))],
            )
            .await?;
        Ok(self.store.member(org, user_id).await?)
    }

    pub async fn set_member_role(
        &self,
        actor: &Actor,
        org: OrgId,
        user: UserId,
        role: OrgRole,
    ) -> Result<Member> {
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

    /// Creates an invite; the code is returned once.
    pub async fn create_invite(
        &self,
        actor: &Actor,
        org: OrgId,
        role: OrgRole,
        max_uses: Option<i32>,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<(Invite, SecretString)> {
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
        }
        if expires_at.is_some_and(|e| e <= self.clock.now()) {
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
            max_uses,
            uses: 0,
            expires_at,
            created_by: actor.user.id,
            created_at: self.clock.now(),
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
                    .detail(
                        serde_json::json!({ "role": invite.role, "max_uses": invite.max_uses }),
                    )],
            )
            .await?;
        Ok((invite, code))
    }

    /// Joins the org of an invite code.
    pub async fn join_org(&self, actor: &Actor, code: &str) -> Result<(Org, OrgRole)> {
        Self::require_session(actor)?;
        let hash = self.usable_invite(code).await.map_err(|_| {
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
