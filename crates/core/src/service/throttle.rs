//! Brute-force protection for sign-ins (AUTH-5). Failed passwords and wrong second-factor codes
//! are counted in the database — per (account, IP), per account across all IPs and per IP
//! across all accounts — so the limits hold across nodes and restarts. Each counter allows a few
//! failures, then backs off exponentially from its last failure, up to a cap.
//!
//! Check and count are one step: an attempt is *reserved* on every counter — counted as a
//! failure by one conditional statement that refuses it when the counter blocks — before the
//! password or code is checked, so a burst of parallel guesses gets exactly as many checks as
//! sequential ones would. A check that succeeds (or never ran) gives its reservation back. An
//! attempt refused while other reservations are still being checked waits for them (up to two
//! seconds) and tries again, so a burst of right passwords is not turned away by its own
//! in-flight checks.
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

use super::{Actor, Result, Services};
use crate::audit::AuditEntry;
use crate::error::ServiceError;
use crate::mfa::{ThrottleCount, ThrottleGate, ThrottleKey, ThrottleReservation};
use crate::types::Username;
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use sha2::Sha256;

/// The address a counter is kept for.
fn client_ip(ip: Option<&str>) -> String {
    ip.filter(|i| !i.is_empty())
        .unwrap_or(UNKNOWN_IP)
        .to_owned()
}

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

/// How long an attempt refused while other checks are in flight waits for them at most.
const IN_FLIGHT_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
const IN_FLIGHT_POLL: std::time::Duration = std::time::Duration::from_millis(20);

/// Failures older than this no longer count.
pub(super) const FORGET_AFTER: Duration = Duration::hours(1);

/// Stands for a missing client address (never in practice: the socket peer is always known).
const UNKNOWN_IP: &str = "unknown";

/// The counters one sign-in attempt touches: three for a named account, the address's alone
/// for a sign-in that names none (an OpenID callback, a token without a subject).
#[derive(Debug, Clone)]
pub(super) struct LoginSubject {
    keys: Vec<ThrottleKey>,
}

impl LoginSubject {
    fn rule(key: &ThrottleKey) -> BackOff {
        match (key.account.is_empty(), key.ip.is_empty()) {
            (false, false) => PER_ACCOUNT_IP,
            (false, true) => PER_ACCOUNT,
            _ => PER_IP,
        }
    }

    /// What the store checks for `key` at `now`: the free failures and, per count from there,
    /// the latest last failure that no longer blocks (up to the count the cap is reached at).
    fn gate(key: &ThrottleKey, now: DateTime<Utc>) -> ThrottleGate {
        let rule = Self::rule(key);
        let mut cutoffs = Vec::new();
        for count in rule.from_failure.. {
            let delay = rule.delay(count);
            cutoffs.push(now - delay);
            if delay >= rule.cap {
                break;
            }
        }
        ThrottleGate {
            key: key.clone(),
            free: rule.from_failure,
            cutoffs,
        }
    }

    /// The counters a success resets: the account's, from this IP and overall.
    fn cleared_on_success(&self) -> &[ThrottleKey] {
        let accounts = self
            .keys
            .iter()
            .take_while(|k| !k.account.is_empty())
            .count();
        &self.keys[..accounts]
    }
}

