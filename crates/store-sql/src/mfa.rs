//! Two-factor authentication (TOTP enrolments, recovery codes, sign-in challenges), the org
//! standing that org-enforced 2FA needs, and the failed-login counters of AUTH-5.
//!
//! Every check-and-change is one conditional statement (or one transaction), so replays,
//! double uses and concurrent failures resolve in the database, on any number of nodes. The
//! counters are updated one key per statement: a statement never holds one counter's row lock
//! while waiting for another's, so concurrent updates and prunes cannot deadlock.

#[doc(hidden)]
#[macro_export]
macro_rules! __store_sql_mfa {
    () => {
        const TOTP_COLS: &str = "user_id, secret_key_id, secret_nonce, secret_ciphertext, \
                                 enabled_at, last_step, created_at";

        fn totp_from_row(row: &Row) -> StoreResult<::conclave_core::mfa::TotpEnrolment> {
            Ok(::conclave_core::mfa::TotpEnrolment {
                user_id: UserId(get(row, "user_id")?),
                secret: ::conclave_core::secretbox::Sealed {
                    key_id: get(row, "secret_key_id")?,
                    nonce: get(row, "secret_nonce")?,
                    ciphertext: get(row, "secret_ciphertext")?,
                },
                enabled_at: get(row, "enabled_at")?,
                last_step: get(row, "last_step")?,
                created_at: get(row, "created_at")?,
            })
        }

        const CHALLENGE_COLS: &str = "user_id, cookie, failures, created_at, expires_at";

        fn challenge_from_row(row: &Row) -> StoreResult<::conclave_core::mfa::MfaChallenge> {
            Ok(::conclave_core::mfa::MfaChallenge {
                user_id: UserId(get(row, "user_id")?),
                cookie: get(row, "cookie")?,
                failures: get(row, "failures")?,
                created_at: get(row, "created_at")?,
                expires_at: get(row, "expires_at")?,
            })
        }

        fn throttle_from_row(row: &Row) -> StoreResult<::conclave_core::mfa::ThrottleCount> {
            Ok(::conclave_core::mfa::ThrottleCount {
                key: ::conclave_core::mfa::ThrottleKey {
                    account: get(row, "account")?,
                    ip: get(row, "ip")?,
                },
                failures: get(row, "failures")?,
                last_failure_at: get(row, "last_failure_at")?,
            })
        }

        #[::tracing::instrument(level = "debug", skip_all)]
        async fn save_pending_totp(
            s: &Backend,
            user: UserId,
            secret: &::conclave_core::secretbox::Sealed,
            at: DateTime<Utc>, audit: &[AuditEntry]) -> StoreResult<bool> {
            let mut tx = s.writer().begin().await.map_err(db)?;
            // The conditional upsert replaces a pending secret but never an enabled one.
            let done = ::sqlx::query(
                "INSERT INTO user_totp (user_id, secret_key_id, secret_nonce, secret_ciphertext, \
                 enabled_at, last_step, created_at) VALUES ($1, $2, $3, $4, NULL, NULL, $5) \
                 ON CONFLICT (user_id) DO UPDATE SET secret_key_id = excluded.secret_key_id, \
                 secret_nonce = excluded.secret_nonce, \
                 secret_ciphertext = excluded.secret_ciphertext, last_step = NULL, \
                 created_at = excluded.created_at \
                 WHERE user_totp.enabled_at IS NULL",
            )
            .bind(user.0)
            .bind(secret.key_id)
            .bind(secret.nonce.as_slice())
            .bind(secret.ciphertext.as_slice())
            .bind(ts(at))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            // No change, no audit row.
            if done.rows_affected() != 1 {
                return Ok(false);
            }
            commit_audited(tx, s, audit).await?;
            Ok(true)
        }

        async fn totp_enrolment(
            s: &Backend,
            user: UserId,
        ) -> StoreResult<Option<::conclave_core::mfa::TotpEnrolment>> {
            let row = ::sqlx::query(&format!("SELECT {TOTP_COLS} FROM user_totp WHERE user_id = $1"))
                .bind(user.0)
                .fetch_optional(s.reader())
                .await
                .map_err(db)?;
            row.as_ref().map(totp_from_row).transpose()
        }

        async fn insert_recovery_codes(
            conn: &mut Conn,
            user: UserId,
            codes: &[::conclave_core::mfa::StoredRecoveryCode],
            at: DateTime<Utc>,
        ) -> StoreResult<()> {
            ::sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
                .bind(user.0)
                .execute(&mut *conn)
                .await
                .map_err(db)?;
            for code in codes {
                ::sqlx::query(
                    "INSERT INTO recovery_codes (user_id, lookup, code_hash, used_at, created_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(user.0)
                .bind(code.lookup.as_str())
                .bind(code.hash.as_str())
                .bind(code.used_at.map(ts))
                .bind(ts(at))
                .execute(&mut *conn)
                .await
                .map_err(db)?;
            }
            Ok(())
        }

        #[::tracing::instrument(level = "debug", skip_all)]
        async fn enable_totp(
            s: &Backend,
            user: UserId,
            nonce: &[u8],
            step: i64,
            codes: &[::conclave_core::mfa::StoredRecoveryCode],
            at: DateTime<Utc>, audit: &[AuditEntry]) -> StoreResult<bool> {
            let mut tx = s.writer().begin().await.map_err(db)?;
            let done = ::sqlx::query(
                "UPDATE user_totp SET enabled_at = $3, last_step = $4 \
                 WHERE user_id = $1 AND secret_nonce = $2 AND enabled_at IS NULL \
                 AND (last_step IS NULL OR last_step < $4)",
            )
            .bind(user.0)
            .bind(nonce)
            .bind(ts(at))
            .bind(step)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            if done.rows_affected() == 0 {
                return Ok(false);
            }
            insert_recovery_codes(&mut tx, user, codes, at).await?;
            commit_audited(tx, s, audit).await?;
            Ok(true)
        }

        #[::tracing::instrument(level = "debug", skip_all)]
        async fn use_totp_step(s: &Backend, user: UserId, step: i64) -> StoreResult<bool> {
            let done = ::sqlx::query(
                "UPDATE user_totp SET last_step = $2 WHERE user_id = $1 \
                 AND enabled_at IS NOT NULL AND (last_step IS NULL OR last_step < $2)",
            )
            .bind(user.0)
            .bind(step)
            .execute(s.writer())
            .await
            .map_err(db)?;
            Ok(done.rows_affected() == 1)
        }

        #[::tracing::instrument(level = "debug", skip_all)]
        async fn disable_totp(s: &Backend, user: UserId, audit: &[AuditEntry]) -> StoreResult<()> {
            let mut tx = s.writer().begin().await.map_err(db)?;
            ::sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
                .bind(user.0)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            ::sqlx::query("DELETE FROM user_totp WHERE user_id = $1")
                .bind(user.0)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            commit_audited(tx, s, audit).await?;
            Ok(())
        }

        async fn recovery_code(
            s: &Backend,
            user: UserId,
            lookup: &str,
        ) -> StoreResult<Option<::conclave_core::mfa::StoredRecoveryCode>> {
            let row = ::sqlx::query(
                "SELECT lookup, code_hash, used_at FROM recovery_codes \
                 WHERE user_id = $1 AND lookup = $2",
            )
            .bind(user.0)
            .bind(lookup)
            .fetch_optional(s.reader())
            .await
            .map_err(db)?;
            row.map(|r| {
                Ok(::conclave_core::mfa::StoredRecoveryCode {
                    lookup: get(&r, "lookup")?,
                    hash: get(&r, "code_hash")?,
                    used_at: get(&r, "used_at")?,
                })
            })
            .transpose()
        }

        #[::tracing::instrument(level = "debug", skip_all)]
        async fn use_recovery_code(
            s: &Backend,
            user: UserId,
            lookup: &str,
            at: DateTime<Utc>, audit: &[AuditEntry]) -> StoreResult<bool> {
            let mut tx = s.writer().begin().await.map_err(db)?;
            let done = ::sqlx::query(
                "UPDATE recovery_codes SET used_at = $3 \
                 WHERE user_id = $1 AND lookup = $2 AND used_at IS NULL",
            )
            .bind(user.0)
            .bind(lookup)
            .bind(ts(at))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            // No change, no audit row.
            if done.rows_affected() != 1 {
                return Ok(false);
            }
            commit_audited(tx, s, audit).await?;
            Ok(true)
        }

        #[::tracing::instrument(level = "debug", skip_all)]
        async fn replace_recovery_codes(
            s: &Backend,
            user: UserId,
            codes: &[::conclave_core::mfa::StoredRecoveryCode],
            at: DateTime<Utc>, audit: &[AuditEntry]) -> StoreResult<bool> {
            let mut tx = s.writer().begin().await.map_err(db)?;
            // Locks the enrolment (PostgreSQL) so a concurrent disable cannot leave codes behind.
            let on = ::sqlx::query(
                "UPDATE user_totp SET enabled_at = enabled_at \
                 WHERE user_id = $1 AND enabled_at IS NOT NULL",
            )
            .bind(user.0)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            if on.rows_affected() == 0 {
                return Ok(false);
            }
            insert_recovery_codes(&mut tx, user, codes, at).await?;
            commit_audited(tx, s, audit).await?;
            Ok(true)
        }

        async fn org_standing(
            s: &Backend,
            org: OrgId,
            user: UserId,
        ) -> StoreResult<Option<::conclave_core::mfa::OrgStanding>> {
            let row = ::sqlx::query(
                "SELECT m.role, o.require_2fa, EXISTS (SELECT 1 FROM user_totp t \
                 WHERE t.user_id = m.user_id AND t.enabled_at IS NOT NULL) AS has_2fa \
                 FROM org_members m JOIN orgs o ON o.id = m.org_id \
                 WHERE m.org_id = $1 AND m.user_id = $2",
            )
            .bind(org.0)
            .bind(user.0)
            .fetch_optional(s.reader())
            .await
            .map_err(db)?;
            row.map(|r| {
                Ok(::conclave_core::mfa::OrgStanding {
                    role: tag(&r, "role", OrgRole::parse)?,
                    org_requires_2fa: get(&r, "require_2fa")?,
                    user_has_2fa: get(&r, "has_2fa")?,
                })
            })
            .transpose()
        }

        #[::tracing::instrument(level = "debug", skip_all)]
        async fn create_mfa_challenge(
            s: &Backend,
            challenge: &::conclave_core::mfa::MfaChallenge,
            token_hash: &[u8],
        ) -> StoreResult<()> {
            ::sqlx::query(
                "INSERT INTO mfa_challenges (token_hash, user_id, cookie, failures, created_at, \
                 expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(token_hash)
            .bind(challenge.user_id.0)
            .bind(challenge.cookie)
            .bind(challenge.failures)
            .bind(ts(challenge.created_at))
            .bind(ts(challenge.expires_at))
            .execute(s.writer())
            .await
            .map_err(db)?;
            Ok(())
        }

        async fn mfa_challenge(
            s: &Backend,
            token_hash: &[u8],
        ) -> StoreResult<Option<::conclave_core::mfa::MfaChallenge>> {
            let row = ::sqlx::query(&format!(
                "SELECT {CHALLENGE_COLS} FROM mfa_challenges WHERE token_hash = $1"
            ))
            .bind(token_hash)
            .fetch_optional(s.reader())
            .await
            .map_err(db)?;
            row.as_ref().map(challenge_from_row).transpose()
        }

        #[::tracing::instrument(level = "debug", skip_all)]
        async fn reserve_mfa_attempt(
            s: &Backend,
            token_hash: &[u8],
            now: DateTime<Utc>,
            max_failures: i32,
        ) -> StoreResult<Option<::conclave_core::mfa::MfaChallenge>> {
            // One conditional statement: concurrent reservations queue on the row, and each
            // sees the count the one before left.
            let row = ::sqlx::query(&format!(
                "UPDATE mfa_challenges SET failures = failures + 1 WHERE token_hash = $1 \
                 AND expires_at > $2 AND failures < $3 RETURNING {CHALLENGE_COLS}"
            ))
            .bind(token_hash)
            .bind(ts(now))
            .bind(max_failures)
            .fetch_optional(s.writer())
            .await
            .map_err(db)?;
            row.as_ref().map(challenge_from_row).transpose()
        }

        #[::tracing::instrument(level = "debug", skip_all)]
        async fn take_mfa_challenge(
            s: &Backend,
            token_hash: &[u8],
            now: DateTime<Utc>,
        ) -> StoreResult<Option<::conclave_core::mfa::MfaChallenge>> {
            // One statement: of two concurrent takes only one deletes the row.
            let row = ::sqlx::query(&format!(
                "DELETE FROM mfa_challenges WHERE token_hash = $1 AND expires_at > $2 \
                 RETURNING {CHALLENGE_COLS}"
            ))
            .bind(token_hash)
            .bind(ts(now))
            .fetch_optional(s.writer())
            .await
            .map_err(db)?;
            row.as_ref().map(challenge_from_row).transpose()
        }

        #[::tracing::instrument(level = "debug", skip_all)]
        async fn prune_mfa_challenges(s: &Backend, before: DateTime<Utc>) -> StoreResult<u64> {
            let done = ::sqlx::query("DELETE FROM mfa_challenges WHERE expires_at < $1")
                .bind(ts(before))
                .execute(s.writer())
                .await
                .map_err(db)?;
            Ok(done.rows_affected())
        }

        async fn login_failures(
            s: &Backend,
            keys: &[::conclave_core::mfa::ThrottleKey],
        ) -> StoreResult<Vec<::conclave_core::mfa::ThrottleCount>> {
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
            let mut query = ::sqlx::query(&sql);
            for key in keys {
                query = query.bind(key.account.as_str()).bind(key.ip.as_str());
            }
            let rows = query.fetch_all(s.reader()).await.map_err(db)?;
            rows.iter().map(throttle_from_row).collect()
        }

        /// The conditional upsert of AUTH-5: the `WHERE` of its update part is the gate, checked
        /// on the row as it is when the statement holds it (PostgreSQL re-reads a row a
        /// concurrent statement changed; SQLite runs one writer at a time), so no two attempts
        /// pass on the same count. `prev_failure_at` carries the old last failure out through
        /// `RETURNING`, for a refund.
        #[::tracing::instrument(level = "debug", skip_all)]
        async fn reserve_login_attempt(
            s: &Backend,
            gate: &::conclave_core::mfa::ThrottleGate,
            at: DateTime<Utc>,
            forget_before: DateTime<Utc>,
        ) -> StoreResult<Option<::conclave_core::mfa::ThrottleReservation>> {
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
            let mut query = ::sqlx::query(&sql)
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
            let row = query.fetch_optional(s.writer()).await.map_err(db)?;
            row.map(|r| {
                Ok(::conclave_core::mfa::ThrottleReservation {
                    key: gate.key.clone(),
                    at: ts(at),
                    previous: get(&r, "prev_failure_at")?,
                })
            })
            .transpose()
        }

        #[::tracing::instrument(level = "debug", skip_all)]
        async fn refund_login_attempt(
            s: &Backend,
            r: &::conclave_core::mfa::ThrottleReservation,
        ) -> StoreResult<()> {
            let mut tx = s.writer().begin().await.map_err(db)?;
            // The only failure left is this one: the counter goes.
            ::sqlx::query(
                "DELETE FROM login_failures WHERE account = $1 AND ip = $2 AND failures <= 1 \
                 AND last_failure_at = $3",
            )
            .bind(r.key.account.as_str())
            .bind(r.key.ip.as_str())
            .bind(ts(r.at))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            // Otherwise one less, and the last failure before this one again unless a later one
            // was counted meanwhile.
            ::sqlx::query(
                "UPDATE login_failures SET failures = failures - 1, last_failure_at = CASE \
                 WHEN last_failure_at = $3 AND $4 IS NOT NULL THEN $4 ELSE last_failure_at END, \
                 pending = CASE WHEN pending > 0 THEN pending - 1 ELSE 0 END \
                 WHERE account = $1 AND ip = $2 AND failures > 1",
            )
            .bind(r.key.account.as_str())
            .bind(r.key.ip.as_str())
            .bind(ts(r.at))
            .bind(r.previous.map(ts))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            tx.commit().await.map_err(db)
        }

        #[::tracing::instrument(level = "debug", skip_all)]
        async fn settle_login_attempt(
            s: &Backend,
            r: &::conclave_core::mfa::ThrottleReservation,
        ) -> StoreResult<()> {
            ::sqlx::query(
                "UPDATE login_failures SET pending = pending - 1 \
                 WHERE account = $1 AND ip = $2 AND pending > 0",
            )
            .bind(r.key.account.as_str())
            .bind(r.key.ip.as_str())
            .execute(s.writer())
            .await
            .map_err(db)?;
            Ok(())
        }

        async fn pending_login_attempts(
            s: &Backend,
            keys: &[::conclave_core::mfa::ThrottleKey],
        ) -> StoreResult<i64> {
            let mut total = 0;
            for key in keys {
                let row = ::sqlx::query(
                    "SELECT pending FROM login_failures WHERE account = $1 AND ip = $2",
                )
                .bind(key.account.as_str())
                .bind(key.ip.as_str())
                .fetch_optional(s.reader())
                .await
                .map_err(db)?;
                if let Some(row) = row {
                    let n: i64 = get(&row, "pending")?;
                    total += n;
                }
            }
            Ok(total)
        }

        #[::tracing::instrument(level = "debug", skip_all)]
        async fn clear_login_failures(
            s: &Backend,
            keys: &[::conclave_core::mfa::ThrottleKey],
        ) -> StoreResult<()> {
            for key in keys {
                ::sqlx::query("DELETE FROM login_failures WHERE account = $1 AND ip = $2")
                    .bind(key.account.as_str())
                    .bind(key.ip.as_str())
                    .execute(s.writer())
                    .await
                    .map_err(db)?;
            }
            Ok(())
        }

        #[::tracing::instrument(level = "debug", skip_all)]
        async fn prune_login_failures(s: &Backend, before: DateTime<Utc>) -> StoreResult<u64> {
            let done = ::sqlx::query("DELETE FROM login_failures WHERE last_failure_at < $1")
                .bind(ts(before))
                .execute(s.writer())
                .await
                .map_err(db)?;
            Ok(done.rows_affected())
        }
    };
}
