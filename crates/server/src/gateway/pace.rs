//! Back-pressure from the hub to senders (issue 13). The fan-out stream into the hub is
//! unbounded, and an accepted send never waited for the hub: when the machine was saturated
//! (PostgreSQL at full send rate: the server, the database and the load generator sharing two
//! cores) the request tasks got more turns than the one hub task, so messages were committed
//! and acknowledged faster than they were delivered and the hub fell seconds behind.
//!
//! Now a message send is answered only once the hub has at most [`BACKLOG`] of this node's
//! events still to route (the message itself is committed and published before: waiting
//! changes when the 201 leaves, never whether the message is stored or delivered). Senders
//! then slow down to what the hub can deliver, and the delivery lag stays bounded. A send
//! never waits longer than [`MAX_WAIT`] (a hub that makes no progress must not stop sends),
//! and not at all when no hub runs or when positions are not this node's (cluster mode: the
//! stream's positions are JetStream's, `FanOut::published` is 0).

use crate::fanout::FanOut;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Events this node published that the hub may still have to route when a send is answered.
pub const BACKLOG: u64 = 512;

/// The longest a send waits for the hub.
pub const MAX_WAIT: Duration = Duration::from_secs(1);

/// How far the hub is behind this node's fan-out.
pub struct Pace {
    fanout: Arc<dyn FanOut>,
    /// The last stream position the hub routed.
    routed: AtomicU64,
    /// Whether a hub is routing this node's stream.
    running: AtomicBool,
    moved: Notify,
    backlog: u64,
}

impl Pace {
    #[must_use]
    pub fn new(fanout: Arc<dyn FanOut>) -> Self {
        Self::with_backlog(fanout, BACKLOG)
    }

    /// A pace that lets `backlog` events wait for the hub.
    #[must_use]
    pub fn with_backlog(fanout: Arc<dyn FanOut>, backlog: u64) -> Self {
        Self {
            fanout,
            routed: AtomicU64::new(0),
            running: AtomicBool::new(false),
            moved: Notify::new(),
            backlog,
        }
    }

    /// The hub starts (`true`) or stops routing.
    pub fn running(&self, running: bool) {
        self.running.store(running, Ordering::Release);
        self.moved.notify_waiters();
    }

    /// The hub has routed everything up to `position`.
    pub fn routed(&self, position: u64) {
        self.routed.store(position, Ordering::Release);
        self.moved.notify_waiters();
    }

    /// Events published on this node that the hub has not routed yet (0 when that cannot be
    /// told: no hub, or positions that are not this node's).
    #[must_use]
    pub fn behind(&self) -> u64 {
        if !self.running.load(Ordering::Acquire) {
            return 0;
        }
        self.fanout
            .published()
            .saturating_sub(self.routed.load(Ordering::Acquire))
    }

    /// Waits until the hub is at most the backlog behind, or [`MAX_WAIT`] has passed.
    pub async fn settle(&self) {
        let deadline = tokio::time::Instant::now() + MAX_WAIT;
        loop {
            let moved = self.moved.notified();
            tokio::pin!(moved);
            // Registered before the check, so a move between the check and the wait wakes it.
            moved.as_mut().enable();
            if self.behind() <= self.backlog {
                return;
            }
            if tokio::time::timeout_at(deadline, moved).await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fanout::local::LocalFanOut;
    use conclave_core::event::Event;
    use conclave_core::UserId;

    fn publish(fanout: &LocalFanOut, n: usize) {
        for i in 0..n {
            fanout.publish(&Event::user("X", UserId::new(), i));
        }
    }

    fn fanout() -> Arc<LocalFanOut> {
        Arc::new(LocalFanOut::new(Duration::from_secs(60), 10_000))
    }

    #[tokio::test]
    async fn a_send_waits_until_the_hub_is_within_the_backlog() {
        let f = fanout();
        let pace = Arc::new(Pace::with_backlog(f.clone(), 4));
        pace.running(true);
        publish(&f, 10);
        assert_eq!(pace.behind(), 10);
        let waiting = tokio::spawn({
            let pace = pace.clone();
            async move { pace.settle().await }
        });
        tokio::task::yield_now().await;
        pace.routed(5);
        tokio::task::yield_now().await;
        assert!(
            !waiting.is_finished(),
            "5 behind is more than the backlog of 4"
        );
        pace.routed(6);
        tokio::time::timeout(Duration::from_millis(500), waiting)
            .await
            .expect("released once the hub is 4 behind")
            .unwrap();
    }

    #[tokio::test]
    async fn within_the_backlog_a_send_does_not_wait() {
        let f = fanout();
        let pace = Pace::with_backlog(f.clone(), 4);
        pace.running(true);
        publish(&f, 4);
        tokio::time::timeout(Duration::from_millis(50), pace.settle())
            .await
            .expect("4 behind is within the backlog");
    }

    #[tokio::test]
    async fn without_a_running_hub_nothing_waits() {
        let f = fanout();
        let pace = Pace::with_backlog(f.clone(), 4);
        publish(&f, 100);
        assert_eq!(pace.behind(), 0);
        tokio::time::timeout(Duration::from_millis(50), pace.settle())
            .await
            .expect("no hub: no wait");
        // A hub that stops releases whoever waits on it.
        pace.running(true);
        let pace = Arc::new(pace);
        let waiting = tokio::spawn({
            let pace = pace.clone();
            async move { pace.settle().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        pace.running(false);
        tokio::time::timeout(Duration::from_millis(500), waiting)
            .await
            .expect("released when the hub stops")
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_hub_that_makes_no_progress_holds_a_send_at_most_max_wait() {
        let f = fanout();
        let pace = Pace::with_backlog(f.clone(), 4);
        pace.running(true);
        publish(&f, 100);
        let started = tokio::time::Instant::now();
        pace.settle().await;
        assert_eq!(started.elapsed(), MAX_WAIT);
    }
}
