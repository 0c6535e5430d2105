//! Secrets the server must be able to read back (TOTP secrets now; webhook and SSO client
//! secrets later) are stored sealed with AES-256-GCM (DATA-3): a random 96-bit nonce per seal,
//! and associated data naming what the secret is for and whose it is, so a ciphertext copied to
//! another row or another purpose fails to open. Each sealed value records the id of the key
//! that sealed it; the key ring has one key today (id 1, derived from the master key), so a
//! rotation can add keys and re-encrypt without changing the stored shape.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretBox};
use std::fmt;

/// The id of the key [`SecretKeyRing::from_keys`] seals with.
pub const CURRENT_KEY_ID: i32 = 1;

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
/// subject and a tampered ciphertext all look the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("no key with id {0} in the key ring")]
    UnknownKey(i32),
    #[error("the sealed secret does not authenticate")]
    Corrupt,
}

/// What a sealed secret is bound to: its purpose and the id of its owner. Both go into the
/// associated data, so neither can be swapped without failing authentication.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    pub purpose: &'static str,
    pub subject: &'a [u8],
}

impl Binding<'_> {
    fn associated_data(&self, key_id: i32) -> Vec<u8> {
        let mut aad = Vec::with_capacity(32 + self.purpose.len() + self.subject.len());
        aad.extend_from_slice(b"conclave-secretbox-v1\0");
        aad.extend_from_slice(&key_id.to_be_bytes());
        aad.extend_from_slice(self.purpose.as_bytes());
        aad.push(0);
        aad.extend_from_slice(self.subject);
        aad
    }
}

/// The AES-256-GCM keys, by id.
pub struct SecretKeyRing {
    keys: Vec<(i32, SecretBox<[u8; 32]>)>,
    current: i32,
}

impl SecretKeyRing {
    /// A ring holding the server's secrets key as key id 1.
    #[must_use]
    pub fn from_keys(keys: &crate::keys::ServerKeys) -> Self {
        let copy = SecretBox::new(Box::new(*keys.secrets.expose_secret()));
        Self {
            keys: vec![(CURRENT_KEY_ID, copy)],
            current: CURRENT_KEY_ID,
        }
    }

    fn key(&self, id: i32) -> Option<&SecretBox<[u8; 32]>> {
        self.keys.iter().find(|(k, _)| *k == id).map(|(_, key)| key)
    }

    fn cipher(&self, id: i32) -> Result<Aes256Gcm, OpenError> {
        let key = self.key(id).ok_or(OpenError::UnknownKey(id))?;
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
        // The current key is always in the ring, and AES-GCM encryption cannot fail for inputs
        // below its 64 GiB limit.
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
        let aad = binding.associated_data(sealed.key_id);
        let plain = self
            .cipher(sealed.key_id)?
            .decrypt(
                Nonce::from_slice(&sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| OpenError::Corrupt)?;
        Ok(SecretBox::new(Box::new(plain)))
    }
}

impl fmt::Debug for SecretKeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKeyRing(<redacted>)")
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
        purpose: "totp",
        subject: b"alice-id",
    };

    #[test]
    fn seal_and_open_round_trip_with_fresh_nonces() {
        let r = ring(1);
        let a = r.seal(ALICE, b"the secret");
        let b = r.seal(ALICE, b"the secret");
        assert_eq!(a.key_id, CURRENT_KEY_ID);
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
            purpose: "totp",
            subject: b"bob-id",
        };
        assert_eq!(r.open(bob, &sealed).unwrap_err(), OpenError::Corrupt);
        let other_purpose = Binding {
            purpose: "webhook",
            subject: b"alice-id",
        };
        assert_eq!(
            r.open(other_purpose, &sealed).unwrap_err(),
            OpenError::Corrupt
        );
        assert_eq!(
            ring(2).open(ALICE, &sealed).unwrap_err(),
            OpenError::Corrupt
        );
        let mut tampered = sealed.clone();
        tampered.ciphertext[0] ^= 1;
        assert_eq!(r.open(ALICE, &tampered).unwrap_err(), OpenError::Corrupt);
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
}
