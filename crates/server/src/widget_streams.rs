//! The support widget's visitor streams on this node (WEB-4): the hub hands every event to
//! [`WidgetStreams::tap`] in stream order; each visitor stream subscribes to its conversation
//! and receives that conversation's message, delta and status events with their stream
//! positions (the Server-Sent Events ids). [`WidgetStreams::subscribe`] answers the position
//! of the last event tapped: everything after it arrives live, everything up to it the stream
//! replays from the fan-out (`FanOut::replay`), so a reconnect with `Last-Event-ID` misses
//! nothing. A stream that does not keep up (its queue of [`QUEUE`] events full) is dropped;
//! the visitor reconnects and replays.
//!
//! Visitors waiting for their first (or next) conversation are woken on this node when it is
//! made here ([`WidgetStreams::conversation_started`]); a conversation made on another node is
//! found by the stream's periodic check.

use crate::fanout::Delivered;
use conclave_core::event::{Audience, EventKind};
use conclave_core::ConversationId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, Notify};
use uuid::Uuid;

/// Events a visitor stream may have waiting before it is dropped.
pub const QUEUE: usize = 512;

/// Whether the widget stream shows events of this kind.
#[must_use]
pub fn shown(kind: EventKind) -> bool {
    matches!(
        kind,
        EventKind::MessageCreate
            | EventKind::MessageUpdate
            | EventKind::MessageStream
            | EventKind::ConversationUpdate
    )
}

#[derive(Default)]
struct Inner {
    /// The position of the last event tapped that a widget stream shows.
    seen: u64,
    next: u64,
    by_conv: HashMap<ConversationId, Vec<(u64, mpsc::Sender<Delivered>)>>,
    waiting: HashMap<Uuid, Arc<Notify>>,
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

    /// The hub's tap: a shown event of a conversation goes to the streams subscribed to it.
    pub fn tap(&self, ev: &Delivered) {
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

    /// What wakes `visitor`'s streams when a conversation of theirs is made on this node.
    #[must_use]
    pub fn waiter(&self, visitor: Uuid) -> Arc<Notify> {
        self.lock().waiting.entry(visitor).or_default().clone()
    }

    /// Forgets `visitor`'s waiter once no stream holds it.
    pub fn release(&self, visitor: Uuid) {
        let mut g = self.lock();
        if g.waiting
            .get(&visitor)
            .is_some_and(|n| Arc::strong_count(n) == 1)
        {
            g.waiting.remove(&visitor);
        }
    }

    /// A conversation of `visitor`'s was made on this node: their streams look again now.
    pub fn conversation_started(&self, visitor: Uuid) {
        if let Some(n) = self.lock().waiting.get(&visitor) {
            n.notify_waiters();
        }
    }

    /// Streams subscribed now (tests, metrics).
    #[must_use]
    pub fn subscribed(&self) -> usize {
        self.lock().by_conv.values().map(Vec::len).sum()
    }
}
