//! Content guards (RATE-6): guards with their counters, their sealed API keys and the review
//! queue (see `conclave_core::store::guards` for the rules). Counters move only by
//! `n = n + k`, one statement per guard; a flag is resolved by one conditional `UPDATE`.

use super::*;
use conclave_core::guards::{GuardMode, GuardRules};
use conclave_core::secretbox::Sealed;
use conclave_core::store::guards::*;
use uuid::Uuid;

const GUARD_COLS: &str = "g.id, g.org_id, g.name, g.mode, g.config, g.position, g.enabled, \
     g.allowed_count, g.flagged_count, g.blocked_count, g.error_count, g.created_at, \
     g.updated_at, EXISTS (SELECT 1 FROM guard_secrets s WHERE s.guard_id = g.id) AS has_api_key";

const GUARDS: Records<Guard> = Records::new("guards g", GUARD_COLS, guard_from_row);

fn guard_from_row(row: &Row) -> StoreResult<Guard> {
    let config: String = get(row, "config")?;
    let mode: String = get(row, "mode")?;
    Ok(from_columns!(row, Guard {
        name, position, enabled, has_api_key, created_at, updated_at;
        id: GuardId(get(row, "id")?),
        org_id: OrgId(get(row, "org_id")?),
        mode: GuardMode::parse(&mode)
            .ok_or_else(|| StoreError::Backend(format!("column mode: {mode:?}")))?,
        rules: serde_json::from_str::<GuardRules>(&config)
            .map_err(|e| StoreError::Backend(format!("column config: {e}")))?,
        counts: counts_from_row(row)?,
    }))
}

/// A guard's counters, from its `*_count` columns (or their sums).
fn counts_from_row(row: &Row) -> StoreResult<GuardCounts> {
    Ok(GuardCounts {
        allowed: get(row, "allowed_count")?,
        flagged: get(row, "flagged_count")?,
        blocked: get(row, "blocked_count")?,
        errors: get(row, "error_count")?,
    })
}

const FLAG_COLS: &str = "id, org_id, guard_id, guard_name, message_id, conversation_id, \
     author_id, created_at, resolved_at, resolved_by, resolution";

const FLAGS: Records<Flag> = Records::new("guard_flags", FLAG_COLS, flag_from_row);

fn flag_from_row(row: &Row) -> StoreResult<Flag> {
    let resolution: Option<String> = get(row, "resolution")?;
    Ok(from_columns!(row, Flag {
        guard_name, created_at, resolved_at;
        id: FlagId(get(row, "id")?),
        org_id: OrgId(get(row, "org_id")?),
        guard_id: get::<Option<Uuid>>(row, "guard_id")?.map(GuardId),
        message_id: MessageId(get(row, "message_id")?),
        conversation_id: ConversationId(get(row, "conversation_id")?),
        author_id: get::<Option<Uuid>>(row, "author_id")?.map(UserId),
        resolved_by: get::<Option<Uuid>>(row, "resolved_by")?.map(UserId),
        resolution: match resolution {
            None => None,
            Some(r) => Some(Resolution::parse(&r)
                .ok_or_else(|| StoreError::Backend(format!("column resolution: {r:?}")))?),
        },
    }))
}

fn config_text(rules: &GuardRules) -> StoreResult<String> {
    serde_json::to_string(rules).map_err(|e| StoreError::Backend(format!("encoding config: {e}")))
}

async fn put_api_key(conn: &mut Conn, guard: GuardId, sealed: &Sealed) -> StoreResult<()> {
    let insert = sqlx::query(
        "INSERT INTO guard_secrets (guard_id, secret_key_id, secret_nonce, secret_ciphertext) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (guard_id) DO UPDATE SET \
         secret_key_id = excluded.secret_key_id, secret_nonce = excluded.secret_nonce, \
         secret_ciphertext = excluded.secret_ciphertext",
    )
    .bind(guard.0);
    bind_sealed(insert, sealed).run(&mut *conn).await?;
    Ok(())
}

/// `sql` (a resolving `UPDATE` of [`GuardStore::resolve_flag`]) with its four values bound.
fn bind_resolution(
    sql: &str,
    id: FlagId,
    by: UserId,
    resolution: Resolution,
    at: DateTime<Utc>,
) -> Query<'_> {
    sqlx::query(sql)
        .bind(id.0)
        .bind(ts(at))
        .bind(by.0)
        .bind(resolution.as_str())
}

