//! Conversations, their team visibility and participants.

use super::*;

/// Fills the team lists of `teams`-visible conversations (sorted by team id).
async fn with_teams(conn: &mut Conn, convs: &mut [Conversation]) -> StoreResult<()> {
    let ids: Vec<uuid::Uuid> = convs
        .iter()
        .filter(|c| matches!(c.visibility, Visibility::Teams { .. }))
        .map(|c| c.id.0)
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "SELECT conversation_id, team_id FROM conversation_teams \
         WHERE conversation_id IN ({}) ORDER BY team_id",
        placeholders(1, ids.len())
    );
    let mut q = sqlx::query(&sql);
    for id in &ids {
        q = q.bind(*id);
    }
    let rows = q.fetch_all(&mut *conn).await.map_err(db)?;
    for row in &rows {
        let conv: uuid::Uuid = get(row, "conversation_id")?;
        let team: uuid::Uuid = get(row, "team_id")?;
        for c in convs.iter_mut().filter(|c| c.id.0 == conv) {
            if let Visibility::Teams { teams } = &mut c.visibility {
                teams.push(TeamId(team));
            }
        }
    }
    Ok(())
}

async fn load_conversation(conn: &mut Conn, id: ConversationId) -> StoreResult<Conversation> {
    let row = sqlx::query(&format!(
        "SELECT {CONVERSATION_COLS} FROM conversations c WHERE c.id = $1"
    ))
    .bind(id.0)
    .fetch_one(&mut *conn)
    .await
    .map_err(db)?;
    let mut convs = [conversation_from_row(&row)?];
    with_teams(conn, &mut convs).await?;
    let [conv] = convs;
    Ok(conv)
}

async fn conversation_list(conn: &mut Conn, rows: &[Row]) -> StoreResult<Vec<Conversation>> {
    let mut convs = rows
        .iter()
        .map(conversation_from_row)
        .collect::<StoreResult<Vec<_>>>()?;
    with_teams(conn, &mut convs).await?;
    Ok(convs)
}

async fn insert_visibility_teams(
    conn: &mut Conn,
    conv: ConversationId,
    visibility: &Visibility,
) -> StoreResult<()> {
    for team in visibility.teams() {
        sqlx::query(
            "INSERT INTO conversation_teams (conversation_id, team_id) VALUES ($1, $2) \
             ON CONFLICT DO NOTHING",
        )
        .bind(conv.0)
        .bind(team.0)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    }
    Ok(())
}

/// Takes the conversation's row lock (PostgreSQL) inside `conn`'s transaction, so
/// owner-count checks on one conversation run one after the other.
async fn lock_conversation(conn: &mut Conn, conv: ConversationId) -> StoreResult<()> {
    let done = sqlx::query("UPDATE conversations SET last_seq = last_seq WHERE id = $1")
        .bind(conv.0)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Makes the longest-standing participant other than `leaving` an owner.
pub(super) async fn promote_longest_standing(
    conn: &mut Conn,
    conv: ConversationId,
    leaving: UserId,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE participants SET role = 'owner' WHERE conversation_id = $1 \
         AND user_id = (SELECT user_id FROM participants WHERE conversation_id = $1 \
         AND user_id <> $2 ORDER BY joined_at, user_id LIMIT 1)",
    )
    .bind(conv.0)
    .bind(leaving.0)
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    Ok(())
}

async fn insert_participant(
    conn: &mut Conn,
    conv: ConversationId,
    user: UserId,
    role: ConversationRole,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO participants (conversation_id, user_id, role, joined_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(conv.0)
    .bind(user.0)
    .bind(role.as_str())
    .bind(ts(at))
    .execute(&mut *conn)
    .await
    .map_err(unique(Conflict::AlreadyParticipant))?;
    Ok(())
}

async fn conversation_role(
    conn: &mut Conn,
    conv: ConversationId,
    user: UserId,
) -> StoreResult<Option<ConversationRole>> {
    let row =
        sqlx::query("SELECT role FROM participants WHERE conversation_id = $1 AND user_id = $2")
            .bind(conv.0)
            .bind(user.0)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db)?;
    row.map(|r| tag(&r, "role", ConversationRole::parse))
        .transpose()
}

