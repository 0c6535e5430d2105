//! Secrets at rest (DATA-3): the stored keys of the secrets key ring and the sealed secrets
//! they seal. The record types live here, with the trait that stores them, so the store does
//! not depend on the key ring logic: the `keyring` module above it uses this trait and
//! re-exports the types.

use super::StoreResult;
use crate::audit::AuditEntry;
use crate::secretbox::{Binding, Sealed, SealedColumn};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::fmt;

/// One key of the ring as stored. `wrapped_key` is `None` for key 1 only (it is derived from
/// the master key); otherwise it is nonce ‖ AES-256-GCM ciphertext and tag of the data key.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKeyRecord {
    pub id: i32,
    pub wrapped_key: Option<Vec<u8>>,
    pub created_at: DateTime<Utc>,
    pub retired_at: Option<DateTime<Utc>>,
}

impl fmt::Debug for SecretKeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKeyRecord")
            .field("id", &self.id)
            .field("wrapped", &self.wrapped_key.is_some())
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .finish()
    }
}

/// Where a sealed secret is stored: its column and the id of its row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SecretRef {
    pub column: SealedColumn,
    pub row: uuid::Uuid,
}

impl SecretRef {
    /// The binding a value stored here is sealed with.
    #[must_use]
    pub fn binding(&self) -> Binding<'_> {
        Binding {
            column: self.column,
            row: self.row.as_bytes(),
        }
    }
}

/// A sealed secret and where it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSecret {
    pub at: SecretRef,
    pub sealed: Sealed,
}

/// What `retire_secret_key` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetireOutcome {
    Retired,
    AlreadyRetired,
    /// It is the newest key not retired: the one new secrets are sealed with.
    Current,
    /// This many stored secrets are still sealed with it.
    InUse(u64),
}

/// The key ring's keys and the sealed secrets.
#[async_trait]
pub trait SecretKeyStore: Send + Sync + 'static {
    /// Every key of the secrets key ring, by id.
    async fn secret_keys(&self) -> StoreResult<Vec<SecretKeyRecord>>;
    /// Adds a key; `false` (nothing changed) when its id is taken already (a concurrent
    /// rotation).
    async fn add_secret_key(&self, key: &SecretKeyRecord) -> StoreResult<bool>;
    /// How many stored secrets each key seals, by key id; keys sealing nothing are left out.
    async fn secret_key_usage(&self) -> StoreResult<Vec<(i32, u64)>>;
    /// Marks the key retired at `at`, atomically, unless it is the newest key not retired or a
    /// stored secret is sealed with it (answered as `Current` / `InUse`, nothing changed).
    /// `NotFound` when no key has this id. `audit` is appended in the same transaction when
    /// the key is retired.
    async fn retire_secret_key(
        &self,
        id: i32,
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> StoreResult<RetireOutcome>;
    /// Stored sealed secrets after `after` in (column, row id) order, at most `limit`: pages
    /// through every sealed secret of every sealed column.
    async fn sealed_secrets(
        &self,
        after: Option<&SecretRef>,
        limit: i64,
    ) -> StoreResult<Vec<StoredSecret>>;
    /// Replaces the sealed secret at `at` with `new` only while it still is `old` (same key id
    /// and nonce): `false`, nothing changed, when it was replaced or removed meanwhile.
    async fn replace_sealed_secret(
        &self,
        at: &SecretRef,
        old: &Sealed,
        new: &Sealed,
    ) -> StoreResult<bool>;
}
