//! WEB-4, AGENT-6: the embeddable support widget over HTTP — widget keys and who manages
//! them, the origin check and CORS on widget routes only, server-made visitor sessions whose
//! secret is required on every call, signed identities, the AI agent's first answer streamed
//! over Server-Sent Events, handoff (by the visitor and by the agent), the support inbox and
//! who may work it, resume with `Last-Event-ID`, limits and plain-text replies.

mod agent;
mod inbox;
mod keys;
mod limits;
mod objects;
mod revocation;
mod tokens;
mod visitors;

use crate::helpers::*;
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Sha256;
use std::time::Duration;

/// The page origin the test keys allow.
pub const ORIGIN: &str = "https://shop.example";
/// Another site.
pub const EVIL: &str = "https://evil.example";

/// An app whose agent SSRF guard lets the fake model provider through, limits off (the
/// agents' setup).
pub use crate::agents::{agented as widgeted, agented_with as widgeted_with, Agented as Widgeted};

/// An org with a support team (`staff` in it), an AI agent when asked, and a widget key.
pub struct Site {
    pub org: String,
    pub owner: User,
    pub staff: User,
    pub team: String,
    /// The key's id and its publishable value.
    pub key_id: String,
    pub key: String,
    pub identity_secret: String,
}

pub fn widget_keys(org: &str) -> String {
    org_path(org, "/widget-keys")
}

/// A fresh org `name` with a team, a key for [`ORIGIN`] with `identity`, and an agent when
/// `with_agent`.
pub async fn site(h: &Widgeted, name: &str, identity: &str, with_agent: bool) -> Site {
    let app = &h.app;
    let owner = app.user(&format!("{name}-owner")).await;
    let staff = app.user(&format!("{name}-staff")).await;
    let org = app.org(&owner, name).await;
    app.add_member(&org, &owner, &staff, "member").await;
    let team = app.create_team(&org, &owner, "Support").await;
    app.add_to_team(&org, &owner, &team, &staff).await;
    let agent = if with_agent {
        let body = json!({"name": "Helper", "endpoint": h.llm.url(), "model": "fake-1"});
        Some(
            app.post(&org_path(&org, "/agents"), &owner.token, body)
                .await
                .expect(201)
                .body,
        )
    } else {
        None
    };
    let mut body = json!({
        "name": format!("{name} support"),
        "allowed_origins": [ORIGIN],
        "team_id": team,
        "identity": identity,
    });
    if let Some(a) = &agent {
        body["agent_id"] = a["id"].clone();
    }
    let made = app
        .post(&widget_keys(&org), &owner.token, body)
        .await
        .expect(201);
    Site {
        org,
        owner,
        staff,
        team,
        key_id: made.id(),
        key: made.string("key"),
        identity_secret: made.string("identity_secret"),
    }
}

