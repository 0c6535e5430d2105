//! AUTH-5: sign-in back-off per (account, IP) doubling to a 15-minute cap, a short per-account
//! cap across IPs, a per-IP limit across accounts, 429 with `Retry-After`, unknown usernames
//! answered exactly like known ones, no failure lost under concurrency, wrong second-factor
//! codes counted, and all of it held in the database across nodes (and so across restarts).
//!
//! Clients are told apart by `X-Forwarded-For` from a trusted proxy (the test's loopback peer);
//! request rate limits (RATE-1) are off so only AUTH-5 answers. Time moves with the manual
//! clock.

use crate::both_backends;
use crate::db::Db;
use crate::helpers::*;
use crate::mfa::{code_at, enable_2fa, mfa_token, second_step, without_rate_limits, wrong_code};
use crate::with_pool;
use conclave_core::totp::TotpSecret;
use conclave_core::Clock;
use conclave_server::config::{Config, OnOff};
use secrecy::SecretString;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

both_backends!(
    back_off_per_account_and_ip_doubles_to_the_cap,
    the_account_limit_across_ips_is_short,
    one_ip_guessing_many_accounts_is_limited,
    unknown_and_known_usernames_look_alike,
    parallel_wrong_logins_get_no_more_checks_than_sequential_ones,
    parallel_wrong_codes_get_five_checks_per_mfa_token,
    wrong_current_passwords_back_off_like_sign_ins,
    wrong_codes_count_toward_the_back_off,
    lockout_and_replay_protection_hold_across_nodes,
);

const WRONG: &str = "not the right passphrase";

fn behind_proxy(c: &mut Config) {
    c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
}

async fn proxied_app(app: TestApp) -> (TestApp, String) {
    without_rate_limits(app, behind_proxy).await
}

/// A proxied app where alice has 2FA on: her TOTP secret, and a code wrong for the current step.
async fn alice_with_2fa(app: TestApp) -> (TestApp, TotpSecret, String) {
    let (app, _) = proxied_app(app).await;
    let alice = app.user("alice").await;
    let (secret, _) = enable_2fa(&app, &alice).await;
    let wrong = wrong_code(&code_at(&app, &secret, 0));
    (app, secret, wrong)
}

pub(crate) async fn login_from(app: &TestApp, ip: &str, username: &str, password: &str) -> Res {
    app.send(
        app.client
            .post(app.url("/api/v1/auth/login"))
            .header("x-forwarded-for", ip)
            .json(&json!({"username": username, "password": password})),
    )
    .await
}

