//! The secrets key ring (DATA-3): envelope encryption for secrets at rest, and what
//! `conclave keys list|rotate|retire` do.
//!
//! Key id 1 is derived from the master key (HKDF, `ServerKeys::secrets`) and has no stored key
//! material: every secret sealed before the ring existed keeps opening with it. Every later key
//! is a random 256-bit data key, stored in `secret_keys` wrapped — sealed with AES-256-GCM under
//! the key-encryption key (`ServerKeys::secrets_kek`, HKDF from the master key), with associated
//! data naming the key id, so a wrapped key copied to another id does not unwrap. The newest key
//! that is not retired is current. A retired key is left out of the ring: nothing opens with it.
//!
//! Rotation adds a key and re-seals every stored secret under it, one compare-and-swap per
//! secret (on key id and nonce), so a user who replaces their secret meanwhile keeps theirs.

use crate::keys::ServerKeys;
use crate::secretbox::{SecretKeyRing, DERIVED_KEY_ID, NONCE_LEN};
pub use crate::store::keyring::{RetireOutcome, SecretKeyRecord, SecretRef, StoredSecret};
use crate::store::{Store, StoreError};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use chrono::{DateTime, Utc};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretBox};

/// How many sealed secrets a rotation reads per batch.
pub const ROTATION_BATCH: i64 = 100;

/// Why a key ring operation failed. The texts are meant for an operator and hold no key
/// material.
#[derive(Debug, thiserror::Error)]
pub enum KeyRingError {
    #[error("there is no secrets key with id {0} (see `conclave keys list`)")]
    UnknownKey(i32),
    #[error("key {0} is the current key; run `conclave keys rotate` first, then retire it")]
    Current(i32),
    #[error(
        "key {id} still seals {count} stored secret(s); run `conclave keys rotate` first, then \
         retire it"
    )]
    InUse { id: i32, count: u64 },
    #[error("key {0} is retired already")]
    AlreadyRetired(i32),
    #[error(
        "key {0} does not unwrap with this master key: is CONCLAVE_MASTER_KEY the one the \
         database was set up with?"
    )]
    Unwrap(i32),
    #[error("the key ring has no current key: every key is retired")]
    NoCurrentKey,
    #[error("another rotation kept adding keys at the same time; try again")]
    Contended,
    #[error("database: {0}")]
    Store(#[from] StoreError),
}

fn wrap_aad(id: i32) -> Vec<u8> {
    let mut aad = b"conclave-data-key-v1\0".to_vec();
    aad.extend_from_slice(&id.to_be_bytes());
    aad
}

fn kek_cipher(keys: &ServerKeys) -> Aes256Gcm {
    Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(
        keys.secrets_kek.expose_secret(),
    ))
}

/// Wraps `data_key` as key `id`: a fresh nonce ‖ ciphertext and tag.
fn wrap(keys: &ServerKeys, id: i32, data_key: &[u8; 32]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let aad = wrap_aad(id);
    // AES-GCM encryption of 32 bytes cannot fail.
    let ciphertext = kek_cipher(keys)
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: data_key,
                aad: &aad,
            },
        )
        .unwrap_or_else(|_| unreachable!("wrapping a 32-byte key"));
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ciphertext);
    out
}

fn unwrap(keys: &ServerKeys, id: i32, wrapped: &[u8]) -> Result<SecretBox<[u8; 32]>, KeyRingError> {
    if wrapped.len() <= NONCE_LEN {
        return Err(KeyRingError::Unwrap(id));
    }
    let (nonce, ciphertext) = wrapped.split_at(NONCE_LEN);
    let aad = wrap_aad(id);
    let plain = kek_cipher(keys)
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: &aad,
            },
        )
        .map_err(|_| KeyRingError::Unwrap(id))?;
    let bytes: [u8; 32] = plain.try_into().map_err(|_| KeyRingError::Unwrap(id))?;
    Ok(SecretBox::new(Box::new(bytes)))
}

/// The id of the current key: the newest one not retired.
fn current_id(records: &[SecretKeyRecord]) -> Option<i32> {
    records
        .iter()
        .filter(|r| r.retired_at.is_none())
        .map(|r| r.id)
        .max()
}

/// The ring the stored keys make: every key not retired, key 1 derived, the others unwrapped.
pub fn ring_from_records(
    keys: &ServerKeys,
    records: &[SecretKeyRecord],
) -> Result<SecretKeyRing, KeyRingError> {
    let current = current_id(records).ok_or(KeyRingError::NoCurrentKey)?;
    let mut ring = Vec::with_capacity(records.len());
    for r in records.iter().filter(|r| r.retired_at.is_none()) {
        let key = match (&r.wrapped_key, r.id) {
            (Some(wrapped), id) => unwrap(keys, id, wrapped)?,
            (None, DERIVED_KEY_ID) => SecretBox::new(Box::new(*keys.secrets.expose_secret())),
            (None, id) => return Err(KeyRingError::Unwrap(id)),
        };
        ring.push((r.id, key));
    }
    SecretKeyRing::new(ring, current).ok_or(KeyRingError::NoCurrentKey)
}

