//! Server-side keys. Every key is derived with HKDF-SHA256 from one master key, so all nodes of
//! a cluster agree by sharing `CONCLAVE_MASTER_KEY`. Key bytes live in `SecretBox` and are
//! never printed (`Debug` is redacted).

use hkdf::Hkdf;
use secrecy::{ExposeSecret, SecretBox};
use sha2::Sha256;
use std::fmt;

/// The 32-byte master key.
pub struct MasterKey(SecretBox<[u8; 32]>);

impl MasterKey {
    #[must_use]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(SecretBox::new(Box::new(bytes)))
    }

    /// A fresh random key (development only; production requires a configured one).
    #[must_use]
    pub fn generate() -> Self {
        use rand::RngCore;
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self::from_bytes(bytes)
    }

    /// Parses the base64 (standard or URL-safe) form of exactly 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, &'static str> {
        use base64::Engine;
        let text = text.trim();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(text)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text))
            .map_err(|_| "the master key must be base64")?;
        let bytes: [u8; 32] = decoded
            .try_into()
            .map_err(|_| "the master key must be exactly 32 bytes")?;
        Ok(Self::from_bytes(bytes))
    }

    #[must_use]
    pub fn to_base64(&self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(self.0.expose_secret())
    }

    fn derive(&self, info: &str) -> SecretBox<[u8; 32]> {
        let hk = Hkdf::<Sha256>::new(Some(b"conclave-v1"), self.0.expose_secret());
        let mut out = [0u8; 32];
        // 32 bytes is always a valid HKDF-SHA256 output length.
        hk.expand(info.as_bytes(), &mut out)
            .unwrap_or_else(|_| unreachable!());
        SecretBox::new(Box::new(out))
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

/// The keys derived from the master key.
pub struct ServerKeys {
    /// HMAC key for stored token hashes (sessions, invites, bootstrap, later API keys).
    pub token_pepper: SecretBox<[u8; 32]>,
    /// HMAC key for CSRF tokens bound to a session.
    pub csrf: SecretBox<[u8; 32]>,
    /// AES-256-GCM key (key id 1 of the secrets key ring) for secrets stored at rest, such as
    /// TOTP secrets; see `secretbox`.
    pub secrets: SecretBox<[u8; 32]>,
    /// HMAC key of the audit chains (DATA-4).
    pub audit: SecretBox<[u8; 32]>,
    /// AES-256-GCM key-encryption key: the secrets key ring's data keys (ids 2 and up) are
    /// stored wrapped under it; see `keyring`.
    pub secrets_kek: SecretBox<[u8; 32]>,
    /// HMAC key that signs the events nodes exchange over NATS (SCALE-2).
    pub fanout: SecretBox<[u8; 32]>,
    /// HMAC key of signed download URLs (`/media/{id}?exp=&sig=`, DATA-2); every node signs
    /// and checks with the same key.
    pub media_url: SecretBox<[u8; 32]>,
    /// AES-256-GCM key that seals search cursors (MSG-6, AZ-1), so a caller can neither read
    /// the score a cursor holds nor forge one; see `search_cursor`.
    pub search_cursor: SecretBox<[u8; 32]>,
}

impl ServerKeys {
    #[must_use]
    pub fn derive(master: &MasterKey) -> Self {
        Self {
            token_pepper: master.derive("token-pepper"),
            csrf: master.derive("csrf"),
            secrets: master.derive("secrets-aes-256-gcm-1"),
            audit: master.derive("audit-hmac-sha256"),
            secrets_kek: master.derive("secrets-key-wrapping-aes-256-gcm"),
            fanout: master.derive("fanout-event-hmac-sha256"),
            media_url: master.derive("media-url-hmac-sha256"),
            search_cursor: master.derive("search-cursor-aes-256-gcm"),
        }
    }
}

impl ServerKeys {
    /// A handle on the audit key for the store, which chains rows inside its transactions.
    #[must_use]
    pub fn audit_key(&self) -> crate::audit::AuditKey {
        crate::audit::AuditKey::new(SecretBox::new(Box::new(*self.audit.expose_secret())))
    }
}

impl fmt::Debug for ServerKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerKeys(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivation_is_stable_and_separated() {
        let m = MasterKey::from_bytes([7; 32]);
        let a = ServerKeys::derive(&m);
        let b = ServerKeys::derive(&MasterKey::from_base64(&m.to_base64()).unwrap());
        assert_eq!(
            a.token_pepper.expose_secret(),
            b.token_pepper.expose_secret()
        );
        // Every derived key differs from every other.
        let all = [
            &a.token_pepper,
            &a.csrf,
            &a.secrets,
            &a.audit,
            &a.secrets_kek,
            &a.fanout,
            &a.media_url,
            &a.search_cursor,
        ];
        for (i, x) in all.iter().enumerate() {
            for y in &all[i + 1..] {
                assert_ne!(x.expose_secret(), y.expose_secret());
            }
        }
        assert!(format!("{m:?}").contains("redacted"));
    }

    #[test]
    fn wrong_sizes_are_refused() {
        assert!(MasterKey::from_base64("AAAA").is_err());
        assert!(MasterKey::from_base64("not base64!").is_err());
    }
}
