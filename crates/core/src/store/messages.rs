//! Messages: sequenced, idempotent inserts, paging by sequence, edits with history and
//! tombstones.

use super::{Page, StoreResult};
use crate::audit::AuditEntry;
use crate::files::FreedBlobs;
use crate::ids::*;
use crate::model::*;
use crate::types::{MessageFormat, MessageStatus};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// How many earlier versions of a message are kept: each edit that would keep more deletes the
/// oldest in its own transaction (RATE-1, R81), so editing one message over and over cannot
/// grow the database, its history page or an account export without bound.
pub const KEPT_VERSIONS: i64 = 100;

/// Result of an insert that carried an idempotency key.
#[derive(Debug, Clone)]
pub enum Inserted {
    Created(Message),
    /// The key was used before (within the window): the original message and the fingerprint
    /// of the request that created it.
    Replayed(Message, String),
    /// Not every file in `attachments` is the author's own upload to the conversation that no
    /// message claimed yet: nothing was stored.
    AttachmentsRefused,
}

/// A new version of message `id`: its content and format, written at `at`.
#[derive(Debug, Clone, Copy)]
pub struct MessageEdit<'a> {
    pub id: MessageId,
    pub content: &'a str,
    pub format: MessageFormat,
    pub at: DateTime<Utc>,
}

/// A change to a streaming message (AGENT-3): its text so far, or its end. Applied only while
/// the message is still streaming and not deleted.
#[derive(Debug, Clone, Copy)]
pub struct StreamChange<'a> {
    pub id: MessageId,
    /// The text so far (`None`: keep what is stored, as a stop does).
    pub content: Option<&'a str>,
    /// `Streaming` writes the text so far; `Complete`, `Failed` or `Stopped` ends the stream.
    pub status: MessageStatus,
    /// Why a `failed` or `stopped` message ended.
    pub reason: Option<&'a str>,
}

/// Messages of conversations.
#[async_trait]
pub trait MessageStore: Send + Sync + 'static {
    /// Assigns the next `seq` and stores the message in one transaction, claiming its
    /// attachments with one conditional update (so of two messages claiming a file, exactly one
    /// gets it); with an idempotency key seen within the window, returns the original instead
    /// (and appends no audit rows, claims nothing). Every message answered carries its
    /// attachments (one query per call, whatever the page size). `NotFound` when the author no
    /// longer writes in the conversation (no longer a participant, a Viewer of its org, the
    /// conversation archived), read after the conversation's row is locked in the insert's
    /// transaction: a removal made while the send waited for its guards is never outrun.
    async fn insert_message(&self, msg: &NewMessage, audit: &[AuditEntry])
        -> StoreResult<Inserted>;
    async fn message(&self, id: MessageId) -> StoreResult<Message>;
    /// Messages by `seq`: `Latest`/`Before` newest first, `After` oldest first.
    async fn messages(&self, conv: ConversationId, page: Page<i64>) -> StoreResult<Vec<Message>>;
    /// Keeps the current version in the history (the newest [`KEPT_VERSIONS`] of them; older
    /// ones are deleted in the same transaction) and replaces it. `NotFound` when the message
    /// is deleted, still streaming, or its author no longer writes in its conversation (no
    /// longer a participant, a Viewer of its org, the conversation archived) — read under the
    /// message's row lock in the edit's transaction.
    async fn edit_message(
        &self,
        edit: &MessageEdit<'_>,
        audit: &[AuditEntry],
    ) -> StoreResult<Message>;
    /// Tombstones the message: content gone, place kept; its files' rows go (their bytes given
    /// back to their uploaders) and their keys are answered.
    async fn delete_message(
        &self,
        id: MessageId,
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> StoreResult<(Message, FreedBlobs)>;
    /// A page of the message's earlier versions by id (the order they were replaced in):
    /// `Latest`/`Before` newest first, `After` oldest first. `NotFound` when the message does
    /// not exist.
    async fn message_history(
        &self,
        id: MessageId,
        page: Page<MessageVersionId>,
    ) -> StoreResult<Vec<MessageVersion>>;
    /// Forgets the idempotency keys stored before `before` (MSG-2: a key is kept for
    /// `IDEMPOTENCY_WINDOW`, 24 h); answers how many went. The retention job runs it.
    async fn prune_idempotency_keys(&self, before: DateTime<Utc>) -> StoreResult<u64>;
    /// Applies `change` with one conditional UPDATE (`… WHERE status = 'streaming' AND
    /// deleted_at IS NULL`) and, when it changed the row, appends `audit` in its transaction.
    /// `false` (and no audit row) when the message is not streaming any more — stopped, ended
    /// or deleted, by any node — or does not exist: of a stop and the stream's own end, exactly
    /// one wins.
    async fn change_stream(
        &self,
        change: &StreamChange<'_>,
        audit: &[AuditEntry],
    ) -> StoreResult<bool>;
    /// Messages still streaming that were opened before `before` (oldest first, at most
    /// `limit`): answers whose node stopped mid-way.
    async fn abandoned_streams(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<MessageId>>;
}
