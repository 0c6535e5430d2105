//! `/users/*`: my profile and other people's public profiles.

use super::error::{ApiResult, ErrorBody};
use super::extract::{ApiJson, Caller, PathParams};
use super::pagination::List;
use crate::state::AppState;
use axum::extract::State;
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
            OpenApiRouter::new().routes(routes!(me, update_me)),
            org.before_2fa(),
        ))
        .merge(declare(
            OpenApiRouter::new()
                .routes(routes!(my_invites))
                .routes(routes!(user)),
            org,
        ))
}

/// My account.
#[utoipa::path(get, path = "/users/@me", tag = "users", responses((status = 200, body = User), (status = 401, body = ErrorBody)))]
async fn me(caller: Caller) -> Json<User> {
    Json(caller.actor.user)
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
#[utoipa::path(patch, path = "/users/@me", tag = "users", request_body = UpdateMe,
    responses((status = 200, body = User), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_me(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<UpdateMe>,
) -> ApiResult<Json<User>> {
    Ok(Json(
        state
            .services
            .set_display_name(&caller.actor, body.display_name)
            .await?,
    ))
}

/// Invites naming me that I can still accept (`POST /orgs/invites/{id}/accept`), newest first.
#[utoipa::path(get, path = "/users/@me/invites", tag = "users",
    responses((status = 200, body = List<PendingInvite>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn my_invites(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<List<PendingInvite>>> {
    Ok(Json(List::all(
        state.services.my_invites(&caller.actor).await?,
    )))
}

/// Another user's public profile (users who share an org with me).
#[utoipa::path(get, path = "/users/{id}", tag = "users", params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = UserSummary), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn user(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
) -> ApiResult<Json<UserSummary>> {
    let id: UserId = p.id("id")?;
    Ok(Json(state.services.user_profile(&caller.actor, id).await?))
}
