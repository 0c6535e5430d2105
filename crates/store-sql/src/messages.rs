//! Messages: sequence numbers, idempotent inserts that claim their attachments, edits with
//! history and tombstones (which take the message's files with them).

use super::*;
use audit::append_audit_in;
use std::collections::{HashMap, HashSet};

/// Message `id` without its attachments.
async fn message_row(conn: &mut Conn, id: MessageId) -> StoreResult<Message> {
    MESSAGES.one(&mut *conn, "WHERE m.id = $1", id.0).await
}

/// Message `id` with its attachments.
async fn load_message(conn: &mut Conn, id: MessageId) -> StoreResult<Message> {
    let message = message_row(conn, id).await?;
    let mut one = with_attachments(&mut *conn, vec![message]).await?;
    one.pop().ok_or(StoreError::NotFound)
}

/// The message and fingerprint stored under an idempotency key, if any.
async fn idempotent_original(
    conn: &mut Conn,
    msg: &NewMessage,
    key: &IdempotencyKey,
) -> StoreResult<Option<(Message, String)>> {
    let stored = sqlx::query(
        "SELECT message_id, fingerprint FROM idempotency_keys \
         WHERE author_id = $1 AND conversation_id = $2 AND key = $3",
    )
    .bind(msg.author_id.0)
    .bind(msg.conversation_id.0)
    .bind(key.as_str())
    .opt(&mut *conn, |r| {
        Ok((MessageId(get(r, "message_id")?), get(r, "fingerprint")?))
    })
    .await?;
    let Some((id, fingerprint)) = stored else {
        return Ok(None);
    };
    Ok(Some((load_message(conn, id).await?, fingerprint)))
}

/// Forgets the author's key in the conversation if it is older than the window.
async fn forget_stale_key(
    conn: &mut Conn,
    msg: &NewMessage,
    key: &IdempotencyKey,
) -> StoreResult<()> {
    sqlx::query(
        "DELETE FROM idempotency_keys WHERE author_id = $1 AND conversation_id = $2 \
         AND key = $3 AND created_at < $4",
    )
    .bind(msg.author_id.0)
    .bind(msg.conversation_id.0)
    .bind(key.as_str())
    .bind(ts(msg.idempotency_since))
    .run(&mut *conn)
    .await?;
    Ok(())
}

/// Deletes the versions of message `id` older than its newest [`KEPT_VERSIONS`] (ids are
/// time-ordered: the order the versions were replaced in). Nothing when it has no more.
async fn forget_old_versions(conn: &mut Conn, id: MessageId) -> StoreResult<()> {
    sqlx::query(
        "DELETE FROM message_versions WHERE message_id = $1 AND id < (SELECT id \
         FROM message_versions WHERE message_id = $1 ORDER BY id DESC LIMIT 1 OFFSET $2)",
    )
    .bind(id.0)
    .bind(KEPT_VERSIONS - 1)
    .run(&mut *conn)
    .await?;
    Ok(())
}

