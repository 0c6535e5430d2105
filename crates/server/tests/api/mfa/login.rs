//! The two-step sign-in: setup and enabling, the second step with bearer and cookie sessions,
//! every bad input of the second step, and an mfa token dying after five wrong codes.

use super::*;
use crate::cases::Caller;

pub(super) async fn setup_enable_and_two_step_login(app: TestApp) {
    let (app, _) = without_rate_limits(app, |_| {}).await;
    let doc = app.get_anon("/api/v1/openapi.json").await.body;
    let alice = app.user("alice").await;
    // Without 2FA, login answers with a session straight away.
    let plain = app.login("alice", PASSWORD).await.expect(200);
    assert!(plain.body["token"].is_string());
    assert!(plain.body.get("mfa_required").is_none());

    // Setup shows the secret and its otpauth URI once; it is not on yet.
    let setup = app
        .post("/api/v1/auth/totp/setup", &alice.token, json!({}))
        .await
        .expect(200);
    check(&doc, "post", "/api/v1/auth/totp/setup", 200, &setup.body);
    let secret_text = setup.body["secret"].as_str().unwrap();
    let uri = setup.body["otpauth_uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/Conclave:alice?"), "{uri}");
    assert!(uri.contains(&format!("secret={secret_text}")));
    assert!(
        uri.contains("issuer=Conclave") && uri.contains("digits=6") && uri.contains("period=30")
    );
    let secret = TotpSecret::from_base32(secret_text).unwrap();
    assert_eq!(secret.expose_bytes().len(), 20, "160-bit secrets");
    assert!(app.login("alice", PASSWORD).await.expect(200).body["token"].is_string());

    // A wrong code does not enable it; a recovery code is not accepted for enabling.
    let wrong = wrong_code(&code_at(&app, &secret, 0));
    app.expect_all([
        alice
            .post("/api/v1/auth/totp/enable", json!({"code": wrong}))
            .err(401, "invalid_code"),
        alice
            .post(
                "/api/v1/auth/totp/enable",
                json!({"code": "abcd-efgh-jkmn-pqrs"}),
            )
            .err(422, "invalid_format"),
    ])
    .await;
    assert!(app.login("alice", PASSWORD).await.expect(200).body["token"].is_string());

    // A second setup replaces the pending secret: the first one's codes no longer enable.
    let again = app
        .post("/api/v1/auth/totp/setup", &alice.token, json!({}))
        .await
        .expect(200);
    assert_ne!(again.body["secret"], setup.body["secret"]);
    send_code(&app, &alice, "totp/enable", code_at(&app, &secret, 0))
        .await
        .expect_error(401, "invalid_code");
    let secret = TotpSecret::from_base32(again.body["secret"].as_str().unwrap()).unwrap();

    // The right code enables it and returns ten distinct recovery codes.
    let enabled = send_code(&app, &alice, "totp/enable", code_at(&app, &secret, 0))
        .await
        .expect(200);
    check(&doc, "post", "/api/v1/auth/totp/enable", 200, &enabled.body);
    let codes = enabled.strings("recovery_codes");
    assert_eq!(codes.len(), 10);
    let distinct: std::collections::HashSet<_> = codes.iter().collect();
    assert_eq!(distinct.len(), 10);
    for c in &codes {
        assert_eq!(c.len(), 19, "xxxx-xxxx-xxxx-xxxx: {c}");
        assert_eq!(c.matches('-').count(), 3);
    }
    // Enabled: setup and enable refuse, the secret is never shown again.
    app.expect_all([
        alice
            .post("/api/v1/auth/totp/setup", json!({}))
            .err(409, "mfa_already_enabled"),
        alice
            .post(
                "/api/v1/auth/totp/enable",
                json!({"code": code_at(&app, &secret, 0)}),
            )
            .err(409, "mfa_already_enabled"),
    ])
    .await;

    // Login now stops at the password step: no token, no session.
    let before = session_count(&app, &alice).await;
    let first = app.login("alice", PASSWORD).await.expect(200);
    check(&doc, "post", "/api/v1/auth/login", 200, &first.body);
    assert_eq!(first.body["mfa_required"], true);
    assert_eq!(first.body["methods"], json!(["totp", "recovery_code"]));
    assert!(first.body.get("token").is_none() && first.body.get("session").is_none());
    let token = first.string("mfa_token");
    assert!(token.starts_with("cnv_mfa_"));
    assert_eq!(session_count(&app, &alice).await, before);
    // The mfa_token is not a credential.
    app.assert_signed_out(&token).await;

    // The code that enabled 2FA counts as used.
    second_step(&app, &token, &code_at(&app, &secret, 0))
        .await
        .expect_error(401, "code_reused");
    // The next step's code finishes the sign-in with a brand-new session.
    next_step(&app);
    let done = second_step(&app, &token, &code_at(&app, &secret, 0))
        .await
        .expect(200);
    check(&doc, "post", "/api/v1/auth/login/mfa", 200, &done.body);
    let new_token = done.body["token"].as_str().unwrap();
    assert!(new_token.starts_with("cnv_s_"));
    assert_eq!(done.body["user"]["id"], alice.id.as_str());
    let me = app.get("/api/v1/auth/session", new_token).await.expect(200);
    let new_id = me.body["session"]["id"].as_str().unwrap().to_owned();
    let sessions = app
        .get("/api/v1/auth/sessions", &alice.token)
        .await
        .expect(200);
    let ids = sessions.ids();
    assert_eq!(ids.len(), before + 1);
    assert_eq!(ids.iter().filter(|i| **i == new_id).count(), 1);
    // Secrets are never in later answers.
    let secret_b32 = again.body["secret"].as_str().unwrap();
    for body in [&me.body, &done.body, &sessions.body] {
        assert!(!body.to_string().contains(secret_b32));
    }
    let me = app.get("/api/v1/users/@me", new_token).await.expect(200);
    assert!(!me.body.to_string().contains(secret_b32));
}

