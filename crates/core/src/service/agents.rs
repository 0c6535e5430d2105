//! AI agents (AGENT-1, AGENT-4, AGENT-6): managed by org owners and admins (and keys with
//! `org:admin`). An agent IS a bot account of its org (AUTH-6), made with it in one
//! transaction: an org member with role `member`, added to conversations like anyone, limited
//! as a bot. It holds no credential: its `bots` row stores random bytes where a token's keyed
//! hash would be (no token hashes to them), it is left out of the bot list and its token cannot
//! be rotated (`bots`). Only this node's agent runner acts as it.
//!
//! The model API key is sealed at rest with the secrets key ring (DATA-3, column
//! `agent_keys.secret`), never answered (the caller masks it with its hint), never audited or
//! logged. The endpoint has passed the agent SSRF guard before these calls (the server owns
//! it) and passes it again at every call. Every change is audited without the key or any
//! message content; budget changes carry the old and new cap.

use super::bots::unusable_token_hash;
use super::{of_org, Actor, Result, Services};
use crate::agent::{
    ModelApiKey, ModelName, SystemPrompt, CONTEXT_MESSAGES_DEFAULT, CONTEXT_MESSAGES_MAX,
    MAX_OUTPUT_TOKENS_DEFAULT, MAX_OUTPUT_TOKENS_MAX, TEMPERATURE_MAX,
};
use crate::audit::AuditEntry;
use crate::error::ServiceError;
use crate::event::Cached;
use crate::ids::*;
use crate::keyring::SecretRef;
use crate::policy::OrgAction;
use crate::secretbox::SealedColumn;
use crate::store::agents::*;
use crate::store::NewBot;
use crate::types::DisplayName;
use chrono::NaiveDate;
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

/// The longest usage report, in days.
pub const USAGE_MAX_DAYS: i64 = 92;
/// The usage report's default span, in days (ending today).
pub const USAGE_DEFAULT_DAYS: i64 = 30;

/// An agent's settings as given at creation; the endpoint has passed the agent SSRF guard.
#[derive(Debug)]
pub struct NewAgentSettings {
    pub name: DisplayName,
    pub endpoint: String,
    pub model: ModelName,
    pub api_key: Option<ModelApiKey>,
    pub system_prompt: Option<SystemPrompt>,
    pub temperature: Option<f64>,
    pub max_output_tokens: Option<i32>,
    pub context_messages: Option<i32>,
    pub monthly_token_budget: Option<i64>,
}

/// A change to an agent; `None` leaves a field, `Some(None)` clears it.
#[derive(Debug, Default)]
pub struct AgentChanges {
    pub name: Option<DisplayName>,
    /// Passed the agent SSRF guard.
    pub endpoint: Option<String>,
    pub model: Option<ModelName>,
    pub api_key: Option<Option<ModelApiKey>>,
    pub system_prompt: Option<Option<SystemPrompt>>,
    pub temperature: Option<Option<f64>>,
    pub max_output_tokens: Option<i32>,
    pub context_messages: Option<i32>,
    pub monthly_token_budget: Option<Option<i64>>,
}

/// A stored API key goes only to the origin (scheme, host, port) it was given for (DATA-3): an
/// endpoint moved to another origin without `api_key` in the same change — a new key, or null
/// to drop it — is refused, else the next call would hand the stored key, which the API never
/// shows, to the new host. Agents' `endpoint` and moderation guards' `url` follow this rule.
pub(crate) fn key_stays_with_its_origin(
    field: &str,
    before: &str,
    after: Option<&str>,
    has_key: bool,
    key_given: bool,
) -> Result<()> {
    let origin = |u: &str| url::Url::parse(u).ok().map(|u| u.origin());
    let moved = after.is_some_and(|after| {
        let (a, b) = (origin(before), origin(after));
        a.is_none() || a != b
    });
    if moved && has_key && !key_given {
        return Err(ServiceError::invalid(
            "api_key",
            "api_key_required",
            format!(
                "`{field}` moves to another host: send `api_key` with it (a new key, or null to \
                 drop the stored one); a stored key goes only to the host it was given for"
            ),
        ));
    }
    Ok(())
}

