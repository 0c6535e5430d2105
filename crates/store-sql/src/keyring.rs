//! Secrets at rest (DATA-3): the `secret_keys` table of the key ring, and every sealed column
//! seen as one list of (column, row) → sealed value, so a rotation can walk and re-seal them.
//!
//! Re-sealing is a compare-and-swap on the key id and nonce the rotation read: a value its
//! owner replaced meanwhile is never overwritten. Retiring is one conditional update, so a key
//! that is current or still seals a stored secret is never retired.

use super::*;
use conclave_core::store::keyring::{RetireOutcome, SecretKeyRecord, SecretRef, StoredSecret};

/// Where a sealed column lives: table, row id column and the three sealed columns.
struct SealedColumnSql {
    table: &'static str,
    row: &'static str,
    key_id: &'static str,
    nonce: &'static str,
    ciphertext: &'static str,
}

fn sealed_column_sql(column: conclave_core::secretbox::SealedColumn) -> SealedColumnSql {
    match column {
        conclave_core::secretbox::SealedColumn::UserTotpSecret => SealedColumnSql {
            table: "user_totp",
            row: "user_id",
            key_id: "secret_key_id",
            nonce: "secret_nonce",
            ciphertext: "secret_ciphertext",
        },
        conclave_core::secretbox::SealedColumn::WebhookSecret => SealedColumnSql {
            table: "webhook_secrets",
            row: "id",
            key_id: "secret_key_id",
            nonce: "secret_nonce",
            ciphertext: "secret_ciphertext",
        },
        conclave_core::secretbox::SealedColumn::AgentApiKey => SealedColumnSql {
            table: "agent_keys",
            row: "agent_id",
            key_id: "secret_key_id",
            nonce: "secret_nonce",
            ciphertext: "secret_ciphertext",
        },
        conclave_core::secretbox::SealedColumn::GuardApiKey => SealedColumnSql {
            table: "guard_secrets",
            row: "guard_id",
            key_id: "secret_key_id",
            nonce: "secret_nonce",
            ciphertext: "secret_ciphertext",
        },
        conclave_core::secretbox::SealedColumn::WidgetIdentitySecret => SealedColumnSql {
            table: "widget_key_secrets",
            row: "key_id",
            key_id: "secret_key_id",
            nonce: "secret_nonce",
            ciphertext: "secret_ciphertext",
        },
    }
}

fn secret_key_from_row(row: &Row) -> StoreResult<SecretKeyRecord> {
    Ok(from_columns!(row, SecretKeyRecord { id, wrapped_key, created_at, retired_at; }))
}

async fn secret_key_use_count(s: &Backend, id: i32) -> StoreResult<u64> {
    Ok(s.secret_key_usage()
        .await?
        .into_iter()
        .find(|(k, _)| *k == id)
        .map_or(0, |(_, n)| n))
}

