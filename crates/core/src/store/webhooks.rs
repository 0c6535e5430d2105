//! Outgoing webhooks (HOOK-1, HOOK-2): endpoints, their sealed signing secrets and the delivery
//! queue. The records live here with the trait that stores them.
//!
//! The queue is a table: one row per (endpoint, event), unique on that pair, so enqueueing the
//! same event twice is a no-op. A node claims due rows with a lease in one statement (PostgreSQL:
//! `FOR UPDATE SKIP LOCKED`; SQLite: one writer), and only the pending row of each endpoint
//! with the lowest event id (a UUIDv7 taken when the event happened) is ever claimable, so an endpoint receives its events in order and from one node at
//! a time. Finishing a row checks the lease is still the claimer's.

use super::StoreResult;
use crate::audit::AuditEntry;
use crate::ids::*;
use crate::secretbox::Sealed;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

/// Webhooks per org.
pub const MAX_WEBHOOKS_PER_ORG: usize = 50;

/// An org's (or one conversation's) webhook endpoint, as its managers see it. The secret is
/// never part of it: `secret_hint` names its last characters for the masked form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Webhook {
    #[schema(value_type = String, format = Uuid)]
    pub id: Uuid,
    pub org_id: OrgId,
    /// When set, only this conversation's events are delivered.
    pub conversation_id: Option<ConversationId>,
    pub url: String,
    /// The event names delivered (`message.created`, …).
    pub events: Vec<String>,
    /// `false` once disabled by a manager or after sustained failure (`disabled_reason`).
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    /// Failed attempts since the last success.
    pub consecutive_failures: i32,
    pub created_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Until when the secret replaced by the last rotation still signs (both are sent).
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    #[serde(skip)]
    pub secret_hint: String,
}

/// A signing secret as stored: sealed, with a non-secret hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSecretRecord {
    /// The row id, also the sealing binding's row.
    pub id: Uuid,
    pub hint: String,
    pub sealed: Sealed,
    pub created_at: DateTime<Utc>,
    /// `None` for the newest secret; set on the older ones by a rotation.
    pub expires_at: Option<DateTime<Utc>>,
}

/// What a manager may change.
#[derive(Debug, Clone, Default)]
pub struct WebhookPatch {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    /// Re-enabling also clears `disabled_reason` and the failure count.
    pub enabled: Option<bool>,
}

/// A manager's change to an endpoint, made at `at` (its new `updated_at`).
#[derive(Debug, Clone, Copy)]
pub struct WebhookUpdate<'a> {
    pub id: Uuid,
    pub patch: &'a WebhookPatch,
    pub at: DateTime<Utc>,
}

/// A new signing secret for an endpoint, and until when the older ones still sign.
#[derive(Debug, Clone)]
pub struct SecretRotation {
    pub secret: WebhookSecretRecord,
    /// Every older secret stops signing then (or earlier, if it was to stop sooner).
    pub overlap_until: DateTime<Utc>,
}

/// The lease a claim takes on deliveries: the node's worker holding them, and until when.
#[derive(Debug, Clone, Copy)]
pub struct Lease<'a> {
    pub owner: &'a str,
    pub until: DateTime<Utc>,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Failed,
}

impl DeliveryStatus {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "delivered" => Some(Self::Delivered),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// One delivery of one event to one endpoint: the queue row and its log. `payload` is the exact
/// body sent; the secret is never recorded, and `last_error` names only the kind of failure.
/// When what the body is about is deleted, purged or erased (DATA-5, DATA-6), the body goes
/// with it: `redacted_at` is set, `payload` is empty, and a delivery still queued is given up
/// (`failed`, `last_error` "redacted").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct WebhookDelivery {
    #[schema(value_type = String, format = Uuid)]
    pub id: Uuid,
    #[schema(value_type = String, format = Uuid)]
    pub webhook_id: Uuid,
    /// Sent as `webhook-id` (`msg_<event id>`), the same on every attempt; a UUIDv7 of when the
    /// event happened, which orders the endpoint's deliveries.
    #[schema(value_type = String, format = Uuid)]
    pub event_id: Uuid,
    pub event_type: String,
    #[serde(skip)]
    pub payload: String,
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    /// Of the last attempt, in milliseconds.
    pub latency_ms: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// When the body was removed with what it was about; it cannot be redelivered.
    pub redacted_at: Option<DateTime<Utc>>,
    /// The message the body is about (message events).
    #[serde(skip)]
    pub message_id: Option<Uuid>,
    /// The person the body is about: a message's author, a member, a participant.
    #[serde(skip)]
    pub user_id: Option<Uuid>,
}

