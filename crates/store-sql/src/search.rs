//! Full-text search of messages (MSG-6). The index is the backend's own (see each backend's
//! `0014_search.sql`): SQLite's FTS5 table `message_search`, kept by triggers on `messages`,
//! and PostgreSQL's generated `messages.search` `tsvector` with its GIN index — both written
//! by the statement that inserts, edits, tombstones or deletes the message, so always in that
//! statement's transaction, whichever path (group commit, edit, retention, erasure) ran it.
//! An agent's answer is indexed once, with its final text, when it stops streaming
//! (`0022_search_final_text.sql`): its text so far is not searchable.
//! The crate's `SEARCH` says how its engine is asked; the rest of the query is shared,
//! including who may read what: the caller's participant row and org-member row are joined
//! in the query itself, so a page never holds a message they could not list.

use super::*;

/// How a backend's full-text engine is asked (`$1` is the bound query text).
pub(crate) struct SearchSql {
    /// What the hits are read from, `messages m` included.
    pub(crate) from: &'static str,
    /// The condition that the message matches `$1`.
    pub(crate) matches: &'static str,
    /// A message's score (a double; lower is a better match).
    pub(crate) score: &'static str,
    /// The query text bound as `$1`, from words that each hold a letter or digit.
    pub(crate) query: fn(&[&str]) -> String,
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

async fn search(
    s: &Backend,
    req: &SearchRequest<'_>,
    engine: &SearchSql,
) -> StoreResult<Vec<SearchHit>> {
    let words = req.text.words();
    if words.is_empty() || req.within.is_some_and(<[_]>::is_empty) {
        return Ok(Vec::new());
    }
    let SearchSql {
        from,
        matches,
        score,
        query,
    } = engine;
    // $1 the query, $2 the user, $3 the org, $4 the limit; then the cursor, then the list.
    let mut n = 4;
    let mut next = || {
        n += 1;
        format!("${n}")
    };
    let (after, order) = match req.from {
        SearchFrom::Relevance(None) => (String::new(), "score ASC, id DESC"),
        SearchFrom::Relevance(Some(_)) => {
            let (score, id) = (next(), next());
            (
                format!("WHERE (score > {score} OR (score = {score} AND id < {id}))"),
                "score ASC, id DESC",
            )
        }
        SearchFrom::Newest(None) => (String::new(), "id DESC"),
        SearchFrom::Newest(Some(_)) => (format!("WHERE id < {}", next()), "id DESC"),
    };
    let within = match req.within {
        Some(list) => {
            let ids: Vec<String> = list.iter().map(|_| next()).collect();
            format!("AND m.conversation_id IN ({})", ids.join(", "))
        }
        None => String::new(),
    };
    let sql = format!(
        "SELECT * FROM (SELECT {MESSAGE_COLS}, {score} AS score FROM {from} \
         JOIN users u ON u.id = m.author_id \
         JOIN conversations c ON c.id = m.conversation_id \
         JOIN participants p ON p.conversation_id = m.conversation_id AND p.user_id = $2 \
         JOIN org_members om ON om.org_id = c.org_id AND om.user_id = $2 \
         WHERE {matches} AND c.org_id = $3 AND m.deleted_at IS NULL \
         AND m.content IS NOT NULL {within}) hits {after} ORDER BY {order} LIMIT $4"
    );
    let mut q = sqlx::query(&sql)
        .bind(query(&words))
        .bind(req.user.0)
        .bind(req.org.0)
        .bind(limit(req.limit));
    q = match req.from {
        SearchFrom::Relevance(Some((score, id))) => q.bind(score).bind(id.0),
        SearchFrom::Newest(Some(id)) => q.bind(id.0),
        SearchFrom::Relevance(None) | SearchFrom::Newest(None) => q,
    };
    for conv in req.within.unwrap_or_default() {
        q = q.bind(conv.0);
    }
    let hits = q.all(s.reader(), hit_from_row).await?;
    let (messages, scores): (Vec<Message>, Vec<f64>) =
        hits.into_iter().map(|h| (h.message, h.score)).unzip();
    let messages = with_attachments(s.reader(), messages).await?;
    Ok(messages
        .into_iter()
        .zip(scores)
        .map(|(message, score)| SearchHit { message, score })
        .collect())
}
