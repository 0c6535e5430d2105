//! In-process fan-out (embedded default): positions come from one counter, the stream is a
//! channel to the hub, and the events of the resume window stay in the shared
//! [`Retained`] buffer for RESUME.

use super::retained::Retained;
use super::{Delivered, FanOut, FanOutError, WireEvent};
use async_trait::async_trait;
use conclave_core::clock::{Clock, SystemClock};
use conclave_core::event::Event;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

pub struct LocalFanOut {
    inner: Mutex<Inner>,
    epoch: String,
}

struct Inner {
    next: u64,
    retained: Retained,
    tx: mpsc::UnboundedSender<Delivered>,
    rx: Option<mpsc::UnboundedReceiver<Delivered>>,
}

impl LocalFanOut {
    /// Keeps events for `window` on the wall clock, at most `max_retained` of them.
    #[must_use]
    pub fn new(window: Duration, max_retained: usize) -> Self {
        Self::with_clock(Arc::new(SystemClock), window, max_retained)
    }

    /// Keeps events for `window` as `clock` tells time, at most `max_retained` of them.
    #[must_use]
    pub fn with_clock(clock: Arc<dyn Clock>, window: Duration, max_retained: usize) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            inner: Mutex::new(Inner {
                next: 0,
                retained: Retained::new(clock, window, max_retained, 1),
                tx,
                rx: Some(rx),
            }),
            // Positions restart with the process, so each process is its own epoch.
            epoch: format!("local-{}", uuid::Uuid::now_v7()),
        }
    }
}

#[async_trait]
impl FanOut for LocalFanOut {
    fn publish(&self, event: &Event) {
        let wire = Arc::new(WireEvent::from_event(event));
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.next += 1;
        let delivered = Delivered {
            position: inner.next,
            event: wire,
        };
        inner.retained.push(delivered.clone());
        // Sent under the lock, so the stream's order is the positions' order.
        let _ = inner.tx.send(delivered);
    }

    fn take_stream(&self) -> Option<mpsc::UnboundedReceiver<Delivered>> {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .rx
            .take()
    }

    async fn replay(&self, after: u64, upto: u64) -> Result<Option<Vec<Delivered>>, FanOutError> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        Ok(inner.retained.slice(after, upto))
    }

    fn epoch(&self) -> String {
        self.epoch.clone()
    }

    fn published(&self) -> u64 {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).next
    }

    async fn flush(&self) {}

    async fn ready(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use conclave_core::event::Event;
    use conclave_core::UserId;

    #[tokio::test]
    async fn order_positions_and_window() {
        let f = LocalFanOut::new(Duration::from_secs(60), 3);
        let mut rx = f.take_stream().unwrap();
        assert!(f.take_stream().is_none());
        for i in 0..5 {
            f.publish(&Event::user("X", UserId::new(), i));
        }
        for want in 1..=5 {
            assert_eq!(rx.recv().await.unwrap().position, want);
        }
        // Only the last three are retained.
        assert!(f.replay(1, 5).await.unwrap().is_none());
        let got: Vec<u64> = f
            .replay(2, 5)
            .await
            .unwrap()
            .unwrap()
            .iter()
            .map(|d| d.position)
            .collect();
        assert_eq!(got, vec![3, 4, 5]);
        assert_eq!(f.replay(5, 5).await.unwrap().unwrap().len(), 0);
    }
}
