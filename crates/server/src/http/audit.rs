//! The audit log over HTTP (DATA-4, DATA-6): server-wide and per-org listings with filters,
//! verification of the chains, and a user's own security events. There is no route that
//! changes or deletes an audit row.

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{AdminCaller, ApiQuery, Caller, PathParams};
use super::pagination::{id_list, id_listed, id_page, List, ListQuery};
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use conclave_core::audit::{AuditFilter, AuditRow, ChainReport, Problem};
use conclave_core::service::{AccountEvent, VerifyReport};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    use super::credentials::{declare, RouteAccess};
    use conclave_core::credential::Scope;
    OpenApiRouter::new()
        .merge(declare(
            OpenApiRouter::new()
                .routes(routes!(admin_audit))
                .routes(routes!(admin_verify)),
            RouteAccess::SESSION,
        ))
        // The org's audit log is administration even to read.
        .merge(declare(
            OpenApiRouter::new().routes(routes!(org_audit)),
            RouteAccess::always(Scope::OrgAdmin),
        ))
        .merge(declare(
            OpenApiRouter::new().routes(routes!(security_events)),
            RouteAccess::scoped(Scope::OrgRead, Scope::OrgAdmin).before_2fa(),
        ))
}

/// Who acted.
#[derive(Serialize, ToSchema)]
pub struct AuditActorView {
    /// The user, bot or API key; null for the management token and the system.
    pub id: Option<Uuid>,
    /// `user`, `bot`, `api_key`, `management`, `system` or `anonymous`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The server admin behind an impersonated session (AUTH-12).
    pub impersonator: Option<Uuid>,
}

/// What it was done to.
#[derive(Serialize, ToSchema)]
pub struct AuditResourceView {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub id: Option<String>,
}

/// One audit event. Every key is present; null where not applicable.
#[derive(Serialize, ToSchema)]
pub struct AuditEvent {
    pub id: Uuid,
    pub at: DateTime<Utc>,
    pub event: String,
    pub actor: AuditActorView,
    pub resource: AuditResourceView,
    pub org_id: Option<Uuid>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    /// `success` or `failure`.
    pub outcome: String,
    /// Non-secret details (roles, names of changed settings, counts).
    #[schema(value_type = Option<Object>)]
    pub detail: Option<serde_json::Value>,
    /// The chain (`server` or the org id) and the row's number in it.
    pub chain: String,
    pub seq: i64,
    /// The row's chain hash (hex): record it elsewhere to check later with `--expect-head`.
    pub hash: String,
    /// In your security events and export only: who acted, as you are shown it (another
    /// person's IP address and user agent are left out there). Null in the audit listings.
    pub by: Option<ShownActorView>,
}

/// Who acted on your account.
#[derive(Serialize, ToSchema)]
pub struct ShownActorView {
    /// `you`, `administrator`, `another_user`, `system` or `someone`.
    pub kind: String,
    /// The other person's username (an administrator's too), when there is one.
    pub username: Option<String>,
}

impl From<AccountEvent> for AuditEvent {
    fn from(e: AccountEvent) -> Self {
        Self {
            by: Some(ShownActorView {
                kind: e.by.kind.to_owned(),
                username: e.by.username,
            }),
            ..Self::from(e.row)
        }
    }
}

impl From<AuditRow> for AuditEvent {
    fn from(r: AuditRow) -> Self {
        let e = r.entry;
        Self {
            id: e.id,
            at: e.at,
            event: e.event,
            actor: AuditActorView {
                id: e.actor.id,
                kind: e.actor.kind.as_str().to_owned(),
                impersonator: e.actor.impersonator.map(|u| u.0),
            },
            resource: AuditResourceView {
                kind: e.resource_type,
                id: e.resource_id,
            },
            org_id: e.org.map(|o| o.0),
            ip: e.ip,
            user_agent: e.user_agent,
            request_id: e.request_id,
            outcome: e.outcome.as_str().to_owned(),
            detail: e.detail,
            chain: r.chain,
            seq: r.seq,
            hash: conclave_core::audit::hex(&r.hash),
            by: None,
        }
    }
}

/// Filters of the audit listings, with the usual paging.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only this event name (e.g. `auth.login`).
    #[param(pattern = "^[a-z._]{1,64}$")]
    pub event: Option<String>,
    /// Only events by this actor id (user, bot or API key).
    #[param(format = Uuid)]
    pub actor: Option<String>,
    /// Only this org's events (server-wide listing only).
    #[param(format = Uuid)]
    pub org: Option<String>,
    /// From this instant on (RFC 3339).
    #[param(format = DateTime)]
    pub since: Option<String>,
    /// Before this instant (RFC 3339); later than `since`.
    #[param(format = DateTime)]
    pub until: Option<String>,
    /// 1–100, default 50.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// Continue towards older events from this cursor (a `next` of an earlier page).
    #[param(pattern = "^[A-Za-z0-9_-]{21}[AQgw]$")]
    pub before: Option<String>,
    /// Continue towards newer events from this cursor (a `next` of an earlier page).
    #[param(pattern = "^[A-Za-z0-9_-]{21}[AQgw]$")]
    pub after: Option<String>,
}

/// 422 on `field`.
fn bad(field: &str, code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::invalid(code, message, field)
}

fn parse_uuid(raw: Option<&str>, field: &str) -> ApiResult<Option<Uuid>> {
    raw.map(|v| {
        Uuid::try_parse(v)
            .map_err(|_| bad(field, "invalid_id", format!("`{field}` is not a valid id")))
    })
    .transpose()
}

