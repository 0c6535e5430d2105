//! RATE-6 content guards over HTTP: blocklists and regexes that block (nothing stored, no event,
//! no webhook) or flag (delivered, queued for review, resolvable); edits and bots screened; a
//! linear-time engine; a local moderation endpoint (flagging, timeouts with fail-open and
//! fail-closed, its key never shown); exact counters under parallel sends; every caller who
//! must be refused; one org's guards never reach another's.

mod access;
mod agent;
mod counts;
mod moderation;
mod rules;

use crate::helpers::*;
use crate::webhooks::receiver::Receiver;
use axum::extract::State;
use axum::http::HeaderMap;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

/// What the local moderation endpoint was sent: the `Authorization` header and the body.
type Seen = Arc<Mutex<Vec<(String, Value)>>>;

/// A local OpenAI-shaped moderation endpoint: it flags an input containing "hateful", waits
/// 5 s before answering one containing "slowly" (past every test's timeout) and answers 500 to
/// one containing "broken".
pub struct Moderator {
    pub port: u16,
    pub seen: Seen,
}

async fn moderate(
    State(seen): State<Seen>,
    headers: HeaderMap,
    body: String,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let input: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    seen.lock().unwrap().push((auth, input.clone()));
    let text = input["input"].as_str().unwrap_or("").to_owned();
    if text.contains("slowly") {
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    }
    if text.contains("broken") {
        return axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let flagged = text.contains("hateful");
    axum::Json(json!({
        "id": "modr-1",
        "model": "test",
        "results": [{"flagged": flagged, "categories": {"hate": flagged}}]
    }))
    .into_response()
}

impl Moderator {
    pub async fn start() -> Self {
        let seen: Seen = Arc::default();
        let app = axum::Router::new()
            .route("/moderate", axum::routing::post(moderate))
            .with_state(seen.clone());
        let port = serve_locally(app).await;
        Self { port, seen }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/moderate", self.port)
    }
}

/// An app whose SSRF guard lets through 127.0.0.1 on the ports of a moderation endpoint and a
/// webhook receiver.
pub struct Guarded {
    pub app: TestApp,
    pub moderator: Moderator,
    pub rx: Receiver,
}

pub async fn guarded(backend: Backend) -> Option<Guarded> {
    let moderator = Moderator::start().await;
    let rx = Receiver::start().await;
    let ports = vec![moderator.port, rx.port];
    let app = spawn_app_with(backend, |c| {
        c.webhook_allow_cidrs = vec!["127.0.0.1/32".parse().unwrap()];
        c.webhook_allow_ports = ports;
        c.rate_limits = conclave_server::config::OnOff::Off;
    })
    .await?;
    Some(Guarded { app, moderator, rx })
}

pub fn guards(org: &str) -> String {
    org_path(org, "/guards")
}

pub fn flags(org: &str) -> String {
    org_path(org, "/flags")
}

/// Creates a guard of `org` (201 expected); answers it.
pub async fn make_guard(app: &TestApp, org: &str, by: &User, body: Value) -> Value {
    app.post(&guards(org), &by.token, body)
        .await
        .expect(201)
        .body
}

/// `token` resolves flag `flag` of `org` as `resolution` (`dismissed`, `removed`).
pub async fn resolve_flag(
    app: &TestApp,
    org: &str,
    flag: &str,
    token: &str,
    resolution: &str,
) -> Res {
    let path = format!("{}/{flag}/resolve", flags(org));
    app.post(&path, token, json!({ "resolution": resolution }))
        .await
}

/// `org`'s open flags as its owner sees them.
pub async fn open_flags(app: &TestApp, org: &str, by: &User) -> Vec<Value> {
    app.items(&flags(org), &by.token).await
}

/// The guard `id` of `org` as listed (with its counters).
pub async fn listed_guard(app: &TestApp, org: &str, by: &User, id: &str) -> Value {
    app.items(&guards(org), &by.token)
        .await
        .into_iter()
        .find(|g| g["id"] == id)
        .expect("the guard is listed")
}

/// The guard's counters: (allowed, flagged, blocked, errors).
pub fn counts(guard: &Value) -> (i64, i64, i64, i64) {
    let c = &guard["counts"];
    let n = |k: &str| c[k].as_i64().unwrap();
    (n("allowed"), n("flagged"), n("blocked"), n("errors"))
}

/// The texts of a conversation's messages, newest first.
pub async fn texts(app: &TestApp, conv: &str, by: &User) -> Vec<String> {
    app.items(&conv_path(conv, "/messages?limit=100"), &by.token)
        .await
        .iter()
        .map(|m| m["content"].as_str().unwrap_or("").to_owned())
        .collect()
}
