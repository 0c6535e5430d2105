//! `/orgs/*`: organizations, members, invites, teams and the permissions matrix.

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{ApiJson, ApiQuery, Caller, PathParams};
use super::pagination::{id_listed, List, ListQuery};
use super::users::nullable;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use conclave_core::model::{Invite, Member, Team};
use conclave_core::service::OrgView;
use conclave_core::service::{PermissionsMatrix, UserRef};
use conclave_core::store::OrgPatch;
use conclave_core::types::{ErasurePolicy, Name, OrgRole, Username};
use conclave_core::{InviteId, OrgId, TeamId, UserId};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    use super::credentials::{declare, RouteAccess};
    use conclave_core::credential::Scope;
    declare(
        OpenApiRouter::new()
            .routes(routes!(create_org, list_orgs))
            .routes(routes!(get_org, update_org, delete_org))
            .routes(routes!(transfer_org))
            .routes(routes!(create_invite, list_invites))
            .routes(routes!(revoke_invite))
            .routes(routes!(accept_invite))
            .routes(routes!(join_org))
            .routes(routes!(list_members, add_member))
            .routes(routes!(update_member, remove_member))
            .routes(routes!(list_teams, create_team))
            .routes(routes!(add_team_member, remove_team_member))
            .routes(routes!(permissions_matrix)),
        RouteAccess::scoped(Scope::OrgRead, Scope::OrgAdmin),
    )
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrg {
    name: Name,
}

