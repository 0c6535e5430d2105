//! `/orgs/{org}/bots`: an org's bots (AUTH-6), managed by its owners and admins. The token is in
//! the answer to creation and rotation only; lists show it masked (`cnv_b_****abcd`).
//!
//! A bot token is a credential with none of a key's bounds (no scopes, expiry or IP allowlist,
//! and it outlives whoever made it), so like API keys these routes take a login session: a key
//! with `org:admin` could otherwise mint one that reads what the key may not.

use super::error::{created, Answer, Created};
use super::extract::{ApiJson, Caller};
use super::pagination::{all_as, List, Listed};
use crate::state::AppState;
use axum::Json;
use conclave_core::model::Bot;
use conclave_core::token::{self, TokenKind};
use conclave_core::types::DisplayName;
use conclave_core::{BotId, ConversationId, OrgId};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    use super::credentials::{declare, RouteAccess};
    declare(
        OpenApiRouter::new()
            .routes(routes!(list_bots, create_bot))
            .routes(routes!(rotate_bot_token)),
        RouteAccess::SESSION,
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
    /// `revealed`: the token itself, in the answer that created or rotated it.
    fn new(bot: Bot, revealed: Option<&SecretString>) -> Self {
        let token = token::shown(TokenKind::Bot, &bot.secrets.hint, revealed);
        Self { bot, token }
    }

    fn masked(bot: Bot) -> Self {
        Self::new(bot, None)
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
    responses((status = 201, body = BotView)))]
async fn create_bot(me: Caller<OrgId>, ApiJson(body): ApiJson<CreateBot>) -> Created<BotView> {
    let made = me
        .services()
        .create_bot(&me.actor, me.at, body.name, body.conversation_ids);
    let (bot, token) = made.await?;
    created(BotView::new(bot, Some(&token)))
}

/// The org's bots, tokens masked (owners and admins).
#[utoipa::path(get, path = "/orgs/{org}/bots", tag = "bots", params(("org" = String, Path, format = Uuid)), responses((status = 200, body = List<BotView>)))]
async fn list_bots(me: Caller<OrgId>) -> Listed<BotView> {
    all_as(me.services().bots(&me.actor, me.at), BotView::masked).await
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
    params(("org" = String, Path, format = Uuid), ("bot" = String, Path, format = Uuid)), request_body = RotateBotToken, responses((status = 200, body = BotView)))]
async fn rotate_bot_token(
    me: Caller<(OrgId, BotId)>,
    ApiJson(body): ApiJson<RotateBotToken>,
) -> Answer<BotView> {
    let (org, bot) = me.at;
    let grace = body.grace_seconds.unwrap_or(0);
    let rotated = me.services().rotate_bot_token(&me.actor, org, bot, grace);
    let (bot, token) = rotated.await?;
    Ok(Json(BotView::new(bot, Some(&token))))
}