fn parse_time(raw: Option<&str>, field: &str) -> ApiResult<Option<DateTime<Utc>>> {
    raw.map(|v| {
        DateTime::parse_from_rfc3339(v)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| {
                bad(
                    field,
                    "invalid_time",
                    format!("`{field}` must be an RFC 3339 time"),
                )
            })
    })
    .transpose()
}

impl AuditQuery {
    fn filter(&self) -> ApiResult<AuditFilter> {
        if let Some(e) = &self.event {
            let valid = !e.is_empty()
                && e.len() <= 64
                && e.chars()
                    .all(|c| c.is_ascii_lowercase() || c == '.' || c == '_');
            if !valid {
                return Err(bad(
                    "event",
                    "invalid_value",
                    "`event` is an event name such as auth.login",
                ));
            }
        }
        let since = parse_time(self.since.as_deref(), "since")?;
        let until = parse_time(self.until.as_deref(), "until")?;
        if let (Some(s), Some(u)) = (since, until) {
            if s >= u {
                return Err(bad(
                    "until",
                    "invalid_range",
                    "`until` must be later than `since`",
                ));
            }
        }
        Ok(AuditFilter {
            event: self.event.clone(),
            actor: parse_uuid(self.actor.as_deref(), "actor")?,
            org: parse_uuid(self.org.as_deref(), "org")?.map(conclave_core::OrgId),
            since,
            until,
            ..AuditFilter::default()
        })
    }

    fn page(&self) -> ListQuery {
        ListQuery {
            limit: self.limit,
            before: self.before.clone(),
            after: self.after.clone(),
        }
    }
}

fn listing(rows: Vec<AuditRow>, page: &conclave_core::store::Page<Uuid>) -> List<AuditEvent> {
    let items: Vec<AuditEvent> = rows.into_iter().map(AuditEvent::from).collect();
    id_list(items, page, |e| e.id)
}

/// The audit log of the whole server, newest first.
#[utoipa::path(get, path = "/admin/audit", tag = "admin", params(AuditQuery),
    responses((status = 200, body = List<AuditEvent>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn admin_audit(
    State(state): State<AppState>,
    admin: AdminCaller,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Json<List<AuditEvent>>> {
    let filter = q.filter()?;
    let page = id_page::<Uuid>(&q.page())?;
    let rows = state
        .services
        .admin_audit_log(&admin.admin, filter, page)
        .await?;
    Ok(Json(listing(rows, &page)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct VerifyQuery {
    /// A row hash recorded earlier (hex): the answer is not ok unless that row is still there.
    #[param(pattern = "^[0-9A-Fa-f]{64}$")]
    pub expect_head: Option<String>,
}

/// The result of verifying every chain.
#[derive(Serialize, ToSchema)]
pub struct VerifyView {
    pub ok: bool,
    pub checked: u64,
    /// The first row found altered, inserted or out of place; null when none can be named
    /// (a truncated tail shows as `problem: head_mismatch`).
    pub first_bad: Option<Uuid>,
    /// `altered`, `broken_link`, `gap`, `bad_checkpoint`, `head_mismatch` or
    /// `expected_head_missing`.
    pub problem: Option<String>,
    #[schema(value_type = Vec<Object>)]
    pub chains: Vec<ChainReport>,
}

fn problem_name(p: Problem) -> String {
    serde_json::to_value(p)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

impl From<VerifyReport> for VerifyView {
    fn from(r: VerifyReport) -> Self {
        Self {
            ok: r.ok,
            checked: r.checked,
            first_bad: r.first_bad,
            problem: r.problem.map(problem_name),
            chains: r.chains,
        }
    }
}

/// Verifies every audit chain and reports the first row that was altered, inserted or removed.
#[utoipa::path(get, path = "/admin/audit/verify", tag = "admin", params(VerifyQuery),
    responses((status = 200, body = VerifyView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn admin_verify(
    State(state): State<AppState>,
    admin: AdminCaller,
    ApiQuery(q): ApiQuery<VerifyQuery>,
) -> ApiResult<Json<VerifyView>> {
    if let Some(h) = &q.expect_head {
        if conclave_core::audit::unhex(h).is_none_or(|b| b.len() != 32) {
            return Err(bad(
                "expect_head",
                "invalid_format",
                "`expect_head` is the 64-character hex hash of a row",
            ));
        }
    }
    let report = state
        .services
        .admin_verify_audit(&admin.admin, q.expect_head.as_deref())
        .await?;
    Ok(Json(report.into()))
}

/// One org's audit log, newest first (owners and admins of the org).
#[utoipa::path(get, path = "/orgs/{org}/audit", tag = "orgs", params(("org" = String, Path, format = Uuid), AuditQuery),
    responses((status = 200, body = List<AuditEvent>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn org_audit(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Json<List<AuditEvent>>> {
    if q.org.is_some() {
        return Err(bad(
            "org",
            "not_allowed",
            "the org is given by the path here",
        ));
    }
    let filter = q.filter()?;
    let page = id_page::<Uuid>(&q.page())?;
    let rows = state
        .services
        .org_audit(&caller.actor, p.id("org")?, filter, page)
        .await?;
    Ok(Json(listing(rows, &page)))
}

/// The security events about your own account (sign-ins, sessions, 2FA changes,
/// impersonations), newest first.
#[utoipa::path(get, path = "/users/@me/security-events", tag = "users", params(ListQuery),
    responses((status = 200, body = List<AuditEvent>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn security_events(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<List<AuditEvent>>> {
    id_listed(
        &q,
        |e: &AuditEvent| e.id,
        |page: conclave_core::store::Page<Uuid>| async move {
            let rows = state.services.security_events(&caller.actor, page).await?;
            Ok(rows.into_iter().map(AuditEvent::from).collect())
        },
    )
    .await
}
