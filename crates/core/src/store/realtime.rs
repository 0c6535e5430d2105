//! What the gateway keeps: read markers, unread counts, id lists for routing and the resume
//! state of gateway sessions.

use super::StoreResult;
use crate::audit::AuditEntry;
use crate::ids::*;
use crate::model::*;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// Where a participant has read up to: `message` in conversation `conv`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadMarker {
    pub conv: ConversationId,
    pub user: UserId,
    pub message: MessageId,
}

/// Read state and gateway resume state.
#[async_trait]
pub trait RealtimeStore: Send + Sync + 'static {
    /// Sets the participant's read marker and appends `audit` in the same transaction;
    /// `NotFound` (nothing written) when not a participant.
    async fn set_read_marker(&self, marker: ReadMarker, audit: &[AuditEntry]) -> StoreResult<()>;
    /// For every conversation the user participates in: last seq, read marker, unread count.
    async fn conversation_states(&self, user: UserId) -> StoreResult<Vec<ConversationState>>;
    /// Ids of the conversations the user participates in, optionally only in one org.
    async fn user_conversation_ids(
        &self,
        user: UserId,
        org: Option<OrgId>,
    ) -> StoreResult<Vec<ConversationId>>;
    /// Ids of a conversation's participants.
    async fn participant_ids(&self, conv: ConversationId) -> StoreResult<Vec<UserId>>;
    /// Stores (or replaces) the resume state of a gateway session.
    async fn save_gateway_session(&self, session: &GatewaySession) -> StoreResult<()>;
    /// Removes and returns a saved gateway session (a resume uses it once) — only when it
    /// belongs to `user` and was authenticated with login session `auth_session`, checked in
    /// the same statement: a take by anyone else answers `None` and leaves the row for its
    /// owner.
    async fn take_gateway_session(
        &self,
        id: uuid::Uuid,
        user: UserId,
        auth_session: SessionId,
    ) -> StoreResult<Option<GatewaySession>>;
    /// Deletes saved gateway sessions older than `before`; returns how many.
    async fn prune_gateway_sessions(&self, before: DateTime<Utc>) -> StoreResult<u64>;
}
