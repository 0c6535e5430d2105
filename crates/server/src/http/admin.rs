//! `/admin/*`: server administration, for server admins and the management token.

use super::error::{created, created_by, json, Answer, Created, ErrorBody};
use super::extract::{AdminCaller, ApiJson, ApiQuery};
use super::orgs::AddMember;
use super::pagination::{id_listed, List, ListQuery, Listed, Paging};
use crate::state::AppState;
use conclave_core::model::{Member, User};
use conclave_core::password::NewPassword;
use conclave_core::store::{LinkedIdentity, UserFlags};
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
            .routes(routes!(reset_password))
            .routes(routes!(user_identities))
            .routes(routes!(add_org_member))
            .routes(routes!(stats)),
        RouteAccess::SESSION,
    )
}

/// What `GET /admin/stats` reports.
#[derive(Serialize, ToSchema)]
pub struct AdminStats {
    /// Content guards over every org (RATE-6): how many, and how many of each decision.
    guards: conclave_core::store::guards::GuardTotals,
}

/// Server statistics for the admin console: content guards and their decisions.
#[utoipa::path(get, path = "/admin/stats", tag = "admin", responses((status = 200, body = AdminStats)))]
async fn stats(a: AdminCaller) -> Answer<AdminStats> {
    let guards = a.services().guard_totals(&a.admin).await?;
    Ok(axum::Json(AdminStats { guards }))
}

/// Add an existing account to an org directly (AZ-7): for server admins and automation with
/// the management token. Audited in the org's chain.
#[utoipa::path(post, path = "/admin/orgs/{org}/members", tag = "admin", params(("org" = String, Path, format = Uuid)), request_body = AddMember,
    responses((status = 201, body = Member), (status = 409, body = ErrorBody)))]
async fn add_org_member(
    a: AdminCaller<OrgId>,
    ApiJson(body): ApiJson<AddMember>,
) -> Created<Member> {
    let (who, role) = body.target()?;
    created_by(a.services().admin_add_member(&a.admin, a.at, who, role)).await
}

/// The outside identities (host-app JWT subjects, OpenID and LDAP identities) linked to an
/// account (AUTH-10, AUTH-11), oldest first.
#[utoipa::path(get, path = "/admin/users/{id}/identities", tag = "admin", params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = List<LinkedIdentity>), (status = 404, body = ErrorBody)))]
async fn user_identities(a: AdminCaller<UserId>) -> Listed<LinkedIdentity> {
    super::pagination::all(a.services().admin_user_identities(&a.admin, a.at)).await
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
    responses((status = 201, body = Impersonation), (status = 409, body = ErrorBody)))]
async fn impersonate(a: AdminCaller<UserId>) -> Created<Impersonation> {
    let id = a.at;
    let signed = a.services().admin_impersonate(&a.admin, id).await?;
    created(Impersonation {
        token: signed.token.expose_secret().to_owned(),
        expires_at: signed.session.expires_at,
        session_id: signed.session.id,
        user: signed.user,
    })
}

/// A one-time link that sets an account's password.
#[derive(Serialize, ToSchema)]
pub struct ResetLinkBody {
    /// `<public_url>/#reset-password=<token>`: the web client's form. Shown once; the token
    /// is in the fragment, which browsers never send to a server.
    pub url: String,
    /// An hour from now.
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// The link a reset token opens in the web client.
#[must_use]
pub fn reset_url(public_url: &str, link: &conclave_core::service::ResetLink) -> String {
    format!(
        "{public_url}/#reset-password={}",
        link.token.expose_secret()
    )
}

/// A one-time link (an hour) to set a user's password; every session of the user ends now and
/// an earlier link stops working. Not for bots.
#[utoipa::path(post, path = "/admin/users/{id}/password-reset", tag = "admin", params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = ResetLinkBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn reset_password(a: AdminCaller<UserId>) -> Answer<ResetLinkBody> {
    let link = a.services().admin_reset_password(&a.admin, a.at).await?;
    Ok(axum::Json(ResetLinkBody {
        url: reset_url(&a.state().public_url, &link),
        expires_at: link.expires_at,
    }))
}

/// An account as the server admin's listing shows it: the user object and what its files take.
#[derive(Serialize, ToSchema)]
pub struct AdminUser {
    #[serde(flatten)]
    user: User,
    file_usage: FileUsage,
}

/// A user's uploads against the per-user quota (`files.user_quota_bytes`, DATA-1).
#[derive(Serialize, ToSchema)]
pub struct FileUsage {
    /// Bytes counted against the quota: stored files and uploads in progress.
    used_bytes: u64,
    quota_bytes: u64,
    /// Files stored under the user's name.
    files: u64,
}

/// Every account, newest first, each with its file usage.
#[utoipa::path(get, path = "/admin/users", tag = "admin", params(ListQuery), responses((status = 200, body = List<AdminUser>)))]
async fn list_users(a: AdminCaller, ApiQuery(q): Paging) -> Listed<AdminUser> {
    let quota_bytes = a.state().files.config.user_quota_bytes;
    let users = |page| async move {
        let listed = a.services().admin_list_users(&a.admin, page).await?;
        Ok(listed
            .into_iter()
            .map(|(user, held)| AdminUser {
                user,
                file_usage: FileUsage {
                    used_bytes: held.used_bytes,
                    quota_bytes,
                    files: held.files,
                },
            })
            .collect())
    };
    id_listed(&q, |u: &AdminUser| u.user.id.0, users).await
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
    responses((status = 201, body = User), (status = 409, body = ErrorBody)))]
async fn create_user(a: AdminCaller, ApiJson(body): ApiJson<CreateUser>) -> Created<User> {
    let CreateUser {
        username,
        password,
        email,
        server_admin,
    } = body;
    created_by(
        a.services()
            .admin_create_user(&a.admin, username, password, email, server_admin),
    )
    .await
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
    /// The account's email is its owner's (the admin checked it): an OpenID provider with
    /// `link_existing = "email_verified"` may then link a first sign-in with that verified
    /// address to this account. Ignored for an account without an email.
    email_verified: Option<bool>,
}

/// Disable or enable an account, change its server-admin right, require 2FA, or vouch for its
/// email.
#[utoipa::path(patch, path = "/admin/users/{id}", tag = "admin", params(("id" = String, Path, format = Uuid)), request_body = UpdateUser,
    responses((status = 200, body = User), (status = 409, body = ErrorBody)))]
async fn update_user(a: AdminCaller<UserId>, ApiJson(body): ApiJson<UpdateUser>) -> Answer<User> {
    let UpdateUser {
        disabled,
        server_admin,
        require_2fa,
        email_verified,
    } = body;
    let flags = UserFlags {
        disabled,
        server_admin,
        require_2fa,
        email_verified,
    };
    json(a.services().admin_update_user(&a.admin, a.at, flags)).await
}
