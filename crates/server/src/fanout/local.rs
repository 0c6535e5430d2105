//! In-process fan-out (embedded default): positions come from one counter, the stream is a
//! channel to the hub, and the last events within the resume window stay in a ring for RESUME.

use super::{Delivered, FanOut, FanOutError, WireEvent};
use async_trait::async_trait;
use conclave_core::event::Event;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

pub struct LocalFanOut {
    inner: Mutex<Inner>,
    /// Bounds the ring even when events come faster than the window ages them out.
    max_retained: usize,
    window: Duration,
    epoch: String,
}

struct Inner {
    next: u64,
    ring: VecDeque<(Instant, Delivered)>,
    tx: mpsc::UnboundedSender<Delivered>,
    rx: Option<mpsc::UnboundedReceiver<Delivered>>,
}

impl LocalFanOut {
    #[must_use]
    pub fn new(window: Duration, max_retained: usize) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            inner: Mutex::new(Inner {
                next: 0,
                ring: VecDeque::new(),
                tx,
                rx: Some(rx),
            }),
            max_retained,
            window,
            // Positions restart with the process, so each process is its own epoch.
            epoch: format!("local-{}", uuid::Uuid::now_v7()),
        }
    }
}

#[async_trait]
impl FanOut for LocalFanOut {
    fn publish(&self, event: Event) {
        let wire = Arc::new(WireEvent::from_event(&event));
        let now = Instant::now();
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.next += 1;
        let delivered = Delivered {
            position: inner.next,
            event: wire,
        };
        while inner.ring.len() >= self.max_retained
            || inner
                .ring
                .front()
                .is_some_and(|(at, _)| now.duration_since(*at) > self.window)
        {
            inner.ring.pop_front();
        }
        inner.ring.push_back((now, delivered.clone()));
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
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if after >= upto {
            return Ok(Some(Vec::new()));
        }
        // Every position in (after, upto] must still be in the ring.
        let oldest = inner
            .ring
            .front()
            .map_or(inner.next + 1, |(_, d)| d.position);
        if oldest > after + 1 {
            return Ok(None);
        }
        Ok(Some(
            inner
                .ring
                .iter()
                .map(|(_, d)| d)
                .filter(|d| d.position > after && d.position <= upto)
                .cloned()
                .collect(),
        ))
    }

    fn epoch(&self) -> String {
        self.epoch.clone()
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
            f.publish(Event::user("X", UserId::new(), i));
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
