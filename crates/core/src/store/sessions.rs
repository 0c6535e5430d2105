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

/// Login sessions of users.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    async fn create_session(
        &self,
        session: &Session,
        token_hash: &[u8],
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
    /// Deletes all of the user's sessions but `keep`; returns how many went.
    async fn delete_sessions(
        &self,
        user: UserId,
        keep: Option<SessionId>,
        audit: &[AuditEntry],
    ) -> StoreResult<u64>;
}
