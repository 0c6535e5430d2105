//! `/orgs/{org}/agents` and `/orgs/{org}/agent-budget`: an org's AI agents (AGENT-1, AGENT-4),
//! managed by its owners and admins and by keys with `org:admin`. Every field is parsed into a
//! typed value here; the endpoint passes the agent SSRF guard (`state.agent_outbound`, which
//! only `CONCLAVE_AGENT_ALLOW_CIDRS` opens to private ranges) before it is stored — 422
//! `url_not_allowed` on `endpoint` — and again at every call. The model API key is never in an
//! answer, not even the one that created it: `api_key` is masked (`****abcd`) or null.

use super::error::{created, json, no_content, Answer, ApiError, ApiResult, Created, NoContent};
use super::extract::{ApiJson, ApiQuery, Caller};
use super::pagination::{all_as, List, Listed};
use super::users::nullable;
use crate::state::AppState;
use axum::Json;
use chrono::NaiveDate;
use conclave_core::agent::{masked_key, ModelApiKey, ModelName, SystemPrompt};
use conclave_core::policy::OrgAction;
use conclave_core::service::agents::{AgentChanges, NewAgentSettings};
use conclave_core::store::agents::{Agent, BudgetState, UsageDay};
use conclave_core::types::DisplayName;
use conclave_core::OrgId;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    use super::credentials::{declare, RouteAccess};
    use conclave_core::credential::Scope;
    declare(
        OpenApiRouter::new()
            .routes(routes!(list_agents, create_agent))
            .routes(routes!(get_agent, update_agent, delete_agent))
            .routes(routes!(agent_usage))
            .routes(routes!(get_budget, set_budget)),
        RouteAccess::always(Scope::OrgAdmin),
    )
}

/// An agent: `api_key` is masked (`****abcd`, the last four characters of a key of 12 or
/// more) or null when it has none; the key itself is never answered.
#[derive(Serialize, ToSchema)]
pub struct AgentView {
    #[serde(flatten)]
    agent: Agent,
    api_key: Option<String>,
}

impl AgentView {
    fn masked(agent: Agent) -> Self {
        let api_key = agent.api_key_hint.as_deref().map(masked_key);
        Self { agent, api_key }
    }
}

/// Puts an endpoint (the base URL of a Chat Completions API) through the agent SSRF guard:
/// 422 `url_not_allowed` naming `endpoint`; only for a caller who may manage the org's agents
/// (the verdict says things about names).
async fn checked_endpoint<P: Sync>(me: &Caller<P>, org: OrgId, url: &str) -> ApiResult<String> {
    me.services()
        .authorize_org_change(&me.actor, org, OrgAction::ManageAgents)
        .await?;
    let checked = me.state().agent_outbound.check(url).await;
    checked
        .map(|u| u.to_string())
        .map_err(|e| ApiError::url_not_allowed(&e, "model endpoints", "endpoint"))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAgent {
    /// Its display name, and the name it is mentioned by (`@name`): 1–64 characters.
    name: DisplayName,
    /// The base URL of an OpenAI-compatible Chat Completions API (`https://api.openai.com/v1`,
    /// `http://127.0.0.1:11434/v1` for Ollama with `CONCLAVE_AGENT_ALLOW_CIDRS`).
    #[schema(max_length = 2048)]
    endpoint: String,
    model: ModelName,
    /// Sent as `Authorization: Bearer`; sealed at rest and never shown again.
    api_key: Option<ModelApiKey>,
    system_prompt: Option<SystemPrompt>,
    /// 0–2; omitted: the provider's default.
    #[schema(minimum = 0, maximum = 2)]
    temperature: Option<f64>,
    /// 1–32768, default 1024.
    #[schema(minimum = 1, maximum = 32768)]
    max_output_tokens: Option<i32>,
    /// How many of the conversation's latest messages the model sees: 1–200, default 20.
    #[schema(minimum = 1, maximum = 200)]
    context_messages: Option<i32>,
    /// Tokens (in + out) per calendar month (UTC); omitted or null: no cap of its own.
    #[schema(minimum = 0)]
    monthly_token_budget: Option<i64>,
}

/// Create an agent and its bot account (owners and admins).
#[utoipa::path(post, path = "/orgs/{org}/agents", tag = "agents", params(("org" = String, Path, format = Uuid)), request_body = CreateAgent,
    responses((status = 201, body = AgentView)))]
