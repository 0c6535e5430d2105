//! `/api-keys`: a signed-in user's API keys (AUTH-7). The key is in the answer to creation and
//! rotation only; lists show it masked (`cnv_k_****abcd`). Bots and keys cannot use these routes.

use super::error::{created, no_content, Answer, Created, ErrorBody, NoContent};
use super::extract::{ApiJson, Caller};
use super::pagination::{all_as, List, Listed};
use crate::state::AppState;
use axum::Json;
use chrono::{DateTime, Utc};
use conclave_core::credential::{Cidr, Scope};
use conclave_core::model::ApiKey;
use conclave_core::service::NewApiKey;
use conclave_core::token::{self, TokenKind};
use conclave_core::types::{KeyTier, Name};
use conclave_core::{ApiKeyId, ConversationId, OrgId};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    use super::credentials::{declare, RouteAccess};
    declare(
        OpenApiRouter::new()
            .routes(routes!(create_api_key, list_api_keys))
            .routes(routes!(delete_api_key))
            .routes(routes!(rotate_api_key)),
        RouteAccess::SESSION,
    )
}

/// An API key: `key` is the key itself in the answer to creation and rotation (shown once),
/// and masked (`cnv_k_****abcd`) everywhere else.
#[derive(Serialize, ToSchema)]
pub struct ApiKeyView {
    #[serde(flatten)]
    api_key: ApiKey,
    key: String,
}

impl ApiKeyView {
    /// `revealed`: the key itself, in the answer that created or rotated it.
    fn new(api_key: ApiKey, revealed: Option<&SecretString>) -> Self {
        let key = token::shown(TokenKind::ApiKey, &api_key.secrets.hint, revealed);
        Self { api_key, key }
    }

    fn masked(api_key: ApiKey) -> Self {
        Self::new(api_key, None)
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    name: Name,
    /// The org the key acts in; the caller must be a member.
    org_id: OrgId,
    /// At least one.
    #[schema(min_items = 1)]
    scopes: Vec<Scope>,
    /// Limits the key to these conversations of the org (1–100).
    #[schema(min_items = 1, max_items = 100)]
    conversation_ids: Option<Vec<ConversationId>>,
    /// Any future time; none: the key does not expire.
    expires_at: Option<DateTime<Utc>>,
    /// CIDR blocks or addresses (1–100); none: any address.
    #[schema(min_items = 1, max_items = 100)]
    allowed_ips: Option<Vec<Cidr>>,
    /// Default `free`; only org owners and admins set another.
    tier: Option<KeyTier>,
}

/// Create an API key acting as me in one of my orgs; the key is shown only here.
#[utoipa::path(post, path = "/api-keys", tag = "api-keys", request_body = CreateApiKey,
    responses((status = 201, body = ApiKeyView), (status = 404, body = ErrorBody)))]
async fn create_api_key(me: Caller, ApiJson(body): ApiJson<CreateApiKey>) -> Created<ApiKeyView> {
    let new = NewApiKey {
        name: body.name,
        org_id: body.org_id,
        scopes: body.scopes,
        conversation_ids: body.conversation_ids,
        expires_at: body.expires_at,
        allowed_ips: body.allowed_ips,
        tier: body.tier.unwrap_or(KeyTier::Free),
    };
    let (api_key, key) = me.services().create_api_key(&me.actor, new).await?;
    created(ApiKeyView::new(api_key, Some(&key)))
}

/// My API keys, masked.
#[utoipa::path(get, path = "/api-keys", tag = "api-keys", responses((status = 200, body = List<ApiKeyView>)))]
async fn list_api_keys(me: Caller) -> Listed<ApiKeyView> {
    all_as(me.services().api_keys(&me.actor), ApiKeyView::masked).await
}

/// Revoke one of my API keys: it fails from the next request on, on every node.
#[utoipa::path(delete, path = "/api-keys/{id}", tag = "api-keys", params(("id" = String, Path, format = Uuid)), responses((status = 204)))]
async fn delete_api_key(me: Caller<ApiKeyId>) -> NoContent {
    no_content(me.services().revoke_api_key(&me.actor, me.at)).await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateApiKey {
    /// How long the old key keeps working: 0–86400 seconds.
    #[schema(minimum = 0, maximum = 86400)]
    grace_seconds: i64,
}

/// Issue a new key for one of my API keys; the old one works until the grace period ends.
#[utoipa::path(post, path = "/api-keys/{id}/rotate", tag = "api-keys", params(("id" = String, Path, format = Uuid)), request_body = RotateApiKey,
    responses((status = 200, body = ApiKeyView), (status = 409, body = ErrorBody)))]
async fn rotate_api_key(
    me: Caller<ApiKeyId>,
    ApiJson(body): ApiJson<RotateApiKey>,
) -> Answer<ApiKeyView> {
    let rotated = me
        .services()
        .rotate_api_key(&me.actor, me.at, body.grace_seconds);
    let (api_key, key) = rotated.await?;
    Ok(Json(ApiKeyView::new(api_key, Some(&key))))
}
