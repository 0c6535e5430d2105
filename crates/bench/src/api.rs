//! The REST side: capabilities, user creation and login, org and conversation setup, and
//! message sending.

use crate::stats::Errors;
use futures::stream::{self, StreamExt, TryStreamExt};
use reqwest::{Client, StatusCode, Url};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

pub const CLIENT_NAME: &str = concat!("conclave-bench/", env!("CARGO_PKG_VERSION"));

#[derive(Clone)]
pub struct Api {
    http: Client,
    base: Url,
}

/// A user the bench created, signed in.
#[derive(Clone, Debug)]
pub struct BenchUser {
    pub id: String,
    pub token: String,
}

#[derive(Deserialize)]
struct Created {
    id: String,
}

#[derive(Deserialize)]
struct Login {
    token: Option<String>,
    #[serde(default)]
    mfa_required: bool,
}

fn bad(what: &str, status: StatusCode, body: &str) -> String {
    let body: String = body.chars().take(300).collect();
    format!("{what}: HTTP {status}: {body}")
}

impl Api {
    pub fn new(base: Url, pool: usize) -> Result<Self, String> {
        let http = Client::builder()
            .user_agent(CLIENT_NAME)
            .timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(pool.max(8))
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Self { http, base })
    }

    pub fn url(&self, path: &str) -> Url {
        let mut u = self.base.clone();
        u.set_path(path);
        u.set_query(None);
        u
    }

    async fn post(
        &self,
        what: &str,
        path: &str,
        auth: &str,
        body: &Value,
    ) -> Result<(StatusCode, String), String> {
        let res = self
            .http
            .post(self.url(path))
            .header("authorization", format!("Bearer {auth}"))
            .header("x-client-version", CLIENT_NAME)
            .json(body)
            .send()
            .await
            .map_err(|e| format!("{what}: {e}"))?;
        let status = res.status();
        let text = res.text().await.map_err(|e| format!("{what}: {e}"))?;
        Ok((status, text))
    }

    /// `GET /api/v1/capabilities` → `gateway.url`.
    pub async fn gateway_url(&self) -> Result<String, String> {
        let res = self
            .http
            .get(self.url("/api/v1/capabilities"))
            .send()
            .await
            .map_err(|e| format!("GET /api/v1/capabilities: {e}"))?;
        let status = res.status();
        let text = res.text().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(bad("GET /api/v1/capabilities", status, &text));
        }
        let v: Value = serde_json::from_str(&text).map_err(|e| format!("capabilities: {e}"))?;
        v.pointer("/gateway/url")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| "capabilities: no gateway.url".to_owned())
    }

    /// `POST /api/v1/admin/users` with the management token, then `POST /api/v1/auth/login`.
    pub async fn create_user(
        &self,
        admin_token: &str,
        username: &str,
        password: &str,
    ) -> Result<BenchUser, String> {
        let body = json!({"username": username, "password": password});
        let (status, text) = self
            .post("create user", "/api/v1/admin/users", admin_token, &body)
            .await?;
        if status != StatusCode::CREATED {
            return Err(bad(
                &format!("POST /api/v1/admin/users ({username})"),
                status,
                &text,
            ));
        }
        let created: Created =
            serde_json::from_str(&text).map_err(|e| format!("create user: {e}"))?;
        let token = self.login(username, password).await?;
        Ok(BenchUser {
            id: created.id,
            token,
        })
    }

    pub async fn login(&self, username: &str, password: &str) -> Result<String, String> {
        let res = self
            .http
            .post(self.url("/api/v1/auth/login"))
            .header("x-client-version", CLIENT_NAME)
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
            .map_err(|e| format!("login {username}: {e}"))?;
        let status = res.status();
        let text = res.text().await.map_err(|e| e.to_string())?;
        if status != StatusCode::OK {
            return Err(bad(
                &format!("POST /api/v1/auth/login ({username})"),
                status,
                &text,
            ));
        }
        let login: Login = serde_json::from_str(&text).map_err(|e| format!("login: {e}"))?;
        if login.mfa_required {
            return Err(format!("login {username}: the server asks for 2FA"));
        }
        login
            .token
            .ok_or_else(|| format!("login {username}: no token in the answer"))
    }

    /// POSTs `body` to `path` (documented as `route` in errors) and answers the new id (201).
    async fn create(
        &self,
        what: &str,
        route: &str,
        path: &str,
        token: &str,
        body: &Value,
    ) -> Result<String, String> {
        let (status, text) = self.post(what, path, token, body).await?;
        if status != StatusCode::CREATED {
            return Err(bad(&format!("POST {route}"), status, &text));
        }
        Ok(serde_json::from_str::<Created>(&text)
            .map_err(|e| format!("{what}: {e}"))?
            .id)
    }

    pub async fn create_org(&self, token: &str, name: &str) -> Result<String, String> {
        let body = json!({"name": name});
        let path = "/api/v1/orgs";
        self.create("create org", path, path, token, &body).await
    }

    /// Adds a member with the management token (`POST /admin/orgs/{org}/members`, AZ-7). A
    /// server from before that route (404) gets the owner's direct add instead, so one bench
    /// binary measures both sides of a before/after comparison.
    pub async fn add_member(
        &self,
        admin_token: &str,
        owner_token: &str,
        org: &str,
        user_id: &str,
    ) -> Result<(), String> {
        let body = json!({"user_id": user_id, "role": "member"});
        let (status, text) = self
            .post(
                "add member",
                &format!("/api/v1/admin/orgs/{org}/members"),
                admin_token,
                &body,
            )
            .await?;
        if status == StatusCode::CREATED {
            return Ok(());
        }
        if status != StatusCode::NOT_FOUND {
            return Err(bad("POST /api/v1/admin/orgs/{org}/members", status, &text));
        }
        let (status, text) = self
            .post(
                "add member",
                &format!("/api/v1/orgs/{org}/members"),
                owner_token,
                &body,
            )
            .await?;
        if status != StatusCode::CREATED {
            return Err(bad("POST /api/v1/orgs/{org}/members", status, &text));
        }
        Ok(())
    }

    pub async fn create_conversation(
        &self,
        token: &str,
        org: &str,
        name: &str,
        participant_ids: &[String],
    ) -> Result<String, String> {
        let body = json!({
            "kind": "group",
            "name": name,
            "visibility": "private",
            "participant_ids": participant_ids,
        });
        let path = format!("/api/v1/orgs/{org}/conversations");
        let route = "/api/v1/orgs/{org}/conversations";
        self.create("create conversation", route, &path, token, &body)
            .await
    }

    /// Creates an AI agent (`POST /orgs/{org}/agents`) answering from `endpoint` with at most
    /// `max_output_tokens`; answers its bot account's user id.
    pub async fn create_agent(
        &self,
        owner_token: &str,
        org: &str,
        name: &str,
        endpoint: &str,
        max_output_tokens: usize,
    ) -> Result<String, String> {
        let body = json!({
            "name": name,
            "endpoint": endpoint,
            "model": "bench",
            "max_output_tokens": max_output_tokens + 16,
            "context_messages": 4,
        });
        let path = format!("/api/v1/orgs/{org}/agents");
        let (status, text) = self.post("create agent", &path, owner_token, &body).await?;
        if status != StatusCode::CREATED {
            return Err(bad("POST /api/v1/orgs/{org}/agents", status, &text));
        }
        let v: Value = serde_json::from_str(&text).map_err(|e| format!("create agent: {e}"))?;
        v.get("user_id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| "create agent: no user_id in the answer".to_owned())
    }

    /// The direct conversation of the caller with `user_id` (created, or the existing one).
    pub async fn create_direct(
        &self,
        token: &str,
        org: &str,
        user_id: &str,
    ) -> Result<String, String> {
        let body = json!({"kind": "direct", "participant_ids": [user_id]});
        let path = format!("/api/v1/orgs/{org}/conversations");
        let (status, text) = self.post("create direct", &path, token, &body).await?;
        if status != StatusCode::CREATED && status != StatusCode::OK {
            return Err(bad("POST /api/v1/orgs/{org}/conversations", status, &text));
        }
        Ok(serde_json::from_str::<Created>(&text)
            .map_err(|e| format!("create direct: {e}"))?
            .id)
    }

    /// Sends one message; true when it was persisted (201). Anything else is counted in
    /// `errors`.
    pub async fn send_message(
        &self,
        token: &str,
        conversation: &str,
        content: &str,
        errors: &Errors,
    ) -> bool {
        let res = self
            .http
            .post(self.url(&format!("/api/v1/conversations/{conversation}/messages")))
            .header("authorization", format!("Bearer {token}"))
            .header("x-client-version", CLIENT_NAME)
            .json(&json!({"content": content, "format": "text"}))
            .send()
            .await;
        match res {
            Ok(r) if r.status() == StatusCode::CREATED => {
                // Read the body so that the connection goes back to the pool.
                let _ = r.bytes().await;
                true
            }
            Ok(r) => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                errors.add_with_sample(format!("send: HTTP {}", status.as_u16()), || {
                    bad("send message", status, &text)
                });
                false
            }
            Err(e) => {
                let kind = if e.is_timeout() {
                    "send: timeout"
                } else {
                    "send: transport error"
                };
                errors.add_with_sample(kind, || format!("send message: {e}"));
                false
            }
        }
    }
}