#[async_trait]
impl GuardStore for Backend {
    #[tracing::instrument(level = "debug", skip_all, fields(id = %guard.id))]
    async fn create_guard(
        &self,
        guard: &Guard,
        api_key: Option<&Sealed>,
        audit: &[AuditEntry],
    ) -> StoreResult<()> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        orgs::within_cap(&mut tx, guard.org_id, OrgCapped::Guards).await?;
        sqlx::query(
            "INSERT INTO guards (id, org_id, name, kind, mode, config, position, enabled, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(guard.id.0)
        .bind(guard.org_id.0)
        .bind(guard.name.as_str())
        .bind(guard.rules.kind().as_str())
        .bind(guard.mode.as_str())
        .bind(config_text(&guard.rules)?)
        .bind(guard.position)
        .bind(guard.enabled)
        .bind(ts(guard.created_at))
        .bind(ts(guard.updated_at))
        .run(&mut *tx)
        .await?;
        if let Some(sealed) = api_key {
            put_api_key(&mut tx, guard.id, sealed).await?;
        }
        commit_audited(tx, self, audit).await
    }

    async fn guard(&self, id: GuardId) -> StoreResult<Guard> {
        GUARDS.one(self.reader(), "WHERE g.id = $1", id.0).await
    }

    async fn guards(&self, org: OrgId) -> StoreResult<Vec<Guard>> {
        let rest = "WHERE g.org_id = $1 ORDER BY g.position, g.id";
        GUARDS.all(self.reader(), rest, org.0).await
    }

