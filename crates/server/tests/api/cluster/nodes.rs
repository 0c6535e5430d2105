//! The cluster under test: `conclave serve` processes sharing one PostgreSQL database and one
//! NATS stream, started together and stopped (with their stream deleted) when dropped.

use super::*;
use crate::helpers::{conv_path, org_path};

/// The cache TTL of cluster nodes.
pub(super) const CACHE_TTL_MS: u64 = 60_000;

/// One `conclave serve` process; killed (and its data dir removed) when dropped.
pub(super) struct Node {
    pub(super) name: &'static str,
    pub(super) base: String,
    pub(super) dir: PathBuf,
    pub(super) child: Option<Child>,
    /// What configures it besides its port and data dir (kept for `relaunch`).
    env: Vec<(&'static str, String)>,
}

/// What every node of one cluster shares.
pub(super) struct Shared {
    pub(super) database_url: String,
    pub(super) cluster_name: String,
    pub(super) master_key: String,
}

impl Node {
    /// A node of the cluster `shared` describes.
    pub(super) fn spawn(name: &'static str, shared: &Shared) -> Node {
        Node::launch(
            name,
            vec![
                ("CONCLAVE_DATABASE_URL", shared.database_url.clone()),
                ("CONCLAVE_NATS_URL", nats_url()),
                ("CONCLAVE_CLUSTER_NAME", shared.cluster_name.clone()),
                ("CONCLAVE_MASTER_KEY", shared.master_key.clone()),
                // Long enough that what another node refuses at once, it refuses because an
                // event invalidated its cache, not because its copy expired.
                ("CONCLAVE_CACHE__TTL_MS", CACHE_TTL_MS.to_string()),
            ],
        )
    }

