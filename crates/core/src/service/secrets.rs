//! Sealing and opening secrets at rest for the services (DATA-3), on a node that runs while
//! keys are rotated by `conclave keys rotate`, possibly from another machine.
//!
//! Seals are rare (a TOTP setup), so each one reads the key ring from the store and uses the
//! current key; after the sealed value is stored, [`Services::settle_sealed`] looks again and,
//! should a rotation have made another key current meanwhile (and so perhaps walked past this
//! row already), re-seals it under that key with a compare-and-swap. Opens use a ring cached for
//! [`SECRET_RING_TTL`] of the service clock; a value naming a key the cached ring lacks reloads
//! the ring once. A retired key leaves the ring at the next load, so it stops opening anything
//! within the TTL on every node.

use super::{Result, Services};
use crate::error::ServiceError;
use crate::keyring::{self, KeyRingError, SecretRef};
use crate::secretbox::{Binding, Sealed, SecretKeyRing};
use chrono::{DateTime, Duration, Utc};
use secrecy::{ExposeSecret, SecretBox, SecretString};
use std::sync::{Arc, Mutex, PoisonError};

/// How long a node opens secrets with the key ring it loaded before reading it again.
pub const SECRET_RING_TTL: Duration = Duration::seconds(30);

/// The key ring a node loaded last, and when.
#[derive(Default)]
pub(super) struct RingCache(Mutex<Option<(Arc<SecretKeyRing>, DateTime<Utc>)>>);

fn ring_error(e: KeyRingError) -> ServiceError {
    match e {
        KeyRingError::Store(e) => e.into(),
        other => ServiceError::Internal(format!("secrets key ring: {other}")),
    }
}

impl Services {
    async fn reload_secret_ring(&self) -> Result<Arc<SecretKeyRing>> {
        let ring = Arc::new(
            keyring::load_ring(&*self.store, &self.keys)
                .await
                .map_err(ring_error)?,
        );
        *self
            .secret_ring
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((ring.clone(), self.clock.now()));
        Ok(ring)
    }

    fn cached_secret_ring(&self) -> Option<Arc<SecretKeyRing>> {
        let now = self.clock.now();
        self.secret_ring
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .filter(|(_, loaded)| now < *loaded + SECRET_RING_TTL && now >= *loaded)
            .map(|(ring, _)| ring.clone())
    }

    /// Seals `plaintext` with the key the store names current now.
    pub(super) async fn seal_secret(
        &self,
        binding: Binding<'_>,
        plaintext: &[u8],
    ) -> Result<Sealed> {
        Ok(self.reload_secret_ring().await?.seal(binding, plaintext))
    }

    /// Call after storing `sealed` (of `plaintext`) at `at`: when another key became current
    /// meanwhile, re-seals the value under it, replacing it only if it is still the one stored.
    pub(super) async fn settle_sealed(
        &self,
        at: SecretRef,
        mut sealed: Sealed,
        plaintext: &[u8],
    ) -> Result<()> {
        for _ in 0..3 {
            let ring = self.reload_secret_ring().await?;
            if ring.current_key_id() == sealed.key_id {
                return Ok(());
            }
            let resealed = ring.seal(at.binding(), plaintext);
            if !self
                .store
                .replace_sealed_secret(&at, &sealed, &resealed)
                .await?
            {
                // Replaced meanwhile (a new setup, or the rotation itself): that writer settles.
                return Ok(());
            }
            sealed = resealed;
        }
        Ok(())
    }

    /// Opens a sealed value; a key the cached ring lacks reloads it once.
    pub(super) async fn open_sealed(
        &self,
        binding: Binding<'_>,
        sealed: &Sealed,
    ) -> Result<SecretBox<Vec<u8>>> {
        let ring = match self.cached_secret_ring() {
            Some(ring) if ring.has_key(sealed.key_id) => ring,
            _ => self.reload_secret_ring().await?,
        };
        ring.open(binding, sealed).map_err(|e| {
            ServiceError::Internal(format!("opening a sealed {}: {e}", binding.column.name()))
        })
    }

    /// Opens a sealed secret that was text (a key, an identity secret).
    pub(super) async fn open_sealed_text(
        &self,
        binding: Binding<'_>,
        sealed: &Sealed,
    ) -> Result<SecretString> {
        let opened = self.open_sealed(binding, sealed).await?;
        let text = String::from_utf8(opened.expose_secret().clone()).map_err(|_| {
            ServiceError::Internal(format!("a sealed {} is not UTF-8", binding.column.name()))
        })?;
        Ok(SecretString::from(text))
    }
}
