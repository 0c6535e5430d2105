//! Health: the readiness round trip and the alerts every node's readiness check reports.

use super::*;

#[async_trait]
impl HealthStore for Backend {
    async fn raise_alert(&self, alert: &HealthAlert<'_>, audit: &[AuditEntry]) -> StoreResult<()> {
        // An upsert always changes its row, so the audit rows always go with it.
        sqlx::query(
            "INSERT INTO health_alerts (name, status, raised_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET status = excluded.status, \
             raised_at = excluded.raised_at",
        )
        .bind(alert.name)
        .bind(alert.status)
        .bind(ts(alert.raised_at))
        .change_audited(self, audit)
        .await
    }

    async fn alerts(&self) -> StoreResult<Vec<(String, String)>> {
        sqlx::query("SELECT name, status FROM health_alerts ORDER BY name")
            .all(self.reader(), |r| Ok((get(r, "name")?, get(r, "status")?)))
            .await
    }

    async fn clear_alert(&self, name: &str, raised_by: DateTime<Utc>) -> StoreResult<bool> {
        let cleared = sqlx::query("DELETE FROM health_alerts WHERE name = $1 AND raised_at <= $2")
            .bind(name)
            .bind(ts(raised_by))
            .run(self.writer())
            .await?;
        Ok(cleared > 0)
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").run(self.reader()).await?;
        Ok(())
    }
}
