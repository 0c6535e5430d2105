//! Search (MSG-6): `GET /orgs/{org}/search` and `GET /conversations/{c}/search`. The query
//! string is parsed here into typed values (422 naming the parameter); what may be searched
//! is the services' and the store's business. API keys need `messages:read`.

use super::error::{ApiError, ApiResult};
use super::extract::{ApiQuery, Caller};
use super::pagination::List;
use crate::state::AppState;
use axum::Json;
use base64::Engine;
use conclave_core::model::Message;
use conclave_core::search::SearchText;
use conclave_core::service::{Found, SearchQuery};
use conclave_core::store::SearchFrom;
use conclave_core::types::Limit;
use conclave_core::{ConversationId, MessageId, OrgId};
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
    /// Continue after this cursor (the `next` of an earlier page of the same search and sort).
    #[param(pattern = "^[A-Za-z0-9_-]{32}$")]
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

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
}

/// The cursor after `hit`: 24 bytes, its score's bits then its id, base64url (32 characters).
/// Every such string is a position in either order — the newest order reads only the id — so
/// a well-formed cursor is never refused, whatever page it came from.
fn encode_cursor(from: SearchFrom, hit: &Found) -> String {
    let score = match from {
        SearchFrom::Relevance(_) => hit.score,
        SearchFrom::Newest(_) => 0.0,
    };
    let mut raw = [0u8; 24];
    raw[..8].copy_from_slice(&score.to_bits().to_be_bytes());
    raw[8..].copy_from_slice(hit.message.id.0.as_bytes());
    b64().encode(raw)
}

/// The position a cursor of [`encode_cursor`] names in the order `from` asks for; `None` if it
/// is not 32 characters of base64url. A score that is no number (only a forged cursor has one)
/// stands past every score: an empty page.
fn decode_cursor(raw: &str, from: SearchFrom) -> Option<SearchFrom> {
    let bytes: [u8; 24] = b64().decode(raw).ok()?.try_into().ok()?;
    let (bits, id) = bytes.split_at(8);
    let id = MessageId(uuid::Uuid::from_slice(id).ok()?);
    Some(match from {
        SearchFrom::Relevance(_) => {
            let score = f64::from_bits(u64::from_be_bytes(bits.try_into().ok()?));
            let score = if score.is_nan() { f64::INFINITY } else { score };
            SearchFrom::Relevance(Some((score, id)))
        }
        SearchFrom::Newest(_) => SearchFrom::Newest(Some(id)),
    })
}

/// 422 naming `field`.
fn invalid(field: &'static str, code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::invalid(code, message, field)
}

impl SearchParams {
    /// The typed request, or 422 naming the first bad parameter.
    fn parse(&self) -> ApiResult<SearchQuery> {
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
            Some(raw) => decode_cursor(raw, from).ok_or_else(|| {
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

/// A page of hits, with the cursor of the next page when this one is full.
fn page(found: Vec<Found>, query: &SearchQuery) -> Json<List<SearchHit>> {
    let full = found.len() as u32 >= query.limit.get();
    let next = found
        .last()
        .filter(|_| full)
        .map(|last| encode_cursor(query.from, last));
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
/// `search_messages`).
pub async fn answer<F>(
    params: &SearchParams,
    search: impl FnOnce(SearchQuery) -> F,
) -> ApiResult<Json<List<SearchHit>>>
where
    F: std::future::Future<Output = Result<Vec<Found>, conclave_core::ServiceError>>,
{
    let query = params.parse()?;
    let found = search(query.clone()).await?;
    Ok(page(found, &query))
}

/// Search the messages of every conversation of the org I take part in.
#[utoipa::path(get, path = "/orgs/{org}/search", tag = "search",
    params(("org" = String, Path, format = Uuid), SearchParams),
    responses((status = 200, body = List<SearchHit>)))]
async fn search_org(
    me: Caller<OrgId>,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> ApiResult<Json<List<SearchHit>>> {
    answer(&params, |q| me.services().search_org(&me.actor, me.at, q)).await
}

/// Search the messages of one conversation I take part in.
#[utoipa::path(get, path = "/conversations/{c}/search", tag = "search",
    params(("c" = String, Path, format = Uuid), SearchParams),
    responses((status = 200, body = List<SearchHit>)))]
async fn search_conversation(
    me: Caller<ConversationId>,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> ApiResult<Json<List<SearchHit>>> {
    answer(&params, |q| {
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
        p.parse().unwrap_err().field.unwrap_or_default()
    }

    #[test]
    fn cursors_round_trip_and_every_well_formed_one_is_a_position() {
        let hit = Found {
            message: Message {
                id: MessageId::new(),
                conversation_id: ConversationId::new(),
                seq: 1,
                author: conclave_core::model::UserSummary {
                    id: conclave_core::UserId::new(),
                    username: "a".into(),
                    display_name: None,
                    kind: conclave_core::types::UserKind::User,
                },
                content: Some("x".into()),
                format: conclave_core::types::MessageFormat::Text,
                created_at: chrono::DateTime::UNIX_EPOCH,
                edited_at: None,
                deleted_at: None,
                reply_to: None,
                attachments: Vec::new(),
                status: conclave_core::types::MessageStatus::Complete,
                status_reason: None,
            },
            snippet: String::new(),
            score: -1.25e-6,
        };
        let rel = encode_cursor(SearchFrom::Relevance(None), &hit);
        assert_eq!(rel.len(), 32);
        assert_eq!(
            decode_cursor(&rel, SearchFrom::Relevance(None)),
            Some(SearchFrom::Relevance(Some((hit.score, hit.message.id))))
        );
        let new = encode_cursor(SearchFrom::Newest(None), &hit);
        assert_eq!(
            decode_cursor(&new, SearchFrom::Newest(None)),
            Some(SearchFrom::Newest(Some(hit.message.id)))
        );
        // A cursor of the other order is still a position in this one.
        assert_eq!(
            decode_cursor(&rel, SearchFrom::Newest(None)),
            Some(SearchFrom::Newest(Some(hit.message.id)))
        );
        assert_eq!(
            decode_cursor(&new, SearchFrom::Relevance(None)),
            Some(SearchFrom::Relevance(Some((0.0, hit.message.id))))
        );
        // Any 32 characters of base64url decode; a forged NaN score is past every score.
        let nan = b64().encode([[0x7f, 0xf8, 0, 0, 0, 0, 0, 1].as_slice(), &[0; 16]].concat());
        assert_eq!(
            decode_cursor(&nan, SearchFrom::Relevance(None)),
            Some(SearchFrom::Relevance(Some((
                f64::INFINITY,
                MessageId(uuid::Uuid::nil())
            ))))
        );
        assert!(decode_cursor(&"_".repeat(32), SearchFrom::Relevance(None)).is_some());
        for bad in [
            "bm9wZQ",
            "",
            &"A".repeat(31),
            &"A".repeat(33),
            &"!".repeat(32),
        ] {
            assert_eq!(decode_cursor(bad, SearchFrom::Newest(None)), None, "{bad}");
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
            .parse()
            .is_ok());
    }
}
