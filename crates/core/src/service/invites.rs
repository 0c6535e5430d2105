//! Org invites (AZ-7): owners and admins make invite codes or invite a username, which that
//! user sees in their pending invites and accepts; joining an org always takes the invitee's
//! consent. An invite never grants more than its maker could.

use super::OrgView;
use super::{Actor, Result, Services};
use crate::error::ServiceError;
use crate::ids::*;
use crate::model::*;
use crate::policy::{self, OrgAction};
use crate::store::{Conflict, InviteUse, StoreError};
use crate::token::{self, TokenKind};
use crate::types::*;
use chrono::{DateTime, Duration, Utc};
use secrecy::{ExposeSecret, SecretString};

/// How long an invite lasts when its maker does not say (AZ-7).
pub const INVITE_DEFAULT_TTL: Duration = Duration::days(7);

impl Services {
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
            return Err(ServiceError::not_allowed(
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
        check_expiry(expires_at, now)?;
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
            .map_err(ServiceError::missing("invite"))
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
    pub async fn accept_invite(&self, actor: &Actor, id: InviteId) -> Result<OrgView> {
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
        let (invite, member) = self
            .store
            .accept_invite(id, self.invite_use(actor.user.id), &[audit])
            .await
            .map_err(ServiceError::missing("invite"))?;
        self.announce_member_added(&member);
        let org = self.store.org(invite.org_id).await?;
        Ok(Self::org_view(actor, org, invite.role))
    }

    /// `user` using an invite now.
    pub(super) fn invite_use(&self, user: UserId) -> InviteUse {
        InviteUse {
            user,
            at: self.clock.now(),
        }
    }

    /// Joins the org of an invite code.
    pub async fn join_org(&self, actor: &Actor, code: &str) -> Result<OrgView> {
        Self::require_own_session(actor)?;
        let hash = self
            .usable_invite(code, &actor.user.username.to_ascii_lowercase())
            .await
            .map_err(|_| invite_invalid("code"))?;
        let mut audit = self.own_audit(actor, "member.joined");
        if let Some(i) = self.store.invite_by_code(&hash).await? {
            audit = audit
                .org(i.org_id)
                .detail(serde_json::json!({ "role": i.role, "invite_id": i.id }));
        }
        let (invite, member) = self
            .store
            .redeem_invite(&hash, self.invite_use(actor.user.id), &[audit])
            .await
            .map_err(invite_refused("code"))?;
        self.announce_member_added(&member);
        let org = self.store.org(invite.org_id).await?;
        Ok(Self::org_view(actor, org, invite.role))
    }
}

/// 422 on `field`: an invite code unknown, expired, used up, someone else's or no longer
/// backed by its maker's rights, all alike.
/// An `expires_at` a client chose: after `now`, and before the year 10000 — times are kept as
/// RFC 3339 text on SQLite, which a five-digit year would sort before every other (so such an
/// invite or key would be listed, but never work there); 422 `in_past` / `out_of_range`.
pub(super) fn check_expiry(expires_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Result<()> {
    use chrono::Datelike;
    match expires_at {
        Some(e) if e <= now => Err(ServiceError::invalid(
            "expires_at",
            "in_past",
            "must be in the future",
        )),
        Some(e) if e.year() > 9999 => Err(ServiceError::invalid(
            "expires_at",
            "out_of_range",
            "must be before the year 10000",
        )),
        _ => Ok(()),
    }
}

pub(super) fn invite_invalid(field: &str) -> ServiceError {
    ServiceError::invalid(
        field,
        "invite_invalid",
        "the invite code is invalid, expired or used up",
    )
}

/// A store error of using an invite as the caller sees it: an invite used up, expired or no
/// longer backed by its maker since it was checked gets the answer it would have got at the
/// check, [`invite_invalid`] on `field`, whoever won the race.
pub(super) fn invite_refused(field: &'static str) -> impl Fn(StoreError) -> ServiceError {
    move |e| match e {
        StoreError::Conflict(Conflict::InviteExhausted) => invite_invalid(field),
        e => e.into(),
    }
}
