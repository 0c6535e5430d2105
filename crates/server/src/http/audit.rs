//! The audit log over HTTP (DATA-4, DATA-6): server-wide and per-org listings with filters,
//! verification of the chains, and a user's own security events. There is no route that
//! changes or deletes an audit row.

use super::error::{Answer, ApiError, ApiResult};
use super::extract::{AdminCaller, ApiQuery, Caller};
use super::pagination::{id_listed, List, ListQuery, Listed, Paging};
use crate::state::AppState;
use axum::Json;
use chrono::{DateTime, Utc};
use conclave_core::audit::AuditFilter;
use conclave_core::service::{AuditEvent, VerifyReport};
use conclave_core::store::Page;
use conclave_core::{OrgId, ServiceError};
use serde::Deserialize;
use std::future::Future;
use utoipa::IntoParams;
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
        // The account's own security events: a login session's only.
        .merge(declare(
            OpenApiRouter::new().routes(routes!(security_events)),
            RouteAccess::SESSION.before_2fa(),
        ))
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

/// One page of audit events, newest first: the page `q` asks for, its rows read by `fetch`.
async fn events_listed<R, Fut>(
    q: &ListQuery,
    fetch: impl FnOnce(Page<Uuid>) -> Fut,
) -> Listed<AuditEvent>
where
    R: Into<AuditEvent>,
    Fut: Future<Output = Result<Vec<R>, ServiceError>>,
{
    let events = |page| async move {
        let rows = fetch(page).await?;
        Ok(rows.into_iter().map(Into::into).collect())
    };
    id_listed(q, |e: &AuditEvent| e.id, events).await
}

/// The audit log of the whole server, newest first.
#[utoipa::path(get, path = "/admin/audit", tag = "admin", params(AuditQuery), responses((status = 200, body = List<AuditEvent>)))]
async fn admin_audit(a: AdminCaller, ApiQuery(q): ApiQuery<AuditQuery>) -> Listed<AuditEvent> {
    let filter = q.filter()?;
    let rows = |page| a.services().admin_audit_log(&a.admin, filter, page);
    events_listed(&q.page(), rows).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct VerifyQuery {
    /// A row hash recorded earlier (hex): the answer is not ok unless that row is still there.
    #[param(pattern = "^[0-9A-Fa-f]{64}$")]
    pub expect_head: Option<String>,
}

/// Verifies every audit chain and reports the first row that was altered, inserted or removed.
#[utoipa::path(get, path = "/admin/audit/verify", tag = "admin", params(VerifyQuery), responses((status = 200, body = VerifyReport)))]
async fn admin_verify(a: AdminCaller, ApiQuery(q): ApiQuery<VerifyQuery>) -> Answer<VerifyReport> {
    if let Some(h) = &q.expect_head {
        if conclave_core::audit::unhex(h).is_none_or(|b| b.len() != 32) {
            return Err(bad(
                "expect_head",
                "invalid_format",
                "`expect_head` is the 64-character hex hash of a row",
            ));
        }
    }
    let expected = q.expect_head.as_deref();
    let report = a.services().admin_verify_audit(&a.admin, expected).await?;
    Ok(Json(report))
}

/// One org's audit log, newest first (owners and admins of the org).
#[utoipa::path(get, path = "/orgs/{org}/audit", tag = "orgs", params(("org" = String, Path, format = Uuid), AuditQuery),
    responses((status = 200, body = List<AuditEvent>)))]
async fn org_audit(me: Caller<OrgId>, ApiQuery(q): ApiQuery<AuditQuery>) -> Listed<AuditEvent> {
    let org = me.at;
    if q.org.is_some() {
        return Err(bad(
            "org",
            "not_allowed",
            "the org is given by the path here",
        ));
    }
    let filter = q.filter()?;
    let rows = |page| me.services().org_audit(&me.actor, org, filter, page);
    events_listed(&q.page(), rows).await
}

/// The security events about your own account (sign-ins, sessions, 2FA changes,
/// impersonations), newest first.
#[utoipa::path(get, path = "/users/@me/security-events", tag = "users", params(ListQuery),
    responses((status = 200, body = List<AuditEvent>)))]
async fn security_events(me: Caller, ApiQuery(q): Paging) -> Listed<AuditEvent> {
    let rows = |page| me.services().security_events(&me.actor, page);
    events_listed(&q, rows).await
}