fn key_ref(agent: Uuid) -> SecretRef {
    SecretRef {
        column: SealedColumn::AgentApiKey,
        row: agent,
    }
}

fn out_of_range(field: &str, rule: &str) -> ServiceError {
    ServiceError::invalid(field, "out_of_range", format!("must be {rule}"))
}

fn check_temperature(t: Option<f64>) -> Result<Option<f64>> {
    match t {
        Some(t) if !(0.0..=TEMPERATURE_MAX).contains(&t) => {
            Err(out_of_range("temperature", "between 0 and 2"))
        }
        other => Ok(other),
    }
}

fn check_max_output_tokens(n: i32) -> Result<i32> {
    if (1..=MAX_OUTPUT_TOKENS_MAX).contains(&n) {
        Ok(n)
    } else {
        Err(out_of_range("max_output_tokens", "between 1 and 32768"))
    }
}

fn check_context_messages(n: i32) -> Result<i32> {
    if (1..=CONTEXT_MESSAGES_MAX).contains(&n) {
        Ok(n)
    } else {
        Err(out_of_range("context_messages", "between 1 and 200"))
    }
}

/// A monthly token cap: 0 or more (`field` names it in the answer).
pub fn check_budget(field: &str, b: Option<i64>) -> Result<Option<i64>> {
    match b {
        Some(b) if b < 0 => Err(out_of_range(field, "0 or more, or null for no cap")),
        other => Ok(other),
    }
}

/// The usage report's days: `since`..=`until`, by default the last 30 days to `today`; at
/// most [`USAGE_MAX_DAYS`], `since` not after `until`.
pub fn usage_span(
    since: Option<NaiveDate>,
    until: Option<NaiveDate>,
    today: NaiveDate,
) -> Result<(NaiveDate, NaiveDate)> {
    let until = until.unwrap_or(today);
    let since = match since {
        Some(since) => since,
        // Checked: a day near the start of chrono's calendar has no 29 days before it (and
        // `NaiveDate - TimeDelta` panics there).
        None => until
            .checked_sub_signed(chrono::Duration::days(USAGE_DEFAULT_DAYS - 1))
            .ok_or_else(|| out_of_range("until", "a later day, or given with since"))?,
    };
    if since > until {
        return Err(ServiceError::invalid(
            "since",
            "invalid_range",
            "must not be after until",
        ));
    }
    if (until - since).num_days() >= USAGE_MAX_DAYS {
        return Err(ServiceError::invalid(
            "since",
            "range_too_long",
            format!("the range may span at most {USAGE_MAX_DAYS} days"),
        ));
    }
    Ok((since, until))
}

/// The audit row names changed fields only (never the key, and not the prompt's text).
fn changed_fields(c: &AgentChanges) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut add = |set: bool, name| {
        if set {
            out.push(name);
        }
    };
    add(c.name.is_some(), "name");
    add(c.endpoint.is_some(), "endpoint");
    add(c.model.is_some(), "model");
    add(c.system_prompt.is_some(), "system_prompt");
    add(c.temperature.is_some(), "temperature");
    add(c.max_output_tokens.is_some(), "max_output_tokens");
    add(c.context_messages.is_some(), "context_messages");
    add(c.monthly_token_budget.is_some(), "monthly_token_budget");
    out
}

impl Services {
    /// Agent `id` of `org` (404 for another org's), once `actor` may manage the org's agents.
    async fn org_agent(&self, actor: &Actor, org: OrgId, id: Uuid, write: bool) -> Result<Agent> {
        self.require_org_settings(actor, org, OrgAction::ManageAgents, write)
            .await?;
        of_org(self.store.agent(id).await, org, |a| a.org_id, "agent")
    }

    /// Seals `key` for agent `id`.
    async fn seal_agent_key(&self, id: Uuid, key: &ModelApiKey) -> Result<AgentKeyRecord> {
        let text = key.secret().expose_secret().as_bytes();
        let sealed = self.seal_secret(key_ref(id).binding(), text).await?;
        Ok(AgentKeyRecord {
            hint: key.hint(),
            sealed,
            created_at: self.clock.now(),
        })
    }

