//! `spawn_app`: a real server on port 0 with a fresh database (a temp SQLite file, or a new
//! PostgreSQL database), a manual clock, and helpers that speak HTTP to it like a client would.

use conclave_core::ManualClock;
use conclave_server::config::Config;
use conclave_server::Application;
use reqwest::{Method, StatusCode};
use secrecy::SecretString;
use serde_json::{json, Value};
use std::sync::Arc;

pub const ADMIN_TOKEN: &str = "test-management-token-0123456789abcdef";
pub const BOOTSTRAP_TOKEN: &str = "test-bootstrap-token-0123456789abcdef";
pub const PASSWORD: &str = "a long and unusual passphrase";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub clock: Arc<ManualClock>,
    pub backend: Backend,
    /// Where this node keeps its master key (and, on SQLite, its database), and its database
    /// URL: a second node given both shares the database and keys, not the fan-out.
    pub data_dir: std::path::PathBuf,
    pub database_url: Option<String>,
    /// The node's services, for driving what no HTTP route starts (an agent's answer).
    pub services: conclave_core::service::Services,
    pub _data: TempDir,
}

/// A temporary directory removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A signed-in test user; `name` labels them in the failure message of a request table.
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub id: String,
    pub token: String,
}

impl User {
    /// The same account, calling with another credential (an impersonation or API key).
    pub fn with_token(&self, token: &str) -> User {
        let token = token.to_owned();
        User {
            token,
            ..self.clone()
        }
    }
    /// An account known only by its id (a bot, an unknown id): it has no credential.
    pub fn without_token(name: &str, id: &str) -> User {
        let (name, id) = (name.to_owned(), id.to_owned());
        User {
            name,
            id,
            token: String::new(),
        }
    }
}

fn postgres_admin_url() -> String {
    std::env::var("CONCLAVE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".into())
}

/// A fresh PostgreSQL database, or `None` (after saying so) when PostgreSQL is unreachable
/// outside CI. Under `CI=true` an unreachable PostgreSQL fails the test.
pub(crate) async fn fresh_postgres_db() -> Option<String> {
    use sqlx::Connection;
    let admin = postgres_admin_url();
    let mut conn = match sqlx::PgConnection::connect(&admin).await {
        Ok(c) => c,
        Err(e) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("PostgreSQL is required under CI=true but unreachable at {admin}: {e}");
            }
            eprintln!("SKIPPED (postgres unreachable: {e})");
            return None;
        }
    };
    let name = format!("conclave_api_{}", uuid::Uuid::now_v7().simple());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let (prefix, _) = admin.rsplit_once('/').expect("database url has a path");
    Some(format!("{prefix}/{name}"))
}

pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, |_| {}).await
}

/// The same kind of app as `app` (its backend), without request and connection limits: for
/// cases that make more requests than one user's budget.
pub async fn unlimited(app: TestApp) -> TestApp {
    spawn_app_unlimited(app.backend)
        .await
        .expect("the app starts")
}

/// An app without rate limits: for tests whose point is many requests from one user or one
/// address (the limits have tests of their own).
pub async fn spawn_app_unlimited(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, |c| {
        c.rate_limits = conclave_server::config::OnOff::Off
    })
    .await
}

/// Spawns the app after `tweak` adjusts the configuration.
pub async fn spawn_app_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Option<TestApp> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("error")
        .with_test_writer()
        .try_init();
    let dir = std::env::temp_dir().join(format!("conclave-test-{}", uuid::Uuid::now_v7()));
    let database_url = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(fresh_postgres_db().await?),
    };
    let mut config = Config {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.clone(),
        admin_token: Some(SecretString::from(ADMIN_TOKEN)),
        bootstrap_token: Some(SecretString::from(BOOTSTRAP_TOKEN)),
        registration: conclave_core::types::RegistrationMode::Open,
        cors_origins: vec!["https://allowed.example".into()],
        database_url,
        ..Config::default()
    };
    tweak(&mut config);
    let (data_dir, database_url) = (config.data_dir.clone(), config.database_url.clone());
    let clock = Arc::new(ManualClock::default());
    let app = Application::build(config, clock.clone())
        .await
        .expect("the app builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    let services = app.state().services.clone();
    tokio::spawn(app.run_until(std::future::pending()));
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    Some(TestApp {
        base,
        client,
        clock,
        backend,
        data_dir,
        database_url,
        services,
        _data: TempDir(dir),
    })
}

