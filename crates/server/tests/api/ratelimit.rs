//! RATE-1, RATE-2, RATE-4, RATE-5: layered GCRA limits with 429 + `Retry-After` and
//! `RateLimit-*` headers, probes never limited, per-IP sign-in limits that a spoofed forwarding
//! header cannot dodge, buckets that refill as the (manual) clock moves, concurrent bursts that
//! cannot slip past a limit, two nodes sharing one limit through Redis, `rate_limits = off`,
//! and the connection cap and header-read and idle timeouts.
//!
//! The Redis tests need Redis (`CONCLAVE_TEST_REDIS_URL`, default `redis://127.0.0.1:6379`):
//! when it is unreachable they are skipped, except under `CI=true`, where they fail.

use crate::both_backends;
use crate::helpers::*;
use conclave_server::config::{Config, OnOff};
use conclave_server::startup::StartError;
use conclave_server::Application;
use reqwest::Method;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

both_backends!(
    limited_routes_carry_headers_and_probes_are_never_limited,
    over_the_limit_is_429_and_the_bucket_refills_with_the_clock,
    auth_routes_are_limited_per_ip_and_spoofed_forwarding_changes_nothing,
    parallel_logins_cannot_slip_past_the_limit,
    redis_over_the_limit_is_429_and_the_bucket_refills_with_the_clock,
    redis_parallel_logins_cannot_slip_past_the_limit,
    two_nodes_sharing_redis_enforce_one_limit,
    rate_limits_off_lifts_every_limit,
    keys_never_multiply_a_users_budget,
    securing_an_account_is_never_refused_by_the_write_limit,
);

/// The longest a network condition may take to show.
const WAIT: Duration = Duration::from_secs(15);

fn header(res: &Res, name: &str) -> Option<u64> {
    res.headers.get(name)?.to_str().ok()?.parse().ok()
}

/// `(limit, remaining, reset)` from the `RateLimit-*` headers; panics when one is missing.
#[track_caller]
fn rate_headers(res: &Res) -> (u64, u64, u64) {
    let get = |name| {
        header(res, name).unwrap_or_else(|| panic!("{name} missing; headers: {:?}", res.headers))
    };
    (
        get("ratelimit-limit"),
        get("ratelimit-remaining"),
        get("ratelimit-reset"),
    )
}

#[track_caller]
fn expect_rate_limited(res: Res) -> Res {
    let res = res.expect_error(429, "rate_limited");
    let retry = header(&res, "retry-after").expect("Retry-After on 429");
    assert!(retry >= 1, "Retry-After is whole seconds, at least 1");
    assert_eq!(rate_headers(&res).1, 0, "nothing remains on a 429");
    res
}

