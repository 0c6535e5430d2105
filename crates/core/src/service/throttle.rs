//! Brute-force protection for sign-ins (AUTH-5). Failed passwords and wrong second-factor codes
//! are counted in the database — per (account, IP), per account across all IPs and per IP
//! across all accounts — so the limits hold across nodes and restarts. Each counter allows a few
//! failures, then backs off exponentially from its last failure, up to a cap:
//!
//! | counter        | free failures | first back-off | cap    |
//! |----------------|---------------|----------------|--------|
//! | account + IP   | 4             | 30 s           | 15 min |
//! | account        | 19            | 30 s           | 2 min  |
//! | IP             | 49            | 30 s           | 15 min |
//!
//! The per-account counter is looser (it starts later and its cap is short) because anyone can
//! feed it: it slows a distributed guesser to one try per two minutes without letting them lock
//! the real owner out for long. A counter forgets failures older than an hour. Unknown
//! usernames are counted exactly like known ones (the account key is a keyed hash of whatever
//! was typed), so the answers never reveal whether an account exists.

use super::{Result, Services};
use crate::error::ServiceError;
use crate::mfa::{ThrottleCount, ThrottleKey};
use crate::types::Username;
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use sha2::Sha256;

/// How one kind of counter backs off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct BackOff {
    /// The failure count at which back-off starts.
    pub from_failure: i64,
    /// The wait after that failure; each further failure doubles it.
    pub first: Duration,
    pub cap: Duration,
}

impl BackOff {
    /// How long after the last of `failures` failures the next attempt must wait.
    #[must_use]
    pub fn delay(&self, failures: i64) -> Duration {
        if failures < self.from_failure {
            return Duration::zero();
        }
        let doublings = (failures - self.from_failure).min(20) as u32;
        let secs = self.first.num_seconds().saturating_mul(1i64 << doublings);
        Duration::seconds(secs).min(self.cap)
    }
}

pub(super) const PER_ACCOUNT_IP: BackOff = BackOff {
    from_failure: 5,
    first: Duration::seconds(30),
    cap: Duration::minutes(15),
};
pub(super) const PER_ACCOUNT: BackOff = BackOff {
    from_failure: 20,
    first: Duration::seconds(30),
    cap: Duration::minutes(2),
};
pub(super) const PER_IP: BackOff = BackOff {
    from_failure: 50,
    first: Duration::seconds(30),
    cap: Duration::minutes(15),
};

/// Failures older than this no longer count.
pub(super) const FORGET_AFTER: Duration = Duration::hours(1);

/// Stands for a missing client address (never in practice: the socket peer is always known).
const UNKNOWN_IP: &str = "unknown";

/// The three counters one sign-in attempt touches.
#[derive(Debug, Clone)]
pub(super) struct LoginSubject {
    keys: [ThrottleKey; 3],
}

impl LoginSubject {
    fn rule(key: &ThrottleKey) -> BackOff {
        match (key.account.is_empty(), key.ip.is_empty()) {
            (false, false) => PER_ACCOUNT_IP,
            (false, true) => PER_ACCOUNT,
            _ => PER_IP,
        }
    }

    /// The counters a success resets: the account's, from this IP and overall. The per-IP
    /// counter stays, or an attacker could reset it by signing in to an account of their own.
    fn cleared_on_success(&self) -> &[ThrottleKey] {
        &self.keys[..2]
    }
}

/// Seconds until the counters allow another attempt at `now`, if they block it.
pub(super) fn retry_after(counts: &[ThrottleCount], now: DateTime<Utc>) -> Option<u64> {
    counts
        .iter()
        .filter_map(|c| {
            let delay = LoginSubject::rule(&c.key).delay(c.failures);
            if delay <= Duration::zero() {
                // Under the threshold nothing waits, even for a failure stamped a little in
                // this node's future by another node's clock.
                return None;
            }
            let wait = c.last_failure_at + delay - now;
            (wait > Duration::zero()).then(|| {
                let ms = wait.num_milliseconds();
                u64::try_from((ms + 999) / 1000).unwrap_or(1).max(1)
            })
        })
        .max()
}