/// Create an organization; the caller becomes its owner.
#[utoipa::path(post, path = "/orgs", tag = "orgs", request_body = CreateOrg,
    responses((status = 201, body = OrgView), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_org(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateOrg>,
) -> ApiResult<(StatusCode, Json<OrgView>)> {
    let org = state.services.create_org(&caller.actor, body.name).await?;
    Ok((StatusCode::CREATED, Json(org)))
}

/// The orgs I belong to.
#[utoipa::path(get, path = "/orgs", tag = "orgs", responses((status = 200, body = List<OrgView>), (status = 401, body = ErrorBody)))]
async fn list_orgs(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<List<OrgView>>> {
    let orgs = state.services.my_orgs(&caller.actor).await?;
    Ok(Json(List::all(orgs)))
}

/// One org I belong to.
#[utoipa::path(get, path = "/orgs/{org}", tag = "orgs", params(("org" = String, Path, format = Uuid)),
    responses((status = 200, body = OrgView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_org(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
) -> ApiResult<Json<OrgView>> {
    Ok(Json(
        state.services.get_org(&caller.actor, p.id("org")?).await?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateOrg {
    name: Option<Name>,
    require_2fa: Option<bool>,
    /// Days to keep messages; null keeps them forever.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i32>, minimum = 1, maximum = 36500)]
    message_retention_days: Option<Option<i32>>,
    /// Days to keep the audit log: at least the server's floor (30 days unless the operator
    /// raised it); null keeps it forever.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i32>, minimum = 30, maximum = 36500)]
    audit_retention_days: Option<Option<i32>>,
    erasure: Option<ErasurePolicy>,
}

fn retention(value: Option<Option<i32>>, field: &str) -> ApiResult<Option<Option<i32>>> {
    if let Some(Some(days)) = value {
        if !(1..=36_500).contains(&days) {
            return Err(ApiError::invalid(
                "out_of_range",
                format!("`{field}` must be between 1 and 36500, or null"),
                format!("/{field}"),
            ));
        }
    }
    Ok(value)
}

/// Change an org's settings (owners and admins).
#[utoipa::path(patch, path = "/orgs/{org}", tag = "orgs", params(("org" = String, Path, format = Uuid)), request_body = UpdateOrg,
    responses((status = 200, body = OrgView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_org(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
    ApiJson(body): ApiJson<UpdateOrg>,
) -> ApiResult<Json<OrgView>> {
    let id: OrgId = p.id("org")?;
    let patch = OrgPatch {
        name: body.name,
        require_2fa: body.require_2fa,
        message_retention_days: retention(body.message_retention_days, "message_retention_days")?,
        audit_retention_days: retention(body.audit_retention_days, "audit_retention_days")?,
        erasure: body.erasure,
    };
    Ok(Json(
        state.services.update_org(&caller.actor, id, patch).await?,
    ))
}

/// Delete an org and everything in it (owners).
#[utoipa::path(delete, path = "/orgs/{org}", tag = "orgs", params(("org" = String, Path, format = Uuid)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_org(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
) -> ApiResult<StatusCode> {
    state
        .services
        .delete_org(&caller.actor, p.id("org")?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferOrg {
    user_id: UserId,
}

/// Hand ownership to another member; the caller becomes an admin.
#[utoipa::path(post, path = "/orgs/{org}/transfer", tag = "orgs", params(("org" = String, Path, format = Uuid)), request_body = TransferOrg,
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn transfer_org(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
    ApiJson(body): ApiJson<TransferOrg>,
) -> ApiResult<StatusCode> {
    state
        .services
        .transfer_org(&caller.actor, p.id("org")?, body.user_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInvite {
    /// Default `member`.
    role: Option<OrgRole>,
    /// 1–100000; an invite naming a user is used once.
    #[schema(minimum = 1, maximum = 100000)]
    max_uses: Option<i32>,
    /// Default: 7 days from now.
    expires_at: Option<DateTime<Utc>>,
    /// The one user who may take it; it appears in their `GET /users/@me/invites`. The answer
    /// is the same whether such an account exists.
    #[schema(value_type = Option<String>)]
    username: Option<Username>,
}

/// A new invite; `code` is shown only here.
#[derive(Serialize, ToSchema)]
pub struct CreatedInvite {
    #[serde(flatten)]
    invite: Invite,
    code: String,
}

/// Create an invite code, or invite a username (owners and admins; an invite never grants a
/// role its maker could not). Expires after 7 days unless `expires_at` says otherwise.
#[utoipa::path(post, path = "/orgs/{org}/invites", tag = "orgs", params(("org" = String, Path, format = Uuid)), request_body = CreateInvite,
    responses((status = 201, body = CreatedInvite), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_invite(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
    ApiJson(body): ApiJson<CreateInvite>,
) -> ApiResult<(StatusCode, Json<CreatedInvite>)> {
    let (invite, code) = state
        .services
        .create_invite(
            &caller.actor,
            p.id("org")?,
            body.role.unwrap_or(OrgRole::Member),
            body.max_uses,
            body.expires_at,
            body.username,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedInvite {
            invite,
            code: code.expose_secret().to_owned(),
        }),
    ))
}

/// The org's invites, newest first (owners and admins); codes are never shown again.
#[utoipa::path(get, path = "/orgs/{org}/invites", tag = "orgs", params(("org" = String, Path, format = Uuid)),
    responses((status = 200, body = List<Invite>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_invites(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
) -> ApiResult<Json<List<Invite>>> {
    Ok(Json(List::all(
        state.services.invites(&caller.actor, p.id("org")?).await?,
    )))
}

/// Revoke an invite (owners and admins): its code and pending entry stop working at once.
#[utoipa::path(delete, path = "/orgs/{org}/invites/{id}", tag = "orgs",
    params(("org" = String, Path, format = Uuid), ("id" = String, Path, format = Uuid)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn revoke_invite(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
) -> ApiResult<StatusCode> {
    let id: InviteId = p.id("id")?;
    state
        .services
        .revoke_invite(&caller.actor, p.id("org")?, id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Accept an invite naming me (from `GET /users/@me/invites`): I join its org with its role.
#[utoipa::path(post, path = "/orgs/invites/{id}/accept", tag = "orgs", params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = OrgView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn accept_invite(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
) -> ApiResult<Json<OrgView>> {
    let id: InviteId = p.id("id")?;
    Ok(Json(state.services.accept_invite(&caller.actor, id).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinOrg {
    code: String,
}

/// Join an org with an invite code.
#[utoipa::path(post, path = "/orgs/join", tag = "orgs", request_body = JoinOrg,
    responses((status = 200, body = OrgView), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn join_org(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<JoinOrg>,
) -> ApiResult<Json<OrgView>> {
    Ok(Json(
        state.services.join_org(&caller.actor, &body.code).await?,
    ))
}

/// Members of an org.
#[utoipa::path(get, path = "/orgs/{org}/members", tag = "orgs", params(("org" = String, Path, format = Uuid), ListQuery),
    responses((status = 200, body = List<Member>), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_members(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<List<Member>>> {
    let org = p.id("org")?;
    id_listed(
        &q,
        |m: &Member| m.user.id.0,
        |page| state.services.members(&caller.actor, org, page),
    )
    .await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    user_id: Option<UserId>,
    username: Option<Username>,
    role: OrgRole,
}

impl AddMember {
    /// The user named by `user_id` or `username` (exactly one); 422 otherwise.
    pub fn target(self) -> ApiResult<(UserRef, OrgRole)> {
        let who = match (self.user_id, self.username) {
            (Some(id), None) => UserRef::Id(id),
            (None, Some(name)) => UserRef::Name(name),
            (Some(_), Some(_)) => {
                return Err(ApiError::invalid(
                    "conflicting_fields",
                    "give `user_id` or `username`, not both",
                    "/username",
                ))
            }
            (None, None) => {
                return Err(ApiError::invalid(
                    "missing_field",
                    "`user_id` or `username` is required",
                    "/user_id",
                ))
            }
        };
        Ok((who, self.role))
    }
}

/// Add an existing user to the org without their consent: server admins only (their own
/// signed-in session); everyone else invites (AZ-7), and automation uses
/// `POST /admin/orgs/{org}/members`.
#[utoipa::path(post, path = "/orgs/{org}/members", tag = "orgs", params(("org" = String, Path, format = Uuid)), request_body = AddMember,
    responses((status = 201, body = Member), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn add_member(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
    ApiJson(body): ApiJson<AddMember>,
) -> ApiResult<(StatusCode, Json<Member>)> {
    let (who, role) = body.target()?;
    let member = state
        .services
        .add_member(&caller.actor, p.id("org")?, who, role)
        .await?;
    Ok((StatusCode::CREATED, Json(member)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMember {
    role: OrgRole,
}

/// Change a member's role.
#[utoipa::path(patch, path = "/orgs/{org}/members/{user}", tag = "orgs", params(("org" = String, Path, format = Uuid), ("user" = String, Path, format = Uuid)), request_body = UpdateMember,
    responses((status = 200, body = Member), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn update_member(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
    ApiJson(body): ApiJson<UpdateMember>,
) -> ApiResult<Json<Member>> {
    Ok(Json(
        state
            .services
            .set_member_role(&caller.actor, p.id("org")?, p.id("user")?, body.role)
            .await?,
    ))
}

/// Remove a member (or leave, with your own id).
#[utoipa::path(delete, path = "/orgs/{org}/members/{user}", tag = "orgs", params(("org" = String, Path, format = Uuid), ("user" = String, Path, format = Uuid)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
) -> ApiResult<StatusCode> {
    state
        .services
        .remove_member(&caller.actor, p.id("org")?, p.id("user")?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Teams of an org.
#[utoipa::path(get, path = "/orgs/{org}/teams", tag = "orgs", params(("org" = String, Path, format = Uuid)),
    responses((status = 200, body = List<Team>), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_teams(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
) -> ApiResult<Json<List<Team>>> {
    Ok(Json(List::all(
        state.services.teams(&caller.actor, p.id("org")?).await?,
    )))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTeam {
    name: Name,
}

/// Create a team (owners and admins).
#[utoipa::path(post, path = "/orgs/{org}/teams", tag = "orgs", params(("org" = String, Path, format = Uuid)), request_body = CreateTeam,
    responses((status = 201, body = Team), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_team(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
    ApiJson(body): ApiJson<CreateTeam>,
) -> ApiResult<(StatusCode, Json<Team>)> {
    let team = state
        .services
        .create_team(&caller.actor, p.id("org")?, body.name)
        .await?;
    Ok((StatusCode::CREATED, Json(team)))
}

/// Add an org member to a team.
#[utoipa::path(post, path = "/orgs/{org}/teams/{team}/members/{user}", tag = "orgs",
    params(("org" = String, Path, format = Uuid), ("team" = String, Path, format = Uuid), ("user" = String, Path, format = Uuid)),
    responses((status = 200, body = Team), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn add_team_member(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
) -> ApiResult<Json<Team>> {
    let team: TeamId = p.id("team")?;
    Ok(Json(
        state
            .services
            .add_team_member(&caller.actor, p.id("org")?, team, p.id("user")?)
            .await?,
    ))
}

/// Remove someone from a team.
#[utoipa::path(delete, path = "/orgs/{org}/teams/{team}/members/{user}", tag = "orgs",
    params(("org" = String, Path, format = Uuid), ("team" = String, Path, format = Uuid), ("user" = String, Path, format = Uuid)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn remove_team_member(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
) -> ApiResult<StatusCode> {
    let team: TeamId = p.id("team")?;
    state
        .services
        .remove_team_member(&caller.actor, p.id("org")?, team, p.id("user")?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Who can do what in the org, computed from the policy module.
#[utoipa::path(get, path = "/orgs/{org}/permissions/matrix", tag = "orgs", params(("org" = String, Path, format = Uuid)),
    responses((status = 200, body = PermissionsMatrix), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn permissions_matrix(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
) -> ApiResult<Json<PermissionsMatrix>> {
    Ok(Json(
        state
            .services
            .permissions_matrix(&caller.actor, p.id("org")?)
            .await?,
    ))
}
