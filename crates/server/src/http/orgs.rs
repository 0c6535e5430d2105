//! `/orgs/*`: organizations, members, invites, teams and the permissions matrix.

use super::error::{
    created, created_by, json, no_content, Answer, ApiError, ApiResult, Created, ErrorBody,
    NoContent,
};
use super::extract::{ApiJson, ApiQuery, Caller};
use super::pagination::{all, id_listed, List, ListQuery, Listed, Paging};
use super::users::nullable;
use crate::state::AppState;
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
    let scoped = declare(
        OpenApiRouter::new()
            .routes(routes!(list_orgs))
            .routes(routes!(get_org, update_org, delete_org))
            .routes(routes!(transfer_org))
            .routes(routes!(create_invite, list_invites))
            .routes(routes!(revoke_invite))
            .routes(routes!(list_members, add_member))
            .routes(routes!(update_member, remove_member))
            .routes(routes!(list_teams, create_team))
            .routes(routes!(add_team_member, remove_team_member))
            .routes(routes!(permissions_matrix)),
        RouteAccess::scoped(Scope::OrgRead, Scope::OrgAdmin),
    );
    // Joining or making an org is the person's own act: no key or bot does it (AZ-7).
    let own = declare(
        OpenApiRouter::new()
            .routes(routes!(create_org))
            .routes(routes!(accept_invite))
            .routes(routes!(join_org)),
        RouteAccess::SESSION,
    );
    scoped.merge(own)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrg {
    name: Name,
}

/// Create an organization; the caller becomes its owner.
#[utoipa::path(post, path = "/orgs", tag = "orgs", request_body = CreateOrg, responses((status = 201, body = OrgView)))]
async fn create_org(me: Caller, ApiJson(body): ApiJson<CreateOrg>) -> Created<OrgView> {
    created_by(me.services().create_org(&me.actor, body.name)).await
}

/// The orgs I belong to.
#[utoipa::path(get, path = "/orgs", tag = "orgs", responses((status = 200, body = List<OrgView>)))]
async fn list_orgs(me: Caller) -> Listed<OrgView> {
    all(me.services().my_orgs(&me.actor)).await
}

/// One org I belong to.
#[utoipa::path(get, path = "/orgs/{org}", tag = "orgs", params(("org" = String, Path, format = Uuid)), responses((status = 200, body = OrgView)))]
async fn get_org(me: Caller<OrgId>) -> Answer<OrgView> {
    json(me.services().get_org(&me.actor, me.at)).await
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
    responses((status = 200, body = OrgView), (status = 409, body = ErrorBody)))]
async fn update_org(me: Caller<OrgId>, ApiJson(body): ApiJson<UpdateOrg>) -> Answer<OrgView> {
    let patch = OrgPatch {
        name: body.name,
        require_2fa: body.require_2fa,
        message_retention_days: retention(body.message_retention_days, "message_retention_days")?,
        audit_retention_days: retention(body.audit_retention_days, "audit_retention_days")?,
        erasure: body.erasure,
    };
    json(me.services().update_org(&me.actor, me.at, patch)).await
}

/// Delete an org and everything in it (owners).
#[utoipa::path(delete, path = "/orgs/{org}", tag = "orgs", params(("org" = String, Path, format = Uuid)), responses((status = 204)))]
async fn delete_org(me: Caller<OrgId>) -> NoContent {
    no_content(me.services().delete_org(&me.actor, me.at)).await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferOrg {
    user_id: UserId,
}

/// Hand ownership to another member; the caller becomes an admin.
#[utoipa::path(post, path = "/orgs/{org}/transfer", tag = "orgs", params(("org" = String, Path, format = Uuid)), request_body = TransferOrg,
    responses((status = 204)))]
async fn transfer_org(me: Caller<OrgId>, ApiJson(body): ApiJson<TransferOrg>) -> NoContent {
    let to = body.user_id;
    no_content(me.services().transfer_org(&me.actor, me.at, to)).await
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
    responses((status = 201, body = CreatedInvite)))]
async fn create_invite(
    me: Caller<OrgId>,
    ApiJson(body): ApiJson<CreateInvite>,
) -> Created<CreatedInvite> {
    let role = body.role.unwrap_or(OrgRole::Member);
    let (invite, code) = me
        .services()
        .create_invite(
            &me.actor,
            me.at,
            role,
            body.max_uses,
            body.expires_at,
            body.username,
        )
        .await?;
    let code = code.expose_secret().to_owned();
    created(CreatedInvite { invite, code })
}

/// The org's invites, newest first (owners and admins); codes are never shown again.
#[utoipa::path(get, path = "/orgs/{org}/invites", tag = "orgs", params(("org" = String, Path, format = Uuid)),
    responses((status = 200, body = List<Invite>)))]
async fn list_invites(me: Caller<OrgId>) -> Listed<Invite> {
    all(me.services().invites(&me.actor, me.at)).await
}

/// Revoke an invite (owners and admins): its code and pending entry stop working at once.
#[utoipa::path(delete, path = "/orgs/{org}/invites/{id}", tag = "orgs",
    params(("org" = String, Path, format = Uuid), ("id" = String, Path, format = Uuid)), responses((status = 204)))]
