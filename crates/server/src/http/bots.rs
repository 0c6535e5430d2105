//! `/orgs/{org}/bots`: an org's bots (AUTH-6), managed by its owners and admins. The token is in
//! the answer to creation and rotation only; lists show it masked (`cnv_b_****abcd`).

use super::error::{ApiResult, ErrorBody};
use super::extract::{ApiJson, Caller, PathParams};
use super::pagination::List;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use conclave_core::model::Bot;
use conclave_core::token::{self, TokenKind};
use conclave_core::types::DisplayName;
use conclave_core::{BotId, ConversationId, OrgId};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    use super::credentials::{declare, RouteAccess};
    use conclave_core::credential::Scope;
    declare(
        OpenApiRouter::new()
            .routes(routes!(list_bots, create_bot))
            .routes(routes!(rotate_bot_token)),
        RouteAccess::scoped(Scope::OrgRead, Scope::OrgAdmin),
    )
}

/// A bot: `token` is the token itself in the answer to creation and rotation (shown once;
/// send it as `Authorization: Bot <token>`), and masked (`cnv_b_****abcd`) everywhere else.
#[derive(Serialize, ToSchema)]
pub struct BotView {
    #[serde(flatten)]
    bot: Bot,
    token: String,
}

impl BotView {
    fn masked(bot: Bot) -> Self {
        let token = token::masked(TokenKind::Bot, &bot.secrets.hint);
        Self { bot, token }
    }

    fn revealed(bot: Bot, token: &SecretString) -> Self {
        Self {
            bot,
            token: token.expose_secret().to_owned(),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBot {
    /// Shown as the bot's display name: 1–64 characters.
    name: DisplayName,
    /// Limits the bot to these conversations of the org (1–100); it acts only where it also
    /// participates.
    #[schema(min_items = 1, max_items = 100)]
    conversation_ids: Option<Vec<ConversationId>>,
}

/// Create a bot (owners and admins); its token is shown only here.
#[utoipa::path(post, path = "/orgs/{org}/bots", tag = "bots", params(("org" = String, Path, format = Uuid)), request_body = CreateBot,
    responses((status = 201, body = BotView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_bot(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
    ApiJson(body): ApiJson<CreateBot>,
) -> ApiResult<(StatusCode, Json<BotView>)> {
    let org: OrgId = p.id("org")?;
    let (bot, token) = state
        .services
        .create_bot(&caller.actor, org, body.name, body.conversation_ids)
        .await?;
    Ok((StatusCode::CREATED, Json(BotView::revealed(bot, &token))))
}

/// The org's bots, tokens masked (owners and admins).
#[utoipa::path(get, path = "/orgs/{org}/bots", tag = "bots", params(("org" = String, Path, format = Uuid)),
    responses((status = 200, body = List<BotView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_bots(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
) -> ApiResult<Json<List<BotView>>> {
    let bots = state.services.bots(&caller.actor, p.id("org")?).await?;
    Ok(Json(List::all(
        bots.into_iter().map(BotView::masked).collect(),
    )))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateBotToken {
    /// How long the old token keeps working: 0–86400 seconds, default 0.
    #[schema(minimum = 0, maximum = 86400)]
    grace_seconds: Option<i64>,
}

/// Issue a new token for a bot; the old one works until the grace period ends.
#[utoipa::path(post, path = "/orgs/{org}/bots/{bot}/token", tag = "bots",
    params(("org" = String, Path, format = Uuid), ("bot" = String, Path, format = Uuid)), request_body = RotateBotToken,
    responses((status = 200, body = BotView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn rotate_bot_token(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
    ApiJson(body): ApiJson<RotateBotToken>,
) -> ApiResult<Json<BotView>> {
    let org: OrgId = p.id("org")?;
    let bot: BotId = p.id("bot")?;
    let (bot, token) = state
        .services
        .rotate_bot_token(&caller.actor, org, bot, body.grace_seconds.unwrap_or(0))
        .await?;
    Ok(Json(BotView::revealed(bot, &token)))
}