fn redis_test_url() -> String {
    std::env::var("CONCLAVE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// The Redis URL, or `None` (after saying so) when Redis is unreachable outside CI.
async fn redis() -> Option<String> {
    let url = redis_test_url();
    let ping = async {
        let client = redis::Client::open(url.as_str())?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await
    };
    let problem = match tokio::time::timeout(Duration::from_secs(5), ping).await {
        Ok(Ok(_)) => return Some(url),
        Ok(Err(e)) => e.to_string(),
        Err(_) => "no answer within 5 s".to_owned(),
    };
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("Redis is required under CI=true but unreachable at {url}: {problem}");
    }
    eprintln!("SKIPPED redis: {problem}");
    None
}

/// Moves every node's manual clock to the latest of them, so nodes agree on the time.
fn align_clocks(apps: &[&TestApp]) {
    use conclave_core::Clock;
    let latest = apps.iter().map(|a| a.clock.now()).max().expect("a node");
    for a in apps {
        a.clock.advance(latest - a.clock.now());
    }
}

/// A cluster name no other test (or earlier run) uses, so buckets start empty.
fn fresh_cluster_name() -> String {
    format!("conclave-test-{}", uuid::Uuid::now_v7().simple())
}

async fn limited_routes_carry_headers_and_probes_are_never_limited(app: TestApp) {
    // Defaults: a read is charged to the user's read bucket (burst 100), the tightest layer.
    let alice = app.user("alice").await;
    let me = app.get("/api/v1/users/@me", &alice.token).await.expect(200);
    let (limit, remaining, reset) = rate_headers(&me);
    assert_eq!((limit, remaining), (100, 99));
    assert_eq!(
        reset, 1,
        "one read refills in 0.2 s, reported in whole seconds"
    );
    // Errors of a limited route carry them too.
    let missing = app
        .call(Method::GET, "/api/v1/users/@me", None, None)
        .await
        .expect(401);
    rate_headers(&missing);
    // A tight per-IP limit is then the most constrained layer.
    let Some(tight) = spawn_app_with(app.backend, |c| {
        c.rate_limit.ip_per_min = 2;
        c.rate_limit.ip_burst = 2;
    })
    .await
    else {
        return;
    };
    for path in ["/health", "/health/ready", "/api/v1/openapi.json"] {
        for _ in 0..10 {
            let res = tight.call(Method::GET, path, None, None).await.expect(200);
            assert!(
                res.headers.get("ratelimit-limit").is_none(),
                "{path} is not limited"
            );
        }
    }
    let first = tight
        .call(Method::GET, "/api/v1/capabilities", None, None)
        .await
        .expect(200);
    assert_eq!(rate_headers(&first), (2, 1, 30));
    let second = tight
        .call(Method::GET, "/api/v1/capabilities", None, None)
        .await
        .expect(200);
    assert_eq!(rate_headers(&second).1, 0);
    let denied = expect_rate_limited(
        tight
            .call(Method::GET, "/api/v1/capabilities", None, None)
            .await,
    );
    assert_eq!(header(&denied, "retry-after"), Some(30));
    assert!(denied.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("per-IP"));
    // Probes still answer while the client is limited.
    tight
        .call(Method::GET, "/health/ready", None, None)
        .await
        .expect(200);
    // CORS lets browsers read the headers.
    let cors = tight
        .send(
            tight
                .client
                .get(tight.url("/health"))
                .header("origin", "https://allowed.example"),
        )
        .await;
    let exposed = cors.headers["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for name in [
        "retry-after",
        "ratelimit-limit",
        "ratelimit-remaining",
        "ratelimit-reset",
    ] {
        assert!(exposed.contains(name), "{name} exposed: {exposed}");
    }
}

/// Reads limited to a burst of 2, one per 10 s: the third read is 429; moving the clock by
/// `Retry-After` lets exactly one more through. Writes and other users have their own buckets.
async fn tight_reads_refill_with_the_clock(app: &TestApp) {
    let alice = app.user("alice").await;
    for remaining in [1, 0] {
        let res = app.get("/api/v1/users/@me", &alice.token).await.expect(200);
        assert_eq!(rate_headers(&res), (2, remaining, 20 - 10 * remaining));
    }
    let denied = expect_rate_limited(app.get("/api/v1/users/@me", &alice.token).await);
    assert_eq!(header(&denied, "retry-after"), Some(10));
    assert_eq!(header(&denied, "ratelimit-reset"), Some(20));
    assert!(denied.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("per-user limit on reads"));
    // Another user, and this user's writes, are not affected.
    let bob = app.user("bob").await;
    app.get("/api/v1/users/@me", &bob.token).await.expect(200);
    let org = app
        .post("/api/v1/orgs", &alice.token, json!({"name": "Acme"}))
        .await
        .expect(201);
    assert_eq!(rate_headers(&org).0, 20, "the write bucket's burst");
    // Nine seconds are not enough; ten are, for exactly one read.
    app.clock.advance(chrono::Duration::seconds(9));
    let denied = expect_rate_limited(app.get("/api/v1/users/@me", &alice.token).await);
    assert_eq!(header(&denied, "retry-after"), Some(1));
    app.clock.advance(chrono::Duration::seconds(1));
    let res = app.get("/api/v1/users/@me", &alice.token).await.expect(200);
    assert_eq!(rate_headers(&res).1, 0);
    expect_rate_limited(app.get("/api/v1/users/@me", &alice.token).await);
    // A long pause fills the bucket, and not beyond its burst.
    app.clock.advance(chrono::Duration::minutes(10));
    let res = app.get("/api/v1/users/@me", &alice.token).await.expect(200);
    assert_eq!(rate_headers(&res).1, 1);
}

fn tight_reads(c: &mut Config) {
    c.rate_limit.user_reads_per_min = 6;
    c.rate_limit.user_reads_burst = 2;
}

async fn over_the_limit_is_429_and_the_bucket_refills_with_the_clock(app: TestApp) {
    let Some(app) = spawn_app_with(app.backend, tight_reads).await else {
        return;
    };
    tight_reads_refill_with_the_clock(&app).await;
}

async fn redis_over_the_limit_is_429_and_the_bucket_refills_with_the_clock(app: TestApp) {
    let Some(url) = redis().await else {
        return;
    };
    let Some(app) = spawn_app_with(app.backend, |c| {
        tight_reads(c);
        c.redis_url = Some(url);
        c.cluster_name = fresh_cluster_name();
    })
    .await
    else {
        return;
    };
    tight_reads_refill_with_the_clock(&app).await;
}

async fn login_from(app: &TestApp, forwarded: Option<(&str, &str)>, username: &str) -> Res {
    let mut rb = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"username": username, "password": "not the password"}));
    if let Some((name, value)) = forwarded {
        rb = rb.header(name, value);
    }
    app.send(rb).await
}

