//! `/admin/*`: server administration, for server admins and the management token.

use super::error::{ApiResult, ErrorBody};
use super::extract::{AdminCaller, ApiJson, ApiQuery, PathParams};
use super::orgs::AddMember;
use super::pagination::{id_list, id_page, List, ListQuery};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use conclave_core::model::{Member, User};
use conclave_core::password::NewPassword;
use conclave_core::types::{Email, Username};
use conclave_core::{OrgId, UserId};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    use super::credentials::{declare, RouteAccess};
    declare(
        OpenApiRouter::new()
            .routes(routes!(list_users, create_user))
            .routes(routes!(update_user))
            .routes(routes!(impersonate))
            .routes(routes!(add_org_member)),
        RouteAccess::SESSION,
    )
}

/// Add an existing account to an org directly (AZ-7): for server admins and automation with
/// the management token. Audited in the org's chain.
#[utoipa::path(post, path = "/admin/orgs/{org}/members", tag = "admin", params(("org" = String, Path, format = Uuid)), request_body = AddMember,
    responses((status = 201, body = Member), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn add_org_member(
    State(state): State<AppState>,
    admin: AdminCaller,
    p: PathParams,
    ApiJson(body): ApiJson<AddMember>,
) -> ApiResult<(StatusCode, Json<Member>)> {
    let org: OrgId = p.id("org")?;
    let (who, role) = body.target()?;
    let member = state
        .services
        .admin_add_member(&admin.admin, org, who, role)
        .await?;
    Ok((StatusCode::CREATED, Json(member)))
}

/// A marked session as another user (AUTH-12).
#[derive(Serialize, ToSchema)]
pub struct Impersonation {
    /// A session token acting as the user (shown once): reads and sends, but cannot touch
    /// credentials, 2FA, export or erasure.
    pub token: String,
    pub expires_at: chrono::DateTime<chrono::Utc>,
    pub session_id: conclave_core::SessionId,
    pub user: User,
}

/// Start an impersonated session as a user, for support: at most an hour, recorded in the
/// audit log with both identities, and shown to the user among their security events and
/// sessions. Only a signed-in server admin (not the management token) may.
#[utoipa::path(post, path = "/admin/users/{id}/impersonate", tag = "admin", params(("id" = String, Path, format = Uuid)),
    responses((status = 201, body = Impersonation), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn impersonate(
    State(state): State<AppState>,
    admin: AdminCaller,
    p: PathParams,
) -> ApiResult<(StatusCode, Json<Impersonation>)> {
    let id: UserId = p.id("id")?;
    let signed = state.services.admin_impersonate(&admin.admin, id).await?;
    Ok((
        StatusCode::CREATED,
        Json(Impersonation {
            token: signed.token.expose_secret().to_owned(),
            expires_at: signed.session.expires_at,
            session_id: signed.session.id,
            user: signed.user,
        }),
    ))
}

/// Every account, newest first.
#[utoipa::path(get, path = "/admin/users", tag = "admin", params(ListQuery),
    responses((status = 200, body = List<User>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_users(
    State(state): State<AppState>,
    admin: AdminCaller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<List<User>>> {
    let page = id_page::<UserId>(&q)?;
    let items = state.services.admin_list_users(&admin.admin, page).await?;
    Ok(Json(id_list(items, &page, |u| u.id.0)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    username: Username,
    password: NewPassword,
    email: Option<Email>,
    #[serde(default)]
    server_admin: bool,
}

/// Create an account (works whatever the registration mode).
#[utoipa::path(post, path = "/admin/users", tag = "admin", request_body = CreateUser,
    responses((status = 201, body = User), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_user(
    State(state): State<AppState>,
    admin: AdminCaller,
    ApiJson(body): ApiJson<CreateUser>,
) -> ApiResult<(StatusCode, Json<User>)> {
    let user = state
        .services
        .admin_create_user(
            &admin.admin,
            body.username,
            body.password,
            body.email,
            body.server_admin,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(user)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    /// Disabling revokes every session of the account.
    disabled: Option<bool>,
    server_admin: Option<bool>,
    /// The user must turn on two-factor authentication: until then their session reaches only
    /// their account and the 2FA setup routes.
    require_2fa: Option<bool>,
}

/// Disable or enable an account, or change its server-admin right.
#[utoipa::path(patch, path = "/admin/users/{id}", tag = "admin", params(("id" = String, Path, format = Uuid)), request_body = UpdateUser,
    responses((status = 200, body = User), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn update_user(
    State(state): State<AppState>,
    admin: AdminCaller,
    p: PathParams,
    ApiJson(body): ApiJson<UpdateUser>,
) -> ApiResult<Json<User>> {
    let id: UserId = p.id("id")?;
    Ok(Json(
        state
            .services
            .admin_update_user(
                &admin.admin,
                id,
                body.disabled,
                body.server_admin,
                body.require_2fa,
            )
            .await?,
    ))
}
