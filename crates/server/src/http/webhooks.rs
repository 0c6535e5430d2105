//! `/orgs/{org}/webhooks`: an org's outgoing webhooks (HOOK-1..3), managed by its owners and
//! admins and by keys with `webhooks:admin`. A URL passes the SSRF guard here, before it is
//! stored (422 `url_not_allowed`), and again at every delivery. The secret (`whsec_…`) is in the
//! answer to creation and rotation only; everywhere else it is masked (`whsec_****abcd`).

use super::error::{
    created, no_content, Answer, ApiError, ApiResult, Created, ErrorBody, NoContent,
};
use super::extract::{ApiJson, ApiQuery, Caller};
use super::pagination::{all_as, id_list, id_page, List, ListQuery, Listed, Paging};
use crate::state::AppState;
use axum::http::StatusCode;
use axum::Json;
use conclave_core::policy::OrgAction;
use conclave_core::service::webhooks::masked_secret;
use conclave_core::store::webhooks::{Webhook, WebhookDelivery, WebhookPatch};
use conclave_core::store::Cursor;
use conclave_core::{ConversationId, OrgId};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    use super::credentials::{declare, RouteAccess};
    use conclave_core::credential::Scope;
    declare(
        OpenApiRouter::new()
            .routes(routes!(list_webhooks, create_webhook))
            .routes(routes!(update_webhook, delete_webhook))
            .routes(routes!(rotate_webhook_secret))
            .routes(routes!(test_webhook))
            .routes(routes!(list_deliveries))
            .routes(routes!(redeliver)),
        RouteAccess::always(Scope::WebhooksAdmin),
    )
}

/// A webhook endpoint: `secret` is the secret itself in the answer to creation and rotation
/// (shown once), and masked (`whsec_****abcd`) everywhere else.
#[derive(Serialize, ToSchema)]
pub struct WebhookView {
    #[serde(flatten)]
    hook: Webhook,
    secret: String,
}

impl WebhookView {
    fn masked(hook: Webhook) -> Self {
        let secret = masked_secret(&hook.secret_hint);
        Self { hook, secret }
    }

    fn revealed(hook: Webhook, secret: &SecretString) -> Self {
        Self {
            hook,
            secret: secret.expose_secret().to_owned(),
        }
    }
}

/// Puts `url` through the SSRF guard (lookup included): 422 `url_not_allowed` naming the rule;
/// only for a caller who may manage the org's webhooks (the verdict says things about names).
async fn checked_url<P: Sync>(me: &Caller<P>, org: OrgId, url: &str) -> ApiResult<String> {
    me.services()
        .authorize_org_change(&me.actor, org, OrgAction::ManageWebhooks)
        .await?;
    let checked = me.state().outbound.check(url).await;
    checked
        .map(|u| u.to_string())
        .map_err(|e| ApiError::url_not_allowed(&e, "webhooks", "url"))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// `http`/`https`, no credentials or fragment, on an allowed port, to a public address.
    #[schema(max_length = 2048)]
    url: String,
    /// Event names: `message.created|updated|deleted`, `conversation.created|updated|deleted`,
    /// `participant.added|removed`, `member.added|removed|role_changed`.
    events: Vec<String>,
    /// Only this conversation's events (a conversation of the org).
    conversation_id: Option<ConversationId>,
}

/// Create a webhook; its secret is shown only here.
#[utoipa::path(post, path = "/orgs/{org}/webhooks", tag = "webhooks", params(("org" = String, Path, format = Uuid)), request_body = CreateWebhook,
    responses((status = 201, body = WebhookView)))]
async fn create_webhook(
    me: Caller<OrgId>,
    ApiJson(body): ApiJson<CreateWebhook>,
) -> Created<WebhookView> {
    let url = checked_url(&me, me.at, &body.url).await?;
    let made =
        me.services()
            .create_webhook(&me.actor, me.at, url, &body.events, body.conversation_id);
    let (hook, secret) = made.await?;
    created(WebhookView::revealed(hook, &secret))
}

/// The org's webhooks, secrets masked.
#[utoipa::path(get, path = "/orgs/{org}/webhooks", tag = "webhooks", params(("org" = String, Path, format = Uuid)),
    responses((status = 200, body = List<WebhookView>)))]
async fn list_webhooks(me: Caller<OrgId>) -> Listed<WebhookView> {
    all_as(
        me.services().webhooks(&me.actor, me.at),
        WebhookView::masked,
    )
    .await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhook {
    #[schema(max_length = 2048)]
    url: Option<String>,
    events: Option<Vec<String>>,
    /// `true` re-enables an endpoint (also one disabled after failures) and clears its failure
    /// count.
    enabled: Option<bool>,
}

/// Change a webhook's URL, events or enabled state.
#[utoipa::path(patch, path = "/orgs/{org}/webhooks/{id}", tag = "webhooks",
    params(("org" = String, Path, format = Uuid), ("id" = String, Path, format = Uuid)), request_body = UpdateWebhook,
    responses((status = 200, body = WebhookView)))]