/// HMAC-SHA256 of `user_id` with the identity secret, hex: what the host's server computes.
pub fn sign(secret: &str, user_id: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(user_id.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A visitor's session: its id and secret.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub secret: String,
    pub body: Value,
}

impl TestApp {
    /// A widget call from `origin` with `key` and, when given, the visitor secret.
    pub async fn widget_call(
        &self,
        method: Method,
        path: &str,
        origin: Option<&str>,
        key: Option<&str>,
        visitor: Option<&str>,
        body: Option<Value>,
    ) -> Res {
        let mut rb = self
            .client
            .request(method, self.url(&format!("/api/v1/widget{path}")));
        if let Some(o) = origin {
            rb = rb.header("origin", o);
        }
        if let Some(k) = key {
            rb = rb.header("x-widget-key", k);
        }
        if let Some(v) = visitor {
            rb = rb.header("x-widget-visitor", v);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        self.send(rb).await
    }

    /// A widget call from [`ORIGIN`] with `key` and the visitor secret `secret`.
    pub async fn as_visitor(
        &self,
        key: &str,
        secret: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Res {
        (self.widget_call(method, path, Some(ORIGIN), Some(key), Some(secret), body)).await
    }

    /// The site's owner changes its key (`PATCH`, 200 expected).
    pub async fn change_key(&self, s: &Site, body: Value) -> Res {
        let path = format!("{}/{}", widget_keys(&s.org), s.key_id);
        self.patch(&path, &s.owner.token, body).await.expect(200)
    }

    /// `POST /widget/sessions` of `key` from [`ORIGIN`] with `body`, no visitor secret.
    pub async fn start_session(&self, key: &str, body: Value) -> Res {
        self.widget_call(
            Method::POST,
            "/sessions",
            Some(ORIGIN),
            Some(key),
            None,
            Some(body),
        )
        .await
    }

    /// `POST /widget/sessions` of `key` resuming session `id` with the visitor secret `secret`.
    pub async fn resume_session(&self, key: &str, secret: &str, id: &str) -> Res {
        let body = json!({"session_id": id});
        self.as_visitor(key, secret, Method::POST, "/sessions", Some(body))
            .await
    }

    /// Begins a session of `key` from [`ORIGIN`] with `body` (200 expected).
    pub async fn visit(&self, key: &str, body: Value) -> Session {
        let res = self.start_session(key, body).await.expect(200);
        Session {
            id: res.string("session_id"),
            secret: res.string("visitor_secret"),
            body: res.body,
        }
    }

    /// The visitor sends `text`.
    pub async fn visitor_sends(&self, key: &str, s: &Session, text: &str) -> Res {
        let body = json!({"session_id": s.id, "message": text});
        self.as_visitor(key, &s.secret, Method::POST, "/chat", Some(body))
            .await
    }

    /// The visitor sends `text` (201 expected); answers the message object.
    pub async fn visitor_says(&self, key: &str, s: &Session, text: &str) -> Value {
        self.visitor_sends(key, s, text).await.expect(201).body
    }

    /// The visitor reads their history.
    pub async fn visitor_reads(&self, key: &str, s: &Session) -> Res {
        let path = format!("/chat?session_id={}", s.id);
        self.as_visitor(key, &s.secret, Method::GET, &path, None)
            .await
    }

    /// The visitor's history (200 expected).
    pub async fn visitor_history(&self, key: &str, s: &Session) -> Value {
        self.visitor_reads(key, s).await.expect(200).body
    }

    /// The id of the visitor's conversation (one must exist).
    pub async fn visitor_conversation(&self, key: &str, s: &Session) -> String {
        let history = self.visitor_history(key, s).await;
        let conv = history["conversation_id"].as_str();
        conv.expect("a conversation").to_owned()
    }

    /// A new visitor of `key` says `text`: their session and the conversation it opened.
    pub async fn visitor_opens(&self, key: &str, text: &str) -> (Session, String) {
        let v = self.visit(key, json!({})).await;
        self.visitor_says(key, &v, text).await;
        let conv = self.visitor_conversation(key, &v).await;
        (v, conv)
    }

    /// The visitor asks for a person.
    pub async fn visitor_hands_off(&self, key: &str, s: &Session) -> Res {
        let body = json!({"session_id": s.id});
        self.as_visitor(key, &s.secret, Method::POST, "/handoff", Some(body))
            .await
    }
}

/// One Server-Sent Event.
#[derive(Debug, Clone)]
pub struct Sse {
    pub event: String,
    pub id: String,
    pub data: Value,
}

/// A visitor's open event stream.
pub struct Stream {
    res: reqwest::Response,
    buf: String,
}

impl Stream {
    /// Opens the stream of `s`, resuming after `last` when given.
    pub async fn open(app: &TestApp, key: &str, s: &Session, last: Option<&str>) -> Stream {
        Self::open_from(app, ORIGIN, key, s, last).await
    }

    /// Opens the stream of `s` from a page of `origin`.
    pub async fn open_from(
        app: &TestApp,
        origin: &str,
        key: &str,
        s: &Session,
        last: Option<&str>,
    ) -> Stream {
        let mut rb = app
            .client
            .get(app.url(&format!("/api/v1/widget/chat/stream?session_id={}", s.id)))
            .header("origin", origin)
            .header("x-widget-key", key)
            .header("x-widget-visitor", &s.secret);
        if let Some(l) = last {
            rb = rb.header("last-event-id", l);
        }
        let res = rb.send().await.expect("stream opened");
        assert_eq!(res.status().as_u16(), 200, "the stream opens");
        assert_eq!(
            res.headers()["access-control-allow-origin"],
            origin,
            "the stream answers the page's origin"
        );
        Stream {
            res,
            buf: String::new(),
        }
    }

    /// The next event (heartbeat comments skipped), within 10 s.
    pub async fn next(&mut self) -> Sse {
        tokio::time::timeout(Duration::from_secs(10), self.read())
            .await
            .expect("an event within 10 s")
    }

    async fn read(&mut self) -> Sse {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let (mut event, mut id, mut data) = (String::new(), String::new(), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("id:") {
                        id = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if event.is_empty() {
                    continue;
                }
                let data = serde_json::from_str(&data).unwrap_or(Value::Null);
                return Sse { event, id, data };
            }
            let chunk = self
                .res
                .chunk()
                .await
                .expect("stream read")
                .expect("stream open");
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Whether the server ends the stream within `within` (what arrives meanwhile is read and
    /// dropped).
    pub async fn ends_within(&mut self, within: Duration) -> bool {
        let ended = async { while let Ok(Some(_)) = self.res.chunk().await {} };
        tokio::time::timeout(within, ended).await.is_ok()
    }

    /// Reads until `done` holds for an event; answers every event read.
    pub async fn until(&mut self, mut done: impl FnMut(&Sse) -> bool) -> Vec<Sse> {
        let mut seen = Vec::new();
        loop {
            let e = self.next().await;
            let stop = done(&e);
            seen.push(e);
            if stop {
                return seen;
            }
        }
    }
}

/// Waits until `check` holds (every 50 ms, at most 10 s).
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}
