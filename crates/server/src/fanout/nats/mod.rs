//! NATS JetStream fan-out (cluster): every node publishes its committed events to one stream,
//! `<CLUSTER>_EVENTS` on subject `<cluster>.events`, and reads that stream back in stream
//! order. The stream sequence is the position, so every node sees the same events at the same
//! positions, and RESUME replays from the stream on any node for as long as the stream retains
//! them (`max_age` = the resume window).
//!
//! Publishing never blocks: events go into a queue drained by one task that publishes and waits
//! for each acknowledgement in turn, so one node's events keep their order. Retries carry a
//! message id, so JetStream drops the duplicate when an acknowledgement was lost rather than
//! the publish.
//!
//! Each node also keeps the events it read within the window in memory, so a RESUME is usually
//! answered without asking NATS; the stream is read back (an ephemeral ordered consumer) when
//! the range starts before what the node holds, e.g. on a node that started later.
//!
//! Events carry authorization decisions (subscribe, revoke), so every message is signed
//! (SCALE-2): header `Conclave-Signature` holds `v1=` and the base64 HMAC-SHA256, under a key
//! derived from the master key, of the message id and the payload. A node drops (and logs,
//! without content) any message whose signature is missing or wrong, live and on replay alike.
//! The message id is signed too, so a copy cannot take a fresh id to slip past JetStream's
//! duplicate window. Credentials for NATS itself (token, user and password, or an NKey seed)
//! come from the URL.
//!
//! Should the stream itself be replaced (deleted and created again), positions continue from
//! the last one delivered (`base` + the new stream's sequence) and the epoch changes, so no
//! session resumes across the change.
//!
//! The parts: `url` (where NATS is and how to log in), `signing` (the signature every message
//! carries), `stream` (the JetStream stream, the live consumer and replays from it), `publish`
//! (the one task that publishes in order); the retained buffer is the fan-outs' shared
//! [`Retained`].

mod publish;
mod signing;
mod stream;
mod url;

pub use signing::EventKey;
pub use url::url_has_credentials;

use super::retained::Retained;
use super::{Delivered, FanOut, FanOutError};
use async_nats::connection::State;
use async_nats::jetstream::{self, stream as js_stream};
use async_trait::async_trait;
use bytes::Bytes;
use conclave_core::clock::{Clock, SystemClock};
use conclave_core::event::{Audience, Control, Event};
use conclave_core::OrgId;
use publish::publisher;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use stream::{
    consume, created_of, ensure_stream, open_live, replay_seqs, stream_config, stream_name,
    subject_name, unavailable,
};
use tokio::sync::{mpsc, watch};
use url::{parse_url, NatsAuth};

/// How long one JetStream request (publish acknowledgement, stream info) may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
const REPLAY_TIMEOUT: Duration = Duration::from_secs(5);
/// Larger replays are refused (`None`): the client catches up over REST instead.
const MAX_REPLAY: u64 = 100_000;
/// How often the stream task checks that the stream is still the one it reads.
const WATCH_INTERVAL: Duration = Duration::from_secs(5);
const READY_TIMEOUT: Duration = Duration::from_secs(2);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// The longest duplicate window: retries happen within seconds.
const MAX_DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// Events a node keeps in memory for RESUME (older ones are read back from the stream).
const RING_MAX: usize = 100_000;

pub struct NatsFanOut {
    shared: Arc<Shared>,
    queue: mpsc::UnboundedSender<Bytes>,
    /// Events handed to the publisher task so far.
    enqueued: AtomicU64,
    /// Events the publisher task has finished with (acknowledged or given up).
    done: watch::Receiver<u64>,
    stream_rx: Mutex<Option<mpsc::UnboundedReceiver<Delivered>>>,
    consumer_task: tokio::task::JoinHandle<()>,
}

struct Shared {
    client: async_nats::Client,
    key: EventKey,
    js: jetstream::Context,
    /// The configuration this node wants (name, subject, retention).
    config: js_stream::Config,
    subject: String,
    view: Mutex<View>,
    /// The events this node read, so that most RESUMEs need no trip to NATS.
    retained: Mutex<Retained>,
}

/// Which stream the positions come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct View {
    /// The stream's creation time (unix nanoseconds): a recreated stream is another one.
    created: i128,
    /// Added to the stream sequence to give a position (0 unless the stream was replaced).
    base: u64,
}

/// The wire format of `WireEvent`, serialized straight from a core event (once).
#[derive(Serialize)]
struct WireRef<'a> {
    t: &'a str,
    audience: &'a Audience,
    #[serde(skip_serializing_if = "Option::is_none")]
    control: Option<&'a Control>,
    #[serde(skip_serializing_if = "Option::is_none")]
    org: Option<OrgId>,
    d: &'a conclave_core::event::Data,
}

impl NatsFanOut {
    /// Connects, makes sure the stream exists with `max_age = window`, and starts reading it
    /// from its end; events read are retained for `window` on the wall clock.
    pub async fn connect(
        url: &str,
        cluster_name: &str,
        window: Duration,
        key: EventKey,
    ) -> Result<NatsFanOut, FanOutError> {
        Self::connect_with_clock(url, cluster_name, window, key, Arc::new(SystemClock)).await
    }

