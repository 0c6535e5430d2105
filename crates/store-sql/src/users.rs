//! Accounts, the bootstrap flag and the first-start record.

use super::*;

pub(super) async fn insert_user(conn: &mut Conn, user: &NewUser) -> StoreResult<User> {
    let row = sqlx::query(&format!(
        "INSERT INTO users (id, username, username_key, display_name, email, \
         password_hash, kind, server_admin, disabled, created_at, email_verified) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING {USER_RETURNING}"
    ))
    .bind(user.id.0)
    .bind(user.username.as_str())
    .bind(user.username.key())
    .bind(user.display_name.as_ref().map(DisplayName::as_str))
    .bind(user.email.as_ref().map(Email::as_str))
    .bind(user.password_hash.as_deref())
    .bind(user.kind.as_str())
    .bind(user.server_admin)
    .bind(false)
    .bind(ts(user.created_at))
    .bind(user.email.is_some() && user.email_verified)
    .fetch_one(&mut *conn)
    .await
    .map_err(unique(Conflict::UsernameTaken))?;
    user_from_row(&row)
}

/// Every reset link and pending sign-in challenge of `user`.
async fn end_resets_and_challenges(conn: &mut Conn, user: UserId) -> StoreResult<()> {
    for table in ["password_resets", "mfa_challenges"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE user_id = $1"))
            .bind(user.0)
            .run(&mut *conn)
            .await?;
    }
    Ok(())
}

/// A server admin exists from now on: the bootstrap never re-arms (CORE-3a).
async fn disarm_bootstrap(conn: &mut Conn) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO server_flags (name, set_at) VALUES ('bootstrap', CURRENT_TIMESTAMP) \
         ON CONFLICT (name) DO NOTHING",
    )
    .run(&mut *conn)
    .await?;
    Ok(())
}

