//! Hashing for the hub's id-keyed maps. Every delivery looks a connection up and checks its
//! conversation set, so SipHash (std's default) is replaced there by `foldhash`'s quality
//! hasher: seeded per process, and it spreads the ids the hub keys by — sequential connection
//! numbers and UUIDv7s made in one millisecond, which differ only in a counter and random bits
//! — over a table's low bits (tested below). Its `fast` variant (hashbrown's default) does not:
//! with some seeds 1,024 sequential numbers fell into as few as 329 of 1,024 buckets.

use std::collections::{HashMap, HashSet};

pub type IdState = foldhash::quality::RandomState;
pub type IdMap<K, V> = HashMap<K, V, IdState>;
pub type IdSet<K> = HashSet<K, IdState>;

/// Takes `conn` out of `key`'s entry of one of the hub's indexes (by user, session or
/// conversation), dropping the entry once it is empty so the index never keeps dead keys.
pub fn unindex<K, V>(index: &mut IdMap<K, IdSet<V>>, key: &K, conn: &V)
where
    K: std::hash::Hash + Eq,
    V: std::hash::Hash + Eq,
{
    if let Some(set) = index.get_mut(key) {
        set.remove(conn);
        if set.is_empty() {
            index.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use conclave_core::ConversationId;
    use std::hash::BuildHasher;

    #[test]
    fn ids_spread_over_the_buckets() {
        // Sequential connection ids and UUIDv7s made in a burst spread over the low bits (the
        // bucket index of a table of 1,024) about as well as random values would (about 647
        // distinct of 1,024).
        let state = IdState::default();
        let bucket = |h: u64| h & 1023;
        let seq: std::collections::HashSet<u64> =
            (0..1024u64).map(|i| bucket(state.hash_one(i))).collect();
        assert!(seq.len() > 600, "{} distinct buckets of 1,024", seq.len());
        let uuids: std::collections::HashSet<u64> = (0..1024)
            .map(|_| bucket(state.hash_one(ConversationId::new())))
            .collect();
        assert!(
            uuids.len() > 600,
            "{} distinct buckets of 1,024",
            uuids.len()
        );
    }
}
