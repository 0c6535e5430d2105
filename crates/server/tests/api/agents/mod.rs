//! AGENT-1..4, AGENT-6: AI agents over HTTP and the gateway, against the fake model provider
//! (`crate::llm::FakeLlm`, on 127.0.0.1, let through by `agent_allow_cidrs`): management and
//! who may do it, the key never shown, when an agent answers and what it sees, streamed
//! answers and their failures, budgets under concurrency, limits and the usage report.

pub(crate) mod answers;
mod crud;
mod limits;
mod rules;

use crate::helpers::*;
use crate::llm::FakeLlm;
use serde_json::{json, Value};

/// An app whose agent SSRF guard lets through the fake provider (127.0.0.1 on its port).
pub struct Agented {
    pub app: TestApp,
    pub llm: FakeLlm,
}

pub async fn agented(backend: Backend) -> Option<Agented> {
    agented_with(backend, |_| {}).await
}

pub async fn agented_with(
    backend: Backend,
    tweak: impl FnOnce(&mut conclave_server::config::Config),
) -> Option<Agented> {
    let llm = FakeLlm::start().await;
    let port = llm.port;
    let app = spawn_app_with(backend, |c| {
        c.agent_allow_cidrs = vec!["127.0.0.1/32".parse().unwrap()];
        c.agent_allow_ports = vec![port];
        c.rate_limits = conclave_server::config::OnOff::Off;
        tweak(c);
    })
    .await?;
    Some(Agented { app, llm })
}

/// An app with one model call at a time whose agents may also call a second fake provider,
/// `other` (another origin: its own port).
pub struct TwoProviders {
    pub h: Agented,
    pub other: FakeLlm,
}

pub async fn two_providers(backend: Backend) -> Option<TwoProviders> {
    let other = FakeLlm::start().await;
    let port = other.port;
    let h = agented_with(backend, |c| {
        c.agent_max_concurrent = 1;
        c.agent_allow_ports.push(port);
    })
    .await?;
    Some(TwoProviders { h, other })
}

/// Short provider limits: a request timeout of 1 s and answers of at most 2 s.
pub async fn impatient(backend: Backend) -> Option<Agented> {
    agented_with(backend, |c| {
        c.agent_request_timeout_secs = 1;
        c.agent_max_answer_secs = 2;
    })
    .await
}

/// Rate limits on, with two invocations of an agent per user and minute.
pub async fn limited(backend: Backend) -> Option<Agented> {
    agented_with(backend, |c| {
        c.rate_limits = conclave_server::config::OnOff::On;
        c.agent_invocations_per_minute = 2;
    })
    .await
}

pub fn agents(org: &str) -> String {
    format!("/api/v1/orgs/{org}/agents")
}

/// A test key: long enough to be masked with its last four characters.
pub const KEY: &str = "sk-test-0123456789-SECRETKEYTAIL";

/// Creates an agent of `org` named `name` on the fake provider with `extra` settings; answers
/// its REST object.
pub async fn make_agent(h: &Agented, org: &str, by: &User, name: &str, extra: Value) -> Value {
    let mut body =
        json!({"name": name, "endpoint": h.llm.url(), "model": "fake-1", "api_key": KEY});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    h.app
        .post(&agents(org), &by.token, body)
        .await
        .expect(201)
        .body
}
