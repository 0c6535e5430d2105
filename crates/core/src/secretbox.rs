//! Secrets the server must be able to read back (TOTP secrets now; webhook and SSO client
//! secrets later) are stored sealed with AES-256-GCM (DATA-3): a random 96-bit nonce per seal,
//! and associated data naming the column the secret is stored in (`user_totp.secret`) and the id
//! of its row, so a ciphertext copied to another row or another column fails to open. Each
//! sealed value records the id of the key that sealed it.
//!
//! The keys form a ring ([`SecretKeyRing`], loaded from the store by the `keyring` module, which
//! builds on this one): key id 1 is derived from the master key with HKDF, as it always was, so
//! every secret sealed before the ring existed keeps opening; later keys are random data keys
//! stored wrapped under a key-encryption key derived from the master key. The newest key that is
//! not retired is current: seals use it; opens use whichever key the value names, and retired
//! keys are not in the ring at all.
//!
//! Secrets sealed before the ring (format 1) were bound to a purpose string instead of the
//! column name; they open under key 1 only, and `conclave keys rotate` re-seals them in the
//! current format.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretBox};
use std::fmt;

/// The id of the key derived from the master key (the only key before the key ring existed).
pub const DERIVED_KEY_ID: i32 = 1;

/// Length of an AES-GCM nonce in bytes (96 bits).
pub const NONCE_LEN: usize = 12;

/// A sealed secret as stored: which key, which nonce, and the ciphertext with its tag.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: i32,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed")
            .field("key_id", &self.key_id)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

/// Why a sealed value could not be opened. Deliberately uninformative: a wrong key, a wrong
/// row and a tampered ciphertext all look the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("no key with id {0} in the key ring (unknown or retired)")]
    UnknownKey(i32),
    #[error("the sealed secret does not authenticate")]
    Corrupt,
}

/// A column that holds sealed secrets. Its name goes into the associated data of every value
/// sealed for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SealedColumn {
    /// `user_totp.secret` (stored as `secret_key_id`, `secret_nonce`, `secret_ciphertext`),
    /// row id = the user id.
    UserTotpSecret,
    /// `webhook_secrets.secret` (same three columns), row id = the secret's id.
    WebhookSecret,
    /// `agent_keys.secret` (same three columns), row id = the agent's id.
    AgentApiKey,
    /// `guard_secrets.api_key` (same three columns), row id = the guard's id: a moderation
    /// endpoint's API key (RATE-6).
    GuardApiKey,
    /// `widget_key_secrets.secret` (same three columns), row id = the widget key's id: the
    /// identity secret hosts sign visitors with (WEB-4).
    WidgetIdentitySecret,
}

impl SealedColumn {
    /// Every sealed column, in the order rotation walks them.
    pub const ALL: [Self; 5] = [
        Self::UserTotpSecret,
        Self::WebhookSecret,
        Self::AgentApiKey,
        Self::GuardApiKey,
        Self::WidgetIdentitySecret,
    ];

    /// `table.column`, as bound into the associated data.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::UserTotpSecret => "user_totp.secret",
            Self::WebhookSecret => "webhook_secrets.secret",
            Self::AgentApiKey => "agent_keys.secret",
            Self::GuardApiKey => "guard_secrets.api_key",
            Self::WidgetIdentitySecret => "widget_key_secrets.secret",
        }
    }

    /// The purpose string values of this column were bound to in format 1 (before the key
    /// ring), if the column existed then.
    const fn legacy_purpose(self) -> Option<&'static str> {
        match self {
            Self::UserTotpSecret => Some("totp-secret"),
            Self::WebhookSecret
            | Self::AgentApiKey
            | Self::GuardApiKey
            | Self::WidgetIdentitySecret => None,
        }
    }
}

/// What a sealed secret is bound to: its column and the id of its row. Both go into the
/// associated data, so neither can be swapped without failing authentication.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    pub column: SealedColumn,
    pub row: &'a [u8],
}

impl Binding<'_> {
    fn associated_data(&self, key_id: i32) -> Vec<u8> {
        self.aad(b"conclave-secretbox-v2\0", key_id, self.column.name())
    }

    /// Format 1: purpose instead of column (key 1 only).
    fn legacy_associated_data(&self, key_id: i32) -> Option<Vec<u8>> {
        let purpose = self.column.legacy_purpose()?;
        if key_id != DERIVED_KEY_ID {
            return None;
        }
        Some(self.aad(b"conclave-secretbox-v1\0", key_id, purpose))
    }

    /// `format`, the key id, `name`, a NUL and the row: what a sealed value is bound to.
    fn aad(&self, format: &[u8], key_id: i32, name: &str) -> Vec<u8> {
        let mut aad = Vec::with_capacity(32 + name.len() + self.row.len());
        aad.extend_from_slice(format);
        aad.extend_from_slice(&key_id.to_be_bytes());
        aad.extend_from_slice(name.as_bytes());
        aad.push(0);
        aad.extend_from_slice(self.row);
        aad
    }
}

