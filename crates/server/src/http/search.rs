//! Search (MSG-6): `GET /orgs/{org}/search` and `GET /conversations/{c}/search`. The query
//! string is parsed here into typed values (422 naming the parameter); what may be searched
//! is the services' and the store's business. API keys need `messages:read`.

use super::error::{ApiError, ApiResult};
use super::extract::{ApiQuery, Caller};
use super::pagination::List;
use crate::state::AppState;
use axum::Json;
use conclave_core::model::Message;
use conclave_core::search::SearchText;
use conclave_core::search_cursor::{CursorSeal, SearchScope};
use conclave_core::service::{Found, SearchQuery};
use conclave_core::store::SearchFrom;
use conclave_core::types::Limit;
use conclave_core::{ConversationId, OrgId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    use super::credentials::{declare, RouteAccess};
    use conclave_core::credential::Scope;
    declare(
        OpenApiRouter::new()
            .routes(routes!(search_org))
            .routes(routes!(search_conversation)),
        RouteAccess::always(Scope::MessagesRead),
    )
}

/// The query string of both search routes.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// 1–256 characters of plain words, all of which a hit contains; quotes and operators are
    /// searched as text. Not only white space, and no control characters.
    #[param(
        required = true,
        min_length = 1,
        max_length = 256,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x1f\x7f-\x9f\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub q: Option<String>,
    /// `relevance` (best match first among the newest 5,000 matches the caller may read, the
    /// default) or `newest` (every match, newest first).
    #[param(pattern = "^(relevance|newest)$")]
    pub sort: Option<String>,
    /// 1–100, default 50 (read as text here, so a bad value is a 422 naming `limit`).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// Continue after this cursor (the `next` of an earlier page of the same search and sort,
    /// by the same caller): sealed, so it opens for that search only; anything else is a 422.
    #[param(pattern = "^[A-Za-z0-9_-]{70}$")]
    pub before: Option<String>,
}

/// One hit.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchHit {
    pub message: Message,
    /// Part of the message's text, HTML-escaped, each matching word wrapped in
    /// `<mark>…</mark>` (the only markup it holds); `…` where the text was cut.
    pub snippet: String,
}

/// 422 naming `field`.
fn invalid(field: &'static str, code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::invalid(code, message, field)
}

impl SearchParams {
    /// The typed request, or 422 naming the first bad parameter; `seal` opens `before`.
    fn parse(&self, seal: &CursorSeal) -> ApiResult<SearchQuery> {
        let raw = self
            .q
            .as_deref()
            .ok_or_else(|| invalid("q", "missing", "`q` is required"))?;
        let text = SearchText::parse(raw)
            .map_err(|r| invalid("q", r.code, format!("`q` {}", r.message)))?;
        let from = match self.sort.as_deref() {
            None | Some("relevance") => SearchFrom::Relevance(None),
            Some("newest") => SearchFrom::Newest(None),
            Some(_) => {
                return Err(invalid(
                    "sort",
                    "invalid_sort",
                    "`sort` must be `relevance` or `newest`",
                ))
            }
        };
        let limit = match self.limit.as_deref() {
            None => None,
            Some(n) => Some(n.parse::<i64>().map_err(|_| {
                invalid("limit", "out_of_range", "`limit` must be between 1 and 100")
            })?),
        };
        let limit = Limit::parse(limit)
            .map_err(|r| invalid("limit", r.code, format!("`limit` {}", r.message)))?;
        let from = match self.before.as_deref() {
            None => from,
            Some(raw) => seal.open(&text, from, raw).ok_or_else(|| {
                invalid(
                    "before",
                    "invalid_cursor",
                    "`before` is not a cursor (the `next` of an earlier page)",
                )
            })?,
        };
        Ok(SearchQuery { text, from, limit })
    }
}

/// A page of hits, with the cursor of the next page when this one is full: the last hit's
/// position sealed by `seal` (its score is never readable, see `search_cursor`).
fn page(found: Vec<Found>, query: &SearchQuery, seal: &CursorSeal) -> Json<List<SearchHit>> {
    let full = found.len() as u32 >= query.limit.get();
    let next = found
        .last()
        .filter(|_| full)
        .map(|last| seal.seal(&query.text, query.from, last.score, last.message.id));
    let items = found
        .into_iter()
        .map(|f| SearchHit {
            message: f.message,
            snippet: f.snippet,
        })
        .collect();
    Json(List { items, next })
}

