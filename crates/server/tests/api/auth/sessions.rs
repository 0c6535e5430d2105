//! Sessions once signed in: broken, revoked and expired tokens, listing and revoking sessions,
//! password change, cookie sessions with CSRF and the `__Host-` prefix, disabled users.

use super::*;
use crate::cases::Caller;

pub(super) async fn broken_revoked_and_expired_tokens_are_refused(app: TestApp) {
    let alice = app.user("alice").await;
    app.get_anon("/api/v1/users/@me")
        .await
        .expect_error(401, "unauthenticated");
    // One character changed: the checksum fails without a lookup.
    let mut broken = alice.token.clone();
    let last = broken.pop().unwrap();
    broken.push(if last == '0' { '1' } else { '0' });
    app.assert_signed_out(&broken).await;
    app.assert_signed_out("garbage").await;
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
    app.logout_and_check(&alice).await;
    // Idle expiry: 7 days without use.
    let t = app.login("alice", PASSWORD).await.string("token");
    app.get("/api/v1/users/@me", &t).await.expect(200);
    app.clock.advance(chrono::Duration::days(6));
    app.get("/api/v1/users/@me", &t).await.expect(200);
    app.clock.advance(chrono::Duration::days(6));
    app.get("/api/v1/users/@me", &t).await.expect(200);
    app.clock.advance(chrono::Duration::days(8));
    app.assert_signed_out(&t).await;
    // Absolute expiry: 30 days even when used daily.
    let t = app.login("alice", PASSWORD).await.string("token");
    for _ in 0..29 {
        app.clock.advance(chrono::Duration::days(1));
        app.get("/api/v1/users/@me", &t).await.expect(200);
    }
    app.clock.advance(chrono::Duration::days(1));
    app.assert_signed_out(&t).await;
}

pub(super) async fn sessions_list_revoke_and_password_change(app: TestApp) {
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
    app.expect_all([
        bob.delete(&format!("/api/v1/auth/sessions/{second_id}"))
            .err(404, "not_found"),
        alice
            .delete("/api/v1/auth/sessions/not-a-uuid")
            .err(400, "invalid_id"),
        alice
            .delete(&format!("/api/v1/auth/sessions/{second_id}"))
            .is(204),
    ])
    .await;
    app.get("/api/v1/users/@me", &second).await.expect(401);
    app.get("/api/v1/users/@me", &third).await.expect(200);
    // Revoke others.
    let r = app
        .post_empty("/api/v1/auth/sessions/revoke-others", &alice.token)
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
    app.expect_all([
        alice
            .post(
                "/api/v1/auth/password",
                json!({"current_password": PASSWORD, "new_password": "short"}),
            )
            .is(422),
        alice
            .post(
                "/api/v1/auth/password",
                json!({"current_password": PASSWORD, "new_password": "another long passphrase"}),
            )
            .is(204),
    ])
    .await;
    app.get("/api/v1/users/@me", &other).await.expect(401);
    app.get("/api/v1/users/@me", &alice.token).await.expect(200);
    app.login("alice", PASSWORD).await.expect(401);
    app.login("alice", "another long passphrase")
        .await
        .expect(200);
}

pub(super) async fn cookie_sessions_need_csrf(app: TestApp) {
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
    assert_eq!(orgs.items().len(), 0);
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

pub(super) async fn disabling_a_user_revokes_access(app: TestApp) {
    let admin = app.bootstrap().await;
    let alice = app.user("alice").await;
    app.expect_all([
        alice
            .patch(
                &format!("/api/v1/admin/users/{}", alice.id),
                json!({"disabled": true}),
            )
            .err(403, "forbidden"),
        admin
            .patch(
                &format!("/api/v1/admin/users/{}", admin.id),
                json!({"disabled": true}),
            )
            .err(409, "cannot_demote_self"),
    ])
    .await;
    let u = app.set_disabled(ADMIN_TOKEN, &alice, true).await;
    assert_eq!(u.body["disabled"], true);
    app.assert_signed_out(&alice.token).await;
    app.login("alice", PASSWORD)
        .await
        .expect_error(403, "account_disabled");
    app.set_disabled(ADMIN_TOKEN, &alice, false).await;
    app.login("alice", PASSWORD).await.expect(200);
}

/// AUTH-3: an https public URL gets the `__Host-` cookie with `Secure`; only that name is
/// read, and signing out clears that name.
pub(super) async fn the_session_cookie_is_host_prefixed_when_secure(app: TestApp) {
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
