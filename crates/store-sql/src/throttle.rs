//! The failed-login throttle: counters reserved, refunded and settled in single conditional
//! statements, so concurrent sign-ins on any number of nodes pass only as often as allowed. The counters are
//! updated one key per statement: a statement never holds one counter's row lock while waiting
//! for another's, so concurrent updates and prunes cannot deadlock.

use super::*;

fn throttle_from_row(row: &Row) -> StoreResult<conclave_core::mfa::ThrottleCount> {
    Ok(conclave_core::mfa::ThrottleCount {
        key: conclave_core::mfa::ThrottleKey {
            account: get(row, "account")?,
            ip: get(row, "ip")?,
        },
        failures: get(row, "failures")?,
        last_failure_at: get(row, "last_failure_at")?,
    })
}

#[async_trait]
impl LoginThrottleStore for Backend {
    async fn login_failures(
        &self,
        keys: &[conclave_core::mfa::ThrottleKey],
    ) -> StoreResult<Vec<conclave_core::mfa::ThrottleCount>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let cond = (0..keys.len())
            .map(|i| format!("(account = ${} AND ip = ${})", 2 * i + 1, 2 * i + 2))
            .collect::<Vec<_>>()
            .join(" OR ");
        let sql = format!(
            "SELECT account, ip, failures, last_failure_at FROM login_failures \
             WHERE {cond} ORDER BY account, ip"
        );
        let mut query = sqlx::query(&sql);
        for key in keys {
            query = query.bind(key.account.as_str()).bind(key.ip.as_str());
        }
        query.all(self.reader(), throttle_from_row).await
    }

    /// The conditional upsert of AUTH-5: the `WHERE` of its update part is the gate, checked
    /// on the row as it is when the statement holds it (PostgreSQL re-reads a row a
    /// concurrent statement changed; SQLite runs one writer at a time), so no two attempts
    /// pass on the same count. `prev_failure_at` carries the old last failure out through
    /// `RETURNING`, for a refund.
    #[tracing::instrument(level = "debug", skip_all)]
    async fn reserve_login_attempt(
        &self,
        gate: &conclave_core::mfa::ThrottleGate,
        at: DateTime<Utc>,
        forget_before: DateTime<Utc>,
    ) -> StoreResult<Option<conclave_core::mfa::ThrottleReservation>> {
        // $1..$5 are fixed; the cutoffs follow as (count, instant) pairs.
        let mut cases = String::new();
        let mut n = 5;
        for (i, _) in gate.cutoffs.iter().enumerate() {
            if i + 1 == gate.cutoffs.len() {
                cases.push_str(&format!(" ELSE ${}", n + 1));
                n += 1;
            } else {
                cases.push_str(&format!(" WHEN ${} THEN ${}", n + 1, n + 2));
                n += 2;
            }
        }
        let cutoff = match gate.cutoffs.len() {
            0 => None,
            // One cutoff for every count: no CASE (which needs a WHEN).
            1 => Some("$6".to_owned()),
            _ => Some(format!("(CASE login_failures.failures{cases} END)")),
        };
        let gate_sql = cutoff.map_or_else(
            || "1 = 1".to_owned(),
            |c| {
                format!(
                    "login_failures.failures < $5 OR login_failures.last_failure_at < $4 \
                     OR login_failures.last_failure_at <= {c}"
                )
            },
        );
        let sql = format!(
            "INSERT INTO login_failures (account, ip, failures, last_failure_at, \
             prev_failure_at, pending) VALUES ($1, $2, 1, $3, NULL, 1) \
             ON CONFLICT (account, ip) DO UPDATE SET \
             failures = CASE WHEN login_failures.last_failure_at < $4 THEN 1 \
                 ELSE login_failures.failures + 1 END, \
             pending = CASE WHEN login_failures.last_failure_at < $4 THEN 1 \
                 ELSE login_failures.pending + 1 END, \
             prev_failure_at = CASE WHEN login_failures.last_failure_at < $4 THEN NULL \
                 ELSE login_failures.last_failure_at END, \
             last_failure_at = CASE \
                 WHEN login_failures.last_failure_at > excluded.last_failure_at \
                 THEN login_failures.last_failure_at \
                 ELSE excluded.last_failure_at END \
             WHERE {gate_sql} \
             RETURNING prev_failure_at"
        );
        let mut query = sqlx::query(&sql)
            .bind(gate.key.account.as_str())
            .bind(gate.key.ip.as_str())
            .bind(ts(at))
            .bind(ts(forget_before))
            .bind(gate.free);
        for (i, cutoff) in gate.cutoffs.iter().enumerate() {
            if i + 1 < gate.cutoffs.len() {
                query = query.bind(gate.free + i as i64);
            }
            query = query.bind(ts(*cutoff));
        }
        let previous = query
            .opt(self.writer(), |r| get(r, "prev_failure_at"))
            .await?;
        Ok(
            previous.map(|previous| conclave_core::mfa::ThrottleReservation {
                key: gate.key.clone(),
                at: ts(at),
                previous,
            }),
        )
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn refund_login_attempt(
        &self,
        r: &conclave_core::mfa::ThrottleReservation,
    ) -> StoreResult<()> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        // The only failure left is this one: the counter goes.
        sqlx::query(
            "DELETE FROM login_failures WHERE account = $1 AND ip = $2 AND failures <= 1 \
             AND last_failure_at = $3",
        )
        .bind(r.key.account.as_str())
        .bind(r.key.ip.as_str())
        .bind(ts(r.at))
        .run(&mut *tx)
        .await?;
        // Otherwise one less, and the last failure before this one again unless a later one
        // was counted meanwhile.
        sqlx::query(
            "UPDATE login_failures SET failures = failures - 1, last_failure_at = CASE \
             WHEN last_failure_at = $3 AND $4 IS NOT NULL THEN $4 ELSE last_failure_at END, \
             pending = CASE WHEN pending > 0 THEN pending - 1 ELSE 0 END \
             WHERE account = $1 AND ip = $2 AND failures > 1",
        )
        .bind(r.key.account.as_str())
        .bind(r.key.ip.as_str())
        .bind(ts(r.at))
        .bind(r.previous.map(ts))
        .run(&mut *tx)
        .await?;
        tx.commit().await.map_err(db)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn settle_login_attempts(
        &self,
        reservations: &[conclave_core::mfa::ThrottleReservation],
        audit: &[AuditEntry],
    ) -> StoreResult<()> {
        // One key per statement, in key order: two settlements of the same counters never
        // wait on each other's row locks.
        let mut ordered: Vec<_> = reservations.iter().collect();
        ordered.sort_by(|a, b| {
            (a.key.account.as_str(), a.key.ip.as_str())
                .cmp(&(b.key.account.as_str(), b.key.ip.as_str()))
        });
        let mut tx = self.writer().begin().await.map_err(db)?;
        for r in ordered {
            sqlx::query(
                "UPDATE login_failures SET pending = pending - 1 \
                 WHERE account = $1 AND ip = $2 AND pending > 0",
            )
            .bind(r.key.account.as_str())
            .bind(r.key.ip.as_str())
            .run(&mut *tx)
            .await?;
        }
        commit_audited(tx, self, audit).await
    }

    async fn pending_login_attempts(
        &self,
        keys: &[conclave_core::mfa::ThrottleKey],
    ) -> StoreResult<i64> {
        let mut total = 0;
        for key in keys {
            let pending: Option<i64> =
                sqlx::query("SELECT pending FROM login_failures WHERE account = $1 AND ip = $2")
                    .bind(key.account.as_str())
                    .bind(key.ip.as_str())
                    .opt(self.reader(), |r| get(r, "pending"))
                    .await?;
            total += pending.unwrap_or(0);
        }
        Ok(total)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn clear_login_failures(
        &self,
        keys: &[conclave_core::mfa::ThrottleKey],
    ) -> StoreResult<()> {
        for key in keys {
            sqlx::query("DELETE FROM login_failures WHERE account = $1 AND ip = $2")
                .bind(key.account.as_str())
                .bind(key.ip.as_str())
                .run(self.writer())
                .await?;
        }
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn prune_login_failures(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        prune_before(self, "login_failures", "last_failure_at", before).await
    }
}
