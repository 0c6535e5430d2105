//! AI agents as participants (AGENT-1..6). This module owns the pieces that talk to model
//! endpoints: the Chat Completions client (`provider`, over its own SSRF guard) and its
//! Server-Sent Events framing (`sse`), and the settings that bound every call. The answer's
//! life as a message (streaming, stop, end) is `conclave_core::service::streams`.

pub mod provider;
pub mod sse;

use crate::outbound::OutboundPolicy;
use std::time::Duration;

/// What model endpoints may be and how long answers may take (from the configuration).
#[derive(Debug, Clone)]
pub struct AgentSettings {
    /// The agents' own allowlist (`CONCLAVE_AGENT_ALLOW_CIDRS`, `CONCLAVE_AGENT_ALLOW_PORTS`):
    /// the webhook allowlist never applies to model endpoints, nor this one to webhooks.
    pub outbound: OutboundPolicy,
    /// Until the response head (`CONCLAVE_AGENT_REQUEST_TIMEOUT_SECS`, default 30).
    pub request_timeout: Duration,
    /// The whole answer (`CONCLAVE_AGENT_MAX_ANSWER_SECS`, default 120).
    pub max_answer: Duration,
    /// Answers streaming at once on this node (`CONCLAVE_AGENT_MAX_CONCURRENT`, default 64).
    pub max_concurrent: usize,
}

impl Default for AgentSettings {
    fn default() -> Self {
        Self {
            outbound: OutboundPolicy::default(),
            request_timeout: Duration::from_secs(30),
            max_answer: Duration::from_secs(120),
            max_concurrent: 64,
        }
    }
}

/// How long an answer may stay `streaming` before the periodic sweep takes it for one whose node
/// stopped mid-way: twice the longest an answer may take, and a minute more.
#[must_use]
pub fn abandoned_after(settings: &AgentSettings) -> chrono::Duration {
    let limit = settings.request_timeout.max(settings.max_answer) * 2 + Duration::from_secs(60);
    chrono::Duration::from_std(limit).unwrap_or(chrono::Duration::MAX)
}
