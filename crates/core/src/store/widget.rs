//! The support widget (WEB-4): widget keys with their allowed origins and sealed identity
//! secret, visitors, their server-made sessions (the visitor secret stored as a keyed hash
//! only) and widget conversations with their status. The records live here with the trait
//! that stores them.
//!
//! A status change is one conditional UPDATE (`WHERE status IN (…)`), so of two concurrent
//! handoffs exactly one changes the row (and is audited and announced).

use super::{NewBot, StoreResult};
use crate::audit::AuditEntry;
use crate::ids::*;
use crate::model::{Conversation, Member};
use crate::secretbox::Sealed;
use crate::types::ConversationRole;
use crate::widget::{IdentityMode, WidgetOrigin, WidgetStatus};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

/// A widget key as its org's managers see it. `key` is publishable (it sits in the host page),
/// so it is shown in lists; the identity secret is never part of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct WidgetKey {
    #[schema(value_type = String, format = Uuid)]
    pub id: Uuid,
    pub org_id: OrgId,
    pub name: String,
    /// `cnv_w_…`: goes in the embedding snippet's `data-key`.
    pub key: String,
    /// Exact origins of the pages that may use the key.
    pub allowed_origins: Vec<WidgetOrigin>,
    /// The support team: its members see the key's conversations in their inbox.
    pub team_id: TeamId,
    /// The AI agent that answers first, if any.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub agent_id: Option<Uuid>,
    pub identity: IdentityMode,
    /// Whether the widget asks for a name and an e-mail address before the first message.
    pub prechat_form: bool,
    /// The bot account visitors' messages are written as.
    pub visitor_user_id: UserId,
    /// The bot account that writes notices (handoff).
    pub system_user_id: UserId,
    #[serde(skip)]
    pub visitor_bot_id: BotId,
    #[serde(skip)]
    pub system_bot_id: BotId,
    pub created_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip)]
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A sealed identity secret as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WidgetSecretRecord {
    pub sealed: Sealed,
    pub created_at: DateTime<Utc>,
}

/// A new widget key: its two bot accounts (no usable token), the key and its sealed secret, in
/// one transaction.
#[derive(Debug, Clone, Copy)]
pub struct NewWidgetKey<'a> {
    pub visitor_bot: NewBot<'a>,
    pub system_bot: NewBot<'a>,
    pub key: &'a WidgetKey,
    pub secret: &'a WidgetSecretRecord,
}

/// A change to a widget key; `None` leaves a field.
#[derive(Debug, Clone, Default)]
pub struct WidgetKeyPatch {
    pub name: Option<String>,
    pub allowed_origins: Option<Vec<WidgetOrigin>>,
    pub team_id: Option<TeamId>,
    pub agent_id: Option<Option<Uuid>>,
    pub identity: Option<IdentityMode>,
    pub prechat_form: Option<bool>,
}

/// A person on a host site: anonymous (one per session) or the host's signed-in user
/// (`external_id`, one per key whatever the browser).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct WidgetVisitor {
    #[schema(value_type = String, format = Uuid)]
    pub id: Uuid,
    #[serde(skip)]
    pub key_id: Uuid,
    /// The host's user id, when the host signed it.
    pub external_id: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A visitor session: its public id and the keyed hash of its visitor secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WidgetSession {
    pub id: String,
    pub key_id: Uuid,
    pub visitor_id: Uuid,
    pub secret_hash: Vec<u8>,
    pub verified: bool,
    pub created_at: DateTime<Utc>,
}

/// Who a new session is for.
#[derive(Debug, Clone)]
pub enum VisitorFor {
    /// A new anonymous visitor.
    Anonymous(WidgetVisitor),
    /// The key's visitor with this host user id: made if new, its name and e-mail refreshed
    /// when given.
    Verified(WidgetVisitor),
}

