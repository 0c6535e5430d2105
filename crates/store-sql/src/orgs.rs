//! Organizations, their members, invites and teams.

#[doc(hidden)]
#[macro_export]
macro_rules! __store_sql_orgs {
    () => {
        /// Takes the org's row lock (PostgreSQL) inside `conn`'s transaction, so owner-count
        /// checks of concurrent transactions on the same org run one after the other. SQLite
        /// writes are serialised by its single writer connection anyway.
        async fn lock_org(conn: &mut Conn, org: OrgId) -> StoreResult<()> {
            let done = ::sqlx::query("UPDATE orgs SET name = name WHERE id = $1")
                .bind(org.0)
                .execute(&mut *conn)
                .await
                .map_err(db)?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
        }

        async fn role_in(
            conn: &mut Conn,
            org: OrgId,
            user: UserId,
        ) -> StoreResult<Option<OrgRole>> {
            let row =
                ::sqlx::query("SELECT role FROM org_members WHERE org_id = $1 AND user_id = $2")
                    .bind(org.0)
                    .bind(user.0)
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(db)?;
            row.map(|r| tag(&r, "role", OrgRole::parse)).transpose()
        }

        /// Whether someone other than `user` owns the org.
        async fn other_owner(conn: &mut Conn, org: OrgId, user: UserId) -> StoreResult<bool> {
            let row = ::sqlx::query(
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

        async fn set_role(
            conn: &mut Conn,
            org: OrgId,
            user: UserId,
            role: OrgRole,
        ) -> StoreResult<()> {
            let done = ::sqlx::query(
                "UPDATE org_members SET role = $3 WHERE org_id = $1 AND user_id = $2",
            )
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

        async fn insert_member(
            conn: &mut Conn,
            org: OrgId,
            user: UserId,
            role: OrgRole,
            at: DateTime<Utc>,
        ) -> StoreResult<()> {
            ::sqlx::query(
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

        #[::tracing::instrument(level = "debug", skip_all)]
        async fn create_org(s: &Backend, org: &Org, owner: UserId, audit: &[AuditEntry]) -> StoreResult<()> {
            let mut tx = s.writer().begin().await.map_err(db)?;
            ::sqlx::query(
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
            commit_audited(tx, s, audit).await
        }

        async fn org(s: &Backend, id: OrgId) -> StoreResult<Org> {
            let row = ::sqlx::query(&format!("SELECT {ORG_COLS} FROM orgs o WHERE o.id = $1"))
                .bind(id.0)
                .fetch_one(s.reader())
                .await
                .map_err(db)?;
            org_from_row(&row)
        }

        async fn orgs_for_user(s: &Backend, user: UserId) -> StoreResult<Vec<(Org, OrgRole)>> {
            let rows = ::sqlx::query(&format!(
                "SELECT {ORG_COLS}, m.role FROM orgs o JOIN org_members m ON m.org_id = o.id \
                 WHERE m.user_id = $1 ORDER BY o.id"
            ))
            .bind(user.0)
            .fetch_all(s.reader())
            .await
            .map_err(db)?;
            rows.iter()
                .map(|r| Ok((org_from_row(r)?, tag(r, "role", OrgRole::parse)?)))
                .collect()
        }

        #[::tracing::instrument(level = "debug", skip_all)]
        async fn update_org(s: &Backend, id: OrgId, patch: &OrgPatch, audit: &[AuditEntry]) -> StoreResult<Org> {
            let mut tx = s.writer().begin().await.map_err(db)?;
            let row = ::sqlx::query(&format!(
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
            commit_audited(tx, s, audit).await?;
            org_from_row(&row)
        }

        #[::tracing::instrument(level = "debug", skip_all)]
        async fn delete_org(s: &Backend, id: OrgId, audit: &[AuditEntry]) -> StoreResult<()> {
            let mut tx = s.writer().begin().await.map_err(db)?;
            let done = ::sqlx::query("DELETE FROM orgs WHERE id = $1")
                .bind(id.0)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            commit_audited(tx, s, audit).await
        }

        async fn membership(s: &Backend, org: OrgId, user: UserId) -> StoreResult<Option<OrgRole>> {
            let mut conn = s.reader().acquire().await.map_err(db)?;
            role_in(&mut conn, org, user).await
        }

        const MEMBER_SELECT: &str = "SELECT m.org_id, m.role, m.joined_at, \
             u.id AS su_id, u.username AS su_username, u.display_name AS su_display_name, \
             u.kind AS su_kind FROM org_members m JOIN users u ON u.id = m.user_id";

        async fn members(s: &Backend, org: OrgId, page: Page<UserId>) -> StoreResult<Vec<Member>> {
            let k = keyset(page.cursor, "m.user_id", 3);
            let sql = format!(
                "{MEMBER_SELECT} WHERE m.org_id = $1 {} ORDER BY m.user_id {} LIMIT $2",
                k.cond, k.order
            );
            let mut q = ::sqlx::query(&sql).bind(org.0).bind(limit(page.limit));
            if let Some(key) = k.key {
                q = q.bind(key.0);
            }
            let rows = q.fetch_all(s.reader()).await.map_err(db)?;
            rows.iter().map(member_from_row).collect()
        }

        async fn member(s: &Backend, org: OrgId, user: UserId) -> StoreResult<Member> {
            let row = ::sqlx::query(&format!(
                "{MEMBER_SELECT} WHERE m.org_id = $1 AND m.user_id = $2"
            ))
            .bind(org.0)
            .bind(user.0)
            .fetch_one(s.reader())
            .await
            .map_err(db)?;
            member_from_row(&row)
        }

        #[::tracing::instrument(level = "debug", skip_all)]
        async fn add_member(
            s: &Backend,
            org: OrgId,
            user: UserId,
            role: OrgRole,
            at: DateTime<Utc>, audit: &[AuditEntry]) -> StoreResult<()> {
            let mut tx = s.writer().begin().await.map_err(db)?;
            insert_member(&mut tx, org, user, role, at).await?;
            commit_audited(tx, s, audit).await
        }

        #[::tracing::instrument(level = "debug", skip_all)]
        async fn set_member_role(
            s: &Backend,
            org: OrgId,
            user: UserId,
            role: OrgRole, audit: &[AuditEntry]) -> StoreResult<()> {
            let mut tx = s.writer().begin().await.map_err(db)?;
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
            commit_audited(tx, s, audit).await
        }

        #[::tracing::instrument(level = "debug", skip_all)]
        async fn remove_member(s: &Backend, org: OrgId, user: UserId, audit: &[AuditEntry]) -> StoreResult<()> {
            let mut tx = s.writer().begin().await.map_err(db)?;
            remove_member_in(&mut tx, org, user).await?;
            commit_audited(tx, s, audit).await
        }

        /// [`remove_member`] inside the caller's transaction.
        async fn remove_member_in(tx: &mut Conn, org: OrgId, user: UserId) -> StoreResult<()> {
            lock_org(&mut *tx, org).await?;
            let current = role_in(&mut *tx, org, user)
                .await?
                .ok_or(StoreError::NotFound)?;
            if current == OrgRole::Owner && !other_owner(&mut *tx, org, user).await? {
                return Err(StoreError::Conflict(Conflict::LastOrgOwner));
            }
            ::sqlx::query(
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
            let sole = ::sqlx::query(
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
                let conv: ::uuid::Uuid = get(row, "conversation_id")?;
                promote_longest_standing(&mut *tx, ConversationId(conv), user).await?;
            }
            ::sqlx::query(
                "DELETE FROM participants WHERE user_id = $2 \
                 AND conversation_id IN (SELECT id FROM conversations WHERE org_id = $1)",
            )
            .bind(org.0)
            .bind(user.0)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            ::sqlx::query("DELETE FROM org_members WHERE org_id = $1 AND user_id = $2")
                .bind(org.0)
                .bind(user.0)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            Ok(())
        }

        #[::tracing::instrument(level = "debug", skip_all)]
        async fn transfer_org(
            s: &Backend,
            org: OrgId,
            from: UserId,
            to: UserId, audit: &[AuditEntry]) -> StoreResult<()> {
            let mut tx = s.writer().begin().await.map_err(db)?;
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
            commit_audited(tx, s, audit).await
        }

        #[::tracing::instrument(level = "debug", skip_all)]
        async fn create_invite(s: &Backend, invite: &Invite, code_hash: &[u8], audit: &[AuditEntry]) -> StoreResult<()> {
            let mut tx = s.writer().begin().await.map_err(db)?;
            ::sqlx::query(
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
            commit_audited(tx, s, audit).await
        }

        #[::tracing::instrument(level = "debug", skip_all)]
        async fn redeem_invite(
            s: &Backend,
            code_hash: &[u8],
            user: UserId,
            at: DateTime<Utc>, audit: &[AuditEntry]) -> StoreResult<Invite> {
            let mut tx = s.writer().begin().await.map_err(db)?;
            let row = ::sqlx::query(&format!(
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
            commit_audited(tx, s, audit).await?;
            Ok(invite)
        }

        async fn invite_by_code(s: &Backend, code_hash: &[u8]) -> StoreResult<Option<Invite>> {
            let row = ::sqlx::query(&format!(
                "SELECT {INVITE_COLS} FROM invites WHERE code_hash = $1"
            ))
            .bind(code_hash)
            .fetch_optional(s.reader())
            .await
            .map_err(db)?;
            row.as_ref().map(invite_from_row).transpose()
        }

        async fn org_invites(s: &Backend, org: OrgId) -> StoreResult<Vec<Invite>> {
            let rows = ::sqlx::query(&format!(
                "SELECT {INVITE_COLS} FROM invites WHERE org_id = $1 ORDER BY created_at DESC, id"
            ))
            .bind(org.0)
            .fetch_all(s.reader())
            .await
            .map_err(db)?;
            rows.iter().map(invite_from_row).collect()
        }

        #[::tracing::instrument(level = "debug", skip_all)]
        async fn revoke_invite(s: &Backend, org: OrgId, id: InviteId, audit: &[AuditEntry]) -> StoreResult<()> {
            let mut tx = s.writer().begin().await.map_err(db)?;
            let done = ::sqlx::query("DELETE FROM invites WHERE id = $1 AND org_id = $2")
                .bind(id.0)
                .bind(org.0)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            commit_audited(tx, s, audit).await
        }

        async fn pending_invites(
            s: &Backend,
            user: UserId,
            now: DateTime<Utc>,
        ) -> StoreResult<Vec<PendingInvite>> {
            let rows = ::sqlx::query(
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
            .fetch_all(s.reader())
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

        #[::tracing::instrument(level = "debug", skip_all)]
        async fn accept_invite(
            s: &Backend,
            id: InviteId,
            user: UserId,
            at: DateTime<Utc>, audit: &[AuditEntry]) -> StoreResult<Invite> {
            let mut tx = s.writer().begin().await.map_err(db)?;
            let row = ::sqlx::query(&format!(
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
            commit_audited(tx, s, audit).await?;
            Ok(invite)
        }

        fn team_from_row(row: &Row) -> StoreResult<Team> {
            Ok(Team {
                id: TeamId(get(row, "id")?),
                org_id: OrgId(get(row, "org_id")?),
                name: get(row, "name")?,
                member_ids: Vec::new(),
                created_at: get(row, "created_at")?,
            })
        }

        #[::tracing::instrument(level = "debug", skip_all)]
        async fn create_team(s: &Backend, team: &Team, audit: &[AuditEntry]) -> StoreResult<()> {
            let mut tx = s.writer().begin().await.map_err(db)?;
            ::sqlx::query(
                "INSERT INTO teams (id, org_id, name, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(team.id.0)
            .bind(team.org_id.0)
            .bind(team.name.as_str())
            .bind(ts(team.created_at))
            .execute(&mut *tx)
            .await
            .map_err(unique(Conflict::TeamNameTaken))?;
            for member in &team.member_ids {
                insert_team_member(&mut tx, team.id, *member).await?;
            }
            commit_audited(tx, s, audit).await
        }

        async fn teams(s: &Backend, org: OrgId) -> StoreResult<Vec<Team>> {
            let mut conn = s.reader().acquire().await.map_err(db)?;
            let rows = ::sqlx::query(
                "SELECT id, org_id, name, created_at FROM teams WHERE org_id = $1 ORDER BY id",
            )
            .bind(org.0)
            .fetch_all(&mut *conn)
            .await
            .map_err(db)?;
            let mut teams = rows
                .iter()
                .map(team_from_row)
                .collect::<StoreResult<Vec<_>>>()?;
            let members = ::sqlx::query(
                "SELECT tm.team_id, tm.user_id FROM team_members tm \
                 JOIN teams t ON t.id = tm.team_id WHERE t.org_id = $1 ORDER BY tm.user_id",
            )
            .bind(org.0)
            .fetch_all(&mut *conn)
            .await
            .map_err(db)?;
            for row in &members {
                let team: ::uuid::Uuid = get(row, "team_id")?;
                let user: ::uuid::Uuid = get(row, "user_id")?;
                if let Some(t) = teams.iter_mut().find(|t| t.id.0 == team) {
                    t.member_ids.push(UserId(user));
                }
            }
            Ok(teams)
        }

        async fn team(s: &Backend, id: TeamId) -> StoreResult<Team> {
            let mut conn = s.reader().acquire().await.map_err(db)?;
            let row = ::sqlx::query("SELECT id, org_id, name, created_at FROM teams WHERE id = $1")
                .bind(id.0)
                .fetch_one(&mut *conn)
                .await
                .map_err(db)?;
            let mut team = team_from_row(&row)?;
            let members = ::sqlx::query(
                "SELECT user_id FROM team_members WHERE team_id = $1 ORDER BY user_id",
            )
            .bind(id.0)
            .fetch_all(&mut *conn)
            .await
            .map_err(db)?;
            team.member_ids = members
                .iter()
                .map(|r| get(r, "user_id").map(UserId))
                .collect::<StoreResult<_>>()?;
            Ok(team)
        }

        /// Adds a team member; adding one twice is not an error.
        async fn insert_team_member(
            conn: &mut Conn,
            team: TeamId,
            user: UserId,
        ) -> StoreResult<()> {
            ::sqlx::query(
                "INSERT INTO team_members (team_id, user_id) VALUES ($1, $2) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(team.0)
            .bind(user.0)
            .execute(&mut *conn)
            .await
            .map_err(db)?;
            Ok(())
        }

        #[::tracing::instrument(level = "debug", skip_all)]
        async fn add_team_member(s: &Backend, team: TeamId, user: UserId, audit: &[AuditEntry]) -> StoreResult<()> {
            let mut tx = s.writer().begin().await.map_err(db)?;
            insert_team_member(&mut tx, team, user).await?;
            commit_audited(tx, s, audit).await
        }

        #[::tracing::instrument(level = "debug", skip_all)]
        async fn remove_team_member(s: &Backend, team: TeamId, user: UserId, audit: &[AuditEntry]) -> StoreResult<()> {
            let mut tx = s.writer().begin().await.map_err(db)?;
            let done =
                ::sqlx::query("DELETE FROM team_members WHERE team_id = $1 AND user_id = $2")
                    .bind(team.0)
                    .bind(user.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            commit_audited(tx, s, audit).await
        }

        async fn user_teams(s: &Backend, org: OrgId, user: UserId) -> StoreResult<Vec<TeamId>> {
            let rows = ::sqlx::query(
                "SELECT tm.team_id FROM team_members tm JOIN teams t ON t.id = tm.team_id \
                 WHERE t.org_id = $1 AND tm.user_id = $2 ORDER BY tm.team_id",
            )
            .bind(org.0)
            .bind(user.0)
            .fetch_all(s.reader())
            .await
            .map_err(db)?;
            rows.iter().map(|r| get(r, "team_id").map(TeamId)).collect()
        }
    };
}
