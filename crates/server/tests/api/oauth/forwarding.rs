//! MCP-2 "a token is never forwarded anywhere": MCP clients — one with an OAuth access token
//! of a Client ID Metadata Document client, one with an API key — send into a conversation
//! that has a webhook and an AI agent; the document is fetched again by an authorization that
//! carries the access token; then the tokens are refused (REST, a rotated refresh token, its
//! reuse, the revoked access token). Every request the outside servers receive (the webhook
//! receiver, the fake model provider, the document server, all on 127.0.0.1 through the SSRF
//! guard's allowlists) is recorded with its path, query, headers and body, and none holds any
//! of the credentials or any 12 characters of their secret part. Everything the server logs
//! meanwhile (every level, every field, span fields too) is read the same way.
//!
//! The test runs on a current-thread runtime with a thread-default subscriber, so the server's
//! tasks log into it (as `tracing_span` does); not through `both_backends!`, whose runtime has
//! worker threads. The log is read on PostgreSQL only: SQLite runs its statements on a worker
//! thread of its own, which drops the request's spans outside that subscriber (a panic in
//! `tracing-subscriber`'s registry), so on SQLite the outside servers alone are checked.

use super::documents::{serve_document, Fetches};
use super::*;
use crate::agents::{make_agent, Agented};
use crate::llm::FakeLlm;
use crate::mcp::{call_tool, content, TOOL_SCOPES};
use crate::webhooks::receiver::{Received, Receiver};
use crate::ws::Ws;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use tracing_subscriber::layer::{Context, SubscriberExt};

mod sqlite {
    #[tokio::test]
    async fn no_token_is_forwarded() {
        super::no_token_is_forwarded(crate::helpers::Backend::Sqlite, false).await;
    }
}

mod postgres {
    #[tokio::test]
    async fn no_token_is_forwarded_or_logged() {
        super::no_token_is_forwarded(crate::helpers::Backend::Postgres, true).await;
    }
}

/// Every span and event logged on this thread, as text: the target, the name and each field.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<String>>>);

struct Fields(String);

impl tracing::field::Visit for Fields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        let _ = write!(self.0, " {}={value}", field.name());
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={value:?}", field.name());
    }
}

impl Logs {
    fn push(&self, line: String) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(line);
    }

    fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Logs {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _: &tracing::span::Id,
        _: Context<'_, S>,
    ) {
        let meta = attrs.metadata();
        let mut fields = Fields(format!("span {} {}", meta.target(), meta.name()));
        attrs.record(&mut fields);
        self.push(fields.0);
    }

    fn on_record(
        &self,
        _: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        _: Context<'_, S>,
    ) {
        let mut fields = Fields("record".into());
        values.record(&mut fields);
        self.push(fields.0);
    }

    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let meta = event.metadata();
        let mut fields = Fields(format!("{} {}", meta.level(), meta.target()));
        event.record(&mut fields);
        self.push(fields.0);
    }
}

/// One recorded request as a single text: path and query, each header, the body.
fn as_text(r: &Received) -> String {
    let headers: Vec<String> = (r.headers.iter())
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    format!("{}\n{}\n\n{}", r.uri, headers.join("\n"), r.body)
}

/// The parts of `secret` that must appear nowhere: the whole, and every 12 characters of
/// what follows its public prefix (a cookie's name, then `cnv_oa_`, `cnv_or_`, `cnv_k_`…).
fn parts_of(secret: &str) -> Vec<String> {
    let value = secret.split_once('=').map_or(secret, |(_, v)| v);
    let random = (value.strip_prefix("cnv_"))
        .and_then(|rest| rest.split_once('_'))
        .map_or(value, |(_, random)| random)
        .as_bytes();
    assert!(random.len() >= 20, "a secret part to look for: {secret}");
    let mut parts: Vec<String> = (random.windows(12))
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect();
    parts.push(secret.to_owned());
    parts
}

/// Fails naming where a part of a secret was found in `texts`.
#[track_caller]
fn nowhere_in(place: &str, texts: &[String], secrets: &[(&str, &str)]) {
    for (name, secret) in secrets {
        for part in parts_of(secret) {
            if let Some(found) = texts.iter().find(|t| t.contains(&part)) {
                panic!("{name} ({part}) reached {place}:\n{found}");
            }
        }
    }
}