async fn revoke_invite(me: Caller<(OrgId, InviteId)>) -> NoContent {
    let (org, id) = me.at;
    no_content(me.services().revoke_invite(&me.actor, org, id)).await
}

/// Accept an invite naming me (from `GET /users/@me/invites`): I join its org with its role.
#[utoipa::path(post, path = "/orgs/invites/{id}/accept", tag = "orgs", params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = OrgView), (status = 409, body = ErrorBody)))]
async fn accept_invite(me: Caller<InviteId>) -> Answer<OrgView> {
    json(me.services().accept_invite(&me.actor, me.at)).await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinOrg {
    code: String,
}

/// Join an org with an invite code.
#[utoipa::path(post, path = "/orgs/join", tag = "orgs", request_body = JoinOrg,
    responses((status = 200, body = OrgView), (status = 409, body = ErrorBody)))]
async fn join_org(me: Caller, ApiJson(body): ApiJson<JoinOrg>) -> Answer<OrgView> {
    json(me.services().join_org(&me.actor, &body.code)).await
}

/// Members of an org.
#[utoipa::path(get, path = "/orgs/{org}/members", tag = "orgs", params(("org" = String, Path, format = Uuid), ListQuery),
    responses((status = 200, body = List<Member>)))]
async fn list_members(me: Caller<OrgId>, ApiQuery(q): Paging) -> Listed<Member> {
    let members = |page| me.services().members(&me.actor, me.at, page);
    id_listed(&q, |m: &Member| m.user.id.0, members).await
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
    responses((status = 201, body = Member), (status = 409, body = ErrorBody)))]
async fn add_member(me: Caller<OrgId>, ApiJson(body): ApiJson<AddMember>) -> Created<Member> {
    let (who, role) = body.target()?;
    created_by(me.services().add_member(&me.actor, me.at, who, role)).await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMember {
    role: OrgRole,
}

/// Change a member's role.
#[utoipa::path(patch, path = "/orgs/{org}/members/{user}", tag = "orgs", params(("org" = String, Path, format = Uuid), ("user" = String, Path, format = Uuid)), request_body = UpdateMember,
    responses((status = 200, body = Member), (status = 409, body = ErrorBody)))]
async fn update_member(
    me: Caller<(OrgId, UserId)>,
    ApiJson(body): ApiJson<UpdateMember>,
) -> Answer<Member> {
    let (org, user) = me.at;
    json(
        me.services()
            .set_member_role(&me.actor, org, user, body.role),
    )
    .await
}

/// Remove a member (or leave, with your own id).
#[utoipa::path(delete, path = "/orgs/{org}/members/{user}", tag = "orgs", params(("org" = String, Path, format = Uuid), ("user" = String, Path, format = Uuid)),
    responses((status = 204), (status = 409, body = ErrorBody)))]
async fn remove_member(me: Caller<(OrgId, UserId)>) -> NoContent {
    let (org, user) = me.at;
    no_content(me.services().remove_member(&me.actor, org, user)).await
}

/// Teams of an org.
#[utoipa::path(get, path = "/orgs/{org}/teams", tag = "orgs", params(("org" = String, Path, format = Uuid)), responses((status = 200, body = List<Team>)))]
async fn list_teams(me: Caller<OrgId>) -> Listed<Team> {
    all(me.services().teams(&me.actor, me.at)).await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTeam {
    name: Name,
}

/// Create a team (owners and admins).
#[utoipa::path(post, path = "/orgs/{org}/teams", tag = "orgs", params(("org" = String, Path, format = Uuid)), request_body = CreateTeam,
    responses((status = 201, body = Team), (status = 409, body = ErrorBody)))]
async fn create_team(me: Caller<OrgId>, ApiJson(body): ApiJson<CreateTeam>) -> Created<Team> {
    created_by(me.services().create_team(&me.actor, me.at, body.name)).await
}

/// Add an org member to a team.
#[utoipa::path(post, path = "/orgs/{org}/teams/{team}/members/{user}", tag = "orgs",
    params(("org" = String, Path, format = Uuid), ("team" = String, Path, format = Uuid), ("user" = String, Path, format = Uuid)),
    responses((status = 200, body = Team)))]
async fn add_team_member(me: Caller<(OrgId, TeamId, UserId)>) -> Answer<Team> {
    let (org, team, user) = me.at;
    json(me.services().add_team_member(&me.actor, org, team, user)).await
}

/// Remove someone from a team.
#[utoipa::path(delete, path = "/orgs/{org}/teams/{team}/members/{user}", tag = "orgs",
    params(("org" = String, Path, format = Uuid), ("team" = String, Path, format = Uuid), ("user" = String, Path, format = Uuid)),
    responses((status = 204)))]
async fn remove_team_member(me: Caller<(OrgId, TeamId, UserId)>) -> NoContent {
    let (org, team, user) = me.at;
    no_content(me.services().remove_team_member(&me.actor, org, team, user)).await
}

/// Who can do what in the org, computed from the policy module.
#[utoipa::path(get, path = "/orgs/{org}/permissions/matrix", tag = "orgs", params(("org" = String, Path, format = Uuid)),
    responses((status = 200, body = PermissionsMatrix)))]
async fn permissions_matrix(me: Caller<OrgId>) -> Answer<PermissionsMatrix> {
    json(me.services().permissions_matrix(&me.actor, me.at)).await
}
