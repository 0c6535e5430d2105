//! The REST side of Conclave's OAuth server (MCP-2): the consent page's
//! `/oauth/requests/{id}` (browser sessions only), a user's grants (`/users/@me/grants`), and
//! an org's clients and grants for its owners and admins (`/orgs/{org}/oauth-clients`,
//! `/orgs/{org}/grants`). The protocol endpoints themselves are `oauth`.

use super::error::{created, no_content, Answer, Created, ErrorBody, NoContent};
use super::extract::{ApiJson, Caller};
use super::pagination::{all, all_as, List, Listed};
use crate::state::AppState;
use axum::Json;
use conclave_core::oauth::{Grant, OAuthClient, RedirectUri};
use conclave_core::service::{ConsentView, NewOAuthClient};
use conclave_core::token::{self, TokenKind};
use conclave_core::types::Name;
use conclave_core::{GrantId, OAuthClientId, OAuthRequestId, OrgId};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    use super::credentials::{declare, RouteAccess};
    use conclave_core::credential::Scope;
    let own = declare(
        OpenApiRouter::new()
            .routes(routes!(consent_request, decide_consent))
            .routes(routes!(my_grants))
            .routes(routes!(revoke_my_grant)),
        RouteAccess::SESSION,
    );
    let org = declare(
        OpenApiRouter::new()
            .routes(routes!(list_clients, create_client))
            .routes(routes!(delete_client))
            .routes(routes!(org_grants))
            .routes(routes!(revoke_org_grant)),
        RouteAccess::always(Scope::OrgAdmin),
    );
    own.merge(org)
}

/// What the consent page shows for a pending authorization (the web client's session only).
#[utoipa::path(get, path = "/oauth/requests/{id}", tag = "oauth", params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = ConsentView), (status = 403, body = ErrorBody)))]
async fn consent_request(me: Caller<OAuthRequestId>) -> Answer<ConsentView> {
    Ok(Json(me.services().consent_view(&me.actor, me.at).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentDecision {
    /// Whether the user grants the client access.
    approve: bool,
    /// The org granted (one of the user's); required to approve.
    org_id: Option<OrgId>,
}

#[derive(Serialize, ToSchema)]
pub struct ConsentAnswer {
    /// Where the browser goes next: the client's redirect URI with the code (or the refusal).
    redirect_to: String,
}

/// Approve or deny a pending authorization (once; browser sessions only, with the CSRF token).
#[utoipa::path(post, path = "/oauth/requests/{id}", tag = "oauth", params(("id" = String, Path, format = Uuid)),
    request_body = ConsentDecision,
    responses((status = 200, body = ConsentAnswer), (status = 403, body = ErrorBody)))]
async fn decide_consent(
    me: Caller<OAuthRequestId>,
    ApiJson(body): ApiJson<ConsentDecision>,
) -> Answer<ConsentAnswer> {
    let decided = me
        .services()
        .decide_consent(&me.actor, me.at, body.approve, body.org_id);
    Ok(Json(ConsentAnswer {
        redirect_to: decided.await?,
    }))
}

/// My live OAuth grants: each MCP client I let act for me, in which org, with which scopes.
#[utoipa::path(get, path = "/users/@me/grants", tag = "oauth", responses((status = 200, body = List<Grant>)))]
async fn my_grants(me: Caller) -> Listed<Grant> {
    all(me.services().my_grants(&me.actor)).await
}

/// Revoke one of my grants: its tokens stop working at once.
#[utoipa::path(delete, path = "/users/@me/grants/{id}", tag = "oauth", params(("id" = String, Path, format = Uuid)), responses((status = 204)))]
async fn revoke_my_grant(me: Caller<GrantId>) -> NoContent {
    no_content(me.services().revoke_my_grant(&me.actor, me.at)).await
}

/// A registered OAuth client: `client_secret` only in the answer that created a confidential
/// client (shown once).
#[derive(Serialize, ToSchema)]
pub struct OAuthClientView {
    #[serde(flatten)]
    client: OAuthClient,
    /// The id the client presents.
    client_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<String>,
    /// The secret masked (`cnv_ocs_****abcd`), for confidential clients.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_hint: Option<String>,
}

impl OAuthClientView {
    fn new(client: OAuthClient, secret: Option<&SecretString>) -> Self {
        let secret_hint =
            (client.secret_hint.as_deref()).map(|h| token::masked(TokenKind::OAuthClientSecret, h));
        Self {
            client_id: client.id.to_string(),
            client_secret: secret.map(|s| s.expose_secret().to_owned()),
            secret_hint,
            client,
        }
    }

    fn masked(client: OAuthClient) -> Self {
        Self::new(client, None)
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOAuthClient {
    name: Name,
    /// 1–10 redirect URIs, matched as exact strings: https, http to a loopback address, or
    /// an app's own scheme; no fragment.
    #[schema(min_items = 1, max_items = 10)]
    redirect_uris: Vec<RedirectUri>,
    /// Public clients (PKCE alone) get no secret; confidential ones get one, shown once.
    public: bool,
}

/// Register an OAuth client for MCP access to the org (owners and admins).
#[utoipa::path(post, path = "/orgs/{org}/oauth-clients", tag = "oauth", params(("org" = String, Path, format = Uuid)),
    request_body = CreateOAuthClient, responses((status = 201, body = OAuthClientView)))]
async fn create_client(
    me: Caller<OrgId>,
    ApiJson(body): ApiJson<CreateOAuthClient>,
) -> Created<OAuthClientView> {
    let new = NewOAuthClient {
        name: body.name,
        redirect_uris: (body.redirect_uris.into_iter())
            .map(RedirectUri::into_inner)
            .collect(),
        public: body.public,
    };
    let (client, secret) = me
        .services()
        .create_oauth_client(&me.actor, me.at, new)
        .await?;
    created(OAuthClientView::new(client, secret.as_ref()))
}

/// The org's registered OAuth clients (secrets masked).
#[utoipa::path(get, path = "/orgs/{org}/oauth-clients", tag = "oauth", params(("org" = String, Path, format = Uuid)),
    responses((status = 200, body = List<OAuthClientView>)))]
