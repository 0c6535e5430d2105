//! The generic cell rate algorithm, as one pure function: a bucket is a single number, its
//! theoretical arrival time (TAT). The in-process store calls `evaluate` under a lock; the Redis
//! store runs the same arithmetic in a Lua script (`redis.rs`), so both backends agree exactly.
//!
//! With emission interval `T` (period / rate) and burst `B`, a request at `now` is allowed when
//! `max(tat, now) + T - T·B <= now`; the new TAT is then `max(tat, now) + T`. A full bucket
//! allows `B` requests at once and refills one request every `T`. Times are integer
//! microseconds since the Unix epoch (exact in a Lua double until the year 2255).

use std::time::Duration;

/// One limit: `rate` requests per `period`, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Microseconds between two requests at the sustained rate (`T`).
    pub interval_us: i64,
    /// Requests a full bucket allows at once (`B`); what `RateLimit-Limit` reports.
    pub burst: u64,
    /// The limit's period, used as the minimum lifetime of a stored bucket.
    pub period: Duration,
}

impl Quota {
    /// `rate` per `period` with `burst`, or `None` for 0 (that layer is unlimited).
    #[must_use]
    pub fn new(rate: u64, period: Duration, burst: u64) -> Option<Self> {
        if rate == 0 {
            return None;
        }
        let period_us = i64::try_from(period.as_micros()).unwrap_or(i64::MAX);
        let rate = i64::try_from(rate).unwrap_or(i64::MAX);
        Some(Self {
            interval_us: (period_us / rate).max(1),
            burst: burst.max(1),
            period,
        })
    }

    /// `T·B`: how far ahead of `now` the TAT may run.
    #[must_use]
    pub fn tolerance_us(&self) -> i64 {
        self.interval_us
            .saturating_mul(i64::try_from(self.burst).unwrap_or(i64::MAX))
    }
}

/// What one bucket says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    /// Requests still allowed at once after this one (0 when denied).
    pub remaining: u64,
    /// When denied: how long until one request is allowed again.
    pub retry_after_us: i64,
    /// How long until the bucket is full again.
    pub reset_us: i64,
    /// The TAT to store when the request is allowed.
    pub new_tat: i64,
}

/// Evaluates one request against a bucket whose stored TAT is `tat` (`None`: never used or
/// expired, i.e. full).
#[must_use]
pub fn evaluate(tat: Option<i64>, now: i64, quota: &Quota) -> Verdict {
    let tat = tat.unwrap_or(now).max(now);
    let new_tat = tat.saturating_add(quota.interval_us);
    let allow_at = new_tat - quota.tolerance_us();
    if now < allow_at {
        return Verdict {
            allowed: false,
            remaining: 0,
            retry_after_us: allow_at - now,
            reset_us: tat - now,
            new_tat: tat,
        };
    }
    let spare = quota.tolerance_us() - (new_tat - now);
    Verdict {
        allowed: true,
        remaining: u64::try_from(spare / quota.interval_us).unwrap_or(0),
        retry_after_us: 0,
        reset_us: new_tat - now,
        new_tat,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: i64 = 1_000_000;

    fn per_min(rate: u64, burst: u64) -> Quota {
        Quota::new(rate, Duration::from_secs(60), burst).unwrap()
    }

    #[test]
    fn a_full_bucket_allows_the_burst_then_refills_at_the_rate() {
        let q = per_min(20, 5); // one every 3 s
        let now = 1_000 * SEC;
        let mut tat = None;
        for left in (0..5).rev() {
            let v = evaluate(tat, now, &q);
            assert!(v.allowed);
            assert_eq!(v.remaining, left);
            tat = Some(v.new_tat);
        }
        let v = evaluate(tat, now, &q);
        assert!(!v.allowed);
        assert_eq!(v.retry_after_us, 3 * SEC);
        assert_eq!(v.reset_us, 15 * SEC, "full again after 5 intervals");
        assert_eq!(v.new_tat, tat.unwrap(), "a denial changes nothing");
        // Just before the retry time: still denied; at it: one more.
        assert!(!evaluate(tat, now + 3 * SEC - 1, &q).allowed);
        let v = evaluate(tat, now + 3 * SEC, &q);
        assert!(v.allowed);
        assert_eq!(v.remaining, 0);
        // After a long pause the bucket is full, not over-full.
        let v = evaluate(Some(v.new_tat), now + 3_600 * SEC, &q);
        assert!(v.allowed);
        assert_eq!(v.remaining, 4);
    }

    #[test]
    fn zero_rate_is_unlimited_and_intervals_never_vanish() {
        assert!(Quota::new(0, Duration::from_secs(1), 10).is_none());
        let q = Quota::new(5_000_000, Duration::from_secs(1), 0).unwrap();
        assert_eq!(q.interval_us, 1);
        assert_eq!(q.burst, 1);
        let q = per_min(300, 100);
        assert_eq!(q.interval_us, 200_000);
        assert_eq!(q.tolerance_us(), 20 * SEC);
    }
}
