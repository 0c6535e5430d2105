//! Organizations and their members: the owner lock, roles, the last-owner rule, removal with
//! ownership hand-over, and transfers.

use super::*;

/// Takes the org's row lock (PostgreSQL) inside `conn`'s transaction, so owner-count
/// checks of concurrent transactions on the same org run one after the other. SQLite
/// writes are serialised by its single writer connection anyway.
async fn lock_org(conn: &mut Conn, org: OrgId) -> StoreResult<()> {
    let done = sqlx::query("UPDATE orgs SET name = name WHERE id = $1")
        .bind(org.0)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

async fn role_in(conn: &mut Conn, org: OrgId, user: UserId) -> StoreResult<Option<OrgRole>> {
    let row = sqlx::query("SELECT role FROM org_members WHERE org_id = $1 AND user_id = $2")
        .bind(org.0)
        .bind(user.0)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
    row.map(|r| tag(&r, "role", OrgRole::parse)).transpose()
}

/// Whether someone other than `user` owns the org.
async fn other_owner(conn: &mut Conn, org: OrgId, user: UserId) -> StoreResult<bool> {
    let row = sqlx::query(
        "SELECT EXISTS (SELECT 1 FROM org_members WHERE org_id = $1 AND user_id <> $2 \
         AND role = 'owner') AS other",
    )
    .bind(org.0)
    .bind(user.0)
    .fetch_one(&mut *conn)
    .await
    .map_err(db)?;
    get(&row, "other")
}

async fn set_role(conn: &mut Conn, org: OrgId, user: UserId, role: OrgRole) -> StoreResult<()> {
    let done = sqlx::query("UPDATE org_members SET role = $3 WHERE org_id = $1 AND user_id = $2")
        .bind(org.0)
        .bind(user.0)
        .bind(role.as_str())
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub(super) async fn insert_member(
    conn: &mut Conn,
    org: OrgId,
    user: UserId,
    role: OrgRole,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO org_members (org_id, user_id, role, joined_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(org.0)
    .bind(user.0)
    .bind(role.as_str())
    .bind(ts(at))
    .execute(&mut *conn)
    .await
    .map_err(unique(Conflict::AlreadyMember))?;
    Ok(())
}

const MEMBER_SELECT: &str = "SELECT m.org_id, m.role, m.joined_at, \
     u.id AS su_id, u.username AS su_username, u.display_name AS su_display_name, \
     u.kind AS su_kind FROM org_members m JOIN users u ON u.id = m.user_id";

/// [`remove_member`] inside the caller's transaction; answers the conversations left.
pub(super) async fn remove_member_in(
    tx: &mut Conn,
    org: OrgId,
    user: UserId,
) -> StoreResult<Vec<ConversationId>> {
    lock_org(&mut *tx, org).await?;
    let current = role_in(&mut *tx, org, user)
        .await?
        .ok_or(StoreError::NotFound)?;
    if current == OrgRole::Owner && !other_owner(&mut *tx, org, user).await? {
        return Err(StoreError::Conflict(Conflict::LastOrgOwner));
    }
    sqlx::query(
        "DELETE FROM team_members WHERE user_id = $2 \
         AND team_id IN (SELECT id FROM teams WHERE org_id = $1)",
    )
    .bind(org.0)
    .bind(user.0)
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    // Conversations in the org that only this member owns pass to whoever has been in
    // them longest.
    let sole = sqlx::query(
        "SELECT p.conversation_id FROM participants p \
         JOIN conversations c ON c.id = p.conversation_id \
         WHERE c.org_id = $1 AND p.user_id = $2 AND p.role = 'owner' \
         AND NOT EXISTS (SELECT 1 FROM participants o WHERE o.conversation_id = \
         p.conversation_id AND o.user_id <> $2 AND o.role = 'owner')",
    )
    .bind(org.0)
    .bind(user.0)
    .fetch_all(&mut *tx)
    .await
    .map_err(db)?;
    for row in &sole {
        let conv: uuid::Uuid = get(row, "conversation_id")?;
        promote_longest_standing(&mut *tx, ConversationId(conv), user).await?;
    }
    let left = sqlx::query(
        "DELETE FROM participants WHERE user_id = $2 \
         AND conversation_id IN (SELECT id FROM conversations WHERE org_id = $1) \
         RETURNING conversation_id",
    )
    .bind(org.0)
    .bind(user.0)
    .fetch_all(&mut *tx)
    .await
    .map_err(db)?
    .iter()
    .map(|row| get(row, "conversation_id").map(ConversationId))
    .collect::<StoreResult<Vec<_>>>()?;
    sqlx::query("DELETE FROM org_members WHERE org_id = $1 AND user_id = $2")
        .bind(org.0)
        .bind(user.0)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    Ok(left)
}

#[async_trait]
impl OrgStore for Backend {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn create_org(&self, org: &Org, owner: UserId, audit: &[AuditEntry]) -> StoreResult<()> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        sqlx::query(
            "INSERT INTO orgs (id, name, require_2fa, message_retention_days, \
             audit_retention_days, erasure, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(org.id.0)
        .bind(org.name.as_str())
        .bind(org.require_2fa)
        .bind(org.message_retention_days)
        .bind(org.audit_retention_days)
        .bind(org.erasure.as_str())
        .bind(ts(org.created_at))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        insert_member(&mut tx, org.id, owner, OrgRole::Owner, org.created_at).await?;
        commit_audited(tx, self, audit).await
    }

    async fn org(&self, id: OrgId) -> StoreResult<Org> {
        fetch_one(
            self.reader(),
            sqlx::query(&format!("SELECT {ORG_COLS} FROM orgs o WHERE o.id = $1")).bind(id.0),
            org_from_row,
        )
        .await
    }

    async fn orgs_for_user(&self, user: UserId) -> StoreResult<Vec<(Org, OrgRole)>> {
        let rows = sqlx::query(&format!(
            "SELECT {ORG_COLS}, m.role FROM orgs o JOIN org_members m ON m.org_id = o.id \
             WHERE m.user_id = $1 ORDER BY o.id"
        ))
        .bind(user.0)
        .fetch_all(self.reader())
        .await
        .map_err(db)?;
        rows.iter()
            .map(|r| Ok((org_from_row(r)?, tag(r, "role", OrgRole::parse)?)))
            .collect()
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn update_org(
        &self,
        id: OrgId,
        patch: &OrgPatch,
        audit: &[AuditEntry],
    ) -> StoreResult<Org> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        let row = sqlx::query(&format!(
            "UPDATE orgs SET name = COALESCE($2, name), \
             require_2fa = COALESCE($3, require_2fa), \
             message_retention_days = CASE WHEN $4 THEN $5 ELSE message_retention_days END, \
             audit_retention_days = CASE WHEN $6 THEN $7 ELSE audit_retention_days END, \
             erasure = COALESCE($8, erasure) WHERE id = $1 RETURNING {ORG_RETURNING}"
        ))
        .bind(id.0)
        .bind(patch.name.as_ref().map(Name::as_str))
        .bind(patch.require_2fa)
        .bind(patch.message_retention_days.is_some())
        .bind(patch.message_retention_days.flatten())
        .bind(patch.audit_retention_days.is_some())
        .bind(patch.audit_retention_days.flatten())
        .bind(patch.erasure.map(ErasurePolicy::as_str))
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        commit_audited(tx, self, audit).await?;
        org_from_row(&row)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn delete_org(&self, id: OrgId, audit: &[AuditEntry]) -> StoreResult<()> {
        change_audited(
            self,
            sqlx::query("DELETE FROM orgs WHERE id = $1").bind(id.0),
            audit,
        )
        .await
    }

    async fn membership(&self, org: OrgId, user: UserId) -> StoreResult<Option<OrgRole>> {
        let mut conn = self.reader().acquire().await.map_err(db)?;
        role_in(&mut conn, org, user).await
    }

    async fn members(&self, org: OrgId, page: Page<UserId>) -> StoreResult<Vec<Member>> {
        let k = keyset(page.cursor, "m.user_id", 3);
        let sql = format!(
            "{MEMBER_SELECT} WHERE m.org_id = $1 {} ORDER BY m.user_id {} LIMIT $2",
            k.cond, k.order
        );
        let q = k.bind_key(
            sqlx::query(&sql).bind(org.0).bind(limit(page.limit)),
            |key| key.0,
        );
        let rows = q.fetch_all(self.reader()).await.map_err(db)?;
        rows.iter().map(member_from_row).collect()
    }

    async fn member(&self, org: OrgId, user: UserId) -> StoreResult<Member> {
        fetch_one(
            self.reader(),
            sqlx::query(&format!(
                "{MEMBER_SELECT} WHERE m.org_id = $1 AND m.user_id = $2"
            ))
            .bind(org.0)
            .bind(user.0),
            member_from_row,
        )
        .await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn add_member(
        &self,
        org: OrgId,
        user: UserId,
        role: OrgRole,
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> StoreResult<()> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        insert_member(&mut tx, org, user, role, at).await?;
        commit_audited(tx, self, audit).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn set_member_role(
        &self,
        org: OrgId,
        user: UserId,
        role: OrgRole,
        audit: &[AuditEntry],
    ) -> StoreResult<()> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        lock_org(&mut tx, org).await?;
        let current = role_in(&mut tx, org, user)
            .await?
            .ok_or(StoreError::NotFound)?;
        if current == OrgRole::Owner
            && role != OrgRole::Owner
            && !other_owner(&mut tx, org, user).await?
        {
            return Err(StoreError::Conflict(Conflict::LastOrgOwner));
        }
        set_role(&mut tx, org, user, role).await?;
        commit_audited(tx, self, audit).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn remove_member(
        &self,
        org: OrgId,
        user: UserId,
        audit: &[AuditEntry],
    ) -> StoreResult<Vec<ConversationId>> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        let left = remove_member_in(&mut tx, org, user).await?;
        commit_audited(tx, self, audit).await?;
        Ok(left)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn transfer_org(
        &self,
        org: OrgId,
        from: UserId,
        to: UserId,
        audit: &[AuditEntry],
    ) -> StoreResult<()> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        lock_org(&mut tx, org).await?;
        if from == to {
            // Nothing changes hands; the member must still exist.
            role_in(&mut tx, org, from)
                .await?
                .ok_or(StoreError::NotFound)?;
            return tx.commit().await.map_err(db);
        }
        set_role(&mut tx, org, to, OrgRole::Owner).await?;
        set_role(&mut tx, org, from, OrgRole::Admin).await?;
        commit_audited(tx, self, audit).await
    }
}