impl Services {
    /// The counters for an attempt on `username` (as typed, or an account's username) from
    /// `ip`. Usernames are case-folded the way login looks them up; the account key is an HMAC
    /// of that, so names typed by mistake (or passwords typed into the name field) are never
    /// stored.
    pub(super) fn login_subject(&self, username: &str, ip: Option<&str>) -> LoginSubject {
        let folded = match Username::parse(username) {
            Ok(u) => u.key(),
            Err(_) => username
                .chars()
                .take(256)
                .collect::<String>()
                .to_lowercase(),
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(self.keys.token_pepper.expose_secret())
            .unwrap_or_else(|_| unreachable!());
        mac.update(b"login-throttle:");
        mac.update(folded.as_bytes());
        let account: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let ip = ip
            .filter(|i| !i.is_empty())
            .unwrap_or(UNKNOWN_IP)
            .to_owned();
        LoginSubject {
            keys: [
                ThrottleKey {
                    account: account.clone(),
                    ip: ip.clone(),
                },
                ThrottleKey {
                    account,
                    ip: String::new(),
                },
                ThrottleKey {
                    account: String::new(),
                    ip,
                },
            ],
        }
    }

    /// 429 with the wait when any counter of the subject blocks an attempt now.
    pub(super) async fn check_throttle(&self, subject: &LoginSubject) -> Result<()> {
        let counts = self.store.login_failures(&subject.keys).await?;
        match retry_after(&counts, self.clock.now()) {
            Some(retry_after_secs) => Err(ServiceError::Throttled { retry_after_secs }),
            None => Ok(()),
        }
    }

    /// Counts a failed attempt on every counter of the subject. When that starts a new counter,
    /// counters nobody has failed on for an hour are pruned (they would start from zero anyway),
    /// so guessing many names cannot grow the table without bound.
    /// `audit` records the failure in the same transaction.
    pub(super) async fn record_failure(
        &self,
        subject: &LoginSubject,
        audit: crate::audit::AuditEntry,
    ) -> Result<()> {
        let now = self.clock.now();
        let counts = self
            .store
            .record_login_failure(&subject.keys, now, now - FORGET_AFTER, &[audit])
            .await?;
        if counts.iter().any(|c| c.failures == 1) {
            if let Err(e) = self.store.prune_login_failures(now - FORGET_AFTER).await {
                tracing::warn!(error = %e, "pruning old login failure counters failed");
            }
        }
        Ok(())
    }

    /// Resets the account's counters after a complete sign-in.
    pub(super) async fn clear_failures(&self, subject: &LoginSubject) -> Result<()> {
        Ok(self
            .store
            .clear_login_failures(subject.cleared_on_success())
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(account: &str, ip: &str, failures: i64, at: DateTime<Utc>) -> ThrottleCount {
        ThrottleCount {
            key: ThrottleKey {
                account: account.into(),
                ip: ip.into(),
            },
            failures,
            last_failure_at: at,
        }
    }

    #[test]
    fn back_off_doubles_from_the_threshold_up_to_the_cap() {
        let secs = |n| PER_ACCOUNT_IP.delay(n).num_seconds();
        assert_eq!((secs(1), secs(4)), (0, 0));
        assert_eq!(
            (5..=11).map(secs).collect::<Vec<_>>(),
            vec![30, 60, 120, 240, 480, 900, 900]
        );
        assert_eq!(secs(i64::MAX), 900, "no overflow");
        assert_eq!(PER_ACCOUNT.delay(19), Duration::zero());
        assert_eq!(PER_ACCOUNT.delay(20).num_seconds(), 30);
        assert_eq!(PER_ACCOUNT.delay(1000).num_seconds(), 120);
        assert_eq!(PER_IP.delay(49), Duration::zero());
        assert_eq!(PER_IP.delay(50).num_seconds(), 30);
    }

    #[test]
    fn the_longest_wait_wins_and_rounds_up() {
        let t0 = DateTime::<Utc>::from_timestamp(1_000_000, 0).unwrap();
        let counts = [
            count("a", "1.2.3.4", 6, t0), // 60 s
            count("a", "", 20, t0),       // 30 s
            count("", "1.2.3.4", 3, t0),  // none
        ];
        assert_eq!(retry_after(&counts, t0), Some(60));
        assert_eq!(
            retry_after(&counts, t0 + Duration::milliseconds(30_500)),
            Some(30)
        );
        assert_eq!(retry_after(&counts, t0 + Duration::seconds(60)), None);
        assert_eq!(retry_after(&[], t0), None);
        // Another node's clock a little ahead: under the threshold that never blocks.
        let ahead = [count("a", "1.2.3.4", 4, t0 + Duration::seconds(2))];
        assert_eq!(retry_after(&ahead, t0), None);
    }
}
