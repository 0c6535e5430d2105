//! `/orgs/{org}/guards` and `/orgs/{org}/flags`: an org's content guards (RATE-6) and the review
//! queue of what they flagged, for its owners and admins (and keys with `org:admin`). A
//! moderation endpoint's URL passes the SSRF guard here, before it is stored (422
//! `url_not_allowed`), and again at every check; its API key is sealed and never shown again
//! (`has_api_key` says whether one is set).

use super::error::{
    created, no_content, Answer, ApiError, ApiResult, Created, ErrorBody, NoContent,
};
use super::extract::{ApiJson, ApiQuery, Caller};
use super::pagination::{all_as, id_list, id_page, List, ListQuery, Listed};
use crate::state::AppState;
use axum::Json;
use chrono::{DateTime, Utc};
use conclave_core::guards::{FailMode, GuardKind, GuardMode, GuardRules, DEFAULT_TIMEOUT_MS};
use conclave_core::model::Message;
use conclave_core::policy::OrgAction;
use conclave_core::service::{FlagItem, GuardPatch, NewGuard};
use conclave_core::store::guards::{Guard, GuardCounts, Resolution};
use conclave_core::store::Cursor;
use conclave_core::types::Name;
use conclave_core::{ConversationId, FlagId, GuardId, OrgId, UserId};
use secrecy::SecretString;
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
            .routes(routes!(list_guards, create_guard))
            .routes(routes!(update_guard, delete_guard))
            .routes(routes!(list_flags))
            .routes(routes!(resolve_flag)),
        RouteAccess::always(Scope::OrgAdmin),
    )
}

