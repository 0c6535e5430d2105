//! Privacy (DATA-6): exporting a user's own messages and erasing an account.

use super::StoreResult;
use crate::audit::AuditEntry;
use crate::ids::*;
use crate::model::*;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// Export and erasure of accounts.
#[async_trait]
pub trait PrivacyStore: Send + Sync + 'static {
    /// The user's own messages, by id (time order), after `after`.
    async fn messages_by_author(
        &self,
        user: UserId,
        after: Option<MessageId>,
        limit: i64,
    ) -> StoreResult<Vec<Message>>;
    /// Erases an account in one transaction: tombstones the user's messages in
    /// `tombstone_orgs`; elsewhere they keep their content but move to the org's placeholder
    /// author (one per org, created on first use: kind user, disabled, erased, no
    /// credentials), so the erased id leads to none of them; the account is renamed
    /// `anonymous_name`; removes every membership
    /// (and participation), deletes sessions, API keys, 2FA and resume state, and scrubs the
    /// profile (name, email, password; disabled). `LastOrgOwner` while the user is an org's
    /// only owner. Answers how many messages were tombstoned.
    async fn erase_user(
        &self,
        user: UserId,
        tombstone_orgs: &[OrgId],
        anonymous_name: &str,
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> StoreResult<u64>;
}
