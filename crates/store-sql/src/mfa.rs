//! Two-factor authentication (TOTP enrolments, recovery codes, sign-in challenges) and the org
//! standing that org-enforced 2FA needs. (The failed-login counters of AUTH-5 are in
//! `throttle.rs`.)
//!
//! Every check-and-change is one conditional statement (or one transaction), so replays,
//! double uses and concurrent failures resolve in the database, on any number of nodes.

use super::*;

const TOTP_COLS: &str = "user_id, secret_key_id, secret_nonce, secret_ciphertext, \
                         enabled_at, last_step, created_at";

const TOTPS: Records<conclave_core::mfa::TotpEnrolment> =
    Records::new("user_totp", TOTP_COLS, totp_from_row);

fn totp_from_row(row: &Row) -> StoreResult<conclave_core::mfa::TotpEnrolment> {
    Ok(from_columns!(row, conclave_core::mfa::TotpEnrolment {
        enabled_at, last_step, created_at;
        user_id: UserId(get(row, "user_id")?),
        secret: sealed_from_row(row)?,
    }))
}

const CHALLENGE_COLS: &str = "user_id, cookie, failures, created_at, expires_at";

const CHALLENGES: Records<conclave_core::mfa::MfaChallenge> =
    Records::new("mfa_challenges", CHALLENGE_COLS, challenge_from_row);

fn challenge_from_row(row: &Row) -> StoreResult<conclave_core::mfa::MfaChallenge> {
    Ok(from_columns!(row, conclave_core::mfa::MfaChallenge {
        cookie, failures, created_at, expires_at;
        user_id: UserId(get(row, "user_id")?),
    }))
}

fn recovery_code_from_row(row: &Row) -> StoreResult<conclave_core::mfa::StoredRecoveryCode> {
    Ok(conclave_core::mfa::StoredRecoveryCode {
        lookup: get(row, "lookup")?,
        hash: get(row, "code_hash")?,
        used_at: get(row, "used_at")?,
    })
}

