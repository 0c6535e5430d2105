//! Two-factor authentication (TOTP secrets, recovery codes, sign-in challenges) and the
//! failed-login throttle.

use super::StoreResult;
use crate::audit::AuditEntry;
use crate::ids::*;
use crate::mfa::*;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// TOTP enrolment, recovery codes, the org 2FA standing and sign-in challenges; every
/// single-use value is used atomically.
#[async_trait]
pub trait MfaStore: Send + Sync + 'static {
    /// Saves a TOTP secret that is not enabled yet, replacing an earlier pending one (and its
    /// last step). `false` when the user's 2FA is already on: nothing changes then.
    async fn save_pending_totp(
        &self,
        user: UserId,
        secret: &crate::secretbox::Sealed,
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> StoreResult<bool>;
    async fn totp_enrolment(&self, user: UserId) -> StoreResult<Option<TotpEnrolment>>;
    /// In one transaction: turns on the pending secret sealed with `nonce`, records `step` as
    /// used and replaces the user's recovery codes with `codes`. `false` (nothing changed) when
    /// no pending secret with that nonce exists (enabled meanwhile, or replaced by a new setup).
    async fn enable_totp(
        &self,
        user: UserId,
        nonce: &[u8],
        step: i64,
        codes: &[StoredRecoveryCode],
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> StoreResult<bool>;
    /// Records `step` as the user's last accepted TOTP step if it is later than the stored one,
    /// atomically; `false` means the step (or a later one) was used already: a replay.
    async fn use_totp_step(&self, user: UserId, step: i64) -> StoreResult<bool>;
    /// Removes the user's TOTP secret and recovery codes.
    async fn disable_totp(&self, user: UserId, audit: &[AuditEntry]) -> StoreResult<()>;
    async fn recovery_code(
        &self,
        code: RecoveryCodeRef<'_>,
    ) -> StoreResult<Option<StoredRecoveryCode>>;
    /// Marks an unused recovery code used, atomically; `false` when it was used already.
    async fn use_recovery_code(
        &self,
        code: RecoveryCodeRef<'_>,
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> StoreResult<bool>;
    /// Replaces all of the user's recovery codes while their 2FA is on; `false` (nothing
    /// changed) when it is not.
    async fn replace_recovery_codes(
        &self,
        user: UserId,
        codes: &[StoredRecoveryCode],
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> StoreResult<bool>;
    /// The user's role in the org with whether the org requires 2FA and the user has it on;
    /// `None` for non-members. One query, asked on every org-scoped request.
    async fn org_standing(&self, org: OrgId, user: UserId) -> StoreResult<Option<OrgStanding>>;
    /// Made only while `password` (the hash the sign-in's first step checked, when it had
    /// one) is still the account's: `Conflict::PasswordChanged` otherwise (AUTH-2; a password
    /// change deletes the challenges made before it).
    async fn create_mfa_challenge(
        &self,
        challenge: &MfaChallenge,
        token_hash: &[u8],
        password: Option<&str>,
    ) -> StoreResult<()>;
    async fn mfa_challenge(&self, token_hash: &[u8]) -> StoreResult<Option<MfaChallenge>>;
    /// Reserves one code check on the challenge, atomically: counts it against the challenge
    /// and answers the challenge when it is unexpired at `now` and had fewer than
    /// `max_failures` checks; `None` (nothing changed) otherwise. Of any number of concurrent
    /// reservations, at most `max_failures` get the challenge (AUTH-4).
    async fn reserve_mfa_attempt(
        &self,
        token_hash: &[u8],
        now: DateTime<Utc>,
        max_failures: i32,
    ) -> StoreResult<Option<MfaChallenge>>;
    /// Deletes and returns the challenge if it is unexpired at `now`: of two concurrent takes
    /// only one gets it. (A take follows a reservation that found the right code.)
    async fn take_mfa_challenge(
        &self,
        token_hash: &[u8],
        now: DateTime<Utc>,
    ) -> StoreResult<Option<MfaChallenge>>;
    /// Deletes challenges that expired before `before`; returns how many.
    async fn prune_mfa_challenges(&self, before: DateTime<Utc>) -> StoreResult<u64>;
}

/// Failed-login counters, reserved and settled atomically across nodes.
#[async_trait]
pub trait LoginThrottleStore: Send + Sync + 'static {
    /// The failed-login counters that exist among `keys`.
    async fn login_failures(&self, keys: &[ThrottleKey]) -> StoreResult<Vec<ThrottleCount>>;
    /// Reserves an attempt on one counter in one conditional statement: when the gate lets it
    /// through at `at` (see [`ThrottleGate`]), counts it as a failure at `at` (a counter whose
    /// last failure is before `forget_before` restarts at 1; a new one starts at 1) and
    /// answers the reservation; `None` (nothing changed) when the counter refuses. Of any number
    /// of concurrent reservations on any number of nodes, only as many pass as the gate allows.
    async fn reserve_login_attempt(
        &self,
        gate: &ThrottleGate,
        at: DateTime<Utc>,
        forget_before: DateTime<Utc>,
    ) -> StoreResult<Option<ThrottleReservation>>;
    /// Gives a reserved attempt back: one failure (and one pending) less — a counter left with
    /// none goes — and,
    /// unless another failure was counted since, the previous last failure time again.
    async fn refund_login_attempt(&self, reservation: &ThrottleReservation) -> StoreResult<()>;
    /// Reserved attempts were checked and failed: they stay counted and are no longer
    /// pending; `audit` (the failure's rows) is appended in the same transaction.
    async fn settle_login_attempts(
        &self,
        reservations: &[ThrottleReservation],
        audit: &[AuditEntry],
    ) -> StoreResult<()>;
    /// How many reserved attempts on these counters are not settled yet (checks in flight).
    async fn pending_login_attempts(&self, keys: &[ThrottleKey]) -> StoreResult<i64>;
    async fn clear_login_failures(&self, keys: &[ThrottleKey]) -> StoreResult<()>;
    /// Deletes counters whose last failure is before `before`; returns how many.
    async fn prune_login_failures(&self, before: DateTime<Utc>) -> StoreResult<u64>;
}