async fn list_clients(me: Caller<OrgId>) -> Listed<OAuthClientView> {
    all_as(
        me.services().oauth_clients(&me.actor, me.at),
        OAuthClientView::masked,
    )
    .await
}

/// Delete a client: its grants and every token they hold go with it.
#[utoipa::path(delete, path = "/orgs/{org}/oauth-clients/{id}", tag = "oauth",
    params(("org" = String, Path, format = Uuid), ("id" = String, Path, format = Uuid)), responses((status = 204)))]
async fn delete_client(me: Caller<(OrgId, OAuthClientId)>) -> NoContent {
    let (org, id) = me.at;
    no_content(me.services().delete_oauth_client(&me.actor, org, id)).await
}

/// The org's live OAuth grants (owners and admins).
#[utoipa::path(get, path = "/orgs/{org}/grants", tag = "oauth", params(("org" = String, Path, format = Uuid)),
    responses((status = 200, body = List<Grant>)))]
async fn org_grants(me: Caller<OrgId>) -> Listed<Grant> {
    all(me.services().org_grants(&me.actor, me.at)).await
}

/// Revoke a grant made for the org: its tokens stop working at once.
#[utoipa::path(delete, path = "/orgs/{org}/grants/{id}", tag = "oauth",
    params(("org" = String, Path, format = Uuid), ("id" = String, Path, format = Uuid)), responses((status = 204)))]
async fn revoke_org_grant(me: Caller<(OrgId, GrantId)>) -> NoContent {
    let (org, id) = me.at;
    no_content(me.services().revoke_org_grant(&me.actor, org, id)).await
}
