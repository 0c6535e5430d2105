//! The one task per node that publishes its events, in order: each is signed, sent, and
//! acknowledged before the next; retries keep the message id, so JetStream drops a duplicate.

use super::stream::ensure_stream;
use super::Shared;
use async_nats::jetstream;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Attempts per event before it is given up (logged, never its content).
const PUBLISH_ATTEMPTS: u32 = 6;
const PUBLISH_BACKOFF: Duration = Duration::from_millis(50);

/// Publishes queued events one at a time, in order, each acknowledged before the next.
pub(super) async fn publisher(
    shared: Arc<Shared>,
    mut queue: mpsc::UnboundedReceiver<Bytes>,
    done: watch::Sender<u64>,
) {
    let node = uuid::Uuid::new_v4().simple().to_string();
    let mut counter: u64 = 0;
    while let Some(payload) = queue.recv().await {
        counter += 1;
        let msg_id = format!("{node}-{counter}");
        let mut backoff = PUBLISH_BACKOFF;
        for attempt in 1..=PUBLISH_ATTEMPTS {
            // Signed again at each attempt with the time of that attempt (the id stays, so
            // JetStream still drops a duplicate): a retry is stored right after its signed time.
            let headers = shared.key.headers(&msg_id, wall_clock_ms(), &payload);
            let sent = async {
                shared
                    .js
                    .publish_with_headers(shared.subject.clone(), headers.clone(), payload.clone())
                    .await?
                    .await
            }
            .await;
            match sent {
                Ok(_) => break,
                Err(e) if attempt == PUBLISH_ATTEMPTS => {
                    tracing::error!(error = %e, attempts = attempt, "could not publish an event to the fan-out stream; dropped");
                }
                Err(e) => {
                    tracing::warn!(error = %e, attempt, "publishing an event to the fan-out stream failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                    if matches!(
                        e.kind(),
                        jetstream::context::PublishErrorKind::StreamNotFound
                    ) {
                        let _ = ensure_stream(&shared.js, &shared.config, false).await;
                    }
                }
            }
        }
        done.send_modify(|n| *n += 1);
    }
}

/// Now on this machine's wall clock, in Unix milliseconds: what the NATS server's stream
/// timestamps are compared with, so not the application's `Clock` (tests move that one).
pub(super) fn wall_clock_ms() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}
