//! An org's members and teams. Only a server admin (or the management token) adds an existing
//! account directly (AZ-7); everyone else invites (`invites`). Owners are handled only by
//! owners, anyone may leave, and bots and keys limited to a conversation list change nothing
//! here (AZ-5a).

use super::credentials::INSUFFICIENT_SCOPE;
use super::{Actor, Result, ServerAdmin, Services};
use crate::error::ServiceError;
use crate::ids::*;
use crate::model::*;
use crate::policy::{self, OrgAction};
use crate::store::Page;
use crate::types::*;

impl Services {
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
        if !policy::may_join_org_directly(found.kind) {
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
        if !policy::may_change_member_role(mine, current, role) {
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
        if !policy::may_remove_member(mine, target, user == actor.user.id) {
            return Err(ServiceError::forbidden(
                "forbidden",
                "your role cannot remove this member",
            ));
        }
        let event = if user == actor.user.id {
            "member.left"
        } else {
            "member.removed"
        };
        let audit = self.audit(actor, event).resource("user", user).org(org);
        // The conversations come from the removal's own transaction: one joined meanwhile is
        // announced too, so no socket keeps receiving it.
        let conversations = self.store.remove_member(org, user, &[audit]).await?;
        for conv in conversations {
            self.announce_removed(conv, user, None);
        }
        Ok(())
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
}

/// A user named by id or by username.
#[derive(Debug, Clone)]
pub enum UserRef {
    Id(UserId),
    Name(Username),
}