async fn create_agent(
    me: Caller<OrgId>,
    ApiJson(body): ApiJson<CreateAgent>,
) -> Created<AgentView> {
    let endpoint = checked_endpoint(&me, me.at, &body.endpoint).await?;
    let settings = NewAgentSettings {
        name: body.name,
        endpoint,
        model: body.model,
        api_key: body.api_key,
        system_prompt: body.system_prompt,
        temperature: body.temperature,
        max_output_tokens: body.max_output_tokens,
        context_messages: body.context_messages,
        monthly_token_budget: body.monthly_token_budget,
    };
    let agent = me
        .services()
        .create_agent(&me.actor, me.at, settings)
        .await?;
    created(AgentView::masked(agent))
}

/// The org's agents, keys masked.
#[utoipa::path(get, path = "/orgs/{org}/agents", tag = "agents", params(("org" = String, Path, format = Uuid)),
    responses((status = 200, body = List<AgentView>)))]
async fn list_agents(me: Caller<OrgId>) -> Listed<AgentView> {
    all_as(me.services().agents(&me.actor, me.at), AgentView::masked).await
}

/// One agent, its key masked.
#[utoipa::path(get, path = "/orgs/{org}/agents/{id}", tag = "agents",
    params(("org" = String, Path, format = Uuid), ("id" = String, Path, format = Uuid)),
    responses((status = 200, body = AgentView)))]
async fn get_agent(me: Caller<(OrgId, Uuid)>) -> Answer<AgentView> {
    let (org, id) = me.at;
    let agent = me.services().agent(&me.actor, org, id).await?;
    Ok(Json(AgentView::masked(agent)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateAgent {
    name: Option<DisplayName>,
    #[schema(max_length = 2048)]
    endpoint: Option<String>,
    model: Option<ModelName>,
    /// A new key (rotates it), or null (the agent calls without one).
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<ModelApiKey>)]
    api_key: Option<Option<ModelApiKey>>,
    /// null removes it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<SystemPrompt>)]
    system_prompt: Option<Option<SystemPrompt>>,
    /// 0–2; null: the provider's default.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<f64>, minimum = 0, maximum = 2)]
    temperature: Option<Option<f64>>,
    #[schema(minimum = 1, maximum = 32768)]
    max_output_tokens: Option<i32>,
    #[schema(minimum = 1, maximum = 200)]
    context_messages: Option<i32>,
    /// null: no cap of its own.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>, minimum = 0)]
    monthly_token_budget: Option<Option<i64>>,
}

/// Change an agent: any setting, rotate its key (`api_key`) or remove it (null).
#[utoipa::path(patch, path = "/orgs/{org}/agents/{id}", tag = "agents",
    params(("org" = String, Path, format = Uuid), ("id" = String, Path, format = Uuid)), request_body = UpdateAgent,
    responses((status = 200, body = AgentView)))]
async fn update_agent(
    me: Caller<(OrgId, Uuid)>,
    ApiJson(body): ApiJson<UpdateAgent>,
) -> Answer<AgentView> {
    let (org, id) = me.at;
    let endpoint = match &body.endpoint {
        Some(u) => Some(checked_endpoint(&me, org, u).await?),
        None => None,
    };
    let changes = AgentChanges {
        name: body.name,
        endpoint,
        model: body.model,
        api_key: body.api_key,
        system_prompt: body.system_prompt,
        temperature: body.temperature,
        max_output_tokens: body.max_output_tokens,
        context_messages: body.context_messages,
        monthly_token_budget: body.monthly_token_budget,
    };
    let agent = me.services().update_agent(&me.actor, org, id, changes);
    Ok(Json(AgentView::masked(agent.await?)))
}

/// Delete an agent: it stops answering, its bot account is disabled, its messages stay.
#[utoipa::path(delete, path = "/orgs/{org}/agents/{id}", tag = "agents",
    params(("org" = String, Path, format = Uuid), ("id" = String, Path, format = Uuid)), responses((status = 204)))]
async fn delete_agent(me: Caller<(OrgId, Uuid)>) -> NoContent {
    let (org, id) = me.at;
    no_content(me.services().delete_agent(&me.actor, org, id)).await
}

