//! Search (MSG-6) in one conversation or across an org: the caller's right to read is asked
//! of `policy` as for listing messages, and the store's query keeps to the conversations the
//! caller takes part in (never a page filtered afterwards); each hit gets its snippet here.

use super::{Actor, Result, Services};
use crate::ids::*;
use crate::model::Message;
use crate::policy::{self, ConversationAction, OrgAction};
use crate::search::{snippet, SearchText};
use crate::store::{SearchFrom, SearchRequest};
use crate::types::Limit;

/// Searches one node runs at once: the others wait (other reads keep the rest of the
/// database connections) ...
pub(super) const SLOTS: usize = 2;
/// ... up to this long, then are answered 503 `busy` with `Retry-After`.
pub(super) const SLOT_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// A parsed search request.
#[derive(Debug, Clone)]
pub struct SearchQuery {
    pub text: SearchText,
    pub from: SearchFrom,
    pub limit: Limit,
}

/// A message that matched, its snippet (escaped text with `<mark>` around the matches) and
/// its score, which positions the next page.
#[derive(Debug, Clone)]
pub struct Found {
    pub message: Message,
    pub snippet: String,
    pub score: f64,
}

impl Services {
    /// Messages of `conv` matching the query: for whoever may read its messages.
    pub async fn search_conversation(
        &self,
        actor: &Actor,
        conv: ConversationId,
        query: SearchQuery,
    ) -> Result<Vec<Found>> {
        let (facts, _) = self
            .conversation_access(actor, conv, ConversationAction::Read)
            .await?;
        self.search(actor, facts.org_id, Some(&[conv]), query).await
    }

    /// Messages of every conversation of `org` the caller may read matching the query.
    pub async fn search_org(
        &self,
        actor: &Actor,
        org: OrgId,
        query: SearchQuery,
    ) -> Result<Vec<Found>> {
        self.require_org(actor, org, OrgAction::ViewOrg).await?;
        let within = policy::search_within(&actor.credential);
        self.search(actor, org, within, query).await
    }

    async fn search(
        &self,
        actor: &Actor,
        org: OrgId,
        within: Option<&[ConversationId]>,
        query: SearchQuery,
    ) -> Result<Vec<Found>> {
        let req = SearchRequest {
            user: actor.user.id,
            org,
            within,
            text: &query.text,
            from: query.from,
            limit: query.limit,
        };
        let slot = self.searches.take().await?;
        let hits = self.store.search_messages(&req).await?;
        drop(slot);
        Ok(hits
            .into_iter()
            .map(|h| Found {
                snippet: snippet(&h.message, &query.text),
                message: h.message,
                score: h.score,
            })
            .collect())
    }
}
