//! The support team's side of the widget (WEB-4): `/orgs/{org}/widget-keys` (owners and
//! admins, scope `org:admin`; AZ-5a refuses conversation-limited credentials) and the inbox
//! `/orgs/{org}/inbox` (the keys' support teams and org admins, scope `conversations:read`;
//! never a bot). Server admins list every widget conversation at `/admin/conversations`
//! (`admin.rs`). Every field is parsed into a typed value here: origins are exact
//! `http(s)://host[:port]` (422 naming the entry otherwise).

use super::error::{created, no_content, Answer, ApiError, ApiResult, Created, NoContent};
use super::extract::{AdminCaller, ApiJson, ApiQuery, Caller};
use super::pagination::{id_list, id_page, List, ListQuery, Listed};
use super::users::nullable;
use crate::state::AppState;
use axum::Json;
use conclave_core::service::widget::{NewWidgetKeySettings, WidgetKeyChanges};
use conclave_core::store::widget::{InboxItem, WidgetKey};
use conclave_core::store::{Cursor, Page};
use conclave_core::types::DisplayName;
use conclave_core::widget::{IdentityMode, WidgetOrigin, WidgetStatus};
use conclave_core::{ConversationId, OrgId, TeamId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    use super::credentials::{declare, RouteAccess};
    use conclave_core::credential::Scope;
    declare(
        OpenApiRouter::new()
            .routes(routes!(list_widget_keys, create_widget_key))
            .routes(routes!(update_widget_key, delete_widget_key)),
        RouteAccess::always(Scope::OrgAdmin),
    )
    .merge(declare(
        OpenApiRouter::new().routes(routes!(widget_inbox)),
        RouteAccess::always(Scope::ConversationsRead),
    ))
}

/// The admin route (`/admin/conversations`), merged into the admin group.
pub fn admin_router() -> OpenApiRouter<AppState> {
    use super::credentials::{declare, RouteAccess};
    declare(
        OpenApiRouter::new().routes(routes!(admin_widget_conversations_list)),
        RouteAccess::SESSION,
    )
}

/// A widget key: `key` is publishable (it goes in the page); `identity_secret` is shown only
/// in the answer that created the key, then `****`.
#[derive(Serialize, ToSchema)]
pub struct WidgetKeyView {
    #[serde(flatten)]
    key: WidgetKey,
    /// 64 hex digits, shown once: the host's server signs visitors' user ids with it
    /// (HMAC-SHA256, hex). `****` after.
    identity_secret: String,
}

const MASKED: &str = "****";

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWidgetKey {
    name: DisplayName,
    /// Exact origins of the pages that embed the widget, 1–20.
    #[schema(min_items = 1, max_items = 20)]
    allowed_origins: Vec<WidgetOrigin>,
    /// A team of the org: its members work the inbox.
    #[schema(value_type = String, format = Uuid)]
    team_id: TeamId,
    /// An AI agent of the org that answers first.
    #[schema(value_type = Option<String>, format = Uuid)]
    agent_id: Option<Uuid>,
    /// Default `optional`.
    identity: Option<IdentityMode>,
    /// Ask for a name and an e-mail address before the first message (default false).
    prechat_form: Option<bool>,
}

/// Create a widget key (owners and admins); its identity secret is answered this once.
#[utoipa::path(post, path = "/orgs/{org}/widget-keys", tag = "widget", params(("org" = String, Path, format = Uuid)), request_body = CreateWidgetKey,
    responses((status = 201, body = WidgetKeyView), (status = 404, body = super::error::ErrorBody, description = "The org, or the team or agent named in the body, is not found")))]
async fn create_widget_key(
    me: Caller<OrgId>,
    ApiJson(body): ApiJson<CreateWidgetKey>,
) -> Created<WidgetKeyView> {
    let settings = NewWidgetKeySettings {
        name: body.name,
        allowed_origins: body.allowed_origins,
        team_id: body.team_id,
        agent_id: body.agent_id,
        identity: body.identity.unwrap_or(IdentityMode::Optional),
        prechat_form: body.prechat_form.unwrap_or(false),
    };
    let made = me
        .services()
        .create_widget_key(&me.actor, me.at, settings)
        .await?;
    use secrecy::ExposeSecret;
    created(WidgetKeyView {
        key: made.key,
        identity_secret: made.identity_secret.expose_secret().to_owned(),
    })
}

/// The org's live widget keys (identity secrets masked).
#[utoipa::path(get, path = "/orgs/{org}/widget-keys", tag = "widget", params(("org" = String, Path, format = Uuid)),
    responses((status = 200, body = List<WidgetKeyView>)))]
