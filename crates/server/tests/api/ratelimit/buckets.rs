//! Per-user and per-IP buckets: headers, 429 with `Retry-After`, refills as the manual clock
//! moves, sign-in limits a spoofed forwarding header cannot dodge, concurrent bursts, keys that
//! share their owner's budget, and `rate_limits = off`.

use super::*;
use crate::cases::Caller;

pub(super) async fn limited_routes_carry_headers_and_probes_are_never_limited(app: TestApp) {
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
    let missing = app.get_anon("/api/v1/users/@me").await.expect(401);
    rate_headers(&missing);
    // A tight per-IP limit is then the most constrained layer.
    let Some(tight) = spawn_app_with(app.backend, ip_limit(2)).await else {
        return;
    };
    for path in ["/health", "/health/ready", "/api/v1/openapi.json"] {
        for _ in 0..10 {
            let res = tight.get_anon(path).await.expect(200);
            assert!(
                res.headers.get("ratelimit-limit").is_none(),
                "{path} is not limited"
            );
        }
    }
    let first = tight.get_anon("/api/v1/capabilities").await.expect(200);
    assert_eq!(rate_headers(&first), (2, 1, 30));
    let second = tight.get_anon("/api/v1/capabilities").await.expect(200);
    assert_eq!(rate_headers(&second).1, 0);
    let denied = expect_rate_limited(tight.get_anon("/api/v1/capabilities").await);
    assert_eq!(header(&denied, "retry-after"), Some(30));
    assert!(denied.message().contains("per-IP"));
    // Probes still answer while the client is limited.
    tight.get_anon("/health/ready").await.expect(200);
    // So is opening the gateway (each IDENTIFY, with its access-token check, comes with a
    // connection): no faster than requests.
    expect_rate_limited(tight.get_anon("/gateway?v=1").await);
    let Some(fresh) = spawn_app_with(app.backend, ip_limit(2)).await else {
        return;
    };
    for _ in 0..2 {
        fresh
            .get_anon("/gateway?v=1")
            .await
            .expect_error(400, "not_a_websocket");
    }
    expect_rate_limited(fresh.get_anon("/gateway?v=1").await);
    expect_rate_limited(fresh.get_anon("/api/v1/capabilities").await);
    // CORS lets browsers read the headers.
    let cors = tight
        .get_with_header("/health", "origin", "https://allowed.example")
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
pub(super) async fn tight_reads_refill_with_the_clock(app: &TestApp) {
    let alice = app.user("alice").await;
    for remaining in [1, 0] {
        let res = app.get("/api/v1/users/@me", &alice.token).await.expect(200);
        assert_eq!(rate_headers(&res), (2, remaining, 20 - 10 * remaining));
    }
    let denied = expect_rate_limited(app.get("/api/v1/users/@me", &alice.token).await);
    assert_eq!(header(&denied, "retry-after"), Some(10));
    assert_eq!(header(&denied, "ratelimit-reset"), Some(20));
    assert!(denied.message().contains("per-user limit on reads"));
    // Another user, and this user's writes, are not affected.
    let bob = app.user("bob").await;
    app.get("/api/v1/users/@me", &bob.token).await.expect(200);
    let org = app.create_org(&alice, "Acme").await.expect(201);
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

pub(super) fn tight_reads(c: &mut Config) {
    read_limit(6, 2)(c);
}

/// A per-user read budget of `per_min` a minute with a burst of `burst`.
fn read_limit(per_min: u64, burst: u64) -> impl Fn(&mut Config) {
    move |c| {
        c.rate_limit.user_reads_per_min = per_min;
        c.rate_limit.user_reads_burst = burst;
    }
}

/// A per-user write budget of `per_min` a minute with a burst of `burst`.
fn write_limit(per_min: u64, burst: u64) -> impl Fn(&mut Config) {
    move |c| {
        c.rate_limit.user_writes_per_min = per_min;
        c.rate_limit.user_writes_burst = burst;
    }
}

pub(super) async fn over_the_limit_is_429_and_the_bucket_refills_with_the_clock(app: TestApp) {
    let Some(app) = spawn_app_with(app.backend, tight_reads).await else {
        return;
    };
    tight_reads_refill_with_the_clock(&app).await;
}

pub(super) async fn auth_routes_are_limited_per_ip_and_spoofed_forwarding_changes_nothing(
    app: TestApp,
) {
    let tight = auth_limit(3);
    // Untrusted peer: whatever it claims, it is 127.0.0.1.
    let Some(direct) = spawn_app_with(app.backend, &tight).await else {
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
        assert!(denied.message().contains("sign-in"));
    }
    // Registration is a sign-in route too; other routes are not charged to that bucket.
    expect_rate_limited(
        direct
            .post_anon(
                "/api/v1/auth/register",
                json!({"username": "carol", "password": PASSWORD}),
            )
            .await,
    );
    direct.get_anon("/api/v1/capabilities").await.expect(200);

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
pub(super) async fn parallel_logins(apps: &[&TestApp]) {
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
    let limited = rate_limited(&results);
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

pub(super) fn parallel_limit(c: &mut Config) {
    auth_limit(7)(c);
}

/// A sign-in limit of `n` a minute with a burst of `n`.
fn auth_limit(n: u64) -> impl Fn(&mut Config) {
    move |c| {
        c.rate_limit.auth_per_min = n;
        c.rate_limit.auth_burst = n;
    }
}

/// How many of `results` were answered `status`.
fn answered(results: &[Res], status: u16) -> usize {
    results
        .iter()
        .filter(|r| r.status.as_u16() == status)
        .count()
}

/// How many of `results` were refused by a rate limit.
fn rate_limited(results: &[Res]) -> usize {
    results
        .iter()
        .filter(|r| r.status.as_u16() == 429 && r.code() == "rate_limited")
        .count()
}

pub(super) async fn parallel_logins_cannot_slip_past_the_limit(app: TestApp) {
    let Some(app) = spawn_app_with(app.backend, parallel_limit).await else {
        return;
    };
    parallel_logins(&[&app]).await;
}

pub(super) async fn rate_limits_off_lifts_every_limit(app: TestApp) {
    let Some(off) = spawn_app_with(app.backend, |c| {
        c.rate_limits = OnOff::Off;
        ip_limit(1)(c);
        auth_limit(1)(c);
        read_limit(1, 1)(c);
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

/// An app where a user may write 5 at once (6 a minute) and a `pro` key 3 a second.
async fn tight_writes_and_pro_keys(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, |c| {
        write_limit(6, 5)(c);
        c.rate_limit.tier_pro_per_sec = 3;
    })
    .await
}

/// RATE-1/AUTH-7: six `free` keys of one user, used in parallel, share that user's write
/// bucket (it was one bucket per key: 60 of 60 sends passed); keys of a higher tier share one
/// bucket per (owner, tier).
pub(super) async fn keys_never_multiply_a_users_budget(app: TestApp) {
    let Some(app) = tight_writes_and_pro_keys(app.backend).await else {
        return;
    };
    let (alice, org, conv) = app.alice_private().await;
    let scopes = json!(["messages:write", "messages:read"]);
    // Six free keys, then two pro keys (only an org admin sets a tier; Alice owns the org).
    let tiers = (0..6).map(|i| (format!("free{i}"), None));
    let tiers = tiers.chain((0..2).map(|i| (format!("pro{i}"), Some("pro"))));
    let mut keys = Vec::new();
    for (name, tier) in tiers {
        app.clock.advance(chrono::Duration::minutes(1));
        let mut body = json!({"name": name, "org_id": org, "scopes": scopes});
        if let Some(tier) = tier {
            body["tier"] = json!(tier);
        }
        keys.push(crate::keys::make_key(&app, &alice, body).await.1);
    }
    let (free, pro) = keys.split_at(6);
    // A full bucket, then 60 sends at once spread over the six free keys.
    app.clock.advance(chrono::Duration::minutes(10));
    let path = format!("/api/v1/conversations/{conv}/messages");
    let sends = (0..60).map(|i| app.post(&path, &free[i % free.len()], json!({"content": "hi"})));
    let results = futures::future::join_all(sends).await;
    let (sent, limited) = (answered(&results, 201), rate_limited(&results));
    assert_eq!((sent, limited), (5, 55), "one user, one write budget");
    // The keys spent Alice's own budget: her session cannot write either.
    expect_rate_limited(app.send_message(&conv, &alice, "me too").await);
    // Two pro keys of one owner: one pro bucket (3 per second), not one per key.
    let sends = (0..20).map(|i| app.post(&path, &pro[i % pro.len()], json!({"content": "hi"})));
    let results = futures::future::join_all(sends).await;
    assert_eq!(answered(&results, 201), 3, "one bucket per (owner, tier)");
    assert!(results
        .iter()
        .all(|r| r.status.as_u16() == 201 || r.code() == "rate_limited"));
}

/// RATE-1/AUTH-7: a tier is an owner's or admin's to give, and lasts while its owner may give
/// it: an admin's `pro` key has the pro bucket; demoted to member, she keeps the key, but it is
/// charged as a free one — her own write budget.
pub(super) async fn a_keys_tier_lasts_while_its_owner_may_give_it(app: TestApp) {
    let Some(app) = tight_writes_and_pro_keys(app.backend).await else {
        return;
    };
    let crate::fixtures::Team(alice, [bob], org) =
        app.team("alice", "Acme", [("bob", "admin")]).await;
    let conv = app.group(&org, &alice, &[&bob], json!("private")).await;
    let body = json!({"name": "k", "org_id": org, "scopes": ["messages:write"], "tier": "pro"});
    let key = crate::keys::make_key(&app, &bob, body).await.1;
    let path = format!("/api/v1/conversations/{conv}/messages");
    let burst = || {
        let sends = (0..20).map(|_| app.post(&path, &key, json!({"content": "hi"})));
        futures::future::join_all(sends)
    };
    app.clock.advance(chrono::Duration::minutes(10));
    assert_eq!(answered(&burst().await, 201), 3, "the pro bucket");
    app.patch(
        &org_path(&org, &format!("/members/{}", bob.id)),
        &alice.token,
        json!({"role": "member"}),
    )
    .await
    .expect(200);
    app.clock.advance(chrono::Duration::minutes(10));
    let results = burst().await;
    assert_eq!(answered(&results, 201), 5, "Bob's own write budget");
    assert_eq!(rate_limited(&results), 15);
    // It was Bob's: his session cannot write now either.
    expect_rate_limited(app.send_message(&conv, &bob, "me too").await);
}

/// RATE-1: signing out, revoking sessions and turning 2FA on still work once the per-user
/// write budget is spent.
pub(super) async fn securing_an_account_is_never_refused_by_the_write_limit(app: TestApp) {
    let Some(app) = spawn_app_with(app.backend, write_limit(2, 2)).await else {
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
        let r = app.create_org(&alice, "Acme").await;
        if r.status.as_u16() == 429 {
            break;
        }
        r.expect(201);
    }
    expect_rate_limited(app.create_org(&alice, "Acme").await);
    app.expect_all([
        alice
            .delete(&format!("/api/v1/auth/sessions/{other}"))
            .is(204),
        alice
            .post("/api/v1/auth/sessions/revoke-others", json!({}))
            .is(200),
    ])
    .await;
    crate::mfa::enable_2fa(&app, &alice).await;
    app.logout_and_check(&alice).await;
}
