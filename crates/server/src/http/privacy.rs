//! Privacy (DATA-6): `GET /users/@me/export` (a JSON archive of everything about the caller)
//! and `DELETE /users/@me` (account erasure after re-authentication).

use super::auth::Meta;
use super::error::{no_content, ApiResult, ErrorBody, NoContent};
use super::extract::{ApiJson, Caller};
use crate::state::AppState;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use conclave_core::service::AccountExport;
use conclave_core::totp::SecondFactorCode;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    use super::credentials::{declare, RouteAccess};
    // The person's own archive and erasure: a login session's only (DATA-6).
    OpenApiRouter::new()
        .merge(declare(
            OpenApiRouter::new().routes(routes!(export)),
            RouteAccess::SESSION,
        ))
        .merge(declare(
            OpenApiRouter::new().routes(routes!(erase)),
            RouteAccess::SESSION.before_2fa(),
        ))
}

/// Download all your data as one JSON archive (your own login session only).
#[utoipa::path(get, path = "/users/@me/export", tag = "users", responses((status = 200, body = AccountExport)))]
async fn export(me: Caller) -> ApiResult<Response> {
    let archive = me.services().export_account(&me.actor).await?;
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
    /// Your current password. An account with none (it signs in through single sign-on
    /// only) leaves it out and must have signed in within the last ten minutes instead.
    password: Option<String>,
    /// A TOTP or recovery code; required when two-factor authentication is on.
    code: Option<SecondFactorCode>,
}

/// Erase your account: password (and 2FA code) re-checked — an account without a password
/// (single sign-on only) must instead have signed in within the last ten minutes, else 403
/// `reauthentication_required`; messages tombstoned or kept under an anonymous name per each
/// org's `erasure` policy; memberships, credentials and personal data removed. 409
/// `last_owner` while you are an org's only owner.
#[utoipa::path(delete, path = "/users/@me", tag = "users", request_body = EraseBody,
    responses((status = 204), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn erase(me: Caller, Meta(meta): Meta, ApiJson(body): ApiJson<EraseBody>) -> NoContent {
    let code = body.code.as_ref();
    no_content(
        me.services()
            .erase_account(&me.actor, body.password.as_deref(), code, &meta),
    )
    .await
}