/// A content guard as its managers see it: the settings of its kind (never its API key) and
/// how many of each decision it has made.
#[derive(Serialize, ToSchema)]
pub struct GuardView {
    id: GuardId,
    org_id: OrgId,
    name: String,
    kind: GuardKind,
    mode: GuardMode,
    /// Guards run in ascending position.
    position: i32,
    enabled: bool,
    /// `blocklist`: whole words, case-insensitive.
    #[serde(skip_serializing_if = "Option::is_none")]
    terms: Option<Vec<String>>,
    /// `regex`: linear-time regular expressions (the `regex` crate's syntax).
    #[serde(skip_serializing_if = "Option::is_none")]
    patterns: Option<Vec<String>>,
    /// `moderation_endpoint`: where texts are sent (OpenAI moderation API shape).
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timeout_ms: Option<u64>,
    /// Remote guards: what a failed or timed-out check does.
    #[serde(skip_serializing_if = "Option::is_none")]
    fail: Option<FailMode>,
    /// `moderation_endpoint`: whether an API key is set (it is never shown).
    #[serde(skip_serializing_if = "Option::is_none")]
    has_api_key: Option<bool>,
    /// `agent`: the org's agent whose model is asked ALLOW or DENY.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Uuid)]
    agent_id: Option<Uuid>,
    counts: GuardCounts,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<Guard> for GuardView {
    fn from(g: Guard) -> Self {
        let mut view = Self {
            id: g.id,
            org_id: g.org_id,
            name: g.name,
            kind: g.rules.kind(),
            mode: g.mode,
            position: g.position,
            enabled: g.enabled,
            terms: None,
            patterns: None,
            url: None,
            timeout_ms: None,
            fail: None,
            has_api_key: None,
            agent_id: None,
            counts: g.counts,
            created_at: g.created_at,
            updated_at: g.updated_at,
        };
        match g.rules {
            GuardRules::Blocklist { terms } => view.terms = Some(terms),
            GuardRules::Regex { patterns } => view.patterns = Some(patterns),
            GuardRules::ModerationEndpoint {
                url,
                timeout_ms,
                fail,
            } => {
                view.url = Some(url);
                view.timeout_ms = Some(timeout_ms);
                view.fail = Some(fail);
                view.has_api_key = Some(g.has_api_key);
            }
            GuardRules::Agent { agent_id, fail } => {
                view.fail = Some(fail);
                view.agent_id = Some(agent_id);
            }
        }
        view
    }
}

/// Puts a moderation endpoint's `url` through the SSRF guard (lookup included): 422
/// `url_not_allowed` naming `url`; only for a caller who may manage the org's guards (the
/// verdict says things about names).
async fn checked_url<P: Sync>(me: &Caller<P>, org: OrgId, url: &str) -> ApiResult<String> {
    me.services()
        .authorize_org_change(&me.actor, org, OrgAction::ManageGuards)
        .await?;
    let checked = me.state().outbound.check(url).await;
    checked
        .map(|u| u.to_string())
        .map_err(|e| ApiError::url_not_allowed(&e, "a moderation endpoint", "url"))
}

/// An API key as given: 1–1024 characters without control characters or spaces.
fn api_key(raw: Option<String>) -> ApiResult<Option<SecretString>> {
    let acceptable = |k: &str| {
        (1..=1024).contains(&k.chars().count()) && !k.chars().any(|c| c.is_control() || c == ' ')
    };
    match raw {
        None => Ok(None),
        Some(k) if acceptable(&k) => Ok(Some(SecretString::from(k))),
        Some(_) => Err(ApiError::invalid(
            "invalid",
            "an API key is 1 to 1024 characters without spaces or control characters",
            "api_key",
        )),
    }
}

fn required<T>(value: Option<T>, field: &str) -> ApiResult<T> {
    value.ok_or_else(|| {
        ApiError::invalid(
            "required",
            format!("this kind of guard needs `{field}`"),
            field,
        )
    })
}

/// A field given that the kind does not have: 422 naming it.
fn refuse_foreign(given: &[(&str, bool)], kind: GuardKind) -> ApiResult<()> {
    match given.iter().find(|(_, g)| *g) {
        Some(&(field, _)) => Err(ApiError::invalid(
            "not_for_this_kind",
            format!("a {} guard has no `{field}`", kind.as_str()),
            field,
        )),
        None => Ok(()),
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGuard {
    /// Shown in the `content_blocked` error and the review queue; default: the kind.
    name: Option<Name>,
    kind: GuardKind,
    mode: GuardMode,
    /// Default `true`.
    enabled: Option<bool>,
    /// Default: after the org's other guards.
    #[schema(minimum = 0, maximum = 10000)]
    position: Option<i32>,
    /// `blocklist`: 1–1000 terms, each matched as a whole word in any case.
    #[schema(max_items = 1000)]
    terms: Option<Vec<String>>,
    /// `regex`: 1–100 patterns of the `regex` crate's syntax (no look-around or
    /// back-references); a pattern that does not compile, or compiles too large, is refused.
    #[schema(max_items = 100)]
    patterns: Option<Vec<String>>,
    /// `moderation_endpoint`: an `http`/`https` URL the SSRF guard allows.
    #[schema(max_length = 2048)]
    url: Option<String>,
    /// `moderation_endpoint`: sent as `Authorization: Bearer`; sealed, never shown again.
    #[schema(pattern = r"^[^ \x00-\x1f\x7f-\x9f]{1,1024}$")]
    api_key: Option<String>,
    /// `moderation_endpoint`: 100–10000, default 2000.
    #[schema(minimum = 100, maximum = 10000)]
    timeout_ms: Option<u64>,
    /// `moderation_endpoint` and `agent`: what a failed check does.
    fail: Option<FailMode>,
    /// `agent`: one of the org's agents (422 naming `agent_id` otherwise). Its model, with the
    /// agent's own endpoint and key, is asked to answer ALLOW or DENY for each text (temperature
    /// 0, through the agents' SSRF guard, within 10 s and the agents' timeouts); any other
    /// answer, an error or a timeout is a failed check (`fail` decides). Its tokens count
    /// against the agent's and the org's budgets; a spent budget is a failed check. An agent a
    /// guard uses cannot be deleted (409 `agent_in_use`).
    #[schema(value_type = Option<String>, format = Uuid)]
    agent_id: Option<Uuid>,
}

/// Create a content guard.
#[utoipa::path(post, path = "/orgs/{org}/guards", tag = "guards", params(("org" = String, Path, format = Uuid)), request_body = CreateGuard,
    responses((status = 201, body = GuardView), (status = 409, body = ErrorBody)))]
async fn create_guard(
    me: Caller<OrgId>,
    ApiJson(body): ApiJson<CreateGuard>,
) -> Created<GuardView> {
    let kind = body.kind;
    let remote = matches!(kind, GuardKind::ModerationEndpoint | GuardKind::Agent);
    refuse_foreign(
        &[
            (
                "terms",
                kind != GuardKind::Blocklist && body.terms.is_some(),
            ),
            (
                "patterns",
                kind != GuardKind::Regex && body.patterns.is_some(),
            ),
            (
                "url",
                kind != GuardKind::ModerationEndpoint && body.url.is_some(),
            ),
            (
                "api_key",
                kind != GuardKind::ModerationEndpoint && body.api_key.is_some(),
            ),
            (
                "timeout_ms",
                kind != GuardKind::ModerationEndpoint && body.timeout_ms.is_some(),
            ),
            ("fail", !remote && body.fail.is_some()),
            (
                "agent_id",
                kind != GuardKind::Agent && body.agent_id.is_some(),
            ),
        ],
        kind,
    )?;
    let key = api_key(body.api_key)?;
    let rules = match kind {
        GuardKind::Blocklist => GuardRules::Blocklist {
            terms: required(body.terms, "terms")?,
        },
        GuardKind::Regex => GuardRules::Regex {
            patterns: required(body.patterns, "patterns")?,
        },
        GuardKind::ModerationEndpoint => GuardRules::ModerationEndpoint {
            url: checked_url(&me, me.at, &required(body.url, "url")?).await?,
            timeout_ms: body.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS),
            fail: required(body.fail, "fail")?,
        },
        GuardKind::Agent => GuardRules::Agent {
            agent_id: required(body.agent_id, "agent_id")?,
            fail: required(body.fail, "fail")?,
        },
    };
    let new = NewGuard {
        name: body.name,
        mode: body.mode,
        rules,
        api_key: key,
        position: body.position,
        enabled: body.enabled.unwrap_or(true),
    };
    let guard = me.services().create_guard(&me.actor, me.at, new).await?;
    created(GuardView::from(guard))
}