/// A widget conversation's own facts beside its conversation row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct WidgetConversation {
    pub conversation_id: ConversationId,
    pub org_id: OrgId,
    #[schema(value_type = String, format = Uuid)]
    pub key_id: Uuid,
    #[schema(value_type = String, format = Uuid)]
    pub visitor_id: Uuid,
    pub team_id: TeamId,
    pub status: WidgetStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One line of a support inbox (`GET /orgs/{org}/inbox`, `GET /admin/conversations`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct InboxItem {
    #[serde(flatten)]
    pub conversation: WidgetConversation,
    /// The conversation's name (the visitor's name or e-mail address when known).
    pub name: Option<String>,
    /// The `seq` of its newest message.
    pub last_seq: i64,
    pub visitor: WidgetVisitor,
    /// Always `widget`.
    pub source: &'static str,
}

/// Which widget conversations an inbox page holds.
#[derive(Debug, Clone)]
pub struct InboxQuery {
    /// `None`: every org (server admins).
    pub org: Option<OrgId>,
    pub status: Option<WidgetStatus>,
    /// `Some`: only the conversations of these teams' keys.
    pub teams: Option<Vec<TeamId>>,
    /// Conversations whose id sorts below this one (newest first).
    pub before: Option<ConversationId>,
    pub limit: u32,
}

#[async_trait]
pub trait WidgetStore: Send + Sync + 'static {
    /// Creates the key's two bot accounts, the key, its origins and its sealed secret.
    async fn create_widget_key(
        &self,
        new: &NewWidgetKey<'_>,
        audit: &[AuditEntry],
    ) -> StoreResult<[Member; 2]>;
    /// The org's live keys, oldest first.
    async fn widget_keys(&self, org: OrgId) -> StoreResult<Vec<WidgetKey>>;
    /// A live key by id.
    async fn widget_key(&self, id: Uuid) -> StoreResult<WidgetKey>;
    /// A live key by its publishable value (`None`: unknown or revoked).
    async fn widget_key_by_value(&self, key: &str) -> StoreResult<Option<WidgetKey>>;
    /// Whether some live key lists `origin` (a CORS preflight carries no key).
    async fn widget_origin_known(&self, origin: &str) -> StoreResult<bool>;
    async fn update_widget_key(
        &self,
        id: Uuid,
        patch: &WidgetKeyPatch,
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> StoreResult<WidgetKey>;
    /// Revokes a live key (`NotFound` when it is not live); its conversations stay.
    async fn revoke_widget_key(
        &self,
        id: Uuid,
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> StoreResult<()>;
    async fn widget_key_secret(&self, id: Uuid) -> StoreResult<Option<WidgetSecretRecord>>;
    /// The user ids of the org's widget keys' bot accounts (revoked keys included).
    async fn widget_bot_users(&self, org: OrgId) -> StoreResult<Vec<UserId>>;
    /// Stores a session for a visitor (made or, verified, found by its host id); answers the
    /// visitor.
    async fn create_widget_session(
        &self,
        session: &WidgetSession,
        visitor: &VisitorFor,
    ) -> StoreResult<WidgetVisitor>;
    /// A session of `key` by id, with its visitor.
    async fn widget_session(
        &self,
        key: Uuid,
        id: &str,
    ) -> StoreResult<Option<(WidgetSession, WidgetVisitor)>>;
    /// The visitor's newest conversation.
    async fn latest_widget_conversation(
        &self,
        visitor: Uuid,
    ) -> StoreResult<Option<WidgetConversation>>;
    /// Creates the conversation with its participants and its widget row — unless the
    /// visitor has one not resolved, read under the visitor's lock in the same transaction:
    /// then nothing is made and that one is answered (parallel first sends of one visitor
    /// share one conversation, WEB-4).
    async fn create_widget_conversation(
        &self,
        conv: &Conversation,
        participants: &[(UserId, ConversationRole)],
        widget: &WidgetConversation,
        audit: &[AuditEntry],
    ) -> StoreResult<Option<WidgetConversation>>;
    async fn widget_conversation(
        &self,
        conv: ConversationId,
    ) -> StoreResult<Option<WidgetConversation>>;
    /// The widget rows of those of `convs` that are widget conversations (any order).
    async fn widget_conversations(
        &self,
        convs: &[ConversationId],
    ) -> StoreResult<Vec<WidgetConversation>>;
    /// Moves the conversation to `to` if its status is one of `from`; `None` when it was not.
    async fn set_widget_status(
        &self,
        conv: ConversationId,
        from: &[WidgetStatus],
        to: WidgetStatus,
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> StoreResult<Option<WidgetConversation>>;
    /// A page of widget conversations, newest first.
    async fn widget_inbox(&self, query: &InboxQuery) -> StoreResult<Vec<InboxItem>>;
    /// Who works the inbox of `team`'s widget conversations in `org`: the team's members (not
    /// viewers) and the org's owners and admins — as `policy::widget_inbox_allows` lets in.
    async fn widget_inbox_audience(&self, org: OrgId, team: TeamId) -> StoreResult<Vec<UserId>>;
}
