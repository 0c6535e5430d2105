//! AUTH-1, AUTH-2, AUTH-3, AUTH-8, AUTH-9, CORE-1 bootstrap, CORE-3a: every way to
//! authenticate and every way it fails.

use crate::both_backends;
use crate::helpers::*;
use conclave_server::config::Config;
use conclave_server::startup::StartError;
use conclave_server::Application;
use reqwest::Method;
use secrecy::SecretString;
use serde_json::json;
use std::sync::Arc;

both_backends!(
    bootstrap_works_once,
    login_failures_look_alike,
    registration_modes_and_password_rules,
    broken_revoked_and_expired_tokens_are_refused,
    sessions_list_revoke_and_password_change,
    cookie_sessions_need_csrf,
    management_token_only_on_admin_routes,
    disabling_a_user_revokes_access,
    any_server_admin_disarms_the_bootstrap_for_good,
    a_preset_bootstrap_token_expires_a_day_after_the_first_start,
    the_access_gate_covers_cookies_and_every_sign_in,
    the_session_cookie_is_host_prefixed_when_secure,
);

async fn bootstrap_works_once(app: TestApp) {
    let wrong = app
        .post_anon(
            "/api/v1/auth/bootstrap",
            json!({"bootstrap_token": "nope", "username": "first", "password": PASSWORD}),
        )
        .await;
    wrong.expect_error(401, "invalid_bootstrap_token");
    let admin = app.bootstrap().await;
    let me = app.get("/api/v1/users/@me", &admin.token).await.expect(200);
    assert_eq!(me.body["server_admin"], true);
    let again = app
        .post_anon(
            "/api/v1/auth/bootstrap",
            json!({"bootstrap_token": BOOTSTRAP_TOKEN, "username": "second", "password": PASSWORD}),
        )
        .await;
    again.expect_error(410, "bootstrap_used");
    // Nothing was written by the refused attempts.
    app.login("second", PASSWORD)
        .await
        .expect_error(401, "invalid_credentials");
}

async fn login_failures_look_alike(app: TestApp) {
    let alice = app.user("alice").await;
    let wrong_pw = app
        .login("alice", "not the right passphrase")
        .await
        .expect_error(401, "invalid_credentials");
    let unknown = app
        .login("nobody-here", "not the right passphrase")
        .await
        .expect_error(401, "invalid_credentials");
    assert_eq!(
        wrong_pw.body["error"]["message"],
        unknown.body["error"]["message"]
    );
    // Usernames are case-insensitive for login; the session token is prefixed and opaque.
    let ok = app.login("ALICE", PASSWORD).await.expect(200);
    assert!(ok.body["token"].as_str().unwrap().starts_with("cnv_s_"));
    assert_eq!(ok.body["user"]["id"], alice.id.as_str());
    assert!(ok.body["user"].get("password_hash").is_none());
    // Malformed login bodies.
    app.post_anon("/api/v1/auth/login", json!({"username": "alice"}))
        .await
        .expect_error(422, "missing_field");
}

