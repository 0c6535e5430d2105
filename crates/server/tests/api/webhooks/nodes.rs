//! The queue across processes: a restarted node delivers what its predecessor queued, and two
//! nodes sharing one PostgreSQL database deliver every event exactly once, each endpoint in
//! order. Nodes run in this process, on one manual clock, each with its own listener and worker.

use super::receiver::Receiver;
use super::*;
use chrono::Duration;
use conclave_core::ManualClock;
use conclave_server::config::{Config, OnOff};
use conclave_server::Application;
use secrecy::SecretString;
use std::collections::HashMap;
use std::sync::Arc;

crate::both_backends!(
    a_restarted_node_delivers_what_was_queued,
    each_delivery_checks_the_url_again,
);

/// One node; dropping `stop` shuts it down.
struct Node {
    app: TestApp,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Node {
    async fn start(config: Config, clock: Arc<ManualClock>, backend: Backend, keep: bool) -> Self {
        let data_dir = config.data_dir.clone();
        let database_url = config.database_url.clone();
        let app = Application::build(config, clock.clone())
            .await
            .expect("the node builds");
        let base = format!("http://127.0.0.1:{}", app.port());
        let services = app.state().services.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let done = tokio::spawn(app.run_until(async move {
            let _ = rx.await;
        }));
        // Only the first node's guard removes the shared data directory.
        let owned = if keep {
            data_dir.clone()
        } else {
            std::env::temp_dir().join(format!("conclave-unused-{}", uuid::Uuid::now_v7()))
        };
        Self {
            app: TestApp {
                base,
                client: reqwest::Client::new(),
                clock,
                backend,
                data_dir,
                database_url,
                services,
                _data: TempDir(owned),
            },
            stop: Some(tx),
            done,
        }
    }

    async fn shut_down(mut self) -> TestApp {
        let _ = self.stop.take().expect("running").send(());
        self.done.await.expect("joined").expect("served");
        self.app
    }
}

/// A node configuration over `database_url` (a SQLite file in `dir` when `None`), letting
/// through the receivers' ports.
fn config(dir: &std::path::Path, database_url: Option<String>, rx: &[&Receiver]) -> Config {
    Config {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.to_path_buf(),
        admin_token: Some(SecretString::from(ADMIN_TOKEN)),
        bootstrap_token: Some(SecretString::from(BOOTSTRAP_TOKEN)),
        registration: conclave_core::types::RegistrationMode::Open,
        database_url,
        webhook_allow_cidrs: vec!["127.0.0.1/32".parse().unwrap()],
        webhook_allow_ports: rx.iter().map(|r| r.port).collect(),
        rate_limits: OnOff::Off,
        ..Config::default()
    }
}

async fn database(backend: Backend) -> Option<Option<String>> {
    match backend {
        Backend::Sqlite => Some(None),
        Backend::Postgres => Some(Some(fresh_postgres_db().await?)),
    }
}

/// A node on a fresh database of the backend with one receiver and alice's endpoint in Acme
/// for `message.created`, for the tests that start a second node on the same database and data
/// directory.
struct Restart {
    backend: Backend,
    db: Option<String>,
    rx: Receiver,
    dir: std::path::PathBuf,
    clock: Arc<ManualClock>,
    alice: User,
    org: String,
    hook: String,
}

impl Restart {
    /// Replaces `app` by a first node; `None` when the backend's database is unavailable.
    async fn first(app: TestApp) -> Option<(Self, Node)> {
        let backend = app.backend;
        drop(app);
        let db = database(backend).await?;
        let rx = Receiver::start().await;
        let dir = std::env::temp_dir().join(format!("conclave-test-{}", uuid::Uuid::now_v7()));
        let clock = Arc::new(ManualClock::default());
        let first = Node::start(
            config(&dir, db.clone(), &[&rx]),
            clock.clone(),
            backend,
            true,
        )
        .await;
        let (alice, org, hook) = alice_hook(&first.app, &rx).await;
        let this = Self {
            backend,
            db,
            rx,
            dir,
            clock,
            alice,
            org,
            hook,
        };
        Some((this, first))
    }

    fn config(&self) -> Config {
        config(&self.dir, self.db.clone(), &[&self.rx])
    }

