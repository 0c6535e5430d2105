//! Conversations, their team visibility and participants (whose statements are the roster's,
//! [`PARTICIPANTS`]).

use super::*;

/// Fills the team lists of `teams`-visible conversations (sorted by team id).
async fn with_teams(conn: &mut Conn, convs: &mut [Conversation]) -> StoreResult<()> {
    let ids: Vec<uuid::Uuid> = convs
        .iter()
        .filter(|c| matches!(c.visibility, Visibility::Teams { .. }))
        .map(|c| c.id.0)
        .collect();
    let select = |list: &str| {
        format!(
            "SELECT conversation_id, team_id FROM conversation_teams \
             WHERE conversation_id IN ({list}) ORDER BY team_id"
        )
    };
    let pair = |row: &Row| Ok((get(row, "conversation_id")?, TeamId(get(row, "team_id")?)));
    let pairs: Vec<(uuid::Uuid, TeamId)> =
        select_in(&mut *conn, ids.into_iter(), select, pair).await?;
    for (conv, team) in pairs {
        for c in convs.iter_mut().filter(|c| c.id.0 == conv) {
            if let Visibility::Teams { teams } = &mut c.visibility {
                teams.push(team);
            }
        }
    }
    Ok(())
}

/// The conversations `query` selects (as `c`, [`CONVERSATION_COLS`]), with their teams.
async fn conversations(conn: &mut Conn, query: Query<'_>) -> StoreResult<Vec<Conversation>> {
    let mut convs = query.all(&mut *conn, conversation_from_row).await?;
    with_teams(conn, &mut convs).await?;
    Ok(convs)
}

async fn load_conversation(conn: &mut Conn, id: ConversationId) -> StoreResult<Conversation> {
    let sql = format!("SELECT {CONVERSATION_COLS} FROM conversations c WHERE c.id = $1");
    conversations(conn, sqlx::query(&sql).bind(id.0))
        .await?
        .pop()
        .ok_or(StoreError::NotFound)
}

/// A keyset page of the conversations `filter` (a condition on `c`, the user as `$1`) keeps.
async fn conversation_page(
    s: &Backend,
    filter: &str,
    user: UserId,
    page: Page<ConversationId>,
) -> StoreResult<Vec<Conversation>> {
    let k = keyset(page.cursor, "c.id", 3);
    let sql = format!(
        "SELECT {CONVERSATION_COLS} FROM conversations c WHERE {filter} {} \
         ORDER BY c.id {} LIMIT $2",
        k.cond, k.order
    );
    let query = sqlx::query(&sql).bind(user.0).bind(limit(page.limit));
    let mut conn = s.reader().acquire().await.map_err(db)?;
    conversations(&mut conn, k.bind_key(query, |key| key.0)).await
}

/// Inserts the conversation, its visibility teams and its participants (a direct pair that
/// exists already: `DirectExists`).
pub(super) async fn insert_conversation(
    conn: &mut Conn,
    conv: &Conversation,
    participants: &[(UserId, ConversationRole)],
) -> StoreResult<()> {
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
    .execute(&mut *conn)
    .await
    .map_err(unique(Conflict::DirectExists))?;
    insert_visibility_teams(&mut *conn, conv.id, &conv.visibility).await?;
    for (user, role) in participants {
        PARTICIPANTS
            .insert(&mut *conn, conv.id.0, *user, *role, conv.created_at)
            .await?;
    }
    Ok(())
}