async fn registration_modes_and_password_rules(app: TestApp) {
    let r = |body| app.post_anon("/api/v1/auth/register", body);
    r(json!({"username": "bob", "password": "short"}))
        .await
        .expect_error(422, "invalid_value");
    let common = r(json!({"username": "bob", "password": "password123456"}))
        .await
        .expect(422);
    assert_eq!(common.field(), Some("/password"));
    assert!(
        !common.body.to_string().contains("password123456"),
        "the password is never echoed"
    );
    r(json!({"username": "b o b", "password": PASSWORD}))
        .await
        .expect(422);
    r(json!({"username": "bob", "password": PASSWORD}))
        .await
        .expect(201);
    r(json!({"username": "BOB", "password": PASSWORD}))
        .await
        .expect_error(409, "username_taken");

    // Closed registration.
    let closed = spawn_app_with(app.backend, |c| {
        c.registration = conclave_core::types::RegistrationMode::Closed
    })
    .await
    .unwrap();
    closed
        .post_anon(
            "/api/v1/auth/register",
            json!({"username": "carol", "password": PASSWORD}),
        )
        .await
        .expect_error(403, "registration_closed");

    // Invite-only registration: a code is required, and it joins the org.
    let inv = spawn_app_with(app.backend, |c| {
        c.registration = conclave_core::types::RegistrationMode::Invite
    })
    .await
    .unwrap();
    let admin = inv.bootstrap().await;
    let org = inv.org(&admin, "Acme").await;
    inv.post_anon(
        "/api/v1/auth/register",
        json!({"username": "dave", "password": PASSWORD}),
    )
    .await
    .expect_error(422, "required");
    let code = inv
        .post(
            &format!("/api/v1/orgs/{org}/invites"),
            &admin.token,
            json!({"max_uses": 1}),
        )
        .await
        .expect(201)
        .string("code");
    inv.post_anon(
        "/api/v1/auth/register",
        json!({"username": "dave", "password": PASSWORD, "invite_code": "cnv_inv_bogus"}),
    )
    .await
    .expect_error(422, "invite_invalid");
    inv.post_anon(
        "/api/v1/auth/register",
        json!({"username": "dave", "password": PASSWORD, "invite_code": code}),
    )
    .await
    .expect(201);
    let dave = inv
        .login("dave", PASSWORD)
        .await
        .expect(200)
        .string("token");
    let orgs = inv.get("/api/v1/orgs", &dave).await.expect(200);
    assert_eq!(orgs.body["items"][0]["id"], org.as_str());
    assert_eq!(orgs.body["items"][0]["role"], "member");
    // The single use is spent.
    inv.post_anon(
        "/api/v1/auth/register",
        json!({"username": "erin", "password": PASSWORD, "invite_code": code}),
    )
    .await
    .expect_error(422, "invite_invalid");
    inv.login("erin", PASSWORD).await.expect(401);
}

async fn broken_revoked_and_expired_tokens_are_refused(app: TestApp) {
    let alice = app.user("alice").await;
    app.get_anon("/api/v1/users/@me")
        .await
        .expect_error(401, "unauthenticated");
    // One character changed: the checksum fails without a lookup.
    let mut broken = alice.token.clone();
    let last = broken.pop().unwrap();
    broken.push(if last == '0' { '1' } else { '0' });
    app.get("/api/v1/users/@me", &broken)
        .await
        .expect_error(401, "invalid_token");
    app.get("/api/v1/users/@me", "garbage")
        .await
        .expect_error(401, "invalid_token");
    let basic = app
        .send(
            app.client
                .get(app.url("/api/v1/users/@me"))
                .basic_auth("alice", Some(PASSWORD)),
        )
        .await;
    basic.expect_error(401, "unsupported_scheme");
    // A well-formed token that was never issued.
    let forged = conclave_core::token::generate(conclave_core::token::TokenKind::Session);
    app.get(
        "/api/v1/users/@me",
        secrecy::ExposeSecret::expose_secret(&forged),
    )
    .await
    .expect_error(401, "invalid_token");
    // Logout revokes.
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
    // Idle expiry: 7 days without use.
    let t = app.login("alice", PASSWORD).await.string("token");
    app.get("/api/v1/users/@me", &t).await.expect(200);
    app.clock.advance(chrono::Duration::days(6));
    app.get("/api/v1/users/@me", &t).await.expect(200);
    app.clock.advance(chrono::Duration::days(6));
    app.get("/api/v1/users/@me", &t).await.expect(200);
    app.clock.advance(chrono::Duration::days(8));
    app.get("/api/v1/users/@me", &t)
        .await
        .expect_error(401, "invalid_token");
    // Absolute expiry: 30 days even when used daily.
    let t = app.login("alice", PASSWORD).await.string("token");
    for _ in 0..29 {
        app.clock.advance(chrono::Duration::days(1));
        app.get("/api/v1/users/@me", &t).await.expect(200);
    }
    app.clock.advance(chrono::Duration::days(1));
    app.get("/api/v1/users/@me", &t)
        .await
        .expect_error(401, "invalid_token");
}