const PARTICIPANT_SELECT: &str = "SELECT p.conversation_id, p.role, p.joined_at, \
     u.id AS su_id, u.username AS su_username, u.display_name AS su_display_name, \
     u.kind AS su_kind FROM participants p JOIN users u ON u.id = p.user_id";

#[async_trait]
impl ConversationStore for Backend {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn create_conversation(
        &self,
        conv: &Conversation,
        participants: &[(UserId, ConversationRole)],
        audit: &[AuditEntry],
    ) -> StoreResult<()> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        sqlx::query(
            "INSERT INTO conversations (id, org_id, kind, name, visibility, archived, \
             created_by, created_at, updated_at, last_seq, direct_key) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(conv.id.0)
        .bind(conv.org_id.0)
        .bind(conv.kind.as_str())
        .bind(conv.name.as_deref())
        .bind(conv.visibility.tag())
        .bind(conv.archived)
        .bind(conv.created_by.0)
        .bind(ts(conv.created_at))
        .bind(ts(conv.updated_at))
        .bind(conv.last_seq)
        .bind(conv.direct_key.as_deref())
        .execute(&mut *tx)
        .await
        .map_err(unique(Conflict::DirectExists))?;
        insert_visibility_teams(&mut tx, conv.id, &conv.visibility).await?;
        for (user, role) in participants {
            insert_participant(&mut tx, conv.id, *user, *role, conv.created_at).await?;
        }
        commit_audited(tx, self, audit).await
    }

    async fn direct_conversation(
        &self,
        org: OrgId,
        key: &str,
    ) -> StoreResult<Option<Conversation>> {
        let mut conn = self.reader().acquire().await.map_err(db)?;
        let rows = sqlx::query(&format!(
            "SELECT {CONVERSATION_COLS} FROM conversations c \
             WHERE c.org_id = $1 AND c.direct_key = $2"
        ))
        .bind(org.0)
        .bind(key)
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
        Ok(conversation_list(&mut conn, &rows).await?.pop())
    }

    async fn conversation(&self, id: ConversationId) -> StoreResult<Conversation> {
        let mut conn = self.reader().acquire().await.map_err(db)?;
        load_conversation(&mut conn, id).await
    }

    async fn conversations_for_user(
        &self,
        user: UserId,
        page: Page<ConversationId>,
    ) -> StoreResult<Vec<Conversation>> {
        let k = keyset(page.cursor, "c.id", 3);
        let sql = format!(
            "SELECT {CONVERSATION_COLS} FROM conversations c \
             JOIN participants p ON p.conversation_id = c.id \
             WHERE p.user_id = $1 {} ORDER BY c.id {} LIMIT $2",
            k.cond, k.order
        );
        let q = k.bind_key(
            sqlx::query(&sql).bind(user.0).bind(limit(page.limit)),
            |key| key.0,
        );
        let mut conn = self.reader().acquire().await.map_err(db)?;
        let rows = q.fetch_all(&mut *conn).await.map_err(db)?;
        conversation_list(&mut conn, &rows).await
    }