/// Spawns the app after `tweak` adjusts the configuration, and answers the configuration it
/// runs with (for the CLI commands a test runs beside it); panics if it cannot start.
pub async fn spawn_app_and_config(
    backend: Backend,
    tweak: impl FnOnce(&mut Config),
) -> (TestApp, Config) {
    let mut config = None;
    let app = spawn_app_with(backend, |c| {
        tweak(c);
        config = Some(c.clone());
    })
    .await
    .expect("the app starts");
    (app, config.expect("the configuration"))
}

/// Runs one test body against both backends, as two `#[tokio::test]`s. The body takes what
/// `spawn_app` gives, or with `with <setup>;` first what `setup(backend)` gives (`None` skips).
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        $crate::both_backends!(with $crate::helpers::spawn_app; $($name),*);
    };
    (with $setup:path; $($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(app) = $setup($crate::helpers::Backend::Sqlite).await {
                        super::$name(app).await;
                    }
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(app) = $setup($crate::helpers::Backend::Postgres).await {
                        super::$name(app).await;
                    }
                }
            )*
        }
    };
}

/// Of answers given at once, those with status `ok`; every other one must be the error
/// `refused` (status and code) — a limit's refusal, never a failure.
#[track_caller]
pub fn only(answers: Vec<Res>, ok: u16, refused: (u16, &str)) -> Vec<Res> {
    let (passed, others): (Vec<Res>, Vec<Res>) = answers
        .into_iter()
        .partition(|res| res.status.as_u16() == ok);
    for res in others {
        res.expect_error(refused.0, refused.1);
    }
    passed
}

/// A response: status, headers and JSON body (`Null` when empty or not JSON).
pub struct Res {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Res {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }
    /// The error's message (panics when the body is not an error).
    #[track_caller]
    pub fn message(&self) -> &str {
        match self.body["error"]["message"].as_str() {
            Some(m) => m,
            None => panic!("an error message in {}", self.body),
        }
    }
    pub fn field(&self) -> Option<&str> {
        self.body["error"]["field"].as_str()
    }
    #[track_caller]
    pub fn expect(self, status: u16) -> Self {
        self.check(status, None, "")
    }
    #[track_caller]
    pub fn expect_error(self, status: u16, code: &str) -> Self {
        self.check(status, Some(code), "")
    }
    /// Expects `status` and, given a `code`, a complete JSON error with that code; `case`
    /// (when not empty) names the request in the failure message.
    #[track_caller]
    pub fn check(self, status: u16, code: Option<&str>, case: &str) -> Self {
        let got = self.status.as_u16();
        assert_eq!(got, status, "{case}unexpected status; body: {}", self.body);
        let Some(code) = code else { return self };
        let body = &self.body;
        assert_eq!(
            self.code(),
            code,
            "{case}unexpected error code; body: {body}"
        );
        let error = &body["error"];
        assert!(
            error["message"].is_string(),
            "{case}error has a message: {body}"
        );
        let request_id = error["request_id"].as_str();
        let has_id = request_id.is_some_and(|r| !r.is_empty());
        assert!(has_id, "{case}error has a request id: {body}");
        self
    }
    /// The `items` of a list answer.
    #[track_caller]
    pub fn items(&self) -> Vec<Value> {
        match self.body["items"].as_array() {
            Some(items) => items.clone(),
            None => panic!("`items` in {}", self.body),
        }
    }
    /// The ids of the `items` of a list answer, in order.
    #[track_caller]
    pub fn ids(&self) -> Vec<String> {
        let ids: Option<Vec<String>> = self
            .items()
            .iter()
            .map(|i| i["id"].as_str().map(str::to_owned))
            .collect();
        ids.unwrap_or_else(|| panic!("an `id` on every item of {}", self.body))
    }
    pub fn id(&self) -> String {
        self.body["id"].as_str().expect("an id").to_owned()
    }
    /// A string field of the body (`token`, `key`, …).
    #[track_caller]
    pub fn string(&self, field: &str) -> String {
        match self.body[field].as_str() {
            Some(v) => v.to_owned(),
            None => panic!("a string `{field}` in {}", self.body),
        }
    }
    /// The strings of an array field of the body (`recovery_codes`, …).
    #[track_caller]
    pub fn strings(&self, field: &str) -> Vec<String> {
        let strings = self.body[field].as_array().map(|a| {
            let each = a.iter().map(|v| v.as_str().map(str::to_owned));
            each.collect::<Option<Vec<String>>>()
        });
        match strings.flatten() {
            Some(strings) => strings,
            None => panic!("an array of strings `{field}` in {}", self.body),
        }
    }
    /// `name=value` of the session cookie a cookie sign-in set.
    pub fn session_cookie(&self) -> String {
        let header = self.headers.get("set-cookie").expect("a Set-Cookie header");
        let text = header.to_str().expect("an ASCII cookie");
        text.split(';').next().unwrap_or_default().to_owned()
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn send(&self, rb: reqwest::RequestBuilder) -> Res {
        let res = rb.send().await.expect("request sent");
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.bytes().await.expect("body");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Res {
            status,
            headers,
            body,
        }
    }

    /// A JSON request with an optional bearer token.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Res {
        let mut rb = self.client.request(method, self.url(path));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        self.send(rb).await
    }

