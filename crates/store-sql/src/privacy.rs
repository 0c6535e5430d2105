//! Privacy (DATA-6): reading everything a user wrote, and erasing an account (files included)
//! in one transaction.

use super::*;

/// The org's placeholder author for anonymised messages, created on first use: an
/// account of kind user, disabled and erased, with no credentials and no membership,
/// named `deleted-` and the end of the org id (with a random tail when a squatter holds
/// that name). Concurrent erasures in one org end up with the same placeholder.
async fn org_placeholder(conn: &mut Conn, org: OrgId, at: DateTime<Utc>) -> StoreResult<UserId> {
    let find = "SELECT user_id FROM org_placeholders WHERE org_id = $1";
    let user_id = |r: &Row| get(r, "user_id").map(UserId);
    if let Some(existing) = sqlx::query(find)
        .bind(org.0)
        .opt(&mut *conn, user_id)
        .await?
    {
        return Ok(existing);
    }
    let id = UserId::new();
    let short = org.0.simple().to_string()[20..].to_owned();
    let mut name = format!("deleted-{short}");
    loop {
        let inserted = sqlx::query(
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
        .run(&mut *conn)
        .await?;
        if inserted == 1 {
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
    .run(&mut *conn)
    .await?;
    if claimed == 1 {
        return Ok(id);
    }
    // Another erasure made one first: use that, drop ours.
    sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(id.0)
        .run(&mut *conn)
        .await?;
    sqlx::query(find).bind(org.0).one(&mut *conn, user_id).await
}

/// Tombstones `user`'s messages in `org`: their content, edit history and files go. Answers how
/// many messages lost their content and the files removed.
async fn tombstone_in(
    tx: &mut Conn,
    user: UserId,
    org: OrgId,
    at: DateTime<Utc>,
) -> StoreResult<(u64, FreedBlobs)> {
    let files = format!(
        "DELETE FROM files WHERE message_id IN (SELECT m.id FROM messages m \
         JOIN conversations c ON c.id = m.conversation_id \
         WHERE m.author_id = $1 AND c.org_id = $2) {REMOVED_FILE}"
    );
    let query = sqlx::query(&files).bind(user.0).bind(org.0);
    let freed = remove_files(&mut *tx, query).await?;
    sqlx::query(
        "DELETE FROM message_versions WHERE message_id IN (SELECT m.id FROM \
         messages m JOIN conversations c ON c.id = m.conversation_id \
         WHERE m.author_id = $1 AND c.org_id = $2)",
    )
    .bind(user.0)
    .bind(org.0)
    .run(&mut *tx)
    .await?;
    let tombstoned = sqlx::query(
        "UPDATE messages SET content = NULL, deleted_at = COALESCE(deleted_at, $3) \
         WHERE author_id = $1 AND content IS NOT NULL AND conversation_id IN \
         (SELECT id FROM conversations WHERE org_id = $2)",
    )
    .bind(user.0)
    .bind(org.0)
    .bind(ts(at))
    .run(&mut *tx)
    .await?;
    Ok((tombstoned, freed))
}

/// Moderation flags in `org` naming `user` as the author name `now` instead (the placeholder,
/// or nobody).
async fn flags_name(
    tx: &mut Conn,
    user: UserId,
    now: Option<UserId>,
    org: OrgId,
) -> StoreResult<()> {
    sqlx::query("UPDATE guard_flags SET author_id = $2 WHERE author_id = $1 AND org_id = $3")
        .bind(user.0)
        .bind(now.map(|u| u.0))
        .bind(org.0)
        .run(&mut *tx)
        .await?;
    Ok(())
}

#[async_trait]
impl PrivacyStore for Backend {
    async fn messages_by_author(
        &self,
        user: UserId,
        after: Option<MessageId>,
        limit: i64,
    ) -> StoreResult<Vec<Message>> {
        let page =
            sqlx::query(&MESSAGES.select(
                "WHERE m.author_id = $1 AND ($2 IS NULL OR m.id > $2) ORDER BY m.id LIMIT $3",
            ))
            .bind(user.0)
            .bind(after.map(|m| m.0))
            .bind(limit)
            .all(self.reader(), message_from_row)
            .await?;
        with_attachments(self.reader(), page).await
    }

    /// Erases an account: messages in orgs whose policy is `tombstone` lose their content (the
    /// others keep it under the org's placeholder author), every membership goes as `remove_member` would,
    /// credentials, 2FA and sessions are deleted and the profile is scrubbed. Files go with
    /// tombstoned messages, move with anonymised ones, and uploads no message carries go.
    /// Fails with `LastOrgOwner` (nothing changed) while the user is an org's only owner.
    async fn erase_user(
        &self,
        erasure: &Erasure<'_>,
        audit: &[AuditEntry],
    ) -> StoreResult<ErasedAccount> {
        let Erasure {
            user,
            anonymous_name,
            at,
        } = *erasure;
        let mut tx = self.writer().begin().await.map_err(db)?;
        // Her row first (PostgreSQL): a webhook event about her being queued waits for this,
        // or is seen below.
        let lock = format!(
            "SELECT id FROM users WHERE id = $1{}",
            postgres_only(" FOR UPDATE")
        );
        sqlx::query(&lock).bind(user.0).run(&mut *tx).await?;
        let org_id = |r: &Row| get(r, "org_id").map(OrgId);
        let orgs = sqlx::query("SELECT org_id FROM org_members WHERE user_id = $1")
            .bind(user.0)
            .all(&mut *tx, org_id)
            .await?;
        // Her memberships (and participations) go before her messages are read: a send of
        // hers already under way either committed (and is read below) or waits on the rows
        // this deletes and is refused — none is left with her words after the erasure.
        let mut removed = Vec::with_capacity(orgs.len());
        let mut disabled = Vec::new();
        for org in orgs {
            let (gone, hooks) = remove_member_in(&mut tx, org, user, None, audit.first()).await?;
            removed.push(gone);
            disabled.extend(hooks);
        }
        // DATA-6: each org where they wrote decides by its own policy, read here — also an org
        // they have left since, whose messages of theirs are still there.
        let written = sqlx::query(
            "SELECT DISTINCT c.org_id, o.erasure FROM messages m \
             JOIN conversations c ON c.id = m.conversation_id \
             JOIN orgs o ON o.id = c.org_id WHERE m.author_id = $1",
        )
        .bind(user.0)
        .all(&mut *tx, |r| {
            let org = get(r, "org_id").map(OrgId)?;
            Ok((org, tag(r, "erasure", ErasurePolicy::parse)?))
        })
        .await?;
        let mut tombstoned = 0;
        let mut freed = FreedBlobs::default();
        for (org, policy) in written {
            if policy == ErasurePolicy::Tombstone {
                let (n, files) = tombstone_in(&mut tx, user, org, at).await?;
                tombstoned += n;
                freed.0.extend(files.0);
                // A moderation flag on a message with no content left names nobody.
                flags_name(&mut tx, user, None, org).await?;
                continue;
            }
            // The messages keep their content but move to the org's placeholder author, so
            // the erased id leads to none of them (nor does a moderation flag on one).
            let placeholder = org_placeholder(&mut tx, org, at).await?;
            sqlx::query(
                "UPDATE messages SET author_id = $2 WHERE author_id = $1 AND conversation_id \
                 IN (SELECT id FROM conversations WHERE org_id = $3)",
            )
            .bind(user.0)
            .bind(placeholder.0)
            .bind(org.0)
            .run(&mut *tx)
            .await?;
            hand_over_files(&mut tx, user, placeholder, org).await?;
            flags_name(&mut tx, user, Some(placeholder), org).await?;
        }
        // Invites addressed to their name would go to whoever takes the name next.
        sqlx::query(
            "DELETE FROM invites WHERE invitee_key = (SELECT username_key FROM users WHERE id = $1)",
        )
        .bind(user.0)
        .run(&mut *tx)
        .await?;
        // Webhook bodies about them (their messages, their membership) go, in every org.
        super::webhooks::redact_deliveries(&mut tx, at, "user_id = $2", user.0).await?;
        // What is left of theirs are uploads no message carries.
        let files = format!("DELETE FROM files WHERE uploader_id = $1 {REMOVED_FILE}");
        let query = sqlx::query(&files).bind(user.0);
        freed.0.extend(remove_files(&mut tx, query).await?.0);
        // Hers, and those she started as someone else while a server admin (AUTH-12).
        let sessions = super::sessions::delete_sessions_in(&mut tx, user, None).await?;
        for table in [
            // An upload under way stops (its lease gone, its bytes are never recorded) and
            // OAuth grants go with their codes and tokens: nothing more is made as her.
            "upload_leases",
            "oauth_codes",
            "oauth_grants",
            "api_keys",
            "user_totp",
            "recovery_codes",
            "mfa_challenges",
            "password_resets",
            "gateway_sessions",
            "idempotency_keys",
            "user_identities",
        ] {
            let col = if table == "idempotency_keys" {
                "author_id"
            } else {
                "user_id"
            };
            sqlx::query(&format!("DELETE FROM {table} WHERE {col} = $1"))
                .bind(user.0)
                .run(&mut *tx)
                .await?;
        }
        sqlx::query(
            "UPDATE users SET username = $2, username_key = $3, display_name = NULL, \
             email = NULL, email_verified = $5, password_hash = NULL, disabled = $4, server_admin = $5, \
             erased_at = $6 WHERE id = $1",
        )
        .bind(user.0)
        .bind(anonymous_name)
        .bind(anonymous_name.to_ascii_lowercase())
        .bind(true)
        .bind(false)
        .bind(ts(at))
        .change(&mut *tx)
        .await?;
        commit_audited(tx, self, &[audit, &disabled].concat()).await?;
        Ok(ErasedAccount {
            tombstoned,
            removed,
            freed,
            impersonating: sessions.impersonating,
        })
    }
}
