//! Outgoing webhooks: endpoints, their sealed secrets, and the delivery queue (see
//! `conclave_core::store::webhooks` for the rules). The claim is one statement: only the pending
//! delivery with the lowest event id of each enabled endpoint, not leased by anyone, is leased; on PostgreSQL the
//! candidate rows are locked with `FOR UPDATE SKIP LOCKED`, and the outer `WHERE` repeats the
//! lease test, so two nodes claiming at once never lease the same row.

use super::*;
use conclave_core::store::webhooks::*;
use uuid::Uuid;

const WEBHOOK_COLS: &str = "w.id, w.org_id, w.conversation_id, w.url, w.events, w.enabled, \
     w.disabled_reason, w.consecutive_failures, w.created_by, w.created_at, w.updated_at, \
     (SELECT s.hint FROM webhook_secrets s WHERE s.webhook_id = w.id AND s.expires_at IS NULL \
      ORDER BY s.id DESC LIMIT 1) AS secret_hint, \
     (SELECT s.expires_at FROM webhook_secrets s WHERE s.webhook_id = w.id \
      AND s.expires_at IS NOT NULL ORDER BY s.expires_at DESC LIMIT 1) AS previous_expires_at";

const WEBHOOKS: Records<Webhook> = Records::new("webhooks w", WEBHOOK_COLS, webhook_from_row);

fn webhook_from_row(row: &Row) -> StoreResult<Webhook> {
    let events: String = get(row, "events")?;
    Ok(from_columns!(row, Webhook {
        id, url, enabled, disabled_reason, consecutive_failures, created_at, updated_at;
        org_id: OrgId(get(row, "org_id")?),
        conversation_id: get::<Option<Uuid>>(row, "conversation_id")?.map(ConversationId),
        events: serde_json::from_str(&events)
            .map_err(|e| StoreError::Backend(format!("column events: {e}")))?,
        created_by: get::<Option<Uuid>>(row, "created_by")?.map(UserId),
        previous_secret_expires_at: get(row, "previous_expires_at")?,
        secret_hint: get::<Option<String>>(row, "secret_hint")?.unwrap_or_default(),
    }))
}

fn secret_from_row(row: &Row) -> StoreResult<WebhookSecretRecord> {
    Ok(from_columns!(row, WebhookSecretRecord {
        id, hint, created_at, expires_at;
        sealed: sealed_from_row(row)?,
    }))
}

const DELIVERY_COLS: &str = "id, webhook_id, event_id, event_type, payload, status, attempts, \
     next_attempt_at, last_status_code, last_error, latency_ms, created_at, finished_at, \
     redacted_at, message_id, user_id";

const DELIVERIES: Records<WebhookDelivery> =
    Records::new("webhook_deliveries", DELIVERY_COLS, delivery_from_row);

fn delivery_from_row(row: &Row) -> StoreResult<WebhookDelivery> {
    let status: String = get(row, "status")?;
    Ok(from_columns!(row, WebhookDelivery {
        id, webhook_id, event_id, event_type, payload, attempts, next_attempt_at,
        last_status_code, last_error, latency_ms, created_at, finished_at, redacted_at,
        message_id, user_id;
        status: DeliveryStatus::parse(&status)
            .ok_or_else(|| StoreError::Backend(format!("column status: {status:?}")))?,
    }))
}

fn events_text(events: &[String]) -> StoreResult<String> {
    serde_json::to_string(events).map_err(|e| StoreError::Backend(format!("encoding events: {e}")))
}

