//! Health: the readiness round trip and the alerts every node's readiness check reports.

use super::*;

#[async_trait]
impl HealthStore for Backend {
    async fn raise_alert(
        &self,
        name: &str,
        status: &str,
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> StoreResult<()> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        sqlx::query(
            "INSERT INTO health_alerts (name, status, raised_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET status = excluded.status, \
             raised_at = excluded.raised_at",
        )
        .bind(name)
        .bind(status)
        .bind(ts(at))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        commit_audited(tx, self, audit).await
    }

    async fn alerts(&self) -> StoreResult<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT name, status FROM health_alerts ORDER BY name")
            .fetch_all(self.reader())
            .await
            .map_err(db)?;
        rows.iter()
            .map(|r| Ok((get(r, "name")?, get(r, "status")?)))
            .collect()
    }

    async fn clear_alert(&self, name: &str, raised_by: DateTime<Utc>) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM health_alerts WHERE name = $1 AND raised_at <= $2")
            .bind(name)
            .bind(ts(raised_by))
            .execute(self.writer())
            .await
            .map_err(db)?;
        Ok(done.rows_affected() > 0)
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(self.reader())
            .await
            .map_err(db)?;
        Ok(())
    }
}