/// The org's guards in running order, with their counters.
#[utoipa::path(get, path = "/orgs/{org}/guards", tag = "guards", params(("org" = String, Path, format = Uuid)),
    responses((status = 200, body = List<GuardView>)))]
async fn list_guards(me: Caller<OrgId>) -> Listed<GuardView> {
    all_as(me.services().guards(&me.actor, me.at), GuardView::from).await
}

/// What a guard's managers may change; settings only of the guard's own kind.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateGuard {
    name: Option<Name>,
    mode: Option<GuardMode>,
    enabled: Option<bool>,
    #[schema(minimum = 0, maximum = 10000)]
    position: Option<i32>,
    #[schema(max_items = 1000)]
    terms: Option<Vec<String>>,
    #[schema(max_items = 100)]
    patterns: Option<Vec<String>>,
    #[schema(max_length = 2048)]
    url: Option<String>,
    /// A new key; `null` removes it.
    #[serde(default, deserialize_with = "some_or_null")]
    #[schema(value_type = Option<String>, pattern = r"^[^ \x00-\x1f\x7f-\x9f]{1,1024}$")]
    api_key: Option<Option<String>>,
    #[schema(minimum = 100, maximum = 10000)]
    timeout_ms: Option<u64>,
    fail: Option<FailMode>,
    /// `agent`: another of the org's agents.
    #[schema(value_type = Option<String>, format = Uuid)]
    agent_id: Option<Uuid>,
}

/// A member that may be absent (`None`), `null` (`Some(None)`) or a value.
fn some_or_null<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Change a guard.
#[utoipa::path(patch, path = "/orgs/{org}/guards/{id}", tag = "guards",
    params(("org" = String, Path, format = Uuid), ("id" = String, Path, format = Uuid)), request_body = UpdateGuard,
    responses((status = 200, body = GuardView)))]
async fn update_guard(
    me: Caller<(OrgId, GuardId)>,
    ApiJson(body): ApiJson<UpdateGuard>,
) -> Answer<GuardView> {
    let (org, id) = me.at;
    let url = match &body.url {
        Some(u) => Some(checked_url(&me, org, u).await?),
        None => None,
    };
    let api_key = match body.api_key {
        None => None,
        Some(None) => Some(None),
        Some(k) => Some(api_key(k)?),
    };
    let patch = GuardPatch {
        name: body.name,
        mode: body.mode,
        position: body.position,
        enabled: body.enabled,
        terms: body.terms,
        patterns: body.patterns,
        url,
        timeout_ms: body.timeout_ms,
        fail: body.fail,
        agent_id: body.agent_id,
        api_key,
    };
    let guard = me
        .services()
        .update_guard(&me.actor, org, id, patch)
        .await?;
    Ok(Json(guard.into()))
}