    async fn start(&self, config: Config, keep: bool) -> Node {
        Node::start(config, self.clock.clone(), self.backend, keep).await
    }
}

async fn a_restarted_node_delivers_what_was_queued(app: TestApp) {
    let Some((r, first)) = Restart::first(app).await else {
        return;
    };
    let (rx, alice, org, hook) = (&r.rx, &r.alice, &r.org, &r.hook);
    let app = &first.app;
    let conv = app.group(org, alice, &[], json!("org")).await;
    rx.answer(&[500]);
    let sent = app.says(&conv, alice, "survives").await.id();
    run_worker(app, Duration::seconds(1)).await;
    assert_eq!(rx.received().len(), 1, "the first attempt failed");
    let first_app = first.shut_down().await;

    // A new process on the same database picks the queued retry up.
    let second = r.start(r.config(), false).await;
    run_worker(&second.app, Duration::minutes(5)).await;
    let got = rx.received();
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].json()["data"]["id"], sent);
    assert_eq!(got[0].header("webhook-id"), got[1].header("webhook-id"));
    let log = deliveries(&second.app, org, hook, alice).await;
    assert_eq!(log[0]["status"], "delivered");
    assert_eq!(log[0]["attempts"], 2);
    drop(first_app);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_deliver_each_event_exactly_once_in_order() {
    let Some(Some(db)) = database(Backend::Postgres).await else {
        return;
    };
    let rx = Receiver::start().await;
    let dir = std::env::temp_dir().join(format!("conclave-test-{}", uuid::Uuid::now_v7()));
    let clock = Arc::new(ManualClock::default());
    let a = Node::start(
        config(&dir, Some(db.clone()), &[&rx]),
        clock.clone(),
        Backend::Postgres,
        true,
    )
    .await;
    let b = Node::start(
        config(&dir, Some(db), &[&rx]),
        clock.clone(),
        Backend::Postgres,
        false,
    )
    .await;
    let alice = a.app.user("alice").await;
    let org = a.app.org(&alice, "Acme").await;
    let conv = a.app.group(&org, &alice, &[], json!("org")).await;
    const ENDPOINTS: usize = 6;
    const MESSAGES: usize = 30;
    for n in 0..ENDPOINTS {
        make_hook(
            &a.app,
            &org,
            &alice,
            &format!("{}?n={n}", rx.url()),
            &["message.created"],
        )
        .await;
    }
    // Messages go through both nodes; some attempts fail and are retried.
    rx.answer(&[500, 502, 503]);
    let mut sent = Vec::new();
    for i in 0..MESSAGES {
        let node = if i % 2 == 0 { &a.app } else { &b.app };
        sent.push(
            node.send_message(&conv, &alice, &format!("m{i}"))
                .await
                .expect(201)
                .id(),
        );
    }
    for _ in 0..6 {
        run_worker(&a.app, Duration::minutes(2)).await;
    }
    let got = rx.received();
    // Per endpoint: every message delivered once (after any failed attempts), in send order.
    let mut per_endpoint: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for r in &got {
        per_endpoint.entry(r.uri.clone()).or_default().push((
            r.json()["data"]["id"].as_str().unwrap().to_owned(),
            r.header("webhook-id").to_owned(),
        ));
    }
    assert_eq!(per_endpoint.len(), ENDPOINTS);
    for (uri, seen) in &per_endpoint {
        let mut order: Vec<String> = Vec::new();
        for (id, _) in seen {
            if order.last() != Some(id) {
                order.push(id.clone());
            }
        }
        assert_eq!(order, sent, "{uri}: in order, each once");
    }
    assert_eq!(
        got.len(),
        ENDPOINTS * MESSAGES + 3,
        "only the 3 failures were sent twice"
    );
    drop(b);
    drop(a);
}

/// A URL accepted once is checked again at every attempt: after a restart without the
/// allowlist, the loopback receiver is refused at delivery, nothing reaches it, and the log says
/// why (the rule, not the address).
async fn each_delivery_checks_the_url_again(app: TestApp) {
    let Some((r, first)) = Restart::first(app).await else {
        return;
    };
    let (rx, alice, org, hook) = (&r.rx, &r.alice, &r.org, &r.hook);
    let first_app = first.shut_down().await;

    let mut strict = r.config();
    strict.webhook_allow_cidrs = vec![];
    let second = r.start(strict, false).await;
    second
        .app
        .post_empty(&format!("{}/{hook}/test", hooks(org)), &alice.token)
        .await
        .expect(202);
    run_worker(&second.app, Duration::seconds(1)).await;
    assert!(rx.received().is_empty(), "nothing reached the receiver");
    let log = deliveries(&second.app, org, hook, alice).await;
    assert_eq!(log[0]["status"], "pending");
    assert_eq!(log[0]["attempts"], 1);
    let error = log[0]["last_error"].as_str().unwrap();
    assert!(error.contains("loopback"), "{error}");
    assert!(!error.contains("127.0.0.1"), "{error}");
    drop(first_app);
}
