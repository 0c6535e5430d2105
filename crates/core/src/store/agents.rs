//! AI agents (AGENT-1, AGENT-4): an org's agents (each a bot account with a model
//! configuration), their sealed model API keys, the monthly token budgets and the per-call usage
//! log. The records live here with the trait that stores them.
//!
//! A budget is never checked and then spent in two steps: [`AgentStore::reserve_tokens`] is one
//! transaction of conditional UPDATEs (`used + reserved + estimate <= budget`) on the agent's and
//! the org's month rows, so concurrent calls can never together reserve past a budget; the
//! call then settles its reservation with the usage the provider reported.

use super::{NewBot, StoreResult};
use crate::audit::AuditEntry;
use crate::ids::*;
use crate::model::Member;
use crate::secretbox::Sealed;
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

/// An agent as its org's managers see it. Its model API key is never part of it:
/// `api_key_hint` holds the key's last characters for the masked form.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Agent {
    #[schema(value_type = String, format = Uuid)]
    pub id: Uuid,
    pub org_id: OrgId,
    /// The bot account the agent is: it posts as this user, and is added to conversations as it.
    pub user_id: UserId,
    #[serde(skip)]
    pub bot_id: BotId,
    /// Its display name, and the name it is mentioned by (`@name`).
    pub name: String,
    /// The base URL of an OpenAI-compatible Chat Completions API (`…/v1`).
    pub endpoint: String,
    pub model: String,
    pub system_prompt: Option<String>,
    /// 0–2; `null`: the provider's default.
    pub temperature: Option<f64>,
    pub max_output_tokens: i32,
    /// How many of the conversation's latest messages the model sees.
    pub context_messages: i32,
    /// Tokens (in + out) per calendar month (UTC); `null`: no cap of its own.
    pub monthly_token_budget: Option<i64>,
    pub created_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip)]
    pub api_key_hint: Option<String>,
}

/// A sealed model API key as stored, with a non-secret hint (its last four characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentKeyRecord {
    pub hint: String,
    pub sealed: Sealed,
    pub created_at: DateTime<Utc>,
}

/// What a manager may change; `None` leaves a field as it is, `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct AgentPatch {
    pub name: Option<String>,
    pub endpoint: Option<String>,
    pub model: Option<String>,
    pub system_prompt: Option<Option<String>>,
    pub temperature: Option<Option<f64>>,
    pub max_output_tokens: Option<i32>,
    pub context_messages: Option<i32>,
    pub monthly_token_budget: Option<Option<i64>>,
    /// A new key (`Some(Some)`), or none any more (`Some(None)`).
    pub api_key: Option<Option<AgentKeyRecord>>,
    /// What a move of the endpoint without a key of its own was allowed on (DATA-3): made only
    /// while the row still has it (`Conflict::AgentChanged` otherwise).
    pub decided_on: Option<KeyDecidedOn>,
}

/// The endpoint and key an endpoint change was checked against (`key_stays_with_its_origin`,
/// DATA-3): the store compares them under the agent's row lock, so a key stored meanwhile (or
/// another endpoint) is never left with an endpoint that was allowed only without it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyDecidedOn {
    pub endpoint: String,
    pub has_key: bool,
}

/// A new agent: its bot (account, membership and a `bots` row with no usable token) and its
/// configuration, stored in one transaction.
#[derive(Debug, Clone, Copy)]
pub struct NewAgent<'a> {
    pub bot: NewBot<'a>,
    pub agent: &'a Agent,
    pub api_key: Option<&'a AgentKeyRecord>,
}

/// Why a reservation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetRefusal {
    /// The agent's own monthly budget would be exceeded.
    Agent,
    /// The org's monthly budget would be exceeded.
    Org,
}

/// Tokens held for one model call until it settles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenReservation {
    pub agent: Uuid,
    pub org: OrgId,
    /// `YYYY-MM` (UTC) of the call.
    pub month: MonthKey,
    pub tokens: i64,
}

/// A calendar month (UTC) as stored: `YYYY-MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonthKey {
    pub year: i32,
    pub month: u32,
}

impl MonthKey {
    #[must_use]
    pub fn of(at: DateTime<Utc>) -> Self {
        use chrono::Datelike;
        Self {
            year: at.year(),
            month: at.month(),
        }
    }

    #[must_use]
    pub fn as_text(&self) -> String {
        format!("{:04}-{:02}", self.year, self.month)
    }
}

/// An org's budget for the month: its cap (if any) and what its agents used and hold reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct BudgetState {
    /// Tokens per calendar month (UTC) for all of the org's agents together; `null`: no cap.
    pub monthly_token_budget: Option<i64>,
    pub used: i64,
    pub reserved: i64,
}

/// One model call, for the usage report.
#[derive(Debug, Clone)]
pub struct AgentCall {
    pub id: Uuid,
    pub agent: Uuid,
    pub day: NaiveDate,
    pub latency_ms: i64,
    pub tokens_in: i64,
    pub tokens_out: i64,
    pub failed: bool,
}

/// One day of an agent's usage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct UsageDay {
    #[schema(value_type = String, format = Date)]
    pub day: NaiveDate,
    pub calls: i64,
    pub tokens_in: i64,
    pub tokens_out: i64,
    pub failures: i64,
    pub latency_p50_ms: Option<i64>,
    pub latency_p95_ms: Option<i64>,
}

