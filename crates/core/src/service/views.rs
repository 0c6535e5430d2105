//! The caller's views of an org and a conversation: the record with what the caller may do in
//! it, computed by `policy` for this credential. They live with the services that build them,
//! not in `model` (the records the store persists), so the records do not depend on the policy
//! that decides over them.

use crate::model::{Conversation, Org};
use crate::policy::{ConversationAction, OrgAction};
use crate::types::OrgRole;
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
    /// What the caller may do in the conversation through this credential, computed by the
    /// policy that the routes enforce.
    pub permissions: Vec<ConversationAction>,
}
