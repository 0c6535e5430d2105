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
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod buckets;
mod connections;
mod shared_limits;

use buckets::*;
use shared_limits::*;

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
    a_keys_tier_lasts_while_its_owner_may_give_it,
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

/// A per-IP limit of `n` a minute with a burst of `n`.
fn ip_limit(n: u64) -> impl Fn(&mut Config) {
    move |c| {
        c.rate_limit.ip_per_min = n;
        c.rate_limit.ip_burst = n;
    }
}

/// A node of a cluster named `cluster` that shares its limits through Redis at `url`, with
/// `tweak` applied; `None` when the test is skipped.
async fn redis_node(
    backend: Backend,
    url: &str,
    cluster: &str,
    tweak: impl FnOnce(&mut Config),
) -> Option<TestApp> {
    spawn_app_with(backend, |c| {
        tweak(c);
        c.redis_url = Some(url.to_owned());
        c.cluster_name = cluster.to_owned();
    })
    .await
}

/// A failed sign-in from this client, claiming `forwarded` (a header name and value) if given.
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
