//! The caller's views of an org and a conversation: the record with what the caller may do in
//! it, computed by `policy` for this credential. They live with the services that build them,
//! not in `model` (the records the store persists), so the records do not depend on the policy
//! that decides over them.

use crate::model::{Conversation, Org};
use crate::policy::{ConversationAction, OrgAction};
use crate::types::OrgRole;
use crate::widget::{ConversationSource, WidgetStatus};
use serde::Serialize;
use utoipa::ToSchema;

/// An org as one of its members sees it: with their role and what they may do in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct OrgView {
    #[serde(flatten)]
    pub org: Org,
    pub role: OrgRole,
    /// What the caller may do in the org through this credential, computed by the policy that
    /// the routes enforce (the matrix's action names).
    pub permissions: Vec<OrgAction>,
}

/// A conversation as the caller sees it: the conversation and what they may do in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ConversationView {
    #[serde(flatten)]
    pub conversation: Conversation,
    /// `widget` for a support widget conversation (WEB-4); null for every other.
    pub source: Option<ConversationSource>,
    /// A support widget conversation's status: `bot` (its AI agent answers), `open` (handed
    /// to people) or `resolved`; null for every other conversation.
    pub status: Option<WidgetStatus>,
    /// What the caller may do in the conversation through this credential, computed by the
    /// policy that the routes enforce.
    pub permissions: Vec<ConversationAction>,
}

/// A conversation with where it comes from (WEB-4): the answer of `PATCH /conversations/{c}`
/// and the `d` of a widget conversation's events — `GET /conversations/{c}` less the caller's
/// permissions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SourcedConversation {
    #[serde(flatten)]
    pub conversation: Conversation,
    /// `widget` for a support widget conversation; null for every other.
    pub source: Option<ConversationSource>,
    /// A support widget conversation's status; null for every other conversation.
    pub status: Option<WidgetStatus>,
}

impl SourcedConversation {
    /// `conv` with `w`, its widget row if it has one.
    #[must_use]
    pub fn new(
        conversation: Conversation,
        w: Option<&crate::store::widget::WidgetConversation>,
    ) -> Self {
        Self {
            conversation,
            source: w.map(|_| ConversationSource::Widget),
            status: w.map(|w| w.status),
        }
    }
}
