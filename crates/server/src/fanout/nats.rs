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

use super::{Delivered, FanOut, FanOutError, WireEvent};
use async_nats::connection::State;
use async_nats::jetstream::{
    self,
    consumer::{
        pull::{Ordered, OrderedConfig},
        DeliverPolicy,
    },
    stream,
};
use async_trait::async_trait;
use bytes::Bytes;
use conclave_core::event::{Audience, Control, Event};
use futures::StreamExt;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretBox};
use serde::Serialize;
use sha2::Sha256;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// Attempts per event before it is given up (logged, never its content).
const PUBLISH_ATTEMPTS: u32 = 6;
const PUBLISH_BACKOFF: Duration = Duration::from_millis(50);
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

/// The header that carries a message's signature, and the one JetStream deduplicates by.
const SIGNATURE_HEADER: &str = "Conclave-Signature";
const MSG_ID_HEADER: &str = "Nats-Msg-Id";
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
    fn sign(&self, msg_id: &str, payload: &[u8]) -> String {
        use base64::Engine;
        let tag = self.mac(msg_id, payload).finalize().into_bytes();
        format!(
            "{SIGNATURE_VERSION}{}",
            base64::engine::general_purpose::STANDARD.encode(tag)
        )
    }

    /// Whether a message carries exactly one message id and one signature, and the signature
    /// is right (compared in constant time).
    fn verify(&self, headers: Option<&async_nats::HeaderMap>, payload: &[u8]) -> bool {
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

/// What a NATS URL says about authenticating to NATS.
#[derive(Debug, Clone, PartialEq, Eq)]
enum NatsAuth {
    None,
    /// `nats://token@host`.
    Token(String),
    /// `nats://user:password@host`.
    UserPassword(String, String),
    /// `nats://SU…@host`: an NKey user seed (58 characters starting with `SU`).
    NKey(String),
}

/// Decodes `%XX` escapes (URL user info is kept escaped).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn is_nkey_seed(text: &str) -> bool {
    text.len() == 58
        && text.starts_with("SU")
        && text
            .bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
}

/// Splits a NATS URL (one server, or several separated by commas) into the server addresses,
/// without credentials, and the credentials they carry (every server that names some must
/// name the same).
fn parse_url(url: &str) -> Result<(Vec<async_nats::ServerAddr>, NatsAuth), String> {
    let mut servers = Vec::new();
    let mut auth = NatsAuth::None;
    for part in url.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let addr: async_nats::ServerAddr = part
            .parse()
            .map_err(|e| format!("nats_url is not a NATS URL: {e}"))?;
        let mut inner = addr.into_inner();
        let user = percent_decode(inner.username());
        let password = inner.password().map(percent_decode);
        let here = match (user.is_empty(), password) {
            (true, None) => NatsAuth::None,
            (true, Some(_)) => return Err("nats_url has a password but no user".into()),
            (false, Some(p)) => NatsAuth::UserPassword(user, p),
            (false, None) if is_nkey_seed(&user) => NatsAuth::NKey(user),
            (false, None) => NatsAuth::Token(user),
        };
        if here != NatsAuth::None {
            if auth != NatsAuth::None && auth != here {
                return Err("the servers of nats_url carry different credentials".into());
            }
            auth = here;
        }
        let _ = inner.set_username("");
        let _ = inner.set_password(None);
        servers.push(
            async_nats::ServerAddr::from_url(inner)
                .map_err(|e| format!("nats_url is not a NATS URL: {e}"))?,
        );
    }
    if servers.is_empty() {
        return Err("nats_url names no server".into());
    }
    Ok((servers, auth))
}

/// Whether a NATS URL authenticates (token, user and password, or NKey); `Err` when it is not
/// a NATS URL. Production refuses one that does not, unless acknowledged.
pub fn url_has_credentials(url: &str) -> Result<bool, String> {
    parse_url(url).map(|(_, auth)| auth != NatsAuth::None)
}

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
    config: stream::Config,
    subject: String,
    view: Mutex<View>,
    ring: Mutex<Ring>,
}

/// The events this node read, so that most RESUMEs need no trip to NATS: every event at a
/// position `>= from` that this node read is here, in order (until it is older than the window).
struct Ring {
    events: VecDeque<(Instant, Delivered)>,
    from: u64,
    window: Duration,
}

impl Ring {
    fn evict(&mut self, now: Instant) {
        while self.events.len() > RING_MAX
            || self
                .events
                .front()
                .is_some_and(|(at, _)| now.duration_since(*at) > self.window)
        {
            if let Some((_, d)) = self.events.pop_front() {
                self.from = d.position + 1;
            }
        }
    }