async fn auth_routes_are_limited_per_ip_and_spoofed_forwarding_changes_nothing(app: TestApp) {
    let tight = |c: &mut Config| {
        c.rate_limit.auth_per_min = 3;
        c.rate_limit.auth_burst = 3;
    };
    // Untrusted peer: whatever it claims, it is 127.0.0.1.
    let Some(direct) = spawn_app_with(app.backend, tight).await else {
        return;
    };
    let spoofs = [
        ("x-forwarded-for", "10.9.9.1"),
        ("x-forwarded-for", "10.9.9.2, 10.9.9.3"),
        ("forwarded", "for=10.9.9.4"),
        ("x-forwarded-for", "10.9.9.5"),
        ("forwarded", "for=\"[2001:db8::5]:4711\""),
    ];
    // Distinct unknown names, so the failed-login back-off (AUTH-5) plays no part.
    for (i, spoof) in spoofs[..3].iter().enumerate() {
        login_from(&direct, Some(*spoof), &format!("nobody{i}"))
            .await
            .expect(401);
    }
    for spoof in &spoofs[3..] {
        let denied = expect_rate_limited(login_from(&direct, Some(*spoof), "nobody9").await);
        assert_eq!(header(&denied, "retry-after"), Some(20));
        assert!(denied.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sign-in"));
    }
    // Registration is a sign-in route too; other routes are not charged to that bucket.
    expect_rate_limited(
        direct
            .call(
                Method::POST,
                "/api/v1/auth/register",
                None,
                Some(json!({"username": "carol", "password": PASSWORD})),
            )
            .await,
    );
    direct
        .call(Method::GET, "/api/v1/capabilities", None, None)
        .await
        .expect(200);

    // Behind a trusted proxy the forwarded client gets its own bucket.
    let Some(proxied) = spawn_app_with(app.backend, |c| {
        tight(c);
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await
    else {
        return;
    };
    let first = ("x-forwarded-for", "10.0.0.1");
    for i in 0..3 {
        login_from(&proxied, Some(first), &format!("ghost{i}"))
            .await
            .expect(401);
    }
    expect_rate_limited(login_from(&proxied, Some(first), "ghost3").await);
    // The proxy appends the address it saw: a client-written entry before it changes nothing.
    expect_rate_limited(
        login_from(
            &proxied,
            Some(("x-forwarded-for", "10.0.0.77, 10.0.0.1")),
            "ghost4",
        )
        .await,
    );
    login_from(&proxied, Some(("x-forwarded-for", "10.0.0.2")), "ghost5")
        .await
        .expect(401);
    // Only the configured header (here `X-Forwarded-For`) is read: `Forwarded` is the peer's.
    login_from(
        &proxied,
        Some(("forwarded", "for=\"10.0.0.3:4711\"")),
        "ghost6",
    )
    .await
    .expect(401);
    login_from(&proxied, None, "ghost7").await.expect(401);
}

/// 100 concurrent logins against a sign-in limit of `LIMIT`, spread over `apps`: exactly
/// `LIMIT` get past the limiter (200, or 503 `busy` when the password pool is full).
async fn parallel_logins(apps: &[&TestApp]) {
    const LIMIT: usize = 7;
    apps[0].user("dave").await;
    // Registration and login used two of the IP's sign-in budget: start from a full bucket.
    for a in apps {
        a.clock.advance(chrono::Duration::minutes(10));
    }
    let attempts = (0..100).map(|i| {
        let app = apps[i % apps.len()];
        app.login("dave", PASSWORD)
    });
    let results = futures::future::join_all(attempts).await;
    let limited = results
        .iter()
        .filter(|r| r.status.as_u16() == 429 && r.code() == "rate_limited")
        .count();
    let through: Vec<(u16, String)> = results
        .iter()
        .filter(|r| r.code() != "rate_limited")
        .map(|r| (r.status.as_u16(), r.code().to_owned()))
        .collect();
    assert_eq!(through.len(), LIMIT, "exactly the limit got through");
    assert_eq!(limited, 100 - LIMIT);
    // Past the limiter, each sign-in reserves an attempt on the AUTH-5 counters before its
    // password is checked; one refused while others are in flight waits for them (up to 2 s),
    // so only a machine too loaded to finish them in time answers the back-off instead.
    assert!(
        through
            .iter()
            .all(|(s, c)| *s == 200 || *s == 503 || (*s == 429 && c == "too_many_attempts")),
        "the ones let through signed in, met a busy hasher or the back-off: {through:?}"
    );
    assert!(
        through.iter().any(|(s, _)| *s == 200),
        "at least one signed in: {through:?}"
    );
}

fn parallel_limit(c: &mut Config) {
    c.rate_limit.auth_per_min = 7;
    c.rate_limit.auth_burst = 7;
}

async fn parallel_logins_cannot_slip_past_the_limit(app: TestApp) {
    let Some(app) = spawn_app_with(app.backend, parallel_limit).await else {
        return;
    };
    parallel_logins(&[&app]).await;
}

async fn redis_parallel_logins_cannot_slip_past_the_limit(app: TestApp) {
    let Some(url) = redis().await else {
        return;
    };
    let Some(app) = spawn_app_with(app.backend, |c| {
        parallel_limit(c);
        c.redis_url = Some(url);
        c.cluster_name = fresh_cluster_name();
    })
    .await
    else {
        return;
    };
    parallel_logins(&[&app]).await;
}

async fn two_nodes_sharing_redis_enforce_one_limit(app: TestApp) {
    let Some(url) = redis().await else {
        return;
    };
    let cluster = fresh_cluster_name();
    let node = |c: &mut Config| {
        c.redis_url = Some(url.clone());
        c.cluster_name = cluster.clone();
        c.rate_limit.ip_per_min = 4;
        c.rate_limit.ip_burst = 4;
    };
    let (Some(a), Some(b)) = (
        spawn_app_with(app.backend, node).await,
        spawn_app_with(app.backend, node).await,
    ) else {
        return;
    };
    align_clocks(&[&a, &b]);
    // One per-IP bucket for both nodes: the budget counts down across them.
    for (i, remaining) in [3, 2, 1, 0].into_iter().enumerate() {
        let n = if i % 2 == 0 { &a } else { &b };
        let res = n
            .call(Method::GET, "/api/v1/capabilities", None, None)
            .await
            .expect(200);
        assert_eq!(rate_headers(&res).1, remaining);
    }
    for n in [&a, &b] {
        expect_rate_limited(
            n.call(Method::GET, "/api/v1/capabilities", None, None)
                .await,
        );
    }
    // Another cluster name is another set of buckets.
    let Some(other) = spawn_app_with(app.backend, |c| {
        node(c);
        c.cluster_name = fresh_cluster_name();
    })
    .await
    else {
        return;
    };
    other
        .call(Method::GET, "/api/v1/capabilities", None, None)
        .await
        .expect(200);

    // A concurrent burst across both nodes gets exactly one sign-in limit through.
    let Some(c1) = spawn_app_with(app.backend, |c| {
        parallel_limit(c);
        c.redis_url = Some(url.clone());
        c.cluster_name = cluster.clone() + "-logins";
    })
    .await
    else {
        return;
    };
    let Some(c2) = spawn_app_with(app.backend, |c| {
        parallel_limit(c);
        c.redis_url = Some(url.clone());
        c.cluster_name = cluster.clone() + "-logins";
    })
    .await
    else {
        return;
    };
    align_clocks(&[&c1, &c2]);
    // Each node has its own database here (only the limits are shared): dave signs up on both.
    c2.user("dave").await;
    parallel_logins(&[&c1, &c2]).await;
}

async fn rate_limits_off_lifts_every_limit(app: TestApp) {
    let Some(off) = spawn_app_with(app.backend, |c| {
        c.rate_limits = OnOff::Off;
        c.rate_limit.ip_per_min = 1;
        c.rate_limit.ip_burst = 1;
        c.rate_limit.auth_per_min = 1;
        c.rate_limit.auth_burst = 1;
        c.rate_limit.user_reads_per_min = 1;
        c.rate_limit.user_reads_burst = 1;
    })
    .await
    else {
        return;
    };
    let alice = off.user("alice").await;
    for i in 0..3 {
        let res = off.get("/api/v1/users/@me", &alice.token).await.expect(200);
        assert!(res.headers.get("ratelimit-limit").is_none());
        login_from(&off, None, &format!("nobody{i}"))
            .await
            .expect(401);
    }
}

/// A TCP relay to Redis that the test can cut, to stage an outage.
struct Relay {
    url: String,
    tasks: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Relay {
    async fn start(redis_url: &str) -> Relay {
        let upstream = redis_url
            .trim_start_matches("redis://")
            .trim_end_matches('/')
            .to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("redis://{}", listener.local_addr().unwrap());
        let tasks = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let list = tasks.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let pipe = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                list.lock().unwrap().push(pipe);
            }
        });
        tasks.lock().unwrap().push(accept);
        Relay { url, tasks }
    }

    /// Stops accepting and drops every relayed connection.
    fn cut(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

/// A Redis outage at run time fails open: requests go on, unlimited, without `RateLimit-*`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_fails_open() {
    let Some(url) = redis().await else {
        return;
    };
    let relay = Relay::start(&url).await;
    let Some(app) = spawn_app_with(Backend::Sqlite, |c| {
        c.redis_url = Some(relay.url.clone());
        c.cluster_name = fresh_cluster_name();
        c.rate_limit.ip_per_min = 2;
        c.rate_limit.ip_burst = 2;
    })
    .await
    else {
        return;
    };
    for _ in 0..2 {
        let res = app
            .call(Method::GET, "/api/v1/capabilities", None, None)
            .await
            .expect(200);
        rate_headers(&res);
    }
    expect_rate_limited(
        app.call(Method::GET, "/api/v1/capabilities", None, None)
            .await,
    );
    relay.cut();
    for _ in 0..3 {
        let started = Instant::now();
        let res = app
            .call(Method::GET, "/api/v1/capabilities", None, None)
            .await
            .expect(200);
        assert!(res.headers.get("ratelimit-limit").is_none());
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "a Redis outage does not stall requests"
        );
    }
}

/// Redis named but unreachable: the node refuses to start rather than limit per node unnoticed.
#[tokio::test]
async fn unreachable_redis_is_a_start_error() {
    let dir = TempDir(std::env::temp_dir().join(format!("conclave-test-{}", uuid::Uuid::now_v7())));
    let config = Config {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.0.clone(),
        redis_url: Some("redis://127.0.0.1:1".into()),
        ..Config::default()
    };
    let clock = std::sync::Arc::new(conclave_core::ManualClock::default());
    match Application::build(config, clock).await {
        Err(StartError::RateLimits(_)) => {}
        Err(other) => panic!("expected a rate-limit start error, got {other}"),
        Ok(_) => panic!("a node with an unreachable Redis must not start"),
    }
}

/// Reads until the server closes the connection; `Err` with what was read if it stays open.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Result<String, String> {
    let mut seen = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    };
    let closed = tokio::time::timeout(limit, read).await.is_ok();
    let text = String::from_utf8_lossy(&seen).into_owned();
    if closed {
        Ok(text)
    } else {
        Err(text)
    }
}