/// In one transaction: runs `guard` (an `UPDATE` of the user's enrolment that changes it only
/// when the user may have new codes) and, when it changed the row, replaces the user's
/// recovery codes with `codes` and appends `audit`; answers whether it did.
async fn replace_codes_if(
    s: &Backend,
    guard: Query<'_>,
    user: UserId,
    codes: &[conclave_core::mfa::StoredRecoveryCode],
    at: DateTime<Utc>,
    audit: &[AuditEntry],
) -> StoreResult<bool> {
    let mut tx = s.writer().begin().await.map_err(db)?;
    if guard.run(&mut *tx).await? == 0 {
        return Ok(false);
    }
    sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
        .bind(user.0)
        .run(&mut *tx)
        .await?;
    for code in codes {
        sqlx::query(
            "INSERT INTO recovery_codes (user_id, lookup, code_hash, used_at, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(user.0)
        .bind(code.lookup.as_str())
        .bind(code.hash.as_str())
        .bind(code.used_at.map(ts))
        .bind(ts(at))
        .run(&mut *tx)
        .await?;
    }
    commit_audited(tx, s, audit).await?;
    Ok(true)
}

#[async_trait]
impl MfaStore for Backend {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn save_pending_totp(
        &self,
        user: UserId,
        secret: &conclave_core::secretbox::Sealed,
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> StoreResult<bool> {
        // The conditional upsert replaces a pending secret but never an enabled one; no
        // change, no audit row.
        let upsert = sqlx::query(
            "INSERT INTO user_totp (user_id, secret_key_id, secret_nonce, secret_ciphertext, \
             enabled_at, last_step, created_at) VALUES ($1, $2, $3, $4, NULL, NULL, $5) \
             ON CONFLICT (user_id) DO UPDATE SET secret_key_id = excluded.secret_key_id, \
             secret_nonce = excluded.secret_nonce, \
             secret_ciphertext = excluded.secret_ciphertext, last_step = NULL, \
             created_at = excluded.created_at \
             WHERE user_totp.enabled_at IS NULL",
        )
        .bind(user.0);
        let saved = bind_sealed(upsert, secret)
            .bind(ts(at))
            .run_audited(self, audit)
            .await?;
        Ok(saved == 1)
    }

    async fn totp_enrolment(
        &self,
        user: UserId,
    ) -> StoreResult<Option<conclave_core::mfa::TotpEnrolment>> {
        TOTPS.opt(self.reader(), "WHERE user_id = $1", user.0).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn enable_totp(
        &self,
        user: UserId,
        nonce: &[u8],
        step: i64,
        codes: &[conclave_core::mfa::StoredRecoveryCode],
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> StoreResult<bool> {
        let enable = sqlx::query(
            "UPDATE user_totp SET enabled_at = $3, last_step = $4 \
             WHERE user_id = $1 AND secret_nonce = $2 AND enabled_at IS NULL \
             AND (last_step IS NULL OR last_step < $4)",
        )
        .bind(user.0)
        .bind(nonce)
        .bind(ts(at))
        .bind(step);
        replace_codes_if(self, enable, user, codes, at, audit).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn use_totp_step(&self, user: UserId, step: i64) -> StoreResult<bool> {
        let used = sqlx::query(
            "UPDATE user_totp SET last_step = $2 WHERE user_id = $1 \
             AND enabled_at IS NOT NULL AND (last_step IS NULL OR last_step < $2)",
        )
        .bind(user.0)
        .bind(step)
        .run(self.writer())
        .await?;
        Ok(used == 1)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn disable_totp(&self, user: UserId, audit: &[AuditEntry]) -> StoreResult<()> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        for table in ["recovery_codes", "user_totp"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE user_id = $1"))
                .bind(user.0)
                .run(&mut *tx)
                .await?;
        }
        commit_audited(tx, self, audit).await
    }

    async fn recovery_code(
        &self,
        code: conclave_core::mfa::RecoveryCodeRef<'_>,
    ) -> StoreResult<Option<conclave_core::mfa::StoredRecoveryCode>> {
        sqlx::query(
            "SELECT lookup, code_hash, used_at FROM recovery_codes \
             WHERE user_id = $1 AND lookup = $2",
        )
        .bind(code.user.0)
        .bind(code.lookup)
        .opt(self.reader(), recovery_code_from_row)
        .await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn use_recovery_code(
        &self,
        code: conclave_core::mfa::RecoveryCodeRef<'_>,
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> StoreResult<bool> {
        // No change, no audit row.
        let used = sqlx::query(
            "UPDATE recovery_codes SET used_at = $3 \
             WHERE user_id = $1 AND lookup = $2 AND used_at IS NULL",
        )
        .bind(code.user.0)
        .bind(code.lookup)
        .bind(ts(at))
        .run_audited(self, audit)
        .await?;
        Ok(used == 1)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn replace_recovery_codes(
        &self,
        user: UserId,
        codes: &[conclave_core::mfa::StoredRecoveryCode],
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> StoreResult<bool> {
        // Locks the enrolment (PostgreSQL) so a concurrent disable cannot leave codes behind.
        let enabled = sqlx::query(
            "UPDATE user_totp SET enabled_at = enabled_at \
             WHERE user_id = $1 AND enabled_at IS NOT NULL",
        )
        .bind(user.0);
        replace_codes_if(self, enabled, user, codes, at, audit).await
    }

    async fn org_standing(
        &self,
        org: OrgId,
        user: UserId,
    ) -> StoreResult<Option<conclave_core::mfa::OrgStanding>> {
        sqlx::query(
            "SELECT m.role, o.require_2fa, EXISTS (SELECT 1 FROM user_totp t \
             WHERE t.user_id = m.user_id AND t.enabled_at IS NOT NULL) AS has_2fa \
             FROM org_members m JOIN orgs o ON o.id = m.org_id \
             WHERE m.org_id = $1 AND m.user_id = $2",
        )
        .bind(org.0)
        .bind(user.0)
        .opt(self.reader(), |r| {
            Ok(conclave_core::mfa::OrgStanding {
                role: tag(r, "role", OrgRole::parse)?,
                org_requires_2fa: get(r, "require_2fa")?,
                user_has_2fa: get(r, "has_2fa")?,
            })
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn create_mfa_challenge(
        &self,
        challenge: &conclave_core::mfa::MfaChallenge,
        token_hash: &[u8],
        password: Option<&str>,
    ) -> StoreResult<()> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        super::sessions::password_still(&mut tx, challenge.user_id, password).await?;
        sqlx::query(
            "INSERT INTO mfa_challenges (token_hash, user_id, cookie, failures, created_at, \
             expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(token_hash)
        .bind(challenge.user_id.0)
        .bind(challenge.cookie)
        .bind(challenge.failures)
        .bind(ts(challenge.created_at))
        .bind(ts(challenge.expires_at))
        .run(&mut *tx)
        .await?;
        tx.commit().await.map_err(db)
    }

    async fn mfa_challenge(
        &self,
        token_hash: &[u8],
    ) -> StoreResult<Option<conclave_core::mfa::MfaChallenge>> {
        CHALLENGES
            .opt(self.reader(), "WHERE token_hash = $1", token_hash)
            .await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn reserve_mfa_attempt(
        &self,
        token_hash: &[u8],
        now: DateTime<Utc>,
        max_failures: i32,
    ) -> StoreResult<Option<conclave_core::mfa::MfaChallenge>> {
        // One conditional statement: concurrent reservations queue on the row, and each
        // sees the count the one before left.
        sqlx::query(&format!(
            "UPDATE mfa_challenges SET failures = failures + 1 WHERE token_hash = $1 \
             AND expires_at > $2 AND failures < $3 RETURNING {CHALLENGE_COLS}"
        ))
        .bind(token_hash)
        .bind(ts(now))
        .bind(max_failures)
        .opt(self.writer(), challenge_from_row)
        .await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn take_mfa_challenge(
        &self,
        token_hash: &[u8],
        now: DateTime<Utc>,
    ) -> StoreResult<Option<conclave_core::mfa::MfaChallenge>> {
        // One statement: of two concurrent takes only one deletes the row.
        sqlx::query(&format!(
            "DELETE FROM mfa_challenges WHERE token_hash = $1 AND expires_at > $2 \
             RETURNING {CHALLENGE_COLS}"
        ))
        .bind(token_hash)
        .bind(ts(now))
        .opt(self.writer(), challenge_from_row)
        .await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn prune_mfa_challenges(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        prune_before(self, "mfa_challenges", "expires_at", before).await
    }
}