    /// As [`NatsFanOut::connect`], retaining events as `clock` tells time.
    pub async fn connect_with_clock(
        url: &str,
        cluster_name: &str,
        window: Duration,
        key: EventKey,
        clock: Arc<dyn Clock>,
    ) -> Result<NatsFanOut, FanOutError> {
        let (servers, auth) = parse_url(url).map_err(FanOutError::Unavailable)?;
        let options = match auth {
            NatsAuth::None => async_nats::ConnectOptions::new(),
            NatsAuth::Token(t) => async_nats::ConnectOptions::with_token(t),
            NatsAuth::UserPassword(u, p) => {
                async_nats::ConnectOptions::with_user_and_password(u, p)
            }
            NatsAuth::NKey(seed) => async_nats::ConnectOptions::with_nkey(seed),
        };
        let client = options
            .name("conclave")
            .connection_timeout(Duration::from_secs(5))
            .request_timeout(Some(REQUEST_TIMEOUT))
            .event_callback(|event| async move {
                match event {
                    async_nats::Event::Connected => tracing::info!("NATS connected"),
                    async_nats::Event::Disconnected => {
                        tracing::warn!("NATS disconnected; reconnecting")
                    }
                    other => tracing::debug!(event = %other, "NATS event"),
                }
            })
            .connect(servers)
            .await
            .map_err(|e| unavailable("cannot connect to NATS", e))?;
        let mut js = jetstream::new(client.clone());
        js.set_timeout(REQUEST_TIMEOUT);
        let subject = subject_name(cluster_name);
        let config = stream_config(stream_name(cluster_name), subject.clone(), window);
        let info = ensure_stream(&js, &config, true).await?;
        // Start at the end: what was published before this node came up is for RESUME only.
        let last_seq = info.state.last_sequence;
        let retained = Retained::new(clock, config.max_age, RING_MAX, last_seq + 1);
        let shared = Arc::new(Shared {
            client,
            key,
            js,
            config,
            subject,
            view: Mutex::new(View {
                created: created_of(&info),
                base: 0,
            }),
            retained: Mutex::new(retained),
        });

        let (stream_tx, stream_rx) = mpsc::unbounded_channel();
        let live = open_live(&shared, last_seq + 1).await.ok();
        let consumer_task = tokio::spawn(consume(shared.clone(), stream_tx, live, last_seq));

        let (queue, queue_rx) = mpsc::unbounded_channel();
        let (done_tx, done) = watch::channel(0);
        tokio::spawn(publisher(shared.clone(), queue_rx, done_tx));

        Ok(NatsFanOut {
            shared,
            queue,
            enqueued: AtomicU64::new(0),
            done,
            stream_rx: Mutex::new(Some(stream_rx)),
            consumer_task,
        })
    }

    /// The JetStream stream's name.
    #[must_use]
    pub fn stream_name(&self) -> &str {
        &self.shared.config.name
    }
}

impl Drop for NatsFanOut {
    fn drop(&mut self) {
        // The publisher task ends by itself once the queue is closed and drained.
        self.consumer_task.abort();
    }
}

#[async_trait]
impl FanOut for NatsFanOut {
    fn publish(&self, event: &Event) {
        let wire = WireRef {
            t: &event.t,
            audience: &event.audience,
            control: event.control.as_ref(),
            org: event.org,
            d: &event.d,
        };
        let payload = match serde_json::to_vec(&wire) {
            Ok(p) => Bytes::from(p),
            Err(e) => {
                tracing::error!(error = %e, "could not serialize an event; dropped");
                return;
            }
        };
        self.enqueued.fetch_add(1, Ordering::SeqCst);
        if self.queue.send(payload).is_err() {
            tracing::error!("the fan-out publisher is gone; event dropped");
        }
    }

    fn take_stream(&self) -> Option<mpsc::UnboundedReceiver<Delivered>> {
        self.stream_rx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    async fn replay(&self, after: u64, upto: u64) -> Result<Option<Vec<Delivered>>, FanOutError> {
        if after >= upto {
            return Ok(Some(Vec::new()));
        }
        if upto - after > MAX_REPLAY {
            return Ok(None);
        }
        if let Some(events) = self
            .shared
            .retained
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .slice(after, upto)
        {
            return Ok(Some(events));
        }
        let view = *self.shared.view.lock().unwrap_or_else(|e| e.into_inner());
        if after < view.base {
            // From the stream this one replaced.
            return Ok(None);
        }
        tokio::time::timeout(
            REPLAY_TIMEOUT,
            replay_seqs(&self.shared, view, after - view.base, upto - view.base),
        )
        .await
        .map_err(|_| FanOutError::Unavailable("replaying the event stream timed out".into()))?
    }

    fn epoch(&self) -> String {
        let view = *self.shared.view.lock().unwrap_or_else(|e| e.into_inner());
        let mut epoch = format!("nats:{}:{}", self.shared.config.name, view.created);
        if view.base > 0 {
            epoch.push_str(&format!("+{}", view.base));
        }
        epoch
    }

    async fn flush(&self) {
        let target = self.enqueued.load(Ordering::SeqCst);
        let mut done = self.done.clone();
        let _ = done.wait_for(|n| *n >= target).await;
    }

    async fn ready(&self) -> bool {
        if self.shared.client.connection_state() != State::Connected {
            return false;
        }
        matches!(
            tokio::time::timeout(
                READY_TIMEOUT,
                self.shared.js.get_stream(&self.shared.config.name)
            )
            .await,
            Ok(Ok(_))
        )
    }
}

#[cfg(test)]
mod tests;
