//! Login sessions: created at sign-in, looked up by token hash on every request, listed and
//! revoked by their user.

use super::StoreResult;
use crate::audit::AuditEntry;
use crate::ids::*;
use crate::model::*;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// A use of a session or an API key, as `touch_session`/`touch_api_key` record it: when, and
/// from which address when it is known (an unknown address keeps the last one recorded).
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    pub at: DateTime<Utc>,
    pub ip: Option<&'a str>,
}

/// What `delete_sessions` took: how many of the user's own sessions, and the sessions the user
/// (a server admin) had started as someone else (AUTH-12), which end with her rights.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionsDeleted {
    pub own: u64,
    pub impersonating: Vec<SessionId>,
}

/// Login sessions of users. A session started by impersonation is found (by token, or among
/// its user's sessions) only while whoever started it is an enabled server admin.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Made only while `password` (the hash a password sign-in checked) is still the
    /// account's: `Conflict::PasswordChanged` otherwise, so a sign-in that raced a password
    /// change never outlives it (AUTH-2).
    async fn create_session(
        &self,
        session: &Session,
        token_hash: &[u8],
        password: Option<&str>,
        audit: &[AuditEntry],
    ) -> StoreResult<()>;
    async fn session_by_token_hash(&self, token_hash: &[u8]) -> StoreResult<Option<Session>>;
    async fn touch_session(&self, id: SessionId, seen: Seen<'_>) -> StoreResult<()>;
    async fn list_sessions(&self, user: UserId) -> StoreResult<Vec<Session>>;
    /// Deletes one of the user's sessions; `NotFound` if it is not theirs.
    async fn delete_session(
        &self,
        user: UserId,
        id: SessionId,
        audit: &[AuditEntry],
    ) -> StoreResult<()>;
    /// Deletes all of the user's sessions but `keep`, and every session she started as
    /// someone else.
    async fn delete_sessions(
        &self,
        user: UserId,
        keep: Option<SessionId>,
        audit: &[AuditEntry],
    ) -> StoreResult<SessionsDeleted>;
}