    /// After storing `record` (sealed from `key`): settles its seal (see `settle_sealed`).
    async fn settle_agent_key(
        &self,
        id: Uuid,
        record: AgentKeyRecord,
        key: &ModelApiKey,
    ) -> Result<()> {
        let text = key.secret().expose_secret().as_bytes();
        self.settle_sealed(key_ref(id), record.sealed, text).await
    }

    /// The org's agents changed: every node forgets its copy of the list (`OrgAgents`).
    fn agents_changed(&self, org: OrgId) {
        self.stale(vec![Cached::Org(org)]);
    }

    /// Creates an agent of `org` with its bot account, in one transaction.
    pub async fn create_agent(
        &self,
        actor: &Actor,
        org: OrgId,
        s: NewAgentSettings,
    ) -> Result<Agent> {
        self.require_org_settings(actor, org, OrgAction::ManageAgents, true)
            .await?;
        let temperature = check_temperature(s.temperature)?;
        let max_output_tokens =
            check_max_output_tokens(s.max_output_tokens.unwrap_or(MAX_OUTPUT_TOKENS_DEFAULT))?;
        let context_messages =
            check_context_messages(s.context_messages.unwrap_or(CONTEXT_MESSAGES_DEFAULT))?;
        let budget = check_budget("monthly_token_budget", s.monthly_token_budget)?;
        let named = (s.name.clone(), super::bots::AGENT_USERNAME_PREFIX);
        let (bot, account) = self.new_bot(actor, org, named, None)?;
        let unusable = unusable_token_hash();
        let id = Uuid::now_v7();
        let key = match &s.api_key {
            Some(k) => Some(self.seal_agent_key(id, k).await?),
            None => None,
        };
        let agent = Agent {
            id,
            org_id: org,
            user_id: bot.user_id,
            bot_id: bot.id,
            name: s.name.into_inner(),
            endpoint: s.endpoint,
            model: s.model.into_inner(),
            system_prompt: s.system_prompt.and_then(SystemPrompt::into_option),
            temperature,
            max_output_tokens,
            context_messages,
            monthly_token_budget: budget,
            created_by: Some(actor.user.id),
            created_at: bot.created_at,
            updated_at: bot.created_at,
            api_key_hint: key.as_ref().map(|k| k.hint.clone()),
        };
        let audit = self
            .audit(actor, "agent.created")
            .resource("agent", id)
            .org(org)
            .detail(serde_json::json!({
                "user_id": agent.user_id, "endpoint": agent.endpoint, "model": agent.model,
                "api_key": key.is_some(), "monthly_token_budget": budget,
            }));
        let new = NewAgent {
            bot: NewBot {
                bot: &bot,
                account: &account,
                token_hash: &unusable,
            },
            agent: &agent,
            api_key: key.as_ref(),
        };
        let member = self.store.create_agent(&new, &[audit]).await?;
        self.announce_member_added(&member);
        self.agents_changed(org);
        if let (Some(record), Some(k)) = (key, &s.api_key) {
            self.settle_agent_key(id, record, k).await?;
        }
        Ok(agent)
    }

    /// The org's agents (keys masked by the caller).
    pub async fn agents(&self, actor: &Actor, org: OrgId) -> Result<Vec<Agent>> {
        self.require_org_settings(actor, org, OrgAction::ManageAgents, false)
            .await?;
        Ok(self.store.agents(org).await?)
    }

    pub async fn agent(&self, actor: &Actor, org: OrgId, id: Uuid) -> Result<Agent> {
        self.org_agent(actor, org, id, false).await
    }