async fn update_webhook(
    me: Caller<(OrgId, Uuid)>,
    ApiJson(body): ApiJson<UpdateWebhook>,
) -> Answer<WebhookView> {
    let (org, id) = me.at;
    let url = match &body.url {
        Some(u) => Some(checked_url(&me, org, u).await?),
        None => None,
    };
    let patch = WebhookPatch {
        url,
        events: body.events,
        enabled: body.enabled,
    };
    let hook = me
        .services()
        .update_webhook(&me.actor, org, id, patch)
        .await?;
    Ok(Json(WebhookView::masked(hook)))
}

/// Delete a webhook and its delivery log.
#[utoipa::path(delete, path = "/orgs/{org}/webhooks/{id}", tag = "webhooks",
    params(("org" = String, Path, format = Uuid), ("id" = String, Path, format = Uuid)), responses((status = 204)))]
async fn delete_webhook(me: Caller<(OrgId, Uuid)>) -> NoContent {
    let (org, id) = me.at;
    no_content(me.services().delete_webhook(&me.actor, org, id)).await
}

/// A new secret, shown only here; the replaced one keeps signing for 24 hours (deliveries
/// carry both signatures meanwhile).
#[utoipa::path(post, path = "/orgs/{org}/webhooks/{id}/secret", tag = "webhooks",
    params(("org" = String, Path, format = Uuid), ("id" = String, Path, format = Uuid)), responses((status = 200, body = WebhookView)))]
async fn rotate_webhook_secret(me: Caller<(OrgId, Uuid)>) -> Answer<WebhookView> {
    let (org, id) = me.at;
    let (hook, secret) = me
        .services()
        .rotate_webhook_secret(&me.actor, org, id)
        .await?;
    Ok(Json(WebhookView::revealed(hook, &secret)))
}

/// Queue a `webhook.test` event for the endpoint now; answers the queued delivery.
#[utoipa::path(post, path = "/orgs/{org}/webhooks/{id}/test", tag = "webhooks",
    params(("org" = String, Path, format = Uuid), ("id" = String, Path, format = Uuid)),
    responses((status = 202, body = WebhookDelivery), (status = 409, body = ErrorBody)))]
async fn test_webhook(me: Caller<(OrgId, Uuid)>) -> ApiResult<(StatusCode, Json<WebhookDelivery>)> {
    let (org, id) = me.at;
    accepted(me.services().test_webhook(&me.actor, org, id)).await
}

/// The endpoint's deliveries, newest first: status, attempts, latency, last error.
#[utoipa::path(get, path = "/orgs/{org}/webhooks/{id}/deliveries", tag = "webhooks",
    params(("org" = String, Path, format = Uuid), ("id" = String, Path, format = Uuid), ListQuery),
    responses((status = 200, body = List<WebhookDelivery>)))]
async fn list_deliveries(
    me: Caller<(OrgId, Uuid)>,
    ApiQuery(q): Paging,
) -> Listed<WebhookDelivery> {
    let (org, id) = me.at;
    let page = id_page::<Uuid>(&q)?;
    let before = match page.cursor {
        Cursor::Latest => None,
        Cursor::Before(b) => Some(b),
        Cursor::After(_) => {
            return Err(ApiError::invalid(
                "unsupported_parameter",
                "deliveries are listed newest first; page with `before`",
                "after",
            ))
        }
    };
    let limit = i64::from(page.limit.get());
    let items = me
        .services()
        .webhook_deliveries(&me.actor, org, id, before, limit);
    Ok(Json(id_list(items.await?, &page, |d| d.id)))
}

/// Queue a delivery's body again, as a new delivery (a new `webhook-id`).
#[utoipa::path(post, path = "/orgs/{org}/webhooks/{id}/deliveries/{delivery}/redeliver", tag = "webhooks",
    params(("org" = String, Path, format = Uuid), ("id" = String, Path, format = Uuid), ("delivery" = String, Path, format = Uuid)),
    responses((status = 202, body = WebhookDelivery)))]
async fn redeliver(
    me: Caller<(OrgId, Uuid, Uuid)>,
) -> ApiResult<(StatusCode, Json<WebhookDelivery>)> {
    let (org, id, delivery) = me.at;
    accepted(
        me.services()
            .redeliver_webhook(&me.actor, org, id, delivery),
    )
    .await
}

/// Answers 202 with the delivery `queueing` queued.
async fn accepted(
    queueing: impl std::future::Future<Output = Result<WebhookDelivery, conclave_core::ServiceError>>,
) -> ApiResult<(StatusCode, Json<WebhookDelivery>)> {
    Ok((StatusCode::ACCEPTED, Json(queueing.await?)))
}