    /// A GET without credentials.
    pub async fn get_anon(&self, path: &str) -> Res {
        self.call(Method::GET, path, None, None).await
    }
    /// A GET without credentials but with one extra request header.
    pub async fn get_with_header(&self, path: &str, name: &str, value: &str) -> Res {
        self.send(self.client.get(self.url(path)).header(name, value))
            .await
    }

    /// A POST without a body (leave, logout, accept…).
    pub async fn post_empty(&self, path: &str, token: &str) -> Res {
        self.call(Method::POST, path, Some(token), None).await
    }

    /// A POST without credentials.
    pub async fn post_anon(&self, path: &str, body: Value) -> Res {
        self.call(Method::POST, path, None, Some(body)).await
    }
    pub async fn get(&self, path: &str, token: &str) -> Res {
        self.call(Method::GET, path, Some(token), None).await
    }
    pub async fn post(&self, path: &str, token: &str, body: Value) -> Res {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }
    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Res {
        self.call(Method::PATCH, path, Some(token), Some(body))
            .await
    }
    pub async fn put(&self, path: &str, token: &str, body: Value) -> Res {
        self.call(Method::PUT, path, Some(token), Some(body)).await
    }
    pub async fn delete(&self, path: &str, token: &str) -> Res {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    /// The first server admin, signed in.
    pub async fn bootstrap(&self) -> User {
        let res = self
            .call(
                Method::POST,
                "/api/v1/auth/bootstrap",
                None,
                Some(json!({"bootstrap_token": BOOTSTRAP_TOKEN, "username": "root-admin", "password": PASSWORD})),
            )
            .await
            .expect(201);
        User {
            name: "root-admin".into(),
            id: res.body["user"]["id"].as_str().unwrap().into(),
            token: res.body["token"].as_str().unwrap().into(),
        }
    }

    /// Registers (open registration) and signs in a new user.
    pub async fn user(&self, username: &str) -> User {
        let res = self
            .call(
                Method::POST,
                "/api/v1/auth/register",
                None,
                Some(json!({"username": username, "password": PASSWORD})),
            )
            .await
            .expect(201);
        let id = res.body["user"]["id"].as_str().unwrap().to_owned();
        let token = self.login(username, PASSWORD).await.expect(200).body["token"]
            .as_str()
            .unwrap()
            .to_owned();
        let name = username.to_owned();
        User { name, id, token }
    }

    pub async fn login(&self, username: &str, password: &str) -> Res {
        self.call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": username, "password": password})),
        )
        .await
    }

    /// An org owned by `owner`.
    pub async fn org(&self, owner: &User, name: &str) -> String {
        self.create_org(owner, name).await.expect(201).id()
    }

    /// `owner` asks for a new org `name`.
    pub async fn create_org(&self, owner: &User, name: &str) -> Res {
        let body = json!({ "name": name });
        self.post("/api/v1/orgs", &owner.token, body).await
    }

    /// Puts `who` in the org with `role` the way people join (AZ-7): `by` invites them with
    /// that role (so `by` must be allowed to grant it) and they accept with the code.
    pub async fn add_member(&self, org: &str, by: &User, who: &User, role: &str) {
        let body = json!({"role": role, "max_uses": 1});
        let code = self.invite(org, by, body).await.expect(201).string("code");
        self.join(who, &code).await.expect(200);
    }

    /// `by` creates an invite to `org` (by code, or for a `username`) from `body`.
    pub async fn invite(&self, org: &str, by: &User, body: Value) -> Res {
        self.post(&org_path(org, "/invites"), &by.token, body).await
    }

    /// The `items` of a list answered to `token` (200 expected).
    pub async fn items(&self, path: &str, token: &str) -> Vec<Value> {
        self.get(path, token).await.expect(200).items()
    }