/// Reads the ring from the store.
pub async fn load_ring(
    store: &dyn Store,
    keys: &ServerKeys,
) -> Result<SecretKeyRing, KeyRingError> {
    ring_from_records(keys, &store.secret_keys().await?)
}

/// A key as `conclave keys list` shows it: never any key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub id: i32,
    pub created_at: DateTime<Utc>,
    pub retired_at: Option<DateTime<Utc>>,
    pub current: bool,
    /// How many stored secrets it seals.
    pub secrets: u64,
}

/// Every key with its state and use, oldest first.
pub async fn list_keys(store: &dyn Store) -> Result<Vec<KeyInfo>, KeyRingError> {
    let records = store.secret_keys().await?;
    let usage = store.secret_key_usage().await?;
    let current = current_id(&records);
    Ok(records
        .iter()
        .map(|r| KeyInfo {
            id: r.id,
            created_at: r.created_at,
            retired_at: r.retired_at,
            current: Some(r.id) == current,
            secrets: usage
                .iter()
                .find(|(id, _)| *id == r.id)
                .map_or(0, |(_, n)| *n),
        })
        .collect())
}

/// Adds a fresh random data key with the next id; it becomes the current key. Answers its id.
pub async fn add_key(
    store: &dyn Store,
    keys: &ServerKeys,
    now: DateTime<Utc>,
) -> Result<i32, KeyRingError> {
    for _ in 0..5 {
        let records = store.secret_keys().await?;
        // The new key must be able to sit beside the others: check they still unwrap (a wrong
        // master key stops here, before anything is written).
        ring_from_records(keys, &records)?;
        let id = records.iter().map(|r| r.id).max().unwrap_or(0) + 1;
        let mut data_key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut data_key);
        let data_key = SecretBox::new(Box::new(data_key));
        let record = SecretKeyRecord {
            id,
            wrapped_key: Some(wrap(keys, id, data_key.expose_secret())),
            created_at: now,
            retired_at: None,
        };
        if store.add_secret_key(&record).await? {
            return Ok(id);
        }
    }
    Err(KeyRingError::Contended)
}

/// What a rotation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyRotation {
    /// The new current key.
    pub key_id: i32,
    /// Secrets re-sealed under it.
    pub reencrypted: u64,
    /// Secrets replaced by their owner while the rotation ran (sealed anew with the current
    /// key by the node that saved them), left as they are.
    pub changed_meanwhile: u64,
    /// Secrets that did not open (tampered, or sealed with a retired key); they keep their old
    /// key and are logged by row.
    pub unreadable: u64,
}

/// Adds a new current key and re-seals every stored secret under it. Safe to re-run and safe
/// while servers run: each replacement is a compare-and-swap on the value read.
pub async fn rotate(
    store: &dyn Store,
    keys: &ServerKeys,
    now: DateTime<Utc>,
) -> Result<KeyRotation, KeyRingError> {
    add_key(store, keys, now).await?;
    // The new key is current now (or a newer one, if another rotation ran meanwhile).
    let ring = load_ring(store, keys).await?;
    let mut done = KeyRotation {
        key_id: ring.current_key_id(),
        reencrypted: 0,
        changed_meanwhile: 0,
        unreadable: 0,
    };
    let mut after: Option<SecretRef> = None;
    loop {
        let batch = store.sealed_secrets(after.as_ref(), ROTATION_BATCH).await?;
        for stored in &batch {
            if stored.sealed.key_id == done.key_id {
                continue;
            }
            let plain = match ring.open(stored.at.binding(), &stored.sealed) {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(
                        column = stored.at.column.name(),
                        row = %stored.at.row,
                        key_id = stored.sealed.key_id,
                        error = %e,
                        "a stored secret does not open; it keeps its key"
                    );
                    done.unreadable += 1;
                    continue;
                }
            };
            let resealed = ring.seal(stored.at.binding(), plain.expose_secret());
            if store
                .replace_sealed_secret(&stored.at, &stored.sealed, &resealed)
                .await?
            {
                done.reencrypted += 1;
            } else {
                done.changed_meanwhile += 1;
            }
        }
        match batch.last() {
            Some(last) if batch.len() as i64 == ROTATION_BATCH => after = Some(last.at),
            _ => break,
        }
    }
    Ok(done)
}

