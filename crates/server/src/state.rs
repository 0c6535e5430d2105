//! Shared state handed to every handler: the services and the request-level settings derived
//! from configuration once at start.

use conclave_core::service::Services;
use ipnet::IpNet;
use std::ops::Deref;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState(Arc<StateInner>);

pub struct StateInner {
    pub services: Services,
    pub public_url: String,
    /// Cookies get `Secure` when the public URL is https.
    pub secure_cookies: bool,
    pub trusted_proxies: Vec<IpNet>,
    /// The forwarding header believed from a trusted proxy (RATE-2).
    pub proxy_header: crate::config::ProxyHeader,
    /// How long a request's body may take to arrive (RATE-5).
    pub body_timeout: std::time::Duration,
    pub min_client_version: Option<semver::Version>,
    pub registration: conclave_core::types::RegistrationMode,
    pub server_version: &'static str,
    pub gateway: Arc<crate::gateway::Gateway>,
    /// Request limits (RATE-1), per node or shared through Redis.
    pub limiter: Arc<crate::ratelimit::RateLimiter>,
    /// The SSRF guard every server-side fetch goes through (HOOK-3), except model endpoints.
    pub outbound: crate::outbound::OutboundGuard,
    /// The SSRF guard for AI agents' model endpoints (AGENT-1), built from the agents'
    /// allowlist only.
    pub agent_outbound: crate::outbound::OutboundGuard,
    /// Agents' time limits and concurrency cap (AGENT-4).
    pub agents: crate::agents::AgentSettings,
    /// Answers streaming at once on this node: one permit each (`agents.max_concurrent`).
    pub agent_slots: Arc<tokio::sync::Semaphore>,
    /// Single sign-on: the host-app JWT verifier (AUTH-11).
    pub sso: Arc<crate::sso::Sso>,
    /// File storage and upload limits (DATA-1, DATA-2).
    pub files: Arc<crate::files::Files>,
}

impl AppState {
    #[must_use]
    pub fn new(inner: StateInner) -> Self {
        Self(Arc::new(inner))
    }
}

impl Deref for AppState {
    type Target = StateInner;
    fn deref(&self) -> &StateInner {
        &self.0
    }
}
