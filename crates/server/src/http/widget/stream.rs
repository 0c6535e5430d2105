//! The visitor's event stream (`GET /widget/chat/stream`): Server-Sent Events `message`,
//! `delta` and `status` of the visitor's current conversation, each with an `id` (the
//! fan-out position) a reconnect sends back as `Last-Event-ID` to replay what it missed; the
//! stream switches when a new conversation of the visitor's appears and ends when the widget
//! key no longer admits it.

use super::WidgetCall;
use crate::fanout::{Delivered, WireEvent};
use crate::state::AppState;
use crate::widget_streams::{shown, KeyWatch, Subscription};
use axum::http::HeaderValue;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use conclave_core::event::EventKind;
use conclave_core::model::UserSummary;
use conclave_core::service::widget::{widget_message, MessageFacts, Visitor};
use conclave_core::store::widget::WidgetConversation;
use conclave_core::types::{MessageFormat, MessageStatus, UserKind};
use conclave_core::widget::WidgetStatus;
use conclave_core::{ConversationId, MessageId, UserId};
use serde::{Deserialize, Serialize};
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::mpsc;

/// The heartbeat comment of an idle stream.
const HEARTBEAT: Duration = Duration::from_secs(15);
/// How often a stream without a live conversation looks for a new one anyway (the fan-out
/// wakes it when one is made; this is a backstop).
const RECHECK: Duration = Duration::from_secs(30);

/// Answers a widget stream call of visitor `v`: the SSE response, fed by a task that follows
/// the visitor's conversations until the client goes or the key no longer admits it.
pub(super) fn open(call: &WidgetCall, v: Visitor) -> Response {
    let epoch = epoch_tag(&call.state.gateway.fanout.epoch());
    let last = call
        .last_event_id
        .as_deref()
        .and_then(|id| position_of(id, &epoch));
    let (tx, rx) = mpsc::channel::<SseEvent>(64);
    let state = call.state.clone();
    let origin = call.origin.clone();
    tokio::spawn(async move {
        let streams = state.gateway.widget_streams.clone();
        let watch = streams.watch_key(v.key.id);
        // Watching before looking: a change from now on wakes the stream; one made since the
        // gate let the call in is seen here.
        let key = KeyCheck {
            state: &state,
            v: &v,
            origin: origin.as_deref(),
            watch: &watch,
        };
        if key.admits().await {
            follow_visitor(&state, &v, &key, epoch, last, tx).await;
        }
        streams.unwatch_key(v.key.id, &watch);
    });
    let events = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx))
    });
    let mut res = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(HEARTBEAT))
        .into_response();
    res.headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    res
}

/// A short tag of the fan-out's epoch: ids of another epoch (a restarted node) replay nothing.
fn epoch_tag(epoch: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(epoch.as_bytes());
    conclave_core::audit::hex(&digest[..4])
}

fn event_id(epoch: &str, position: u64) -> String {
    format!("{epoch}-{position}")
}

/// The position an event id names, if it is of this epoch.
fn position_of(id: &str, epoch: &str) -> Option<u64> {
    let (tag, pos) = id.trim().rsplit_once('-')?;
    (tag == epoch).then(|| pos.parse().ok()).flatten()
}

/// A message event's REST object, as far as the widget reads it.
#[derive(Deserialize)]
struct WireMessage {
    id: MessageId,
    author: WireAuthor,
    content: Option<String>,
    format: MessageFormat,
    #[serde(default = "complete")]
    status: MessageStatus,
    created_at: chrono::DateTime<chrono::Utc>,
    deleted_at: Option<chrono::DateTime<chrono::Utc>>,
}

fn complete() -> MessageStatus {
    MessageStatus::Complete
}

#[derive(Deserialize)]
struct WireAuthor {
    id: UserId,
    username: String,
    display_name: Option<String>,
    kind: UserKind,
}

#[derive(Deserialize, Serialize)]
struct Delta {
    message_id: MessageId,
    index: u64,
    delta: String,
}

/// A `MESSAGE_DELETE`'s message: only its id is shown.
#[derive(Deserialize)]
struct Deleted {
    id: MessageId,
}

#[derive(Deserialize)]
struct StatusChange {
    id: ConversationId,
    status: Option<WidgetStatus>,
}

