//! Cursor pagination for every list: `?limit=` (1–100, default 50) and `before` or `after`
//! (opaque cursors; for messages also a message id). Responses are `{"items","next"}` where
//! `next` continues in the same direction.

use super::error::{ApiError, ApiResult};
use axum::Json;
use base64::Engine;
use conclave_core::error::ServiceError;
use conclave_core::store::{Cursor, Page};
use conclave_core::types::Limit;
use serde::{Deserialize, Serialize};
use std::future::Future;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// 1–100, default 50.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// Continue towards older items from this cursor (a `next` of an earlier page).
    #[param(pattern = "^[A-Za-z0-9_-]{21}[AQgw]$")]
    pub before: Option<String>,
    /// Continue towards newer items from this cursor (a `next` of an earlier page).
    #[param(pattern = "^[A-Za-z0-9_-]{21}[AQgw]$")]
    pub after: Option<String>,
}

/// The query of the message list, for the document (the handler reads a [`ListQuery`]):
/// `before`/`after` are a message id or a `next` cursor, which encodes a sequence number.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct MessageListQuery {
    /// 1–100, default 50.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// Continue towards older messages from this message id or cursor.
    #[param(
        pattern = "^(?:[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}|c2Vx(?:Oj[AEIMQUYcgk]|Oj[AEIMQUYcgk][w-z0-5](?:(?:M[DTjz]|N[DTjz]|O[DT])[AEIMQUYcgk][w-z0-5]){0,4}(?:[MN][AQgw]|O[AQ]|(?:M[DTjz]|N[DTjz]|O[DT])[AEIMQUYcgk])?))$"
    )]
    before: Option<String>,
    /// Continue towards newer messages from this message id or cursor.
    #[param(
        pattern = "^(?:[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}|c2Vx(?:Oj[AEIMQUYcgk]|Oj[AEIMQUYcgk][w-z0-5](?:(?:M[DTjz]|N[DTjz]|O[DT])[AEIMQUYcgk][w-z0-5]){0,4}(?:[MN][AQgw]|O[AQ]|(?:M[DTjz]|N[DTjz]|O[DT])[AEIMQUYcgk])?))$"
    )]
    after: Option<String>,
}

/// A page of results.
#[derive(Debug, Serialize, ToSchema)]
pub struct List<T: ToSchema> {
    pub items: Vec<T>,
    /// Pass as the same parameter (`before` or `after`) to get the next page; null at the end.
    pub next: Option<String>,
}

impl<T: ToSchema> List<T> {
    pub fn all(items: Vec<T>) -> Self {
        Self { items, next: None }
    }
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
}

fn encode_id(id: Uuid) -> String {
    b64().encode(id.as_bytes())
}

fn encode_seq(seq: i64) -> String {
    b64().encode(format!("seq:{seq}"))
}

fn decode_id(raw: &str, field: &str) -> ApiResult<Uuid> {
    b64()
        .decode(raw)
        .ok()
        .and_then(|b| Uuid::from_slice(&b).ok())
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_cursor",
                format!("`{field}` is not a valid cursor"),
                field,
            )
        })
}

/// What a message-list position names: a sequence number, or a message id to resolve.
pub enum MessagePosition {
    Seq(i64),
    Message(Uuid),
}

fn decode_message_position(raw: &str, field: &str) -> ApiResult<MessagePosition> {
    if let Ok(id) = Uuid::try_parse(raw) {
        return Ok(MessagePosition::Message(id));
    }
    b64()
        .decode(raw)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix("seq:").and_then(|n| n.parse::<i64>().ok()))
        .filter(|n| *n >= 0)
        .map(MessagePosition::Seq)
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_cursor",
                format!("`{field}` is not a valid cursor or message id"),
                field,
            )
        })
}

fn limit(q: &ListQuery) -> ApiResult<Limit> {
    Limit::parse(q.limit)
        .map_err(|r| ApiError::invalid(r.code, format!("`limit` {}", r.message), "limit"))
}

