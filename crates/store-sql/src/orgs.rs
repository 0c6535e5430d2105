//! Organizations and their members: the owner lock, roles, the last-owner rule, removal with
//! ownership hand-over, and transfers. The membership statements are the roster's
//! ([`ORG_MEMBERS`]).

use super::*;

/// Conversation ids from the `conversation_id` column.
fn conversation_id_from_row(row: &Row) -> StoreResult<ConversationId> {
    get(row, "conversation_id").map(ConversationId)
}

/// A participation without its user: the conversation, the role and when it began.
fn participation_from_row(
    row: &Row,
) -> StoreResult<(ConversationId, ConversationRole, DateTime<Utc>)> {
    Ok((
        conversation_id_from_row(row)?,
        tag(row, "role", ConversationRole::parse)?,
        get(row, "joined_at")?,
    ))
}

/// Takes `org`'s row lock in `conn`'s transaction and refuses (`Conflict::OrgCap`) a creation
/// that would take the org past its cap of `what`: concurrent creations in one org count one
/// after the other, each seeing the rows the others committed. A missing org is `NotFound`.
pub(super) async fn within_cap(conn: &mut Conn, org: OrgId, what: OrgCapped) -> StoreResult<()> {
    ORG_MEMBERS.lock(conn, org.0).await?;
    let count = match what {
        OrgCapped::Webhooks => "SELECT COUNT(*) AS n FROM webhooks WHERE org_id = $1",
        OrgCapped::Agents => "SELECT COUNT(*) AS n FROM agents WHERE org_id = $1",
        OrgCapped::WidgetKeys => {
            "SELECT COUNT(*) AS n FROM widget_keys WHERE org_id = $1 AND revoked_at IS NULL"
        }
        OrgCapped::Guards => "SELECT COUNT(*) AS n FROM guards WHERE org_id = $1",
    };
    let held: i64 = sqlx::query(count)
        .bind(org.0)
        .one(&mut *conn, |r| get(r, "n"))
        .await?;
    if usize::try_from(held).unwrap_or(usize::MAX) >= what.most() {
        return Err(StoreError::Conflict(Conflict::OrgCap(what)));
    }
    Ok(())
}

/// AZ-2: `NotFound` unless every one of `users` is a member of `org`. Read under the org's lock,
/// which a member's removal holds from its start: a removal committing meanwhile is either seen
/// here, or waits and then takes what the caller adds (participations, team places) with the
/// rest.
pub(super) async fn members_only(
    tx: &mut Conn,
    org: uuid::Uuid,
    users: &[UserId],
) -> StoreResult<()> {
    ORG_MEMBERS.lock(tx, org).await?;
    for user in users {
        if ORG_MEMBERS.role(&mut *tx, org, *user).await?.is_none() {
            return Err(StoreError::NotFound);
        }
    }
    Ok(())
}

/// Under the org's lock: `Conflict::RolesChanged` unless the rule the change was decided by
/// still allows it with the roles held now — the member's (`target`) and its maker's (AZ-2).
async fn roles_still(
    tx: &mut Conn,
    org: OrgId,
    target: OrgRole,
    decided: Option<DecidedOn<'_>>,
) -> StoreResult<()> {
    let Some(decided) = decided else {
        return Ok(());
    };
    let by = ORG_MEMBERS.role(&mut *tx, org.0, decided.by).await?;
    if (decided.allows)(by, target) {
        Ok(())
    } else {
        Err(StoreError::Conflict(Conflict::RolesChanged))
    }
}

