//! Teams of an organisation and their members.

use super::*;

fn team_from_row(row: &Row) -> StoreResult<Team> {
    Ok(Team {
        id: TeamId(get(row, "id")?),
        org_id: OrgId(get(row, "org_id")?),
        name: get(row, "name")?,
        member_ids: Vec::new(),
        created_at: get(row, "created_at")?,
    })
}

/// Adds a team member; adding one twice is not an error.
async fn insert_team_member(conn: &mut Conn, team: TeamId, user: UserId) -> StoreResult<()> {
    sqlx::query(
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

#[async_trait]
impl TeamStore for Backend {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn create_team(&self, team: &Team, audit: &[AuditEntry]) -> StoreResult<()> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        sqlx::query("INSERT INTO teams (id, org_id, name, created_at) VALUES ($1, $2, $3, $4)")
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
        commit_audited(tx, self, audit).await
    }

    async fn teams(&self, org: OrgId) -> StoreResult<Vec<Team>> {
        let mut conn = self.reader().acquire().await.map_err(db)?;
        let rows = sqlx::query(
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
        let members = sqlx::query(
            "SELECT tm.team_id, tm.user_id FROM team_members tm \
             JOIN teams t ON t.id = tm.team_id WHERE t.org_id = $1 ORDER BY tm.user_id",
        )
        .bind(org.0)
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
        for row in &members {
            let team: uuid::Uuid = get(row, "team_id")?;
            let user: uuid::Uuid = get(row, "user_id")?;
            if let Some(t) = teams.iter_mut().find(|t| t.id.0 == team) {
                t.member_ids.push(UserId(user));
            }
        }
        Ok(teams)
    }

    async fn team(&self, id: TeamId) -> StoreResult<Team> {
        let mut conn = self.reader().acquire().await.map_err(db)?;
        let row = sqlx::query("SELECT id, org_id, name, created_at FROM teams WHERE id = $1")
            .bind(id.0)
            .fetch_one(&mut *conn)
            .await
            .map_err(db)?;
        let mut team = team_from_row(&row)?;
        let members =
            sqlx::query("SELECT user_id FROM team_members WHERE team_id = $1 ORDER BY user_id")
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

    #[tracing::instrument(level = "debug", skip_all)]
    async fn add_team_member(
        &self,
        team: TeamId,
        user: UserId,
        audit: &[AuditEntry],
    ) -> StoreResult<()> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        insert_team_member(&mut tx, team, user).await?;
        commit_audited(tx, self, audit).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn remove_team_member(
        &self,
        team: TeamId,
        user: UserId,
        audit: &[AuditEntry],
    ) -> StoreResult<()> {
        change_audited(
            self,
            sqlx::query("DELETE FROM team_members WHERE team_id = $1 AND user_id = $2")
                .bind(team.0)
                .bind(user.0),
            audit,
        )
        .await
    }

    async fn user_teams(&self, org: OrgId, user: UserId) -> StoreResult<Vec<TeamId>> {
        let rows = sqlx::query(
            "SELECT tm.team_id FROM team_members tm JOIN teams t ON t.id = tm.team_id \
             WHERE t.org_id = $1 AND tm.user_id = $2 ORDER BY tm.team_id",
        )
        .bind(org.0)
        .bind(user.0)
        .fetch_all(self.reader())
        .await
        .map_err(db)?;
        rows.iter().map(|r| get(r, "team_id").map(TeamId)).collect()
    }
}
