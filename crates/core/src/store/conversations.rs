//! Conversations and their participants: creation (with the one-direct-per-pair rule),
//! listing, changes and the last-owner rule.

use super::{Page, StoreResult};
use crate::audit::AuditEntry;
use crate::ids::*;
use crate::model::*;
use crate::types::*;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// Changes to a conversation.
#[derive(Debug, Clone, Default)]
pub struct ConversationPatch {
    pub name: Option<Name>,
    pub archived: Option<bool>,
    pub visibility: Option<Visibility>,
}

/// Conversations and participants.
#[async_trait]
pub trait ConversationStore: Send + Sync + 'static {
    /// Creates the conversation with its participants; `DirectExists` for a known direct pair.
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
        id: ConversationId,
        patch: &ConversationPatch,
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> StoreResult<Conversation>;
    async fn delete_conversation(
        &self,
        id: ConversationId,
        audit: &[AuditEntry],
    ) -> StoreResult<()>;
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
    async fn add_participant(
        &self,
        conv: ConversationId,
        user: UserId,
        role: ConversationRole,
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> StoreResult<Participant>;
    /// Fails with `LastConversationOwner` when it would leave the conversation without an owner
    /// while others remain.
    async fn remove_participant(
        &self,
        conv: ConversationId,
        user: UserId,
        audit: &[AuditEntry],
    ) -> StoreResult<()>;
}
