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
        .change_audited(self, audit)
        .await
    }

    async fn session_by_token_hash(&self, token_hash: &[u8]) -> StoreResult<Option<Session>> {
        SESSIONS
            .opt(self.reader(), "WHERE token_hash = $1", token_hash)
            .await
    }

    async fn touch_session(&self, id: SessionId, seen: Seen<'_>) -> StoreResult<()> {
        let sql = "UPDATE sessions SET last_seen_at = $2, ip = COALESCE($3, ip) WHERE id = $1";
        touch(self, sql, id.0, seen).await
    }

    async fn list_sessions(&self, user: UserId) -> StoreResult<Vec<Session>> {
        let rest = "WHERE user_id = $1 ORDER BY created_at DESC, id DESC";
        SESSIONS.all(self.reader(), rest, user.0).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn delete_session(
        &self,
        user: UserId,
        id: SessionId,
        audit: &[AuditEntry],
    ) -> StoreResult<()> {
        let keys = [("id", id.0), ("user_id", user.0)];
        delete_keyed(self, "sessions", keys, audit).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn delete_sessions(
        &self,
        user: UserId,
        keep: Option<SessionId>,
        audit: &[AuditEntry],
    ) -> StoreResult<u64> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        let deleted =
            sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND ($2 IS NULL OR id <> $2)")
                .bind(user.0)
                .bind(keep.map(|k| k.0))
                .run(&mut *tx)
                .await?;
        commit_audited(tx, self, audit).await?;
        Ok(deleted)
    }
}
