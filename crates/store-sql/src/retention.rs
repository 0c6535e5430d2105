//! Retention: which orgs have a retention setting, and pruning an org's old messages with the
//! audit row in the same transaction.

use super::*;

#[async_trait]
impl RetentionStore for Backend {
    async fn orgs_with_retention(&self) -> StoreResult<Vec<Org>> {
        fetch_all(
            self.reader(),
            sqlx::query(&format!(
                "SELECT {ORG_COLS} FROM orgs o WHERE o.message_retention_days IS NOT NULL \
             OR o.audit_retention_days IS NOT NULL ORDER BY o.id"
            )),
            org_from_row,
        )
        .await
    }

    /// Deletes the org's messages created before `before` (with their edit history); the
    /// conversations' sequence counters stay, so numbering never repeats.
    async fn prune_messages(
        &self,
        org: OrgId,
        before: DateTime<Utc>,
        entry: &AuditEntry,
    ) -> StoreResult<u64> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        sqlx::query(
            "DELETE FROM message_versions WHERE message_id IN (SELECT m.id FROM messages m \
             JOIN conversations c ON c.id = m.conversation_id \
             WHERE c.org_id = $1 AND m.created_at < $2)",
        )
        .bind(org.0)
        .bind(ts(before))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        let done = sqlx::query(
            "DELETE FROM messages WHERE created_at < $2 AND conversation_id IN \
             (SELECT id FROM conversations WHERE org_id = $1)",
        )
        .bind(org.0)
        .bind(ts(before))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        let n = done.rows_affected();
        if n == 0 {
            return Ok(0);
        }
        let mut entry = entry.clone();
        entry.detail = Some(serde_json::json!({ "rows": n, "before": ts(before) }));
        commit_audited(tx, self, std::slice::from_ref(&entry)).await?;
        Ok(n)
    }
}