#[async_trait]
impl UserStore for Backend {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn create_user(&self, user: &NewUser, audit: &[AuditEntry]) -> StoreResult<User> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        let created = insert_user(&mut tx, user).await?;
        if user.server_admin {
            disarm_bootstrap(&mut tx).await?;
        }
        commit_audited(tx, self, audit).await?;
        Ok(created)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn claim_bootstrap(&self, user: &NewUser, audit: &[AuditEntry]) -> StoreResult<User> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        // Refused when claimed before or when a server admin exists already, however made.
        let claimed = sqlx::query(
            "INSERT INTO server_flags (name, set_at) SELECT 'bootstrap', $1 \
             WHERE NOT EXISTS (SELECT 1 FROM users WHERE server_admin)",
        )
        .bind(ts(user.created_at))
        .execute(&mut *tx)
        .await
        .map_err(unique(Conflict::BootstrapUsed))?;
        if claimed.rows_affected() == 0 {
            return Err(StoreError::Conflict(Conflict::BootstrapUsed));
        }
        let created = insert_user(&mut tx, user).await?;
        commit_audited(tx, self, audit).await?;
        Ok(created)
    }

    async fn bootstrap_claimed(&self) -> StoreResult<bool> {
        sqlx::query(
            "SELECT (EXISTS (SELECT 1 FROM server_flags WHERE name = 'bootstrap') \
             OR EXISTS (SELECT 1 FROM users WHERE server_admin)) AS claimed",
        )
        .one(self.reader(), |r| get(r, "claimed"))
        .await
    }

    async fn first_start(&self, now: DateTime<Utc>) -> StoreResult<DateTime<Utc>> {
        sqlx::query(
            "INSERT INTO server_flags (name, set_at) VALUES ('first_start', $1) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(ts(now))
        .run(self.writer())
        .await?;
        sqlx::query("SELECT set_at FROM server_flags WHERE name = 'first_start'")
            .one(self.writer(), |r| get(r, "set_at"))
            .await
    }

    async fn user(&self, id: UserId) -> StoreResult<User> {
        USERS.one(self.reader(), "WHERE u.id = $1", id.0).await
    }

    async fn user_by_username(&self, key: &str) -> StoreResult<Option<(User, Option<String>)>> {
        sqlx::query(&format!(
            "SELECT {USER_COLS}, u.password_hash FROM users u WHERE u.username_key = $1"
        ))
        .bind(key.to_ascii_lowercase())
        .opt(self.reader(), |r| {
            Ok((user_from_row(r)?, get(r, "password_hash")?))
        })
        .await
    }

    async fn password_hash(&self, id: UserId) -> StoreResult<Option<String>> {
        sqlx::query("SELECT password_hash FROM users WHERE id = $1")
            .bind(id.0)
            .one(self.reader(), |r| get(r, "password_hash"))
            .await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn set_password_hash(
        &self,
        change: PasswordChange<'_>,
        audit: &[AuditEntry],
    ) -> StoreResult<SessionsDeleted> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        // The account's row first: a sign-in deciding on the old hash (`password_still`)
        // waits for this transaction, or made its session before — and it is deleted below.
        let changed = sqlx::query(
            "UPDATE users SET password_hash = $2 WHERE id = $1 \
             AND ($3 IS NULL OR password_hash = $3)",
        )
        .bind(change.user.0)
        .bind(change.phc)
        .bind(change.replaces)
        .run(&mut *tx)
        .await?;
        if changed == 0 {
            return Err(
                match USERS.opt(&mut *tx, "WHERE id = $1", change.user.0).await? {
                    Some(_) => StoreError::Conflict(Conflict::PasswordChanged),
                    None => StoreError::NotFound,
                },
            );
        }
        let mut ended = SessionsDeleted::default();
        if let Some(keep) = change.keep {
            ended = super::sessions::delete_sessions_in(&mut tx, change.user, Some(keep)).await?;
            // A reset link an admin made before is spent by the change too.
            end_resets_and_challenges(&mut tx, change.user).await?;
        }
        commit_audited(tx, self, audit).await?;
        Ok(ended)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn start_password_reset(
        &self,
        reset: &PasswordReset,
        audit: &[AuditEntry],
    ) -> StoreResult<SessionsDeleted> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        // The account's row first, as a password change takes it: a sign-in deciding on its
        // hash waits for this, or made its session before — and it is deleted below.
        let lock = format!(
            "SELECT id FROM users WHERE id = $1 AND erased_at IS NULL{}",
            postgres_only(" FOR UPDATE")
        );
        if sqlx::query(&lock)
            .bind(reset.user.0)
            .opt(&mut *tx, |_| Ok(()))
            .await?
            .is_none()
        {
            return Err(StoreError::NotFound);
        }
        end_resets_and_challenges(&mut tx, reset.user).await?;
        sqlx::query(
            "INSERT INTO password_resets (token_hash, user_id, created_at, expires_at)              VALUES ($1, $2, $3, $4)",
        )
        .bind(reset.token_hash.as_slice())
        .bind(reset.user.0)
        .bind(ts(reset.created_at))
        .bind(ts(reset.expires_at))
        .run(&mut *tx)
        .await?;
        let ended = super::sessions::delete_sessions_in(&mut tx, reset.user, None).await?;
        commit_audited(tx, self, audit).await?;
        Ok(ended)
    }

    async fn password_reset_user(
        &self,
        token_hash: &[u8],
        now: DateTime<Utc>,
    ) -> StoreResult<Option<UserId>> {
        sqlx::query("SELECT user_id FROM password_resets WHERE token_hash = $1 AND expires_at > $2")
            .bind(token_hash)
            .bind(ts(now))
            .opt(self.reader(), |row| get(row, "user_id").map(UserId))
            .await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn finish_password_reset(
        &self,
        token_hash: &[u8],
        user: UserId,
        now: DateTime<Utc>,
        phc: &str,
        audit: &[AuditEntry],
    ) -> StoreResult<SessionsDeleted> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        // One statement takes the link: of two concurrent uses only one deletes the row.
        let taken = sqlx::query(
            "DELETE FROM password_resets WHERE token_hash = $1 AND user_id = $2              AND expires_at > $3 RETURNING user_id",
        )
        .bind(token_hash)
        .bind(user.0)
        .bind(ts(now))
        .opt(&mut *tx, |_| Ok(()))
        .await?;
        if taken.is_none() {
            return Err(StoreError::NotFound);
        }
        let changed =
            sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1 AND erased_at IS NULL")
                .bind(user.0)
                .bind(phc)
                .run(&mut *tx)
                .await?;
        if changed == 0 {
            return Err(StoreError::NotFound);
        }
        end_resets_and_challenges(&mut tx, user).await?;
        let ended = super::sessions::delete_sessions_in(&mut tx, user, None).await?;
        commit_audited(tx, self, audit).await?;
        Ok(ended)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn prune_password_resets(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        prune_before(self, "password_resets", "expires_at", before).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn set_display_name(
        &self,
        id: UserId,
        name: Option<&DisplayName>,
        audit: &[AuditEntry],
    ) -> StoreResult<User> {
        sqlx::query(&format!(
            "UPDATE users SET display_name = $2 WHERE id = $1 RETURNING {USER_RETURNING}"
        ))
        .bind(id.0)
        .bind(name.map(DisplayName::as_str))
        .one_audited(self, audit, user_from_row)
        .await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn set_user_flags(
        &self,
        id: UserId,
        flags: UserFlags,
        audit: &[AuditEntry],
    ) -> StoreResult<User> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        let user = sqlx::query(&format!(
            "UPDATE users SET disabled = COALESCE($2, disabled), \
             server_admin = COALESCE($3, server_admin), \
             require_2fa = COALESCE($4, require_2fa), \
             email_verified = COALESCE($5, email_verified) AND email IS NOT NULL \
             WHERE id = $1 AND erased_at IS NULL RETURNING {USER_RETURNING}"
        ))
        .bind(id.0)
        .bind(flags.disabled)
        .bind(flags.server_admin)
        .bind(flags.require_2fa)
        .bind(flags.email_verified)
        .one(&mut *tx, user_from_row)
        .await?;
        if flags.server_admin == Some(true) {
            disarm_bootstrap(&mut tx).await?;
        }
        commit_audited(tx, self, audit).await?;
        Ok(user)
    }

    async fn list_users(&self, page: Page<UserId>) -> StoreResult<Vec<User>> {
        let k = keyset(page.cursor, "u.id", 2);
        let sql = USERS.select(&format!(
            "WHERE 1 = 1 {} ORDER BY u.id {} LIMIT $1",
            k.cond, k.order
        ));
        let q = k.bind_key(sqlx::query(&sql).bind(limit(page.limit)), |key| key.0);
        q.all(self.reader(), user_from_row).await
    }

    async fn users_share_org(&self, a: UserId, b: UserId) -> StoreResult<bool> {
        sqlx::query(
            "SELECT EXISTS (SELECT 1 FROM org_members x JOIN org_members y \
             ON y.org_id = x.org_id WHERE x.user_id = $1 AND y.user_id = $2) AS shared",
        )
        .bind(a.0)
        .bind(b.0)
        .one(self.reader(), |r| get(r, "shared"))
        .await
    }
}
