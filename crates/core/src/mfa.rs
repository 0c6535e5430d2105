//! The records of two-factor authentication (AUTH-4) and login throttling (AUTH-5) that the
//! store persists. None of them holds a secret in the clear: TOTP secrets are sealed (see
//! `secretbox`), recovery codes and challenge tokens are stored as hashes, and throttled
//! account names as keyed hashes.

use crate::ids::UserId;
use crate::secretbox::Sealed;
use crate::types::OrgRole;
use chrono::{DateTime, Utc};

/// A user's TOTP enrolment. `enabled_at` is `None` while the secret is set up but not yet
/// confirmed with a code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpEnrolment {
    pub user_id: UserId,
    pub secret: Sealed,
    pub enabled_at: Option<DateTime<Utc>>,
    /// The last time step a code was accepted for; codes of it or earlier steps are refused.
    pub last_step: Option<i64>,
    pub created_at: DateTime<Utc>,
}

impl TotpEnrolment {
    #[must_use]
    pub fn enabled(&self) -> bool {
        self.enabled_at.is_some()
    }
}

/// A recovery code as stored: its non-secret lookup prefix and the Argon2id hash (PHC string)
/// of the whole code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecoveryCode {
    pub lookup: String,
    pub hash: String,
    pub used_at: Option<DateTime<Utc>>,
}

/// One of a user's recovery codes, named by its lookup prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryCodeRef<'a> {
    pub user: UserId,
    pub lookup: &'a str,
}

/// A sign-in whose password was right, waiting for its second factor. Known to the client by
/// an opaque `mfa_token`, stored only as its keyed hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaChallenge {
    pub user_id: UserId,
    /// Whether the password step asked for a cookie session.
    pub cookie: bool,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Wrong codes so far; the challenge is dead at the limit.
    pub failures: i32,
}

/// A member's standing in an org, with what org-enforced 2FA needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrgStanding {
    pub role: OrgRole,
    pub org_requires_2fa: bool,
    pub user_has_2fa: bool,
}

impl OrgStanding {
    /// Whether the org requires 2FA and the member has not enabled it.
    #[must_use]
    pub fn needs_2fa_setup(&self) -> bool {
        self.org_requires_2fa && !self.user_has_2fa
    }
}

/// One failed-login counter: per (account, IP), per account (`ip` empty) or per IP (`account`
/// empty). `account` is a keyed hash of the case-folded username, so counters exist for
/// unknown names too and no typed name is stored.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ThrottleKey {
    pub account: String,
    pub ip: String,
}

/// A counter's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleCount {
    pub key: ThrottleKey,
    pub failures: i64,
    pub last_failure_at: DateTime<Utc>,
}

/// One counter a sign-in attempt has to pass (AUTH-5), as the store checks it: a counter with
/// fewer than `free` failures lets the attempt through; one with `free + i` failures only if its
/// last failure is at or before `cutoffs[i]` (the last cutoff holds for every higher count).
/// The cutoffs are "now minus the back-off" for each count, so the store compares instants only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleGate {
    pub key: ThrottleKey,
    pub free: i64,
    pub cutoffs: Vec<DateTime<Utc>>,
}

/// An attempt a counter let through and counted as a failure before it was checked, so that a
/// check which succeeds (or never ran) can give it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleReservation {
    pub key: ThrottleKey,
    /// When the attempt was counted (the counter's last failure from then on).
    pub at: DateTime<Utc>,
    /// The counter's last failure before this attempt; `None` when the attempt started it
    /// (new, or forgotten and restarted).
    pub previous: Option<DateTime<Utc>>,
}
