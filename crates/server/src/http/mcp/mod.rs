//! MCP-1, MCP-2: `POST /mcp`, Conclave as a Model Context Protocol server for outside AI
//! agents, on the official Rust SDK (`rmcp`) over Streamable HTTP, stateless.
//!
//! One request, in order: the `Host` header must name this server (its public URL, or a
//! loopback name) and an `Origin`, when a browser sent one, must be an origin the gateway
//! accepts (DNS rebinding, cross-site pages: 403 before any credential is read); the
//! access-token gate (AUTH-9); the credential, read by `Services::identify` like every other
//! surface's and then held to `policy::credentials::mcp_accepts` — a login session, a cookie
//! or a bot token is refused like a missing credential, 401 with
//! `WWW-Authenticate: Bearer resource_metadata=…` (RFC 9728); the caller's REST rate limits.
//! Only then does rmcp read the body (at most [`BODY_MAX_BYTES`], 413 over) and answer the
//! JSON-RPC message with a server instance made for this request alone ([`server`]), holding
//! this request's `Actor`: no protocol session exists, nothing is shared between callers, and
//! each request is authorised on its own credential. `GET` (a server-to-client stream) and
//! `DELETE` (ending a session) answer 405, credential or not: there are no streams and no
//! sessions.

mod results;
pub mod server;
mod tools;

use super::credentials::{access_granted, rate_subject};
use super::error::ApiError;
use super::extract::{authorization, request_meta};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use conclave_core::credential::Surface;
use conclave_core::policy::credentials::mcp_accepts;
use conclave_core::service::identity::{Presented, Shown};
use conclave_core::service::Actor;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use std::sync::Arc;

/// The largest JSON-RPC message `/mcp` reads (413 over it).
pub const BODY_MAX_BYTES: usize = 1024 * 1024;

/// Host names that always reach this server: a page on another site cannot make a browser
/// send them (DNS rebinding points the attacker's own name at an address; `Host` stays that
/// name), and a local client or proxy uses them.
const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// What `/mcp` checks before it reads a credential, and the transport settings: built once
/// from the public URL, with the router.
pub struct McpEndpoint {
    /// The public URL's host (lowercase, IPv6 without brackets) and port (the scheme's default
    /// when the URL names none).
    public_host: String,
    public_port: u16,
    /// The port a `Host` without one means: the public URL's scheme's default.
    default_port: u16,
    /// The public URL without a trailing slash, for the resource metadata address.
    public_url: String,
    transport: StreamableHttpServerConfig,
}

/// A host as compared: lowercase, without IPv6 brackets or a trailing dot.
fn normalize_host(host: &str) -> String {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

impl McpEndpoint {
    /// From the server's public URL (already checked to be http(s) by the configuration).
    #[must_use]
    pub fn new(public_url: &str) -> Self {
        let parsed = url::Url::parse(public_url).ok();
        let public_host = (parsed.as_ref())
            .and_then(|u| u.host_str())
            .map(normalize_host)
            .unwrap_or_default();
        let public_port = (parsed.as_ref())
            .and_then(url::Url::port_or_known_default)
            .unwrap_or(80);
        let default_port = match parsed.as_ref().map(url::Url::scheme) {
            Some("https") => 443,
            _ => 80,
        };
        // rmcp checks `Host` again (a second line, should a route ever reach it unchecked):
        // the same names, each at any port — ours pins the public host's port itself.
        let mut hosts: Vec<String> = LOOPBACK_HOSTS.iter().map(|h| (*h).to_owned()).collect();
        if !public_host.is_empty() {
            hosts.push(public_host.clone());
        }
        let transport = StreamableHttpServerConfig::default()
            .with_legacy_session_mode(false)
            .with_json_response(true)
            .with_sse_keep_alive(None)
            .with_sse_retry(None)
            .with_allowed_hosts(hosts)
            .with_max_request_body_bytes(BODY_MAX_BYTES);
        Self {
            public_host,
            public_port,
            default_port,
            public_url: public_url.trim_end_matches('/').to_owned(),
            transport,
        }
    }

    /// DNS-rebinding defence (MCP-1): whether `Host` names this server — its public host at
    /// its public port (a `Host` without a port means the scheme's default), or a loopback
    /// name.
    #[must_use]
    pub fn host_allowed(&self, host: Option<&HeaderValue>) -> bool {
        let Some(authority) = host
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.parse::<http::uri::Authority>().ok())
        else {
            return false;
        };
        let name = normalize_host(authority.host());
        if LOOPBACK_HOSTS.contains(&name.as_str()) {
            return true;
        }
        name == self.public_host
            && authority.port_u16().unwrap_or(self.default_port) == self.public_port
    }

    /// Where the protected-resource metadata is (RFC 9728), named in every 401.
    #[must_use]
    pub fn resource_metadata_url(&self) -> String {
        format!("{}/.well-known/oauth-protected-resource", self.public_url)
    }
}