    /// A node on its own: the embedded SQLite database in its data dir, or the PostgreSQL
    /// database `database_url` names; no NATS; `more` configures it further.
    pub(super) fn alone(
        name: &'static str,
        database_url: Option<String>,
        more: &[(&'static str, &str)],
    ) -> Node {
        let mut env: Vec<_> = more.iter().map(|(k, v)| (*k, v.to_string())).collect();
        env.extend(database_url.map(|url| ("CONCLAVE_DATABASE_URL", url)));
        Node::launch(name, env)
    }

    fn launch(name: &'static str, env: Vec<(&'static str, String)>) -> Node {
        let dir = std::env::temp_dir().join(format!(
            "conclave-cluster-{name}-{}",
            uuid::Uuid::now_v7().simple()
        ));
        std::fs::create_dir_all(&dir).expect("node dir");
        let mut node = Node {
            name,
            base: String::new(),
            dir,
            child: None,
            env,
        };
        node.start();
        node
    }

    /// Starts the process on a fresh port, over the node's data dir and database.
    fn start(&mut self) {
        let port = free_port();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("node.log"))
            .expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_conclave"));
        cmd.arg("serve");
        // Only what is set here configures the node.
        for (key, _) in std::env::vars() {
            if key.starts_with("CONCLAVE_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("CONCLAVE_LISTEN", format!("127.0.0.1:{port}"))
            .env("CONCLAVE_DATA_DIR", self.dir.join("data"))
            .env("CONCLAVE_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("CONCLAVE_REGISTRATION", "open")
            .env("RUST_LOG", "info,sqlx=warn")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log);
        self.child = Some(cmd.spawn().expect("start conclave serve"));
        self.base = format!("http://127.0.0.1:{port}");
    }

    /// SIGKILL (no shutdown of any kind), then the same node again over the same data.
    pub(super) fn relaunch(&mut self) {
        self.kill();
        self.start();
    }

    pub(super) fn ws_url(&self) -> String {
        format!("{}/gateway?v=1", self.base.replacen("http", "ws", 1))
    }

    pub(super) fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Polls `GET /health/ready` until it answers 200.
    pub(super) async fn wait_ready(&mut self, http: &reqwest::Client) {
        let deadline = Instant::now() + START;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "node {} exited during start ({status}):\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            let res = http
                .get(format!("{}/health/ready", self.base))
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if res.is_ok_and(|r| r.status() == 200) {
                return;
            }
            self.assert_before(deadline, format_args!("not ready after {START:?}"));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Fails, naming `what` went wrong and showing the node's log, once `deadline` has passed.
    fn assert_before(&self, deadline: Instant, what: std::fmt::Arguments<'_>) {
        let (name, now) = (&self.name, Instant::now());
        assert!(now < deadline, "node {name} {what}:\n{}", self.log_tail());
    }

    /// SIGTERM: the graceful shutdown path.
    pub(super) fn terminate(&self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {}", self.pid());
    }

    /// Waits (polling) for the process to exit.
    pub(super) async fn exited(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            let child = self.child.as_mut().expect("running");
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status;
            }
            self.assert_before(
                deadline,
                format_args!("still running {limit:?} after SIGTERM"),
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub(super) fn log_tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.join("node.log")) {
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            let _ = f.seek(SeekFrom::Start(len.saturating_sub(6000)));
            let _ = f.read_to_string(&mut text);
        }
        text
    }

    pub(super) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "---- node {} log (tail) ----\n{}",
                self.name,
                self.log_tail()
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Two nodes, A and B, of one fresh cluster. Dropping it stops both and deletes the cluster's
/// NATS stream.
pub(super) struct Cluster {
    pub(super) a: Node,
    pub(super) b: Node,
    pub(super) http: reqwest::Client,
    pub(super) stream: String,
    /// The NATS subject the nodes publish their events to.
    pub(super) subject: String,
}

impl Cluster {
    /// Starts both nodes together, or says why it cannot (see `skip`).
    pub(super) async fn start() -> Option<Cluster> {
        match tokio::time::timeout(Duration::from_secs(5), async_nats::connect(nats_url())).await {
            Ok(Ok(client)) => {
                // Any JetStream API answer will do (the typed account info varies by version).
                let info = client.request("$JS.API.INFO", "".into()).await;
                if let Err(e) = info {
                    skip(&format!("NATS has no JetStream: {e}"));
                    return None;
                }
            }
            Ok(Err(e)) => {
                skip(&format!("NATS unreachable: {e}"));
                return None;
            }
            Err(_) => {
                skip("NATS unreachable: connect timed out");
                return None;
            }
        }
        let Some(database_url) = fresh_postgres_db().await else {
            skip("PostgreSQL unreachable");
            return None;
        };
        use base64::Engine;
        let key: [u8; 32] = rand::random();
        let cluster_name = format!("ct{}", uuid::Uuid::new_v4().simple());
        let shared = Shared {
            database_url,
            master_key: base64::engine::general_purpose::STANDARD.encode(key),
            cluster_name: cluster_name.clone(),
        };
        let http = reqwest::Client::builder()
            .timeout(WAIT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("http client");
        let mut a = Node::spawn("A", &shared);
        let mut b = Node::spawn("B", &shared);
        tokio::join!(a.wait_ready(&http), b.wait_ready(&http));
        Some(Cluster {
            a,
            b,
            http,
            stream: format!("{}_EVENTS", cluster_name.to_uppercase()),
            subject: format!("{cluster_name}.events"),
        })
    }

    pub(super) async fn call(
        &self,
        node: &Node,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> (u16, Value) {
        self.request(node, (reqwest::Method::POST, path), token, Some(body))
            .await
    }

    /// `method path` through `node`, with a bearer `token` and a JSON `body` when given.
    pub(super) async fn request(
        &self,
        node: &Node,
        (method, path): (reqwest::Method, &str),
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut rb = self.http.request(method, format!("{}{path}", node.base));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let res = within(path, rb.send()).await.expect("request sent");
        let status = res.status().as_u16();
        let body = within(path, res.bytes()).await.expect("body");
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// Registers and signs in `username` through `node`: (user id, token).
    pub(super) async fn user(&self, node: &Node, username: &str) -> (String, String) {
        let creds = json!({"username": username, "password": PASSWORD});
        let (status, body) = self
            .call(node, "/api/v1/auth/register", None, creds.clone())
            .await;
        assert_eq!(status, 201, "register {username} on {}: {body}", node.name);
        let id = body["user"]["id"].as_str().expect("user id").to_owned();
        let (status, body) = self.call(node, "/api/v1/auth/login", None, creds).await;
        assert_eq!(status, 200, "login {username} on {}: {body}", node.name);
        (id, body["token"].as_str().expect("token").to_owned())
    }

    /// Sends `content` in `conv` through `node`; answers the message.
    pub(super) async fn send(&self, node: &Node, conv: &str, token: &str, content: &str) -> Value {
        let (status, body) = self
            .call(
                node,
                &conv_path(conv, "/messages"),
                Some(token),
                json!({"content": content}),
            )
            .await;
        assert_eq!(status, 201, "send on {}: {body}", node.name);
        body
    }

    /// alice and bob (registered on A and B), and a private group of theirs created on A.
    pub(super) async fn world(&self) -> World {
        let (alice_id, alice) = self.user(&self.a, "alice").await;
        let (bob_id, bob) = self.user(&self.b, "bob").await;
        let (status, org) = self
            .call(
                &self.a,
                "/api/v1/orgs",
                Some(&alice),
                json!({"name": "Acme"}),
            )
            .await;
        assert_eq!(status, 201, "org: {org}");
        let org = org["id"].as_str().expect("org id").to_owned();
        let (status, body) = self
            .call(
                &self.a,
                &format!("/api/v1/admin/orgs/{org}/members"),
                Some(ADMIN_TOKEN),
                json!({"user_id": bob_id, "role": "member"}),
            )
            .await;
        assert_eq!(status, 201, "member: {body}");
        let (status, conv) = self
            .call(
                &self.a,
                &org_path(&org, "/conversations"),
                Some(&alice),
                json!({"kind": "group", "name": "General", "visibility": "private", "participant_ids": [bob_id]}),
            )
            .await;
        assert_eq!(status, 201, "conversation: {conv}");
        World {
            alice_id,
            alice,
            bob,
            conv: conv["id"].as_str().expect("conversation id").to_owned(),
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Stop the nodes first: a running node would recreate the stream.
        self.a.kill();
        self.b.kill();
        let stream = self.stream.clone();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                let _ = tokio::time::timeout(Duration::from_secs(5), async {
                    if let Ok(client) = async_nats::connect(nats_url()).await {
                        let _ = async_nats::jetstream::new(client)
                            .delete_stream(&stream)
                            .await;
                    }
                })
                .await;
            });
        })
        .join();
    }
}

pub(super) struct World {
    pub(super) alice_id: String,
    pub(super) alice: String,
    pub(super) bob: String,
    pub(super) conv: String,
}
