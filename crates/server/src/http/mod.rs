//! The REST surface: one module per resource, our extractors and error type, and the layers
//! around them. Handlers only translate HTTP to service calls and back.

pub mod admin;
pub mod agents;
pub mod api_keys;
pub mod audit;
pub mod auth;
pub mod bots;
pub mod client_ip;
pub mod conversations;
pub mod credentials;
pub mod error;
pub mod extract;
pub mod files;
pub mod gateway;
pub mod guards;
pub mod impersonation;
pub mod limits;
pub mod mcp;
pub mod messages;
pub mod meta;
pub mod middleware;
pub mod oauth;
pub mod oauth_api;
pub mod openapi;
pub mod orgs;
pub mod pagination;
pub mod privacy;
pub mod search;
pub mod sso;
pub mod users;
pub mod web;
pub mod webhooks;
pub mod widget;
pub mod widget_keys;

use crate::state::AppState;
use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use error::ApiError;
use std::sync::Arc;
use tower::ServiceBuilder;
use tower_http::cors::{AllowOrigin, CorsLayer};
use utoipa_axum::router::OpenApiRouter;

/// The REST API and the probes, and the OpenAPI document generated from them: each route
/// group declares what it asks of its caller (`credentials::declare`), and the document says it.
pub fn api() -> (Router<AppState>, Arc<serde_json::Value>) {
    let api = OpenApiRouter::new()
        .merge(auth::router())
        .merge(sso::router())
        .merge(users::router())
        .merge(orgs::router())
        .merge(bots::router())
        .merge(webhooks::router())
        .merge(guards::router())
        .merge(agents::router())
        .merge(api_keys::router())
        .merge(oauth_api::router())
        .merge(conversations::router())
        .merge(messages::router())
        .merge(search::router())
        .merge(files::router())
        .merge(admin::router())
        .merge(audit::router())
        .merge(privacy::router())
        .merge(widget_keys::router())
        .merge(widget_keys::admin_router())
        .merge(widget::router())
        .merge(meta::api_router());
    let (api_router, mut doc) = OpenApiRouter::with_openapi(openapi::base())
        .nest("/api/v1", api)
        .split_for_parts();
    let (health_router, health_doc) = meta::health_router().split_for_parts();
    doc.merge(health_doc);
    (api_router.merge(health_router), openapi::finish(doc))
}

/// Builds the whole application router and the OpenAPI document generated from it.
pub fn router(state: AppState, cors_origins: &[String]) -> Router {
    let (api_router, doc) = api();
    let app = Router::new()
        .merge(api_router)
        .route(
            "/api/v1/openapi.json",
            axum::routing::get(move || openapi::serve(doc.clone())),
        )
        .route("/gateway", axum::routing::get(gateway::upgrade))
        .route(
            "/mcp",
            axum::routing::any(mcp::serve).layer(axum::Extension(Arc::new(mcp::McpEndpoint::new(
                &state.public_url,
            )))),
        )
        .route("/media/{id}", axum::routing::get(files::media))
        .merge(oauth::router())
        .merge(web::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state.clone());

    app.layer(
        ServiceBuilder::new()
            .layer(axum::middleware::from_fn(middleware::request_id))
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                middleware::security_headers,
            ))
            .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
                ApiError::internal().into_response()
            }))
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                widget::gate,
            ))
            .layer(cors(cors_origins))
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                limits::limit_requests,
            ))
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                credentials::access_gate,
            ))
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                limits::body_deadline,
            ))
            .layer(axum::middleware::from_fn_with_state(
                state,
                middleware::client_version,
            ))
            .layer(DefaultBodyLimit::max(meta::BODY_MAX_BYTES)),
    )
}

/// WEB-1: only allowlisted origins get CORS headers, with credentials; `*` (development only)
/// allows any origin without credentials. The support widget's routes are never covered:
/// they answer only their key's origins (`widget::gate`).
fn cors(origins: &[String]) -> CorsLayer {
    let base = CorsLayer::new()
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("x-csrf-token"),
            HeaderName::from_static("x-client-version"),
            HeaderName::from_static("x-api-access-token"),
            HeaderName::from_static("x-request-id"),
        ])
        .expose_headers([
            HeaderName::from_static("x-request-id"),
            header::RETRY_AFTER,
            HeaderName::from_static("ratelimit-limit"),
            HeaderName::from_static("ratelimit-remaining"),
            HeaderName::from_static("ratelimit-reset"),
        ]);
    if origins.iter().any(|o| o == "*") {
        return base.allow_origin(AllowOrigin::predicate(|_, parts| {
            !credentials::is_widget_path(parts.uri.path())
        }));
    }
    let list: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok())
        .collect();
    base.allow_origin(AllowOrigin::predicate(move |origin, parts| {
        !credentials::is_widget_path(parts.uri.path()) && list.contains(origin)
    }))
    .allow_credentials(true)
}

async fn not_found() -> Response {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route").into_response()
}

async fn method_not_allowed() -> Response {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not accept that method",
    )
    .into_response()
}
