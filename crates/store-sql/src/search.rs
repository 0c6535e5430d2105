//! Full-text search of messages (MSG-6). The index is the backend's own (see each backend's
//! `0014_search.sql`): SQLite's FTS5 table `message_search`, kept by triggers on `messages`,
//! and PostgreSQL's generated `messages.search` `tsvector` with its GIN index — both written
//! by the statement that inserts, edits, tombstones or deletes the message, so always in that
//! statement's transaction, whichever path (group commit, edit, retention, erasure) ran it.
//! An agent's answer is indexed once, with its final text, when it stops streaming
//! (`0022_search_final_text.sql`): its text so far is not searchable.
//! The crate's `SEARCH` says how its engine is asked; the rest of the query is shared,
//! including who may read what: the caller's participant row and org-member row are joined
//! in every query itself, so a page never holds a message they could not list.
//!
//! What a search costs is bounded whatever the word (a word in one message of ten matches
//! 100,000 of a million):
//! - `relevance` scores only the newest [`RELEVANCE_WINDOW`] matches the caller may read (the
//!   engine's own newest-first order: FTS5's rowid, PostgreSQL's `id`) and ranks those; older
//!   matches are found with `newest`.
//! - `newest` is exact. A word with few matches (fewer than [`DENSE`] in the whole index, a
//!   count the index answers without reading a message) has them all read and sorted by id.
//!   A word with many walks the messages newest first by id in windows of ids
//!   ([`walk_windows`]), each message checked against the index and the caller's rows, and
//!   stops as soon as a page is full; when the windows do not fill it (the matches are
//!   elsewhere), the rest is read as for a rare word, below the last window.

use super::*;

/// How a backend's full-text engine is asked (`$1` is the bound query text).
pub(crate) struct SearchSql {
    /// What the hits are read from, `messages m` included.
    pub(crate) from: &'static str,
    /// The condition that the message matches `$1`.
    pub(crate) matches: &'static str,
    /// A message's score (a double; lower is a better match).
    pub(crate) score: &'static str,
    /// Whether `score` is read only in the query that reads the index (FTS5's `bm25`); else it
    /// is computed after the window is cut, for the window's messages only.
    pub(crate) score_in_window: bool,
    /// The query text bound as `$1`, from words that each hold a letter or digit.
    pub(crate) query: fn(&[&str]) -> String,
    /// The index alone (`SELECT 1 FROM {index} WHERE {matches}` lists the matches without
    /// reading a message where the engine can).
    pub(crate) index: &'static str,
    /// The order of `from` that is newest first and that the engine reads without sorting
    /// (the relevance window).
    pub(crate) newest_first: &'static str,
    /// The condition that the message `m` (read by id, not through the index) matches `$1`.
    pub(crate) row_matches: &'static str,
    /// A join the planner keeps in the order written (the walk reads its window first).
    pub(crate) join_in_order: &'static str,
}

/// `relevance` ranks at most this many matches: the newest the caller may read.
pub const RELEVANCE_WINDOW: i64 = 5_000;

/// A word with at least this many matches in the whole index is looked for newest first by
/// walking the messages, not by reading and sorting every match.
const DENSE: i64 = 1_000;

/// The windows of messages (newest first by id) a `newest` search of a dense word walks
/// before reading the rest as for a rare word: 25 and 200 messages per hit asked for.
fn walk_windows(limit: i64) -> [i64; 2] {
    [(limit * 25).max(500), limit * 200]
}

/// Reads a hit: the message's columns and its `score`.
fn hit_from_row(row: &Row) -> StoreResult<SearchHit> {
    Ok(SearchHit {
        message: message_from_row(row)?,
        score: get(row, "score")?,
    })
}

#[async_trait]
impl SearchStore for Backend {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn search_messages(&self, req: &SearchRequest<'_>) -> StoreResult<Vec<SearchHit>> {
        search(self, req, &crate::SEARCH).await
    }
}

