//! Org-enforced 2FA (AUTH-4a): who is locked out of an org that requires 2FA, on every
//! credential — a session or key by its user, a bot by the member who created it (a bot cannot
//! hold a second factor) — and telling open sockets when that changes (`ORG_ACCESS_LOST`,
//! `ORG_ACCESS_RESTORED`). Locked out means 403 `mfa_setup_required` on the org's routes,
//! nothing of the org listed, and none of its gateway events.

use super::{Actor, Result, Services};
use crate::cache::ConversationFacts;
use crate::credential::Credential;
use crate::error::ServiceError;
use crate::event::{Cached, Event};
use crate::ids::{OrgId, UserId};
use crate::mfa::OrgStanding;
use crate::model::Org;
use crate::policy::{self, ConversationAccess, ConversationAction};
use std::collections::HashSet;

const MFA_SETUP_REQUIRED: ServiceError = ServiceError::forbidden(
    "mfa_setup_required",
    "this organization requires two-factor authentication: enable it under /auth/totp",
);

/// What a bot is told when the member who created it lacks the 2FA its org requires.
const OWNER_MFA_SETUP_REQUIRED: ServiceError = ServiceError::forbidden(
    "mfa_setup_required",
    "this organization requires two-factor authentication of the member who created \
              this bot: they must enable it first",
);

/// Why a socket lost an org (`ORG_ACCESS_LOST.reason`).
pub const REASON_2FA_REQUIRED: &str = "mfa_setup_required";

impl Services {
    /// Org-enforced 2FA (AUTH-4a) for a caller with `standing` in `org`: 403
    /// `mfa_setup_required` when the org requires 2FA and the person behind the credential
    /// lacks it — the user of a session or key, or for a bot (which cannot hold a second
    /// factor) the member who created it.
    pub(super) async fn check_2fa_standing(
        &self,
        actor: &Actor,
        org: OrgId,
        standing: &OrgStanding,
    ) -> Result<()> {
        if !standing.needs_2fa_setup() {
            return Ok(());
        }
        match &actor.credential {
            Credential::Bot { bot, .. } => {
                let creator = self.store.bot(*bot).await?.created_by;
                if self.creator_locked_out(creator, org).await? {
                    Err(OWNER_MFA_SETUP_REQUIRED)
                } else {
                    Ok(())
                }
            }
            Credential::Session | Credential::ApiKey { .. } | Credential::OAuth { .. } => {
                Err(MFA_SETUP_REQUIRED)
            }
        }
    }

    /// Whether the member who created a bot is locked out of `org` (a bot whose creator is
    /// gone or no longer a member answers to nobody's second factor).
    async fn creator_locked_out(&self, creator: Option<UserId>, org: OrgId) -> Result<bool> {
        let Some(creator) = creator else {
            return Ok(false);
        };
        Ok(self
            .store
            .org_standing(org, creator)
            .await?
            .is_some_and(|s| s.needs_2fa_setup()))
    }

    /// Whether `user` (a person or a bot account) may not read `org` now because the org
    /// requires 2FA (AUTH-4a); false when they are no member.
    pub(super) async fn locked_out(&self, user: UserId, org: OrgId) -> Result<bool> {
        let Some(standing) = self.store.org_standing(org, user).await? else {
            return Ok(false);
        };
        if !standing.needs_2fa_setup() {
            return Ok(false);
        }
        if policy::holds_own_second_factor(self.store.user(user).await?.kind) {
            return Ok(true);
        }
        let creator = self
            .store
            .bots(org)
            .await?
            .into_iter()
            .find(|b| b.user_id == user)
            .and_then(|b| b.created_by);
        self.creator_locked_out(creator, org).await
    }