/// What the setup made: the users the connections sign in as (and the senders post as), and
/// conversations with the indices of their users. The owner that created the org and the
/// conversations has no gateway connection and sends nothing.
pub struct World {
    pub users: Vec<BenchUser>,
    pub conversations: Vec<(String, Vec<usize>)>,
    pub org: String,
    pub owner_token: String,
}

/// Creates `users` users plus an owner, one org with all of them as members, and a
/// conversation per group in `groups` (indices into the users; the owner is in every one).
pub async fn setup(
    api: &Api,
    admin_token: &str,
    run: &str,
    users: usize,
    groups: Vec<Vec<usize>>,
    concurrency: usize,
) -> Result<World, String> {
    let password = format!("conclave-bench-{run}-not-a-common-passphrase");
    let concurrency = concurrency.max(1);
    let started = std::time::Instant::now();

    let owner = api
        .create_user(admin_token, &format!("bn{run}-owner"), &password)
        .await?;
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let progress = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            tick.tick().await;
            loop {
                tick.tick().await;
                eprintln!(
                    "  setup: {}/{users} users created and signed in",
                    done.load(std::sync::atomic::Ordering::Relaxed)
                );
            }
        })
    };
    let created: Result<Vec<BenchUser>, String> = stream::iter(0..users)
        .map(|i| {
            let (api, password, done) = (api.clone(), password.clone(), done.clone());
            let name = format!("bn{run}-{i}");
            async move {
                let u = api.create_user(admin_token, &name, &password).await?;
                done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Ok(u)
            }
        })
        .buffered(concurrency)
        .try_collect()
        .await;
    progress.abort();
    let users = created?;
    eprintln!(
        "  setup: {} users + owner in {:.1}s",
        users.len(),
        started.elapsed().as_secs_f64()
    );

    let org = api
        .create_org(&owner.token, &format!("bench {run}"))
        .await?;
    stream::iter(users.iter())
        .map(|u| api.add_member(admin_token, &owner.token, &org, &u.id))
        .buffer_unordered(concurrency * 4)
        .try_collect::<Vec<()>>()
        .await?;

    let mut conversations = Vec::with_capacity(groups.len());
    for (c, members) in groups.into_iter().enumerate() {
        let ids: Vec<String> = members.iter().map(|&i| users[i].id.clone()).collect();
        let id = api
            .create_conversation(&owner.token, &org, &format!("bench {run} #{c}"), &ids)
            .await?;
        conversations.push((id, members));
    }
    eprintln!(
        "  setup: org, {} members, {} conversation(s) ready after {:.1}s",
        users.len(),
        conversations.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(World {
        users,
        conversations,
        org,
        owner_token: owner.token,
    })
}
