//! Login sessions: created at sign-in, looked up by token hash, touched, listed and revoked.

use super::*;

/// AUTH-12: a session started by impersonation stands only while whoever started it is an
/// enabled server admin (her sessions, and those she started, are deleted when she loses that;
/// this holds if the deletion was missed).
const IMPERSONATOR_STANDS: &str = "(impersonator_id IS NULL OR EXISTS (SELECT 1 FROM users a \
     WHERE a.id = impersonator_id AND a.server_admin AND NOT a.disabled))";

#[async_trait]
impl SessionStore for Backend {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn create_session(
        &self,
        session: &Session,
        token_hash: &[u8],
        password: Option<&str>,
        audit: &[AuditEntry],
    ) -> StoreResult<()> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        password_still(&mut tx, session.user_id, password).await?;
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
        .run(&mut *tx)
        .await?;
        commit_audited(tx, self, audit).await
    }

    async fn session_by_token_hash(&self, token_hash: &[u8]) -> StoreResult<Option<Session>> {
        let rest = format!("WHERE token_hash = $1 AND {IMPERSONATOR_STANDS}");
        SESSIONS.opt(self.reader(), &rest, token_hash).await
    }

    async fn touch_session(&self, id: SessionId, seen: Seen<'_>) -> StoreResult<()> {
        let sql = "UPDATE sessions SET last_seen_at = $2, ip = COALESCE($3, ip) WHERE id = $1";
        touch(self, sql, id.0, seen).await
    }

    async fn list_sessions(&self, user: UserId) -> StoreResult<Vec<Session>> {
        let rest = format!(
            "WHERE user_id = $1 AND {IMPERSONATOR_STANDS} ORDER BY created_at DESC, id DESC"
        );
        SESSIONS.all(self.reader(), &rest, user.0).await
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
    ) -> StoreResult<SessionsDeleted> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        let deleted = delete_sessions_in(&mut tx, user, keep).await?;
        commit_audited(tx, self, audit).await?;
        Ok(deleted)
    }
}

/// Deletes `user`'s sessions but `keep`, and every session she started as someone else, in
/// the caller's transaction.
pub(super) async fn delete_sessions_in(
    tx: &mut Conn,
    user: UserId,
    keep: Option<SessionId>,
) -> StoreResult<SessionsDeleted> {
    let deleted = sqlx::query(
        "DELETE FROM sessions WHERE (user_id = $1 OR impersonator_id = $1) \
         AND ($2 IS NULL OR id <> $2) RETURNING id, user_id",
    )
    .bind(user.0)
    .bind(keep.map(|k| k.0))
    .all(&mut *tx, |row| {
        Ok((SessionId(get(row, "id")?), UserId(get(row, "user_id")?)))
    })
    .await?;
    let (own, impersonating): (Vec<_>, Vec<_>) =
        deleted.into_iter().partition(|(_, of)| *of == user);
    Ok(SessionsDeleted {
        own: own.len() as u64,
        impersonating: impersonating.into_iter().map(|(id, _)| id).collect(),
    })
}

/// Refuses (`Conflict::PasswordChanged`) unless `verified` — the hash a sign-in checked the
/// password against — is still the account's, read under its row's share lock on PostgreSQL:
/// a password change waits for the caller's transaction (and then deletes what it made), or
/// committed before and is seen here (AUTH-2).
pub(super) async fn password_still(
    tx: &mut Conn,
    user: UserId,
    verified: Option<&str>,
) -> StoreResult<()> {
    let Some(verified) = verified else {
        return Ok(());
    };
    let sql = format!(
        "SELECT password_hash FROM users WHERE id = $1{}",
        postgres_only(" FOR SHARE")
    );
    let now: Option<String> = sqlx::query(&sql)
        .bind(user.0)
        .one(&mut *tx, |r| get(r, "password_hash"))
        .await?;
    if now.as_deref() == Some(verified) {
        Ok(())
    } else {
        Err(StoreError::Conflict(Conflict::PasswordChanged))
    }
}
