//! AUTH-10 over HTTP, OpenID Connect. Two providers:
//!
//! - the real `oidc-provider` (npm, a certified implementation) started from
//!   `web/tests/oidc-provider.mjs`, driven through its login and consent pages like a browser
//!   ([`node`]): the happy path, a replayed callback (code and state used twice), a state that
//!   does not match the browser's cookie, a disabled account and org roles from a `groups`
//!   claim ([`sign_in`]);
//! - a provider written here ([`forger`]) whose token endpoint checks PKCE like a real one but
//!   answers with the ID token a test asks for — signed with its published RSA key unless the
//!   test forges it otherwise — for what a real provider never does: a wrong nonce, another
//!   audience, an expired token, `alg: none`, HS256 signed with the provider's public key
//!   ([`id_tokens`]).
//!
//! Both meet the server's access gate in [`gate`]. The tests are listed here, so each is
//! `sso::oidc::{sqlite,postgres}::<name>`.

mod forger;
mod gate;
mod id_tokens;
mod node;
mod sign_in;

use crate::both_backends;
use crate::helpers::*;
use conclave_server::config::{Config, OidcProviderConfig, OnOff};
use gate::{
    a_state_begun_outside_the_gate_is_not_completed_through_it,
    the_access_gate_holds_for_openid_sign_in,
};
use id_tokens::{
    a_reassigned_email_never_links_to_another_subjects_account,
    erased_accounts_come_back_only_as_new_ones, forged_id_tokens_are_refused,
    link_existing_takes_only_a_verified_email, openid_failures_count_toward_the_address_back_off,
    several_providers_at_once_keep_their_identities_apart,
};
use serde_json::{json, Value};
use sign_in::{
    disabled_accounts_cannot_sign_in_with_oidc, oidc_provider_signs_in_links_and_maps_roles,
    replayed_and_cross_browser_callbacks_are_refused,
};
use std::collections::HashMap;

both_backends!(
    oidc_provider_signs_in_links_and_maps_roles,
    replayed_and_cross_browser_callbacks_are_refused,
    disabled_accounts_cannot_sign_in_with_oidc,
    forged_id_tokens_are_refused,
    link_existing_takes_only_a_verified_email,
    the_access_gate_holds_for_openid_sign_in,
    erased_accounts_come_back_only_as_new_ones,
    several_providers_at_once_keep_their_identities_apart,
    openid_failures_count_toward_the_address_back_off,
    a_state_begun_outside_the_gate_is_not_completed_through_it,
    a_reassigned_email_never_links_to_another_subjects_account,
);

const CLIENT_ID: &str = "conclave-test";
const CLIENT_SECRET: &str = "conclave test client secret";

fn provider(id: &str, issuer: &str, extra: Value) -> OidcProviderConfig {
    let mut p = json!({
        "id": id, "issuer": issuer, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
        "scopes": ["openid", "email", "profile", "groups"], "create_users": true,
        "allow_insecure_http": true,
    });
    for (k, v) in extra.as_object().unwrap() {
        p[k] = v.clone();
    }
    serde_json::from_value(p).unwrap()
}

/// Lets the app reach the providers on loopback, the callbacks come "from" trusted proxies.
fn reach(c: &mut Config, ports: Vec<u16>) {
    c.rate_limits = OnOff::Off;
    c.webhook_allow_cidrs = vec!["127.0.0.1/32".parse().unwrap()];
    c.webhook_allow_ports = ports;
}

/// Serves the database (and data directory) of `first`: another node of the same server.
fn same_database(c: &mut Config, first: &TestApp) {
    c.data_dir = first.data_dir.clone();
    c.database_url = first.database_url.clone();
}

/// A browser: keeps cookies (ours and the provider's), follows nothing by itself.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Where the callback answer `res` (of `url`) leads (`/` or `/#/signin?…`).
fn callback_leads(res: &reqwest::Response, url: &str) -> String {
    assert_eq!(res.status().as_u16(), 302, "{url}");
    res.headers()["location"].to_str().unwrap().to_owned()
}

/// Follows the callback in `browser`: where it leads.
async fn callback(browser: &reqwest::Client, url: &str) -> String {
    callback_leads(&browser.get(url).send().await.unwrap(), url)
}

/// Follows the callback `url` from a client that sends no cookie but the state cookie `state`
/// (a replay by whoever saw both): where it leads.
async fn callback_with_state(app: &TestApp, url: &str, state: &str) -> String {
    let res = app
        .client
        .get(url)
        .header("cookie", format!("conclave_oidc={state}"))
        .send()
        .await
        .unwrap();
    callback_leads(&res, url)
}

/// Starts a sign-in at `start` in `browser` (a 302 to the provider expected): the query of
/// the provider URL it sends the browser to (`state`, `nonce`, `code_challenge`, …).
async fn started(browser: &reqwest::Client, start: &str) -> HashMap<String, String> {
    let res = browser.get(start).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 302);
    let to = url::Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
    to.query_pairs().into_owned().collect()
}

/// What `GET /auth/session` answers `browser` (200 expected).
async fn session(app: &TestApp, browser: &reqwest::Client) -> Value {
    let res = browser
        .get(app.url("/api/v1/auth/session"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    res.json().await.unwrap()
}

/// Who the browser's session cookie is.
async fn session_user(app: &TestApp, browser: &reqwest::Client) -> Value {
    session(app, browser).await["user"].clone()
}