async fn insert_secret(
    conn: &mut Conn,
    webhook: Uuid,
    secret: &WebhookSecretRecord,
) -> StoreResult<()> {
    let insert = sqlx::query(
        "INSERT INTO webhook_secrets (id, webhook_id, hint, secret_key_id, secret_nonce, \
         secret_ciphertext, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(secret.id)
    .bind(webhook)
    .bind(secret.hint.as_str());
    bind_sealed(insert, &secret.sealed)
        .bind(ts(secret.created_at))
        .bind(secret.expires_at.map(ts))
        .run(&mut *conn)
        .await?;
    Ok(())
}

/// Redacts the deliveries `cond` picks (its parameter is `$2`, bound to `subject`) at `at`: the
/// body goes, the log line stays, and one still queued is given up (DATA-5, DATA-6). Run in the
/// transaction that deletes or erases what the bodies are about.
pub(super) async fn redact_deliveries(
    conn: &mut Conn,
    at: DateTime<Utc>,
    cond: &str,
    subject: Uuid,
) -> StoreResult<()> {
    sqlx::query(&format!(
        "UPDATE webhook_deliveries SET payload = '', redacted_at = COALESCE(redacted_at, $1), \
         last_error = CASE WHEN status = 'pending' THEN 'redacted' ELSE last_error END, \
         finished_at = COALESCE(finished_at, $1), \
         status = CASE WHEN status = 'pending' THEN 'failed' ELSE status END, \
         lease_owner = NULL, lease_until = NULL WHERE redacted_at IS NULL AND {cond}"
    ))
    .bind(ts(at))
    .bind(subject)
    .run(&mut *conn)
    .await?;
    Ok(())
}

/// Where a member's endpoints stop hearing when they leave it.
pub(super) enum MakerLeft {
    /// A conversation: its endpoints they made.
    Conversation(ConversationId),
    /// An org: every endpoint of it they made.
    Org(OrgId),
}

/// AZ-3: an endpoint sends what its conversation (or org) says to a URL its maker chose; once
/// the maker is out, it is disabled (`maker_left`) in the leaving transaction, so nothing keeps
/// flowing to a former member's choice. Someone who may read it now can enable it again.
/// Answers a `webhook.disabled` row for each (DATA-4), made from `like` — the leaving's own
/// row: its actor, time and request — for the caller to write in the same transaction.
pub(super) async fn disable_made_by(
    conn: &mut Conn,
    user: UserId,
    left: MakerLeft,
    like: Option<&AuditEntry>,
) -> StoreResult<Vec<AuditEntry>> {
    let (scope, id) = match left {
        MakerLeft::Conversation(c) => ("conversation_id", c.0),
        MakerLeft::Org(o) => ("org_id", o.0),
    };
    let sql = format!(
        "UPDATE webhooks SET enabled = $3, disabled_reason = 'maker_left' \
         WHERE created_by = $1 AND {scope} = $2 AND enabled RETURNING id, org_id"
    );
    let disabled = sqlx::query(&sql)
        .bind(user.0)
        .bind(id)
        .bind(false)
        .all(&mut *conn, |r| {
            Ok((get::<Uuid>(r, "id")?, OrgId(get(r, "org_id")?)))
        })
        .await?;
    let Some(like) = like else {
        return Ok(Vec::new());
    };
    Ok(disabled
        .into_iter()
        .map(|(hook, org)| AuditEntry {
            id: Uuid::now_v7(),
            event: "webhook.disabled".to_owned(),
            resource_type: Some("webhook".to_owned()),
            resource_id: Some(hook.to_string()),
            org: Some(org),
            detail: Some(serde_json::json!({ "reason": "maker_left", "maker": user })),
            ..like.clone()
        })
        .collect())
}

/// On PostgreSQL, a message event's insert takes a share lock on the message it checks: a
/// deletion holding the row waits for it (and then redacts the new row), or it waits for the
/// deletion and sees the message deleted. SQLite's one writer orders them already.
fn message_share_lock() -> &'static str {
    postgres_only(" FOR SHARE")
}

/// PostgreSQL locks the claim's candidates and skips rows another claim holds.
fn claim_lock() -> &'static str {
    postgres_only(" FOR UPDATE OF d SKIP LOCKED")
}