    async fn available_conversations(
        &self,
        user: UserId,
        page: Page<ConversationId>,
    ) -> StoreResult<Vec<Conversation>> {
        // What the user could join: open group conversations of their orgs, visible to the
        // whole org or to one of their teams, that they are not in yet.
        let k = keyset(page.cursor, "c.id", 3);
        let sql = format!(
            "SELECT {CONVERSATION_COLS} FROM conversations c \
             WHERE c.org_id IN (SELECT org_id FROM org_members WHERE user_id = $1) \
             AND c.kind = 'group' AND NOT c.archived \
             AND NOT EXISTS (SELECT 1 FROM participants p \
                 WHERE p.conversation_id = c.id AND p.user_id = $1) \
             AND (c.visibility = 'org' OR (c.visibility = 'teams' AND EXISTS ( \
                 SELECT 1 FROM conversation_teams ct \
                 JOIN team_members tm ON tm.team_id = ct.team_id \
                 WHERE ct.conversation_id = c.id AND tm.user_id = $1))) \
             {} ORDER BY c.id {} LIMIT $2",
            k.cond, k.order
        );
        let q = k.bind_key(
            sqlx::query(&sql).bind(user.0).bind(limit(page.limit)),
            |key| key.0,
        );
        let mut conn = self.reader().acquire().await.map_err(db)?;
        let rows = q.fetch_all(&mut *conn).await.map_err(db)?;
        conversation_list(&mut conn, &rows).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn update_conversation(
        &self,
        id: ConversationId,
        patch: &ConversationPatch,
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> StoreResult<Conversation> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        let done = sqlx::query(
            "UPDATE conversations SET name = COALESCE($2, name), \
             archived = COALESCE($3, archived), visibility = COALESCE($4, visibility), \
             updated_at = $5 WHERE id = $1",
        )
        .bind(id.0)
        .bind(patch.name.as_ref().map(Name::as_str))
        .bind(patch.archived)
        .bind(patch.visibility.as_ref().map(Visibility::tag))
        .bind(ts(at))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        if let Some(visibility) = &patch.visibility {
            sqlx::query("DELETE FROM conversation_teams WHERE conversation_id = $1")
                .bind(id.0)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            insert_visibility_teams(&mut tx, id, visibility).await?;
        }
        let conv = load_conversation(&mut tx, id).await?;
        commit_audited(tx, self, audit).await?;
        Ok(conv)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn delete_conversation(
        &self,
        id: ConversationId,
        audit: &[AuditEntry],
    ) -> StoreResult<()> {
        change_audited(
            self,
            sqlx::query("DELETE FROM conversations WHERE id = $1").bind(id.0),
            audit,
        )
        .await
    }

    async fn participant_role(
        &self,
        conv: ConversationId,
        user: UserId,
    ) -> StoreResult<Option<ConversationRole>> {
        let mut conn = self.reader().acquire().await.map_err(db)?;
        conversation_role(&mut conn, conv, user).await
    }

    async fn participants(
        &self,
        conv: ConversationId,
        page: Page<UserId>,
    ) -> StoreResult<Vec<Participant>> {
        let k = keyset(page.cursor, "p.user_id", 3);
        let sql = format!(
            "{PARTICIPANT_SELECT} WHERE p.conversation_id = $1 {} \
             ORDER BY p.user_id {} LIMIT $2",
            k.cond, k.order
        );
        let q = k.bind_key(
            sqlx::query(&sql).bind(conv.0).bind(limit(page.limit)),
            |key| key.0,
        );
        let rows = q.fetch_all(self.reader()).await.map_err(db)?;
        rows.iter().map(participant_from_row).collect()
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn add_participant(
        &self,
        conv: ConversationId,
        user: UserId,
        role: ConversationRole,
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> StoreResult<Participant> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        insert_participant(&mut tx, conv, user, role, at).await?;
        let row = sqlx::query(&format!(
            "{PARTICIPANT_SELECT} WHERE p.conversation_id = $1 AND p.user_id = $2"
        ))
        .bind(conv.0)
        .bind(user.0)
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        let participant = participant_from_row(&row)?;
        commit_audited(tx, self, audit).await?;
        Ok(participant)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn remove_participant(
        &self,
        conv: ConversationId,
        user: UserId,
        audit: &[AuditEntry],
    ) -> StoreResult<()> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        lock_conversation(&mut tx, conv).await?;
        let role = conversation_role(&mut tx, conv, user)
            .await?
            .ok_or(StoreError::NotFound)?;
        if role == ConversationRole::Owner {
            let row = sqlx::query(
                "SELECT \
                 EXISTS (SELECT 1 FROM participants WHERE conversation_id = $1 \
                     AND user_id <> $2) AS others, \
                 EXISTS (SELECT 1 FROM participants WHERE conversation_id = $1 \
                     AND user_id <> $2 AND role = 'owner') AS other_owner",
            )
            .bind(conv.0)
            .bind(user.0)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
            let others: bool = get(&row, "others")?;
            let other_owner: bool = get(&row, "other_owner")?;
            if others && !other_owner {
                return Err(StoreError::Conflict(Conflict::LastConversationOwner));
            }
        }
        sqlx::query("DELETE FROM participants WHERE conversation_id = $1 AND user_id = $2")
            .bind(conv.0)
            .bind(user.0)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        commit_audited(tx, self, audit).await
    }
}