fn both(q: &ListQuery) -> ApiResult<()> {
    if q.before.is_some() && q.after.is_some() {
        return Err(ApiError::invalid(
            "conflicting_parameters",
            "give `before` or `after`, not both",
            "after",
        ));
    }
    Ok(())
}

/// A page over id-keyed items.
pub fn id_page<K: From<Uuid>>(q: &ListQuery) -> ApiResult<Page<K>> {
    both(q)?;
    let cursor = match (&q.before, &q.after) {
        (Some(b), _) => Cursor::Before(K::from(decode_id(b, "before")?)),
        (_, Some(a)) => Cursor::After(K::from(decode_id(a, "after")?)),
        _ => Cursor::Latest,
    };
    Ok(Page {
        cursor,
        limit: limit(q)?,
    })
}

/// A page over messages: the position still may need resolving from a message id.
pub fn message_page(q: &ListQuery) -> ApiResult<(Cursor<MessagePosition>, Limit)> {
    both(q)?;
    let cursor = match (&q.before, &q.after) {
        (Some(b), _) => Cursor::Before(decode_message_position(b, "before")?),
        (_, Some(a)) => Cursor::After(decode_message_position(a, "after")?),
        _ => Cursor::Latest,
    };
    Ok((cursor, limit(q)?))
}

/// Wraps a page of id-keyed items, with the cursor to continue in the same direction.
pub fn id_list<T: ToSchema, K>(items: Vec<T>, page: &Page<K>, key: impl Fn(&T) -> Uuid) -> List<T> {
    let full = items.len() as u32 >= page.limit.get();
    let next = items
        .last()
        .filter(|_| full)
        .map(|last| encode_id(key(last)));
    List { items, next }
}

/// The paging query of a list route, as its handler takes it.
pub type Paging = super::extract::ApiQuery<ListQuery>;

/// The answer of a list route.
pub type Listed<T> = ApiResult<Json<List<T>>>;

/// Answers every item `reading` read, as one page.
pub async fn all<T: ToSchema>(
    reading: impl Future<Output = Result<Vec<T>, ServiceError>>,
) -> Listed<T> {
    Ok(Json(List::all(reading.await?)))
}

/// [`all`], each record answered as `view` shows it (a credential masked, say).
pub async fn all_as<R, T: ToSchema>(
    reading: impl Future<Output = Result<Vec<R>, ServiceError>>,
    view: impl FnMut(R) -> T,
) -> Listed<T> {
    Ok(Json(List::all(
        reading.await?.into_iter().map(view).collect(),
    )))
}

/// One page of a list keyed by id: the page `q` asks for, fetched by `fetch`, answered with
/// the cursor of the next one (`key` names an item's id). What every id-keyed list route does.
pub async fn id_listed<K, T, Fut>(
    q: &ListQuery,
    key: impl Fn(&T) -> Uuid,
    fetch: impl FnOnce(Page<K>) -> Fut,
) -> Listed<T>
where
    K: From<Uuid> + Copy,
    T: ToSchema,
    Fut: Future<Output = Result<Vec<T>, ServiceError>>,
{
    let page = id_page::<K>(q)?;
    let items = fetch(page).await?;
    Ok(Json(id_list(items, &page, key)))
}

/// Wraps a page of messages (keyed by seq).
pub fn seq_list<T: ToSchema>(items: Vec<T>, limit: Limit, key: impl Fn(&T) -> i64) -> List<T> {
    let full = items.len() as u32 >= limit.get();
    let next = items
        .last()
        .filter(|_| full)
        .map(|last| encode_seq(key(last)));
    List { items, next }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let id = Uuid::now_v7();
        assert_eq!(decode_id(&encode_id(id), "before").unwrap(), id);
        assert!(matches!(
            decode_message_position(&encode_seq(42), "after").unwrap(),
            MessagePosition::Seq(42)
        ));
        assert!(decode_id("not-a-cursor!", "before").is_err());
        assert!(decode_message_position("zzz", "before").is_err());
    }
}