/// Reads one response with a `Content-Length` body.
async fn read_response(stream: &mut TcpStream) -> String {
    let read = async {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = stream.read(&mut buf).await.expect("read");
            assert!(
                n > 0,
                "closed before a response: {:?}",
                String::from_utf8_lossy(&seen)
            );
            seen.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&seen).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                if body.len() >= length {
                    return text;
                }
            }
        }
    };
    tokio::time::timeout(WAIT, read).await.expect("a response")
}

const HEALTH: &[u8] = b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n";

/// RATE-5: a slow header is cut at the header-read timeout (a silent new connection too),
/// while an idle keep-alive connection lives until the idle timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_timed_out() {
    let Some(app) = spawn_app_with(Backend::Sqlite, |c| {
        c.rate_limit.header_read_timeout_secs = 1;
        c.rate_limit.idle_timeout_secs = 3;
    })
    .await
    else {
        return;
    };
    let addr = app.base.trim_start_matches("http://").to_owned();

    // Half a request head, then nothing: closed after about a second.
    let started = Instant::now();
    let mut slow = TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: loc")
        .await
        .unwrap();
    closed_within(&mut slow, WAIT)
        .await
        .expect("a slow header is cut");
    assert!(started.elapsed() >= Duration::from_millis(900));

    // Connecting and saying nothing is no way around it.
    let mut silent = TcpStream::connect(&addr).await.unwrap();
    closed_within(&mut silent, WAIT)
        .await
        .expect("a silent connection is cut");

    // Keep-alive: idle longer than the header timeout is fine, longer than the idle timeout not.
    let mut kept = TcpStream::connect(&addr).await.unwrap();
    kept.write_all(HEALTH).await.unwrap();
    assert!(read_response(&mut kept).await.starts_with("HTTP/1.1 200"));
    // Proving a non-event: the connection must still be open after the header timeout.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    kept.write_all(HEALTH).await.unwrap();
    assert!(read_response(&mut kept).await.starts_with("HTTP/1.1 200"));
    let idle_from = Instant::now();
    closed_within(&mut kept, WAIT)
        .await
        .expect("an idle keep-alive connection is closed");
    assert!(
        idle_from.elapsed() >= Duration::from_millis(2_500),
        "closed by the idle timeout (3 s), not the header timeout: {:?}",
        idle_from.elapsed()
    );
}

