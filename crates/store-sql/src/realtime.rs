//! What the real-time gateway needs: read markers and unread counts, id lists for fan-out, and
//! the resume state of gateway sessions.

use super::*;

const GATEWAY_SESSION_COLS: &str =
    "id, user_id, auth_session_id, last_s, position, epoch, conversations, saved_at";

/// The conversation list as a JSON array of uuid strings (the same text in both
/// backends).
fn conversations_json(ids: &[ConversationId]) -> StoreResult<String> {
    serde_json::to_string(ids)
        .map_err(|e| StoreError::Backend(format!("encoding conversations: {e}")))
}

fn gateway_session_from_row(row: &Row) -> StoreResult<GatewaySession> {
    let conversations: String = get(row, "conversations")?;
    Ok(from_columns!(row, GatewaySession {
        id, last_s, position, epoch, saved_at;
        user_id: UserId(get(row, "user_id")?),
        auth_session_id: SessionId(get(row, "auth_session_id")?),
        conversations: serde_json::from_str(&conversations)
            .map_err(|e| StoreError::Backend(format!("column conversations: {e}")))?,
    }))
}

#[async_trait]
impl RealtimeStore for Backend {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn set_read_marker(&self, marker: ReadMarker, audit: &[AuditEntry]) -> StoreResult<()> {
        // A message id that does not exist breaks `participants_last_read_fkey`, which
        // `db` reports as `NotFound` too.
        sqlx::query(
            "UPDATE participants SET last_read_message_id = $3 \
             WHERE conversation_id = $1 AND user_id = $2",
        )
        .bind(marker.conv.0)
        .bind(marker.user.0)
        .bind(marker.message.0)
        .change_audited(self, audit)
        .await
    }

    async fn conversation_states(&self, user: UserId) -> StoreResult<Vec<ConversationState>> {
        // The marker's seq counts only when the message is in that conversation; a marker
        // whose message is gone was set to NULL by `participants_last_read_fkey`.
        sqlx::query(
            "SELECT c.id, c.last_seq, p.last_read_message_id, m.seq AS read_seq \
             FROM participants p JOIN conversations c ON c.id = p.conversation_id \
             LEFT JOIN messages m ON m.id = p.last_read_message_id \
                 AND m.conversation_id = p.conversation_id \
             WHERE p.user_id = $1 ORDER BY c.id",
        )
        .bind(user.0)
        .all(self.reader(), |row| {
            let last_seq: i64 = get(row, "last_seq")?;
            let read_seq: Option<i64> = get(row, "read_seq")?;
            Ok(ConversationState {
                id: ConversationId(get(row, "id")?),
                last_seq,
                last_read_message_id: get::<Option<uuid::Uuid>>(row, "last_read_message_id")?
                    .map(MessageId),
                unread_count: last_seq.saturating_sub(read_seq.unwrap_or(0)).max(0),
            })
        })
        .await
    }

    async fn user_conversation_ids(
        &self,
        user: UserId,
        org: Option<OrgId>,
    ) -> StoreResult<Vec<ConversationId>> {
        // Without an org, `$2 IS NULL` keeps every conversation.
        sqlx::query(
            "SELECT c.id FROM participants p \
             JOIN conversations c ON c.id = p.conversation_id \
             WHERE p.user_id = $1 AND ($2 IS NULL OR c.org_id = $2) ORDER BY c.id",
        )
        .bind(user.0)
        .bind(org.map(|o| o.0))
        .all(self.reader(), |row| get(row, "id").map(ConversationId))
        .await
    }

    async fn participant_ids(&self, conv: ConversationId) -> StoreResult<Vec<UserId>> {
        sqlx::query("SELECT user_id FROM participants WHERE conversation_id = $1 ORDER BY user_id")
            .bind(conv.0)
            .all(self.reader(), |row| get(row, "user_id").map(UserId))
            .await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn save_gateway_session(&self, session: &GatewaySession) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO gateway_sessions (id, user_id, auth_session_id, last_s, position, \
             epoch, conversations, saved_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (id) DO UPDATE SET user_id = excluded.user_id, \
             auth_session_id = excluded.auth_session_id, last_s = excluded.last_s, \
             position = excluded.position, epoch = excluded.epoch, \
             conversations = excluded.conversations, saved_at = excluded.saved_at",
        )
        .bind(session.id)
        .bind(session.user_id.0)
        .bind(session.auth_session_id.0)
        .bind(session.last_s)
        .bind(session.position)
        .bind(session.epoch.as_str())
        .bind(conversations_json(&session.conversations)?)
        .bind(ts(session.saved_at))
        .run(self.writer())
        .await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn take_gateway_session(
        &self,
        id: uuid::Uuid,
        user: UserId,
        auth_session: SessionId,
    ) -> StoreResult<Option<GatewaySession>> {
        // One statement, so one transaction: of two concurrent takes only one gets the row,
        // and a take by someone else never removes it, not even for a moment.
        sqlx::query(&format!(
            "DELETE FROM gateway_sessions WHERE id = $1 AND user_id = $2 \
             AND auth_session_id = $3 RETURNING {GATEWAY_SESSION_COLS}"
        ))
        .bind(id)
        .bind(user.0)
        .bind(auth_session.0)
        .opt(self.writer(), gateway_session_from_row)
        .await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn prune_gateway_sessions(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        prune_before(self, "gateway_sessions", "saved_at", before).await
    }
}
