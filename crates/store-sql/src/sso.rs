//! Single sign-on: linked identities, spent token ids and pending OpenID sign-ins.

use super::*;

fn identity_from_row(row: &Row) -> StoreResult<LinkedIdentity> {
    let kind: String = get(row, "kind")?;
    Ok(LinkedIdentity {
        kind: IdentityKind::parse(&kind)
            .ok_or_else(|| StoreError::Backend(format!("unknown identity kind {kind:?}")))?,
        provider: get(row, "provider")?,
        subject: get(row, "subject")?,
        user_id: UserId(get(row, "user_id")?),
        created_at: get(row, "created_at")?,
        last_used_at: get(row, "last_used_at")?,
    })
}

/// Inserts the link of `key` to `user`; `IdentityTaken` when `key` is linked already.
async fn insert_identity(
    conn: &mut Conn,
    user: UserId,
    key: &IdentityKey,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO user_identities (kind, provider, subject, user_id, created_at, \
         last_used_at) VALUES ($1, $2, $3, $4, $5, $5)",
    )
    .bind(key.kind.as_str())
    .bind(key.provider.as_str())
    .bind(key.subject.as_str())
    .bind(user.0)
    .bind(ts(at))
    .execute(&mut *conn)
    .await
    .map_err(unique(Conflict::IdentityTaken))?;
    Ok(())
}

#[async_trait]
impl SsoStore for Backend {
    async fn user_by_identity(
        &self,
        key: &IdentityKey,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<User>> {
        let user = sqlx::query(
            "UPDATE user_identities SET last_used_at = $4 \
             WHERE kind = $1 AND provider = $2 AND subject = $3 RETURNING user_id",
        )
        .bind(key.kind.as_str())
        .bind(key.provider.as_str())
        .bind(key.subject.as_str())
        .bind(ts(at))
        .opt(self.writer(), |r| get(r, "user_id").map(UserId))
        .await?;
        match user {
            Some(id) => self.user(id).await.map(Some),
            None => Ok(None),
        }
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn create_user_with_identity(
        &self,
        user: &NewUser,
        key: &IdentityKey,
        audit: &[AuditEntry],
    ) -> StoreResult<User> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        let created = insert_user(&mut tx, user).await?;
        insert_identity(&mut tx, created.id, key, user.created_at).await?;
        commit_audited(tx, self, audit).await?;
        Ok(created)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn link_identity(
        &self,
        user: UserId,
        key: &IdentityKey,
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> StoreResult<()> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        insert_identity(&mut tx, user, key, at).await?;
        commit_audited(tx, self, audit).await
    }

    async fn user_by_verified_email(&self, email: &str) -> StoreResult<Option<User>> {
        let sql = USERS.select("WHERE lower(u.email) = lower($1) LIMIT 2");
        let mut found = sqlx::query(&sql)
            .bind(email)
            .all(self.reader(), user_from_row)
            .await?;
        Ok(match found.pop() {
            Some(user) if found.is_empty() && user.email_verified => Some(user),
            _ => None,
        })
    }

    async fn identities_of(&self, user: UserId) -> StoreResult<Vec<LinkedIdentity>> {
        sqlx::query(
            "SELECT kind, provider, subject, user_id, created_at, last_used_at \
             FROM user_identities WHERE user_id = $1 ORDER BY created_at, kind, provider",
        )
        .bind(user.0)
        .all(self.reader(), identity_from_row)
        .await
    }

    async fn identities_of_provider(
        &self,
        kind: IdentityKind,
        provider: &str,
    ) -> StoreResult<Vec<LinkedIdentity>> {
        sqlx::query(
            "SELECT kind, provider, subject, user_id, created_at, last_used_at \
             FROM user_identities WHERE kind = $1 AND provider = $2 ORDER BY created_at, subject",
        )
        .bind(kind.as_str())
        .bind(provider)
        .all(self.reader(), identity_from_row)
        .await
    }

    async fn spend_token_id(
        &self,
        provider: &str,
        token_id: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        sqlx::query("DELETE FROM sso_spent_tokens WHERE expires_at < $1")
            .bind(ts(now))
            .run(self.writer())
            .await?;
        let spent = sqlx::query(
            "INSERT INTO sso_spent_tokens (provider, token_id, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (provider, token_id) DO NOTHING",
        )
        .bind(provider)
        .bind(token_id)
        .bind(ts(expires_at))
        .run(self.writer())
        .await?;
        Ok(spent == 1)
    }

    async fn put_sso_login(
        &self,
        state_hash: &[u8; 32],
        provider: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        sqlx::query("DELETE FROM sso_logins WHERE expires_at < $1")
            .bind(ts(now))
            .run(self.writer())
            .await?;
        sqlx::query("INSERT INTO sso_logins (state_hash, provider, expires_at) VALUES ($1, $2, $3)")
            .bind(&state_hash[..])
            .bind(provider)
            .bind(ts(expires_at))
            .change(self.writer())
            .await
    }

    async fn take_sso_login(
        &self,
        state_hash: &[u8; 32],
        now: DateTime<Utc>,
    ) -> StoreResult<Option<String>> {
        sqlx::query(
            "DELETE FROM sso_logins WHERE state_hash = $1 AND expires_at > $2 RETURNING provider",
        )
        .bind(&state_hash[..])
        .bind(ts(now))
        .opt(self.writer(), |r| get(r, "provider"))
        .await
    }
}