/// The SSE event a fan-out event of the visitor's conversation is, if any (and a status it
/// announces).
fn sse_of(v: &Visitor, ev: &WireEvent, id: &str) -> Option<(SseEvent, Option<WidgetStatus>)> {
    let d = ev.d.get();
    let event = |name: &str, data: String| SseEvent::default().event(name).id(id).data(data);
    match ev.kind {
        EventKind::MessageCreate | EventKind::MessageUpdate => {
            let m: WireMessage = serde_json::from_str(d).ok()?;
            let author = UserSummary {
                id: m.author.id,
                username: m.author.username,
                display_name: m.author.display_name,
                kind: m.author.kind,
            };
            let facts = MessageFacts {
                id: m.id,
                author: &author,
                content: m.content.as_deref(),
                format: m.format,
                status: m.status,
                created_at: m.created_at,
                deleted: m.deleted_at.is_some(),
            };
            let shown = widget_message(&v.key, &v.visitor, &facts)?;
            Some((event("message", serde_json::to_string(&shown).ok()?), None))
        }
        // MSG-2: a deleted message leaves the visitor's view as it leaves their history —
        // also after a replay that sent it again first.
        EventKind::MessageDelete => {
            let m: Deleted = serde_json::from_str(d).ok()?;
            let data = serde_json::json!({ "message_id": m.id });
            Some((event("delete", data.to_string()), None))
        }
        EventKind::MessageStream => {
            let delta: Delta = serde_json::from_str(d).ok()?;
            Some((event("delta", serde_json::to_string(&delta).ok()?), None))
        }
        EventKind::ConversationUpdate => {
            let change: StatusChange = serde_json::from_str(d).ok()?;
            let status = change.status?;
            let data = serde_json::json!({"conversation_id": change.id, "status": status});
            Some((event("status", data.to_string()), Some(status)))
        }
        _ => None,
    }
}

fn status_event(w: &WidgetConversation, id: &str) -> SseEvent {
    let data = serde_json::json!({"conversation_id": w.conversation_id, "status": w.status});
    SseEvent::default()
        .event("status")
        .id(id)
        .data(data.to_string())
}

/// What an open stream checks when its widget key changed.
struct KeyCheck<'a> {
    state: &'a AppState,
    v: &'a Visitor,
    origin: Option<&'a str>,
    watch: &'a KeyWatch,
}

impl KeyCheck<'_> {
    /// Whether the key still admits the stream's visitor and page (a revoked key does not,
    /// nor does one that cannot be read now).
    async fn admits(&self) -> bool {
        if self.watch.revoked() {
            return false;
        }
        match self
            .state
            .services
            .widget_key_admits(self.v, self.origin)
            .await
        {
            Ok(admits) => admits,
            Err(e) => {
                tracing::warn!(error = %e, "a widget stream could not read its key");
                false
            }
        }
    }
}

/// Feeds one visitor's stream until the client goes (or the key no longer admits it): their
/// current conversation's events, switching when a new conversation of theirs appears.
async fn follow_visitor(
    state: &AppState,
    v: &Visitor,
    key: &KeyCheck<'_>,
    epoch: String,
    mut last: Option<u64>,
    tx: mpsc::Sender<SseEvent>,
) {
    let streams = state.gateway.widget_streams.clone();
    let waiter = streams.waiter(v.visitor.id);
    // Whether the next conversation followed is new to the client (it appeared, or replaced
    // another, while this stream was open): its status is sent before its events.
    let mut announce = false;
    loop {
        // Listening before looking: a conversation made in between still wakes the stream.
        let mut notified = Box::pin(waiter.notified());
        notified.as_mut().enable();
        let seen = streams.seen();
        let current = match state.services.widget_current(v).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "a widget stream could not read its conversation");
                break;
            }
        };
        let Some(w) = current else {
            // The conversation that appears will be sent from here on (a replay), not from
            // when this stream gets to it: its first events (the visitor's message, the
            // agent's answer starting) happen before that.
            last.get_or_insert(seen);
            announce = true;
            let gone = tokio::select! {
                () = notified.as_mut() => false,
                () = tokio::time::sleep(RECHECK) => false,
                () = key.watch.changed.notified() => !key.admits().await,
                () = tx.closed() => true,
            };
            if gone {
                break;
            }
            continue;
        };
        // Not listening here any more: a wake-up goes to the loop below.
        drop(notified);
        let sub = streams.subscribe(w.conversation_id);
        let ctx = Follow {
            state,
            v,
            epoch: &epoch,
            tx: &tx,
            waiter: &waiter,
            key,
        };
        if !ctx.conversation(w, sub, &mut last, announce).await {
            break;
        }
        announce = true;
    }
    streams.release(v.visitor.id, &waiter);
}

