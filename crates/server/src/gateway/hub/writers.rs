//! The writer tasks: the hub hands them the outboxes a burst touched, and they make the system
//! calls (one write per socket) on every core while the hub routes the next burst.
//!
//! The hub stays at most one burst ahead of them: before handing over a burst it waits until
//! the writers are done with the previous one. While they are busy, events wait in the stream
//! and the next burst is larger, so each socket gets more frames per write exactly when writing
//! is the bottleneck. The bound also keeps a fast client from looking slow: frames wait in its
//! outbox for at most two bursts before they are written, far below any sane queue limit.

use super::Outbox;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, Notify};

/// Sockets a writer writes before it yields its worker to the requests and connections
/// queued behind it.
const YIELD_EVERY: usize = 8;

/// The writer tasks of one hub (none: the hub writes the sockets itself).
#[derive(Default)]
pub(super) struct Writers {
    shares: Vec<mpsc::UnboundedSender<Vec<Arc<Outbox>>>>,
    busy: Arc<Busy>,
}

/// Shares handed over and not finished yet.
#[derive(Default)]
struct Busy {
    left: AtomicUsize,
    idle: Notify,
}

/// Marks a share finished when dropped, so even a writer that panicked cannot stall the hub.
struct Finished(Arc<Busy>);

impl Drop for Finished {
    fn drop(&mut self) {
        if self.0.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_one();
        }
    }
}

impl Writers {
    /// `n` writer tasks on the current runtime.
    pub(super) fn spawn(n: usize) -> Self {
        let busy = Arc::new(Busy::default());
        let shares = (0..n.max(1))
            .map(|_| {
                let (tx, rx) = mpsc::unbounded_channel();
                tokio::spawn(write(rx, busy.clone()));
                tx
            })
            .collect();
        Self { shares, busy }
    }

    /// Has every outbox in `dirty` written once and empties it: by the writers, after they are
    /// done with the previous hand-over, or right here when there are none.
    ///
    /// The wait comes first even when `dirty` is empty: a burst routed while the writers still
    /// held the previous one adds its frames to outboxes already handed over (so none of them
    /// is dirty), and the hub must not route a third burst before those are written.
    pub(super) async fn hand_over(&self, dirty: &mut Vec<Arc<Outbox>>) {
        if self.shares.is_empty() {
            for out in dirty.drain(..) {
                out.flush();
            }
            return;
        }
        while self.busy.left.load(Ordering::Acquire) > 0 {
            self.busy.idle.notified().await;
        }
        if dirty.is_empty() {
            return;
        }
        let share = dirty.len().div_ceil(self.shares.len());
        let mut rest = std::mem::take(dirty);
        for writer in &self.shares {
            if rest.is_empty() {
                break;
            }
            let tail = rest.split_off(share.min(rest.len()));
            self.busy.left.fetch_add(1, Ordering::AcqRel);
            if writer.send(std::mem::replace(&mut rest, tail)).is_err() {
                // The writer is gone (the runtime is shutting down): nothing will finish it.
                self.busy.left.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
}

/// A writer task: writes the outboxes it is handed, yielding every few sockets.
async fn write(mut shares: mpsc::UnboundedReceiver<Vec<Arc<Outbox>>>, busy: Arc<Busy>) {
    while let Some(share) = shares.recv().await {
        let _finished = Finished(busy.clone());
        for (i, out) in share.iter().enumerate() {
            out.flush();
            if i % YIELD_EVERY == YIELD_EVERY - 1 {
                tokio::task::yield_now().await;
            }
        }
    }
}
