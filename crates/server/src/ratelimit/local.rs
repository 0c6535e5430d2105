//! The in-process bucket store (no Redis: limits are per node). One lock over one map: every
//! request touches the global bucket anyway, and the critical section is a few comparisons.
//! A bucket whose TAT has passed is full, which is the same as absent, so such entries are
//! pruned once the map grows.

use super::gcra::{self, Quota, Verdict};
use std::collections::HashMap;
use std::sync::Mutex;

/// Entries kept before the first prune; after a prune the threshold follows the live size.
const PRUNE_FLOOR: usize = 4_096;

#[derive(Debug)]
pub struct LocalStore {
    inner: Mutex<Buckets>,
}

#[derive(Debug)]
struct Buckets {
    tats: HashMap<String, i64>,
    prune_at: usize,
}

impl Default for LocalStore {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Buckets {
                tats: HashMap::new(),
                prune_at: PRUNE_FLOOR,
            }),
        }
    }
}

impl LocalStore {
    /// Evaluates every bucket at `now`; only if all allow is each one charged.
    pub fn check(&self, buckets: &[(String, Quota)], now: i64) -> Vec<Verdict> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let verdicts: Vec<Verdict> = buckets
            .iter()
            .map(|(key, quota)| gcra::evaluate(inner.tats.get(key).copied(), now, quota))
            .collect();
        if verdicts.iter().all(|v| v.allowed) {
            for ((key, _), v) in buckets.iter().zip(&verdicts) {
                inner.tats.insert(key.clone(), v.new_tat);
            }
            if inner.tats.len() >= inner.prune_at {
                inner.tats.retain(|_, tat| *tat > now);
                inner.prune_at = (inner.tats.len() * 2).max(PRUNE_FLOOR);
            }
        }
        verdicts
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner.lock().unwrap().tats.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn all_or_nothing_across_buckets() {
        let store = LocalStore::default();
        let wide = Quota::new(100, Duration::from_secs(60), 100).unwrap();
        let narrow = Quota::new(1, Duration::from_secs(60), 1).unwrap();
        let now = 1_000_000_000;
        let both = [("wide".to_owned(), wide), ("narrow".to_owned(), narrow)];
        assert!(store.check(&both, now).iter().all(|v| v.allowed));
        let v = store.check(&both, now);
        assert!(v[0].allowed && !v[1].allowed);
        // The denied request did not charge the wide bucket.
        let v = store.check(&[("wide".to_owned(), wide)], now);
        assert_eq!(v[0].remaining, 98);
    }

    #[test]
    fn full_buckets_are_pruned() {
        let store = LocalStore::default();
        let q = Quota::new(60, Duration::from_secs(60), 1).unwrap();
        let now = 1_000_000_000;
        for i in 0..PRUNE_FLOOR - 1 {
            store.check(&[(format!("k{i}"), q)], now);
        }
        assert_eq!(store.len(), PRUNE_FLOOR - 1);
        // Two seconds later every earlier bucket is full again and goes at the next prune.
        store.check(&[("last".to_owned(), q)], now + 2_000_000);
        assert_eq!(store.len(), 1);
    }
}