    /// The orgs among `orgs` the caller may not read now (AUTH-4a): nothing of them is listed
    /// or delivered to any of the caller's credentials.
    pub(super) async fn locked_orgs<'a>(
        &self,
        actor: &Actor,
        orgs: impl IntoIterator<Item = &'a Org>,
    ) -> Result<HashSet<OrgId>> {
        let requiring: Vec<OrgId> = orgs
            .into_iter()
            .filter(|o| o.require_2fa && actor.credential.covers_org(o.id))
            .map(|o| o.id)
            .collect();
        if requiring.is_empty() {
            return Ok(HashSet::new());
        }
        let mut locked = HashSet::new();
        match &actor.credential {
            Credential::Bot { bot, .. } => {
                let creator = self.store.bot(*bot).await?.created_by;
                for org in requiring {
                    if self.creator_locked_out(creator, org).await? {
                        locked.insert(org);
                    }
                }
            }
            Credential::Session | Credential::ApiKey { .. } | Credential::OAuth { .. } => {
                if !self.has_2fa(actor.user.id).await? {
                    locked.extend(requiring);
                }
            }
        }
        Ok(locked)
    }

    /// Tells open sockets that `org`'s requirement changed: every member without 2FA, and every
    /// bot such a member created in the org, gets `ORG_ACCESS_LOST` (or `ORG_ACCESS_RESTORED`).
    /// Called after the change committed; the requirement is read again just before the events
    /// go out, so of two concurrent changes the later announcement tells the final state.
    pub(super) async fn announce_org_2fa(&self, org: OrgId) -> Result<()> {
        let mut lacking = HashSet::new();
        for m in self.all_members(org).await? {
            if policy::holds_own_second_factor(m.user.kind) && !self.has_2fa(m.user.id).await? {
                lacking.insert(m.user.id);
            }
        }
        let bots = self.store.bots(org).await?;
        let bot_users = bots
            .iter()
            .filter(|b| b.created_by.is_some_and(|c| lacking.contains(&c)))
            .map(|b| b.user_id);
        let users: Vec<UserId> = lacking.iter().copied().chain(bot_users).collect();
        let required = self.store.org(org).await?.require_2fa;
        for user in users {
            self.emit(if required {
                Event::org_access_lost(user, org, REASON_2FA_REQUIRED)
            } else {
                Event::org_access_restored(user, org)
            });
        }
        Ok(())
    }

    /// Tells open sockets that `user` turned 2FA on or off: they (and the bots they created)
    /// regain or lose every org of theirs that requires it. Called after the change committed;
    /// whether 2FA is on is read again just before the events go out.
    pub(super) async fn announce_own_2fa(&self, user: UserId) -> Result<()> {
        // Whether they have 2FA is cached for their gate and in each of their org standings.
        self.stale(vec![Cached::User(user)]);
        let mut events = Vec::new();
        for (org, _) in self.store.orgs_for_user(user).await? {
            if !org.require_2fa {
                continue;
            }
            let bots = self.store.bots(org.id).await?;
            let mine = bots
                .iter()
                .filter(|b| b.created_by == Some(user))
                .map(|b| b.user_id);
            events.extend(std::iter::once(user).chain(mine).map(|u| (u, org.id)));
        }
        let enabled = self.has_2fa(user).await?;
        for (u, org) in events {
            self.emit(if enabled {
                Event::org_access_restored(u, org)
            } else {
                Event::org_access_lost(u, org, REASON_2FA_REQUIRED)
            });
        }
        Ok(())
    }

    /// Org-enforced 2FA on a conversation's org: 403 `mfa_setup_required` when the caller could
    /// otherwise see it, 404 when they could not (so a conversation's existence still does not
    /// leak).
    pub(super) async fn check_conversation_2fa(
        &self,
        actor: &Actor,
        conv: &ConversationFacts,
        access: &ConversationAccess,
    ) -> Result<()> {
        if access.org_role.is_none() {
            return Ok(());
        }
        let Some(standing) = self.standing(conv.org_id, actor.user.id).await? else {
            return Ok(());
        };
        match self.check_2fa_standing(actor, conv.org_id, &standing).await {
            Err(_) if !policy::conversation_allows(access, ConversationAction::See) => {
                Err(ServiceError::NotFound("conversation"))
            }
            other => other,
        }
    }
}
