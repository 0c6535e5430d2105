//! Reads through this node's cache (`crate::cache`): the rows `access` and the 2FA gate read on
//! every request, answered from memory while a fresh copy is held and from the store (then
//! kept) otherwise. Credentials are read through it by `identify` itself (`auth`,
//! `credentials`), where their checks are.

use super::{Result, Services};
use crate::cache::{
    ConversationFacts, Conversations, Kind, Participants, SecondFactor, Standings, Teams,
};
use crate::error::ServiceError;
use crate::ids::{ConversationId, OrgId, TeamId, UserId};
use crate::mfa::OrgStanding;
use crate::store::StoreResult;
use crate::types::ConversationRole;
use std::future::Future;

impl Services {
    /// The copy of `key` the cache holds, or what `load` reads from the store (then kept). The
    /// ticket is taken before the read, so a read that raced an invalidation is not kept.
    pub(super) async fn read_through<K: Kind, F>(
        &self,
        key: K::Key,
        load: impl FnOnce() -> F,
    ) -> StoreResult<K::Value>
    where
        F: Future<Output = StoreResult<K::Value>>,
    {
        let now = self.clock.now();
        if let Some(value) = self.cache.get::<K>(&key, now) {
            return Ok(value);
        }
        let ticket = self.cache.ticket(now);
        let value = load().await?;
        self.cache.put::<K>(ticket, key, value.clone());
        Ok(value)
    }

    /// `user`'s standing in `org` (role, and the 2FA the org requires and they have); `None`
    /// when they are no member.
    pub(super) async fn standing(&self, org: OrgId, user: UserId) -> Result<Option<OrgStanding>> {
        let load = || self.store.org_standing(org, user);
        Ok(self.read_through::<Standings, _>((org, user), load).await?)
    }

    /// `user`'s role in `conv`; `None` when they do not take part.
    pub(super) async fn participation(
        &self,
        conv: ConversationId,
        user: UserId,
    ) -> Result<Option<ConversationRole>> {
        let load = || self.store.participant_role(conv, user);
        Ok(self
            .read_through::<Participants, _>((conv, user), load)
            .await?)
    }

    /// The teams of `org` that `user` is in.
    pub(super) async fn teams_of(&self, org: OrgId, user: UserId) -> Result<Vec<TeamId>> {
        let load = || self.store.user_teams(org, user);
        Ok(self.read_through::<Teams, _>((org, user), load).await?)
    }

    /// What policy reads of conversation `id`; 404 `conversation` when there is none.
    pub(super) async fn conversation_facts(&self, id: ConversationId) -> Result<ConversationFacts> {
        let load = || async move {
            let conv = self.store.conversation(id).await?;
            Ok(ConversationFacts::from(&conv))
        };
        self.read_through::<Conversations, _>(id, load)
            .await
            .map_err(ServiceError::missing("conversation"))
    }

    /// Whether `user` has 2FA on, for the per-user 2FA gate of every request (AUTH-4a). Sign-in
    /// and the 2FA routes read the store itself ([`Self::has_2fa`]).
    pub(super) async fn second_factor_on(&self, user: UserId) -> Result<bool> {
        let load = || async move {
            let enrolment = self.store.totp_enrolment(user).await?;
            Ok(enrolment.is_some_and(|e| e.enabled()))
        };
        Ok(self.read_through::<SecondFactor, _>(user, load).await?)
    }
}