async fn sessions_list_revoke_and_password_change(app: TestApp) {
    let alice = app.user("alice").await;
    let second = app.login("alice", PASSWORD).await.string("token");
    let third = app.login("alice", PASSWORD).await.string("token");
    let list = app
        .get("/api/v1/auth/sessions", &alice.token)
        .await
        .expect(200);
    let items = list.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(items.iter().filter(|s| s["current"] == true).count(), 1);
    assert!(items[0]["ip"].as_str().is_some_and(|ip| ip == "127.0.0.1"));
    assert!(
        !list.body.to_string().contains("cnv_s_"),
        "tokens are never listed"
    );
    // Revoke one (the second) by id.
    let me_second = app.get("/api/v1/auth/session", &second).await.expect(200);
    let second_id = me_second.body["session"]["id"].as_str().unwrap().to_owned();
    // Another user cannot revoke it.
    let bob = app.user("bob").await;
    app.delete(&format!("/api/v1/auth/sessions/{second_id}"), &bob.token)
        .await
        .expect_error(404, "not_found");
    app.delete("/api/v1/auth/sessions/not-a-uuid", &alice.token)
        .await
        .expect_error(400, "invalid_id");
    app.delete(&format!("/api/v1/auth/sessions/{second_id}"), &alice.token)
        .await
        .expect(204);
    app.get("/api/v1/users/@me", &second).await.expect(401);
    app.get("/api/v1/users/@me", &third).await.expect(200);
    // Revoke others.
    let r = app
        .call(
            Method::POST,
            "/api/v1/auth/sessions/revoke-others",
            Some(&alice.token),
            None,
        )
        .await
        .expect(200);
    assert_eq!(r.body["revoked"], 1);
    app.get("/api/v1/users/@me", &third).await.expect(401);
    // Password change: wrong current password is refused and changes nothing.
    let other = app.login("alice", PASSWORD).await.string("token");
    let bad = app
        .post("/api/v1/auth/password", &alice.token, json!({"current_password": "wrong one entirely", "new_password": "another long passphrase"}))
        .await
        .expect_error(422, "incorrect");
    assert_eq!(bad.field(), Some("/current_password"));
    app.get("/api/v1/users/@me", &other).await.expect(200);
    app.post(
        "/api/v1/auth/password",
        &alice.token,
        json!({"current_password": PASSWORD, "new_password": "short"}),
    )
    .await
    .expect(422);
    app.post(
        "/api/v1/auth/password",
        &alice.token,
        json!({"current_password": PASSWORD, "new_password": "another long passphrase"}),
    )
    .await
    .expect(204);
    app.get("/api/v1/users/@me", &other).await.expect(401);
    app.get("/api/v1/users/@me", &alice.token).await.expect(200);
    app.login("alice", PASSWORD).await.expect(401);
    app.login("alice", "another long passphrase")
        .await
        .expect(200);
}