/// A response sent before the request body was read (here 413) closes the connection and
/// says so, so a client does not send its next request down a closing socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_answer_says_connection_close() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let addr = app.base.trim_start_matches("http://").to_owned();
    let (mut rx, mut tx) = TcpStream::connect(&addr).await.unwrap().into_split();
    let size = 3 * 1024 * 1024;
    let head = format!(
        "POST /api/v1/auth/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {size}\r\n\r\n"
    );
    // The server stops reading at its body limit; the rest of the upload may fail.
    let upload = tokio::spawn(async move {
        tx.write_all(head.as_bytes()).await?;
        let chunk = vec![b' '; 64 * 1024];
        for _ in 0..size / chunk.len() {
            tx.write_all(&chunk).await?;
        }
        Ok::<_, std::io::Error>(())
    });
    let read_head = async {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = rx.read(&mut buf).await.expect("read");
            assert!(n > 0, "closed before a response");
            seen.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&seen).to_ascii_lowercase()
    };
    let head = tokio::time::timeout(WAIT, read_head)
        .await
        .expect("a response");
    upload.abort();
    assert!(head.starts_with("http/1.1 413"), "{head}");
    assert!(head.contains("\r\nconnection: close\r\n"), "{head}");
}

/// Proves a non-event: nothing arrives on `stream` for a short while.
async fn stays_unanswered(stream: &mut TcpStream) {
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_millis(400), stream.read(&mut buf)).await;
    assert!(
        read.is_err(),
        "answered while the server was at its connection cap"
    );
}