/// A delivery to enqueue.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub id: Uuid,
    pub webhook_id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub payload: String,
    pub created_at: DateTime<Utc>,
    /// See [`WebhookDelivery::message_id`]. A message event whose message is deleted or gone
    /// by the time it is queued is not queued (its body would outlive the message).
    pub message_id: Option<Uuid>,
    /// See [`WebhookDelivery::user_id`].
    pub user_id: Option<Uuid>,
}

/// The outcome of one attempt, recorded by `finish_delivery`.
#[derive(Debug, Clone)]
pub struct AttemptOutcome {
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub latency_ms: i64,
    pub at: DateTime<Utc>,
    /// `None`: delivered. `Some(Some(t))`: failed, try again at `t`. `Some(None)`: failed for
    /// good (attempts exhausted).
    pub retry_at: Option<Option<DateTime<Utc>>>,
    /// Disable the endpoint when its consecutive failures reach this many.
    pub disable_after: i32,
    /// Appended in the same transaction if this attempt disables the endpoint.
    pub disable_audit: Vec<AuditEntry>,
}

#[async_trait]
pub trait WebhookStore: Send + Sync + 'static {
    /// Stores a new endpoint with its first secret.
    async fn create_webhook(
        &self,
        hook: &Webhook,
        secret: &WebhookSecretRecord,
        audit: &[AuditEntry],
    ) -> StoreResult<()>;
    async fn webhook(&self, id: Uuid) -> StoreResult<Webhook>;
    async fn webhooks(&self, org: OrgId) -> StoreResult<Vec<Webhook>>;
    async fn update_webhook(
        &self,
        update: WebhookUpdate<'_>,
        audit: &[AuditEntry],
    ) -> StoreResult<Webhook>;
    async fn delete_webhook(&self, id: Uuid, audit: &[AuditEntry]) -> StoreResult<()>;
    /// Adds the rotation's secret as the newest; every older secret stops signing at its
    /// `overlap_until` (or earlier, if it was to stop sooner); those already expired are removed.
    async fn rotate_webhook_secret(
        &self,
        id: Uuid,
        rotation: &SecretRotation,
        audit: &[AuditEntry],
    ) -> StoreResult<Webhook>;
    /// The secrets that sign at `now`, newest first.
    async fn webhook_secrets(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<WebhookSecretRecord>>;
    /// Enqueues; a (webhook, event) pair already queued is skipped, and so is a
    /// `message.created` or `message.updated` whose message is deleted, gone or no longer by
    /// `user_id` (its author erased) — checked in the insert, so a deletion committing at the
    /// same time is either seen here or redacts the new row. Answers how many were new.
    async fn enqueue_deliveries(&self, deliveries: &[NewDelivery]) -> StoreResult<u64>;
    /// Leases up to `limit` deliveries due at `now`: only the pending delivery with the lowest
    /// event id of each enabled endpoint, and none another node holds.
    async fn claim_deliveries(
        &self,
        lease: Lease<'_>,
        now: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<Vec<WebhookDelivery>>;
    /// Records an attempt of a delivery `owner` holds; `false` (nothing changed) when the lease
    /// was lost. Answers also whether this attempt disabled the endpoint.
    async fn finish_delivery(
        &self,
        id: Uuid,
        owner: &str,
        outcome: &AttemptOutcome,
    ) -> StoreResult<(bool, bool)>;
    async fn delivery(&self, id: Uuid) -> StoreResult<WebhookDelivery>;
    /// The endpoint's deliveries, newest first, at most `limit`, before `before` when set.
    async fn deliveries(
        &self,
        webhook: Uuid,
        before: Option<Uuid>,
        limit: i64,
    ) -> StoreResult<Vec<WebhookDelivery>>;
}