/// The joins and conditions that keep a query to what the caller may read (`m` a message):
/// `$2` the user, `$3` the org, then `within`'s list from parameter `first`.
/// `join` joins them (`JOIN`, or the engine's [`SearchSql::join_in_order`]).
fn readable(within: Option<&[ConversationId]>, first: usize, join: &str) -> (String, String) {
    let joins = format!(
        "{join} users u ON u.id = m.author_id \
         {join} conversations c ON c.id = m.conversation_id \
         {join} participants p ON p.conversation_id = m.conversation_id AND p.user_id = $2 \
         {join} org_members om ON om.org_id = c.org_id AND om.user_id = $2"
    );
    let mut cond = "c.org_id = $3 AND m.deleted_at IS NULL AND m.content IS NOT NULL".to_string();
    if let Some(list) = within {
        let ids: Vec<String> = (0..list.len()).map(|i| format!("${}", first + i)).collect();
        cond.push_str(&format!(" AND m.conversation_id IN ({})", ids.join(", ")));
    }
    (joins, cond)
}

/// Binds `$1`–`$4` (query, user, org, limit) to `sql`.
fn start<'q>(sql: &'q str, req: &SearchRequest<'_>, text: &str, limit: i64) -> Query<'q> {
    sqlx::query(sql)
        .bind(text.to_string())
        .bind(req.user.0)
        .bind(req.org.0)
        .bind(limit)
}

/// Binds `within`'s list (the statement's last parameters), in order, and reads the hits.
async fn read_hits(
    tx: &mut Tx,
    mut q: Query<'_>,
    within: Option<&[ConversationId]>,
) -> StoreResult<Vec<SearchHit>> {
    for conv in within.unwrap_or_default() {
        q = q.bind(conv.0);
    }
    q.all(&mut **tx, hit_from_row).await
}

async fn search(
    s: &Backend,
    req: &SearchRequest<'_>,
    engine: &SearchSql,
) -> StoreResult<Vec<SearchHit>> {
    let words = req.text.words();
    if words.is_empty() || req.within.is_some_and(<[_]>::is_empty) {
        return Ok(Vec::new());
    }
    let text = (engine.query)(&words);
    // One snapshot for every statement of the search (the newest walk runs several).
    let mut tx = s.reader().begin().await.map_err(db)?;
    let hits = match req.from {
        SearchFrom::Relevance(after) => relevance(&mut tx, req, engine, &text, after).await?,
        SearchFrom::Newest(before) => newest(&mut tx, req, engine, &text, before).await?,
    };
    tx.rollback().await.map_err(db)?;
    let (messages, scores): (Vec<Message>, Vec<f64>) =
        hits.into_iter().map(|h| (h.message, h.score)).unzip();
    let messages = with_attachments(s.reader(), messages).await?;
    Ok(messages
        .into_iter()
        .zip(scores)
        .map(|(message, score)| SearchHit { message, score })
        .collect())
}

type Tx = sqlx::Transaction<'static, Db>;

/// Best first among the newest [`RELEVANCE_WINDOW`] matches the caller may read, after the
/// cursor `after`. The window is chosen before the cursor applies, so every page ranks the
/// same set.
async fn relevance(
    tx: &mut Tx,
    req: &SearchRequest<'_>,
    engine: &SearchSql,
    text: &str,
    after: Option<(f64, MessageId)>,
) -> StoreResult<Vec<SearchHit>> {
    let SearchSql {
        from,
        matches,
        score,
        newest_first,
        ..
    } = engine;
    // $1 the query, $2 the user, $3 the org, $4 the limit; then the cursor, then the list.
    let first = if after.is_some() { 7 } else { 5 };
    let (joins, cond) = readable(req.within, first, "JOIN");
    let cursor = if after.is_some() {
        "WHERE (score > $5 OR (score = $5 AND id < $6))"
    } else {
        ""
    };
    let (inner, outer) = if engine.score_in_window {
        (format!(", {score} AS score"), "w.score")
    } else {
        (String::new(), *score)
    };
    let sql = format!(
        "SELECT * FROM (SELECT {MESSAGE_COLS}, {outer} AS score FROM \
         (SELECT m.id AS hit_id{inner} FROM {from} {joins} \
          WHERE {matches} AND {cond} ORDER BY {newest_first} LIMIT {RELEVANCE_WINDOW}) w \
         JOIN messages m ON m.id = w.hit_id JOIN users u ON u.id = m.author_id) hits \
         {cursor} ORDER BY score ASC, id DESC LIMIT $4"
    );
    let mut q = start(&sql, req, text, limit(req.limit));
    if let Some((score, id)) = after {
        q = q.bind(score).bind(id.0);
    }
    read_hits(tx, q, req.within).await
}

