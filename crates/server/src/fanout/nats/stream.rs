//! The JetStream stream: its name and configuration, finding or creating it, the live ordered
//! consumer that feeds this node's hub (and the shared buffer), noticing a replaced stream,
//! and reading a range back for RESUME.

use super::signing::{decode, Stored};
use super::{Shared, View, MAX_DUPLICATE_WINDOW, REQUEST_TIMEOUT, RETRY_MAX, WATCH_INTERVAL};
use crate::fanout::{Delivered, FanOutError};
use async_nats::connection::State;
use async_nats::jetstream::{
    self,
    consumer::{
        pull::{Ordered, OrderedConfig},
        DeliverPolicy,
    },
    stream,
};
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// `<CLUSTER>_EVENTS`: upper-cased, anything but `A-Z0-9_-` becomes `_`.
pub(super) fn stream_name(cluster: &str) -> String {
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
pub(super) fn subject_name(cluster: &str) -> String {
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

pub(super) fn stream_config(name: String, subject: String, window: Duration) -> stream::Config {
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

pub(super) fn unavailable(what: &str, e: impl std::fmt::Display) -> FanOutError {
    FanOutError::Unavailable(format!("{what}: {e}"))
}

pub(super) fn created_of(info: &stream::Info) -> i128 {
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
pub(super) async fn ensure_stream(
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

/// Reads `(after, upto]` (stream sequences) back from the stream; `None` when some of it is
/// gone.
pub(super) async fn replay_seqs(
    shared: &Shared,
    view: View,
    after: u64,
    upto: u64,
) -> Result<Option<Vec<Delivered>>, FanOutError> {
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
            let stored = Stored::of(&info);
            if first && seq != after + 1 {
                // Aged out between the look at the stream and the read.
                return Ok(None);
            }
            first = false;
            if seq > upto {
                break;
            }
            if let Some(event) = decode(
                &shared.key,
                &message,
                &stored,
                shared.config.duplicate_window,
            ) {
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

/// An ordered consumer reading the stream from `start`.
pub(super) async fn open_live(shared: &Shared, start: u64) -> Result<Ordered, FanOutError> {
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
pub(super) async fn consume(
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
                        let stored = match message.info() {
                            Ok(info) => Stored::of(&info),
                            Err(e) => {
                                tracing::warn!(error = %e, "fan-out message without stream metadata; recreating the consumer");
                                continue 'open;
                            }
                        };
                        let seq = stored.seq;
                        if seq <= last_seq {
                            continue;
                        }
                        let base = shared.view.lock().unwrap_or_else(|e| e.into_inner()).base;
                        let position = base + seq;
                        let mut retained = shared.retained.lock().unwrap_or_else(|e| e.into_inner());
                        if seq > last_seq + 1 {
                            tracing::warn!(missed = seq - last_seq - 1, "fan-out events aged out before this node read them");
                            retained.reset(position);
                        }
                        last_seq = seq;
                        last_position = position;
                        if let Some(event) = decode(&shared.key, &message, &stored, shared.config.duplicate_window) {
                            let delivered = Delivered { position, event };
                            retained.push(delivered.clone());
                            drop(retained);
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
        .retained
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .reset(last_position + 1);
    true
}
