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

mod bootstrap;
mod sessions;
mod sign_in;

use bootstrap::*;
use sessions::*;
use sign_in::*;

both_backends!(
    bootstrap_works_once,
    login_failures_look_alike,
    registration_modes_and_password_rules,
    one_single_use_invite_makes_one_account_under_parallel_registrations,
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