/// RATE-5: at `max_connections` a further client waits until a connection closes; an upgraded
/// WebSocket holds its place too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_capped() {
    let Some(app) = spawn_app_with(Backend::Sqlite, |c| {
        c.rate_limit.max_connections = 2;
        c.rate_limit.header_read_timeout_secs = 60;
    })
    .await
    else {
        return;
    };
    let addr = app.base.trim_start_matches("http://").to_owned();
    let first = TcpStream::connect(&addr).await.unwrap();
    let second = TcpStream::connect(&addr).await.unwrap();
    let mut third = TcpStream::connect(&addr).await.unwrap();
    third.write_all(HEALTH).await.unwrap();
    stays_unanswered(&mut third).await;
    drop(first);
    assert!(read_response(&mut third).await.starts_with("HTTP/1.1 200"));

    // A WebSocket keeps its place after the upgrade: with it and one answered keep-alive
    // connection open, a further client waits until the socket closes.
    drop(second);
    drop(third);
    let ws = crate::ws::Ws::connect(&app).await;
    let mut kept = TcpStream::connect(&addr).await.unwrap();
    kept.write_all(HEALTH).await.unwrap();
    assert!(read_response(&mut kept).await.starts_with("HTTP/1.1 200"));
    let mut fourth = TcpStream::connect(&addr).await.unwrap();
    fourth.write_all(HEALTH).await.unwrap();
    stays_unanswered(&mut fourth).await;
    drop(ws);
    assert!(read_response(&mut fourth).await.starts_with("HTTP/1.1 200"));
}

