//! The audit log (hash-chained rows, checkpoints, pruning) and retention of messages.

use super::{Page, StoreResult};
use crate::audit::{AuditEntry, AuditFilter, AuditRow, ChainHead, Checkpoint, PruneOutcome};
use crate::files::FreedBlobs;
use crate::ids::*;
use crate::model::*;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// The audit chains. Every mutating call of the other store traits takes its audit rows and
/// appends them in its own transaction; [`AuditStore::append_audit`] is for events that change
/// nothing else.
#[async_trait]
pub trait AuditStore: Send + Sync + 'static {
    /// Appends audit rows on their own, for events that change nothing else (a failed
    /// sign-in of an unknown name, an export).
    async fn append_audit(&self, audit: &[AuditEntry]) -> StoreResult<()>;
    /// Every chain's head, by chain name.
    async fn audit_heads(&self) -> StoreResult<Vec<ChainHead>>;
    /// The names of every chain that has a head, rows or a checkpoint.
    async fn audit_chain_names(&self) -> StoreResult<Vec<String>>;
    /// A chain's rows from `from_seq` on, in `seq` order.
    async fn audit_rows(
        &self,
        chain: &str,
        from_seq: i64,
        limit: i64,
    ) -> StoreResult<Vec<AuditRow>>;
    async fn audit_checkpoint(&self, chain: &str) -> StoreResult<Option<Checkpoint>>;
    /// Rows matching `filter` by id (time order): newest first unless paging `After`.
    async fn list_audit(
        &self,
        filter: &AuditFilter,
        page: Page<uuid::Uuid>,
    ) -> StoreResult<Vec<AuditRow>>;
    /// Deletes the chain's rows older than `before` except its newest, leaves a signed
    /// checkpoint and appends `entry` — atomically; answers how many rows went. First, in the
    /// same transaction, the rows due to go (and the one after them) are verified against the
    /// chain — MAC with the audit key, numbering from the checkpoint (or genesis) on, links — and
    /// on any mismatch nothing changes and the answer is `Refused` (DATA-5).
    async fn prune_audit(
        &self,
        chain: &str,
        before: DateTime<Utc>,
        entry: &AuditEntry,
    ) -> StoreResult<PruneOutcome>;
}

/// Retention: pruning old messages per org.
#[async_trait]
pub trait RetentionStore: Send + Sync + 'static {
    /// Deletes the org's messages created before `before` with their files, and the org's
    /// uploads from before then that no message claimed (their bytes given back); when anything
    /// went, appends `entry` (with the counts) in the same transaction. Answers how many
    /// messages went and the removed files' keys.
    async fn prune_messages(
        &self,
        org: OrgId,
        before: DateTime<Utc>,
        entry: &AuditEntry,
    ) -> StoreResult<(u64, FreedBlobs)>;
    /// Every org with a retention setting.
    async fn orgs_with_retention(&self) -> StoreResult<Vec<Org>>;
}
