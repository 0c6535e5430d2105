//! The support widget's visitor streams on this node (WEB-4): the hub hands every event to
//! [`WidgetStreams::tap`] in stream order; each visitor stream subscribes to its conversation
//! and receives that conversation's message, delta and status events with their stream
//! positions (the Server-Sent Events ids). [`WidgetStreams::subscribe`] answers the position
//! of the last event tapped: everything after it arrives live, everything up to it the stream
//! replays from the fan-out (`FanOut::replay`), so a reconnect with `Last-Event-ID` misses
//! nothing. A stream that does not keep up (its queue of [`QUEUE`] events full) is dropped;
//! the visitor reconnects and replays.
//!
//! Visitors waiting for their first (or next) conversation are woken when it is made, on any
//! node: the visitor bot's `CONVERSATION_CREATE` (which reaches no socket or webhook) names the
//! visitor; the stream's slow periodic check is only a backstop.
//!
//! A widget key revoked or changed (`Control::WidgetKey`, made by the node that changed it and
//! heard by every node's hub) wakes that key's streams ([`WidgetStreams::watch_key`]): a
//! revoked key's streams end at once; after a change each looks at the key again and ends
//! when its page's origin is no longer allowed or the key now requires signed visitors. An
//! idle stream costs nothing for this: no polling.

use crate::fanout::{Delivered, WireEvent};
use conclave_core::event::{Audience, Control, EventKind};
use conclave_core::service::widget::WIDGET_VISITOR_FIELD;
use conclave_core::ConversationId;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, Notify};
use uuid::Uuid;

/// What one open visitor stream hears of its widget key: woken when the key changed (on any
/// node: `Control::WidgetKey` reaches every hub), with `revoked` set when it is gone.
#[derive(Default)]
pub struct KeyWatch {
    pub changed: Notify,
    revoked: AtomicBool,
}

impl KeyWatch {
    /// Whether the key was revoked.
    #[must_use]
    pub fn revoked(&self) -> bool {
        self.revoked.load(Ordering::Acquire)
    }
}

/// Events a visitor stream may have waiting before it is dropped.
pub const QUEUE: usize = 512;

/// Whether the widget stream shows events of this kind.
#[must_use]
pub fn shown(kind: EventKind) -> bool {
    matches!(
        kind,
        EventKind::MessageCreate
            | EventKind::MessageUpdate
            | EventKind::MessageDelete
            | EventKind::MessageStream
            | EventKind::ConversationUpdate
    )
}

/// The visitor a `CONVERSATION_CREATE` to a widget key's visitor bot names.
fn started_for(event: &WireEvent) -> Option<Uuid> {
    if !matches!(event.audience, Audience::User(_)) || !event.d.get().contains(WIDGET_VISITOR_FIELD)
    {
        return None;
    }
    let d: serde_json::Value = serde_json::from_str(event.d.get()).ok()?;
    Uuid::parse_str(d.get(WIDGET_VISITOR_FIELD)?.as_str()?).ok()
}

/// A new item in `map`'s list for `id`.
fn enlist<T: Default>(map: &mut HashMap<Uuid, Vec<Arc<T>>>, id: Uuid) -> Arc<T> {
    let item = Arc::new(T::default());
    map.entry(id).or_default().push(item.clone());
    item
}

/// Takes `item` out of `map`'s list for `id` (and the list, once empty).
fn forget<T>(map: &mut HashMap<Uuid, Vec<Arc<T>>>, id: Uuid, item: &Arc<T>) {
    if let Some(list) = map.get_mut(&id) {
        list.retain(|x| !Arc::ptr_eq(x, item));
        if list.is_empty() {
            map.remove(&id);
        }
    }
}

#[derive(Default)]
struct Inner {
    /// The position of the last event tapped that a widget stream shows.
    seen: u64,
    next: u64,
    by_conv: HashMap<ConversationId, Vec<(u64, mpsc::Sender<Delivered>)>>,
    /// One per stream waiting on the visitor (a permit is kept until it is waited for).
    waiting: HashMap<Uuid, Vec<Arc<Notify>>>,
    /// Per widget key, one per open stream of it.
    keys: HashMap<Uuid, Vec<Arc<KeyWatch>>>,
}

