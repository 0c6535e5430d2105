//! AUTH-4, AUTH-2 (a new session after the 2FA step), DATA-3 (TOTP secrets sealed at rest):
//! TOTP setup and enabling, the two-step login (bearer and cookie), recovery codes, disabling,
//! every bad input of the second step, org-enforced 2FA, and codes from an independent
//! generator (pyotp).
//!
//! Codes are computed from the app's manual clock, never the wall clock; tests move to the next
//! 30-second step when they need a code that was not used yet.

use crate::both_backends;
use crate::helpers::*;
use crate::meta::check;
use conclave_core::totp::{time_step, TotpSecret};
use conclave_core::Clock;
use conclave_server::config::{Config, OnOff};
use reqwest::Method;
use secrecy::ExposeSecret;
use serde::Serialize;
use serde_json::{json, Value};

mod codes;
mod enforced;
mod login;

use codes::*;
use enforced::*;
use login::*;

both_backends!(
    setup_enable_and_two_step_login,
    second_step_bad_input_is_refused_and_changes_nothing,
    mfa_token_dies_after_five_wrong_codes,
    recovery_codes_work_once_and_regenerate,
    disable_needs_a_valid_code,
    cookie_sessions_take_the_second_step_too,
    org_enforced_2fa,
    totp_secret_is_sealed_at_rest,
    codes_from_an_independent_generator_are_accepted,
    a_server_admin_requires_2fa_of_one_user,
    a_password_change_ends_pending_second_steps,
);

/// The app with request rate limits off, so only the AUTH-5 back-off decides about sign-ins.
pub(crate) async fn without_rate_limits(
    app: TestApp,
    tweak: impl FnOnce(&mut Config),
) -> (TestApp, String) {
    let mut url = String::new();
    let app = spawn_app_with(app.backend, |c| {
        c.rate_limits = OnOff::Off;
        tweak(c);
        url = c.database_url();
    })
    .await
    .expect("the app starts");
    (app, url)
}

/// The TOTP code `steps` steps from the app's current time.
pub(crate) fn code_at(app: &TestApp, secret: &TotpSecret, steps: i64) -> String {
    secret.code_at_step(time_step(app.clock.now()) + steps)
}

/// A six-digit code that is not `good` (the next number, wrapping at a million): wrong for
/// the step `good` belongs to.
pub(crate) fn wrong_code(good: &str) -> String {
    format!("{:06}", (good.parse::<u32>().unwrap() + 1) % 1_000_000)
}

/// Moves the app's clock to the next TOTP step.
pub(crate) fn next_step(app: &TestApp) {
    app.clock.advance(chrono::Duration::seconds(30));
}

/// Sets up and enables 2FA for `user`; returns the secret and the recovery codes. The clock is
/// moved on a step afterwards, so the enabling code is not the current one any more.
pub(crate) async fn enable_2fa(app: &TestApp, user: &User) -> (TotpSecret, Vec<String>) {
    let setup = app
        .post("/api/v1/auth/totp/setup", &user.token, json!({}))
        .await
        .expect(200);
    let secret = TotpSecret::from_base32(setup.body["secret"].as_str().unwrap()).unwrap();
    let enabled = send_code(app, user, "totp/enable", code_at(app, &secret, 0))
        .await
        .expect(200);
    let codes = enabled.strings("recovery_codes");
    next_step(app);
    (secret, codes)
}

/// `user` sends a 2FA `code` (a TOTP or a recovery code) to `/api/v1/auth/{route}`:
/// `totp/enable`, `totp/disable` or `recovery-codes`.
pub(crate) async fn send_code(
    app: &TestApp,
    user: &User,
    route: &str,
    code: impl Serialize,
) -> Res {
    let path = format!("/api/v1/auth/{route}");
    app.post(&path, &user.token, json!({ "code": code })).await
}

/// The password step for a 2FA user: the `mfa_token`.
pub(crate) async fn mfa_token(app: &TestApp, username: &str) -> String {
    let res = app.login(username, PASSWORD).await.expect(200);
    assert_eq!(res.body["mfa_required"], true, "{}", res.body);
    res.string("mfa_token")
}

pub(crate) async fn second_step(app: &TestApp, mfa_token: &str, code: &str) -> Res {
    app.post_anon(
        "/api/v1/auth/login/mfa",
        json!({"mfa_token": mfa_token, "code": code}),
    )
    .await
}

async fn session_count(app: &TestApp, user: &User) -> usize {
    app.items("/api/v1/auth/sessions", &user.token).await.len()
}
