//! Health: the readiness round trip and the alerts every node's readiness check reports.

use super::StoreResult;
use crate::audit::AuditEntry;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// A health alert: its name, its status and when it was raised.
#[derive(Debug, Clone, Copy)]
pub struct HealthAlert<'a> {
    pub name: &'a str,
    pub status: &'a str,
    pub raised_at: DateTime<Utc>,
}

/// Readiness and health alerts.
#[async_trait]
pub trait HealthStore: Send + Sync + 'static {
    /// Cheap round trip for readiness checks.
    async fn ping(&self) -> StoreResult<()>;
    /// Raises (or renews) a health alert every node's readiness check reports, with `audit`
    /// in the same transaction.
    async fn raise_alert(&self, alert: &HealthAlert<'_>, audit: &[AuditEntry]) -> StoreResult<()>;
    /// The raised alerts: (name, status), by name.
    async fn alerts(&self) -> StoreResult<Vec<(String, String)>>;
    /// Clears the alert if it was raised at or before `raised_by` (one raised later stays);
    /// `true` when one went.
    async fn clear_alert(&self, name: &str, raised_by: DateTime<Utc>) -> StoreResult<bool>;
}