async fn list_widget_keys(me: Caller<OrgId>) -> Listed<WidgetKeyView> {
    let keys = me.services().widget_keys(&me.actor, me.at).await?;
    Ok(Json(List::all(
        keys.into_iter()
            .map(|key| WidgetKeyView {
                key,
                identity_secret: MASKED.to_owned(),
            })
            .collect(),
    )))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWidgetKey {
    name: Option<DisplayName>,
    #[schema(min_items = 1, max_items = 20)]
    allowed_origins: Option<Vec<WidgetOrigin>>,
    #[schema(value_type = Option<String>, format = Uuid)]
    team_id: Option<TeamId>,
    /// null: no AI agent (new conversations start `open`).
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, format = Uuid)]
    agent_id: Option<Option<Uuid>>,
    identity: Option<IdentityMode>,
    prechat_form: Option<bool>,
}

/// Change a widget key.
#[utoipa::path(patch, path = "/orgs/{org}/widget-keys/{id}", tag = "widget",
    params(("org" = String, Path, format = Uuid), ("id" = String, Path, format = Uuid)), request_body = UpdateWidgetKey,
    responses((status = 200, body = WidgetKeyView), (status = 404, body = super::error::ErrorBody, description = "The key, or the team or agent named in the body, is not found")))]
async fn update_widget_key(
    me: Caller<(OrgId, Uuid)>,
    ApiJson(body): ApiJson<UpdateWidgetKey>,
) -> Answer<WidgetKeyView> {
    let (org, id) = me.at;
    let changes = WidgetKeyChanges {
        name: body.name,
        allowed_origins: body.allowed_origins,
        team_id: body.team_id,
        agent_id: body.agent_id,
        identity: body.identity,
        prechat_form: body.prechat_form,
    };
    let key = me
        .services()
        .update_widget_key(&me.actor, org, id, changes)
        .await?;
    Ok(Json(WidgetKeyView {
        key,
        identity_secret: MASKED.to_owned(),
    }))
}

/// Revoke a widget key: every widget call with it is refused; its conversations stay.
#[utoipa::path(delete, path = "/orgs/{org}/widget-keys/{id}", tag = "widget",
    params(("org" = String, Path, format = Uuid), ("id" = String, Path, format = Uuid)),
    responses((status = 204)))]
async fn delete_widget_key(me: Caller<(OrgId, Uuid)>) -> NoContent {
    let (org, id) = me.at;
    no_content(me.services().delete_widget_key(&me.actor, org, id)).await
}

/// Which widget conversations to list.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InboxParams {
    /// Only conversations with this status.
    status: Option<WidgetStatus>,
    /// Only `widget` (the one source there is).
    #[param(pattern = "^widget$")]
    source: Option<String>,
    /// 1–100, default 50.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// Continue towards older conversations (a `next` of an earlier page).
    #[param(pattern = "^[A-Za-z0-9_-]{21}[AQgw]$")]
    before: Option<String>,
}

/// The page the parameters ask for (newest first; `before` only).
fn inbox_page(q: &InboxParams) -> ApiResult<(Page<ConversationId>, Option<ConversationId>)> {
    if q.source.as_deref().is_some_and(|s| s != "widget") {
        return Err(ApiError::invalid(
            "invalid_value",
            "the only source is `widget`",
            "source",
        ));
    }
    let page = id_page::<ConversationId>(&ListQuery {
        limit: q.limit,
        before: q.before.clone(),
        after: None,
    })?;
    let before = match page.cursor {
        Cursor::Before(c) => Some(c),
        _ => None,
    };
    Ok((page, before))
}

/// The support inbox: the org's widget conversations whose key's team the caller is in (org
/// admins: all), newest first. Members of no such team, viewers and bots are refused.
#[utoipa::path(get, path = "/orgs/{org}/inbox", tag = "widget", params(("org" = String, Path, format = Uuid), InboxParams),
    responses((status = 200, body = List<InboxItem>)))]
async fn widget_inbox(me: Caller<OrgId>, ApiQuery(q): ApiQuery<InboxParams>) -> Listed<InboxItem> {
    let (page, before) = inbox_page(&q)?;
    let items = me
        .services()
        .widget_inbox(&me.actor, me.at, q.status, before, page.limit)
        .await?;
    Ok(Json(id_list(items, &page, |i| {
        i.conversation.conversation_id.0
    })))
}

/// Every widget conversation on the server, newest first (server admins).
#[utoipa::path(get, path = "/admin/conversations", tag = "admin", params(InboxParams),
    responses((status = 200, body = List<InboxItem>)))]
async fn admin_widget_conversations_list(
    a: AdminCaller,
    ApiQuery(q): ApiQuery<InboxParams>,
) -> Listed<InboxItem> {
    let (page, before) = inbox_page(&q)?;
    let items = a
        .services()
        .admin_widget_conversations(&a.admin, q.status, before, page.limit)
        .await?;
    Ok(Json(id_list(items, &page, |i| {
        i.conversation.conversation_id.0
    })))
}
