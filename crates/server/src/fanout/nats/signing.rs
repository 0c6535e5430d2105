//! The signature on every message nodes exchange (SCALE-2): an HMAC-SHA256 of the message id,
//! the time the node published it and the payload, under a key every node derives from the
//! shared master key. Messages with a missing or wrong signature are dropped, live and on replay
//! alike; so is one the stream stored longer after its signed time than the stream's duplicate
//! window — a captured message published again later, which JetStream (dropping a repeated
//! message id only within that window) would otherwise take as new.

use crate::fanout::WireEvent;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretBox};
use sha2::Sha256;
use std::sync::Arc;

/// The header that carries a message's signature, and the one JetStream deduplicates by.
pub(super) const SIGNATURE_HEADER: &str = "Conclave-Signature";
pub(super) const MSG_ID_HEADER: &str = "Nats-Msg-Id";
/// When the node published the message (Unix milliseconds, its wall clock), signed too.
pub(super) const PUBLISHED_HEADER: &str = "Conclave-Published";
const SIGNATURE_VERSION: &str = "v2=";

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

    fn mac(&self, msg_id: &str, published: &str, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.0.expose_secret())
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(msg_id.as_bytes());
        mac.update(b"\n");
        mac.update(published.as_bytes());
        mac.update(b"\n");
        mac.update(payload);
        mac
    }

    /// The headers of a message `msg_id` published at `published_ms` (Unix milliseconds):
    /// its id, its publish time and their signature with the payload.
    pub(super) fn headers(
        &self,
        msg_id: &str,
        published_ms: i64,
        payload: &[u8],
    ) -> async_nats::HeaderMap {
        use base64::Engine;
        let published = published_ms.to_string();
        let tag = self
            .mac(msg_id, &published, payload)
            .finalize()
            .into_bytes();
        let signature = format!(
            "{SIGNATURE_VERSION}{}",
            base64::engine::general_purpose::STANDARD.encode(tag)
        );
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(MSG_ID_HEADER, msg_id);
        headers.insert(PUBLISHED_HEADER, published.as_str());
        headers.insert(SIGNATURE_HEADER, signature.as_str());
        headers
    }

    /// The signed publish time (Unix milliseconds) of a message that carries exactly one
    /// message id, one publish time and one signature, the signature right (compared in
    /// constant time); `None` otherwise.
    pub(super) fn verify(
        &self,
        headers: Option<&async_nats::HeaderMap>,
        payload: &[u8],
    ) -> Option<i64> {
        use base64::Engine;
        let headers = headers?;
        let one = |name: &str| {
            let mut values = headers.get_all(name);
            match (values.next(), values.next()) {
                (Some(v), None) => Some(v.as_str()),
                _ => None,
            }
        };
        let (msg_id, published, signature) = (
            one(MSG_ID_HEADER)?,
            one(PUBLISHED_HEADER)?,
            one(SIGNATURE_HEADER)?,
        );
        let tag = signature
            .strip_prefix(SIGNATURE_VERSION)
            .and_then(|t| base64::engine::general_purpose::STANDARD.decode(t).ok())?;
        self.mac(msg_id, published, payload)
            .verify_slice(&tag)
            .ok()?;
        published.parse().ok()
    }
}

/// Where a message sits in the stream: its sequence and when the stream stored it (Unix
/// milliseconds, the NATS server's clock).
pub(super) struct Stored {
    pub(super) seq: u64,
    pub(super) at_ms: i64,
}

impl Stored {
    pub(super) fn of(info: &async_nats::jetstream::message::Info<'_>) -> Self {
        let at_ms = info.published.unix_timestamp_nanos() / 1_000_000;
        Self {
            seq: info.stream_sequence,
            at_ms: i64::try_from(at_ms).unwrap_or(i64::MAX),
        }
    }
}

/// The event in a stream message, when its signature holds, the stream stored it within
/// `window` (the stream's duplicate window) of its signed publish time, and it decodes.
pub(super) fn decode(
    key: &EventKey,
    message: &async_nats::Message,
    stored: &Stored,
    window: std::time::Duration,
) -> Option<Arc<WireEvent>> {
    let seq = stored.seq;
    let Some(published_ms) = key.verify(message.headers.as_ref(), &message.payload) else {
        tracing::warn!(
            seq,
            "fan-out event with a missing or wrong signature (not from a node of this cluster); dropped"
        );
        return None;
    };
    let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
    if stored.at_ms.saturating_sub(published_ms) > window_ms {
        tracing::warn!(
            seq,
            "fan-out event stored long after it was signed (published again by someone with access to NATS, or this node's clock is behind the NATS server's); dropped"
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
