//! Unauthenticated endpoints: health, readiness, capabilities.

use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use conclave_core::audit::AUDIT_ALERT;
use conclave_core::types::{RegistrationMode, MESSAGE_MAX_CHARS};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Largest JSON request body.
pub const BODY_MAX_BYTES: usize = 2 * 1024 * 1024;

pub fn health_router() -> OpenApiRouter<AppState> {
    let probes = OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(ready));
    super::credentials::declare(probes, super::credentials::RouteAccess::PUBLIC)
}

pub fn api_router() -> OpenApiRouter<AppState> {
    let capabilities = OpenApiRouter::new().routes(routes!(capabilities));
    super::credentials::declare(capabilities, super::credentials::RouteAccess::PUBLIC)
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    status: &'static str,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/health", tag = "meta", responses((status = 200, body = Health)))]
async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// What readiness checked: each check's status (`ok`, or what is wrong).
#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    status: &'static str,
    /// `database`, `fanout` (the event transport: in-process, or NATS in cluster mode) and
    /// `files` (the object store): `ok` or `unreachable`; `audit`: `ok`, or `chain_mismatch`
    /// after the retention job found audit rows that do not verify (DATA-5) until an admin's
    /// verification comes back clean.
    #[schema(value_type = Object)]
    checks: std::collections::BTreeMap<String, String>,
}

/// Readiness (CORE-7): the database, the fan-out and the object store answer and no alert is
/// raised (e.g. an audit chain that did not verify before pruning). 503 with the failing
/// checks otherwise.
#[utoipa::path(get, path = "/health/ready", tag = "meta", responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let mut checks = std::collections::BTreeMap::new();
    let alerts = match state.services.alerts().await {
        Ok(alerts) => {
            checks.insert("database".to_owned(), "ok".to_owned());
            alerts
        }
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            checks.insert("database".to_owned(), "unreachable".to_owned());
            Vec::new()
        }
    };
    let (fanout, files) = tokio::join!(state.gateway.fanout.ready(), state.files.reachable());
    for (name, up) in [("fanout", fanout), ("files", files)] {
        let status = if up { "ok" } else { "unreachable" };
        checks.insert(name.to_owned(), status.to_owned());
    }
    checks.insert(AUDIT_ALERT.to_owned(), "ok".to_owned());
    for (name, status) in alerts {
        checks.insert(name, status);
    }
    let ready = checks.values().all(|v| v == "ok");
    let (code, status) = if ready {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not_ready")
    };
    (code, Json(Readiness { status, checks }))
}

#[derive(Serialize, ToSchema)]
pub struct GatewayInfo {
    url: String,
    protocol_versions: Vec<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct Features {
    gateway: bool,
    two_factor: bool,
    api_keys: bool,
    bots: bool,
    webhooks: bool,
    files: bool,
    search: bool,
    /// `POST /mcp`: Conclave as an MCP server for outside AI agents (MCP-1).
    mcp: bool,
    sso: bool,
    widget: bool,
    audit_log: bool,
}

#[derive(Serialize, ToSchema)]
pub struct AuthInfo {
    schemes: Vec<&'static str>,
    /// AUTH-9: every other REST request and every sign-in must carry `X-API-Access-Token`, and
    /// gateway IDENTIFY and RESUME an `access_token`.
    access_token_gate: bool,
    registration: RegistrationMode,
    /// Single sign-on providers the sign-in page offers (AUTH-10): `kind` `oidc` signs in at
    /// `GET /api/v1/auth/oidc/{id}/start`.
    providers: Vec<AuthProvider>,
}

/// A single sign-on provider.
#[derive(Serialize, ToSchema)]
pub struct AuthProvider {
    id: String,
    /// Shown as "Sign in with {name}".
    name: String,
    /// `oidc`.
    kind: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct Limits {
    message_max_chars: usize,
    upload_max_bytes: u64,
    frame_max_bytes: u64,
    request_body_max_bytes: usize,
}

#[derive(Serialize, ToSchema)]
pub struct Capabilities {
    server_version: &'static str,
    api_version: &'static str,
    gateway: GatewayInfo,
    min_client_version: Option<String>,
    features: Features,
    auth: AuthInfo,
    limits: Limits,
}

/// What this server offers: versions, features, auth methods and limits.
#[utoipa::path(get, path = "/capabilities", tag = "meta", responses((status = 200, body = Capabilities)))]
async fn capabilities(State(state): State<AppState>) -> Json<Capabilities> {
    let ws = state.public_url.replacen("http", "ws", 1);
    let providers: Vec<AuthProvider> = state
        .sso
        .oidc
        .providers()
        .map(|p| AuthProvider {
            id: p.settings.id.clone(),
            name: p.settings.name.clone(),
            kind: "oidc",
        })
        .collect();
    Json(Capabilities {
        server_version: state.server_version,
        api_version: "v1",
        gateway: GatewayInfo {
            url: format!("{ws}/gateway"),
            protocol_versions: vec![1],
        },
        min_client_version: state.min_client_version.as_ref().map(ToString::to_string),
        features: Features {
            gateway: true,
            two_factor: true,
            api_keys: true,
            bots: true,
            webhooks: true,
            files: true,
            search: true,
            sso: !state.sso.host_jwt.is_empty()
                || !providers.is_empty()
                || state.sso.ldap.is_some(),
            mcp: true,
            widget: true,
            audit_log: true,
        },
        auth: AuthInfo {
            schemes: vec!["bearer", "bot", "cookie"],
            access_token_gate: state.services.access_gate_on(),
            registration: state.registration,
            providers,
        },
        limits: Limits {
            message_max_chars: MESSAGE_MAX_CHARS,
            upload_max_bytes: state.files.config.max_upload_bytes,
            frame_max_bytes: state.gateway.config.frame_max_bytes as u64,
            request_body_max_bytes: BODY_MAX_BYTES,
        },
    })
}
