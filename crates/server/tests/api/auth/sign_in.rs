//! Signing in and registering: failures that look alike, registration modes and password rules,
//! the management token only on admin routes, and the access-token gate on every sign-in.

use super::*;
use conclave_core::types::RegistrationMode;

pub(super) async fn login_failures_look_alike(app: TestApp) {
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

pub(super) async fn registration_modes_and_password_rules(app: TestApp) {
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
    let closed = with_registration(&app, RegistrationMode::Closed).await;
    closed
        .post_anon(
            "/api/v1/auth/register",
            json!({"username": "carol", "password": PASSWORD}),
        )
        .await
        .expect_error(403, "registration_closed");

    // Invite-only registration: a code is required, and it joins the org.
    let inv = with_registration(&app, RegistrationMode::Invite).await;
    let admin = inv.bootstrap().await;
    let org = inv.org(&admin, "Acme").await;
    inv.post_anon(
        "/api/v1/auth/register",
        json!({"username": "dave", "password": PASSWORD}),
    )
    .await
    .expect_error(422, "required");
    let code = inv.invite(&org, &admin, json!({"max_uses": 1})).await;
    let code = code.expect(201).string("code");
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

/// AZ-7, CORE-2: a hundred registrations at once with one single-use invite (invite-only
/// registration) make one account, not one each: the account and the invite's use are one
/// transaction. The others get the answer a used-up code gets (or 503 when the hashing pool is
/// busy, which creates nothing).
pub(super) async fn one_single_use_invite_makes_one_account_under_parallel_registrations(
    app: TestApp,
) {
    let inv = spawn_app_with(app.backend, |c| {
        c.registration = RegistrationMode::Invite;
        c.rate_limits = conclave_server::config::OnOff::Off;
    })
    .await
    .expect("the app starts");
    let admin = inv.bootstrap().await;
    let org = inv.org(&admin, "Acme").await;
    let code = inv.invite(&org, &admin, json!({"max_uses": 1})).await;
    let code = code.expect(201).string("code");
    let inv = Arc::new(inv);
    let answers = crate::bruteforce::at_once(100, |i| {
        let (inv, code) = (inv.clone(), code.clone());
        async move {
            inv.post_anon(
                "/api/v1/auth/register",
                json!({"username": format!("racer{i}"), "password": PASSWORD, "invite_code": code}),
            )
            .await
        }
    })
    .await;
    let created = answers.iter().filter(|r| r.status.as_u16() == 201).count();
    assert_eq!(created, 1, "one account for one use");
    for r in answers.iter().filter(|r| r.status.as_u16() != 201) {
        let code = r.code();
        assert!(
            (r.status.as_u16() == 422 && code == "invite_invalid") || r.status.as_u16() == 503,
            "{} {}",
            r.status,
            r.body
        );
    }
    let users = inv
        .items("/api/v1/admin/users?limit=100", ADMIN_TOKEN)
        .await;
    let racers = users
        .iter()
        .filter(|u| {
            u["username"]
                .as_str()
                .is_some_and(|n| n.starts_with("racer"))
        })
        .count();
    assert_eq!(racers, 1, "no account without the invite's use");
    let members = inv.items(&org_path(&org, "/members"), &admin.token).await;
    assert_eq!(members.len(), 2, "the admin and the one new member");
}

pub(super) async fn management_token_only_on_admin_routes(app: TestApp) {
    let list = app
        .get("/api/v1/admin/users", ADMIN_TOKEN)
        .await
        .expect(200);
    assert!(list.body["items"].is_array());
    // Not valid anywhere else.
    app.assert_signed_out(ADMIN_TOKEN).await;
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

/// AUTH-9: with the gate on, every REST request but the public documents — cookie sessions,
/// every sign-in, the management token — needs `X-API-Access-Token`.
pub(super) async fn the_access_gate_covers_cookies_and_every_sign_in(app: TestApp) {
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
    let cookie = login.session_cookie();
    let csrf = login.string("csrf_token");
    app.get_with_header("/api/v1/users/@me", "cookie", &cookie)
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

/// A second app like `app` but with the `registration` mode given.
async fn with_registration(app: &TestApp, registration: RegistrationMode) -> TestApp {
    let other = spawn_app_with(app.backend, |c| c.registration = registration);
    other.await.expect("the app starts")
}