/// The AES-256-GCM keys that may open secrets, by id, and the one that seals.
pub struct SecretKeyRing {
    keys: Vec<(i32, SecretBox<[u8; 32]>)>,
    current: i32,
}

impl SecretKeyRing {
    /// A ring holding only the key derived from the master key (id 1): the ring of a database
    /// that has never been rotated.
    #[must_use]
    pub fn from_keys(keys: &crate::keys::ServerKeys) -> Self {
        let copy = SecretBox::new(Box::new(*keys.secrets.expose_secret()));
        Self {
            keys: vec![(DERIVED_KEY_ID, copy)],
            current: DERIVED_KEY_ID,
        }
    }

    /// A ring of `keys` sealing with `current`, which must be among them.
    pub(crate) fn new(keys: Vec<(i32, SecretBox<[u8; 32]>)>, current: i32) -> Option<Self> {
        keys.iter()
            .any(|(id, _)| *id == current)
            .then_some(Self { keys, current })
    }

    /// The id of the key new seals use.
    #[must_use]
    pub const fn current_key_id(&self) -> i32 {
        self.current
    }

    /// Whether the ring holds a key with this id.
    #[must_use]
    pub fn has_key(&self, id: i32) -> bool {
        self.keys.iter().any(|(k, _)| *k == id)
    }

    fn cipher(&self, id: i32) -> Result<Aes256Gcm, OpenError> {
        let key = self
            .keys
            .iter()
            .find(|(k, _)| *k == id)
            .map(|(_, key)| key)
            .ok_or(OpenError::UnknownKey(id))?;
        Ok(Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(
            key.expose_secret(),
        )))
    }

    /// Seals `plaintext` with the current key and a fresh random nonce.
    #[must_use]
    pub fn seal(&self, binding: Binding<'_>, plaintext: &[u8]) -> Sealed {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = binding.associated_data(self.current);
        // The current key is always in the ring (`new` checks), and AES-GCM encryption cannot
        // fail for inputs below its 64 GiB limit.
        let ciphertext = self
            .cipher(self.current)
            .and_then(|c| {
                c.encrypt(
                    Nonce::from_slice(&nonce),
                    Payload {
                        msg: plaintext,
                        aad: &aad,
                    },
                )
                .map_err(|_| OpenError::Corrupt)
            })
            .unwrap_or_else(|_| unreachable!("sealing with the current key"));
        Sealed {
            key_id: self.current,
            nonce: nonce.to_vec(),
            ciphertext,
        }
    }

    /// Opens a sealed value bound to `binding`.
    pub fn open(
        &self,
        binding: Binding<'_>,
        sealed: &Sealed,
    ) -> Result<SecretBox<Vec<u8>>, OpenError> {
        if sealed.nonce.len() != NONCE_LEN {
            return Err(OpenError::Corrupt);
        }
        let cipher = self.cipher(sealed.key_id)?;
        let decrypt = |aad: &[u8]| {
            cipher
                .decrypt(
                    Nonce::from_slice(&sealed.nonce),
                    Payload {
                        msg: &sealed.ciphertext,
                        aad,
                    },
                )
                .ok()
        };
        let plain = decrypt(&binding.associated_data(sealed.key_id))
            .or_else(|| {
                binding
                    .legacy_associated_data(sealed.key_id)
                    .and_then(|aad| decrypt(&aad))
            })
            .ok_or(OpenError::Corrupt)?;
        Ok(SecretBox::new(Box::new(plain)))
    }
}

