//! Privacy (DATA-6): `GET /users/@me/export` (a JSON archive of everything about the caller)
//! and `DELETE /users/@me` (account erasure after re-authentication).

use super::audit::AuditEvent;
use super::auth::Meta;
use super::error::{ApiResult, ErrorBody};
use super::extract::{ApiJson, Caller};
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use conclave_core::model::{ApiKey, Conversation, Message, Session, User};
use conclave_core::service::ExportedMembership;
use conclave_core::totp::SecondFactorCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    use super::credentials::{declare, RouteAccess};
    use conclave_core::credential::Scope;
    let org = RouteAccess::scoped(Scope::OrgRead, Scope::OrgAdmin);
    OpenApiRouter::new()
        .merge(declare(OpenApiRouter::new().routes(routes!(export)), org))
        .merge(declare(
            OpenApiRouter::new().routes(routes!(erase)),
            org.before_2fa(),
        ))
}

/// One org the user belongs to.
#[derive(Serialize, ToSchema)]
pub struct MembershipView {
    #[schema(value_type = Object)]
    pub org: conclave_core::model::Org,
    #[schema(value_type = String)]
    pub role: conclave_core::types::OrgRole,
}

/// Everything Conclave holds about the caller. Never secrets: no password hash, TOTP secret,
/// recovery code or token.
#[derive(Serialize, ToSchema)]
pub struct AccountArchive {
    /// `conclave-export-v1`.
    pub format: String,
    pub exported_at: DateTime<Utc>,
    pub user: User,
    pub two_factor_enabled: bool,
    pub memberships: Vec<MembershipView>,
    pub conversations: Vec<Conversation>,
    /// Every message the user wrote, oldest first (deleted ones as tombstones).
    pub messages: Vec<Message>,
    pub sessions: Vec<Session>,
    /// Masked: the secrets were shown once at creation.
    pub api_keys: Vec<ApiKey>,
    /// Audit events by the user or about their account, oldest first.
    pub audit_events: Vec<AuditEvent>,
}

/// Download all your data as one JSON archive (your own login session only).
#[utoipa::path(get, path = "/users/@me/export", tag = "users",
    responses((status = 200, body = AccountArchive), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn export(State(state): State<AppState>, caller: Caller) -> ApiResult<Response> {
    let e = state.services.export_account(&caller.actor).await?;
    let archive = AccountArchive {
        format: "conclave-export-v1".to_owned(),
        exported_at: e.exported_at,
        user: e.user,
        two_factor_enabled: e.two_factor_enabled,
        memberships: e
            .memberships
            .into_iter()
            .map(|ExportedMembership { org, role }| MembershipView { org, role })
            .collect(),
        conversations: e.conversations,
        messages: e.messages,
        sessions: e.sessions,
        api_keys: e.api_keys,
        audit_events: e.audit_events.into_iter().map(AuditEvent::from).collect(),
    };
    Ok((
        [(
            header::CONTENT_DISPOSITION,
            "attachment; filename=\"conclave-export.json\"",
        )],
        Json(archive),
    )
        .into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EraseBody {
    /// Your current password.
    password: String,
    /// A TOTP or recovery code; required when two-factor authentication is on.
    code: Option<SecondFactorCode>,
}

/// Erase your account: password (and 2FA code) re-checked; messages tombstoned or kept under
/// an anonymous name per each org's `erasure` policy; memberships, credentials and personal
/// data removed. 409 `last_owner` while you are an org's only owner.
#[utoipa::path(delete, path = "/users/@me", tag = "users", request_body = EraseBody,
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn erase(
    State(state): State<AppState>,
    caller: Caller,
    Meta(meta): Meta,
    ApiJson(body): ApiJson<EraseBody>,
) -> ApiResult<StatusCode> {
    state
        .services
        .erase_account(&caller.actor, &body.password, body.code.as_ref(), &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
