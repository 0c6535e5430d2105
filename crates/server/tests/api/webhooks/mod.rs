//! HOOK-1..3: outgoing webhooks over HTTP — who manages them, hostile URLs, signed deliveries
//! verified by the independent `standardwebhooks` package, retries with back-off in order,
//! auto-disable, and parallel test/redeliver requests. Receivers are local listeners that
//! `webhook_allow_cidrs = ["127.0.0.1/32"]` (and their ports) let through.

mod bench;
mod crud;
mod delivery;
mod events;
mod nodes;
pub mod receiver;
mod redaction;

use crate::helpers::*;
use receiver::Receiver;
use reqwest::Method;
use serde_json::{json, Value};

/// An app whose SSRF guard lets through 127.0.0.1 on the ports of `rx`; test bodies take it
/// through `both_backends!(with crate::webhooks::hooked; …)`.
pub struct Hooked {
    pub app: TestApp,
    pub rx: Vec<Receiver>,
}

pub async fn hooked(backend: Backend) -> Option<Hooked> {
    let mut rx = Vec::new();
    for _ in 0..2 {
        rx.push(Receiver::start().await);
    }
    let ports: Vec<u16> = rx.iter().map(|r| r.port).collect();
    let app = spawn_app_with(backend, |c| {
        c.webhook_allow_cidrs = vec!["127.0.0.1/32".parse().unwrap()];
        c.webhook_allow_ports = ports;
        c.rate_limits = conclave_server::config::OnOff::Off;
    })
    .await?;
    Some(Hooked { app, rx })
}

impl Hooked {
    /// Alice, her org Acme, and an org-wide conversation in it.
    pub async fn acme(&self) -> (User, String, String) {
        let alice = self.app.user("alice").await;
        let org = self.app.org(&alice, "Acme").await;
        let conv = self.app.group(&org, &alice, &[], json!("org")).await;
        (alice, org, conv)
    }
}

/// Alice, her org Acme, and her endpoint for `message.created` on `rx`.
pub async fn alice_hook(app: &TestApp, rx: &Receiver) -> (User, String, String) {
    let alice = app.user("alice").await;
    let org = app.org(&alice, "Acme").await;
    let (hook, _) = make_hook(app, &org, &alice, &rx.url(), &["message.created"]).await;
    (alice, org, hook)
}

pub fn hooks(org: &str) -> String {
    format!("/api/v1/orgs/{org}/webhooks")
}

/// Creates a webhook of `org` for `events` to `url`: (id, secret).
pub async fn make_hook(
    app: &TestApp,
    org: &str,
    by: &User,
    url: &str,
    events: &[&str],
) -> (String, String) {
    let res = app
        .post(
            &hooks(org),
            &by.token,
            json!({"url": url, "events": events}),
        )
        .await
        .expect(201);
    (res.id(), res.string("secret"))
}

/// Lets the delivery worker run once: every due delivery is sent and recorded when this returns.
pub async fn run_worker(app: &TestApp, by: chrono::Duration) {
    app.clock.advance(by);
    app.clock.settled().await;
}

/// The endpoint's deliveries, newest first.
pub async fn deliveries(app: &TestApp, org: &str, hook: &str, by: &User) -> Vec<Value> {
    app.items(&format!("{}/{hook}/deliveries", hooks(org)), &by.token)
        .await
}