    /// The page after `prev` of the list at `first` (a path with its query), as `token` reads
    /// it (200 expected).
    pub async fn next_page(&self, first: &str, prev: &Res, token: &str) -> Res {
        let path = format!("{first}&before={}", prev.string("next"));
        self.get(&path, token).await.expect(200)
    }

    /// `user` with a fresh session (after the clock moved past the old one's end).
    pub async fn sign_in_again(&self, username: &str, user: User) -> User {
        self.sign_in_again_with(username, PASSWORD, user).await
    }

    /// `user` with a fresh session, signed in with `password`.
    pub async fn sign_in_again_with(&self, username: &str, password: &str, user: User) -> User {
        let token = self.login(username, password).await.expect(200).body["token"]
            .as_str()
            .unwrap()
            .to_owned();
        User { token, ..user }
    }

    /// Adds `who` directly, as automation with the management token does (AZ-7).
    pub async fn admin_add_member(&self, org: &str, who: &User, role: &str) -> Res {
        self.call(
            Method::POST,
            &format!("/api/v1/admin/orgs/{org}/members"),
            Some(ADMIN_TOKEN),
            Some(json!({"user_id": who.id, "role": role})),
        )
        .await
    }

    /// A group conversation in `org` created by `owner` with `others`.
    pub async fn group(
        &self,
        org: &str,
        owner: &User,
        others: &[&User],
        visibility: Value,
    ) -> String {
        let ids: Vec<&str> = others.iter().map(|u| u.id.as_str()).collect();
        self.post(
            &org_path(org, "/conversations"),
            &owner.token,
            json!({"kind": "group", "name": "General", "visibility": visibility, "participant_ids": ids}),
        )
        .await
        .expect(201)
        .id()
    }

    pub async fn send_message(&self, conv: &str, by: &User, content: &str) -> Res {
        self.post(
            &conv_path(conv, "/messages"),
            &by.token,
            json!({"content": content}),
        )
        .await
    }

    /// `by` sends `content` to `conv` (201 expected).
    pub async fn says(&self, conv: &str, by: &User, content: &str) -> Res {
        self.send_message(conv, by, content).await.expect(201)
    }

    /// How many messages a participant sees (for "nothing was written" checks).
    pub async fn message_count(&self, conv: &str, by: &User) -> usize {
        self.get(&conv_path(conv, "/messages?limit=100"), &by.token)
            .await
            .expect(200)
            .items()
            .len()
    }
}

/// The path of conversation `c`, followed by `rest` (`""`, `"/messages"`, …).
/// A JSON POST with a bearer token, for callers without the app at hand (a spawned sender, a
/// node that may be killed meanwhile): the status and the answer (null when it is not JSON),
/// or `None` when no answer came.
pub async fn post_json(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    body: Value,
) -> Option<(u16, Value)> {
    let res = http
        .post(url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .ok()?;
    let status = res.status().as_u16();
    let body = res.bytes().await.ok()?;
    Some((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}

pub fn conv_path(c: &str, rest: &str) -> String {
    format!("/api/v1/conversations/{c}{rest}")
}

/// The path of org `org`, followed by `rest` (`""`, `"/members"`, …).
pub fn org_path(org: &str, rest: &str) -> String {
    format!("/api/v1/orgs/{org}{rest}")
}

/// Asserts that each of `want` is among `have` (e.g. audit events), naming what is missing.
#[track_caller]
pub fn assert_includes(have: &[&str], want: &[&str]) {
    for w in want {
        assert!(have.contains(w), "{w} is missing from {have:?}");
    }
}

/// The string `field` of each element of the array `list`.
#[track_caller]
pub fn pluck<'a>(list: &'a Value, field: &str) -> Vec<&'a str> {
    let Some(items) = list.as_array() else {
        panic!("an array, not {list}");
    };
    let each = items.iter().map(|item| match item[field].as_str() {
        Some(v) => v,
        None => panic!("a string `{field}` in {item}"),
    });
    each.collect()
}

/// Every header of a request a fake server received, as text (`""` where not text).
pub fn header_pairs(headers: &axum::http::HeaderMap) -> Vec<(String, String)> {
    let text = |v: &axum::http::HeaderValue| v.to_str().unwrap_or("").to_owned();
    (headers.iter())
        .map(|(k, v)| (k.as_str().to_owned(), text(v)))
        .collect()
}

/// A port that was free a moment ago (for a server that must know its port before it starts).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local addr").port()
}

/// Serves `router` in the background on 127.0.0.1, on a free port (a fake server a test talks
/// to): answers the port.
pub async fn serve_locally(router: axum::Router) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, router).await });
    port
}