    async fn guard_api_key(&self, id: GuardId) -> StoreResult<Option<Sealed>> {
        sqlx::query(
            "SELECT secret_key_id, secret_nonce, secret_ciphertext FROM guard_secrets \
             WHERE guard_id = $1",
        )
        .bind(id.0)
        .opt(self.reader(), sealed_from_row)
        .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(id = %guard.id))]
    async fn update_guard(
        &self,
        guard: &Guard,
        key: &KeyChange,
        audit: &[AuditEntry],
    ) -> StoreResult<Guard> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        sqlx::query(
            "UPDATE guards SET name = $2, mode = $3, config = $4, position = $5, enabled = $6, \
             updated_at = $7 WHERE id = $1",
        )
        .bind(guard.id.0)
        .bind(guard.name.as_str())
        .bind(guard.mode.as_str())
        .bind(config_text(&guard.rules)?)
        .bind(guard.position)
        .bind(guard.enabled)
        .bind(ts(guard.updated_at))
        .change(&mut *tx)
        .await?;
        match key {
            KeyChange::Keep => {}
            KeyChange::Remove => {
                sqlx::query("DELETE FROM guard_secrets WHERE guard_id = $1")
                    .bind(guard.id.0)
                    .run(&mut *tx)
                    .await?;
            }
            KeyChange::Set(sealed) => put_api_key(&mut tx, guard.id, sealed).await?,
        }
        commit_audited(tx, self, audit).await?;
        self.guard(guard.id).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(%id))]
    async fn delete_guard(&self, id: GuardId, audit: &[AuditEntry]) -> StoreResult<()> {
        sqlx::query("DELETE FROM guards WHERE id = $1")
            .bind(id.0)
            .change_audited(self, audit)
            .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(n = counts.len()))]
    async fn count_guard_decisions(&self, counts: &[(GuardId, GuardCounts)]) -> StoreResult<()> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        for (id, c) in counts {
            sqlx::query(
                "UPDATE guards SET allowed_count = allowed_count + $2, \
                 flagged_count = flagged_count + $3, blocked_count = blocked_count + $4, \
                 error_count = error_count + $5 WHERE id = $1",
            )
            .bind(id.0)
            .bind(c.allowed)
            .bind(c.flagged)
            .bind(c.blocked)
            .bind(c.errors)
            .run(&mut *tx)
            .await?;
        }
        tx.commit().await.map_err(db)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(n = flags.len()))]
    async fn add_flags(&self, flags: &[NewFlag]) -> StoreResult<()> {
        if flags.is_empty() {
            return Ok(());
        }
        let tuples: Vec<String> = (0..flags.len())
            .map(|i| format!("({})", placeholders(i * 8 + 1, 8)))
            .collect();
        let sql = format!(
            "INSERT INTO guard_flags (id, org_id, guard_id, guard_name, message_id, \
             conversation_id, author_id, created_at) VALUES {} \
             ON CONFLICT (message_id, guard_id) WHERE resolved_at IS NULL DO NOTHING",
            tuples.join(", ")
        );
        let mut q = sqlx::query(&sql);
        for f in flags {
            q = q
                .bind(f.id.0)
                .bind(f.org_id.0)
                .bind(f.guard_id.0)
                .bind(f.guard_name.as_str())
                .bind(f.message_id.0)
                .bind(f.conversation_id.0)
                .bind(f.author_id.0)
                .bind(ts(f.created_at));
        }
        q.run(self.writer()).await?;
        Ok(())
    }

    async fn flag(&self, id: FlagId) -> StoreResult<Flag> {
        FLAGS.one(self.reader(), "WHERE id = $1", id.0).await
    }

    async fn flags(
        &self,
        org: OrgId,
        resolved: bool,
        before: Option<FlagId>,
        limit: i64,
    ) -> StoreResult<Vec<Flag>> {
        let state = if resolved {
            "resolved_at IS NOT NULL"
        } else {
            "resolved_at IS NULL"
        };
        let sql = FLAGS.select(&format!(
            "WHERE org_id = $1 AND {state} AND ($2 IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"
        ));
        sqlx::query(&sql)
            .bind(org.0)
            .bind(before.map(|b| b.0))
            .bind(limit)
            .all(self.reader(), flag_from_row)
            .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(id = %resolution.id))]
    async fn resolve_flag(
        &self,
        resolution: FlagResolution,
        audit: &[AuditEntry],
    ) -> StoreResult<Option<Flag>> {
        let FlagResolution {
            id,
            by,
            resolution,
            at,
        } = resolution;
        let mut tx = self.writer().begin().await.map_err(db)?;
        // Only while open: of two reviewers, the first decides.
        let close = |which: &str| {
            format!(
                "UPDATE guard_flags SET resolved_at = $2, resolved_by = $3, resolution = $4 \
                 WHERE resolved_at IS NULL AND {which}"
            )
        };
        let this = close("id = $1");
        if bind_resolution(&this, id, by, resolution, at)
            .run(&mut *tx)
            .await?
            == 0
        {
            tx.rollback().await.map_err(db)?;
            return Ok(None);
        }
        if resolution == Resolution::Removed {
            // The message is gone: every open flag of it is settled with it.
            let siblings = close("message_id = (SELECT message_id FROM guard_flags WHERE id = $1)");
            bind_resolution(&siblings, id, by, resolution, at)
                .run(&mut *tx)
                .await?;
        }
        let flag = FLAGS.one(&mut *tx, "WHERE id = $1", id.0).await?;
        commit_audited(tx, self, audit).await?;
        Ok(Some(flag))
    }

    async fn guard_totals(&self) -> StoreResult<GuardTotals> {
        let mut totals = sqlx::query(
            "SELECT COUNT(*) AS guards, \
             CAST(COALESCE(SUM(CASE WHEN enabled THEN 1 ELSE 0 END), 0) AS BIGINT) AS enabled, \
             COUNT(DISTINCT CASE WHEN enabled THEN org_id END) AS orgs, \
             CAST(COALESCE(SUM(allowed_count), 0) AS BIGINT) AS allowed_count, \
             CAST(COALESCE(SUM(flagged_count), 0) AS BIGINT) AS flagged_count, \
             CAST(COALESCE(SUM(blocked_count), 0) AS BIGINT) AS blocked_count, \
             CAST(COALESCE(SUM(error_count), 0) AS BIGINT) AS error_count FROM guards",
        )
        .one(self.reader(), |row| {
            Ok(from_columns!(row, GuardTotals {
                guards, enabled, orgs;
                counts: counts_from_row(row)?,
                open_flags: 0,
            }))
        })
        .await?;
        totals.open_flags =
            sqlx::query("SELECT COUNT(*) AS n FROM guard_flags WHERE resolved_at IS NULL")
                .one(self.reader(), |r| get(r, "n"))
                .await?;
        Ok(totals)
    }
}
