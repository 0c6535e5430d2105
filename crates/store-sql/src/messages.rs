//! Messages: sequence numbers, idempotent inserts, edits with history and tombstones.

use super::*;

async fn load_message(conn: &mut Conn, id: MessageId) -> StoreResult<Message> {
    let row = sqlx::query(&format!(
        "SELECT {MESSAGE_COLS} FROM messages m JOIN users u ON u.id = m.author_id \
         WHERE m.id = $1"
    ))
    .bind(id.0)
    .fetch_one(&mut *conn)
    .await
    .map_err(db)?;
    message_from_row(&row)
}

/// The message and fingerprint stored under an idempotency key, if any.
async fn idempotent_original(
    conn: &mut Conn,
    msg: &NewMessage,
    key: &IdempotencyKey,
) -> StoreResult<Option<(Message, String)>> {
    let row = sqlx::query(
        "SELECT message_id, fingerprint FROM idempotency_keys \
         WHERE author_id = $1 AND conversation_id = $2 AND key = $3",
    )
    .bind(msg.author_id.0)
    .bind(msg.conversation_id.0)
    .bind(key.as_str())
    .fetch_optional(&mut *conn)
    .await
    .map_err(db)?;
    let Some(row) = row else { return Ok(None) };
    let id: uuid::Uuid = get(&row, "message_id")?;
    let fingerprint: String = get(&row, "fingerprint")?;
    Ok(Some((
        load_message(conn, MessageId(id)).await?,
        fingerprint,
    )))
}

#[async_trait]
impl MessageStore for Backend {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn insert_message(
        &self,
        msg: &NewMessage,
        audit: &[AuditEntry],
    ) -> StoreResult<Inserted> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        // Writing first takes SQLite's write lock at once and, in PostgreSQL, the
        // conversation's row lock, so inserts into one conversation (and uses of one key)
        // run one after the other. A replay rolls the increment back.
        let row = sqlx::query(
            "UPDATE conversations SET last_seq = last_seq + 1 WHERE id = $1 RETURNING last_seq",
        )
        .bind(msg.conversation_id.0)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?
        .ok_or(StoreError::NotFound)?;
        let seq: i64 = get(&row, "last_seq")?;
        if let Some((key, _)) = &msg.idempotency {
            sqlx::query(
                "DELETE FROM idempotency_keys WHERE author_id = $1 AND conversation_id = $2 \
                 AND key = $3 AND created_at < $4",
            )
            .bind(msg.author_id.0)
            .bind(msg.conversation_id.0)
            .bind(key.as_str())
            .bind(ts(msg.idempotency_since))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            if let Some((original, fingerprint)) = idempotent_original(&mut tx, msg, key).await? {
                tx.rollback().await.map_err(db)?;
                return Ok(Inserted::Replayed(original, fingerprint));
            }
        }
        sqlx::query(
            "INSERT INTO messages (id, conversation_id, seq, author_id, content, format, \
             reply_to, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(msg.id.0)
        .bind(msg.conversation_id.0)
        .bind(seq)
        .bind(msg.author_id.0)
        .bind(msg.content.as_str())
        .bind(msg.format.as_str())
        .bind(msg.reply_to.map(|r| r.0))
        .bind(ts(msg.created_at))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        if let Some((key, fingerprint)) = &msg.idempotency {
            let stored = sqlx::query(
                "INSERT INTO idempotency_keys (author_id, conversation_id, key, message_id, \
                 fingerprint, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(msg.author_id.0)
            .bind(msg.conversation_id.0)
            .bind(key.as_str())
            .bind(msg.id.0)
            .bind(fingerprint.as_str())
            .bind(ts(msg.created_at))
            .execute(&mut *tx)
            .await;
            match stored {
                Ok(_) => {}
                Err(e) if is_unique_violation(&e) => {
                    // Stored by a concurrent insert after our look-up: theirs stands.
                    drop(tx);
                    let mut conn = self.reader().acquire().await.map_err(db)?;
                    return match idempotent_original(&mut conn, msg, key).await? {
                        Some((original, fingerprint)) => {
                            Ok(Inserted::Replayed(original, fingerprint))
                        }
                        None => Err(db(e)),
                    };
                }
                Err(e) => return Err(db(e)),
            }
        }
        let message = load_message(&mut tx, msg.id).await?;
        commit_audited(tx, self, audit).await?;
        Ok(Inserted::Created(message))
    }

    async fn message(&self, id: MessageId) -> StoreResult<Message> {
        let mut conn = self.reader().acquire().await.map_err(db)?;
        load_message(&mut conn, id).await
    }

    async fn messages(&self, conv: ConversationId, page: Page<i64>) -> StoreResult<Vec<Message>> {
        let k = keyset(page.cursor, "m.seq", 3);
        let sql = format!(
            "SELECT {MESSAGE_COLS} FROM messages m JOIN users u ON u.id = m.author_id \
             WHERE m.conversation_id = $1 {} ORDER BY m.seq {} LIMIT $2",
            k.cond, k.order
        );
        let q = k.bind_key(
            sqlx::query(&sql).bind(conv.0).bind(limit(page.limit)),
            |key| key,
        );
        let rows = q.fetch_all(self.reader()).await.map_err(db)?;
        rows.iter().map(message_from_row).collect()
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn edit_message(
        &self,
        id: MessageId,
        content: &str,
        format: MessageFormat,
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> StoreResult<Message> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        // Lock the row first so concurrent edits each keep the version they replace.
        // A deleted message has no content to keep and cannot be edited.
        let locked = sqlx::query(
            "UPDATE messages SET edited_at = edited_at WHERE id = $1 AND deleted_at IS NULL",
        )
        .bind(id.0)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        if locked.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        sqlx::query(
            "INSERT INTO message_versions (id, message_id, content, format, written_at, \
             replaced_at) SELECT $1, id, content, format, COALESCE(edited_at, created_at), $3 \
             FROM messages WHERE id = $2",
        )
        .bind(MessageVersionId::new().0)
        .bind(id.0)
        .bind(ts(at))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        sqlx::query("UPDATE messages SET content = $2, format = $3, edited_at = $4 WHERE id = $1")
            .bind(id.0)
            .bind(content)
            .bind(format.as_str())
            .bind(ts(at))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
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
    ) -> StoreResult<Message> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        let done = sqlx::query(
            "UPDATE messages SET content = NULL, deleted_at = COALESCE(deleted_at, $2) \
             WHERE id = $1",
        )
        .bind(id.0)
        .bind(ts(at))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        // The content is gone, earlier versions included.
        sqlx::query("DELETE FROM message_versions WHERE message_id = $1")
            .bind(id.0)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let message = load_message(&mut tx, id).await?;
        commit_audited(tx, self, audit).await?;
        Ok(message)
    }

    async fn message_history(&self, id: MessageId) -> StoreResult<Vec<MessageVersion>> {
        let mut conn = self.reader().acquire().await.map_err(db)?;
        let exists = sqlx::query("SELECT id FROM messages WHERE id = $1")
            .bind(id.0)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db)?;
        if exists.is_none() {
            return Err(StoreError::NotFound);
        }
        let rows = sqlx::query(
            "SELECT id, message_id, content, format, written_at, replaced_at \
             FROM message_versions WHERE message_id = $1 ORDER BY written_at, id",
        )
        .bind(id.0)
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
        rows.iter().map(version_from_row).collect()
    }
}
