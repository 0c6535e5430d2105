//! Full-text search of messages (MSG-6). Each backend keeps its own index (SQLite FTS5,
//! PostgreSQL `tsvector`), written by the database in the statement that writes the message,
//! so it is in the message's transaction whatever path wrote it.

use super::StoreResult;
use crate::ids::*;
use crate::model::Message;
use crate::search::SearchText;
use crate::types::Limit;
use async_trait::async_trait;

/// Where a page of hits starts, and in which order they come.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SearchFrom {
    /// Best match first (a lower score is a better match; ties newest first), after the hit
    /// with this score and id when given.
    Relevance(Option<(f64, MessageId)>),
    /// Newest first (by id: message ids are time-ordered), older than this message when given.
    Newest(Option<MessageId>),
}

/// One search, as the service has decided it may run.
#[derive(Debug, Clone, Copy)]
pub struct SearchRequest<'a> {
    /// The caller: only conversations where they have a participant row, in an org where they
    /// have a member row, are searched — checked by the query itself.
    pub user: UserId,
    pub org: OrgId,
    /// Only these conversations, when given (one conversation's search; a bot or key limited
    /// to a list).
    pub within: Option<&'a [ConversationId]>,
    pub text: &'a SearchText,
    pub from: SearchFrom,
    pub limit: Limit,
}

/// A message that matched, with its score (lower is better; comparable only within one
/// search).
#[derive(Debug, Clone)]
pub struct SearchHit {
    pub message: Message,
    pub score: f64,
}

#[async_trait]
pub trait SearchStore: Send + Sync + 'static {
    /// A page of the messages matching every word of `req.text`, never a deleted one, only
    /// from conversations `req.user` takes part in (see [`SearchRequest::user`]). A query of
    /// no words answers nothing.
    async fn search_messages(&self, req: &SearchRequest<'_>) -> StoreResult<Vec<SearchHit>>;
}
