//! Shared counters: errors by kind, deliveries, and latency histograms.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Highest latency the histograms track, in microseconds (60 s); above is clamped.
const MAX_US: u64 = 60_000_000;
const SHARDS: usize = 16;
/// How many error messages are kept verbatim (the counts are always complete).
const MAX_NOTES: usize = 20;

/// Errors counted by kind, plus the first few messages for the report.
#[derive(Default)]
pub struct Errors {
    counts: Mutex<BTreeMap<String, u64>>,
    notes: Mutex<Vec<String>>,
}

impl Errors {
    pub fn add(&self, kind: impl Into<String>) {
        let mut m = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry(kind.into()).or_default() += 1;
    }

    /// Counts `kind`; keeps `msg` as a sample the first time this kind is seen.
    pub fn add_with_sample(&self, kind: impl Into<String>, msg: impl FnOnce() -> String) {
        let kind = kind.into();
        let first = {
            let mut m = self.counts.lock().unwrap_or_else(|e| e.into_inner());
            let n = m.entry(kind).or_default();
            *n += 1;
            *n == 1
        };
        if first {
            self.note(msg());
        }
    }

    /// Keeps a message (the first `MAX_NOTES` only).
    pub fn note(&self, msg: impl Into<String>) {
        let mut n = self.notes.lock().unwrap_or_else(|e| e.into_inner());
        if n.len() < MAX_NOTES {
            n.push(msg.into());
        }
    }

    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn notes(&self) -> Vec<String> {
        self.notes.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A latency histogram in microseconds, sharded so that thousands of connection tasks can
/// record without contending on one lock.
pub struct Latency {
    shards: Vec<Mutex<Histogram<u64>>>,
}

impl Default for Latency {
    fn default() -> Self {
        Self::new()
    }
}

impl Latency {
    pub fn new() -> Self {
        let shards = (0..SHARDS)
            .map(|_| {
                Mutex::new(
                    Histogram::new_with_bounds(1, MAX_US, 3)
                        .unwrap_or_else(|_| unreachable!("valid bounds")),
                )
            })
            .collect();
        Self { shards }
    }

    pub fn record_us(&self, shard: usize, us: u64) {
        let mut h = self.shards[shard % SHARDS]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        h.saturating_record(us.clamp(1, MAX_US));
    }

    pub fn merged(&self) -> Histogram<u64> {
        let mut all = Histogram::new_with_bounds(1, MAX_US, 3)
            .unwrap_or_else(|_| unreachable!("valid bounds"));
        for s in &self.shards {
            let h = s.lock().unwrap_or_else(|e| e.into_inner());
            // Same bounds, so adding cannot fail.
            let _ = all.add(&*h);
        }
        all
    }
}

#[derive(Serialize, Debug, Clone, Copy, PartialEq)]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    pub samples: u64,
}

impl Percentiles {
    /// Milliseconds from a histogram of microseconds; `None` when it is empty.
    pub fn from_us(h: &Histogram<u64>) -> Option<Self> {
        if h.is_empty() {
            return None;
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Some(Self {
            p50: ms(h.value_at_quantile(0.50)),
            p95: ms(h.value_at_quantile(0.95)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
            samples: h.len(),
        })
    }
}

/// Counters the gateway clients update.
#[derive(Default)]
pub struct Counters {
    /// MESSAGE_CREATE dispatches carrying this run's marker, counted in shards (by client) so
    /// that clients on different threads do not contend for one cache line per delivery.
    deliveries: [Shard; SHARDS],
    /// Connections currently past READY and not closed.
    pub alive: AtomicU64,
    /// MESSAGE_STREAM dispatches (deltas of agents' answers) received by the clients.
    pub stream_deltas: AtomicU64,
}

/// A counter alone on its cache line.
#[derive(Default)]
#[repr(align(64))]
struct Shard(AtomicU64);

impl Counters {
    /// Counts one delivery to client `shard` (any number: it is reduced to a shard).
    pub fn delivered(&self, shard: usize) {
        self.deliveries[shard % SHARDS]
            .0
            .fetch_add(1, Ordering::Relaxed);
    }

    pub fn deliveries(&self) -> u64 {
        self.deliveries
            .iter()
            .map(|s| s.0.load(Ordering::Relaxed))
            .sum()
    }

    pub fn alive(&self) -> u64 {
        self.alive.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_count_and_cap_notes() {
        let e = Errors::default();
        e.add("a");
        e.add("a");
        e.add("b");
        for i in 0..50 {
            e.note(format!("n{i}"));
        }
        assert_eq!(e.counts().values().sum::<u64>(), 3);
        assert_eq!(e.counts()["a"], 2);
        assert_eq!(e.notes().len(), MAX_NOTES);
        let e = Errors::default();
        e.add_with_sample("k", || "first".into());
        e.add_with_sample("k", || "second".into());
        assert_eq!(e.notes(), vec!["first".to_owned()]);
        assert_eq!(e.counts()["k"], 2);
    }

    #[test]
    fn latency_percentiles() {
        let l = Latency::new();
        for i in 1..=1000u64 {
            l.record_us(i as usize, i * 1000); // 1..1000 ms
        }
        let p = Percentiles::from_us(&l.merged()).unwrap();
        assert_eq!(p.samples, 1000);
        assert!((p.p50 - 500.0).abs() < 1.0, "{p:?}");
        assert!((p.p99 - 990.0).abs() < 1.5, "{p:?}");
        assert!((p.max - 1000.0).abs() < 1.0, "{p:?}");
        assert!(Percentiles::from_us(&Latency::new().merged()).is_none());
    }

    #[test]
    fn deliveries_add_up_over_the_shards() {
        let c = Counters::default();
        for client in 0..1000 {
            c.delivered(client);
        }
        c.delivered(usize::MAX);
        assert_eq!(c.deliveries(), 1001);
    }

    #[test]
    fn latency_clamps_out_of_range() {
        let l = Latency::new();
        l.record_us(0, 0);
        l.record_us(1, u64::MAX);
        let p = Percentiles::from_us(&l.merged()).unwrap();
        assert_eq!(p.samples, 2);
        assert!(p.max >= 59_000.0);
    }
}