/// This node's visitor streams.
#[derive(Default)]
pub struct WidgetStreams {
    inner: Mutex<Inner>,
}

/// A stream's subscription to one conversation; leaving it unsubscribes.
pub struct Subscription {
    pub events: mpsc::Receiver<Delivered>,
    /// Events up to this position are not sent live: replay them.
    pub from: u64,
    conv: ConversationId,
    id: u64,
    streams: Arc<WidgetStreams>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut g = self.streams.lock();
        if let Some(list) = g.by_conv.get_mut(&self.conv) {
            list.retain(|(id, _)| *id != self.id);
            if list.is_empty() {
                g.by_conv.remove(&self.conv);
            }
        }
    }
}

impl WidgetStreams {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The hub's tap: a shown event of a conversation goes to the streams subscribed to it; a
    /// visitor's new conversation (made on any node) wakes their waiting streams.
    pub fn tap(&self, ev: &Delivered) {
        if let Some(Control::WidgetKey { key, revoked }) = &ev.event.control {
            self.key_changed(*key, *revoked);
            return;
        }
        if ev.event.kind == EventKind::ConversationCreate {
            if let Some(visitor) = started_for(&ev.event) {
                self.conversation_started(visitor);
            }
            return;
        }
        if !shown(ev.event.kind) {
            return;
        }
        let Audience::Conversation(conv) = ev.event.audience else {
            return;
        };
        let mut g = self.lock();
        g.seen = ev.position;
        if let Some(list) = g.by_conv.get_mut(&conv) {
            // A full queue is a stream that does not keep up: dropped (it reconnects and
            // replays); a closed one has ended.
            list.retain(|(_, tx)| tx.try_send(ev.clone()).is_ok());
        }
    }

    /// Subscribes to `conv`'s shown events from now on.
    #[must_use]
    pub fn subscribe(self: &Arc<Self>, conv: ConversationId) -> Subscription {
        let (tx, rx) = mpsc::channel(QUEUE);
        let mut g = self.lock();
        g.next += 1;
        let id = g.next;
        let from = g.seen;
        g.by_conv.entry(conv).or_default().push((id, tx));
        Subscription {
            events: rx,
            from,
            conv,
            id,
            streams: self.clone(),
        }
    }

    /// The position of the last shown event tapped: a stream that starts waiting for a
    /// conversation replays from here once one appears, so nothing said meanwhile is missed.
    #[must_use]
    pub fn seen(&self) -> u64 {
        self.lock().seen
    }

    /// What wakes this stream of `visitor`'s when a conversation of theirs is made.
    #[must_use]
    pub fn waiter(&self, visitor: Uuid) -> Arc<Notify> {
        enlist(&mut self.lock().waiting, visitor)
    }

    /// Forgets a stream's waiter.
    pub fn release(&self, visitor: Uuid, waiter: &Arc<Notify>) {
        forget(&mut self.lock().waiting, visitor, waiter);
    }

    /// A conversation of `visitor`'s was made: their streams look again now.
    pub fn conversation_started(&self, visitor: Uuid) {
        if let Some(list) = self.lock().waiting.get(&visitor) {
            for n in list {
                n.notify_one();
            }
        }
    }

    /// What tells a stream of `key` that the key changed.
    #[must_use]
    pub fn watch_key(&self, key: Uuid) -> Arc<KeyWatch> {
        enlist(&mut self.lock().keys, key)
    }

    /// Forgets a stream's key watch.
    pub fn unwatch_key(&self, key: Uuid, watch: &Arc<KeyWatch>) {
        forget(&mut self.lock().keys, key, watch);
    }

    /// `key` was revoked or changed: its streams on this node look at it again (a revoked
    /// key's end without looking).
    pub fn key_changed(&self, key: Uuid, revoked: bool) {
        if let Some(list) = self.lock().keys.get(&key) {
            for w in list {
                if revoked {
                    w.revoked.store(true, Ordering::Release);
                }
                w.changed.notify_one();
            }
        }
    }

    /// Streams subscribed now (tests, metrics).
    #[must_use]
    pub fn subscribed(&self) -> usize {
        self.lock().by_conv.values().map(Vec::len).sum()
    }
}
