//! The codes themselves: recovery codes, disabling with a code, TOTP secrets sealed at rest,
//! and codes from an independent generator (pyotp).

use super::*;
use crate::cases::Caller;

pub(super) async fn recovery_codes_work_once_and_regenerate(app: TestApp) {
    let (app, _) = without_rate_limits(app, |_| {}).await;
    let alice = app.user("alice").await;
    let (secret, codes) = enable_2fa(&app, &alice).await;

    // A recovery code signs in once; written without dashes and in upper case it still counts.
    let token = mfa_token(&app, "alice").await;
    let typed = codes[3].replace('-', "").to_uppercase();
    second_step(&app, &token, &typed).await.expect(200);
    // DATA-4: its use is recorded with the sign-in's address and request, like the sign-in.
    let used = app.audit_of("recovery_code.used").await.items();
    assert_eq!(used.len(), 1, "{used:?}");
    assert_eq!(used[0]["ip"], "127.0.0.1", "{used:?}");
    assert!(used[0]["request_id"].is_string(), "{used:?}");
    let token = mfa_token(&app, "alice").await;
    second_step(&app, &token, &codes[3])
        .await
        .expect_error(401, "code_reused");
    // Another one still works.
    second_step(&app, &token, &codes[4]).await.expect(200);

    // Regenerating needs a valid code; a wrong one changes nothing.
    let good = code_at(&app, &secret, 0);
    let wrong = wrong_code(&good);
    send_code(&app, &alice, "recovery-codes", wrong)
        .await
        .expect_error(401, "invalid_code");
    let token = mfa_token(&app, "alice").await;
    second_step(&app, &token, &codes[5]).await.expect(200);
    let fresh = send_code(&app, &alice, "recovery-codes", good)
        .await
        .expect(200);
    let fresh = fresh.strings("recovery_codes");
    assert_eq!(fresh.len(), 10);
    assert!(fresh.iter().all(|c| !codes.contains(c)));
    // The old set is gone, used or not; the new set works.
    let token = mfa_token(&app, "alice").await;
    second_step(&app, &token, &codes[6])
        .await
        .expect_error(401, "invalid_code");
    second_step(&app, &token, &fresh[0]).await.expect(200);
    // A recovery code can confirm a regeneration too (and is used up by it).
    let newer = send_code(&app, &alice, "recovery-codes", &fresh[1])
        .await
        .expect(200);
    assert_eq!(newer.body["recovery_codes"].as_array().unwrap().len(), 10);
    send_code(&app, &alice, "recovery-codes", "nonsense")
        .await
        .expect_error(422, "invalid_value");
}

pub(super) async fn disable_needs_a_valid_code(app: TestApp) {
    let (app, _) = without_rate_limits(app, |_| {}).await;
    let alice = app.user("alice").await;
    // Not on yet: nothing to disable or regenerate.
    let code = || Some(json!({"code": "123456"}));
    let requests = [
        (Method::POST, "/api/v1/auth/totp/disable".to_owned(), code()),
        (
            Method::POST,
            "/api/v1/auth/recovery-codes".to_owned(),
            code(),
        ),
    ];
    app.refused_all(&alice.token, 409, "mfa_not_enabled", requests)
        .await;
    send_code(&app, &alice, "totp/enable", "123456")
        .await
        .expect_error(409, "mfa_setup_missing");
    let (secret, codes) = enable_2fa(&app, &alice).await;
    let good = code_at(&app, &secret, 0);
    let wrong = wrong_code(&good);
    app.expect_all([
        alice
            .post("/api/v1/auth/totp/disable", json!({"code": wrong}))
            .err(401, "invalid_code"),
        alice
            .post("/api/v1/auth/totp/disable", json!({}))
            .err(422, "missing_field"),
    ])
    .await;
    // Still on.
    assert_eq!(
        app.login("alice", PASSWORD).await.expect(200).body["mfa_required"],
        true
    );
    // Without a credential: 401.
    app.post_anon("/api/v1/auth/totp/disable", json!({"code": good}))
        .await
        .expect_error(401, "unauthenticated");
    send_code(&app, &alice, "totp/disable", good)
        .await
        .expect(204);
    // Off: login gives a session at once, the old recovery codes are gone, setup starts over.
    assert!(app.login("alice", PASSWORD).await.expect(200).body["token"].is_string());
    send_code(&app, &alice, "totp/disable", &codes[0])
        .await
        .expect_error(409, "mfa_not_enabled");
    let (_, codes) = enable_2fa(&app, &alice).await;
    // Disabling with a recovery code works as well.
    send_code(&app, &alice, "totp/disable", &codes[9])
        .await
        .expect(204);
    assert!(app.login("alice", PASSWORD).await.expect(200).body["token"].is_string());
}

