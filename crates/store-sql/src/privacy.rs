//! Privacy (DATA-6): reading everything a user wrote, and erasing an account in one
//! transaction.

use super::*;

/// The org's placeholder author for anonymised messages, created on first use: an
/// account of kind user, disabled and erased, with no credentials and no membership,
/// named `deleted-` and the end of the org id (with a random tail when a squatter holds
/// that name). Concurrent erasures in one org end up with the same placeholder.
async fn org_placeholder(conn: &mut Conn, org: OrgId, at: DateTime<Utc>) -> StoreResult<UserId> {
    let find = "SELECT user_id FROM org_placeholders WHERE org_id = $1";
    let existing = sqlx::query(find)
        .bind(org.0)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
    if let Some(row) = existing {
        return Ok(UserId(get(&row, "user_id")?));
    }
    let id = UserId::new();
    let short = org.0.simple().to_string()[20..].to_owned();
    let mut name = format!("deleted-{short}");
    loop {
        let done = sqlx::query(
            "INSERT INTO users (id, username, username_key, display_name, email, \
             password_hash, kind, server_admin, disabled, created_at, erased_at) \
             VALUES ($1, $2, $3, NULL, NULL, NULL, 'user', $4, $5, $6, $6) \
             ON CONFLICT (username_key) DO NOTHING",
        )
        .bind(id.0)
        .bind(&name)
        .bind(name.to_ascii_lowercase())
        .bind(false)
        .bind(true)
        .bind(ts(at))
        .execute(&mut *conn)
        .await
        .map_err(db)?;
        if done.rows_affected() == 1 {
            break;
        }
        let tail = uuid::Uuid::new_v4().simple().to_string();
        name = format!("deleted-{short}-{}", &tail[..8]);
    }
    let claimed = sqlx::query(
        "INSERT INTO org_placeholders (org_id, user_id) VALUES ($1, $2) \
         ON CONFLICT (org_id) DO NOTHING",
    )
    .bind(org.0)
    .bind(id.0)
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    if claimed.rows_affected() == 1 {
        return Ok(id);
    }
    // Another erasure made one first: use that, drop ours.
    sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(id.0)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    let row = sqlx::query(find)
        .bind(org.0)
        .fetch_one(&mut *conn)
        .await
        .map_err(db)?;
    Ok(UserId(get(&row, "user_id")?))
}

#[async_trait]
impl PrivacyStore for Backend {
    async fn messages_by_author(
        &self,
        user: UserId,
        after: Option<MessageId>,
        limit: i64,
    ) -> StoreResult<Vec<Message>> {
        fetch_all(
            self.reader(),
            sqlx::query(&format!(
                "SELECT {MESSAGE_COLS} FROM messages m JOIN users u ON u.id = m.author_id \
             WHERE m.author_id = $1 AND ($2 IS NULL OR m.id > $2) ORDER BY m.id LIMIT $3"
            ))
            .bind(user.0)
            .bind(after.map(|m| m.0))
            .bind(limit),
            message_from_row,
        )
        .await
    }

    /// Erases an account: messages in `tombstone_orgs` lose their content (the others keep
    /// it under the org's placeholder author), every membership goes as `remove_member` would,
    /// credentials, 2FA and sessions are deleted and the profile is scrubbed. Fails with
    /// `LastOrgOwner` (nothing changed) while the user is an org's only owner.
    async fn erase_user(
        &self,
        user: UserId,
        tombstone_orgs: &[OrgId],
        anonymous_name: &str,
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> StoreResult<u64> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        let orgs = sqlx::query("SELECT org_id FROM org_members WHERE user_id = $1")
            .bind(user.0)
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
        let mut tombstoned = 0;
        for org in tombstone_orgs {
            sqlx::query(
                "DELETE FROM message_versions WHERE message_id IN (SELECT m.id FROM \
                 messages m JOIN conversations c ON c.id = m.conversation_id \
                 WHERE m.author_id = $1 AND c.org_id = $2)",
            )
            .bind(user.0)
            .bind(org.0)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            let done = sqlx::query(
                "UPDATE messages SET content = NULL, deleted_at = COALESCE(deleted_at, $3) \
                 WHERE author_id = $1 AND content IS NOT NULL AND conversation_id IN \
                 (SELECT id FROM conversations WHERE org_id = $2)",
            )
            .bind(user.0)
            .bind(org.0)
            .bind(ts(at))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            tombstoned += done.rows_affected();
        }
        // Everywhere else the messages keep their content but move to the org's placeholder
        // author, so the erased id leads to none of them.
        let written = sqlx::query(
            "SELECT DISTINCT c.org_id FROM messages m \
             JOIN conversations c ON c.id = m.conversation_id WHERE m.author_id = $1",
        )
        .bind(user.0)
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        for row in &written {
            let org = OrgId(get(row, "org_id")?);
            if tombstone_orgs.contains(&org) {
                continue;
            }
            let placeholder = org_placeholder(&mut tx, org, at).await?;
            sqlx::query(
                "UPDATE messages SET author_id = $2 WHERE author_id = $1 AND conversation_id \
                 IN (SELECT id FROM conversations WHERE org_id = $3)",
            )
            .bind(user.0)
            .bind(placeholder.0)
            .bind(org.0)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        for row in &orgs {
            let org: uuid::Uuid = get(row, "org_id")?;
            remove_member_in(&mut tx, OrgId(org), user).await?;
        }
        for table in [
            "sessions",
            "api_keys",
            "user_totp",
            "recovery_codes",
            "mfa_challenges",
            "gateway_sessions",
            "idempotency_keys",
        ] {
            let col = if table == "idempotency_keys" {
                "author_id"
            } else {
                "user_id"
            };
            sqlx::query(&format!("DELETE FROM {table} WHERE {col} = $1"))
                .bind(user.0)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        let done = sqlx::query(
            "UPDATE users SET username = $2, username_key = $3, display_name = NULL, \
             email = NULL, password_hash = NULL, disabled = $4, server_admin = $5, \
             erased_at = $6 WHERE id = $1",
        )
        .bind(user.0)
        .bind(anonymous_name)
        .bind(anonymous_name.to_ascii_lowercase())
        .bind(true)
        .bind(false)
        .bind(ts(at))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        commit_audited(tx, self, audit).await?;
        Ok(tombstoned)
    }
}
