//! Webhook delivery throughput (BENCHMARKS.md), run by hand:
//! `cargo test -p conclave-server --test api -- webhooks::bench --ignored --nocapture`.
//! `ENDPOINTS` endpoints on one local receiver each hear `MESSAGES` messages; the worker's one
//! turn queues every event and sends every delivery (each endpoint in order, endpoints in
//! parallel, 64 at a time). Reported: deliveries per second of wall time for that turn.

use super::*;
use chrono::Duration;
use std::time::Instant;

const ENDPOINTS: usize = 20;
const MESSAGES: usize = 100;

async fn measure(h: Hooked) {
    let (app, rx) = (&h.app, &h.rx[0]);
    let (alice, org, conv) = h.acme().await;
    for n in 0..ENDPOINTS {
        make_hook(
            app,
            &org,
            &alice,
            &format!("{}?n={n}", rx.url()),
            &["message.created"],
        )
        .await;
    }
    for i in 0..MESSAGES {
        app.says(&conv, &alice, &format!("m{i}")).await;
    }
    let started = Instant::now();
    run_worker(app, Duration::seconds(1)).await;
    let took = started.elapsed();
    let n = rx.received().len();
    assert_eq!(n, ENDPOINTS * MESSAGES);
    println!(
        "webhooks {:?}: {n} deliveries ({ENDPOINTS} endpoints x {MESSAGES} messages) in {:.2} s = {:.0} deliveries/s",
        app.backend,
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run by hand (BENCHMARKS.md)"]
async fn sqlite() {
    if let Some(h) = hooked(Backend::Sqlite).await {
        measure(h).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run by hand (BENCHMARKS.md)"]
async fn postgres() {
    if let Some(h) = hooked(Backend::Postgres).await {
        measure(h).await;
    }
}
