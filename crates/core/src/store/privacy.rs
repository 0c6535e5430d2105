//! Privacy (DATA-6): exporting a user's own messages and erasing an account.

use super::StoreResult;
use crate::audit::AuditEntry;
use crate::files::FreedBlobs;
use crate::ids::*;
use crate::model::*;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// How account `user` is erased: the name the account takes and when. What happens to their
/// messages in an org is that org's policy (`Org::erasure`) at the erasure.
#[derive(Debug, Clone, Copy)]
pub struct Erasure<'a> {
    pub user: UserId,
    pub anonymous_name: &'a str,
    pub at: DateTime<Utc>,
}

/// What erasing an account did: messages tombstoned, and each org membership removed (as
/// `OrgStore::remove_member` answers it; the profile as it was before the scrub).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasedAccount {
    pub tombstoned: u64,
    pub removed: Vec<super::Removed>,
    /// The storage keys of the files the erasure removed (deleted after the commit).
    pub freed: FreedBlobs,
    /// The sessions she had started as other users, deleted with hers.
    pub impersonating: Vec<SessionId>,
}

/// Export and erasure of accounts.
#[async_trait]
pub trait PrivacyStore: Send + Sync + 'static {
    /// The user's own messages, by id (time order), after `after`, with their attachments.
    async fn messages_by_author(
        &self,
        user: UserId,
        after: Option<MessageId>,
        limit: i64,
    ) -> StoreResult<Vec<Message>>;
    /// Erases an account in one transaction. In every org where the user wrote (a member
    /// still or not), by that org's policy: `tombstone` — the messages lose their content,
    /// history and files, and moderation flags on them name nobody; `anonymise` — they keep
    /// their content and files but move to the org's placeholder author (one per org, created
    /// on first use: kind user, disabled, erased, no credentials; it becomes the files'
    /// uploader and holds their bytes, and the author of flags on them), so the erased id leads
    /// to none of them. Every other file the user uploaded (never attached) is removed and its
    /// bytes given back; invites addressed to the user's name are deleted (the name is freed);
    /// the account is renamed `erasure.anonymous_name`; every membership (and participation)
    /// is removed; sessions, API keys, 2FA and resume state are deleted and the profile
    /// scrubbed (name, email, password; disabled). `LastOrgOwner` while the user is an org's
    /// only owner. Answers how many messages were tombstoned and the removed files' keys.
    async fn erase_user(
        &self,
        erasure: &Erasure<'_>,
        audit: &[AuditEntry],
    ) -> StoreResult<ErasedAccount>;
}