    /// Changes an agent: any setting, a new API key (rotated) or none (cleared).
    pub async fn update_agent(
        &self,
        actor: &Actor,
        org: OrgId,
        id: Uuid,
        c: AgentChanges,
    ) -> Result<Agent> {
        let before = self.org_agent(actor, org, id, true).await?;
        key_stays_with_its_origin(
            "endpoint",
            &before.endpoint,
            c.endpoint.as_deref(),
            before.api_key_hint.is_some(),
            c.api_key.is_some(),
        )?;
        let temperature = c.temperature.map(check_temperature).transpose()?;
        let max_output_tokens = c
            .max_output_tokens
            .map(check_max_output_tokens)
            .transpose()?;
        let context_messages = c.context_messages.map(check_context_messages).transpose()?;
        let budget = (c.monthly_token_budget)
            .map(|b| check_budget("monthly_token_budget", b))
            .transpose()?;
        let key = match &c.api_key {
            Some(Some(k)) => Some(Some(self.seal_agent_key(id, k).await?)),
            Some(None) => Some(None),
            None => None,
        };
        let mut audit: Vec<AuditEntry> = Vec::new();
        let entry = |event: &str| self.audit(actor, event).resource("agent", id).org(org);
        let fields = changed_fields(&c);
        if !fields.is_empty() {
            audit.push(entry("agent.updated").detail(serde_json::json!({ "fields": fields })));
        }
        if let Some(k) = &key {
            let what = if k.is_some() { "replaced" } else { "removed" };
            audit.push(entry("agent.key_rotated").detail(serde_json::json!({ "key": what })));
        }
        if let Some(b) = budget {
            audit.push(entry("agent.budget_changed").detail(serde_json::json!({
                "from": before.monthly_token_budget, "to": b,
            })));
        }
        // A move allowed for the endpoint and key read above holds only while they are still
        // those: a key stored meanwhile never goes to where this moves it (DATA-3).
        let decided_on = (c.endpoint.is_some() && c.api_key.is_none()).then(|| KeyDecidedOn {
            endpoint: before.endpoint.clone(),
            has_key: before.api_key_hint.is_some(),
        });
        let patch = AgentPatch {
            name: c.name.map(DisplayName::into_inner),
            endpoint: c.endpoint,
            model: c.model.map(ModelName::into_inner),
            system_prompt: (c.system_prompt).map(|p| p.and_then(SystemPrompt::into_option)),
            temperature,
            max_output_tokens,
            context_messages,
            monthly_token_budget: budget,
            api_key: key.clone(),
            decided_on,
        };
        let now = self.clock.now();
        let updated = (self.store.update_agent(id, &patch, now, &audit).await)
            .map_err(ServiceError::missing("agent"))?;
        if patch.name.is_some() {
            self.stale(vec![Cached::User(updated.user_id)]);
        }
        self.agents_changed(org);
        if let (Some(Some(record)), Some(Some(k))) = (key, &c.api_key) {
            self.settle_agent_key(id, record, k).await?;
        }
        Ok(updated)
    }

    /// Deletes an agent: its configuration, key and usage go, its bot account is disabled and
    /// keeps its past messages.
    pub async fn delete_agent(&self, actor: &Actor, org: OrgId, id: Uuid) -> Result<()> {
        let agent = self.org_agent(actor, org, id, true).await?;
        if let Some(g) = self.guards_using_agent(org, id).await?.first() {
            return Err(ServiceError::conflict_naming(
                "agent_in_use",
                format!(
                    "the content guard \"{}\" uses this agent: delete it or give it another \
                     agent first",
                    g.name
                ),
            ));
        }
        let audit = self
            .audit(actor, "agent.deleted")
            .resource("agent", id)
            .org(org)
            .detail(serde_json::json!({ "user_id": agent.user_id }));
        (self.store.delete_agent(id, &[audit]).await).map_err(ServiceError::missing("agent"))?;
        self.stale(vec![Cached::User(agent.user_id)]);
        self.agents_changed(org);
        Ok(())
    }

    /// The org's monthly token budget for all its agents, and this month's use.
    pub async fn agent_budget(&self, actor: &Actor, org: OrgId) -> Result<BudgetState> {
        self.require_org_settings(actor, org, OrgAction::ManageAgents, false)
            .await?;
        let month = MonthKey::of(self.clock.now());
        Ok(self.store.org_budget_state(org, month).await?)
    }