/// Retires key `id`, writing `audit` in the same transaction: refused (nothing written) while
/// it is current or any stored secret uses it.
pub async fn retire(
    store: &dyn Store,
    id: i32,
    now: DateTime<Utc>,
    audit: &[crate::audit::AuditEntry],
) -> Result<(), KeyRingError> {
    match store.retire_secret_key(id, now, audit).await {
        Ok(RetireOutcome::Retired) => Ok(()),
        Ok(RetireOutcome::AlreadyRetired) => Err(KeyRingError::AlreadyRetired(id)),
        Ok(RetireOutcome::Current) => Err(KeyRingError::Current(id)),
        Ok(RetireOutcome::InUse(count)) => Err(KeyRingError::InUse { id, count }),
        Err(StoreError::NotFound) => Err(KeyRingError::UnknownKey(id)),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::MasterKey;
    use crate::secretbox::{Binding, SealedColumn};
    use chrono::TimeZone;

    fn keys(byte: u8) -> ServerKeys {
        ServerKeys::derive(&MasterKey::from_bytes([byte; 32]))
    }

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap()
    }

    fn record(id: i32, wrapped_key: Option<Vec<u8>>, retired: bool) -> SecretKeyRecord {
        SecretKeyRecord {
            id,
            wrapped_key,
            created_at: at(),
            retired_at: retired.then(at),
        }
    }

    const ROW: Binding<'static> = Binding {
        column: SealedColumn::UserTotpSecret,
        row: b"row",
    };

    #[test]
    fn wrapped_keys_unwrap_only_under_their_id_and_master_key() {
        let k = keys(1);
        let wrapped = wrap(&k, 2, &[7u8; 32]);
        assert_eq!(unwrap(&k, 2, &wrapped).unwrap().expose_secret(), &[7u8; 32]);
        assert!(matches!(
            unwrap(&k, 3, &wrapped),
            Err(KeyRingError::Unwrap(3))
        ));
        assert!(matches!(
            unwrap(&keys(2), 2, &wrapped),
            Err(KeyRingError::Unwrap(2))
        ));
        let mut tampered = wrapped.clone();
        tampered[NONCE_LEN] ^= 1;
        assert!(unwrap(&k, 2, &tampered).is_err());
        assert!(unwrap(&k, 2, &wrapped[..NONCE_LEN]).is_err());
        assert!(!wrapped.windows(32).any(|w| w == [7u8; 32]));
    }

    #[test]
    fn the_newest_key_not_retired_is_current_and_retired_keys_open_nothing() {
        let k = keys(1);
        let only_1 = ring_from_records(&k, &[record(1, None, false)]).unwrap();
        assert_eq!(only_1.current_key_id(), 1);
        let old = only_1.seal(ROW, b"old");
        // Key 1 of the ring is the key every pre-ring secret was sealed with.
        let legacy = SecretKeyRing::from_keys(&k);
        assert_eq!(legacy.open(ROW, &old).unwrap().expose_secret(), b"old");

        let records = vec![
            record(1, None, false),
            record(2, Some(wrap(&k, 2, &[2u8; 32])), false),
            record(3, Some(wrap(&k, 3, &[3u8; 32])), true),
        ];
        let ring = ring_from_records(&k, &records).unwrap();
        assert_eq!(ring.current_key_id(), 2, "retired key 3 is never current");
        assert!(!ring.has_key(3));
        assert_eq!(ring.open(ROW, &old).unwrap().expose_secret(), b"old");

        let retired_1 = vec![
            record(1, None, true),
            record(2, Some(wrap(&k, 2, &[2u8; 32])), false),
        ];
        let ring = ring_from_records(&k, &retired_1).unwrap();
        assert_eq!(
            ring.open(ROW, &old).unwrap_err(),
            crate::secretbox::OpenError::UnknownKey(1)
        );

        assert!(matches!(
            ring_from_records(&k, &[record(1, None, true)]),
            Err(KeyRingError::NoCurrentKey)
        ));
        assert!(matches!(
            ring_from_records(&keys(9), &records),
            Err(KeyRingError::Unwrap(2))
        ));
        assert!(matches!(
            ring_from_records(&k, &[record(4, None, false)]),
            Err(KeyRingError::Unwrap(4))
        ));
    }

    #[test]
    fn no_key_material_in_debug_output_or_errors() {
        let k = keys(1);
        let wrapped = wrap(&k, 2, &[0xAB; 32]);
        let r = record(2, Some(wrapped.clone()), false);
        let debug = format!("{r:?}");
        assert!(!debug.contains("171"), "{debug}"); // 0xAB
        assert!(debug.contains("wrapped: true"), "{debug}");
        let ring = ring_from_records(&k, &[r]).unwrap();
        let debug = format!("{ring:?}");
        assert!(!debug.contains("171"), "{debug}");
        let err = KeyRingError::Unwrap(2).to_string();
        assert!(err.contains("CONCLAVE_MASTER_KEY"), "{err}");
    }
}