/// The usage report's days.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageParams {
    /// First day (UTC), `YYYY-MM-DD`; default 29 days before `until`.
    #[param(pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]
    since: Option<String>,
    /// Last day (UTC), `YYYY-MM-DD`; default today. At most 92 days in all.
    #[param(pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]
    until: Option<String>,
}

/// A day as the document's pattern has it: exactly `YYYY-MM-DD` (four-digit year), a real
/// date. chrono's `%Y` alone would also take a sign, more digits and unpadded fields
/// (`-262143-01-01`, `2024-1-1`), days the pattern refuses.
fn iso_day(raw: &str) -> Option<NaiveDate> {
    let shaped = raw.len() == 10
        && raw.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        });
    if !shaped {
        return None;
    }
    NaiveDate::parse_from_str(raw, "%Y-%m-%d").ok()
}

/// `since` or `until` (`field`), when given: 422 `invalid_date` naming it unless it is a day
/// ([`iso_day`]).
fn day(raw: Option<&str>, field: &'static str) -> ApiResult<Option<NaiveDate>> {
    raw.map(|r| {
        iso_day(r).ok_or_else(|| {
            ApiError::invalid(
                "invalid_date",
                format!("`{field}` must be a date, YYYY-MM-DD"),
                field,
            )
        })
    })
    .transpose()
}

/// One agent's usage per day: calls, tokens in and out, failures, p50/p95 latency; days
/// without calls are left out.
#[utoipa::path(get, path = "/orgs/{org}/agents/{id}/usage", tag = "agents",
    params(("org" = String, Path, format = Uuid), ("id" = String, Path, format = Uuid), UsageParams),
    responses((status = 200, body = List<UsageDay>)))]
async fn agent_usage(
    me: Caller<(OrgId, Uuid)>,
    ApiQuery(q): ApiQuery<UsageParams>,
) -> ApiResult<Json<List<UsageDay>>> {
    let (org, id) = me.at;
    let since = day(q.since.as_deref(), "since")?;
    let until = day(q.until.as_deref(), "until")?;
    let items = me
        .services()
        .agent_usage(&me.actor, org, id, since, until)
        .await?;
    Ok(Json(List { items, next: None }))
}

/// The org's monthly token budget for all its agents together, and this month's use.
#[utoipa::path(get, path = "/orgs/{org}/agent-budget", tag = "agents", params(("org" = String, Path, format = Uuid)),
    responses((status = 200, body = BudgetState)))]
async fn get_budget(me: Caller<OrgId>) -> Answer<BudgetState> {
    json(me.services().agent_budget(&me.actor, me.at)).await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetBudget {
    /// Tokens (in + out) per calendar month (UTC) for all the org's agents; null: no cap.
    #[schema(minimum = 0)]
    monthly_token_budget: Option<i64>,
}

/// Set (or, null, remove) the org's monthly token budget for its agents.
#[utoipa::path(put, path = "/orgs/{org}/agent-budget", tag = "agents", params(("org" = String, Path, format = Uuid)), request_body = SetBudget,
    responses((status = 200, body = BudgetState)))]
async fn set_budget(me: Caller<OrgId>, ApiJson(body): ApiJson<SetBudget>) -> Answer<BudgetState> {
    let set = me
        .services()
        .set_agent_budget(&me.actor, me.at, body.monthly_token_budget);
    json(set).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_days_are_exactly_yyyy_mm_dd() {
        let ymd = |y, m, d| NaiveDate::from_ymd_opt(y, m, d);
        assert_eq!(iso_day("2024-01-31"), ymd(2024, 1, 31));
        assert_eq!(iso_day("0000-01-01"), ymd(0, 1, 1));
        assert_eq!(iso_day("9999-12-31"), ymd(9999, 12, 31));
        for bad in [
            "-262143-01-01",
            "+2024-01-01",
            "20240-01-01",
            "2024-1-1",
            "2024-01-1",
            " 2024-01-01",
            "2024-02-30",
            "2024/01/01",
            "2024-01-01T00:00:00Z",
            "２０２４-01-01",
            "",
        ] {
            assert_eq!(iso_day(bad), None, "{bad:?}");
        }
        let e = day(Some("2024-1-1"), "until").unwrap_err();
        assert_eq!(
            (e.status.as_u16(), e.code, e.field.as_deref()),
            (422, "invalid_date", Some("until"))
        );
        assert_eq!(day(None, "since").unwrap(), None);
    }
}