/// `($1, …, $width), ($width+1, …)`: `rows` tuples of bind parameters for a multi-row insert,
/// the statement's only parameters. On SQLite they are anonymous `?`s (bound in order): SQLite
/// finds a named parameter's name by a linear scan and sqlx asks the name of each one it binds,
/// so a batch of 128 messages (1,152 parameters) spent more on naming than on inserting.
fn tuples(rows: usize, width: usize) -> String {
    let tuple = |r: usize| {
        if crate::ANONYMOUS_PARAMETERS {
            vec!["?"; width].join(", ")
        } else {
            placeholders(r * width + 1, width)
        }
    };
    (0..rows)
        .map(|r| format!("({})", tuple(r)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Inserts each message at its `seq` with one statement.
async fn insert_rows(conn: &mut Conn, rows: &[(&NewMessage, i64)]) -> StoreResult<()> {
    let sql = format!(
        "INSERT INTO messages (id, conversation_id, seq, author_id, content, format, reply_to, \
         created_at, status) VALUES {}",
        tuples(rows.len(), 9)
    );
    let mut q = sqlx::query(&sql);
    for (msg, seq) in rows {
        q = q
            .bind(msg.id.0)
            .bind(msg.conversation_id.0)
            .bind(*seq)
            .bind(msg.author_id.0)
            .bind(msg.content.as_str())
            .bind(msg.format.as_str())
            .bind(msg.reply_to.map(|r| r.0))
            .bind(ts(msg.created_at))
            .bind(msg.status.as_str());
    }
    q.run(&mut *conn).await?;
    Ok(())
}

/// Stores the idempotency key of each (keyed) message with one statement; the error as it
/// came, so a unique violation (a concurrent use of a key) can be told apart.
async fn insert_keys(conn: &mut Conn, keyed: &[&NewMessage]) -> Result<(), sqlx::Error> {
    let sql = format!(
        "INSERT INTO idempotency_keys (author_id, conversation_id, key, message_id, \
         fingerprint, created_at) VALUES {}",
        tuples(keyed.len(), 6)
    );
    let mut q = sqlx::query(&sql);
    for msg in keyed {
        let Some((key, fingerprint)) = &msg.idempotency else {
            continue;
        };
        q = q
            .bind(msg.author_id.0)
            .bind(msg.conversation_id.0)
            .bind(key.as_str())
            .bind(msg.id.0)
            .bind(fingerprint.as_str())
            .bind(ts(msg.created_at));
    }
    q.execute(&mut *conn).await?;
    Ok(())
}

/// The summaries of `authors`, by id, with one query (a missing user has none).
async fn author_summaries(
    conn: &mut Conn,
    authors: Vec<UserId>,
) -> StoreResult<HashMap<UserId, UserSummary>> {
    let mut ids: Vec<uuid::Uuid> = authors.into_iter().map(|a| a.0).collect();
    ids.sort_unstable();
    ids.dedup();
    let select = |list: &str| {
        format!(
            "SELECT id AS su_id, username AS su_username, display_name AS su_display_name, \
             kind AS su_kind FROM users WHERE id IN ({list})"
        )
    };
    let found = select_in(&mut *conn, ids.into_iter(), select, summary_from_row).await?;
    Ok(found.into_iter().map(|u| (u.id, u)).collect())
}

/// AZ-2, AZ-3: of the (conversation, author) `pairs`, those whose author may write there now —
/// a participant of the conversation and a member of its org who is no Viewer, the
/// conversation not archived — read inside the write's transaction after the conversations'
/// rows are locked (their `seq` counters advanced, or the message's row locked for an edit).
/// The service asked the policy before, but a send then waits for its guards (remote ones for
/// seconds): a removal, demotion or archival made meanwhile is seen here. On PostgreSQL the
/// participant and member rows are share-locked too, so a removal or demotion that starts
/// meanwhile waits for the write (which then counts as made before it); an archival waits on
/// the conversation's row. SQLite's one writer orders them already.
async fn still_writers(
    conn: &mut Conn,
    pairs: &[(ConversationId, UserId)],
) -> StoreResult<HashSet<(ConversationId, UserId)>> {
    if pairs.is_empty() {
        return Ok(HashSet::new());
    }
    let lock = postgres_only(" FOR SHARE OF p, m");
    // Exactly the pairs asked about, each found by the keys (a scan of the pairs, then a
    // lookup per table), not every participant of the conversations among the authors.
    let values: Vec<String> = (0..pairs.len())
        .map(|k| format!("(${}, ${})", 2 * k + 1, 2 * k + 2))
        .collect();
    let sql = format!(
        "WITH asked (conversation_id, user_id) AS (VALUES {}) \
         SELECT p.conversation_id, p.user_id FROM asked a \
         JOIN participants p ON p.conversation_id = a.conversation_id \
         AND p.user_id = a.user_id \
         JOIN conversations c ON c.id = p.conversation_id \
         JOIN org_members m ON m.org_id = c.org_id AND m.user_id = p.user_id \
         WHERE NOT c.archived AND m.role <> 'viewer'{lock}",
        values.join(", "),
    );
    let mut q = sqlx::query(&sql);
    for (conv, user) in pairs {
        q = q.bind(conv.0).bind(user.0);
    }
    let found = q
        .all(&mut *conn, |r| {
            Ok((
                ConversationId(get(r, "conversation_id")?),
                UserId(get(r, "user_id")?),
            ))
        })
        .await?;
    Ok(found.into_iter().collect())
}

/// Whether every one of `pairs` may write now ([`still_writers`]).
async fn all_still_write(conn: &mut Conn, pairs: &[(ConversationId, UserId)]) -> StoreResult<bool> {
    let mut distinct = pairs.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    let may = still_writers(conn, &distinct).await?;
    Ok(distinct.iter().all(|p| may.contains(p)))
}

/// The message as stored by [`insert_rows`] (what reading it back would give).
fn stored(msg: &NewMessage, seq: i64, author: UserSummary, attachments: Vec<FileInfo>) -> Message {
    Message {
        id: msg.id,
        conversation_id: msg.conversation_id,
        seq,
        author,
        content: Some(msg.content.clone()),
        format: msg.format,
        created_at: ts(msg.created_at),
        edited_at: None,
        deleted_at: None,
        reply_to: msg.reply_to,
        attachments,
        status: msg.status,
        status_reason: None,
    }
}

/// A send with its audit rows, as the writer hands it over.
type Queued = (NewMessage, Vec<AuditEntry>);

/// A batch that did not commit: whatever the reason (a deferred constraint, the connection),
/// it is the server's failure, not a missing row.
fn commit_failed(e: sqlx::Error) -> StoreError {
    StoreError::Backend(format!("committing a batch of sends: {e}"))
}

/// The same failure for each of `n` senders.
fn each(n: usize, e: &StoreError) -> Vec<StoreResult<Inserted>> {
    (0..n)
        .map(|_| {
            Err(match e {
                StoreError::NotFound => StoreError::NotFound,
                StoreError::Conflict(c) => StoreError::Conflict(*c),
                StoreError::Backend(t) => StoreError::Backend(t.clone()),
                StoreError::Busy => StoreError::Busy,
            })
        })
        .collect()
}

/// Stores one batch of sends in one transaction (see `batch`) and answers each, in order.
/// First all together, with a few statements for the whole batch; if anything there fails
/// or a message has to be refused after being written (an attachment it cannot claim, a key
/// stored meanwhile by another node), that transaction is rolled back and the batch is
/// written again with one savepoint per message, so a refusal takes back only its own
/// message. If the transaction cannot begin or commit, every sender gets the error.
pub(super) async fn write_batch(s: &Backend, sends: &[Queued]) -> Vec<StoreResult<Inserted>> {
    let written = match together(s, sends).await {
        Ok(Some(answers)) => Ok(answers),
        Ok(None) => one_by_one(s, sends).await,
        Err(e) => Err(e),
    };
    written.unwrap_or_else(|e| each(sends.len(), &e))
}

/// The batch in one transaction, all messages together; `None` (rolled back) when it has to
/// be written message by message.
async fn together(
    s: &Backend,
    sends: &[Queued],
) -> StoreResult<Option<Vec<StoreResult<Inserted>>>> {
    let mut tx = s
        .writer()
        .begin_with(crate::BEGIN_SENDS)
        .await
        .map_err(db)?;
    match stage_together(&mut tx, s, sends).await {
        Ok(Some(answers)) => {
            tx.commit().await.map_err(commit_failed)?;
            Ok(Some(answers))
        }
        outcome => {
            if let Err(e) = outcome {
                tracing::debug!(error = %e, "a batch is written again message by message");
            }
            tx.rollback().await.map_err(db)?;
            Ok(None)
        }
    }
}

/// Stages the batch with one statement per step for all its messages: replays answered,
/// authors read, each conversation's `seq` advanced once, the rows, keys, claims and audit
/// rows written. `None` when a message would have to be taken back.
async fn stage_together(
    conn: &mut Conn,
    s: &Backend,
    sends: &[Queued],
) -> StoreResult<Option<Vec<StoreResult<Inserted>>>> {
    let mut answers: Vec<Option<StoreResult<Inserted>>> = sends.iter().map(|_| None).collect();
    // Replays first: nothing of theirs is written. The writer never puts two uses of one
    // key into one batch.
    for ((msg, _), answer) in sends.iter().zip(answers.iter_mut()) {
        if let Some((key, _)) = &msg.idempotency {
            forget_stale_key(conn, msg, key).await?;
            if let Some((original, print)) = idempotent_original(conn, msg, key).await? {
                *answer = Some(Ok(Inserted::Replayed(original, print)));
            }
        }
    }
    let named = pending(&answers)
        .into_iter()
        .map(|i| sends[i].0.author_id)
        .collect();
    let authors = author_summaries(conn, named).await?;
    // Each conversation's counter advances once, by its number of messages.
    let mut counts: Vec<(ConversationId, i64)> = Vec::new();
    for i in pending(&answers) {
        let msg = &sends[i].0;
        if !authors.contains_key(&msg.author_id) {
            answers[i] = Some(Err(StoreError::NotFound));
            continue;
        }
        match counts.iter_mut().find(|(c, _)| *c == msg.conversation_id) {
            Some((_, n)) => *n += 1,
            None => counts.push((msg.conversation_id, 1)),
        }
    }
    let mut next: HashMap<ConversationId, i64> = HashMap::new();
    if !counts.is_empty() {
        let whens: Vec<String> = (0..counts.len())
            .map(|k| format!("WHEN ${} THEN ${}", 2 * k + 1, 2 * k + 2))
            .collect();
        let ids: Vec<String> = (0..counts.len())
            .map(|k| format!("${}", 2 * k + 1))
            .collect();
        let sql = format!(
            "UPDATE conversations SET last_seq = last_seq + CASE id {} END WHERE id IN ({}) \
             RETURNING id, last_seq",
            whens.join(" "),
            ids.join(", ")
        );
        let mut q = sqlx::query(&sql);
        for (conv, n) in &counts {
            q = q.bind(conv.0).bind(*n);
        }
        let last = q
            .all(&mut *conn, |r| {
                Ok((ConversationId(get(r, "id")?), get::<i64>(r, "last_seq")?))
            })
            .await?;
        for (conv, last) in last {
            let n = counts
                .iter()
                .find(|(c, _)| *c == conv)
                .map_or(0, |(_, n)| *n);
            next.insert(conv, last - n + 1);
        }
    }
    // Each author still writes there, now that the conversations' rows are held; if one no
    // longer does, the batch is written again message by message, which refuses only theirs.
    let pairs: Vec<(ConversationId, UserId)> = pending(&answers)
        .into_iter()
        .map(|i| (sends[i].0.conversation_id, sends[i].0.author_id))
        .collect();
    if !all_still_write(conn, &pairs).await? {
        return Ok(None);
    }
    let mut rows: Vec<(usize, i64)> = Vec::new();
    for i in pending(&answers) {
        match next.get_mut(&sends[i].0.conversation_id) {
            Some(seq) => {
                rows.push((i, *seq));
                *seq += 1;
            }
            None => answers[i] = Some(Err(StoreError::NotFound)),
        }
    }
    if !rows.is_empty() {
        let messages: Vec<(&NewMessage, i64)> =
            rows.iter().map(|&(i, seq)| (&sends[i].0, seq)).collect();
        insert_rows(conn, &messages).await?;
        let keyed: Vec<&NewMessage> = messages
            .iter()
            .map(|(m, _)| *m)
            .filter(|m| m.idempotency.is_some())
            .collect();
        if !keyed.is_empty() {
            insert_keys(conn, &keyed).await.map_err(db)?;
        }
        let mut audit: Vec<AuditEntry> = Vec::new();
        for &(i, seq) in &rows {
            let (msg, entries) = &sends[i];
            let Some(files) = claim_files(conn, msg).await? else {
                return Ok(None);
            };
            audit.extend(entries.iter().cloned());
            let author = authors
                .get(&msg.author_id)
                .cloned()
                .ok_or(StoreError::NotFound)?;
            answers[i] = Some(Ok(Inserted::Created(stored(msg, seq, author, files))));
        }
        append_audit_in(conn, s, &audit).await?;
    }
    Ok(Some(
        answers
            .into_iter()
            .map(|a| a.unwrap_or(Err(StoreError::NotFound)))
            .collect(),
    ))
}

/// The sends of a batch not answered yet, by index.
fn pending(answers: &[Option<StoreResult<Inserted>>]) -> Vec<usize> {
    (0..answers.len())
        .filter(|&i| answers[i].is_none())
        .collect()
}

/// Runs a savepoint statement of [`one_by_one`].
async fn savepoint(conn: &mut Conn, sql: &'static str) -> StoreResult<()> {
    sqlx::query(sql).run(&mut *conn).await?;
    Ok(())
}

/// What storing one message inside its savepoint came to.
enum Staged {
    Created(Message),
    /// Answered without storing anything (a replay, attachments refused).
    Refused(Inserted),
    /// Another transaction stored the idempotency key after our look-up: theirs stands.
    KeyTaken,
}

/// The batch in one transaction with a savepoint per message: a message that is refused or
/// fails is rolled back to its savepoint and the others stay.
async fn one_by_one(s: &Backend, sends: &[Queued]) -> StoreResult<Vec<StoreResult<Inserted>>> {
    let mut tx = s
        .writer()
        .begin_with(crate::BEGIN_SENDS)
        .await
        .map_err(db)?;
    let named = sends.iter().map(|(m, _)| m.author_id).collect();
    let authors = author_summaries(&mut tx, named).await?;
    let mut answers = Vec::with_capacity(sends.len());
    for (msg, audit) in sends {
        savepoint(&mut tx, "SAVEPOINT send").await?;
        let staged = stage_one(&mut tx, s, msg, audit, &authors).await;
        if let Ok(Staged::Created(_)) = staged {
            savepoint(&mut tx, "RELEASE SAVEPOINT send").await?;
        } else {
            savepoint(&mut tx, "ROLLBACK TO SAVEPOINT send").await?;
            savepoint(&mut tx, "RELEASE SAVEPOINT send").await?;
        }
        answers.push(match staged {
            Ok(Staged::Created(m)) => Ok(Inserted::Created(m)),
            Ok(Staged::Refused(answer)) => Ok(answer),
            Ok(Staged::KeyTaken) => {
                let Some((key, _)) = &msg.idempotency else {
                    unreachable!("only a keyed message takes a key");
                };
                match idempotent_original(&mut tx, msg, key).await? {
                    Some((original, print)) => Ok(Inserted::Replayed(original, print)),
                    None => Err(StoreError::Backend(
                        "idempotency key taken, then gone".into(),
                    )),
                }
            }
            Err(e) => Err(e),
        });
    }
    tx.commit().await.map_err(commit_failed)?;
    Ok(answers)
}

/// One message, as the single send it was before group commit: the conversation's counter
/// first (in PostgreSQL its row lock, so uses of one key run one after the other), then the
/// replay check, the row, the key, the claim and the audit rows.
async fn stage_one(
    conn: &mut Conn,
    s: &Backend,
    msg: &NewMessage,
    audit: &[AuditEntry],
    authors: &HashMap<UserId, UserSummary>,
) -> StoreResult<Staged> {
    let seq: i64 = sqlx::query(
        "UPDATE conversations SET last_seq = last_seq + 1 WHERE id = $1 RETURNING last_seq",
    )
    .bind(msg.conversation_id.0)
    .one(&mut *conn, |r| get(r, "last_seq"))
    .await?;
    if !all_still_write(conn, &[(msg.conversation_id, msg.author_id)]).await? {
        return Err(StoreError::NotFound);
    }
    if let Some((key, _)) = &msg.idempotency {
        forget_stale_key(conn, msg, key).await?;
        if let Some((original, print)) = idempotent_original(conn, msg, key).await? {
            return Ok(Staged::Refused(Inserted::Replayed(original, print)));
        }
    }
    let author = authors
        .get(&msg.author_id)
        .cloned()
        .ok_or(StoreError::NotFound)?;
    insert_rows(conn, &[(msg, seq)]).await?;
    if msg.idempotency.is_some() {
        match insert_keys(conn, &[msg]).await {
            Ok(()) => {}
            Err(e) if is_unique_violation(&e) => return Ok(Staged::KeyTaken),
            Err(e) => return Err(db(e)),
        }
    }
    let Some(files) = claim_files(conn, msg).await? else {
        return Ok(Staged::Refused(Inserted::AttachmentsRefused));
    };
    append_audit_in(conn, s, audit).await?;
    Ok(Staged::Created(stored(msg, seq, author, files)))
}

#[async_trait]
impl MessageStore for Backend {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn insert_message(
        &self,
        msg: &NewMessage,
        audit: &[AuditEntry],
    ) -> StoreResult<Inserted> {
        // Group commit: the conversation's writer stores it with whatever else is queued.
        self.writers().send(self, msg.clone(), audit.to_vec()).await
    }

    async fn message(&self, id: MessageId) -> StoreResult<Message> {
        let mut conn = self.reader().acquire().await.map_err(db)?;
        load_message(&mut conn, id).await
    }

    async fn messages(&self, conv: ConversationId, page: Page<i64>) -> StoreResult<Vec<Message>> {
        let k = keyset(page.cursor, "m.seq", 3);
        let sql = MESSAGES.select(&format!(
            "WHERE m.conversation_id = $1 {} ORDER BY m.seq {} LIMIT $2",
            k.cond, k.order
        ));
        let q = sqlx::query(&sql).bind(conv.0).bind(limit(page.limit));
        let page = k
            .bind_key(q, |key| key)
            .all(self.reader(), message_from_row)
            .await?;
        with_attachments(self.reader(), page).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn edit_message(
        &self,
        edit: &MessageEdit<'_>,
        audit: &[AuditEntry],
    ) -> StoreResult<Message> {
        let id = edit.id;
        let mut tx = self.writer().begin().await.map_err(db)?;
        // Lock the row first so concurrent edits each keep the version they replace.
        // A deleted message has no content to keep and cannot be edited, nor can an answer
        // still streaming (AGENT-3).
        let (conv, author) = sqlx::query(
            "UPDATE messages SET edited_at = edited_at WHERE id = $1 AND deleted_at IS NULL \
             AND status <> 'streaming' RETURNING conversation_id, author_id",
        )
        .bind(id.0)
        .one(&mut *tx, |r| {
            Ok((
                ConversationId(get(r, "conversation_id")?),
                UserId(get(r, "author_id")?),
            ))
        })
        .await?;
        // Its author still writes there (see `still_writers`): an edit waits for its guards too.
        if !all_still_write(&mut tx, &[(conv, author)]).await? {
            return Err(StoreError::NotFound);
        }
        sqlx::query(
            "INSERT INTO message_versions (id, message_id, content, format, written_at, \
             replaced_at) SELECT $1, id, content, format, COALESCE(edited_at, created_at), $3 \
             FROM messages WHERE id = $2",
        )
        .bind(MessageVersionId::new().0)
        .bind(id.0)
        .bind(ts(edit.at))
        .run(&mut *tx)
        .await?;
        forget_old_versions(&mut tx, id).await?;
        sqlx::query("UPDATE messages SET content = $2, format = $3, edited_at = $4 WHERE id = $1")
            .bind(id.0)
            .bind(edit.content)
            .bind(edit.format.as_str())
            .bind(ts(edit.at))
            .run(&mut *tx)
            .await?;
        let message = load_message(&mut tx, id).await?;
        commit_audited(tx, self, audit).await?;
        Ok(message)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn delete_message(
        &self,
        id: MessageId,
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> StoreResult<(Message, FreedBlobs)> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        // A streaming answer deleted is stopped with it, so its stream's next write finds it
        // ended (AGENT-3).
        sqlx::query(
            "UPDATE messages SET content = NULL, deleted_at = COALESCE(deleted_at, $2), \
             status_reason = CASE WHEN status = 'streaming' THEN 'deleted' \
             ELSE status_reason END, \
             status = CASE WHEN status = 'streaming' THEN 'stopped' ELSE status END \
             WHERE id = $1",
        )
        .bind(id.0)
        .bind(ts(at))
        .change(&mut *tx)
        .await?;
        // The content is gone, earlier versions, attached files and webhook bodies included.
        sqlx::query("DELETE FROM message_versions WHERE message_id = $1")
            .bind(id.0)
            .run(&mut *tx)
            .await?;
        super::webhooks::redact_deliveries(&mut tx, at, "message_id = $2", id.0).await?;
        let files = format!("DELETE FROM files WHERE message_id = $1 {REMOVED_FILE}");
        let freed = remove_files(&mut tx, sqlx::query(&files).bind(id.0)).await?;
        let message = message_row(&mut tx, id).await?;
        commit_audited(tx, self, audit).await?;
        Ok((message, freed))
    }

    async fn message_history(
        &self,
        id: MessageId,
        page: Page<MessageVersionId>,
    ) -> StoreResult<Vec<MessageVersion>> {
        let mut conn = self.reader().acquire().await.map_err(db)?;
        sqlx::query("SELECT id FROM messages WHERE id = $1")
            .bind(id.0)
            .one(&mut *conn, |_| Ok(()))
            .await?;
        let k = keyset(page.cursor, "id", 3);
        let sql = format!(
            "SELECT id, message_id, content, format, written_at, replaced_at \
             FROM message_versions WHERE message_id = $1 {} ORDER BY id {} LIMIT $2",
            k.cond, k.order
        );
        let q = sqlx::query(&sql).bind(id.0).bind(limit(page.limit));
        k.bind_key(q, |key| key.0)
            .all(&mut *conn, version_from_row)
            .await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn prune_idempotency_keys(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        prune_before(self, "idempotency_keys", "created_at", before).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn change_stream(
        &self,
        change: &StreamChange<'_>,
        audit: &[AuditEntry],
    ) -> StoreResult<bool> {
        let changed = sqlx::query(
            "UPDATE messages SET content = COALESCE($2, content), status = $3, \
             status_reason = $4 WHERE id = $1 AND status = 'streaming' AND deleted_at IS NULL",
        )
        .bind(change.id.0)
        .bind(change.content)
        .bind(change.status.as_str())
        .bind(change.reason)
        .run_audited(self, audit)
        .await?;
        Ok(changed > 0)
    }

    async fn abandoned_streams(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<MessageId>> {
        sqlx::query(
            "SELECT id FROM messages WHERE status = 'streaming' AND created_at < $1 \
             ORDER BY created_at LIMIT $2",
        )
        .bind(ts(before))
        .bind(i64::from(limit))
        .all(self.reader(), |r| Ok(MessageId(get(r, "id")?)))
        .await
    }
}
