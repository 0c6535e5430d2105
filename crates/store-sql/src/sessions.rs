//! Login sessions: created at sign-in, looked up by token hash, touched, listed and revoked.

use super::*;

#[async_trait]
impl SessionStore for Backend {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn create_session(
        &self,
        session: &Session,
        token_hash: &[u8],
        audit: &[AuditEntry],
    ) -> StoreResult<()> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        sqlx::query(
            "INSERT INTO sessions (id, user_id, token_hash, device, ip, created_at, \
             last_seen_at, expires_at, cookie, impersonator_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(session.id.0)
        .bind(session.user_id.0)
        .bind(token_hash)
        .bind(session.device.as_deref())
        .bind(session.ip.as_deref())
        .bind(ts(session.created_at))
        .bind(ts(session.last_seen_at))
        .bind(ts(session.expires_at))
        .bind(session.cookie)
        .bind(session.impersonator.map(|u| u.0))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        commit_audited(tx, self, audit).await
    }

    async fn session_by_token_hash(&self, token_hash: &[u8]) -> StoreResult<Option<Session>> {
        let row = sqlx::query(&format!(
            "SELECT {SESSION_COLS} FROM sessions WHERE token_hash = $1"
        ))
        .bind(token_hash)
        .fetch_optional(self.reader())
        .await
        .map_err(db)?;
        row.as_ref().map(session_from_row).transpose()
    }

    async fn touch_session(
        &self,
        id: SessionId,
        at: DateTime<Utc>,
        ip: Option<&str>,
    ) -> StoreResult<()> {
        // A session signed out meanwhile simply stays gone: nothing to touch, no error.
        sqlx::query("UPDATE sessions SET last_seen_at = $2, ip = COALESCE($3, ip) WHERE id = $1")
            .bind(id.0)
            .bind(ts(at))
            .bind(ip)
            .execute(self.writer())
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn list_sessions(&self, user: UserId) -> StoreResult<Vec<Session>> {
        fetch_all(
            self.reader(),
            sqlx::query(&format!(
                "SELECT {SESSION_COLS} FROM sessions WHERE user_id = $1 \
             ORDER BY created_at DESC, id DESC"
            ))
            .bind(user.0),
            session_from_row,
        )
        .await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn delete_session(
        &self,
        user: UserId,
        id: SessionId,
        audit: &[AuditEntry],
    ) -> StoreResult<()> {
        change_audited(
            self,
            sqlx::query("DELETE FROM sessions WHERE id = $1 AND user_id = $2")
                .bind(id.0)
                .bind(user.0),
            audit,
        )
        .await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn delete_sessions(
        &self,
        user: UserId,
        keep: Option<SessionId>,
        audit: &[AuditEntry],
    ) -> StoreResult<u64> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        let done =
            sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND ($2 IS NULL OR id <> $2)")
                .bind(user.0)
                .bind(keep.map(|k| k.0))
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        commit_audited(tx, self, audit).await?;
        Ok(done.rows_affected())
    }
}
