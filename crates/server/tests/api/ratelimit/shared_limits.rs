//! Limits shared through Redis: one budget across nodes and concurrent bursts, a Redis outage
//! failing open, and an unreachable Redis refusing to start.

use super::*;

pub(super) async fn redis_over_the_limit_is_429_and_the_bucket_refills_with_the_clock(
    app: TestApp,
) {
    let Some(url) = redis().await else {
        return;
    };
    let cluster = fresh_cluster_name();
    if let Some(app) = redis_node(app.backend, &url, &cluster, tight_reads).await {
        tight_reads_refill_with_the_clock(&app).await;
    }
}

pub(super) async fn redis_parallel_logins_cannot_slip_past_the_limit(app: TestApp) {
    let Some(url) = redis().await else {
        return;
    };
    let cluster = fresh_cluster_name();
    if let Some(app) = redis_node(app.backend, &url, &cluster, parallel_limit).await {
        parallel_logins(&[&app]).await;
    }
}

pub(super) async fn two_nodes_sharing_redis_enforce_one_limit(app: TestApp) {
    let Some(url) = redis().await else {
        return;
    };
    let cluster = fresh_cluster_name();
    let (Some(a), Some(b)) = (
        redis_node(app.backend, &url, &cluster, ip_limit(4)).await,
        redis_node(app.backend, &url, &cluster, ip_limit(4)).await,
    ) else {
        return;
    };
    align_clocks(&[&a, &b]);
    // One per-IP bucket for both nodes: the budget counts down across them.
    for (i, remaining) in [3, 2, 1, 0].into_iter().enumerate() {
        let n = if i % 2 == 0 { &a } else { &b };
        let res = n.get_anon("/api/v1/capabilities").await.expect(200);
        assert_eq!(rate_headers(&res).1, remaining);
    }
    for n in [&a, &b] {
        expect_rate_limited(n.get_anon("/api/v1/capabilities").await);
    }
    // Another cluster name is another set of buckets.
    let Some(other) = redis_node(app.backend, &url, &fresh_cluster_name(), ip_limit(4)).await
    else {
        return;
    };
    other.get_anon("/api/v1/capabilities").await.expect(200);

    // A concurrent burst across both nodes gets exactly one sign-in limit through.
    let logins = cluster + "-logins";
    let (Some(c1), Some(c2)) = (
        redis_node(app.backend, &url, &logins, parallel_limit).await,
        redis_node(app.backend, &url, &logins, parallel_limit).await,
    ) else {
        return;
    };
    align_clocks(&[&c1, &c2]);
    // Each node has its own database here (only the limits are shared): dave signs up on both.
    c2.user("dave").await;
    parallel_logins(&[&c1, &c2]).await;
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
    let cluster = fresh_cluster_name();
    let Some(app) = redis_node(Backend::Sqlite, &relay.url, &cluster, ip_limit(2)).await else {
        return;
    };
    for _ in 0..2 {
        rate_headers(&app.get_anon("/api/v1/capabilities").await.expect(200));
    }
    expect_rate_limited(app.get_anon("/api/v1/capabilities").await);
    relay.cut();
    for _ in 0..3 {
        let started = Instant::now();
        let res = app.get_anon("/api/v1/capabilities").await.expect(200);
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