struct Follow<'a> {
    state: &'a AppState,
    v: &'a Visitor,
    epoch: &'a str,
    tx: &'a mpsc::Sender<SseEvent>,
    waiter: &'a tokio::sync::Notify,
    key: &'a KeyCheck<'a>,
}

impl Follow<'_> {
    async fn send(&self, e: SseEvent) -> bool {
        self.tx.send(e).await.is_ok()
    }

    /// Sends `ev` as the widget shows it (if it does), noting in `resolved` a status it
    /// announces; `false` once the client is gone.
    async fn forward(&self, ev: &Delivered, resolved: &mut bool) -> bool {
        let id = event_id(self.epoch, ev.position);
        let Some((e, status)) = sse_of(self.v, &ev.event, &id) else {
            return true;
        };
        if let Some(s) = status {
            *resolved = s == WidgetStatus::Resolved;
        }
        self.send(e).await
    }

    /// Whether the visitor's newest conversation is another one now.
    async fn switched(&self, conv: ConversationId) -> bool {
        match self.state.services.widget_current(self.v).await {
            Ok(Some(w)) => w.conversation_id != conv,
            _ => false,
        }
    }

    /// Sends what the client missed of `w` (a replay from `last`, after `w`'s status when
    /// `announce`, or the current messages), then its live events; `false` once the client
    /// is gone (or fell too far behind), `true` when the visitor's conversation changed.
    async fn conversation(
        &self,
        w: WidgetConversation,
        mut sub: Subscription,
        last: &mut Option<u64>,
        announce: bool,
    ) -> bool {
        let conv = w.conversation_id;
        let upto = sub.from;
        let replayed = match *last {
            Some(p) if p >= upto => Some(Vec::new()),
            Some(p) => self
                .state
                .gateway
                .fanout
                .replay(p, upto)
                .await
                .ok()
                .flatten(),
            None => None,
        };
        let mut resolved = w.status == WidgetStatus::Resolved;
        match replayed {
            Some(events) => {
                let from = event_id(self.epoch, last.unwrap_or(upto));
                if announce && !self.send(status_event(&w, &from)).await {
                    return false;
                }
                for ev in events {
                    if ev.event.audience.conversation() != Some(conv) || !shown(ev.event.kind) {
                        continue;
                    }
                    if !self.forward(&ev, &mut resolved).await {
                        return false;
                    }
                }
            }
            None => {
                let id = event_id(self.epoch, upto);
                let messages = match self.state.services.widget_messages(self.v, conv).await {
                    Ok(m) => m,
                    Err(_) => return false,
                };
                for m in messages {
                    let Ok(data) = serde_json::to_string(&m) else {
                        continue;
                    };
                    let e = SseEvent::default().event("message").id(&id).data(data);
                    if !self.send(e).await {
                        return false;
                    }
                }
                if !self.send(status_event(&w, &id)).await {
                    return false;
                }
            }
        }
        *last = Some(last.unwrap_or(0).max(upto));
        loop {
            tokio::select! {
                ev = sub.events.recv() => {
                    let Some(ev) = ev else { return false };
                    if last.is_some_and(|l| ev.position <= l) {
                        continue;
                    }
                    *last = Some(ev.position);
                    if !self.forward(&ev, &mut resolved).await {
                        return false;
                    }
                }
                () = self.waiter.notified() => {
                    if self.switched(conv).await {
                        return true;
                    }
                }
                () = tokio::time::sleep(RECHECK), if resolved => {
                    if self.switched(conv).await {
                        return true;
                    }
                }
                () = self.key.watch.changed.notified() => {
                    if !self.key.admits().await {
                        return false;
                    }
                }
                () = self.tx.closed() => return false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_round_trip_within_their_epoch() {
        let e = epoch_tag("local:abc");
        assert_eq!(position_of(&event_id(&e, 42), &e), Some(42));
        assert_eq!(position_of(&event_id(&e, 42), &epoch_tag("other")), None);
        assert_eq!(position_of("garbage", &e), None);
    }
}
