//! Messages: sequenced, idempotent inserts, paging by sequence, edits with history and
//! tombstones.

use super::{Page, StoreResult};
use crate::audit::AuditEntry;
use crate::ids::*;
use crate::model::*;
use crate::types::MessageFormat;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// Result of an insert that carried an idempotency key.
#[derive(Debug, Clone)]
pub enum Inserted {
    Created(Message),
    /// The key was used before (within the window): the original message and the fingerprint
    /// of the request that created it.
    Replayed(Message, String),
}

/// Messages of conversations.
#[async_trait]
pub trait MessageStore: Send + Sync + 'static {
    /// Assigns the next `seq` and stores the message in one transaction; with an idempotency
    /// key seen within the window, returns the original instead (and appends no audit rows).
    async fn insert_message(&self, msg: &NewMessage, audit: &[AuditEntry])
        -> StoreResult<Inserted>;
    async fn message(&self, id: MessageId) -> StoreResult<Message>;
    /// Messages by `seq`: `Latest`/`Before` newest first, `After` oldest first.
    async fn messages(&self, conv: ConversationId, page: Page<i64>) -> StoreResult<Vec<Message>>;
    /// Keeps the current version in the history and replaces it.
    async fn edit_message(
        &self,
        id: MessageId,
        content: &str,
        format: MessageFormat,
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> StoreResult<Message>;
    /// Tombstones the message: content gone, place kept.
    async fn delete_message(
        &self,
        id: MessageId,
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> StoreResult<Message>;
    async fn message_history(&self, id: MessageId) -> StoreResult<Vec<MessageVersion>>;
}