/// Reads the sealed TOTP columns straight from the database.
pub(super) async fn stored_totp(url: &str, user: &str) -> (i64, Vec<u8>, Vec<u8>) {
    let id = uuid::Uuid::parse_str(user).unwrap();
    let sql =
        "SELECT secret_key_id, secret_nonce, secret_ciphertext FROM user_totp WHERE user_id = $1";
    if url.starts_with("sqlite:") {
        use sqlx::Row;
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        let row = sqlx::query(sql).bind(id).fetch_one(&pool).await.unwrap();
        let out = (row.get::<i64, _>(0), row.get(1), row.get(2));
        pool.close().await;
        out
    } else {
        use sqlx::Row;
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        let row = sqlx::query(sql).bind(id).fetch_one(&pool).await.unwrap();
        let out = (i64::from(row.get::<i32, _>(0)), row.get(1), row.get(2));
        pool.close().await;
        out
    }
}

pub(super) async fn totp_secret_is_sealed_at_rest(app: TestApp) {
    let (app, url) = without_rate_limits(app, |_| {}).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let (secret, _) = enable_2fa(&app, &alice).await;
    let (key_id, nonce, ciphertext) = stored_totp(&url, &alice.id).await;
    assert_eq!(key_id, 1);
    assert_eq!(nonce.len(), 12, "a 96-bit nonce");
    assert_eq!(ciphertext.len(), 20 + 16, "the secret plus the GCM tag");
    let raw = secret.expose_bytes();
    assert!(
        !ciphertext.windows(raw.len()).any(|w| w == raw),
        "the secret is not stored in the clear"
    );
    let b32 = secret.base32();
    assert!(!String::from_utf8_lossy(&ciphertext).contains(b32.expose_secret()));
    // Two users' secrets never share a nonce.
    enable_2fa(&app, &bob).await;
    let (_, bob_nonce, _) = stored_totp(&url, &bob.id).await;
    assert_ne!(nonce, bob_nonce);
}

/// Runs pyotp (an independent RFC 6238 implementation) for `secret` at `unix_time`. `None`
/// (after saying SKIPPED) when python3 or pyotp is missing outside CI; under `CI=true` that is
/// a failure (scripts/test.sh installs pyotp).
fn pyotp_code(secret: &str, unix_time: i64) -> Option<String> {
    let script = format!("import pyotp; print(pyotp.TOTP({secret:?}).at({unix_time}))");
    crate::python::python("pyotp", &script, "")
}

pub(super) async fn codes_from_an_independent_generator_are_accepted(app: TestApp) {
    let (app, _) = without_rate_limits(app, |_| {}).await;
    let alice = app.user("alice").await;
    let setup = app
        .post("/api/v1/auth/totp/setup", &alice.token, json!({}))
        .await
        .expect(200);
    let secret = setup.string("secret");
    let Some(code) = pyotp_code(&secret, app.clock.now().timestamp()) else {
        return;
    };
    assert_eq!(code.len(), 6);
    send_code(&app, &alice, "totp/enable", code)
        .await
        .expect(200);
    // Sign in with pyotp's code for the next step, and again a step later.
    for _ in 0..2 {
        next_step(&app);
        let token = mfa_token(&app, "alice").await;
        let code = pyotp_code(&secret, app.clock.now().timestamp()).unwrap();
        let done = second_step(&app, &token, &code).await.expect(200);
        assert!(done.body["token"].is_string());
    }
    // pyotp's code of a step long gone is refused.
    let token = mfa_token(&app, "alice").await;
    let stale = pyotp_code(&secret, app.clock.now().timestamp() - 300).unwrap();
    second_step(&app, &token, &stale)
        .await
        .expect_error(401, "invalid_code");
}