/// An attempt reserved on the counters of a subject: counted as a failure until it is given
/// back.
#[must_use = "an attempt is either a failure or given back"]
pub(super) struct Attempt {
    reserved: Vec<ThrottleReservation>,
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

/// The answer to a sign-in whose password does not check out.
pub(super) const INVALID_CREDENTIALS: ServiceError =
    ServiceError::unauthorized("invalid_credentials", "invalid username or password");

/// A password changed while a sign-in checked the old one: it is no longer valid, as if it
/// had been typed after the change (AUTH-2).
pub(super) fn password_changed(e: crate::store::StoreError) -> ServiceError {
    match e {
        crate::store::StoreError::Conflict(crate::store::Conflict::PasswordChanged) => {
            INVALID_CREDENTIALS
        }
        other => other.into(),
    }
}

/// How a wrong password in [`Services::recheck_password`] is recorded and answered.
pub(super) struct WrongPassword {
    /// The audited event the check guards.
    pub event: &'static str,
    /// The request field that held the password.
    pub field: &'static str,
    pub message: &'static str,
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
        let account = crate::audit::hex(&mac.finalize().into_bytes());
        let ip = client_ip(ip);
        LoginSubject {
            keys: vec![
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

    /// The counter of a sign-in attempt from `ip` that names no account: only the address's
    /// (AUTH-5's per-IP limit), so nobody can lock a whole provider's users out.
    pub(super) fn address_subject(&self, ip: Option<&str>) -> LoginSubject {
        LoginSubject {
            keys: vec![ThrottleKey {
                account: String::new(),
                ip: client_ip(ip),
            }],
        }
    }

    /// Reserves an attempt on every counter of the subject before anything is checked: 429
    /// with the wait when one of them blocks it (then nothing stays counted). Counters are
    /// taken one statement each, in a fixed order, so none waits on another's lock; one that
    /// refuses gives the earlier ones back. When a reservation starts a counter, counters nobody
    /// has failed on for an hour are pruned (they would start from zero anyway), so guessing
    /// many names cannot grow the table without bound.
    pub(super) async fn reserve_attempt(&self, subject: &LoginSubject) -> Result<Attempt> {
        let waited = std::time::Instant::now();
        loop {
            match self.try_reserve(subject).await? {
                Ok(attempt) => return Ok(attempt),
                Err(retry_after_secs) => {
                    // Refused while other checks are in flight (a burst of right passwords,
                    // say): wait briefly for them to settle, then try again; refused by
                    // settled failures, 429.
                    if waited.elapsed() < IN_FLIGHT_WAIT
                        && self.store.pending_login_attempts(&subject.keys).await? > 0
                    {
                        tokio::time::sleep(IN_FLIGHT_POLL).await;
                        continue;
                    }
                    return Err(ServiceError::Throttled { retry_after_secs });
                }
            }
        }
    }

    /// One try at reserving on every counter: the attempt, or the wait (seconds) a refusing
    /// counter asks for (nothing stays reserved then).
    async fn try_reserve(
        &self,
        subject: &LoginSubject,
    ) -> Result<std::result::Result<Attempt, u64>> {
        let now = self.clock.now();
        let mut attempt = Attempt {
            reserved: Vec::with_capacity(subject.keys.len()),
        };
        for key in &subject.keys {
            let gate = LoginSubject::gate(key, now);
            match self
                .store
                .reserve_login_attempt(&gate, now, now - FORGET_AFTER)
                .await
            {
                Ok(Some(r)) => attempt.reserved.push(r),
                Ok(None) => {
                    self.give_back(attempt).await;
                    let counts = self.store.login_failures(&subject.keys).await?;
                    // A counter that refused a moment ago may have just let go: still a 429.
                    return Ok(Err(retry_after(&counts, now).unwrap_or(1)));
                }
                Err(e) => {
                    self.give_back(attempt).await;
                    return Err(e.into());
                }
            }
        }
        if attempt.reserved.iter().any(|r| r.previous.is_none()) {
            if let Err(e) = self.store.prune_login_failures(now - FORGET_AFTER).await {
                tracing::warn!(error = %e, "pruning old login failure counters failed");
            }
        }
        Ok(Ok(attempt))
    }

    /// Re-authenticates a signed-in user by password, counted like a sign-in of their account
    /// from `ip` (AUTH-5): 429 while the counters back off; a wrong password stays counted, is
    /// recorded as a failed `wrong.event` and answered with 422 on `wrong.field`; a right one is
    /// given back.
    pub(super) async fn recheck_password(
        &self,
        actor: &Actor,
        ip: Option<&str>,
        password: &str,
        phc: Option<String>,
        wrong: WrongPassword,
    ) -> Result<()> {
        let attempt = self
            .reserve_attempt(&self.login_subject(&actor.user.username, ip))
            .await?;
        match self.hasher.verify(password, phc).await {
            Ok(crate::password::Verified::No) => {
                let failure = self
                    .own_audit(actor, wrong.event)
                    .failed()
                    .detail(serde_json::json!({ "reason": format!("{}_incorrect", wrong.field) }));
                self.attempt_failed(attempt, failure).await?;
                Err(ServiceError::invalid(
                    wrong.field,
                    "incorrect",
                    wrong.message,
                ))
            }
            Ok(_) => {
                self.give_back(attempt).await;
                Ok(())
            }
            Err(e) => {
                // Never checked (the hashing pool was busy): not a failure.
                self.give_back(attempt).await;
                Err(e)
            }
        }
    }

    /// The attempt failed: it stays counted, and `audit` records it in the same transaction.
    pub(super) async fn attempt_failed(&self, attempt: Attempt, audit: AuditEntry) -> Result<()> {
        Ok(self
            .store
            .settle_login_attempts(&attempt.reserved, &[audit])
            .await?)
    }

    /// The attempt was not a failure (a right password that still needs its second factor, a
    /// re-authentication that passed) or was never checked (the hashing pool was busy): every
    /// counter gets it back.
    pub(super) async fn give_back(&self, attempt: Attempt) {
        for r in &attempt.reserved {
            if let Err(e) = self.store.refund_login_attempt(r).await {
                tracing::warn!(error = %e, "giving back a sign-in attempt failed");
            }
        }
    }

    /// The attempt completed a sign-in: the account's counters (from this IP and overall) are
    /// reset. The per-IP counter only gets the attempt back, or an attacker could reset it by
    /// signing in to an account of their own.
    pub(super) async fn attempt_succeeded(
        &self,
        subject: &LoginSubject,
        attempt: Attempt,
    ) -> Result<()> {
        let cleared = subject.cleared_on_success();
        self.store.clear_login_failures(cleared).await?;
        let rest = Attempt {
            reserved: attempt
                .reserved
                .into_iter()
                .filter(|r| !cleared.contains(&r.key))
                .collect(),
        };
        self.give_back(rest).await;
        Ok(())
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

    #[test]
    fn a_gate_lists_one_cutoff_per_count_up_to_the_cap() {
        let now = DateTime::<Utc>::from_timestamp(1_000_000, 0).unwrap();
        let key = ThrottleKey {
            account: "a".into(),
            ip: "1.2.3.4".into(),
        };
        let gate = LoginSubject::gate(&key, now);
        assert_eq!(gate.free, 5);
        let waits: Vec<i64> = gate
            .cutoffs
            .iter()
            .map(|c| (now - *c).num_seconds())
            .collect();
        assert_eq!(waits, vec![30, 60, 120, 240, 480, 900]);
        let per_account = LoginSubject::gate(
            &ThrottleKey {
                account: "a".into(),
                ip: String::new(),
            },
            now,
        );
        assert_eq!(per_account.free, 20);
        assert_eq!(per_account.cutoffs.len(), 3);
    }
}