/// RATE-1/AUTH-7: six `free` keys of one user, used in parallel, share that user's write
/// bucket (it was one bucket per key: 60 of 60 sends passed); keys of a higher tier share one
/// bucket per (owner, tier).
async fn keys_never_multiply_a_users_budget(app: TestApp) {
    let Some(app) = spawn_app_with(app.backend, |c| {
        c.rate_limit.user_writes_per_min = 6;
        c.rate_limit.user_writes_burst = 5;
        c.rate_limit.tier_pro_per_sec = 3;
    })
    .await
    else {
        return;
    };
    let alice = app.user("alice").await;
    let org = app.org(&alice, "Acme").await;
    let conv = app.group(&org, &alice, &[], json!("private")).await;
    let scopes = json!(["messages:write", "messages:read"]);
    let mut free = Vec::new();
    for i in 0..6 {
        app.clock.advance(chrono::Duration::minutes(1));
        let (_, key) = crate::keys::make_key(
            &app,
            &alice,
            json!({"name": format!("free{i}"), "org_id": org, "scopes": scopes}),
        )
        .await;
        free.push(key);
    }
    // Pro keys: only an org admin sets a tier; Alice owns the org.
    let mut pro = Vec::new();
    for i in 0..2 {
        app.clock.advance(chrono::Duration::minutes(1));
        let (_, key) = crate::keys::make_key(
            &app,
            &alice,
            json!({"name": format!("pro{i}"), "org_id": org, "scopes": scopes, "tier": "pro"}),
        )
        .await;
        pro.push(key);
    }
    // A full bucket, then 60 sends at once spread over the six free keys.
    app.clock.advance(chrono::Duration::minutes(10));
    let path = format!("/api/v1/conversations/{conv}/messages");
    let sends = (0..60).map(|i| app.post(&path, &free[i % free.len()], json!({"content": "hi"})));
    let results = futures::future::join_all(sends).await;
    let sent = results.iter().filter(|r| r.status.as_u16() == 201).count();
    let limited = results
        .iter()
        .filter(|r| r.status.as_u16() == 429 && r.code() == "rate_limited")
        .count();
    assert_eq!((sent, limited), (5, 55), "one user, one write budget");
    // The keys spent Alice's own budget: her session cannot write either.
    expect_rate_limited(app.send_message(&conv, &alice, "me too").await);
    // Two pro keys of one owner: one pro bucket (3 per second), not one per key.
    let sends = (0..20).map(|i| app.post(&path, &pro[i % pro.len()], json!({"content": "hi"})));
    let results = futures::future::join_all(sends).await;
    let sent = results.iter().filter(|r| r.status.as_u16() == 201).count();
    assert_eq!(sent, 3, "one bucket per (owner, tier)");
    assert!(results
        .iter()
        .all(|r| r.status.as_u16() == 201 || r.code() == "rate_limited"));
}