/// Parses the query, runs `search` with it and answers the page (REST, and MCP's
/// `search_messages`); `seal` is the caller's for the scope searched.
pub async fn answer<F>(
    params: &SearchParams,
    seal: &CursorSeal,
    search: impl FnOnce(SearchQuery) -> F,
) -> ApiResult<Json<List<SearchHit>>>
where
    F: std::future::Future<Output = Result<Vec<Found>, conclave_core::ServiceError>>,
{
    let query = params.parse(seal)?;
    let found = search(query.clone()).await?;
    Ok(page(found, &query, seal))
}

/// The seal of `services`' cursors for `actor`'s searches in `scope`.
pub fn cursor_seal(
    services: &conclave_core::service::Services,
    actor: &conclave_core::service::Actor,
    scope: SearchScope,
) -> CursorSeal {
    CursorSeal::new(&services.keys, actor.user.id, scope)
}

/// Search the messages of every conversation of the org I take part in.
#[utoipa::path(get, path = "/orgs/{org}/search", tag = "search",
    params(("org" = String, Path, format = Uuid), SearchParams),
    responses((status = 200, body = List<SearchHit>)))]
async fn search_org(
    me: Caller<OrgId>,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> ApiResult<Json<List<SearchHit>>> {
    let seal = cursor_seal(me.services(), &me.actor, SearchScope::Org(me.at));
    answer(&params, &seal, |q| {
        me.services().search_org(&me.actor, me.at, q)
    })
    .await
}

/// Search the messages of one conversation I take part in.
#[utoipa::path(get, path = "/conversations/{c}/search", tag = "search",
    params(("c" = String, Path, format = Uuid), SearchParams),
    responses((status = 200, body = List<SearchHit>)))]
async fn search_conversation(
    me: Caller<ConversationId>,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> ApiResult<Json<List<SearchHit>>> {
    let seal = cursor_seal(me.services(), &me.actor, SearchScope::Conversation(me.at));
    answer(&params, &seal, |q| {
        me.services().search_conversation(&me.actor, me.at, q)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(
        q: &str,
        sort: Option<&str>,
        limit: Option<&str>,
        before: Option<&str>,
    ) -> SearchParams {
        SearchParams {
            q: Some(q.to_owned()),
            sort: sort.map(str::to_owned),
            limit: limit.map(str::to_owned),
            before: before.map(str::to_owned),
        }
    }

    fn field(p: &SearchParams) -> String {
        p.parse(&seal()).unwrap_err().field.unwrap_or_default()
    }

    fn seal() -> CursorSeal {
        let keys = conclave_core::keys::ServerKeys::derive(
            &conclave_core::keys::MasterKey::from_bytes([3; 32]),
        );
        let scope = SearchScope::Org(OrgId::new());
        CursorSeal::new(&keys, conclave_core::UserId::new(), scope)
    }

    #[test]
    fn the_documented_pattern_fits_the_sealed_cursors() {
        use conclave_core::search_cursor::CURSOR_CHARS;
        let seal = seal();
        let text = SearchText::parse("x").unwrap();
        let id = conclave_core::MessageId::new();
        let cursor = seal.seal(&text, SearchFrom::Relevance(None), -1.0, id);
        assert_eq!(cursor.len(), CURSOR_CHARS);
        assert_eq!(CURSOR_CHARS, 70, "the `before` pattern says 70 characters");
        let p = params("x", None, None, Some(&cursor));
        assert_eq!(
            p.parse(&seal).unwrap().from,
            SearchFrom::Relevance(Some((-1.0, id)))
        );
        // Made up, of another sort or of another search: a 422 naming `before`.
        for p in [
            params("x", None, None, Some(&"A".repeat(70))),
            params("x", Some("newest"), None, Some(&cursor)),
            params("y", None, None, Some(&cursor)),
        ] {
            let refused = p.parse(&seal).unwrap_err();
            assert_eq!(refused.field.as_deref(), Some("before"));
        }
    }

    #[test]
    fn bad_parameters_are_named() {
        assert_eq!(field(&params("", None, None, None)), "q");
        assert_eq!(field(&params(&"x".repeat(257), None, None, None)), "q");
        assert_eq!(field(&params("x", Some("oldest"), None, None)), "sort");
        assert_eq!(field(&params("x", None, Some("0"), None)), "limit");
        assert_eq!(field(&params("x", None, Some("ten"), None)), "limit");
        assert_eq!(field(&params("x", None, None, Some("%%"))), "before");
        let missing = SearchParams {
            q: None,
            ..params("x", None, None, None)
        };
        assert_eq!(field(&missing), "q");
        assert!(params("x", Some("newest"), Some("100"), None)
            .parse(&seal())
            .is_ok());
    }
}
