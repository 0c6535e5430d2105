//! Retention: which orgs have a retention setting, and pruning an org's old messages (with
//! their files, and uploads no message claimed before the cutoff) with the audit row in the
//! same transaction.

use super::*;

#[async_trait]
impl RetentionStore for Backend {
    async fn orgs_with_retention(&self) -> StoreResult<Vec<Org>> {
        let sql = ORGS.select(
            "WHERE o.message_retention_days IS NOT NULL \
             OR o.audit_retention_days IS NOT NULL ORDER BY o.id",
        );
        sqlx::query(&sql).all(self.reader(), org_from_row).await
    }

    /// Deletes the org's messages created before `before` (with their edit history and files)
    /// and its uploads from before then that no message claimed; the conversations' sequence
    /// counters stay, so numbering never repeats.
    async fn prune_messages(
        &self,
        org: OrgId,
        before: DateTime<Utc>,
        entry: &AuditEntry,
    ) -> StoreResult<(u64, FreedBlobs)> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        // Before the messages: the files' reference to them would only be cleared.
        let files = format!(
            "DELETE FROM files WHERE conversation_id IN \
             (SELECT id FROM conversations WHERE org_id = $1) \
             AND ((message_id IS NULL AND created_at < $2) OR EXISTS (SELECT 1 FROM messages m \
             WHERE m.id = files.message_id AND m.created_at < $2)) {REMOVED_FILE}"
        );
        let freed = remove_files(&mut tx, sqlx::query(&files).bind(org.0).bind(ts(before))).await?;
        // What is kept about those messages goes with them: earlier versions, webhook deliveries.
        for table in ["message_versions", "webhook_deliveries"] {
            sqlx::query(&format!(
                "DELETE FROM {table} WHERE message_id IN (SELECT m.id FROM messages m \
                 JOIN conversations c ON c.id = m.conversation_id \
                 WHERE c.org_id = $1 AND m.created_at < $2)"
            ))
            .bind(org.0)
            .bind(ts(before))
            .run(&mut *tx)
            .await?;
        }
        let n = sqlx::query(
            "DELETE FROM messages WHERE created_at < $2 AND conversation_id IN \
             (SELECT id FROM conversations WHERE org_id = $1)",
        )
        .bind(org.0)
        .bind(ts(before))
        .run(&mut *tx)
        .await?;
        if n == 0 && freed.0.is_empty() {
            return Ok((0, freed));
        }
        let mut entry = entry.clone();
        entry.detail = Some(serde_json::json!({
            "rows": n,
            "files": freed.0.len(),
            "before": ts(before),
        }));
        commit_audited(tx, self, std::slice::from_ref(&entry)).await?;
        Ok((n, freed))
    }
}