/// RATE-1: signing out, revoking sessions and turning 2FA on still work once the per-user
/// write budget is spent.
async fn securing_an_account_is_never_refused_by_the_write_limit(app: TestApp) {
    let Some(app) = spawn_app_with(app.backend, |c| {
        c.rate_limit.user_writes_per_min = 2;
        c.rate_limit.user_writes_burst = 2;
    })
    .await
    else {
        return;
    };
    let alice = app.user("alice").await;
    let other = app.login("alice", PASSWORD).await.expect(200).body["session"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.login("alice", PASSWORD).await.expect(200);
    // Spend the write budget.
    loop {
        let r = app
            .post("/api/v1/orgs", &alice.token, json!({"name": "Acme"}))
            .await;
        if r.status.as_u16() == 429 {
            break;
        }
        r.expect(201);
    }
    expect_rate_limited(
        app.post("/api/v1/orgs", &alice.token, json!({"name": "Acme"}))
            .await,
    );
    app.delete(&format!("/api/v1/auth/sessions/{other}"), &alice.token)
        .await
        .expect(204);
    app.post(
        "/api/v1/auth/sessions/revoke-others",
        &alice.token,
        json!({}),
    )
    .await
    .expect(200);
    crate::mfa::enable_2fa(&app, &alice).await;
    app.call(
        Method::POST,
        "/api/v1/auth/logout",
        Some(&alice.token),
        None,
    )
    .await
    .expect(204);
    app.get("/api/v1/users/@me", &alice.token)
        .await
        .expect_error(401, "invalid_token");
}

/// RATE-5: a body that trickles in is answered 408 (the JSON error shape) once the body
/// timeout has passed, and the connection is closed; a body that arrives in time is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_body_is_cut_at_the_body_timeout() {
    let Some(app) = spawn_app_with(Backend::Sqlite, |c| {
        c.rate_limit.body_timeout_secs = 1;
        c.rate_limit.header_read_timeout_secs = 60;
    })
    .await
    else {
        return;
    };
    let addr = app.base.trim_start_matches("http://").to_owned();
    let body = br#"{"username": "nobody", "password": "not the password"}"#;
    let mut slow = TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /api/v1/auth/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    // One byte now and then, never the whole body (the test ends before it would).
    let started = Instant::now();
    let (mut rx, mut tx) = slow.into_split();
    let trickle = tokio::spawn(async move {
        for byte in body.iter().take(body.len() - 1) {
            if tx.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        std::future::pending::<()>().await;
    });
    let mut seen = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match rx.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(WAIT, read)
        .await
        .expect("the connection is closed");
    trickle.abort();
    let text = String::from_utf8_lossy(&seen).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 408"), "{text}");
    assert!(text.contains("\r\nconnection: close\r\n"), "{text}");
    assert!(text.contains("x-request-id"), "{text}");
    assert!(text.contains(r#""code":"request_timeout""#), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "cut near the timeout, not when the body ends: {:?}",
        started.elapsed()
    );
    // A whole body in time is served as usual.
    let res = login_from(&app, None, "nobody").await;
    res.expect_error(401, "invalid_credentials");
}

/// RATE-5: at `max_connections_per_ip` a further connection from that address is answered
/// 429 and closed; once one closes, the address may connect again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_ip_are_capped() {
    let Some(app) = spawn_app_with(Backend::Sqlite, |c| {
        c.rate_limit.max_connections_per_ip = 2;
        c.rate_limit.header_read_timeout_secs = 60;
    })
    .await
    else {
        return;
    };
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut first = TcpStream::connect(&addr).await.unwrap();
    first.write_all(HEALTH).await.unwrap();
    assert!(read_response(&mut first).await.starts_with("HTTP/1.1 200"));
    let _second = TcpStream::connect(&addr).await.unwrap();
    let mut third = TcpStream::connect(&addr).await.unwrap();
    let refused = closed_within(&mut third, WAIT)
        .await
        .expect("the third connection is closed");
    assert!(refused.starts_with("HTTP/1.1 429"), "{refused}");
    assert!(
        refused.contains(r#""code":"too_many_connections""#),
        "{refused}"
    );
    drop(first);
    // Wait until the server has seen the close: then a new connection is served.
    let served = async {
        loop {
            let mut next = TcpStream::connect(&addr).await.unwrap();
            next.write_all(HEALTH).await.unwrap();
            let text = closed_within(&mut next, Duration::from_millis(300))
                .await
                .unwrap_or_else(|open| open);
            if text.starts_with("HTTP/1.1 200") {
                return;
            }
            assert!(
                text.is_empty() || text.starts_with("HTTP/1.1 429"),
                "{text}"
            );
        }
    };
    tokio::time::timeout(WAIT, served)
        .await
        .expect("a slot frees up when a connection closes");

    // `rate_limits = off` lifts the per-IP cap (load tests run many clients from one address).
    let Some(off) = spawn_app_with(Backend::Sqlite, |c| {
        c.rate_limits = OnOff::Off;
        c.rate_limit.max_connections_per_ip = 2;
        c.rate_limit.header_read_timeout_secs = 60;
    })
    .await
    else {
        return;
    };
    let addr = off.base.trim_start_matches("http://").to_owned();
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(&addr).await.unwrap());
    }
    let mut last = TcpStream::connect(&addr).await.unwrap();
    last.write_all(HEALTH).await.unwrap();
    assert!(read_response(&mut last).await.starts_with("HTTP/1.1 200"));
}