/// The `Retry-After` of a 429 `too_many_attempts`, in seconds.
#[track_caller]
fn retry_after(res: &Res) -> u64 {
    assert_eq!(res.status.as_u16(), 429, "expected 429; body: {}", res.body);
    assert_eq!(res.code(), "too_many_attempts", "{}", res.body);
    res.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

fn advance(app: &TestApp, secs: u64) {
    app.clock.advance(chrono::Duration::seconds(secs as i64));
}

async fn back_off_per_account_and_ip_doubles_to_the_cap(app: TestApp) {
    let (app, _) = proxied_app(app).await;
    app.user("alice").await;
    let (a, b) = ("203.0.113.1", "203.0.113.2");
    // Four failures are free; the fifth starts a 30-second back-off for this account from
    // this address — even the right password waits.
    for _ in 0..5 {
        login_from(&app, a, "alice", WRONG)
            .await
            .expect_error(401, "invalid_credentials");
    }
    assert_eq!(
        retry_after(&login_from(&app, a, "alice", PASSWORD).await),
        30
    );
    // The owner elsewhere is not affected, and their success does not unblock the attacker.
    login_from(&app, b, "alice", PASSWORD).await.expect(200);
    assert_eq!(retry_after(&login_from(&app, a, "alice", WRONG).await), 30);
    advance(&app, 29);
    assert_eq!(
        retry_after(&login_from(&app, a, "alice", PASSWORD).await),
        1
    );
    advance(&app, 1);
    // Each further failure doubles the wait, up to 15 minutes.
    for expected in [60, 120, 240, 480, 900, 900, 900] {
        login_from(&app, a, "alice", WRONG)
            .await
            .expect_error(401, "invalid_credentials");
        let wait = retry_after(&login_from(&app, a, "alice", PASSWORD).await);
        assert_eq!(wait, expected);
        advance(&app, wait);
    }
    // After the wait the right password works and resets the counter.
    login_from(&app, a, "alice", PASSWORD).await.expect(200);
    for _ in 0..4 {
        login_from(&app, a, "alice", WRONG)
            .await
            .expect_error(401, "invalid_credentials");
    }
    login_from(&app, a, "alice", PASSWORD).await.expect(200);
    // Failures older than an hour are forgotten.
    for _ in 0..4 {
        login_from(&app, a, "alice", WRONG).await.expect(401);
    }
    advance(&app, 3601);
    login_from(&app, a, "alice", WRONG).await.expect(401);
    login_from(&app, a, "alice", PASSWORD).await.expect(200);
}

async fn the_account_limit_across_ips_is_short(app: TestApp) {
    let (app, _) = proxied_app(app).await;
    app.user("alice").await;
    let ip = |i: usize| format!("198.51.100.{i}");
    // Twenty failures from twenty addresses: the account backs off for every address...
    for i in 1..=20 {
        login_from(&app, &ip(i), "alice", WRONG)
            .await
            .expect_error(401, "invalid_credentials");
    }
    assert_eq!(
        retry_after(&login_from(&app, &ip(100), "alice", PASSWORD).await),
        30
    );
    // ...doubling, but never past two minutes, so the owner is never locked out for long.
    let mut next = 21;
    for expected in [60, 120, 120, 120] {
        advance(&app, 120);
        login_from(&app, &ip(next), "alice", WRONG)
            .await
            .expect_error(401, "invalid_credentials");
        next += 1;
        assert_eq!(
            retry_after(&login_from(&app, &ip(next), "alice", PASSWORD).await),
            expected
        );
        next += 1;
    }
    advance(&app, 120);
    login_from(&app, &ip(200), "alice", PASSWORD)
        .await
        .expect(200);
    // Other accounts were never affected.
    app.user("bob").await;
    login_from(&app, &ip(201), "bob", PASSWORD)
        .await
        .expect(200);
}

async fn one_ip_guessing_many_accounts_is_limited(app: TestApp) {
    let (app, _) = proxied_app(app).await;
    app.user("alice").await;
    let spray = "192.0.2.66";
    // Fifty names, one guess each, from one address.
    for i in 0..50 {
        login_from(&app, spray, &format!("guess{i}"), WRONG)
            .await
            .expect_error(401, "invalid_credentials");
    }
    // That address now waits, whichever account it tries; others do not.
    assert_eq!(
        retry_after(&login_from(&app, spray, "alice", PASSWORD).await),
        30
    );
    assert_eq!(
        retry_after(&login_from(&app, spray, "guess99", WRONG).await),
        30
    );
    login_from(&app, "192.0.2.67", "alice", PASSWORD)
        .await
        .expect(200);
    advance(&app, 30);
    login_from(&app, spray, "alice", PASSWORD).await.expect(200);
    // A success does not reset the per-address counter: the next failure backs off again.
    login_from(&app, spray, "guess0", WRONG).await.expect(401);
    assert_eq!(
        retry_after(&login_from(&app, spray, "alice", PASSWORD).await),
        60
    );
}

/// A body with its request id blanked, for comparing two answers.
fn comparable(res: &Res) -> Value {
    let mut body = res.body.clone();
    body["error"]["request_id"] = Value::Null;
    body
}

async fn unknown_and_known_usernames_look_alike(app: TestApp) {
    let (app, _) = proxied_app(app).await;
    app.user("alice").await;
    let mut known_times = Vec::new();
    let mut unknown_times = Vec::new();
    for attempt in 1..=7 {
        let t = Instant::now();
        let known = login_from(&app, "203.0.113.10", "alice", WRONG).await;
        known_times.push(t.elapsed());
        let t = Instant::now();
        let unknown = login_from(&app, "203.0.113.11", "nobody-at-all", WRONG).await;
        unknown_times.push(t.elapsed());
        let invalid_name = login_from(&app, "203.0.113.12", "not a valid name!", WRONG).await;
        assert_eq!(known.status, unknown.status, "attempt {attempt}");
        assert_eq!(known.status, invalid_name.status, "attempt {attempt}");
        assert_eq!(
            comparable(&known),
            comparable(&unknown),
            "attempt {attempt}"
        );
        assert_eq!(
            comparable(&known),
            comparable(&invalid_name),
            "attempt {attempt}"
        );
        assert_eq!(
            known.headers.get("retry-after"),
            unknown.headers.get("retry-after"),
            "attempt {attempt}"
        );
        let expected = if attempt <= 5 { 401 } else { 429 };
        assert_eq!(
            known.status.as_u16(),
            expected,
            "attempt {attempt}: {}",
            known.body
        );
    }
    // Comparable time: both paths run one Argon2id verification (compare the medians of the
    // attempts that reached it).
    let median = |v: &mut Vec<Duration>| {
        v.truncate(5);
        v.sort();
        v[2]
    };
    let (k, u) = (median(&mut known_times), median(&mut unknown_times));
    assert!(
        u * 4 >= k && k * 4 >= u,
        "known {k:?} vs unknown {u:?}: the timing tells them apart"
    );
}

/// One value from the database the app uses.
async fn scalar(url: &str, sql: &str, bind: &str) -> i64 {
    use sqlx::Row;
    let db = Db::connect(url).await;
    let v = with_pool!(&db, p => sqlx::query(sql).bind(bind).fetch_one(p).await.unwrap().get(0));
    db.close().await;
    v
}

/// Sends `n` copies of a request at once and returns their answers.
pub(crate) async fn at_once<F, Fut>(n: usize, f: F) -> Vec<Res>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Res> + Send + 'static,
{
    let tasks: Vec<_> = (0..n).map(|i| tokio::spawn(f(i))).collect();
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

pub(crate) fn count(answers: &[Res], status: u16) -> usize {
    answers
        .iter()
        .filter(|r| r.status.as_u16() == status)
        .count()
}

async fn parallel_wrong_logins_get_no_more_checks_than_sequential_ones(app: TestApp) {
    let (app, url) = proxied_app(app).await;
    app.user("alice").await;
    let app = std::sync::Arc::new(app);
    // A known and an unknown name, each guessed a hundred times at once from one address.
    for (name, ip) in [("alice", "203.0.113.99"), ("nobody-at-all", "203.0.113.98")] {
        let answers = at_once(100, |_| {
            let app = app.clone();
            async move { login_from(&app, ip, name, WRONG).await }
        })
        .await;
        // Sequential guesses are stopped after five: parallel ones too. Every other answer is
        // the back-off (or a busy hashing pool, which checks nothing).
        let failed = count(&answers, 401);
        assert_eq!(
            failed + count(&answers, 429) + count(&answers, 503),
            100,
            "only refusals for {name}"
        );
        assert!(failed <= 5, "{name}: {failed} passwords checked, at most 5");
        assert!(count(&answers, 429) >= 95 - count(&answers, 503), "{name}");
        for r in answers.iter().filter(|r| r.status.as_u16() == 401) {
            assert_eq!(r.code(), "invalid_credentials");
        }
        // Each checked password is counted once on every counter; nothing else is.
        let per_account_ip = scalar(
            &url,
            "SELECT failures FROM login_failures WHERE ip = $1 AND account <> ''",
            ip,
        )
        .await;
        let per_ip = scalar(
            &url,
            "SELECT failures FROM login_failures WHERE ip = $1 AND account = ''",
            ip,
        )
        .await;
        assert_eq!(
            (per_account_ip, per_ip),
            (failed as i64, failed as i64),
            "{name}"
        );
    }
    // The reservations lock nobody out for good: once the back-off has passed, the right
    // password signs in (from that address), and the owner elsewhere was never stopped.
    login_from(&app, "203.0.113.100", "alice", PASSWORD)
        .await
        .expect(200);
    advance(&app, 30);
    login_from(&app, "203.0.113.99", "alice", PASSWORD)
        .await
        .expect(200);
    // The success reset the counters: four free failures again.
    for _ in 0..4 {
        login_from(&app, "203.0.113.99", "alice", WRONG)
            .await
            .expect(401);
    }
    login_from(&app, "203.0.113.99", "alice", PASSWORD)
        .await
        .expect(200);
}

async fn parallel_wrong_codes_get_five_checks_per_mfa_token(app: TestApp) {
    let (app, secret, wrong) = alice_with_2fa(app).await;
    let token = mfa_token(&app, "alice").await;
    let app = std::sync::Arc::new(app);
    // A hundred wrong codes at once on one challenge, each from its own address, so only the
    // challenge's own limit (and the looser per-account one) stands in the way.
    let answers = at_once(100, |i| {
        let (app, token, wrong) = (app.clone(), token.clone(), wrong.clone());
        async move {
            app.send(
                app.client
                    .post(app.url("/api/v1/auth/login/mfa"))
                    .header("x-forwarded-for", format!("198.51.100.{}", i + 1))
                    .json(&json!({"mfa_token": token, "code": wrong})),
            )
            .await
        }
    })
    .await;
    let checked = answers
        .iter()
        .filter(|r| r.code() == "invalid_code")
        .count();
    assert!(
        checked <= 5,
        "{checked} codes checked on one mfa_token, at most 5"
    );
    assert!(
        answers.iter().all(|r| matches!(
            r.code(),
            "invalid_code" | "invalid_mfa_token" | "too_many_attempts"
        )),
        "only refusals"
    );
    // The challenge is dead: after every back-off, even the right code is refused.
    advance(&app, 900);
    second_step(&app, &token, &code_at(&app, &secret, 0))
        .await
        .expect_error(401, "invalid_mfa_token");
    // And nobody is locked out: a new sign-in works.
    let token = mfa_token(&app, "alice").await;
    second_step(&app, &token, &code_at(&app, &secret, 0))
        .await
        .expect(200);
}

/// `POST /auth/password` with `token` from `ip`.
async fn change_password(app: &TestApp, token: &str, ip: &str, current: &str, new: &str) -> Res {
    app.send(
        app.client
            .post(app.url("/api/v1/auth/password"))
            .bearer_auth(token)
            .header("x-forwarded-for", ip)
            .json(&json!({"current_password": current, "new_password": new})),
    )
    .await
}

async fn wrong_current_passwords_back_off_like_sign_ins(app: TestApp) {
    let (app, _) = proxied_app(app).await;
    let alice = app.user("alice").await;
    let ip = "203.0.113.7";
    let fresh = "another long passphrase";
    // Five wrong guesses are answered (422 on the field); then the account backs off.
    for _ in 0..5 {
        change_password(&app, &alice.token, ip, WRONG, fresh)
            .await
            .expect_error(422, "incorrect");
    }
    assert_eq!(
        retry_after(&change_password(&app, &alice.token, ip, PASSWORD, fresh).await),
        30
    );
    // The back-off is the sign-in one: signing in from there waits too.
    assert_eq!(
        retry_after(&login_from(&app, ip, "alice", PASSWORD).await),
        30
    );
    // A hundred parallel guesses after the wait get one more check, not more.
    advance(&app, 30);
    let app = std::sync::Arc::new(app);
    let answers = at_once(100, |_| {
        let (app, token) = (app.clone(), alice.token.clone());
        async move { change_password(&app, &token, ip, WRONG, fresh).await }
    })
    .await;
    assert!(
        count(&answers, 422) <= 1,
        "{} checked",
        count(&answers, 422)
    );
    assert!(count(&answers, 429) >= 99 - count(&answers, 503));
    // After the wait the right password changes it.
    advance(&app, 60);
    change_password(&app, &alice.token, ip, PASSWORD, fresh)
        .await
        .expect(204);
}

async fn wrong_codes_count_toward_the_back_off(app: TestApp) {
    let (app, secret, wrong) = alice_with_2fa(app).await;
    let good = code_at(&app, &secret, 0);
    // Three wrong codes on one challenge, two on the next: five failures for (alice, here),
    // although the password was right each time — a right password resets nothing.
    let first = mfa_token(&app, "alice").await;
    for _ in 0..3 {
        second_step(&app, &first, &wrong)
            .await
            .expect_error(401, "invalid_code");
    }
    let second = mfa_token(&app, "alice").await;
    for _ in 0..2 {
        second_step(&app, &second, &wrong)
            .await
            .expect_error(401, "invalid_code");
    }
    // Now even the right code waits (and is not used up), as does the password step.
    assert_eq!(retry_after(&second_step(&app, &second, &good).await), 30);
    assert_eq!(retry_after(&app.login("alice", PASSWORD).await), 30);
    advance(&app, 30);
    second_step(&app, &second, &code_at(&app, &secret, -1))
        .await
        .expect(200);
    // The completed sign-in reset the counters.
    for _ in 0..4 {
        app.login("alice", WRONG).await.expect(401);
    }
    assert_eq!(
        app.login("alice", PASSWORD).await.expect(200).body["mfa_required"],
        true
    );
}

async fn lockout_and_replay_protection_hold_across_nodes(app: TestApp) {
    use base64::Engine;
    let master = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    let key = |c: &mut Config| {
        behind_proxy(c);
        c.master_key = Some(SecretString::from(master.clone()));
    };
    let backend = app.backend;
    let (a, url) = without_rate_limits(app, &key).await;
    // A second node on the same database — what a restarted node is too.
    let b = spawn_app_with(backend, |c| {
        key(c);
        c.rate_limits = OnOff::Off;
        c.database_url = Some(url.clone());
    })
    .await
    .expect("the second node starts");
    let alice = a.user("alice").await;
    let (secret, _) = enable_2fa(&a, &alice).await;
    // Node B's clock shows exactly node A's time (A's moved a TOTP step on after enabling),
    // however far apart the two started.
    b.clock.advance(a.clock.now() - b.clock.now());
    // A challenge from node A finishes on node B.
    let token = mfa_token(&a, "alice").await;
    let code = code_at(&a, &secret, 0);
    second_step(&b, &token, &code).await.expect(200);
    // The code is spent everywhere.
    let token = mfa_token(&b, "alice").await;
    second_step(&b, &token, &code)
        .await
        .expect_error(401, "code_reused");
    let token = mfa_token(&a, "alice").await;
    second_step(&a, &token, &code)
        .await
        .expect_error(401, "code_reused");
    // Failures counted on node A lock the same client out on node B.
    let ip = "203.0.113.50";
    for _ in 0..3 {
        login_from(&a, ip, "alice", WRONG).await.expect(401);
    }
    for _ in 0..2 {
        login_from(&b, ip, "alice", WRONG).await.expect(401);
    }
    let wait = retry_after(&login_from(&b, ip, "alice", PASSWORD).await);
    assert!((29..=30).contains(&wait), "{wait}");
    // (Each node has its own manual clock, set to the same time.)
    let wait = retry_after(&login_from(&a, ip, "alice", PASSWORD).await);
    assert!((29..=31).contains(&wait), "{wait}");
}