#[async_trait]
impl WebhookStore for Backend {
    #[tracing::instrument(level = "debug", skip_all, fields(id = %hook.id))]
    async fn create_webhook(
        &self,
        hook: &Webhook,
        secret: &WebhookSecretRecord,
        audit: &[AuditEntry],
    ) -> StoreResult<()> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        orgs::within_cap(&mut tx, hook.org_id, OrgCapped::Webhooks).await?;
        sqlx::query(
            "INSERT INTO webhooks (id, org_id, conversation_id, url, events, enabled, \
             disabled_reason, consecutive_failures, created_by, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, NULL, 0, $7, $8, $9)",
        )
        .bind(hook.id)
        .bind(hook.org_id.0)
        .bind(hook.conversation_id.map(|c| c.0))
        .bind(hook.url.as_str())
        .bind(events_text(&hook.events)?)
        .bind(hook.enabled)
        .bind(hook.created_by.map(|u| u.0))
        .bind(ts(hook.created_at))
        .bind(ts(hook.updated_at))
        .run(&mut *tx)
        .await?;
        insert_secret(&mut tx, hook.id, secret).await?;
        commit_audited(tx, self, audit).await
    }

    async fn webhook(&self, id: Uuid) -> StoreResult<Webhook> {
        WEBHOOKS.one(self.reader(), "WHERE w.id = $1", id).await
    }

    async fn webhooks(&self, org: OrgId) -> StoreResult<Vec<Webhook>> {
        let rest = "WHERE w.org_id = $1 ORDER BY w.id";
        WEBHOOKS.all(self.reader(), rest, org.0).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(id = %update.id))]
    async fn update_webhook(
        &self,
        update: WebhookUpdate<'_>,
        audit: &[AuditEntry],
    ) -> StoreResult<Webhook> {
        let WebhookUpdate { id, patch, at } = update;
        let events = patch.events.as_deref().map(events_text).transpose()?;
        let reenable = patch.enabled == Some(true);
        let query = sqlx::query(
            "UPDATE webhooks SET url = COALESCE($2, url), events = COALESCE($3, events), \
             enabled = COALESCE($4, enabled), \
             disabled_reason = CASE WHEN $5 THEN NULL ELSE disabled_reason END, \
             consecutive_failures = CASE WHEN $5 THEN 0 ELSE consecutive_failures END, \
             updated_at = $6 WHERE id = $1",
        )
        .bind(id)
        .bind(patch.url.as_deref())
        .bind(events)
        .bind(patch.enabled)
        .bind(reenable)
        .bind(ts(at));
        query.change_audited(self, audit).await?;
        self.webhook(id).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(%id))]
    async fn delete_webhook(&self, id: Uuid, audit: &[AuditEntry]) -> StoreResult<()> {
        sqlx::query("DELETE FROM webhooks WHERE id = $1")
            .bind(id)
            .change_audited(self, audit)
            .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(%id))]
    async fn rotate_webhook_secret(
        &self,
        id: Uuid,
        rotation: &SecretRotation,
        audit: &[AuditEntry],
    ) -> StoreResult<Webhook> {
        let SecretRotation {
            secret,
            overlap_until,
        } = rotation;
        let mut tx = self.writer().begin().await.map_err(db)?;
        let touched = sqlx::query("UPDATE webhooks SET updated_at = $2 WHERE id = $1")
            .bind(id)
            .bind(ts(secret.created_at))
            .run(&mut *tx)
            .await?;
        if touched == 0 {
            return Err(StoreError::NotFound);
        }
        // A secret kept from an earlier rotation goes now; the current one signs on until
        // `overlap_until`.
        sqlx::query("DELETE FROM webhook_secrets WHERE webhook_id = $1 AND expires_at IS NOT NULL")
            .bind(id)
            .run(&mut *tx)
            .await?;
        sqlx::query("UPDATE webhook_secrets SET expires_at = $2 WHERE webhook_id = $1")
            .bind(id)
            .bind(ts(*overlap_until))
            .run(&mut *tx)
            .await?;
        insert_secret(&mut tx, id, secret).await?;
        commit_audited(tx, self, audit).await?;
        self.webhook(id).await
    }

    async fn webhook_secrets(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<WebhookSecretRecord>> {
        sqlx::query(
            "SELECT id, hint, secret_key_id, secret_nonce, secret_ciphertext, created_at, \
             expires_at FROM webhook_secrets \
             WHERE webhook_id = $1 AND (expires_at IS NULL OR expires_at > $2) \
             ORDER BY id DESC",
        )
        .bind(id)
        .bind(ts(now))
        .all(self.reader(), secret_from_row)
        .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(n = deliveries.len()))]
    async fn enqueue_deliveries(&self, deliveries: &[NewDelivery]) -> StoreResult<u64> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        let mut added = 0;
        let sql = format!(
            "INSERT INTO webhook_deliveries (id, webhook_id, event_id, event_type, payload, \
             status, attempts, next_attempt_at, created_at, message_id, user_id) \
             SELECT $1, $2, $3, $4, $5, 'pending', 0, $6, $6, $7, $8 \
             WHERE $4 NOT IN ('message.created', 'message.updated') OR EXISTS \
                 (SELECT 1 FROM messages m WHERE m.id = $7 AND m.deleted_at IS NULL \
                  AND m.author_id = $8{lock}) \
             ON CONFLICT (webhook_id, event_id) DO NOTHING",
            lock = message_share_lock()
        );
        // DATA-6: nothing is queued that names a person as she was before her erasure (an
        // event still on its way to this queue when she was erased); what the erasure itself
        // announces names her by the erased name she has now. Her row is read (under a share
        // lock on PostgreSQL) before the insert locks the message, in the order an erasure
        // takes them: it waits for this, or this sees her erased.
        let person = format!(
            "SELECT erased_at IS NULL AS here, username FROM users WHERE id = $1{}",
            postgres_only(" FOR SHARE")
        );
        for d in deliveries {
            if let Some(user) = d.user_id {
                let erased_as = sqlx::query(&person)
                    .bind(user)
                    .opt(&mut *tx, |r| {
                        let here: bool = get(r, "here")?;
                        (!here).then(|| get::<String>(r, "username")).transpose()
                    })
                    .await?
                    .flatten();
                if let Some(name) = erased_as {
                    // Usernames are ASCII without quotes: their JSON is the name itself.
                    if !d.payload.contains(&format!("\"username\":\"{name}\"")) {
                        continue;
                    }
                }
            }
            added += sqlx::query(&sql)
                .bind(d.id)
                .bind(d.webhook_id)
                .bind(d.event_id)
                .bind(d.event_type.as_str())
                .bind(d.payload.as_str())
                .bind(ts(d.created_at))
                .bind(d.message_id)
                .bind(d.user_id)
                .run(&mut *tx)
                .await?;
        }
        tx.commit().await.map_err(db)?;
        Ok(added)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(owner))]
    async fn claim_deliveries(
        &self,
        lease: Lease<'_>,
        now: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<Vec<WebhookDelivery>> {
        let sql = format!(
            "UPDATE webhook_deliveries SET lease_owner = $1, lease_until = $2 \
             WHERE status = 'pending' AND (lease_until IS NULL OR lease_until <= $3) \
             AND id IN (SELECT d.id FROM webhook_deliveries d \
                 JOIN webhooks w ON w.id = d.webhook_id \
                 WHERE w.enabled AND d.status = 'pending' AND d.next_attempt_at <= $3 \
                 AND (d.lease_until IS NULL OR d.lease_until <= $3) \
                 AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e \
                     WHERE e.webhook_id = d.webhook_id AND e.status = 'pending' \
                     AND e.event_id < d.event_id) \
                 ORDER BY d.next_attempt_at, d.event_id LIMIT $4{lock}) \
             RETURNING {cols}",
            lock = claim_lock(),
            cols = DELIVERY_COLS
        );
        sqlx::query(&sql)
            .bind(lease.owner)
            .bind(ts(lease.until))
            .bind(ts(now))
            .bind(limit)
            .all(self.writer(), delivery_from_row)
            .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(%id))]
    async fn finish_delivery(
        &self,
        id: Uuid,
        owner: &str,
        outcome: &AttemptOutcome,
    ) -> StoreResult<(bool, bool)> {
        let (status, next, finished) = match outcome.retry_at {
            None => (DeliveryStatus::Delivered, None, Some(outcome.at)),
            Some(Some(t)) => (DeliveryStatus::Pending, Some(t), None),
            Some(None) => (DeliveryStatus::Failed, None, Some(outcome.at)),
        };
        let mut tx = self.writer().begin().await.map_err(db)?;
        let row = sqlx::query(
            "UPDATE webhook_deliveries SET attempts = attempts + 1, lease_owner = NULL, \
             lease_until = NULL, status = $3, next_attempt_at = COALESCE($4, next_attempt_at), \
             last_status_code = $5, last_error = $6, latency_ms = $7, finished_at = $8 \
             WHERE id = $1 AND lease_owner = $2 AND status = 'pending' RETURNING webhook_id",
        )
        .bind(id)
        .bind(owner)
        .bind(status.as_str())
        .bind(next.map(ts))
        .bind(outcome.status_code)
        .bind(outcome.error.as_deref())
        .bind(outcome.latency_ms)
        .bind(finished.map(ts))
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        let Some(row) = row else {
            tx.rollback().await.map_err(db)?;
            return Ok((false, false));
        };
        let webhook: Uuid = get(&row, "webhook_id")?;
        if outcome.retry_at.is_none() {
            sqlx::query("UPDATE webhooks SET consecutive_failures = 0 WHERE id = $1")
                .bind(webhook)
                .run(&mut *tx)
                .await?;
            tx.commit().await.map_err(db)?;
            return Ok((true, false));
        }
        sqlx::query(
            "UPDATE webhooks SET consecutive_failures = consecutive_failures + 1 WHERE id = $1",
        )
        .bind(webhook)
        .run(&mut *tx)
        .await?;
        // Only the attempt that crosses the threshold of an enabled endpoint disables it.
        let disabled = sqlx::query(
            "UPDATE webhooks SET enabled = $3, disabled_reason = 'failing' \
             WHERE id = $1 AND enabled AND consecutive_failures >= $2",
        )
        .bind(webhook)
        .bind(outcome.disable_after)
        .bind(false)
        .run(&mut *tx)
        .await?
            == 1;
        if disabled {
            commit_audited(tx, self, &outcome.disable_audit).await?;
        } else {
            tx.commit().await.map_err(db)?;
        }
        Ok((true, disabled))
    }

    async fn delivery(&self, id: Uuid) -> StoreResult<WebhookDelivery> {
        DELIVERIES.one(self.reader(), "WHERE id = $1", id).await
    }

    async fn deliveries(
        &self,
        webhook: Uuid,
        before: Option<Uuid>,
        limit: i64,
    ) -> StoreResult<Vec<WebhookDelivery>> {
        let sql_before =
            DELIVERIES.select("WHERE webhook_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3");
        let sql_latest = DELIVERIES.select("WHERE webhook_id = $1 ORDER BY id DESC LIMIT $2");
        let query = match before {
            Some(b) => sqlx::query(&sql_before).bind(webhook).bind(b).bind(limit),
            None => sqlx::query(&sql_latest).bind(webhook).bind(limit),
        };
        query.all(self.reader(), delivery_from_row).await
    }
}