async fn cookie_sessions_need_csrf(app: TestApp) {
    let _ = app.user("alice").await;
    let res = app.cookie_login("alice").await;
    assert!(
        res.body.get("token").is_none(),
        "cookie logins do not return the token"
    );
    let csrf = res.string("csrf_token");
    let set_cookie = res
        .headers
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(set_cookie.starts_with("conclave_session=cnv_s_"));
    assert!(
        set_cookie.contains("HttpOnly")
            && set_cookie.contains("SameSite=Strict")
            && set_cookie.contains("Path=/")
    );
    assert!(
        !set_cookie.contains("Secure"),
        "plain-HTTP public URL: no Secure flag"
    );
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let with_cookie = |m: Method, p: &str| {
        app.client
            .request(m, app.url(p))
            .header("cookie", cookie.clone())
    };
    // Reads need no CSRF token; the session endpoint gives it back after a reload.
    let s = app
        .send(with_cookie(Method::GET, "/api/v1/auth/session"))
        .await
        .expect(200);
    assert_eq!(s.body["csrf_token"], csrf.as_str());
    // Writes without it, or with a wrong one, are refused and write nothing.
    app.send(with_cookie(Method::POST, "/api/v1/orgs").json(&json!({"name": "X"})))
        .await
        .expect_error(403, "csrf_failed");
    app.send(
        with_cookie(Method::POST, "/api/v1/orgs")
            .header("x-csrf-token", "wrong")
            .json(&json!({"name": "X"})),
    )
    .await
    .expect_error(403, "csrf_failed");
    let orgs = app
        .send(with_cookie(Method::GET, "/api/v1/orgs"))
        .await
        .expect(200);
    assert_eq!(orgs.body["items"].as_array().unwrap().len(), 0);
    app.send(
        with_cookie(Method::POST, "/api/v1/orgs")
            .header("x-csrf-token", &csrf)
            .json(&json!({"name": "X"})),
    )
    .await
    .expect(201);
    // Logout clears the cookie and ends the session.
    let out = app
        .send(with_cookie(Method::POST, "/api/v1/auth/logout").header("x-csrf-token", &csrf))
        .await
        .expect(204);
    assert!(out
        .headers
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    app.send(with_cookie(Method::GET, "/api/v1/auth/session"))
        .await
        .expect_error(401, "invalid_token");
}

async fn management_token_only_on_admin_routes(app: TestApp) {
    let list = app
        .get("/api/v1/admin/users", ADMIN_TOKEN)
        .await
        .expect(200);
    assert!(list.body["items"].is_array());
    // Not valid anywhere else.
    app.get("/api/v1/users/@me", ADMIN_TOKEN)
        .await
        .expect_error(401, "invalid_token");
    app.get("/api/v1/admin/users", "wrong-management-token")
        .await
        .expect_error(401, "invalid_token");
    // A normal user's session is refused by the admin API; a server admin's works.
    let alice = app.user("alice").await;
    app.get("/api/v1/admin/users", &alice.token)
        .await
        .expect_error(403, "forbidden");
    let admin = app.bootstrap().await;
    app.get("/api/v1/admin/users", &admin.token)
        .await
        .expect(200);
    // The management token creates users even when registration is closed.
    app.post(
        "/api/v1/admin/users",
        ADMIN_TOKEN,
        json!({"username": "made-by-ops", "password": PASSWORD}),
    )
    .await
    .expect(201);
    app.login("made-by-ops", PASSWORD).await.expect(200);
    // The access-token gate (AUTH-9): `the_access_gate_covers_cookies_and_every_sign_in`.
}

async fn disabling_a_user_revokes_access(app: TestApp) {
    let admin = app.bootstrap().await;
    let alice = app.user("alice").await;
    app.patch(
        &format!("/api/v1/admin/users/{}", alice.id),
        &alice.token,
        json!({"disabled": true}),
    )
    .await
    .expect_error(403, "forbidden");
    app.patch(
        &format!("/api/v1/admin/users/{}", admin.id),
        &admin.token,
        json!({"disabled": true}),
    )
    .await
    .expect_error(409, "cannot_demote_self");
    let u = app
        .patch(
            &format!("/api/v1/admin/users/{}", alice.id),
            ADMIN_TOKEN,
            json!({"disabled": true}),
        )
        .await
        .expect(200);
    assert_eq!(u.body["disabled"], true);
    app.get("/api/v1/users/@me", &alice.token)
        .await
        .expect_error(401, "invalid_token");
    app.login("alice", PASSWORD)
        .await
        .expect_error(403, "account_disabled");
    app.patch(
        &format!("/api/v1/admin/users/{}", alice.id),
        ADMIN_TOKEN,
        json!({"disabled": false}),
    )
    .await
    .expect(200);
    app.login("alice", PASSWORD).await.expect(200);
}

/// The configuration `app` was started with, to start it again on the same data (a restart).
fn restart_config(data_dir: &std::path::Path, database_url: &str) -> Config {
    Config {
        listen: "127.0.0.1:0".into(),
        data_dir: data_dir.to_owned(),
        database_url: Some(database_url.to_owned()),
        admin_token: Some(SecretString::from(ADMIN_TOKEN)),
        bootstrap_token: Some(SecretString::from(BOOTSTRAP_TOKEN)),
        registration: conclave_core::types::RegistrationMode::Open,
        ..Config::default()
    }
}

/// Spawns `app`'s server again on the same data, sharing its clock: the restarted node, and
/// the bootstrap link it would print.
async fn restart(app: &TestApp, config: Config) -> (TestApp, Option<String>) {
    use secrecy::ExposeSecret;
    let built = Application::build(config, app.clock.clone())
        .await
        .expect("the app restarts");
    let link = built.bootstrap_link().map(|l| l.expose_secret().to_owned());
    let base = format!("http://127.0.0.1:{}", built.port());
    tokio::spawn(built.run_until(std::future::pending()));
    let again = TestApp {
        base,
        client: app.client.clone(),
        clock: app.clock.clone(),
        backend: app.backend,
        data_dir: app.data_dir.clone(),
        database_url: app.database_url.clone(),
        // The data belongs to `app`, which removes it.
        _data: TempDir(
            std::env::temp_dir().join(format!("conclave-none-{}", uuid::Uuid::now_v7())),
        ),
    };
    (again, link)
}

/// `spawn_app` that also answers where its data lives, for `restart`.
async fn restartable(app: TestApp) -> (TestApp, std::path::PathBuf, String) {
    let (mut dir, mut url) = (std::path::PathBuf::new(), String::new());
    let app = spawn_app_with(app.backend, |c| {
        dir = c.data_dir.clone();
        url = c.database_url();
    })
    .await
    .expect("the app starts");
    (app, dir, url)
}

/// Tries to make `first` the first admin with the preset bootstrap token.
async fn try_bootstrap(node: &TestApp) -> Res {
    node.post_anon("/api/v1/auth/bootstrap", bootstrap_body("first"))
        .await
}

fn bootstrap_body(username: &str) -> serde_json::Value {
    json!({"bootstrap_token": BOOTSTRAP_TOKEN, "username": username, "password": PASSWORD})
}

/// CORE-3a: a server admin made through the admin API ends the bootstrap — on this node at
/// once, after a restart, and even once that admin is demoted again.
async fn any_server_admin_disarms_the_bootstrap_for_good(app: TestApp) {
    let (app, dir, url) = restartable(app).await;
    let made = app
        .post(
            "/api/v1/admin/users",
            ADMIN_TOKEN,
            json!({"username": "made-admin", "password": PASSWORD, "server_admin": true}),
        )
        .await
        .expect(201);
    try_bootstrap(&app)
        .await
        .expect_error(410, "bootstrap_used");
    app.patch(
        &format!("/api/v1/admin/users/{}", made.id()),
        ADMIN_TOKEN,
        json!({"server_admin": false}),
    )
    .await
    .expect(200);
    let (again, link) = restart(&app, restart_config(&dir, &url)).await;
    assert!(link.is_none(), "a restart does not re-arm the bootstrap");
    try_bootstrap(&again)
        .await
        .expect_error(410, "bootstrap_used");
    app.login("first", PASSWORD)
        .await
        .expect_error(401, "invalid_credentials");
}

/// CORE-3a: a preset bootstrap token works for 24 hours after the server's first start, which
/// is kept in the database, so restarting does not give it another day.
async fn a_preset_bootstrap_token_expires_a_day_after_the_first_start(app: TestApp) {
    let (app, dir, url) = restartable(app).await;
    app.clock.advance(chrono::Duration::hours(23));
    let (later, link) = restart(&app, restart_config(&dir, &url)).await;
    assert!(
        link.is_some_and(|l| l.ends_with(&format!("#bootstrap={BOOTSTRAP_TOKEN}"))),
        "still armed within the day"
    );
    app.clock.advance(chrono::Duration::minutes(61));
    for node in [&app, &later] {
        try_bootstrap(node)
            .await
            .expect_error(410, "bootstrap_expired");
    }
    let (restarted, link) = restart(&app, restart_config(&dir, &url)).await;
    assert!(link.is_none(), "an expired preset token stays expired");
    try_bootstrap(&restarted)
        .await
        .expect_error(401, "invalid_bootstrap_token");
    app.login("first", PASSWORD)
        .await
        .expect_error(401, "invalid_credentials");
    // The first admin then comes from the management token.
    app.post(
        "/api/v1/admin/users",
        ADMIN_TOKEN,
        json!({"username": "first", "password": PASSWORD, "server_admin": true}),
    )
    .await
    .expect(201);
}

/// CORE-3a: empty or blank secrets, and a short preset bootstrap token, stop the start — in
/// development too (an empty admin token used to make `Authorization: Bearer ` an admin).
#[tokio::test]
async fn empty_secrets_and_short_bootstrap_tokens_do_not_start() {
    let dir = TempDir(std::env::temp_dir().join(format!("conclave-test-{}", uuid::Uuid::now_v7())));
    let base = || Config {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.0.clone(),
        ..Config::default()
    };
    type Tweak = fn(&mut Config);
    let cases: [(&str, Tweak); 5] = [
        ("admin token", |c| {
            c.admin_token = Some(SecretString::from(""))
        }),
        ("access token", |c| {
            c.access_token = Some(SecretString::from(" "))
        }),
        ("bootstrap token", |c| {
            c.bootstrap_token = Some(SecretString::from(""))
        }),
        ("master key", |c| {
            c.master_key = Some(SecretString::from("\t"))
        }),
        ("short bootstrap token", |c| {
            c.bootstrap_token = Some(SecretString::from("12345"))
        }),
    ];
    for (what, tweak) in cases {
        let mut config = base();
        tweak(&mut config);
        let clock = Arc::new(conclave_core::ManualClock::default());
        match Application::build(config, clock).await {
            Err(StartError::Config(_)) => {}
            Err(other) => panic!("{what}: expected a configuration error, got {other}"),
            Ok(_) => panic!("{what}: the server must not start"),
        }
    }
}

/// AUTH-9: with the gate on, every REST request but the public documents — cookie sessions,
/// every sign-in, the management token — needs `X-API-Access-Token`.
async fn the_access_gate_covers_cookies_and_every_sign_in(app: TestApp) {
    const ACCESS: &str = "the-access-code-0123456789";
    let Some(app) = spawn_app_with(app.backend, |c| {
        c.access_token = Some(SecretString::from(ACCESS));
    })
    .await
    else {
        return;
    };
    let gated = |m: Method, p: &str| {
        app.client
            .request(m, app.url(p))
            .header("x-api-access-token", ACCESS)
    };
    // Public: what a client reads before it can know about the gate, probes, the web client.
    let caps = app.get_anon("/api/v1/capabilities").await.expect(200);
    assert_eq!(caps.body["auth"]["access_token_gate"], true);
    for path in ["/api/v1/openapi.json", "/health", "/"] {
        app.get_anon(path).await.expect(200);
    }
    // Every sign-in without the code (or with a wrong one) is refused before anything runs.
    let alice_body = json!({"username": "alice", "password": PASSWORD});
    for (path, body) in [
        ("/api/v1/auth/register", alice_body.clone()),
        ("/api/v1/auth/login", alice_body.clone()),
        (
            "/api/v1/auth/login/mfa",
            json!({"mfa_token": "x", "code": "123456"}),
        ),
        ("/api/v1/auth/bootstrap", bootstrap_body("first")),
    ] {
        app.post_anon(path, body.clone())
            .await
            .expect_error(401, "access_token_required");
        app.send(
            app.client
                .post(app.url(path))
                .header("x-api-access-token", "wrong")
                .json(&body),
        )
        .await
        .expect_error(401, "access_token_required");
    }
    app.send(gated(Method::POST, "/api/v1/auth/register").json(&alice_body))
        .await
        .expect(201);
    // A cookie session needs it on every request, reads included.
    let login = app
        .send(
            gated(Method::POST, "/api/v1/auth/login")
                .json(&json!({"username": "alice", "password": PASSWORD, "cookie": true})),
        )
        .await
        .expect(200);
    let cookie = login.headers["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let csrf = login.string("csrf_token");
    app.send(
        app.client
            .get(app.url("/api/v1/users/@me"))
            .header("cookie", &cookie),
    )
    .await
    .expect_error(401, "access_token_required");
    app.send(gated(Method::GET, "/api/v1/users/@me").header("cookie", &cookie))
        .await
        .expect(200);
    app.send(
        app.client
            .post(app.url("/api/v1/orgs"))
            .header("cookie", &cookie)
            .header("x-csrf-token", &csrf)
            .json(&json!({"name": "Acme"})),
    )
    .await
    .expect_error(401, "access_token_required");
    // Bearer sessions and the management token alike.
    let bearer = app
        .send(gated(Method::POST, "/api/v1/auth/login").json(&alice_body))
        .await
        .expect(200)
        .string("token");
    app.get("/api/v1/users/@me", &bearer)
        .await
        .expect_error(401, "access_token_required");
    app.send(gated(Method::GET, "/api/v1/users/@me").bearer_auth(&bearer))
        .await
        .expect(200);
    app.get("/api/v1/admin/users", ADMIN_TOKEN)
        .await
        .expect_error(401, "access_token_required");
    app.send(gated(Method::GET, "/api/v1/admin/users").bearer_auth(ADMIN_TOKEN))
        .await
        .expect(200);
}

/// AUTH-3: an https public URL gets the `__Host-` cookie with `Secure`; only that name is
/// read, and signing out clears that name.
async fn the_session_cookie_is_host_prefixed_when_secure(app: TestApp) {
    let Some(app) = spawn_app_with(app.backend, |c| {
        c.public_url = Some("https://chat.example".into());
    })
    .await
    else {
        return;
    };
    app.user("alice").await;
    let login = app.cookie_login("alice").await;
    let set_cookie = login.headers["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        set_cookie.starts_with("__Host-conclave_session=cnv_s_"),
        "{set_cookie}"
    );
    for attribute in ["; Secure", "; Path=/", "; HttpOnly", "; SameSite=Strict"] {
        assert!(set_cookie.contains(attribute), "{attribute}: {set_cookie}");
    }
    assert!(!set_cookie.contains("Domain"), "{set_cookie}");
    let csrf = login.string("csrf_token");
    let value = set_cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned();
    let with = |name: &str| {
        app.client
            .get(app.url("/api/v1/auth/session"))
            .header("cookie", format!("{name}={value}"))
    };
    app.send(with("__Host-conclave_session")).await.expect(200);
    app.send(with("conclave_session"))
        .await
        .expect_error(401, "unauthenticated");
    let out = app
        .send(
            app.client
                .post(app.url("/api/v1/auth/logout"))
                .header("cookie", format!("__Host-conclave_session={value}"))
                .header("x-csrf-token", &csrf),
        )
        .await
        .expect(204);
    let cleared = out.headers["set-cookie"].to_str().unwrap();
    assert!(
        cleared.starts_with("__Host-conclave_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    assert!(cleared.contains("; Secure"), "{cleared}");
    app.send(with("__Host-conclave_session"))
        .await
        .expect_error(401, "invalid_token");
}