/// A 401 that tells an MCP client where to learn how to get a credential (MCP-2, RFC 9728
/// and RFC 6750 §3: `error="invalid_token"` when a credential was shown and refused).
fn challenge(endpoint: &McpEndpoint, error: ApiError, shown: bool) -> Response {
    let mut value = format!(
        "Bearer resource_metadata=\"{}\"",
        endpoint.resource_metadata_url()
    );
    if shown {
        value.push_str(", error=\"invalid_token\"");
    }
    let mut res = error.into_response();
    if res.status() == StatusCode::UNAUTHORIZED {
        if let Ok(v) = HeaderValue::from_str(&value) {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
    }
    res
}

/// Everything before the message is read: host and origin, the access-token gate, the
/// credential and the caller's rate limits. The answer is who is asking, or the refusal.
async fn admit(
    parts: &mut Parts,
    state: &AppState,
    endpoint: &McpEndpoint,
) -> Result<Actor, Response> {
    if !endpoint.host_allowed(parts.headers.get(header::HOST)) {
        tracing::warn!("MCP request with a Host header that is not this server's (DNS rebinding?)");
        let e = ApiError::forbidden(
            "host_not_allowed",
            "the Host header does not name this server",
        );
        return Err(e.into_response());
    }
    if let Some(origin) = parts.headers.get(header::ORIGIN) {
        let allowed = origin
            .to_str()
            .is_ok_and(|o| state.gateway.origin_allowed(o));
        if !allowed {
            let e = ApiError::forbidden(
                "origin_not_allowed",
                "requests from this origin are refused",
            );
            return Err(e.into_response());
        }
    }
    // No streams and no sessions to end: only POST, whoever asks.
    if parts.method != Method::POST {
        let e = ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this stateless MCP endpoint takes POST only",
        );
        let mut res = e.into_response();
        res.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return Err(res);
    }
    let access = access_granted(parts, state).map_err(|e| challenge(endpoint, e, false))?;
    // Only `Authorization`: a browser's cookie is never read here, so no page can make an
    // agent call with someone's session.
    let value = authorization(&parts.headers).map_err(|e| challenge(endpoint, e, true))?;
    let Some(value) = value else {
        let e = ApiError::unauthorized(
            "unauthenticated",
            "an API key is required (Authorization: Bearer cnv_k_…)",
        );
        return Err(challenge(endpoint, e, false));
    };
    let mut meta = request_meta(parts, state);
    meta.surface = Surface::Mcp;
    let presented = Presented {
        credential: Shown::Authorization(value),
        ip: super::client_ip::of_request(parts, state),
        meta,
        before_2fa: false,
    };
    let actor = (state.services.identify(&access, presented).await)
        .map_err(|e| challenge(endpoint, e.into(), true))?;
    if !mcp_accepts(&actor.credential) {
        let e = ApiError::unauthorized(
            "invalid_token",
            "this endpoint takes an API key, not a session or bot token",
        );
        return Err(challenge(endpoint, e, true));
    }
    super::limits::check_caller(parts, state, rate_subject(&actor))
        .await
        .map_err(IntoResponse::into_response)?;
    Ok(actor)
}

/// `/mcp`: `POST` for every JSON-RPC message; other methods 405.
pub async fn serve(
    State(state): State<AppState>,
    Extension(endpoint): Extension<Arc<McpEndpoint>>,
    req: Request,
) -> Response {
    let (mut parts, body) = req.into_parts();
    let actor = match admit(&mut parts, &state, &endpoint).await {
        Ok(actor) => actor,
        Err(res) => return res,
    };
    let instance_state = state.clone();
    let transport = StreamableHttpService::new(
        move || {
            Ok(server::ConclaveMcp::new(
                instance_state.clone(),
                actor.clone(),
            ))
        },
        Arc::new(NeverSessionManager::default()),
        endpoint.transport.clone(),
    );
    let res = transport
        .handle(axum::http::Request::from_parts(parts, body))
        .await;
    res.map(Body::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(endpoint: &McpEndpoint, host: &str) -> bool {
        endpoint.host_allowed(Some(&HeaderValue::from_str(host).unwrap()))
    }

    #[test]
    fn hosts_are_the_public_one_at_its_port_or_loopback_names() {
        let e = McpEndpoint::new("https://Chat.Example/");
        assert!(allowed(&e, "chat.example"));
        assert!(allowed(&e, "CHAT.example:443"));
        assert!(!allowed(&e, "chat.example:8443"));
        assert!(!allowed(&e, "evil.example"));
        assert!(!allowed(&e, "chat.example.evil.example"));
        assert!(allowed(&e, "localhost:8080"));
        assert!(allowed(&e, "127.0.0.1:3000"));
        assert!(allowed(&e, "[::1]:3000"));
        assert!(!allowed(&e, "127.0.0.2"));
        assert!(!allowed(&e, "not a host"));
        assert!(!e.host_allowed(None));
        let e = McpEndpoint::new("http://10.0.0.5:8080");
        assert!(allowed(&e, "10.0.0.5:8080"));
        assert!(!allowed(&e, "10.0.0.5"), "port 80 is not the public port");
        assert_eq!(
            e.resource_metadata_url(),
            "http://10.0.0.5:8080/.well-known/oauth-protected-resource"
        );
    }
}
