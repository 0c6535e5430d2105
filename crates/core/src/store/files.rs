//! Uploaded files (DATA-1): their rows and each user's byte usage. The quota is held by the
//! store: an upload reserves bytes with one conditional statement, so parallel uploads cannot
//! pass it together, and gives back what it did not keep. What an upload holds is also written
//! under its lease, so the bytes of an upload whose node died come back too.

use super::StoreResult;
use crate::audit::AuditEntry;
use crate::files::{FilesHeld, QuotaRequest, Reservation, StoredFile, UploadLease};
use crate::ids::*;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::HashMap;

#[async_trait]
pub trait FileStore: Send + Sync + 'static {
    /// Adds the request's `bytes` to the uploader's usage if the total stays within its `quota`
    /// and records them under the upload's lease (made by the first reservation, renewed at
    /// `at` by each), atomically. `LeaseLost` (nothing changed) when the lease no longer holds
    /// `lease.reserved` — it was expired.
    async fn reserve_file_bytes(
        &self,
        lease: &UploadLease,
        request: QuotaRequest,
        at: DateTime<Utc>,
    ) -> StoreResult<Reservation>;
    /// Ends an upload that kept nothing: deletes its lease and gives back the bytes it held
    /// (answered; 0 when the lease is gone already, so nothing is given back twice).
    async fn release_upload(&self, lease: uuid::Uuid) -> StoreResult<u64>;
    /// Gives back the bytes of every lease last renewed before `before` (uploads whose node
    /// died) and deletes those leases, atomically; how many.
    async fn expire_upload_leases(&self, before: DateTime<Utc>) -> StoreResult<u64>;
    /// Bytes `user` holds or is uploading now.
    async fn file_bytes_used(&self, user: UserId) -> StoreResult<u64>;
    /// Records an uploaded file with its audit rows; the upload's lease, which must hold exactly
    /// the file's size, ends in the same transaction (its bytes are now the file's).
    /// `Conflict(UploadExpired)` (nothing changed) when the lease was expired.
    async fn insert_file(
        &self,
        file: &StoredFile,
        lease: uuid::Uuid,
        audit: &[AuditEntry],
    ) -> StoreResult<()>;
    async fn file(&self, id: FileId) -> StoreResult<StoredFile>;
    /// Which of `keys` still have a row (the sweep deletes blobs of the others).
    async fn file_keys_present(&self, keys: &[String]) -> StoreResult<Vec<String>>;
    /// What each of `users` holds (zeros for one who never uploaded; unknown ids are left out).
    async fn files_held(&self, users: &[UserId]) -> StoreResult<HashMap<UserId, FilesHeld>>;
}
