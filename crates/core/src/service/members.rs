//! An org's members and teams. Only a server admin (or the management token) adds an existing
//! account directly (AZ-7); everyone else invites (`invites`). Owners are handled only by
//! owners, anyone may leave, and bots and keys limited to a conversation list change nothing
//! here (AZ-5a).
//!
//! Every membership change, wherever it happens (here, invites, registration, bots, transfers,
//! erasure), is announced after its commit as a `_MEMBER_*` event carrying the member object of
//! `GET /orgs/{org}/members`: for the org's webhooks only, as no client event exists for it.

use super::credentials::INSUFFICIENT_SCOPE;
use super::{Actor, Result, ServerAdmin, Services};
use crate::error::ServiceError;
use crate::event::{Cached, Control, Event};
use crate::ids::*;
use crate::model::*;
use crate::policy::{self, OrgAction};
use crate::store::{DecidedOn, Membership, Page, Removed, StoreError};
use crate::types::*;

/// 422 naming `field`: a bot cannot own an org (`policy::may_own_org`).
pub(super) fn bot_owner(field: &'static str) -> ServiceError {
    ServiceError::invalid(field, "bot_not_allowed", "a bot cannot own an organization")
}

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
            return Err(ServiceError::not_allowed(
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
        self.store
            .org(org)
            .await
            .map_err(ServiceError::missing("organization"))?;
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
        let member = self
            .store
            .add_member(
                Membership {
                    org,
                    user: user_id,
                    role,
                },
                self.clock.now(),
                &[self
                    .admin_audit(admin, "member.added")
                    .resource("user", user_id)
                    .org(org)
                    .detail(serde_json::json!({ "role": role, "direct": true }))],
            )
            .await?;
        self.announce_member_added(&member);
        Ok(member)
    }

    /// `member.added`, after the membership's commit.
    pub(super) fn announce_member_added(&self, member: &Member) {
        self.stale(vec![Cached::User(member.user.id)]);
        self.emit(Event::member("_MEMBER_ADDED", member));
    }

    /// `member.role_changed`, after the change's commit.
    pub(super) fn announce_role_changed(&self, member: &Member) {
        self.stale(vec![Cached::User(member.user.id)]);
        self.emit(Event::member("_MEMBER_ROLE_CHANGED", member));
    }

    /// A member's removal, after its commit: each conversation they left first (their last
    /// event of it), then `member.removed`.
    pub(super) fn announce_member_removed(&self, removed: &Removed) {
        self.stale(vec![Cached::User(removed.member.user.id)]);
        for p in &removed.participations {
            self.announce_removed(p);
        }
        self.emit(Event::member("_MEMBER_REMOVED", &removed.member));
        // A bot is its org's alone: out of it, its token is dead (`authenticate_bot`), and so
        // are its open sockets (AZ-5).
        if removed.member.user.kind == UserKind::Bot {
            self.emit(Event::control(Control::RevokeUser {
                user: removed.member.user.id,
                except: None,
            }));
        }
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
            return Err(ServiceError::not_allowed(
                "your role cannot change this member's role",
            ));
        }
        if role == OrgRole::Owner && !policy::may_own_org(self.existing_user(user).await?.kind) {
            return Err(bot_owner("role"));
        }
        let audit = self
            .audit(actor, "member.role_changed")
            .resource("user", user)
            .org(org)
            .detail(serde_json::json!({ "role": role }));
        // Made only while the rule still allows it on the roles held then: the decision
        // above read them before the change's transaction (the caller's from the cache).
        let allows = |mine: Option<OrgRole>, current: OrgRole| {
            mine.is_some_and(|m| policy::may_change_member_role(m, current, role))
        };
        let decided = DecidedOn {
            by: actor.user.id,
            allows: &allows,
        };
        let (member, changed) = self
            .store
            .set_member_role(Membership { org, user, role }, Some(decided), &[audit])
            .await?;
        if changed {
            self.announce_role_changed(&member);
        }
        Ok(member)
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
            return Err(ServiceError::not_allowed(
                "your role cannot remove this member",
            ));
        }
        let leaving = user == actor.user.id;
        let event = if leaving {
            "member.left"
        } else {
            "member.removed"
        };
        let audit = self.audit(actor, event).resource("user", user).org(org);
        // Anyone may leave; a removal by someone else is made only while the roles it was
        // allowed on still hold.
        let allows = |mine: Option<OrgRole>, target: OrgRole| {
            mine.is_some_and(|m| policy::may_remove_member(m, target, false))
        };
        let decided = (!leaving).then_some(DecidedOn {
            by: actor.user.id,
            allows: &allows,
        });
        // The conversations come from the removal's own transaction: one joined meanwhile is
        // announced too, so no socket keeps receiving it.
        let removed = self
            .store
            .remove_member(org, user, decided, &[audit])
            .await?;
        self.announce_member_removed(&removed);
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
        // The store checks membership again under the org's lock: a removal racing this one
        // wins or takes the new place along.
        self.store
            .add_team_member(team, user, &[audit])
            .await
            .map_err(|e| match e {
                StoreError::NotFound => ServiceError::NotFound("member"),
                e => e.into(),
            })?;
        // Teams widen what the user may see (team visibility).
        self.stale(vec![Cached::User(user)]);
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
            .map_err(|_| ServiceError::NotFound("team member"))?;
        self.stale(vec![Cached::User(user)]);
        Ok(())
    }
}

/// A user named by id or by username.
#[derive(Debug, Clone)]
pub enum UserRef {
    Id(UserId),
    Name(Username),
}