async fn insert_visibility_teams(
    conn: &mut Conn,
    conv: ConversationId,
    visibility: &Visibility,
) -> StoreResult<()> {
    for team in visibility.teams() {
        link(
            conn,
            "conversation_teams (conversation_id, team_id)",
            conv.0,
            team.0,
        )
        .await?;
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
    .run(&mut *conn)
    .await?;
    Ok(())
}

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
        let users: Vec<UserId> = participants.iter().map(|(user, _)| *user).collect();
        orgs::members_only(&mut tx, conv.org_id.0, &users).await?;
        insert_conversation(&mut tx, conv, participants).await?;
        commit_audited(tx, self, audit).await
    }

    async fn direct_conversation(
        &self,
        org: OrgId,
        key: &str,
    ) -> StoreResult<Option<Conversation>> {
        let sql = format!(
            "SELECT {CONVERSATION_COLS} FROM conversations c \
             WHERE c.org_id = $1 AND c.direct_key = $2"
        );
        let mut conn = self.reader().acquire().await.map_err(db)?;
        let query = sqlx::query(&sql).bind(org.0).bind(key);
        Ok(conversations(&mut conn, query).await?.pop())
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
        let filter = "EXISTS (SELECT 1 FROM participants p \
                      WHERE p.conversation_id = c.id AND p.user_id = $1)";
        conversation_page(self, filter, user, page).await
    }

    async fn available_conversations(
        &self,
        user: UserId,
        page: Page<ConversationId>,
    ) -> StoreResult<Vec<Conversation>> {
        // What the user could join: open group conversations of their orgs, visible to the
        // whole org or to one of their teams, that they are not in yet.
        let filter = "c.org_id IN (SELECT org_id FROM org_members WHERE user_id = $1) \
             AND c.kind = 'group' AND NOT c.archived \
             AND NOT EXISTS (SELECT 1 FROM participants p \
                 WHERE p.conversation_id = c.id AND p.user_id = $1) \
             AND (c.visibility = 'org' OR (c.visibility = 'teams' AND EXISTS ( \
                 SELECT 1 FROM conversation_teams ct \
                 JOIN team_members tm ON tm.team_id = ct.team_id \
                 WHERE ct.conversation_id = c.id AND tm.user_id = $1)))";
        conversation_page(self, filter, user, page).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn update_conversation(
        &self,
        update: &ConversationUpdate,
        audit: &[AuditEntry],
    ) -> StoreResult<Conversation> {
        let (id, patch, at) = (update.id, &update.patch, update.at);
        let mut tx = self.writer().begin().await.map_err(db)?;
        sqlx::query(
            "UPDATE conversations SET name = COALESCE($2, name), \
             archived = COALESCE($3, archived), visibility = COALESCE($4, visibility), \
             updated_at = $5 WHERE id = $1",
        )
        .bind(id.0)
        .bind(patch.name.as_ref().map(Name::as_str))
        .bind(patch.archived)
        .bind(patch.visibility.as_ref().map(Visibility::tag))
        .bind(ts(at))
        .change(&mut *tx)
        .await?;
        if let Some(visibility) = &patch.visibility {
            sqlx::query("DELETE FROM conversation_teams WHERE conversation_id = $1")
                .bind(id.0)
                .run(&mut *tx)
                .await?;
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
    ) -> StoreResult<FreedBlobs> {
        delete_with_files(self, "conversations", "id", id.0, audit).await
    }

    async fn participant_role(
        &self,
        conv: ConversationId,
        user: UserId,
    ) -> StoreResult<Option<ConversationRole>> {
        PARTICIPANTS.role(self.reader(), conv.0, user).await
    }

    async fn participants(
        &self,
        conv: ConversationId,
        page: Page<UserId>,
    ) -> StoreResult<Vec<Participant>> {
        PARTICIPANTS.page(self.reader(), conv.0, page).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn add_participant(
        &self,
        joining: &Joining,
        audit: &[AuditEntry],
    ) -> StoreResult<Participant> {
        let Joining { conv, user, .. } = *joining;
        let mut tx = self.writer().begin().await.map_err(db)?;
        let org: uuid::Uuid = sqlx::query("SELECT org_id FROM conversations WHERE id = $1")
            .bind(conv.0)
            .one(&mut *tx, |r| get(r, "org_id"))
            .await?;
        orgs::members_only(&mut tx, org, &[user]).await?;
        PARTICIPANTS
            .join_in(tx, self, conv.0, user, (joining.role, joining.at), audit)
            .await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn remove_participant(
        &self,
        conv: ConversationId,
        user: UserId,
        audit: &[AuditEntry],
    ) -> StoreResult<Participant> {
        let mut tx = PARTICIPANTS.locked(self, conv.0).await?;
        let leaving = PARTICIPANTS.entry(&mut *tx, conv.0, user).await?;
        if leaving.role == ConversationRole::Owner {
            let others = PARTICIPANTS.others(&mut tx, conv.0, user).await?;
            if others.any && !others.owner {
                return Err(StoreError::Conflict(Conflict::LastConversationOwner));
            }
        }
        PARTICIPANTS.remove(&mut tx, conv.0, user).await?;
        let left = webhooks::MakerLeft::Conversation(conv);
        let disabled = webhooks::disable_made_by(&mut tx, user, left, audit.first()).await?;
        commit_audited(tx, self, &[audit, &disabled].concat()).await?;
        Ok(leaving)
    }
}