pub(super) async fn second_step_bad_input_is_refused_and_changes_nothing(app: TestApp) {
    let (app, _) = without_rate_limits(app, |_| {}).await;
    let alice = app.user("alice").await;
    let (secret, recovery) = enable_2fa(&app, &alice).await;
    // One more step, so the previous step's code is one that was never used.
    next_step(&app);
    let before = session_count(&app, &alice).await;
    let token = mfa_token(&app, "alice").await;

    // Malformed codes: 422 naming the field; they do not count against the token.
    for bad in [
        "",
        "12345",
        "1234567",
        "12a456",
        "not a code",
        "abcd-efgh-jkmn-pqr",
    ] {
        let r = second_step(&app, &token, bad)
            .await
            .expect_error(422, "invalid_value");
        assert_eq!(r.field(), Some("/code"), "{bad:?}");
    }
    app.post_anon("/api/v1/auth/login/mfa", json!({"mfa_token": token}))
        .await
        .expect_error(422, "missing_field");
    app.post_anon(
        "/api/v1/auth/login/mfa",
        json!({"mfa_token": token, "code": 123456}),
    )
    .await
    .expect_error(422, "invalid_value");
    // Malformed, unknown or forged tokens: 401 before any code is looked at.
    let current = code_at(&app, &secret, 0);
    for bad_token in [
        "garbage".to_owned(),
        format!("{token}x"),
        secrecy::ExposeSecret::expose_secret(&conclave_core::token::generate(
            conclave_core::token::TokenKind::MfaChallenge,
        ))
        .to_owned(),
        secrecy::ExposeSecret::expose_secret(&conclave_core::token::generate(
            conclave_core::token::TokenKind::Session,
        ))
        .to_owned(),
    ] {
        second_step(&app, &bad_token, &current)
            .await
            .expect_error(401, "invalid_mfa_token");
    }
    // A wrong code and an expired one (two steps old): 401, nothing consumed.
    let wrong = wrong_code(&current);
    second_step(&app, &token, &wrong)
        .await
        .expect_error(401, "invalid_code");
    second_step(&app, &token, &code_at(&app, &secret, -2))
        .await
        .expect_error(401, "invalid_code");
    second_step(&app, &token, &code_at(&app, &secret, 2))
        .await
        .expect_error(401, "invalid_code");
    // A recovery code that was never issued.
    second_step(&app, &token, "zzzz-zzzz-zzzz-zzzz")
        .await
        .expect_error(401, "invalid_code");
    assert_eq!(session_count(&app, &alice).await, before);

    // The token still works (four wrong codes so far); one step of skew is accepted (the
    // previous step's code).
    let ok = second_step(&app, &token, &code_at(&app, &secret, -1))
        .await
        .expect(200);
    assert!(ok.body["token"].is_string());
    assert_eq!(session_count(&app, &alice).await, before + 1);
    // Used twice: refused.
    second_step(&app, &token, &current)
        .await
        .expect_error(401, "invalid_mfa_token");

    // The same code on another sign-in within its window: a replay. A later step is fine.
    let token2 = mfa_token(&app, "alice").await;
    second_step(&app, &token2, &code_at(&app, &secret, -1))
        .await
        .expect_error(401, "code_reused");
    second_step(&app, &token2, &current).await.expect(200);
    // A step before the last accepted one is refused as a replay too, though in the window.
    let token3 = mfa_token(&app, "alice").await;
    second_step(&app, &token3, &code_at(&app, &secret, -1))
        .await
        .expect_error(401, "code_reused");
    assert_eq!(session_count(&app, &alice).await, before + 2);

    // An expired token: refused even with a fresh code, and recovery codes stay unused.
    app.clock.advance(chrono::Duration::minutes(5));
    second_step(&app, &token3, &code_at(&app, &secret, 0))
        .await
        .expect_error(401, "invalid_mfa_token");
    second_step(&app, &token3, &recovery[0])
        .await
        .expect_error(401, "invalid_mfa_token");
    assert_eq!(session_count(&app, &alice).await, before + 2);
    let token4 = mfa_token(&app, "alice").await;
    second_step(&app, &token4, &recovery[0]).await.expect(200);
}