/// The scenario on `backend`; with `read_logs`, everything the server logs is read too.
async fn no_token_is_forwarded(backend: Backend, read_logs: bool) {
    let logs = Logs::default();
    let _guard = read_logs.then(|| {
        tracing::subscriber::set_default(tracing_subscriber::registry().with(logs.clone()))
    });
    let llm = FakeLlm::start().await;
    let rx = Receiver::start().await;
    let (doc_port, doc_url, fetches): (u16, String, Fetches) = serve_document().await;
    let (llm_port, rx_port) = (llm.port, rx.port);
    let Some(app) = spawn_app_with(backend, |c| {
        c.rate_limits = OnOff::Off;
        c.webhook_allow_cidrs = vec!["127.0.0.1/32".parse().unwrap()];
        c.webhook_allow_ports = vec![rx_port, doc_port];
        c.agent_allow_cidrs = vec!["127.0.0.1/32".parse().unwrap()];
        c.agent_allow_ports = vec![llm_port];
    })
    .await
    else {
        return;
    };
    // Callsites other tests of this binary reached first may have cached "no interest".
    tracing::callsite::rebuild_interest_cache();
    let h = Agented { app, llm };
    let app = &h.app;

    // Alice's org: a conversation with the agent Helper, and a webhook for its messages.
    let w = world(app).await;
    let agent = make_agent(&h, &w.org, &w.owner, "Helper", json!({})).await;
    let agent_user = agent["user_id"].as_str().unwrap().to_owned();
    let conv = app.group(&w.org, &w.owner, &[], json!("private")).await;
    app.add_participant(&conv, &w.owner, &agent_user).await;
    // An endpoint of the (private) conversation: the org's own endpoints hear only of
    // conversations every member may read.
    app.post(
        &crate::webhooks::hooks(&w.org),
        &w.owner.token,
        json!({"url": rx.url(), "events": ["message.created", "message.updated"],
               "conversation_id": conv}),
    )
    .await
    .expect(201);

    // An OAuth grant to the metadata-document client (its document fetched), a rotation.
    let code = code_for(app, &w, &doc_url, &w.org).await;
    let (a1, r1) = tokens(&redeem(app, &doc_url, &code).await.expect(200));
    let (access, refresh_token) = tokens(&refresh(app, &doc_url, &r1).await.expect(200));
    // A client that sends its token along with the next authorization: the document is fetched
    // again, without it.
    let params = app.authorize_query(&doc_url, &[]);
    let rb = (app.client.get(app.url("/oauth/authorize")))
        .query(&params)
        .bearer_auth(&access)
        .header("cookie", &w.browser.cookie);
    request_id(&app.send(rb).await);
    let key = crate::mcp::key(app, &w.owner, &w.org, TOOL_SCOPES, None).await;

    // Each MCP client asks the agent something; the agent answers through the fake provider.
    let (mut ws, _) = Ws::identify(app, &w.owner.token).await;
    for (credential, question) in [
        (&access, "@Helper what is new?"),
        (&key, "@Helper and now?"),
    ] {
        let sent = call_tool(
            app,
            credential,
            "send_message",
            json!({"conversation_id": conv, "content": question}),
        )
        .await;
        assert_eq!(content(&sent)["message"]["content"], question);
        let answer = crate::agents::answers::answer_on(&mut ws, &agent_user).await;
        assert_eq!(answer.end["status"], "complete", "{}", answer.end);
    }
    crate::webhooks::run_worker(app, chrono::Duration::seconds(1)).await;
    // The refusals, where a server is most tempted to log what it was shown: the access token
    // on REST, a rotated refresh token on /mcp and again at the token endpoint (reuse: the
    // grant is revoked), then the revoked access token on /mcp.
    app.get("/api/v1/users/@me", &access).await.expect(401);
    let list = crate::mcp::request("tools/list", json!({}));
    let refused = crate::mcp::mcp_post(app, Some(&r1), &[], list.clone()).await;
    assert_eq!(refused.status, 401);
    refresh_refused(app, &doc_url, &r1).await;
    let refused = crate::mcp::mcp_post(app, Some(&access), &[], list).await;
    assert_eq!(refused.status, 401, "the reuse revoked the grant");

    // What the outside servers received; first, that they received what they should.
    let hooks = rx.received();
    let bodies: String = hooks.iter().map(|r| r.body.clone()).collect();
    for question in ["@Helper what is new?", "@Helper and now?"] {
        assert!(bodies.contains(question), "the webhook got {question}");
    }
    let asked = h.llm.requests();
    assert_eq!(asked.len(), 2, "the agent asked its model twice");
    let provider_texts: Vec<String> = (asked.iter())
        .map(|s| {
            as_text(&Received {
                uri: s.uri.clone(),
                headers: s.headers.clone(),
                body: s.body.to_string(),
            })
        })
        .collect();
    assert!(
        provider_texts[0].contains(&format!("authorization: Bearer {}", crate::agents::KEY)),
        "the provider's own key is recorded with the headers: {}",
        provider_texts[0]
    );
    let fetched = fetches.lock().unwrap().clone();
    assert!(
        fetched.len() >= 2,
        "the document was fetched for each authorization"
    );
    let outside: Vec<String> = (hooks.iter().chain(fetched.iter()))
        .map(as_text)
        .chain(provider_texts)
        .collect();

    let secrets = [
        ("the first access token", a1.as_str()),
        ("the first refresh token", r1.as_str()),
        ("the access token", access.as_str()),
        ("the refresh token", refresh_token.as_str()),
        ("the API key", key.as_str()),
        ("the session cookie", w.browser.cookie.as_str()),
        ("the authorization code", code.as_str()),
    ];
    nowhere_in("an outside server", &outside, &secrets);

    // The server's log of the whole run: it logged the requests (the control), and no
    // credential.
    if !read_logs {
        return;
    }
    let lines = logs.lines();
    for seen in ["conclave", "/mcp", "/oauth/authorize", "/oauth/token"] {
        assert!(
            lines.iter().any(|l| l.contains(seen)),
            "the server's lines are captured, {seen} among them: {} lines",
            lines.len()
        );
    }
    nowhere_in("the log", &lines, &secrets);
}
