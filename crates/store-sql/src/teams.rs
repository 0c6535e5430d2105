//! Teams of an organisation and their members.

use super::*;

fn team_from_row(row: &Row) -> StoreResult<Team> {
    Ok(from_columns!(row, Team {
        name, created_at;
        id: TeamId(get(row, "id")?),
        org_id: OrgId(get(row, "org_id")?),
        member_ids: Vec::new(),
    }))
}

/// (team, user) pairs from the `team_id` and `user_id` columns.
fn team_member_from_row(row: &Row) -> StoreResult<(TeamId, UserId)> {
    Ok((TeamId(get(row, "team_id")?), UserId(get(row, "user_id")?)))
}

/// Adds a team member; adding one twice is not an error.
async fn insert_team_member(conn: &mut Conn, team: TeamId, user: UserId) -> StoreResult<()> {
    link(conn, "team_members (team_id, user_id)", team.0, user.0).await
}

/// The teams `filter` keeps (a condition on `t`, binding `scope` as `$1`), with their members.
async fn load_teams(s: &Backend, filter: &str, scope: uuid::Uuid) -> StoreResult<Vec<Team>> {
    let mut conn = s.reader().acquire().await.map_err(db)?;
    let mut teams = sqlx::query(&format!(
        "SELECT t.id, t.org_id, t.name, t.created_at FROM teams t WHERE {filter} ORDER BY t.id"
    ))
    .bind(scope)
    .all(&mut *conn, team_from_row)
    .await?;
    let members = sqlx::query(&format!(
        "SELECT tm.team_id, tm.user_id FROM team_members tm \
         JOIN teams t ON t.id = tm.team_id WHERE {filter} ORDER BY tm.user_id"
    ))
    .bind(scope)
    .all(&mut *conn, team_member_from_row)
    .await?;
    for (team, user) in members {
        if let Some(t) = teams.iter_mut().find(|t| t.id == team) {
            t.member_ids.push(user);
        }
    }
    Ok(teams)
}

#[async_trait]
impl TeamStore for Backend {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn create_team(&self, team: &Team, audit: &[AuditEntry]) -> StoreResult<()> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        orgs::members_only(&mut tx, team.org_id.0, &team.member_ids).await?;
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
        load_teams(self, "t.org_id = $1", org.0).await
    }

    async fn team(&self, id: TeamId) -> StoreResult<Team> {
        load_teams(self, "t.id = $1", id.0)
            .await?
            .pop()
            .ok_or(StoreError::NotFound)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn add_team_member(
        &self,
        team: TeamId,
        user: UserId,
        audit: &[AuditEntry],
    ) -> StoreResult<()> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        let org = sqlx::query("SELECT org_id FROM teams WHERE id = $1")
            .bind(team.0)
            .opt(&mut *tx, |r| get(r, "org_id"))
            .await?
            .ok_or(StoreError::NotFound)?;
        // A removal from the org racing this either sees the new place (and takes it) or
        // commits first and this refuses.
        orgs::members_only(&mut tx, org, &[user]).await?;
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
        let keys = [("team_id", team.0), ("user_id", user.0)];
        delete_keyed(self, "team_members", keys, audit).await
    }

    async fn user_teams(&self, org: OrgId, user: UserId) -> StoreResult<Vec<TeamId>> {
        sqlx::query(
            "SELECT tm.team_id FROM team_members tm JOIN teams t ON t.id = tm.team_id \
             WHERE t.org_id = $1 AND tm.user_id = $2 ORDER BY tm.team_id",
        )
        .bind(org.0)
        .bind(user.0)
        .all(self.reader(), |r| get(r, "team_id").map(TeamId))
        .await
    }
}
