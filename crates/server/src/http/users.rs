//! `/users/*`: my profile and other people's public profiles.

use super::error::{json, Answer};
use super::extract::{ApiJson, Caller};
use super::pagination::{all, List, Listed};
use crate::state::AppState;
use axum::Json;
use conclave_core::model::{PendingInvite, User, UserSummary};
use conclave_core::types::DisplayName;
use conclave_core::UserId;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    use super::credentials::{declare, RouteAccess};
    use conclave_core::credential::Scope;
    let org = RouteAccess::scoped(Scope::OrgRead, Scope::OrgAdmin);
    OpenApiRouter::new()
        .merge(declare(
            OpenApiRouter::new().routes(routes!(me)),
            org.before_2fa(),
        ))
        // The person's own name and invitations: a login session's, no key's or bot's.
        .merge(declare(
            OpenApiRouter::new().routes(routes!(update_me)),
            RouteAccess::SESSION.before_2fa(),
        ))
        .merge(declare(
            OpenApiRouter::new().routes(routes!(my_invites)),
            RouteAccess::SESSION,
        ))
        .merge(declare(OpenApiRouter::new().routes(routes!(user)), org))
}

/// My account.
#[utoipa::path(get, path = "/users/@me", tag = "users", responses((status = 200, body = User)))]
async fn me(me: Caller) -> Json<User> {
    Json(me.actor.user)
}

/// `Some(None)` when the key is present with `null`; `None` when absent.
pub fn nullable<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMe {
    /// 1–64 characters; null clears it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<DisplayName>)]
    display_name: Option<Option<DisplayName>>,
}

/// Change my display name (the global profile): sessions only, never a bot or API key (AZ-7).
#[utoipa::path(patch, path = "/users/@me", tag = "users", request_body = UpdateMe, responses((status = 200, body = User)))]
async fn update_me(me: Caller, ApiJson(body): ApiJson<UpdateMe>) -> Answer<User> {
    let name = body.display_name;
    json(me.services().set_display_name(&me.actor, name)).await
}

/// Invites naming me that I can still accept (`POST /orgs/invites/{id}/accept`), newest first.
#[utoipa::path(get, path = "/users/@me/invites", tag = "users", responses((status = 200, body = List<PendingInvite>)))]
async fn my_invites(me: Caller) -> Listed<PendingInvite> {
    all(me.services().my_invites(&me.actor)).await
}

/// Another user's public profile (users who share an org with me).
#[utoipa::path(get, path = "/users/{id}", tag = "users", params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = UserSummary)))]
async fn user(me: Caller<UserId>) -> Answer<UserSummary> {
    json(me.services().user_profile(&me.actor, me.at)).await
}