pub(super) async fn mfa_token_dies_after_five_wrong_codes(app: TestApp) {
    let (app, _) = without_rate_limits(app, |_| {}).await;
    let alice = app.user("alice").await;
    let (secret, _) = enable_2fa(&app, &alice).await;
    let token = mfa_token(&app, "alice").await;
    let good = code_at(&app, &secret, 0);
    let wrong = wrong_code(&good);
    for _ in 0..4 {
        second_step(&app, &token, &wrong)
            .await
            .expect_error(401, "invalid_code");
    }
    // Four wrong: still alive. The fifth kills it.
    second_step(&app, &token, &wrong)
        .await
        .expect_error(401, "invalid_code");
    second_step(&app, &token, &good)
        .await
        .expect_error(401, "invalid_mfa_token");
    // The right code was not consumed by the refused attempt: after the back-off those five
    // failures earned (AUTH-5), a new sign-in can use it.
    let blocked = app
        .login("alice", PASSWORD)
        .await
        .expect_error(429, "too_many_attempts");
    assert_eq!(blocked.headers["retry-after"], "30");
    app.clock.advance(chrono::Duration::seconds(30));
    let token = mfa_token(&app, "alice").await;
    second_step(&app, &token, &code_at(&app, &secret, -1))
        .await
        .expect(200);
}

pub(super) async fn cookie_sessions_take_the_second_step_too(app: TestApp) {
    let (app, _) = without_rate_limits(app, |_| {}).await;
    let alice = app.user("alice").await;
    let (secret, _) = enable_2fa(&app, &alice).await;
    let first = app.cookie_login("alice").await;
    assert!(
        first.headers.get("set-cookie").is_none(),
        "no session before the second step"
    );
    assert_eq!(first.body["mfa_required"], true);
    let token = first.body["mfa_token"].as_str().unwrap();
    // The second step need not repeat `cookie`: the password step asked for one.
    let done = second_step(&app, token, &code_at(&app, &secret, 0))
        .await
        .expect(200);
    assert!(
        done.body.get("token").is_none(),
        "cookie sessions never expose the token"
    );
    let csrf = done.string("csrf_token");
    let set_cookie = done.headers["set-cookie"].to_str().unwrap().to_owned();
    assert!(set_cookie.starts_with("conclave_session=cnv_s_") && set_cookie.contains("HttpOnly"));
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let s = app
        .get_with_header("/api/v1/auth/session", "cookie", &cookie)
        .await
        .expect(200);
    assert_eq!(s.body["csrf_token"], csrf.as_str());
    assert_eq!(s.body["session"]["cookie"], true);
    // 2FA routes with a cookie need the CSRF token like every other write.
    app.send(
        app.client
            .post(app.url("/api/v1/auth/recovery-codes"))
            .header("cookie", cookie.clone())
            .json(&json!({"code": code_at(&app, &secret, 1)})),
    )
    .await
    .expect_error(403, "csrf_failed");

    // A bearer password step may ask for the cookie at the second step.
    next_step(&app);
    let token = mfa_token(&app, "alice").await;
    let done = app
        .post_anon(
            "/api/v1/auth/login/mfa",
            json!({"mfa_token": token, "code": code_at(&app, &secret, 0), "cookie": true}),
        )
        .await
        .expect(200);
    assert!(done.body.get("token").is_none() && done.body["csrf_token"].is_string());
    assert!(done.headers.get("set-cookie").is_some());
}

/// AUTH-2: a password change ends what rests on the old password — here a sign-in halfway
/// through (its second step pending): the challenge made before the change signs nobody in,
/// whatever code comes. Before, it stayed good for its five minutes.
pub(super) async fn a_password_change_ends_pending_second_steps(app: TestApp) {
    let (app, _) = without_rate_limits(app, |_| {}).await;
    let alice = app.user("alice").await;
    let (secret, _) = enable_2fa(&app, &alice).await;
    let pending = mfa_token(&app, "alice").await;
    let body = json!({"current_password": PASSWORD, "new_password": "a brand new passphrase"});
    app.post("/api/v1/auth/password", &alice.token, body)
        .await
        .expect(204);
    second_step(&app, &pending, &code_at(&app, &secret, 0))
        .await
        .expect_error(401, "invalid_mfa_token");
    // The new password's sign-in goes through.
    let res = app
        .login("alice", "a brand new passphrase")
        .await
        .expect(200);
    let fresh = res.string("mfa_token");
    next_step(&app);
    second_step(&app, &fresh, &code_at(&app, &secret, 0))
        .await
        .expect(200);
}
