//! Content guards (RATE-6): an org's guards with their decision counters, the sealed API key of
//! a moderation endpoint, and the review queue of flagged messages.
//!
//! Counters are only ever moved by one `UPDATE … SET n = n + k` per guard, so parallel sends
//! never lose a count. A flag is open until resolved; resolving is one conditional update (an
//! already resolved flag stays as its first resolver left it).

use super::StoreResult;
use crate::audit::AuditEntry;
use crate::guards::{GuardMode, GuardRules};
use crate::ids::*;
use crate::secretbox::Sealed;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

/// How many of each decision a guard has made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct GuardCounts {
    pub allowed: i64,
    pub flagged: i64,
    pub blocked: i64,
    /// Remote checks that timed out or failed (whatever the fail mode then decided).
    pub errors: i64,
}

impl GuardCounts {
    /// One decision's worth.
    #[must_use]
    pub const fn one(decision: Decision) -> Self {
        let mut c = Self {
            allowed: 0,
            flagged: 0,
            blocked: 0,
            errors: 0,
        };
        match decision {
            Decision::Allowed => c.allowed = 1,
            Decision::Flagged => c.flagged = 1,
            Decision::Blocked => c.blocked = 1,
            Decision::Error => c.errors = 1,
        }
        c
    }

    pub fn add(&mut self, other: Self) {
        self.allowed += other.allowed;
        self.flagged += other.flagged;
        self.blocked += other.blocked;
        self.errors += other.errors;
    }
}

/// What one guard decided about one text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    Flagged,
    Blocked,
    /// A remote check failed; its fail mode let the text through or blocked it.
    Error,
}

/// A guard as stored. `rules` holds its settings (never the API key, sealed apart).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guard {
    pub id: GuardId,
    pub org_id: OrgId,
    pub name: String,
    pub mode: GuardMode,
    pub rules: GuardRules,
    /// Guards run in ascending position (then creation) order.
    pub position: i32,
    pub enabled: bool,
    /// Whether a sealed API key is stored (`guard_secrets`).
    pub has_api_key: bool,
    pub counts: GuardCounts,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What changes a guard's API key on update.
#[derive(Debug, Clone)]
pub enum KeyChange {
    Keep,
    Remove,
    Set(Sealed),
}

/// A flagged message waiting for (or past) review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    pub id: FlagId,
    pub org_id: OrgId,
    /// `None` once the guard was deleted; `guard_name` keeps what it was called.
    pub guard_id: Option<GuardId>,
    pub guard_name: String,
    pub message_id: MessageId,
    pub conversation_id: ConversationId,
    pub author_id: Option<UserId>,
    pub created_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolved_by: Option<UserId>,
    pub resolution: Option<Resolution>,
}

/// How a reviewer closed a flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// The message stays.
    Dismissed,
    /// The message was deleted, as a moderator deletes.
    Removed,
}

impl Resolution {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Dismissed => "dismissed",
            Self::Removed => "removed",
        }
    }

    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "dismissed" => Some(Self::Dismissed),
            "removed" => Some(Self::Removed),
            _ => None,
        }
    }
}

/// A flag to queue: `message` of `conversation` by `author`, flagged by a guard.
#[derive(Debug, Clone)]
pub struct NewFlag {
    pub id: FlagId,
    pub org_id: OrgId,
    pub guard_id: GuardId,
    pub guard_name: String,
    pub message_id: MessageId,
    pub conversation_id: ConversationId,
    pub author_id: UserId,
    pub created_at: DateTime<Utc>,
}

/// A reviewer's decision on a flag.
#[derive(Debug, Clone, Copy)]
pub struct FlagResolution {
    pub id: FlagId,
    pub by: UserId,
    pub resolution: Resolution,
    pub at: DateTime<Utc>,
}

/// Totals over every guard of the server, for `GET /admin/stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct GuardTotals {
    /// Guards configured (enabled or not).
    pub guards: i64,
    pub enabled: i64,
    /// Orgs with at least one enabled guard.
    pub orgs: i64,
    pub counts: GuardCounts,
    /// Flags waiting for review.
    pub open_flags: i64,
}

#[async_trait]
pub trait GuardStore: Send + Sync + 'static {
    /// Stores a new guard with its sealed API key, if any.
    async fn create_guard(
        &self,
        guard: &Guard,
        api_key: Option<&Sealed>,
        audit: &[AuditEntry],
    ) -> StoreResult<()>;
    async fn guard(&self, id: GuardId) -> StoreResult<Guard>;
    /// The org's guards in running order (position, then id).
    async fn guards(&self, org: OrgId) -> StoreResult<Vec<Guard>>;
    /// The sealed API key of a guard, if it has one.
    async fn guard_api_key(&self, id: GuardId) -> StoreResult<Option<Sealed>>;
    /// Writes a guard's changed name, mode, rules, position and enabled state (counters are
    /// left as they are) and its key change.
    async fn update_guard(
        &self,
        guard: &Guard,
        key: &KeyChange,
        audit: &[AuditEntry],
    ) -> StoreResult<Guard>;
    async fn delete_guard(&self, id: GuardId, audit: &[AuditEntry]) -> StoreResult<()>;
    /// Adds to each guard's counters, one atomic increment each (a deleted guard is skipped).
    async fn count_guard_decisions(&self, counts: &[(GuardId, GuardCounts)]) -> StoreResult<()>;
    /// Queues flags with one statement; an open flag of the same message by the same guard
    /// is not queued twice.
    async fn add_flags(&self, flags: &[NewFlag]) -> StoreResult<()>;
    async fn flag(&self, id: FlagId) -> StoreResult<Flag>;
    /// The org's open (or resolved) flags, newest first, before `before` when set.
    async fn flags(
        &self,
        org: OrgId,
        resolved: bool,
        before: Option<FlagId>,
        limit: i64,
    ) -> StoreResult<Vec<Flag>>;
    /// Resolves the flag if it is open — and, for `Removed`, every other open flag of its
    /// message; `None` when it was resolved already (nothing changed).
    async fn resolve_flag(
        &self,
        resolution: FlagResolution,
        audit: &[AuditEntry],
    ) -> StoreResult<Option<Flag>>;
    /// Totals over every guard and flag.
    async fn guard_totals(&self) -> StoreResult<GuardTotals>;
}
