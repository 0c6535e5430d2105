//! Invites to an organisation: created by code or for a named user, redeemed or accepted within
//! their limits (the membership is added in the same transaction), revoked.

use super::*;

fn pending_invite_from_row(row: &Row) -> StoreResult<PendingInvite> {
    Ok(from_columns!(row, PendingInvite {
        org_name, expires_at, created_at;
        id: InviteId(get(row, "id")?),
        org_id: OrgId(get(row, "org_id")?),
        role: tag(row, "role", OrgRole::parse)?,
    }))
}

/// Takes one use of the invite `take` (an `UPDATE … RETURNING` [`INVITE_COLS`] that binds the
/// invite as `$1`, `at` as `$2` and `user` as `$3`) and adds `user` to its org, in one
/// transaction; answers the invite as used and the membership. `refused` when the statement
/// takes nothing.
async fn take_invite(
    s: &Backend,
    take: Query<'_>,
    refused: StoreError,
    by: InviteUse,
    audit: &[AuditEntry],
) -> StoreResult<(Invite, Member)> {
    let mut tx = s.writer().begin().await.map_err(db)?;
    let taken = take_invite_in(&mut tx, take, refused, by).await?;
    commit_audited(tx, s, audit).await?;
    Ok(taken)
}

/// Takes a use of the invite `take` selects for `user` and adds the membership, inside `conn`'s
/// transaction; `refused` when the invite cannot be used.
async fn take_invite_in(
    conn: &mut Conn,
    take: Query<'_>,
    refused: StoreError,
    InviteUse { user, at }: InviteUse,
) -> StoreResult<(Invite, Member)> {
    let Some(invite) = take
        .bind(ts(at))
        .bind(user.0)
        .opt(&mut *conn, invite_from_row)
        .await?
    else {
        return Err(refused);
    };
    // The maker must still be able to grant the role now (AZ-7): returning early rolls the
    // transaction, and so the use, back.
    let maker = sqlx::query(
        "SELECT m.role FROM org_members m JOIN users u ON u.id = m.user_id \
         WHERE m.org_id = $1 AND m.user_id = $2 AND NOT u.disabled",
    )
    .bind(invite.org_id.0)
    .bind(invite.created_by.0)
    .opt(&mut *conn, |r| tag(r, "role", OrgRole::parse))
    .await?;
    if !conclave_core::policy::invite_still_grants(maker, invite.role) {
        return Err(refused);
    }
    // A duplicate membership returns early, so the transaction (and the use) rolls back.
    ORG_MEMBERS
        .insert(&mut *conn, invite.org_id.0, user, invite.role, at)
        .await?;
    let member = ORG_MEMBERS.entry(&mut *conn, invite.org_id.0, user).await?;
    Ok((invite, member))
}

/// The conditional use of an invite by its code's hash (see `redeem_invite`).
fn redeem_sql() -> String {
    format!(
        "UPDATE invites SET uses = uses + 1 WHERE code_hash = $1 \
         AND (max_uses IS NULL OR uses < max_uses) \
         AND (expires_at IS NULL OR expires_at > $2) \
         AND (invitee_key IS NULL OR invitee_key = \
              (SELECT username_key FROM users WHERE id = $3)) \
         RETURNING {INVITE_COLS}"
    )
}

#[async_trait]
impl InviteStore for Backend {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn create_invite(
        &self,
        invite: &Invite,
        code_hash: &[u8],
        audit: &[AuditEntry],
    ) -> StoreResult<()> {
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
        .change_audited(self, audit)
        .await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn redeem_invite(
        &self,
        code_hash: &[u8],
        by: InviteUse,
        audit: &[AuditEntry],
    ) -> StoreResult<(Invite, Member)> {
        let sql = redeem_sql();
        let exhausted = StoreError::Conflict(Conflict::InviteExhausted);
        let take = sqlx::query(&sql).bind(code_hash);
        take_invite(self, take, exhausted, by, audit).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn register_with_invite(
        &self,
        user: &NewUser,
        code_hash: &[u8],
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> StoreResult<(User, Invite, Member)> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        let created = super::users::insert_user(&mut tx, user).await?;
        let sql = redeem_sql();
        let exhausted = StoreError::Conflict(Conflict::InviteExhausted);
        let take = sqlx::query(&sql).bind(code_hash);
        let by = InviteUse { user: user.id, at };
        let (invite, member) = take_invite_in(&mut tx, take, exhausted, by).await?;
        commit_audited(tx, self, audit).await?;
        Ok((created, invite, member))
    }

    async fn invite_by_code(&self, code_hash: &[u8]) -> StoreResult<Option<Invite>> {
        INVITES
            .opt(self.reader(), "WHERE code_hash = $1", code_hash)
            .await
    }

    async fn org_invites(&self, org: OrgId) -> StoreResult<Vec<Invite>> {
        let rest = "WHERE org_id = $1 ORDER BY created_at DESC, id";
        INVITES.all(self.reader(), rest, org.0).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn revoke_invite(
        &self,
        org: OrgId,
        id: InviteId,
        audit: &[AuditEntry],
    ) -> StoreResult<()> {
        let keys = [("id", id.0), ("org_id", org.0)];
        delete_keyed(self, "invites", keys, audit).await
    }

    async fn pending_invites(
        &self,
        user: UserId,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<PendingInvite>> {
        // With the maker's current role (none when they left the org or are disabled): an
        // invite its maker could not grant now is not listed (AZ-7, as at its use).
        let listed = sqlx::query(
            "SELECT i.id, i.org_id, o.name AS org_name, i.role, i.expires_at, i.created_at, \
             (SELECT mk.role FROM org_members mk JOIN users mu ON mu.id = mk.user_id \
              WHERE mk.org_id = i.org_id AND mk.user_id = i.created_by AND NOT mu.disabled) \
             AS maker_role \
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
        .all(self.reader(), |r| {
            let maker = get::<Option<String>>(r, "maker_role")?;
            let maker = maker.and_then(|m| OrgRole::parse(&m).ok());
            Ok((pending_invite_from_row(r)?, maker))
        })
        .await?;
        Ok(listed
            .into_iter()
            .filter(|(p, maker)| conclave_core::policy::invite_still_grants(*maker, p.role))
            .map(|(p, _)| p)
            .collect())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn accept_invite(
        &self,
        id: InviteId,
        by: InviteUse,
        audit: &[AuditEntry],
    ) -> StoreResult<(Invite, Member)> {
        let sql = format!(
            "UPDATE invites SET uses = uses + 1 WHERE id = $1 \
             AND invitee_key = (SELECT username_key FROM users WHERE id = $3) \
             AND (max_uses IS NULL OR uses < max_uses) \
             AND (expires_at IS NULL OR expires_at > $2) RETURNING {INVITE_COLS}"
        );
        let take = sqlx::query(&sql).bind(id.0);
        take_invite(self, take, StoreError::NotFound, by, audit).await
    }
}