#[async_trait]
pub trait AgentStore: Send + Sync + 'static {
    /// Creates the bot (as `create_bot` does, in the same transaction) and the agent with its
    /// key; answers the bot's membership.
    async fn create_agent(&self, new: &NewAgent<'_>, audit: &[AuditEntry]) -> StoreResult<Member>;
    async fn agent(&self, id: Uuid) -> StoreResult<Agent>;
    async fn agents(&self, org: OrgId) -> StoreResult<Vec<Agent>>;
    /// The agent whose bot account is `user`, if any.
    async fn agent_of_user(&self, user: UserId) -> StoreResult<Option<Agent>>;
    /// The agents participating in `conv` (their bot accounts are participants).
    async fn agents_in_conversation(&self, conv: ConversationId) -> StoreResult<Vec<Agent>>;
    /// With `patch.decided_on`, only while the agent's endpoint and whether it has a key are
    /// still those (`Conflict::AgentChanged`, nothing changed, otherwise).
    async fn update_agent(
        &self,
        id: Uuid,
        patch: &AgentPatch,
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> StoreResult<Agent>;
    /// Deletes the agent, its key, usage and its `bots` row, and disables its account (its
    /// messages stay, authored by it).
    async fn delete_agent(&self, id: Uuid, audit: &[AuditEntry]) -> StoreResult<()>;
    /// The agent's sealed model API key, if it has one.
    async fn agent_key(&self, id: Uuid) -> StoreResult<Option<AgentKeyRecord>>;
    /// The agent and its sealed key as one read saw them (one statement): what a model call
    /// is built from, so an endpoint and a key changed together are never mixed (DATA-3).
    async fn agent_with_key(&self, id: Uuid) -> StoreResult<(Agent, Option<AgentKeyRecord>)>;
    /// Sets (`Some`) or removes (`None`) the org's monthly token cap.
    async fn set_org_token_budget(
        &self,
        org: OrgId,
        budget: Option<i64>,
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> StoreResult<()>;
    async fn org_budget_state(&self, org: OrgId, month: MonthKey) -> StoreResult<BudgetState>;
    /// Holds `reservation.tokens` against both the agent's and the org's month, atomically:
    /// refused (nothing held) when either cap would be passed.
    async fn reserve_tokens(
        &self,
        reservation: &TokenReservation,
    ) -> StoreResult<Result<(), BudgetRefusal>>;
    /// Releases a reservation, counting `used` tokens instead.
    async fn settle_tokens(&self, reservation: &TokenReservation, used: i64) -> StoreResult<()>;
    async fn record_agent_call(&self, call: &AgentCall) -> StoreResult<()>;
    /// Per-day usage between the two days (inclusive), oldest first; days without calls are
    /// left out.
    async fn agent_usage(
        &self,
        agent: Uuid,
        since: NaiveDate,
        until: NaiveDate,
    ) -> StoreResult<Vec<UsageDay>>;
}

/// Folds calls (day, latency, tokens in, tokens out, failed) into per-day usage, oldest first.
/// Percentiles are nearest-rank over the day's call latencies.
#[must_use]
pub fn usage_days(mut calls: Vec<(NaiveDate, i64, i64, i64, bool)>) -> Vec<UsageDay> {
    calls.sort_by_key(|c| (c.0, c.1));
    let mut out: Vec<UsageDay> = Vec::new();
    let mut latencies: Vec<i64> = Vec::new();
    let finish = |day: &mut UsageDay, latencies: &mut Vec<i64>| {
        day.latency_p50_ms = nearest_rank(latencies, 50);
        day.latency_p95_ms = nearest_rank(latencies, 95);
        latencies.clear();
    };
    for (day, latency, tokens_in, tokens_out, failed) in calls {
        if out.last().is_none_or(|d| d.day != day) {
            if let Some(last) = out.last_mut() {
                finish(last, &mut latencies);
            }
            out.push(UsageDay {
                day,
                calls: 0,
                tokens_in: 0,
                tokens_out: 0,
                failures: 0,
                latency_p50_ms: None,
                latency_p95_ms: None,
            });
        }
        let d = out.last_mut().expect("pushed above");
        d.calls += 1;
        d.tokens_in += tokens_in;
        d.tokens_out += tokens_out;
        d.failures += i64::from(failed);
        latencies.push(latency);
    }
    if let Some(last) = out.last_mut() {
        finish(last, &mut latencies);
    }
    out
}

/// The `p`th percentile (nearest rank) of sorted `values`.
fn nearest_rank(values: &[i64], p: usize) -> Option<i64> {
    if values.is_empty() {
        return None;
    }
    let rank = (p * values.len()).div_ceil(100).max(1);
    values.get(rank - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_days_count_and_rank() {
        let d1 = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        let d2 = NaiveDate::from_ymd_opt(2026, 1, 2).unwrap();
        let mut calls: Vec<_> = (1..=20).map(|i| (d1, i * 10, 5, 7, i == 3)).collect();
        calls.push((d2, 42, 1, 2, false));
        let days = usage_days(calls);
        assert_eq!(days.len(), 2);
        assert_eq!(days[0].calls, 20);
        assert_eq!(days[0].tokens_in, 100);
        assert_eq!(days[0].tokens_out, 140);
        assert_eq!(days[0].failures, 1);
        assert_eq!(days[0].latency_p50_ms, Some(100));
        assert_eq!(days[0].latency_p95_ms, Some(190));
        assert_eq!(days[1].latency_p50_ms, Some(42));
        assert_eq!(days[1].latency_p95_ms, Some(42));
    }
}