#[async_trait]
impl SecretKeyStore for Backend {
    async fn secret_keys(&self) -> StoreResult<Vec<SecretKeyRecord>> {
        sqlx::query("SELECT id, wrapped_key, created_at, retired_at FROM secret_keys ORDER BY id")
            .all(self.reader(), secret_key_from_row)
            .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(id = key.id))]
    async fn add_secret_key(&self, key: &SecretKeyRecord) -> StoreResult<bool> {
        let added = sqlx::query(
            "INSERT INTO secret_keys (id, wrapped_key, created_at, retired_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING",
        )
        .bind(key.id)
        .bind(key.wrapped_key.as_deref())
        .bind(ts(key.created_at))
        .bind(key.retired_at.map(ts))
        .run(self.writer())
        .await?;
        Ok(added == 1)
    }

    async fn secret_key_usage(&self) -> StoreResult<Vec<(i32, u64)>> {
        let mut usage: Vec<(i32, u64)> = Vec::new();
        for column in conclave_core::secretbox::SealedColumn::ALL {
            let c = sealed_column_sql(column);
            let counts: Vec<(i32, i64)> = sqlx::query(&format!(
                "SELECT {k} AS key_id, COUNT(*) AS n FROM {t} GROUP BY {k}",
                k = c.key_id,
                t = c.table
            ))
            .all(self.reader(), |r| Ok((get(r, "key_id")?, get(r, "n")?)))
            .await?;
            for (id, n) in counts {
                let n = u64::try_from(n).unwrap_or(0);
                match usage.iter_mut().find(|(k, _)| *k == id) {
                    Some((_, total)) => *total += n,
                    None => usage.push((id, n)),
                }
            }
        }
        usage.sort_unstable();
        Ok(usage)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(id))]
    async fn retire_secret_key(
        &self,
        id: i32,
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> StoreResult<RetireOutcome> {
        let in_use = conclave_core::secretbox::SealedColumn::ALL
            .iter()
            .map(|column| {
                let c = sealed_column_sql(*column);
                format!("SELECT 1 FROM {} WHERE {} = $1", c.table, c.key_id)
            })
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        let sql = format!(
            "UPDATE secret_keys SET retired_at = $2 WHERE id = $1 AND retired_at IS NULL \
             AND EXISTS (SELECT 1 FROM secret_keys newer \
                         WHERE newer.id > $1 AND newer.retired_at IS NULL) \
             AND NOT EXISTS ({in_use})"
        );
        // The update decides; the reads after a refusal only say why. Should the reason be
        // gone by then (a rotation finished meanwhile), try again.
        for _ in 0..3 {
            let mut tx = self.writer().begin().await.map_err(db)?;
            let retired = sqlx::query(&sql)
                .bind(id)
                .bind(ts(at))
                .run(&mut *tx)
                .await?;
            if retired == 1 {
                commit_audited(tx, self, audit).await?;
                return Ok(RetireOutcome::Retired);
            }
            tx.rollback().await.map_err(db)?;
            let retired: Option<DateTime<Utc>> =
                sqlx::query("SELECT retired_at FROM secret_keys WHERE id = $1")
                    .bind(id)
                    .one(self.writer(), |r| get(r, "retired_at"))
                    .await?;
            if retired.is_some() {
                return Ok(RetireOutcome::AlreadyRetired);
            }
            let newer: i64 = sqlx::query(
                "SELECT COUNT(*) AS n FROM secret_keys WHERE id > $1 AND retired_at IS NULL",
            )
            .bind(id)
            .one(self.writer(), |r| get(r, "n"))
            .await?;
            if newer == 0 {
                return Ok(RetireOutcome::Current);
            }
            let count = secret_key_use_count(self, id).await?;
            if count > 0 {
                return Ok(RetireOutcome::InUse(count));
            }
        }
        Err(StoreError::Backend(format!(
            "retiring secrets key {id}: the key ring kept changing"
        )))
    }

    async fn sealed_secrets(
        &self,
        after: Option<&SecretRef>,
        limit: i64,
    ) -> StoreResult<Vec<StoredSecret>> {
        let mut out = Vec::new();
        for column in conclave_core::secretbox::SealedColumn::ALL {
            if after.is_some_and(|a| column < a.column) {
                continue;
            }
            let remaining = limit - out.len() as i64;
            if remaining <= 0 {
                break;
            }
            let c = sealed_column_sql(column);
            let from = after.filter(|a| a.column == column).map(|a| a.row);
            let select = format!(
                "SELECT {row} AS row_id, {k} AS secret_key_id, {n} AS secret_nonce, \
                 {ct} AS secret_ciphertext \
                 FROM {t}",
                row = c.row,
                k = c.key_id,
                n = c.nonce,
                ct = c.ciphertext,
                t = c.table
            );
            // Without a row to start after, `$1 IS NULL` keeps every row.
            let rows = sqlx::query(&format!(
                "{select} WHERE ($1 IS NULL OR {r} > $1) ORDER BY {r} LIMIT $2",
                r = c.row
            ))
            .bind(from)
            .bind(remaining)
            .all(self.reader(), |row| {
                Ok((get(row, "row_id")?, sealed_from_row(row)?))
            })
            .await?;
            for (row, sealed) in rows {
                out.push(StoredSecret {
                    at: SecretRef { column, row },
                    sealed,
                });
            }
        }
        Ok(out)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn replace_sealed_secret(
        &self,
        at: &SecretRef,
        old: &conclave_core::secretbox::Sealed,
        new: &conclave_core::secretbox::Sealed,
    ) -> StoreResult<bool> {
        let c = sealed_column_sql(at.column);
        let sql = format!(
            "UPDATE {t} SET {k} = $4, {n} = $5, {ct} = $6 \
             WHERE {row} = $1 AND {k} = $2 AND {n} = $3",
            t = c.table,
            k = c.key_id,
            n = c.nonce,
            ct = c.ciphertext,
            row = c.row
        );
        let swap = sqlx::query(&sql)
            .bind(at.row)
            .bind(old.key_id)
            .bind(old.nonce.as_slice());
        let replaced = bind_sealed(swap, new).run(self.writer()).await?;
        Ok(replaced == 1)
    }
}
