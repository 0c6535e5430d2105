//! Conversations and their participants: creation (with the one-direct-per-pair rule),
//! listing, changes and the last-owner rule.

use super::{Page, StoreResult};
use crate::audit::AuditEntry;
use crate::files::FreedBlobs;
use crate::ids::*;
use crate::model::*;
use crate::types::*;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::ToSchema;

// Changes to a conversation: the body of `PATCH /conversations/{c}` as the store takes it (no
// doc comment, so the schema keeps no description).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = UpdateConversation)]
pub struct ConversationPatch {
    pub name: Option<Name>,
    pub archived: Option<bool>,
    pub visibility: Option<Visibility>,
}

/// A change to conversation `id`, made at `at`.
#[derive(Debug, Clone)]
pub struct ConversationUpdate {
    pub id: ConversationId,
    pub patch: ConversationPatch,
    pub at: DateTime<Utc>,
}

/// A user joining a conversation: with which role, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Joining {
    pub conv: ConversationId,
    pub user: UserId,
    pub role: ConversationRole,
    pub at: DateTime<Utc>,
}

/// Conversations and participants.
#[async_trait]
pub trait ConversationStore: Send + Sync + 'static {
    /// Creates the conversation with its participants; `DirectExists` for a known direct pair;
    /// `NotFound` unless every participant is a member of its org (read under the org's lock,
    /// as in [`Self::add_participant`]).
    async fn create_conversation(
        &self,
        conv: &Conversation,
        participants: &[(UserId, ConversationRole)],
        audit: &[AuditEntry],
    ) -> StoreResult<()>;
    async fn direct_conversation(&self, org: OrgId, key: &str)
        -> StoreResult<Option<Conversation>>;
    async fn conversation(&self, id: ConversationId) -> StoreResult<Conversation>;
    async fn conversations_for_user(
        &self,
        user: UserId,
        page: Page<ConversationId>,
    ) -> StoreResult<Vec<Conversation>>;
    /// Conversations in the user's orgs they do not participate in but may join.
    async fn available_conversations(
        &self,
        user: UserId,
        page: Page<ConversationId>,
    ) -> StoreResult<Vec<Conversation>>;
    async fn update_conversation(
        &self,
        update: &ConversationUpdate,
        audit: &[AuditEntry],
    ) -> StoreResult<Conversation>;
    /// Deletes the conversation with its messages; its files' rows go (their bytes given back
    /// to their uploaders) and their keys are answered.
    async fn delete_conversation(
        &self,
        id: ConversationId,
        audit: &[AuditEntry],
    ) -> StoreResult<FreedBlobs>;
    async fn participant_role(
        &self,
        conv: ConversationId,
        user: UserId,
    ) -> StoreResult<Option<ConversationRole>>;
    async fn participants(
        &self,
        conv: ConversationId,
        page: Page<UserId>,
    ) -> StoreResult<Vec<Participant>>;
    /// Adds a participant; `NotFound` unless the user is a member of the conversation's org,
    /// read under the lock a member's removal takes (a removal committing meanwhile is seen,
    /// or removes this participation too); `AlreadyParticipant` when they take part.
    async fn add_participant(
        &self,
        joining: &Joining,
        audit: &[AuditEntry],
    ) -> StoreResult<Participant>;
    /// Answers the participant as the removal found them. Fails with `LastConversationOwner`
    /// when it would leave the conversation without an owner while others remain.
    async fn remove_participant(
        &self,
        conv: ConversationId,
        user: UserId,
        audit: &[AuditEntry],
    ) -> StoreResult<Participant>;
}
