//! Privacy (DATA-6): reading everything a user wrote, and erasing an account in one
//! transaction.

#[doc(hidden)]
#[macro_export]
macro_rules! __store_sql_privacy {
    () => {
        async fn messages_by_author(
            s: &Backend,
            user: UserId,
            after: Option<MessageId>,
            limit: i64,
        ) -> StoreResult<Vec<Message>> {
            let rows = ::sqlx::query(&format!(
                "SELECT {MESSAGE_COLS} FROM messages m JOIN users u ON u.id = m.author_id \
                 WHERE m.author_id = $1 AND ($2 IS NULL OR m.id > $2) ORDER BY m.id LIMIT $3"
            ))
            .bind(user.0)
            .bind(after.map(|m| m.0))
            .bind(limit)
            .fetch_all(s.reader())
            .await
            .map_err(db)?;
            rows.iter().map(message_from_row).collect()
        }

        /// Erases an account: messages in `tombstone_orgs` lose their content (the others keep
        /// it under the anonymised name), every membership goes as `remove_member` would,
        /// credentials, 2FA and sessions are deleted and the profile is scrubbed. Fails with
        /// `LastOrgOwner` (nothing changed) while the user is an org's only owner.
        async fn erase_user(
            s: &Backend,
            user: UserId,
            tombstone_orgs: &[OrgId],
            anonymous_name: &str,
            at: DateTime<Utc>,
            audit: &[AuditEntry],
        ) -> StoreResult<u64> {
            let mut tx = s.writer().begin().await.map_err(db)?;
            let orgs = ::sqlx::query("SELECT org_id FROM org_members WHERE user_id = $1")
                .bind(user.0)
                .fetch_all(&mut *tx)
                .await
                .map_err(db)?;
            let mut tombstoned = 0;
            for org in tombstone_orgs {
                ::sqlx::query(
                    "DELETE FROM message_versions WHERE message_id IN (SELECT m.id FROM \
                     messages m JOIN conversations c ON c.id = m.conversation_id \
                     WHERE m.author_id = $1 AND c.org_id = $2)",
                )
                .bind(user.0)
                .bind(org.0)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
                let done = ::sqlx::query(
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
            for row in &orgs {
                let org: ::uuid::Uuid = get(row, "org_id")?;
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
                ::sqlx::query(&format!("DELETE FROM {table} WHERE {col} = $1"))
                    .bind(user.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
            }
            let done = ::sqlx::query(
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
            commit_audited(tx, s, audit).await?;
            Ok(tombstoned)
        }
    };
}