/// Delete a guard; what it flagged stays in the review queue.
#[utoipa::path(delete, path = "/orgs/{org}/guards/{id}", tag = "guards",
    params(("org" = String, Path, format = Uuid), ("id" = String, Path, format = Uuid)), responses((status = 204)))]
async fn delete_guard(me: Caller<(OrgId, GuardId)>) -> NoContent {
    let (org, id) = me.at;
    no_content(me.services().delete_guard(&me.actor, org, id)).await
}

/// Whether a flag waits for review.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FlagStatus {
    #[default]
    Open,
    Resolved,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FlagsQuery {
    /// `open` (default) or `resolved`.
    status: Option<FlagStatus>,
    /// 1–100, default 50.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// Continue towards older flags from this cursor (a `next` of an earlier page).
    #[param(pattern = "^[A-Za-z0-9_-]{21}[AQgw]$")]
    before: Option<String>,
}

/// A flagged message in the review queue.
#[derive(Serialize, ToSchema)]
pub struct FlagView {
    id: FlagId,
    status: FlagStatus,
    /// `null` once the guard was deleted.
    guard_id: Option<GuardId>,
    guard_name: String,
    conversation_id: ConversationId,
    author_id: Option<UserId>,
    /// The message as REST shows it (`content` null once deleted); null if it is gone.
    message: Option<Message>,
    created_at: DateTime<Utc>,
    resolved_at: Option<DateTime<Utc>>,
    resolved_by: Option<UserId>,
    resolution: Option<Resolution>,
}

impl From<FlagItem> for FlagView {
    fn from(item: FlagItem) -> Self {
        let f = item.flag;
        Self {
            id: f.id,
            status: if f.resolved_at.is_some() {
                FlagStatus::Resolved
            } else {
                FlagStatus::Open
            },
            guard_id: f.guard_id,
            guard_name: f.guard_name,
            conversation_id: f.conversation_id,
            author_id: f.author_id,
            message: item.message,
            created_at: f.created_at,
            resolved_at: f.resolved_at,
            resolved_by: f.resolved_by,
            resolution: f.resolution,
        }
    }
}

/// The review queue: flagged messages, newest first.
#[utoipa::path(get, path = "/orgs/{org}/flags", tag = "guards", params(("org" = String, Path, format = Uuid), FlagsQuery),
    responses((status = 200, body = List<FlagView>)))]
async fn list_flags(me: Caller<OrgId>, ApiQuery(q): ApiQuery<FlagsQuery>) -> Listed<FlagView> {
    let list = ListQuery {
        limit: q.limit,
        before: q.before,
        after: None,
    };
    let page = id_page::<FlagId>(&list)?;
    let before = match page.cursor {
        Cursor::Before(b) => Some(b),
        _ => None,
    };
    let resolved = q.status.unwrap_or_default() == FlagStatus::Resolved;
    let items = me
        .services()
        .flags(
            &me.actor,
            me.at,
            resolved,
            before,
            i64::from(page.limit.get()),
        )
        .await?;
    let views: Vec<FlagView> = items.into_iter().map(FlagView::from).collect();
    let list: List<FlagView> = id_list(views, &page, |f| f.id.0);
    Ok(Json(list))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveFlag {
    /// `dismissed` keeps the message; `removed` deletes it as a moderator does.
    resolution: Resolution,
}

/// Resolve a flag; 409 `flag_resolved` when it was resolved already.
#[utoipa::path(post, path = "/orgs/{org}/flags/{id}/resolve", tag = "guards",
    params(("org" = String, Path, format = Uuid), ("id" = String, Path, format = Uuid)), request_body = ResolveFlag,
    responses((status = 200, body = FlagView), (status = 409, body = ErrorBody)))]
async fn resolve_flag(
    me: Caller<(OrgId, FlagId)>,
    ApiJson(body): ApiJson<ResolveFlag>,
) -> Answer<FlagView> {
    let (org, id) = me.at;
    let item = me
        .services()
        .resolve_flag(&me.actor, org, id, body.resolution)
        .await?;
    Ok(Json(item.into()))
}
