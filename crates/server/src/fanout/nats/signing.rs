//! The signature on every message nodes exchange (SCALE-2): an HMAC-SHA256 of the message id
//! and the payload under a key every node derives from the shared master key. Messages with a
//! missing or wrong signature are dropped, live and on replay alike.

use crate::fanout::WireEvent;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretBox};
use sha2::Sha256;
use std::sync::Arc;

/// The header that carries a message's signature, and the one JetStream deduplicates by.
pub(super) const SIGNATURE_HEADER: &str = "Conclave-Signature";
pub(super) const MSG_ID_HEADER: &str = "Nats-Msg-Id";
const SIGNATURE_VERSION: &str = "v1=";

/// Signs and checks the events nodes exchange (SCALE-2). Every node of a cluster derives the
/// same key from the shared master key.
pub struct EventKey(SecretBox<[u8; 32]>);

impl std::fmt::Debug for EventKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventKey(<redacted>)")
    }
}

impl EventKey {
    #[must_use]
    pub fn new(key: SecretBox<[u8; 32]>) -> Self {
        Self(key)
    }

    fn mac(&self, msg_id: &str, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.0.expose_secret())
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(msg_id.as_bytes());
        mac.update(b"\n");
        mac.update(payload);
        mac
    }

    /// The `Conclave-Signature` value for a message.
    pub(super) fn sign(&self, msg_id: &str, payload: &[u8]) -> String {
        use base64::Engine;
        let tag = self.mac(msg_id, payload).finalize().into_bytes();
        format!(
            "{SIGNATURE_VERSION}{}",
            base64::engine::general_purpose::STANDARD.encode(tag)
        )
    }

    /// Whether a message carries exactly one message id and one signature, and the signature
    /// is right (compared in constant time).
    pub(super) fn verify(&self, headers: Option<&async_nats::HeaderMap>, payload: &[u8]) -> bool {
        use base64::Engine;
        let Some(headers) = headers else {
            return false;
        };
        let one = |name: &str| {
            let mut values = headers.get_all(name);
            match (values.next(), values.next()) {
                (Some(v), None) => Some(v.as_str()),
                _ => None,
            }
        };
        let (Some(msg_id), Some(signature)) = (one(MSG_ID_HEADER), one(SIGNATURE_HEADER)) else {
            return false;
        };
        let Some(tag) = signature
            .strip_prefix(SIGNATURE_VERSION)
            .and_then(|t| base64::engine::general_purpose::STANDARD.decode(t).ok())
        else {
            return false;
        };
        self.mac(msg_id, payload).verify_slice(&tag).is_ok()
    }
}

/// The event in a stream message, when its signature holds and it decodes.
pub(super) fn decode(
    key: &EventKey,
    message: &async_nats::Message,
    seq: u64,
) -> Option<Arc<WireEvent>> {
    if !key.verify(message.headers.as_ref(), &message.payload) {
        tracing::warn!(
            seq,
            "fan-out event with a missing or wrong signature (not from a node of this cluster); dropped"
        );
        return None;
    }
    match serde_json::from_slice::<WireEvent>(&message.payload) {
        Ok(event) => Some(Arc::new(event)),
        Err(e) => {
            tracing::error!(seq, error = %e, "undecodable event in the fan-out stream; skipped");
            None
        }
    }
}