/// [`remove_member`] inside the caller's transaction; answers the membership and the
/// participations removed, and the `webhook.disabled` rows of the endpoints the member made in
/// the org, made from `like` (the removal's own audit row) for the caller to write.
pub(super) async fn remove_member_in(
    tx: &mut Conn,
    org: OrgId,
    user: UserId,
    decided: Option<DecidedOn<'_>>,
    like: Option<&AuditEntry>,
) -> StoreResult<(Removed, Vec<AuditEntry>)> {
    ORG_MEMBERS.lock(tx, org.0).await?;
    let member = ORG_MEMBERS.entry(&mut *tx, org.0, user).await?;
    roles_still(tx, org, member.role, decided).await?;
    if member.role == OrgRole::Owner && !ORG_MEMBERS.others(tx, org.0, user).await?.owner {
        return Err(StoreError::Conflict(Conflict::LastOrgOwner));
    }
    sqlx::query(
        "DELETE FROM team_members WHERE user_id = $2 \
         AND team_id IN (SELECT id FROM teams WHERE org_id = $1)",
    )
    .bind(org.0)
    .bind(user.0)
    .run(&mut *tx)
    .await?;
    // The conversations they own here are locked first (in id order), as an owner leaving one
    // locks it: a co-owner's departure meanwhile is either seen below (and this member's
    // ownership passed on) or waits and then finds no other owner (409) — never both gone.
    let owned = sqlx::query(
        "SELECT p.conversation_id FROM participants p \
         JOIN conversations c ON c.id = p.conversation_id \
         WHERE c.org_id = $1 AND p.user_id = $2 AND p.role = 'owner' ORDER BY p.conversation_id",
    )
    .bind(org.0)
    .bind(user.0)
    .all(&mut *tx, conversation_id_from_row)
    .await?;
    for conv in owned {
        PARTICIPANTS.lock(tx, conv.0).await?;
    }
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
    .all(&mut *tx, conversation_id_from_row)
    .await?;
    for conv in sole {
        promote_longest_standing(tx, conv, user).await?;
    }
    let left = sqlx::query(
        "DELETE FROM participants WHERE user_id = $2 \
         AND conversation_id IN (SELECT id FROM conversations WHERE org_id = $1) \
         RETURNING conversation_id, role, joined_at",
    )
    .bind(org.0)
    .bind(user.0)
    .all(&mut *tx, participation_from_row)
    .await?;
    ORG_MEMBERS.remove(tx, org.0, user).await?;
    let webhooks_disabled =
        webhooks::disable_made_by(tx, user, webhooks::MakerLeft::Org(org), like).await?;
    // The member's own summary stands in for the join the statement cannot make.
    let participations = left
        .into_iter()
        .map(|(conversation_id, role, joined_at)| Participant {
            conversation_id,
            user: member.user.clone(),
            role,
            joined_at,
        })
        .collect();
    Ok((
        Removed {
            member,
            participations,
        },
        webhooks_disabled,
    ))
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
        .run(&mut *tx)
        .await?;
        ORG_MEMBERS
            .insert(&mut tx, org.id.0, owner, OrgRole::Owner, org.created_at)
            .await?;
        commit_audited(tx, self, audit).await
    }

    async fn org(&self, id: OrgId) -> StoreResult<Org> {
        ORGS.one(self.reader(), "WHERE o.id = $1", id.0).await
    }

    async fn orgs_for_user(&self, user: UserId) -> StoreResult<Vec<(Org, OrgRole)>> {
        sqlx::query(&format!(
            "SELECT {ORG_COLS}, m.role FROM orgs o JOIN org_members m ON m.org_id = o.id \
             WHERE m.user_id = $1 ORDER BY o.id"
        ))
        .bind(user.0)
        .all(self.reader(), |r| {
            Ok((org_from_row(r)?, tag(r, "role", OrgRole::parse)?))
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn update_org(
        &self,
        id: OrgId,
        patch: &OrgPatch,
        audit: &[AuditEntry],
    ) -> StoreResult<Org> {
        sqlx::query(&format!(
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
        .one_audited(self, audit, org_from_row)
        .await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn delete_org(&self, id: OrgId, audit: &[AuditEntry]) -> StoreResult<FreedBlobs> {
        delete_with_files(self, "orgs", "org_id", id.0, audit).await
    }

    async fn membership(&self, org: OrgId, user: UserId) -> StoreResult<Option<OrgRole>> {
        ORG_MEMBERS.role(self.reader(), org.0, user).await
    }

    async fn members(&self, org: OrgId, page: Page<UserId>) -> StoreResult<Vec<Member>> {
        ORG_MEMBERS.page(self.reader(), org.0, page).await
    }

    async fn member(&self, org: OrgId, user: UserId) -> StoreResult<Member> {
        ORG_MEMBERS.entry(self.reader(), org.0, user).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn add_member(
        &self,
        membership: Membership,
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> StoreResult<Member> {
        let Membership { org, user, role } = membership;
        ORG_MEMBERS.join(self, org.0, user, role, at, audit).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn set_member_role(
        &self,
        membership: Membership,
        decided: Option<DecidedOn<'_>>,
        audit: &[AuditEntry],
    ) -> StoreResult<(Member, bool)> {
        let Membership { org, user, role } = membership;
        let mut tx = ORG_MEMBERS.locked(self, org.0).await?;
        let current = ORG_MEMBERS.role_of(&mut tx, org.0, user).await?;
        roles_still(&mut tx, org, current, decided).await?;
        if current == OrgRole::Owner
            && role != OrgRole::Owner
            && !ORG_MEMBERS.others(&mut tx, org.0, user).await?.owner
        {
            return Err(StoreError::Conflict(Conflict::LastOrgOwner));
        }
        ORG_MEMBERS.set_role(&mut tx, org.0, user, role).await?;
        let member = ORG_MEMBERS.entry(&mut *tx, org.0, user).await?;
        // Audited only when the role changed, decided under the row's lock: two callers that
        // both read the old role (a sign-in and a directory check) record one change.
        let changed = current != role;
        commit_audited(tx, self, if changed { audit } else { &[] }).await?;
        Ok((member, changed))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn remove_member(
        &self,
        org: OrgId,
        user: UserId,
        decided: Option<DecidedOn<'_>>,
        audit: &[AuditEntry],
    ) -> StoreResult<Removed> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        let (removed, disabled) =
            remove_member_in(&mut tx, org, user, decided, audit.first()).await?;
        commit_audited(tx, self, &[audit, &disabled].concat()).await?;
        Ok(removed)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn transfer_org(
        &self,
        transfer: Transfer,
        audit: &[AuditEntry],
    ) -> StoreResult<Vec<Member>> {
        let Transfer { org, from, to } = transfer;
        let mut tx = ORG_MEMBERS.locked(self, org.0).await?;
        // Only an owner hands the org over: one demoted since the decision was made does not.
        if ORG_MEMBERS.role_of(&mut tx, org.0, from).await? != OrgRole::Owner {
            return Err(StoreError::Conflict(Conflict::RolesChanged));
        }
        if from == to {
            // Nothing changes hands.
            tx.commit().await.map_err(db)?;
            return Ok(Vec::new());
        }
        let mut changed = Vec::with_capacity(2);
        for (user, role) in [(to, OrgRole::Owner), (from, OrgRole::Admin)] {
            let before = ORG_MEMBERS.role_of(&mut tx, org.0, user).await?;
            if before != role {
                ORG_MEMBERS.set_role(&mut tx, org.0, user, role).await?;
                let member = ORG_MEMBERS.entry(&mut *tx, org.0, user).await?;
                changed.push(member);
            }
        }
        commit_audited(tx, self, audit).await?;
        Ok(changed)
    }
}