    /// Sets (or, `None`, removes) the org's monthly token budget.
    pub async fn set_agent_budget(
        &self,
        actor: &Actor,
        org: OrgId,
        budget: Option<i64>,
    ) -> Result<BudgetState> {
        self.require_org_settings(actor, org, OrgAction::ManageAgents, true)
            .await?;
        let budget = check_budget("monthly_token_budget", budget)?;
        let month = MonthKey::of(self.clock.now());
        let before = self.store.org_budget_state(org, month).await?;
        let audit = self
            .audit(actor, "agent.org_budget_changed")
            .resource("org", org)
            .org(org)
            .detail(serde_json::json!({
                "from": before.monthly_token_budget, "to": budget,
            }));
        let now = self.clock.now();
        (self.store.set_org_token_budget(org, budget, now, &[audit])).await?;
        Ok(self.store.org_budget_state(org, month).await?)
    }

    /// An agent's usage per day between `since` and `until` (see [`usage_span`]).
    pub async fn agent_usage(
        &self,
        actor: &Actor,
        org: OrgId,
        id: Uuid,
        since: Option<NaiveDate>,
        until: Option<NaiveDate>,
    ) -> Result<Vec<UsageDay>> {
        let agent = self.org_agent(actor, org, id, false).await?;
        let (since, until) = usage_span(since, until, self.clock.now().date_naive())?;
        Ok(self.store.agent_usage(agent.id, since, until).await?)
    }

    /// Agent `id` with its model API key opened, both from one read (DATA-3): a model call is
    /// built from these alone, so an endpoint and a key changed together are never mixed.
    /// `None` when the agent is gone.
    pub(super) async fn agent_for_call(
        &self,
        id: Uuid,
    ) -> Result<Option<(Agent, Option<SecretString>)>> {
        let (agent, record) = match self.store.agent_with_key(id).await {
            Ok(found) => found,
            Err(crate::store::StoreError::NotFound) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let key = match record {
            Some(record) => {
                Some((self.open_sealed_text(key_ref(id).binding(), &record.sealed)).await?)
            }
            None => None,
        };
        Ok(Some((agent, key)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_bounds() {
        assert!(check_temperature(Some(2.0)).is_ok());
        assert!(check_temperature(Some(2.01)).is_err());
        assert!(check_temperature(Some(-0.1)).is_err());
        assert!(check_max_output_tokens(0).is_err());
        assert!(check_max_output_tokens(32768).is_ok());
        assert!(check_context_messages(201).is_err());
        assert!(check_budget("b", Some(-1)).is_err());
        assert_eq!(check_budget("b", None).unwrap(), None);
    }

    #[test]
    fn usage_spans() {
        let today = NaiveDate::from_ymd_opt(2026, 3, 31).unwrap();
        let (since, until) = usage_span(None, None, today).unwrap();
        assert_eq!(until, today);
        assert_eq!((until - since).num_days(), 29);
        let early = NaiveDate::from_ymd_opt(2025, 1, 1).unwrap();
        assert!(usage_span(Some(early), None, today).is_err());
        assert!(usage_span(Some(today), Some(early), today).is_err());
        let ok = today - chrono::Duration::days(91);
        assert!(usage_span(Some(ok), Some(today), today).is_ok());
    }

    #[test]
    fn a_default_span_before_the_calendar_starts_is_refused_not_a_panic() {
        let today = NaiveDate::from_ymd_opt(2026, 3, 31).unwrap();
        let e = usage_span(None, Some(NaiveDate::MIN), today).unwrap_err();
        assert!(
            matches!(&e, ServiceError::Invalid { field, code: "out_of_range", .. } if field == "until"),
            "{e:?}"
        );
        // Given both, the earliest day is a span like any other.
        assert_eq!(
            usage_span(Some(NaiveDate::MIN), Some(NaiveDate::MIN), today).unwrap(),
            (NaiveDate::MIN, NaiveDate::MIN)
        );
        assert!(usage_span(Some(NaiveDate::MIN), Some(NaiveDate::MAX), today).is_err());
        let (since, until) = usage_span(None, Some(NaiveDate::MAX), today).unwrap();
        assert_eq!((until, (until - since).num_days()), (NaiveDate::MAX, 29));
    }
}
