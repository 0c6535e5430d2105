//! What the server asks of the store outside a user's request: readiness alerts, the gateway
//! sessions kept for RESUME, and the key ring commands (`conclave keys …`, DATA-3). The store
//! stays behind the services; these are the only doors the server has to it.

use super::{Result, Services};
use crate::audit::{AuditActor, AuditEntry};
use crate::ids::{SessionId, UserId};
use crate::keyring::{self, KeyInfo, KeyRingError, KeyRotation};
use crate::model::GatewaySession;
use chrono::{DateTime, Utc};

impl Services {
    /// The raised alerts (name, status), e.g. an audit chain that did not verify before
    /// pruning; an error when the database does not answer.
    pub async fn alerts(&self) -> Result<Vec<(String, String)>> {
        Ok(self.store.alerts().await?)
    }

    /// Keeps a closed gateway session for RESUME.
    pub async fn save_gateway_session(&self, session: &GatewaySession) -> Result<()> {
        Ok(self.store.save_gateway_session(session).await?)
    }

    /// Takes a kept gateway session out for RESUME: only its owner (user and login session)
    /// gets it; anyone else gets nothing and leaves it in place.
    pub async fn take_gateway_session(
        &self,
        id: uuid::Uuid,
        user: UserId,
        auth_session: SessionId,
    ) -> Result<Option<GatewaySession>> {
        Ok(self
            .store
            .take_gateway_session(id, user, auth_session)
            .await?)
    }

    /// `conclave keys list`: every key, once the ring is known to unwrap with this master key
    /// (so a wrong one is reported here).
    pub async fn list_secret_keys(&self) -> std::result::Result<Vec<KeyInfo>, KeyRingError> {
        keyring::load_ring(&*self.store, &self.keys).await?;
        keyring::list_keys(&*self.store).await
    }

    /// `conclave keys rotate`: a new current key, every stored secret re-sealed under it,
    /// audited as the system.
    pub async fn rotate_secret_keys(
        &self,
        now: DateTime<Utc>,
    ) -> std::result::Result<KeyRotation, KeyRingError> {
        let done = keyring::rotate(&*self.store, &self.keys, now).await?;
        let audit = AuditEntry::new("secrets.key_rotated", AuditActor::system(), now)
            .resource("secret_key", done.key_id)
            .detail(serde_json::json!({
                "reencrypted": done.reencrypted,
                "unreadable": done.unreadable,
            }));
        self.store.append_audit(&[audit]).await?;
        Ok(done)
    }

    /// `conclave keys retire`: a key no secret uses any more stops opening anything, audited
    /// as the system in the same transaction.
    pub async fn retire_secret_key(
        &self,
        id: i32,
        now: DateTime<Utc>,
    ) -> std::result::Result<(), KeyRingError> {
        let audit = AuditEntry::new("secrets.key_retired", AuditActor::system(), now)
            .resource("secret_key", id);
        keyring::retire(&*self.store, id, now, &[audit]).await
    }
}