impl fmt::Debug for SecretKeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<i32> = self.keys.iter().map(|(id, _)| *id).collect();
        f.debug_struct("SecretKeyRing")
            .field("key_ids", &ids)
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{MasterKey, ServerKeys};

    fn ring(byte: u8) -> SecretKeyRing {
        SecretKeyRing::from_keys(&ServerKeys::derive(&MasterKey::from_bytes([byte; 32])))
    }

    const ALICE: Binding<'static> = Binding {
        column: SealedColumn::UserTotpSecret,
        row: b"alice-id",
    };

    /// Seals the way the code before the key ring did (format 1, purpose `totp-secret`).
    fn seal_v1(r: &SecretKeyRing, row: &[u8], plaintext: &[u8]) -> Sealed {
        let binding = Binding {
            column: SealedColumn::UserTotpSecret,
            row,
        };
        let aad = binding.legacy_associated_data(DERIVED_KEY_ID).unwrap();
        let nonce = [9u8; NONCE_LEN];
        let ciphertext = r
            .cipher(DERIVED_KEY_ID)
            .unwrap()
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .unwrap();
        Sealed {
            key_id: DERIVED_KEY_ID,
            nonce: nonce.to_vec(),
            ciphertext,
        }
    }

    #[test]
    fn seal_and_open_round_trip_with_fresh_nonces() {
        let r = ring(1);
        let a = r.seal(ALICE, b"the secret");
        let b = r.seal(ALICE, b"the secret");
        assert_eq!(a.key_id, DERIVED_KEY_ID);
        assert_eq!(a.nonce.len(), NONCE_LEN);
        assert_ne!(a.nonce, b.nonce, "every seal has its own nonce");
        assert_ne!(a.ciphertext, b.ciphertext);
        assert_eq!(r.open(ALICE, &a).unwrap().expose_secret(), b"the secret");
        assert!(!format!("{a:?}").contains("secret"));
    }

    #[test]
    fn the_binding_and_the_key_are_authenticated() {
        let r = ring(1);
        let sealed = r.seal(ALICE, b"the secret");
        let bob = Binding {
            column: SealedColumn::UserTotpSecret,
            row: b"bob-id",
        };
        assert_eq!(r.open(bob, &sealed).unwrap_err(), OpenError::Corrupt);
        assert_eq!(
            ring(2).open(ALICE, &sealed).unwrap_err(),
            OpenError::Corrupt
        );
        let mut tampered = sealed.clone();
        tampered.ciphertext[0] ^= 1;
        assert_eq!(r.open(ALICE, &tampered).unwrap_err(), OpenError::Corrupt);
        let mut tampered_tag = sealed.clone();
        *tampered_tag.ciphertext.last_mut().unwrap() ^= 0x80;
        assert_eq!(
            r.open(ALICE, &tampered_tag).unwrap_err(),
            OpenError::Corrupt
        );
        let mut other_nonce = sealed.clone();
        other_nonce.nonce[0] ^= 1;
        assert_eq!(r.open(ALICE, &other_nonce).unwrap_err(), OpenError::Corrupt);
        let mut unknown = sealed.clone();
        unknown.key_id = 7;
        assert_eq!(
            r.open(ALICE, &unknown).unwrap_err(),
            OpenError::UnknownKey(7)
        );
        let mut short = sealed;
        short.nonce.pop();
        assert_eq!(r.open(ALICE, &short).unwrap_err(), OpenError::Corrupt);
    }

    #[test]
    fn the_column_name_and_row_are_in_the_associated_data() {
        let aad = ALICE.associated_data(3);
        let text = String::from_utf8_lossy(&aad);
        assert!(text.contains("user_totp.secret"), "{text}");
        assert!(aad.ends_with(b"alice-id"));
        assert_ne!(aad, ALICE.associated_data(4), "the key id is bound too");
    }

    #[test]
    fn secrets_sealed_before_the_key_ring_still_open_under_key_1_only() {
        let r = ring(1);
        let old = seal_v1(&r, b"alice-id", b"old secret");
        assert_eq!(r.open(ALICE, &old).unwrap().expose_secret(), b"old secret");
        let bob = Binding {
            column: SealedColumn::UserTotpSecret,
            row: b"bob-id",
        };
        assert_eq!(r.open(bob, &old).unwrap_err(), OpenError::Corrupt);
        // The same bytes claimed to be under another key do not take the legacy path.
        let keys = vec![
            (1, SecretBox::new(Box::new([5u8; 32]))),
            (2, SecretBox::new(Box::new(*ring_key(&r, 1)))),
        ];
        let two = SecretKeyRing::new(keys, 2).unwrap();
        let mut moved = old;
        moved.key_id = 2;
        assert_eq!(two.open(ALICE, &moved).unwrap_err(), OpenError::Corrupt);
    }

    fn ring_key(r: &SecretKeyRing, id: i32) -> &[u8; 32] {
        r.keys
            .iter()
            .find(|(k, _)| *k == id)
            .unwrap()
            .1
            .expose_secret()
    }

    #[test]
    fn a_ring_seals_with_its_current_key_and_opens_with_any() {
        let one = ring(1);
        let old = one.seal(ALICE, b"v");
        let keys = vec![
            (1, SecretBox::new(Box::new(*ring_key(&one, 1)))),
            (2, SecretBox::new(Box::new([42u8; 32]))),
        ];
        assert!(SecretKeyRing::new(vec![(1, SecretBox::new(Box::new([0u8; 32])))], 2).is_none());
        let r = SecretKeyRing::new(keys, 2).unwrap();
        assert_eq!(r.current_key_id(), 2);
        assert!(r.has_key(1) && r.has_key(2) && !r.has_key(3));
        let new = r.seal(ALICE, b"w");
        assert_eq!(new.key_id, 2);
        assert_eq!(r.open(ALICE, &old).unwrap().expose_secret(), b"v");
        assert_eq!(r.open(ALICE, &new).unwrap().expose_secret(), b"w");
        let debug = format!("{r:?}");
        assert!(debug.contains("current: 2"), "{debug}");
        assert!(!debug.contains("42"), "no key bytes in {debug}");
    }
}
