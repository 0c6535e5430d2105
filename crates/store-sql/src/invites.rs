//! Invites to an organisation: created by code or for a named user, redeemed or accepted within
//! their limits (the membership is added in the same transaction), revoked.

use super::*;

#[async_trait]
impl InviteStore for Backend {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn create_invite(
        &self,
        invite: &Invite,
        code_hash: &[u8],
        audit: &[AuditEntry],
    ) -> StoreResult<()> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        sqlx::query(
            "INSERT INTO invites (id, org_id, code_hash, role, max_uses, uses, expires_at, \
             created_by, created_at, invitee_key) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(invite.id.0)
        .bind(invite.org_id.0)
        .bind(code_hash)
        .bind(invite.role.as_str())
        .bind(invite.max_uses)
        .bind(invite.uses)
        .bind(invite.expires_at.map(ts))
        .bind(invite.created_by.0)
        .bind(ts(invite.created_at))
        .bind(invite.username.as_deref())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        commit_audited(tx, self, audit).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn redeem_invite(
        &self,
        code_hash: &[u8],
        user: UserId,
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> StoreResult<Invite> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        let row = sqlx::query(&format!(
            "UPDATE invites SET uses = uses + 1 WHERE code_hash = $1 \
             AND (max_uses IS NULL OR uses < max_uses) \
             AND (expires_at IS NULL OR expires_at > $2) \
             AND (invitee_key IS NULL OR invitee_key = \
                  (SELECT username_key FROM users WHERE id = $3)) \
             RETURNING {INVITE_COLS}"
        ))
        .bind(code_hash)
        .bind(ts(at))
        .bind(user.0)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?
        .ok_or(StoreError::Conflict(Conflict::InviteExhausted))?;
        let invite = invite_from_row(&row)?;
        // A duplicate membership returns early, so the transaction (and the use) rolls back.
        insert_member(&mut tx, invite.org_id, user, invite.role, at).await?;
        commit_audited(tx, self, audit).await?;
        Ok(invite)
    }

    async fn invite_by_code(&self, code_hash: &[u8]) -> StoreResult<Option<Invite>> {
        let row = sqlx::query(&format!(
            "SELECT {INVITE_COLS} FROM invites WHERE code_hash = $1"
        ))
        .bind(code_hash)
        .fetch_optional(self.reader())
        .await
        .map_err(db)?;
        row.as_ref().map(invite_from_row).transpose()
    }

    async fn org_invites(&self, org: OrgId) -> StoreResult<Vec<Invite>> {
        fetch_all(
            self.reader(),
            sqlx::query(&format!(
                "SELECT {INVITE_COLS} FROM invites WHERE org_id = $1 ORDER BY created_at DESC, id"
            ))
            .bind(org.0),
            invite_from_row,
        )
        .await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn revoke_invite(
        &self,
        org: OrgId,
        id: InviteId,
        audit: &[AuditEntry],
    ) -> StoreResult<()> {
        change_audited(
            self,
            sqlx::query("DELETE FROM invites WHERE id = $1 AND org_id = $2")
                .bind(id.0)
                .bind(org.0),
            audit,
        )
        .await
    }

    async fn pending_invites(
        &self,
        user: UserId,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<PendingInvite>> {
        let rows = sqlx::query(
            "SELECT i.id, i.org_id, o.name AS org_name, i.role, i.expires_at, i.created_at \
             FROM invites i JOIN orgs o ON o.id = i.org_id \
             WHERE i.invitee_key = (SELECT username_key FROM users WHERE id = $1) \
             AND (i.max_uses IS NULL OR i.uses < i.max_uses) \
             AND (i.expires_at IS NULL OR i.expires_at > $2) \
             AND NOT EXISTS (SELECT 1 FROM org_members m \
                             WHERE m.org_id = i.org_id AND m.user_id = $1) \
             ORDER BY i.created_at DESC, i.id",
        )
        .bind(user.0)
        .bind(ts(now))
        .fetch_all(self.reader())
        .await
        .map_err(db)?;
        rows.iter()
            .map(|row| {
                Ok(PendingInvite {
                    id: InviteId(get(row, "id")?),
                    org_id: OrgId(get(row, "org_id")?),
                    org_name: get(row, "org_name")?,
                    role: tag(row, "role", OrgRole::parse)?,
                    expires_at: get(row, "expires_at")?,
                    created_at: get(row, "created_at")?,
                })
            })
            .collect()
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn accept_invite(
        &self,
        id: InviteId,
        user: UserId,
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> StoreResult<Invite> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        let row = sqlx::query(&format!(
            "UPDATE invites SET uses = uses + 1 WHERE id = $1 \
             AND invitee_key = (SELECT username_key FROM users WHERE id = $3) \
             AND (max_uses IS NULL OR uses < max_uses) \
             AND (expires_at IS NULL OR expires_at > $2) RETURNING {INVITE_COLS}"
        ))
        .bind(id.0)
        .bind(ts(at))
        .bind(user.0)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?
        .ok_or(StoreError::NotFound)?;
        let invite = invite_from_row(&row)?;
        // A duplicate membership returns early, so the transaction (and the use) rolls back.
        insert_member(&mut tx, invite.org_id, user, invite.role, at).await?;
        commit_audited(tx, self, audit).await?;
        Ok(invite)
    }
}
