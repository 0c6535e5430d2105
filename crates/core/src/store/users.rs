//! Accounts and the bootstrap flag: creating, reading and changing users.

use super::{Page, StoreResult};
use crate::audit::AuditEntry;
use crate::ids::*;
use crate::model::*;
use crate::types::*;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// A new password hash for an account (AUTH-2).
#[derive(Debug, Clone, Copy)]
pub struct PasswordChange<'a> {
    pub user: UserId,
    pub phc: &'a str,
    /// The hash it replaces: the change is made only while that is still the account's
    /// (`Conflict::PasswordChanged` otherwise), so a rehash at sign-in never writes the old
    /// password back over a change made meanwhile.
    pub replaces: Option<&'a str>,
    /// A change by the user from session `keep`: in the same transaction every other session
    /// of hers, every session she started as someone else and every pending sign-in challenge
    /// end. `None` (a rehash of the same password) ends nothing.
    pub keep: Option<SessionId>,
}

/// A one-time link to set an account's password, made by a server admin (API
/// `POST /admin/users/{id}/password-reset`): only the keyed hash of its token is kept.
#[derive(Debug, Clone)]
pub struct PasswordReset {
    pub user: UserId,
    pub token_hash: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Accounts, the bootstrap flag and the first-start record.
#[async_trait]
pub trait UserStore: Send + Sync + 'static {
    async fn create_user(&self, user: &NewUser, audit: &[AuditEntry]) -> StoreResult<User>;
    /// Creates the first server admin, once: the second call fails with `BootstrapUsed`.
    async fn claim_bootstrap(&self, user: &NewUser, audit: &[AuditEntry]) -> StoreResult<User>;
    /// Whether the bootstrap is over: it was claimed, or any server admin exists (creating or
    /// promoting a server admin also marks it claimed, so it never re-arms).
    async fn bootstrap_claimed(&self) -> StoreResult<bool>;
    /// Records `now` as the server's first start unless one is recorded; returns the recorded
    /// one (the preset bootstrap token expires 24 h after it, across restarts and nodes).
    async fn first_start(&self, now: DateTime<Utc>) -> StoreResult<DateTime<Utc>>;
    async fn user(&self, id: UserId) -> StoreResult<User>;
    /// Looks up by the case-folded username; returns the user and password hash.
    async fn user_by_username(&self, key: &str) -> StoreResult<Option<(User, Option<String>)>>;
    async fn password_hash(&self, id: UserId) -> StoreResult<Option<String>>;
    async fn set_password_hash(
        &self,
        change: PasswordChange<'_>,
        audit: &[AuditEntry],
    ) -> StoreResult<super::SessionsDeleted>;
    /// Starts a password reset: in one transaction the link replaces any earlier link of the
    /// account, and every session of hers (and every session she started as someone else) and
    /// every pending sign-in challenge end. `NotFound` for an unknown or erased account.
    async fn start_password_reset(
        &self,
        reset: &PasswordReset,
        audit: &[AuditEntry],
    ) -> StoreResult<super::SessionsDeleted>;
    /// The account a live link (not used, not replaced, not expired at `now`) is for.
    async fn password_reset_user(
        &self,
        token_hash: &[u8],
        now: DateTime<Utc>,
    ) -> StoreResult<Option<UserId>>;
    /// Uses a link of `user`'s, once: in one transaction the link is taken (`NotFound` when it
    /// was used, replaced or expired meanwhile), the password hash becomes `phc`, and every
    /// session and sign-in challenge ends as at the start.
    async fn finish_password_reset(
        &self,
        token_hash: &[u8],
        user: UserId,
        now: DateTime<Utc>,
        phc: &str,
        audit: &[AuditEntry],
    ) -> StoreResult<super::SessionsDeleted>;
    /// Deletes links that expired before `before`; how many.
    async fn prune_password_resets(&self, before: DateTime<Utc>) -> StoreResult<u64>;
    async fn set_display_name(
        &self,
        id: UserId,
        name: Option<&DisplayName>,
        audit: &[AuditEntry],
    ) -> StoreResult<User>;
    /// Changes the flags `flags` sets; `NotFound` for an unknown or erased account.
    async fn set_user_flags(
        &self,
        id: UserId,
        flags: UserFlags,
        audit: &[AuditEntry],
    ) -> StoreResult<User>;
    async fn list_users(&self, page: Page<UserId>) -> StoreResult<Vec<User>>;
    /// Whether two users are members of at least one common org.
    async fn users_share_org(&self, a: UserId, b: UserId) -> StoreResult<bool>;
}

/// Account flags an admin may change; `None` leaves a flag as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UserFlags {
    pub disabled: Option<bool>,
    pub server_admin: Option<bool>,
    pub require_2fa: Option<bool>,
    /// The account's email is the owner's (an account without one stays unverified).
    pub email_verified: Option<bool>,
}