    fn push(&mut self, d: Delivered) {
        let now = Instant::now();
        self.events.push_back((now, d));
        self.evict(now);
    }

    /// Starts over at `from` (after a gap, or on another stream).
    fn reset(&mut self, from: u64) {
        self.events.clear();
        self.from = from;
    }

    /// `(after, upto]`, when all of it is here.
    fn slice(&mut self, after: u64, upto: u64) -> Option<Vec<Delivered>> {
        self.evict(Instant::now());
        if after + 1 < self.from || self.events.back().is_none_or(|(_, d)| d.position < upto) {
            return None;
        }
        let start = self.events.partition_point(|(_, d)| d.position <= after);
        Some(
            self.events
                .range(start..)
                .map(|(_, d)| d)
                .take_while(|d| d.position <= upto)
                .cloned()
                .collect(),
        )
    }
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
    d: &'a serde_json::Value,
}

/// `<CLUSTER>_EVENTS`: upper-cased, anything but `A-Z0-9_-` becomes `_`.
fn stream_name(cluster: &str) -> String {
    let cluster: String = cluster
        .chars()
        .map(|c| {
            let c = c.to_ascii_uppercase();
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{cluster}_EVENTS")
}

/// `<cluster>.events`: the cluster name as one subject token.
fn subject_name(cluster: &str) -> String {
    let token: String = cluster
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{token}.events")
}

fn stream_config(name: String, subject: String, window: Duration) -> stream::Config {
    // A zero max_age would mean "keep forever".
    let window = window.max(Duration::from_secs(1));
    stream::Config {
        name,
        description: Some("Conclave gateway events".into()),
        subjects: vec![subject],
        max_age: window,
        duplicate_window: window.min(MAX_DUPLICATE_WINDOW),
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        discard: stream::DiscardPolicy::Old,
        allow_direct: true,
        ..Default::default()
    }
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> FanOutError {
    FanOutError::Unavailable(format!("{what}: {e}"))
}

fn created_of(info: &stream::Info) -> i128 {
    info.created.unix_timestamp_nanos()
}

fn is_not_found(e: &jetstream::context::GetStreamError) -> bool {
    matches!(e.kind(), jetstream::context::GetStreamErrorKind::JetStream(err)
        if err.code() == 404 || err.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND)
}

/// Finds the stream, creating it when it is missing (several nodes may race: creating an
/// identical stream twice succeeds, and a lost race is followed by another look). With
/// `update` (at connect only, so nodes configured differently do not keep undoing each other),
/// brings its retention and subject in line with ours.
async fn ensure_stream(
    js: &jetstream::Context,
    want: &stream::Config,
    update: bool,
) -> Result<stream::Info, FanOutError> {
    let mut last_error = String::new();
    for _ in 0..3 {
        match js.get_stream(&want.name).await {
            Ok(s) => {
                let info = s.cached_info().clone();
                let subject = &want.subjects[0];
                if !update
                    || (info.config.max_age == want.max_age
                        && info.config.subjects.contains(subject))
                {
                    return Ok(info);
                }
                let mut config = info.config.clone();
                config.max_age = want.max_age;
                if config.duplicate_window > want.max_age {
                    config.duplicate_window = want.duplicate_window;
                }
                if !config.subjects.contains(subject) {
                    config.subjects.push(subject.clone());
                }
                tracing::info!(stream = %want.name, max_age_s = want.max_age.as_secs(), "updating the fan-out stream");
                return js
                    .update_stream(&config)
                    .await
                    .map_err(|e| unavailable("updating the event stream", e));
            }
            Err(e) if is_not_found(&e) => match js.create_stream(want.clone()).await {
                Ok(s) => {
                    tracing::info!(stream = %want.name, "created the fan-out stream");
                    return Ok(s.cached_info().clone());
                }
                Err(e) => last_error = e.to_string(),
            },
            Err(e) => return Err(unavailable("reading the event stream", e)),
        }
    }
    Err(unavailable("creating the event stream", last_error))
}

impl NatsFanOut {
    /// Connects, makes sure the stream exists with `max_age = window`, and starts reading it
    /// from its end.
    pub async fn connect(
        url: &str,
        cluster_name: &str,
        window: Duration,
        key: EventKey,
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
        let ring = Ring {
            events: VecDeque::new(),
            from: last_seq + 1,
            window: config.max_age,
        };
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
            ring: Mutex::new(ring),
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

    async fn replay_seqs(
        &self,
        view: View,
        after: u64,
        upto: u64,
    ) -> Result<Option<Vec<Delivered>>, FanOutError> {
        let shared = &self.shared;
        let stream = shared
            .js
            .get_stream(&shared.config.name)
            .await
            .map_err(|e| unavailable("reading the event stream", e))?;
        let info = stream.cached_info();
        if created_of(info) != view.created || info.state.first_sequence > after + 1 {
            return Ok(None);
        }
        let upto = upto.min(info.state.last_sequence);
        if upto <= after {
            return Ok(Some(Vec::new()));
        }
        let consumer = stream
            .create_consumer(OrderedConfig {
                filter_subject: shared.subject.clone(),
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: after + 1,
                },
                ..Default::default()
            })
            .await
            .map_err(|e| unavailable("replaying the event stream", e))?;
        let name = consumer.cached_info().name.clone();
        let result = async {
            let mut messages = consumer
                .messages()
                .await
                .map_err(|e| unavailable("replaying the event stream", e))?;
            let mut out = Vec::with_capacity(usize::try_from(upto - after).unwrap_or(0));
            let mut first = true;
            while let Some(item) = messages.next().await {
                let message = item.map_err(|e| unavailable("replaying the event stream", e))?;
                let info = message
                    .info()
                    .map_err(|e| unavailable("replaying the event stream", e))?;
                let (seq, pending) = (info.stream_sequence, info.pending);
                if first && seq != after + 1 {
                    // Aged out between the look at the stream and the read.
                    return Ok(None);
                }
                first = false;
                if seq > upto {
                    break;
                }
                if let Some(event) = decode(&shared.key, &message, seq) {
                    out.push(Delivered {
                        position: view.base + seq,
                        event,
                    });
                }
                if seq >= upto || pending == 0 {
                    break;
                }
            }
            Ok(Some(out))
        }
        .await;
        // Ephemeral consumers also vanish by themselves once idle; this just does it sooner.
        let js = shared.js.clone();
        let stream_name = shared.config.name.clone();
        tokio::spawn(async move {
            if let Ok(stream) = js.get_stream(&stream_name).await {
                let _ = stream.delete_consumer(&name).await;
            }
        });
        result
    }
}

impl Drop for NatsFanOut {
    fn drop(&mut self) {
        // The publisher task ends by itself once the queue is closed and drained.
        self.consumer_task.abort();
    }
}

/// The event in a stream message, when its signature holds and it decodes.
fn decode(key: &EventKey, message: &async_nats::Message, seq: u64) -> Option<Arc<WireEvent>> {
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

/// An ordered consumer reading the stream from `start`.
async fn open_live(shared: &Shared, start: u64) -> Result<Ordered, FanOutError> {
    let stream = shared
        .js
        .get_stream(&shared.config.name)
        .await
        .map_err(|e| unavailable("reading the event stream", e))?;
    let consumer = stream
        .create_consumer(OrderedConfig {
            filter_subject: shared.subject.clone(),
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: start.max(1),
            },
            ..Default::default()
        })
        .await
        .map_err(|e| unavailable("subscribing to the event stream", e))?;
    consumer
        .messages()
        .await
        .map_err(|e| unavailable("subscribing to the event stream", e))
}

/// Reads the stream into the hub's channel until the hub goes away. `last_seq` is the last
/// stream sequence handled: after any failure the consumer is recreated from the one after it,
/// so nothing is skipped or repeated.
async fn consume(
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<Delivered>,
    mut live: Option<Ordered>,
    mut last_seq: u64,
) {
    let mut last_position = last_seq;
    let mut retry = Duration::from_millis(100);
    'open: loop {
        let mut messages = match live.take() {
            Some(m) => m,
            None => match open_live(&shared, last_seq + 1).await {
                Ok(m) => {
                    retry = Duration::from_millis(100);
                    m
                }
                Err(e) => {
                    tracing::warn!(error = %e, "fan-out stream unavailable; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(retry) => {}
                        () = tx.closed() => return,
                    }
                    retry = (retry * 2).min(RETRY_MAX);
                    // The stream may be gone: recreate it, and notice when it is a new one.
                    if let Ok(info) = ensure_stream(&shared.js, &shared.config, false).await {
                        if switch_if_replaced(&shared, &info, last_position) {
                            last_seq = 0;
                        }
                    }
                    continue 'open;
                }
            },
        };
        let mut watch = tokio::time::interval(WATCH_INTERVAL);
        watch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        watch.tick().await;
        loop {
            tokio::select! {
                item = messages.next() => match item {
                    Some(Ok(message)) => {
                        let seq = match message.info() {
                            Ok(info) => info.stream_sequence,
                            Err(e) => {
                                tracing::warn!(error = %e, "fan-out message without stream metadata; recreating the consumer");
                                continue 'open;
                            }
                        };
                        if seq <= last_seq {
                            continue;
                        }
                        let base = shared.view.lock().unwrap_or_else(|e| e.into_inner()).base;
                        let position = base + seq;
                        let mut ring = shared.ring.lock().unwrap_or_else(|e| e.into_inner());
                        if seq > last_seq + 1 {
                            tracing::warn!(missed = seq - last_seq - 1, "fan-out events aged out before this node read them");
                            ring.reset(position);
                        }
                        last_seq = seq;
                        last_position = position;
                        if let Some(event) = decode(&shared.key, &message, seq) {
                            let delivered = Delivered { position, event };
                            ring.push(delivered.clone());
                            drop(ring);
                            if tx.send(delivered).is_err() {
                                return;
                            }
                        }
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, after = last_seq, "fan-out consumer failed; recreating it");
                        continue 'open;
                    }
                    None => {
                        tracing::warn!(after = last_seq, "fan-out consumer ended; recreating it");
                        continue 'open;
                    }
                },
                _ = watch.tick() => {
                    if shared.client.connection_state() != State::Connected {
                        continue;
                    }
                    let Ok(Ok(info)) = tokio::time::timeout(REQUEST_TIMEOUT, ensure_stream(&shared.js, &shared.config, false)).await else {
                        continue;
                    };
                    if switch_if_replaced(&shared, &info, last_position) {
                        last_seq = 0;
                        continue 'open;
                    }
                }
                () = tx.closed() => return,
            }
        }
    }
}

/// When `info` is another stream than the one being read, positions continue after
/// `last_position` and the epoch changes. Returns whether it switched.
fn switch_if_replaced(shared: &Shared, info: &stream::Info, last_position: u64) -> bool {
    let mut view = shared.view.lock().unwrap_or_else(|e| e.into_inner());
    let created = created_of(info);
    if view.created == created {
        return false;
    }
    tracing::error!(stream = %shared.config.name, "the fan-out stream was replaced; sessions cannot resume across this");
    *view = View {
        created,
        base: last_position,
    };
    shared
        .ring
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .reset(last_position + 1);
    true
}

/// Publishes queued events one at a time, in order, each acknowledged before the next.
async fn publisher(
    shared: Arc<Shared>,
    mut queue: mpsc::UnboundedReceiver<Bytes>,
    done: watch::Sender<u64>,
) {
    let node = uuid::Uuid::new_v4().simple().to_string();
    let mut counter: u64 = 0;
    while let Some(payload) = queue.recv().await {
        counter += 1;
        let msg_id = format!("{node}-{counter}");
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(MSG_ID_HEADER, msg_id.as_str());
        headers.insert(
            SIGNATURE_HEADER,
            shared.key.sign(&msg_id, &payload).as_str(),
        );
        let mut backoff = PUBLISH_BACKOFF;
        for attempt in 1..=PUBLISH_ATTEMPTS {
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

#[async_trait]
impl FanOut for NatsFanOut {
    fn publish(&self, event: Event) {
        let wire = WireRef {
            t: &event.t,
            audience: &event.audience,
            control: event.control.as_ref(),
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
            .ring
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
            self.replay_seqs(view, after - view.base, upto - view.base),
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
mod tests {
    use super::*;
    use conclave_core::UserId;
    use std::time::Instant;

    const NATS_URL: &str = "nats://127.0.0.1:4222";

    /// The key every node of a test cluster shares.
    fn test_key() -> EventKey {
        EventKey::new(SecretBox::new(Box::new([42; 32])))
    }

    fn random_cluster() -> String {
        format!("test-{}", uuid::Uuid::new_v4().simple())
    }

    /// Connects, or says why not: under `CI=true` an unreachable NATS fails the test.
    async fn connect_or_skip(cluster: &str, window: Duration) -> Option<NatsFanOut> {
        match NatsFanOut::connect(NATS_URL, cluster, window, test_key()).await {
            Ok(f) => Some(f),
            Err(e) => {
                if crate::config::under_ci() {
                    panic!("NATS with JetStream is required under CI=true: {e}");
                }
                eprintln!("SKIPPED nats fanout: {e}");
                None
            }
        }
    }

    async fn delete_stream(f: &NatsFanOut) {
        let _ = f.shared.js.delete_stream(f.stream_name()).await;
    }

    async fn next(rx: &mut mpsc::UnboundedReceiver<Delivered>) -> Delivered {
        tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("an event within 10 s")
            .expect("the stream is open")
    }

    fn number(d: &Delivered) -> i64 {
        serde_json::from_str(d.event.d.get()).expect("a number")
    }

    #[test]
    fn the_ring_answers_only_what_it_holds_entirely() {
        let mut ring = Ring {
            events: VecDeque::new(),
            from: 11,
            window: Duration::from_secs(60),
        };
        let event = |position| Delivered {
            position,
            event: Arc::new(WireEvent::from_event(&Event::user(
                "X",
                UserId::new(),
                position,
            ))),
        };
        for p in 11..=20 {
            ring.push(event(p));
        }
        let positions =
            |v: Option<Vec<Delivered>>| v.map(|v| v.iter().map(|d| d.position).collect::<Vec<_>>());
        assert_eq!(positions(ring.slice(10, 20)), Some((11..=20).collect()));
        assert_eq!(positions(ring.slice(14, 16)), Some(vec![15, 16]));
        assert_eq!(
            positions(ring.slice(9, 20)),
            None,
            "11 is the first it holds"
        );
        assert_eq!(positions(ring.slice(15, 21)), None, "21 has not arrived");
        // A gap starts it over.
        ring.reset(30);
        ring.push(event(30));
        assert_eq!(positions(ring.slice(29, 30)), Some(vec![30]));
        assert_eq!(positions(ring.slice(20, 30)), None);
        // Old events leave it.
        ring.window = Duration::ZERO;
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(positions(ring.slice(29, 30)), None);
        assert_eq!(ring.from, 31);
    }

    #[test]
    fn signatures_cover_the_message_id_and_the_payload() {
        let key = test_key();
        let headers = |id: &str, sig: Option<String>| {
            let mut h = async_nats::HeaderMap::new();
            h.insert(MSG_ID_HEADER, id);
            if let Some(sig) = sig {
                h.insert(SIGNATURE_HEADER, sig.as_str());
            }
            h
        };
        let payload = br#"{"t":"X"}"#;
        let good = headers("n-1", Some(key.sign("n-1", payload)));
        assert!(key.verify(Some(&good), payload));
        assert!(!key.verify(Some(&good), br#"{"t":"Y"}"#), "another payload");
        assert!(!key.verify(None, payload), "no headers");
        assert!(
            !key.verify(Some(&headers("n-1", None)), payload),
            "unsigned"
        );
        let moved = headers("n-2", Some(key.sign("n-1", payload)));
        assert!(
            !key.verify(Some(&moved), payload),
            "a copy under a fresh id"
        );
        let other = EventKey::new(SecretBox::new(Box::new([7; 32])));
        let foreign = headers("n-1", Some(other.sign("n-1", payload)));
        assert!(
            !key.verify(Some(&foreign), payload),
            "another cluster's key"
        );
        let garbage = headers("n-1", Some("v1=not base64!".into()));
        assert!(!key.verify(Some(&garbage), payload));
        let mut twice = good.clone();
        twice.append(SIGNATURE_HEADER, key.sign("n-1", payload).as_str());
        assert!(!key.verify(Some(&twice), payload), "one signature only");
        assert!(format!("{key:?}").contains("redacted"));
    }

    #[test]
    fn credentials_come_from_the_url() {
        let auth = |url: &str| parse_url(url).map(|(_, a)| a);
        assert_eq!(auth("nats://127.0.0.1:4222"), Ok(NatsAuth::None));
        assert_eq!(
            auth("nats://s3cret@nats.internal"),
            Ok(NatsAuth::Token("s3cret".into()))
        );
        assert_eq!(
            auth("nats://conclave:p%40ss%3Aword@nats.internal:4222"),
            Ok(NatsAuth::UserPassword(
                "conclave".into(),
                "p@ss:word".into()
            ))
        );
        let seed = format!("SU{}", "A".repeat(56));
        assert_eq!(
            auth(&format!("nats://{seed}@nats.internal")),
            Ok(NatsAuth::NKey(seed.clone()))
        );
        assert_eq!(
            auth("nats://u:p@a:4222, nats://b:4222"),
            Ok(NatsAuth::UserPassword("u".into(), "p".into()))
        );
        assert!(auth("nats://u:p@a:4222,nats://v:q@b:4222").is_err());
        assert!(auth("nats://:p@a").is_err(), "a password without a user");
        assert!(auth("http://a").is_err());
        assert!(auth("").is_err());
        // The addresses handed to the client carry no credentials (they could be logged).
        for url in ["nats://conclave:s3cret@a:4222,nats://b", "nats://s3cret@a"] {
            let (servers, _) = parse_url(url).unwrap();
            for s in servers {
                assert!(!s.as_url_str().contains("s3cret"), "{}", s.as_url_str());
            }
        }
        assert_eq!(url_has_credentials("nats://t@a"), Ok(true));
        assert_eq!(url_has_credentials("nats://a"), Ok(false));
    }

    /// A stand-in NATS server that answers INFO and reports the CONNECT line it is sent.
    async fn connect_line(url_of: impl FnOnce(u16) -> String) -> serde_json::Value {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            let (read, mut write) = socket.into_split();
            write
                .write_all(b"INFO {\"server_id\":\"fake\",\"version\":\"2.10.0\",\"proto\":1,\"max_payload\":1048576,\"auth_required\":true,\"headers\":true}\r\n")
                .await
                .unwrap();
            let mut line = String::new();
            BufReader::new(read).read_line(&mut line).await.unwrap();
            let _ = write.write_all(b"-ERR 'Authorization Violation'\r\n").await;
            line
        });
        let url = url_of(port);
        let connecting = tokio::spawn(async move {
            let _ = NatsFanOut::connect(&url, "fake", Duration::from_secs(60), test_key()).await;
        });
        let line = tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("the client connects")
            .unwrap();
        connecting.abort();
        let json = line
            .strip_prefix("CONNECT ")
            .unwrap_or_else(|| panic!("a CONNECT line: {line}"));
        serde_json::from_str(json.trim()).expect("CONNECT carries JSON")
    }

    #[tokio::test]
    async fn url_credentials_are_sent_to_nats() {
        let c = connect_line(|port| format!("nats://conclave:p%40ss@127.0.0.1:{port}")).await;
        assert_eq!(
            (c["user"].as_str(), c["pass"].as_str()),
            (Some("conclave"), Some("p@ss"))
        );
        let c = connect_line(|port| format!("nats://t0ken@127.0.0.1:{port}")).await;
        assert_eq!(c["auth_token"], "t0ken");
        assert!(c["user"].is_null());
        let c = connect_line(|port| format!("nats://127.0.0.1:{port}")).await;
        assert!(c["auth_token"].is_null() && c["user"].is_null() && c["pass"].is_null());
    }

    #[test]
    fn names_are_sanitized() {
        assert_eq!(stream_name("conclave"), "CONCLAVE_EVENTS");
        assert_eq!(stream_name("eu.west 1/x"), "EU_WEST_1_X_EVENTS");
        assert_eq!(subject_name("eu.west*1"), "eu_west_1.events");
        assert_eq!(subject_name("prod-1"), "prod-1.events");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn events_from_one_node_reach_another_in_order() {
        let cluster = random_cluster();
        let Some(a) = connect_or_skip(&cluster, Duration::from_secs(60)).await else {
            return;
        };
        let b = NatsFanOut::connect(NATS_URL, &cluster, Duration::from_secs(60), test_key())
            .await
            .expect("second node");
        assert!(a.ready().await && b.ready().await);
        assert_eq!(a.epoch(), b.epoch(), "one stream, one epoch");
        assert!(a.epoch().starts_with(&format!("nats:{}:", a.stream_name())));
        let mut rx_a = a.take_stream().expect("stream");
        let mut rx_b = b.take_stream().expect("stream");
        assert!(b.take_stream().is_none());

        let user = UserId::new();
        let mut event = Event::user("MESSAGE_CREATE", user, 0);
        event = event.with_control(Control::RevokeUser { user, except: None });
        a.publish(event.clone());
        for i in 1..50 {
            a.publish(Event::user("MESSAGE_CREATE", user, i));
        }
        a.flush().await;

        let mut seen_b = Vec::new();
        for want in 0..50 {
            let d = next(&mut rx_b).await;
            assert_eq!(number(&d), want, "in publish order");
            if let Some(prev) = seen_b.last().map(|p: &Delivered| p.position) {
                assert!(d.position > prev, "positions strictly increase");
            }
            seen_b.push(d);
        }
        // The wire format round-trips the whole event.
        let first = &seen_b[0].event;
        assert_eq!(first.t, "MESSAGE_CREATE");
        assert_eq!(first.audience, Audience::User(user));
        assert_eq!(first.control, event.control);
        // The publishing node sees the same positions.
        for d in &seen_b {
            let mine = next(&mut rx_a).await;
            assert_eq!(mine.position, d.position);
            assert_eq!(number(&mine), number(d));
        }

        // Both nodes publish: each node's events keep their order, and both see one order.
        for i in 100..120 {
            a.publish(Event::user("A", user, i));
            b.publish(Event::user("B", user, i));
        }
        tokio::join!(a.flush(), b.flush());
        let mut from_a = Vec::new();
        let mut from_b = Vec::new();
        for _ in 0..40 {
            let (x, y) = (next(&mut rx_a).await, next(&mut rx_b).await);
            assert_eq!((x.position, &x.event.t), (y.position, &y.event.t));
            if x.event.t == "A" {
                from_a.push(number(&x));
            } else {
                from_b.push(number(&x));
            }
        }
        assert_eq!(from_a, (100..120).collect::<Vec<_>>());
        assert_eq!(from_b, (100..120).collect::<Vec<_>>());

        // Replay returns exactly (after, upto], from either node.
        let p = |i: usize| seen_b[i].position;
        let got = b.replay(p(9), p(19)).await.unwrap().unwrap();
        assert_eq!(
            got.iter().map(|d| d.position).collect::<Vec<_>>(),
            seen_b[10..20]
                .iter()
                .map(|d| d.position)
                .collect::<Vec<_>>()
        );
        assert_eq!(
            got.iter().map(number).collect::<Vec<_>>(),
            (10..20).collect::<Vec<_>>()
        );
        let all = a.replay(p(0) - 1, p(49)).await.unwrap().unwrap();
        assert_eq!(all.len(), 50);
        assert_eq!(a.replay(p(5), p(5)).await.unwrap().unwrap().len(), 0);
        // Beyond the end: what exists.
        let last = a.replay(p(49), p(49) + 40 + 1000).await.unwrap().unwrap();
        assert_eq!(last.len(), 40);

        // A node that started later has none of it in memory: it reads the stream back.
        let c = NatsFanOut::connect(NATS_URL, &cluster, Duration::from_secs(60), test_key())
            .await
            .expect("third node");
        assert_eq!(c.epoch(), a.epoch());
        let from_stream = c.replay(p(9), p(19)).await.unwrap().unwrap();
        assert_eq!(
            from_stream
                .iter()
                .map(|d| (d.position, number(d), d.event.t.clone()))
                .collect::<Vec<_>>(),
            got.iter()
                .map(|d| (d.position, number(d), d.event.t.clone()))
                .collect::<Vec<_>>()
        );
        assert_eq!(c.replay(p(0) - 1, p(49)).await.unwrap().unwrap().len(), 50);
        assert_eq!(
            c.replay(p(49), p(49) + 40).await.unwrap().unwrap().len(),
            40
        );

        delete_stream(&a).await;
    }

    /// SCALE-2: whatever reaches the subject without this cluster's signature is dropped, live
    /// and on replay, and the node's own signed events still flow.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unsigned_or_forged_events_are_dropped() {
        let cluster = random_cluster();
        let Some(a) = connect_or_skip(&cluster, Duration::from_secs(60)).await else {
            return;
        };
        let mut rx = a.take_stream().expect("stream");
        let user = UserId::new();
        let forged = serde_json::to_vec(&Event::user("MESSAGE_CREATE", user, "forged")).unwrap();
        let js = jetstream::new(async_nats::connect(NATS_URL).await.expect("a NATS client"));
        let subject = subject_name(&cluster);
        let publish = |headers: async_nats::HeaderMap| {
            let js = js.clone();
            let subject = subject.clone();
            let payload = Bytes::from(forged.clone());
            async move {
                js.publish_with_headers(subject, headers, payload)
                    .await
                    .expect("publish")
                    .await
                    .expect("stored in the stream")
            }
        };
        let first = publish(async_nats::HeaderMap::new()).await.sequence;
        let mut signed_elsewhere = async_nats::HeaderMap::new();
        let other = EventKey::new(SecretBox::new(Box::new([7; 32])));
        signed_elsewhere.insert(MSG_ID_HEADER, "forger-1");
        signed_elsewhere.insert(SIGNATURE_HEADER, other.sign("forger-1", &forged).as_str());
        publish(signed_elsewhere).await;
        let mut garbled = async_nats::HeaderMap::new();
        garbled.insert(MSG_ID_HEADER, "forger-2");
        garbled.insert(SIGNATURE_HEADER, "v1=AAAA");
        publish(garbled).await;
        a.publish(Event::user("MESSAGE_CREATE", user, "real"));
        a.flush().await;
        let d = next(&mut rx).await;
        assert_eq!(
            serde_json::from_str::<String>(d.event.d.get()).unwrap(),
            "real",
            "the forged events never reach the hub"
        );
        assert_eq!(d.position, first + 3, "after the three forged ones");
        // A node reading the stream back (RESUME on a node that started later) drops them too.
        let b = NatsFanOut::connect(NATS_URL, &cluster, Duration::from_secs(60), test_key())
            .await
            .expect("second node");
        let replayed = b.replay(first - 1, d.position).await.unwrap().unwrap();
        assert_eq!(
            replayed.iter().map(|d| d.position).collect::<Vec<_>>(),
            vec![d.position]
        );
        delete_stream(&a).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn aged_out_ranges_cannot_be_replayed() {
        let cluster = random_cluster();
        let Some(a) = connect_or_skip(&cluster, Duration::from_secs(1)).await else {
            return;
        };
        let mut rx = a.take_stream().expect("stream");
        for i in 0..3 {
            a.publish(Event::user("X", UserId::new(), i));
        }
        a.flush().await;
        let mut positions = Vec::new();
        for _ in 0..3 {
            positions.push(next(&mut rx).await.position);
        }
        assert_eq!(
            a.replay(positions[0] - 1, positions[2])
                .await
                .unwrap()
                .unwrap()
                .len(),
            3
        );
        // Wait (polling) until the stream has aged them out. A replay racing the expiry (the
        // events go between the look at the stream and the read) times out: poll again.
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if matches!(a.replay(positions[0] - 1, positions[2]).await, Ok(None)) {
                break;
            }
            assert!(Instant::now() < deadline, "events never aged out");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // What is still retained can be replayed.
        a.publish(Event::user("X", UserId::new(), 3));
        a.flush().await;
        let newest = next(&mut rx).await;
        let got = a
            .replay(positions[2], newest.position)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].position, newest.position);
        delete_stream(&a).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_node_with_another_window_updates_the_stream() {
        let cluster = random_cluster();
        let Some(a) = connect_or_skip(&cluster, Duration::from_secs(60)).await else {
            return;
        };
        let b = NatsFanOut::connect(NATS_URL, &cluster, Duration::from_secs(90), test_key())
            .await
            .expect("second node");
        let info = b
            .shared
            .js
            .get_stream(b.stream_name())
            .await
            .unwrap()
            .cached_info()
            .clone();
        assert_eq!(info.config.max_age, Duration::from_secs(90));
        assert_eq!(info.config.subjects, vec![subject_name(&cluster)]);
        // Updating is not replacing: the epoch stays.
        assert_eq!(a.epoch(), b.epoch());
        delete_stream(&a).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_replaced_stream_is_a_new_epoch_and_positions_keep_increasing() {
        let cluster = random_cluster();
        let Some(a) = connect_or_skip(&cluster, Duration::from_secs(60)).await else {
            return;
        };
        let mut rx = a.take_stream().expect("stream");
        for i in 0..3 {
            a.publish(Event::user("X", UserId::new(), i));
        }
        a.flush().await;
        let mut last = 0;
        for _ in 0..3 {
            last = next(&mut rx).await.position;
        }
        let before = a.epoch();
        a.shared
            .js
            .delete_stream(a.stream_name())
            .await
            .expect("delete");
        // The stream task notices within its watch interval and recreates the stream.
        let deadline = Instant::now() + WATCH_INTERVAL * 3;
        while a.epoch() == before {
            assert!(Instant::now() < deadline, "the replacement was not noticed");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        a.publish(Event::user("X", UserId::new(), 3));
        a.flush().await;
        let d = next(&mut rx).await;
        assert_eq!(number(&d), 3);
        assert!(
            d.position > last,
            "positions continue: {} after {last}",
            d.position
        );
        // Positions from before the replacement cannot be replayed; later ones can.
        assert!(a.replay(last - 1, d.position).await.unwrap().is_none());
        assert_eq!(a.replay(last, d.position).await.unwrap().unwrap().len(), 1);
        delete_stream(&a).await;
    }
}
