//! Bots and API keys: creation, lookup by token hash and secret rotation with a grace period.

use super::{Seen, StoreResult};
use crate::audit::AuditEntry;
use crate::ids::*;
use crate::model::*;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// Which secret of a bot or API key a presented token matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretSlot {
    Current,
    /// The one replaced by the last rotation; valid only until its grace period ends.
    Previous,
}

/// A new secret for a bot or API key, as stored: its id, keyed hash and non-secret tail.
#[derive(Debug, Clone)]
pub struct NewSecret {
    pub id: SessionId,
    pub hash: [u8; 32],
    pub hint: String,
}

/// Replaces a bot's or key's secret. The current one becomes the previous one until
/// `keep_previous_until`, or is dropped at once when that is `None`; an older previous secret
/// is always dropped.
#[derive(Debug, Clone)]
pub struct Rotation {
    pub secret: NewSecret,
    pub keep_previous_until: Option<DateTime<Utc>>,
}

/// A bot to create: the bot, its account (kind bot, made a member of the bot's org) and the
/// keyed hash of its first token.
#[derive(Debug, Clone, Copy)]
pub struct NewBot<'a> {
    pub bot: &'a Bot,
    pub account: &'a NewUser,
    pub token_hash: &'a [u8],
}

/// Bots and API keys.
#[async_trait]
pub trait CredentialStore: Send + Sync + 'static {
    /// Creates the bot's account (`user`, kind bot), its membership (role member) in the bot's
    /// org and the bot with its first secret, in one transaction; answers the membership.
    async fn create_bot(&self, new: &NewBot<'_>, audit: &[AuditEntry]) -> StoreResult<Member>;
    async fn bot(&self, id: BotId) -> StoreResult<Bot>;
    /// An org's bots, oldest first.
    async fn bots(&self, org: OrgId) -> StoreResult<Vec<Bot>>;
    /// The bot whose current or previous token has this hash (expiry is the caller's to check).
    async fn bot_by_token_hash(&self, token_hash: &[u8]) -> StoreResult<Option<(Bot, SecretSlot)>>;
    /// Rotates the bot's token atomically; answers the bot before and after.
    async fn rotate_bot_token(
        &self,
        id: BotId,
        rotation: &Rotation,
        audit: &[AuditEntry],
    ) -> StoreResult<(Bot, Bot)>;
    async fn create_api_key(
        &self,
        key: &ApiKey,
        token_hash: &[u8],
        audit: &[AuditEntry],
    ) -> StoreResult<()>;
    async fn api_key(&self, id: ApiKeyId) -> StoreResult<ApiKey>;
    /// A user's API keys, oldest first.
    async fn api_keys(&self, user: UserId) -> StoreResult<Vec<ApiKey>>;
    /// The key whose current or previous secret has this hash (expiry is the caller's to check).
    async fn api_key_by_token_hash(
        &self,
        token_hash: &[u8],
    ) -> StoreResult<Option<(ApiKey, SecretSlot)>>;
    /// Rotates the key's secret atomically; answers the key before and after.
    async fn rotate_api_key(
        &self,
        id: ApiKeyId,
        rotation: &Rotation,
        audit: &[AuditEntry],
    ) -> StoreResult<(ApiKey, ApiKey)>;
    /// Deletes one of the user's keys and answers it; `NotFound` if it is not theirs.
    async fn delete_api_key(
        &self,
        user: UserId,
        id: ApiKeyId,
        audit: &[AuditEntry],
    ) -> StoreResult<ApiKey>;
    /// Records the last use; a key deleted meanwhile stays gone.
    async fn touch_api_key(&self, id: ApiKeyId, seen: Seen<'_>) -> StoreResult<()>;
}