/// Newest first (by id) below the cursor `before`: exact, see the module's notes.
async fn newest(
    tx: &mut Tx,
    req: &SearchRequest<'_>,
    engine: &SearchSql,
    text: &str,
    mut before: Option<MessageId>,
) -> StoreResult<Vec<SearchHit>> {
    let want = limit(req.limit);
    let count = format!(
        "SELECT COUNT(*) AS n FROM (SELECT 1 FROM {} WHERE {} LIMIT {DENSE}) d",
        engine.index, engine.matches
    );
    let dense: i64 = sqlx::query(&count)
        .bind(text.to_string())
        .one(&mut **tx, |r| get(r, "n"))
        .await?;
    let mut hits = Vec::new();
    if dense >= DENSE {
        for size in walk_windows(want) {
            // The oldest message of the next window: none when fewer messages are left.
            let floor = window_floor(tx, before, size).await?;
            let page = walk(tx, req, engine, text, before, floor, want - len(&hits)).await?;
            hits.extend(page);
            match floor {
                Some(floor) if len(&hits) < want => before = Some(floor),
                _ => return Ok(hits),
            }
        }
    }
    let rest = sorted(tx, req, engine, text, before, want - len(&hits)).await?;
    hits.extend(rest);
    Ok(hits)
}

fn len(hits: &[SearchHit]) -> i64 {
    i64::try_from(hits.len()).unwrap_or(i64::MAX)
}

/// The id of the `size`-th newest message below `before` (of any conversation: the walk's
/// window is a range of ids), if there are that many.
async fn window_floor(
    tx: &mut Tx,
    before: Option<MessageId>,
    size: i64,
) -> StoreResult<Option<MessageId>> {
    let sql = format!(
        "SELECT id FROM messages {} ORDER BY id DESC LIMIT 1 OFFSET $1",
        if before.is_some() {
            "WHERE id < $2"
        } else {
            ""
        }
    );
    let mut q = sqlx::query(&sql).bind(size - 1);
    if let Some(id) = before {
        q = q.bind(id.0);
    }
    q.opt(&mut **tx, |r| Ok(MessageId(get(r, "id")?))).await
}

/// The newest `want` matches the caller may read among the messages with ids from `floor`
/// (included) to `before` (excluded): each read by id, then checked against the index.
async fn walk(
    tx: &mut Tx,
    req: &SearchRequest<'_>,
    engine: &SearchSql,
    text: &str,
    before: Option<MessageId>,
    floor: Option<MessageId>,
    want: i64,
) -> StoreResult<Vec<SearchHit>> {
    let mut n = 4;
    let mut range = Vec::new();
    for (bound, op) in [(floor, ">="), (before, "<")] {
        if bound.is_some() {
            n += 1;
            range.push(format!("id {op} ${n}"));
        }
    }
    let range = if range.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", range.join(" AND "))
    };
    let join = engine.join_in_order;
    let (joins, cond) = readable(req.within, n + 1, join);
    let sql = format!(
        "WITH w AS MATERIALIZED (SELECT id FROM messages {range}) \
         SELECT {MESSAGE_COLS}, CAST(0 AS DOUBLE PRECISION) AS score \
         FROM w {join} messages m ON m.id = w.id {joins} \
         WHERE {cond} AND {} ORDER BY m.id DESC LIMIT $4",
        engine.row_matches
    );
    let mut q = start(&sql, req, text, want);
    for id in [floor, before].into_iter().flatten() {
        q = q.bind(id.0);
    }
    read_hits(tx, q, req.within).await
}

/// The newest `want` matches the caller may read below `before`, every match read through the
/// index and sorted by id (a rare word, or what the walk did not find).
async fn sorted(
    tx: &mut Tx,
    req: &SearchRequest<'_>,
    engine: &SearchSql,
    text: &str,
    before: Option<MessageId>,
    want: i64,
) -> StoreResult<Vec<SearchHit>> {
    let SearchSql { from, matches, .. } = engine;
    let first = if before.is_some() { 6 } else { 5 };
    let (joins, cond) = readable(req.within, first, "JOIN");
    let cursor = if before.is_some() {
        "AND m.id < $5"
    } else {
        ""
    };
    let sql = format!(
        "SELECT {MESSAGE_COLS}, CAST(0 AS DOUBLE PRECISION) AS score FROM {from} {joins} \
         WHERE {matches} AND {cond} {cursor} ORDER BY m.id DESC LIMIT $4"
    );
    let mut q = start(&sql, req, text, want);
    if let Some(id) = before {
        q = q.bind(id.0);
    }
    read_hits(tx, q, req.within).await
}
