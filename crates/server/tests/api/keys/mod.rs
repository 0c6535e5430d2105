//! AUTH-7, AZ-5: API keys — shown once and listed masked, scopes capping every route family
//! (403 `insufficient_scope`, or 404 when the owner could not see the resource either), org and
//! conversation limits, the owner's current rights, revocation, expiry, rotation with a grace
//! period, IP allowlists and last use, the gateway, and refused credentials changing nothing.

use crate::both_backends;
use crate::fixtures::{Acme, Team};
use crate::helpers::*;
use crate::ws::Ws;
use chrono::Duration;
use reqwest::Method;
use serde_json::{json, Value};

mod lifecycle;
mod reach;

use lifecycle::*;
use reach::*;

both_backends!(
    keys_are_shown_once_and_listed_masked,
    bad_keys_are_refused_and_change_nothing,
    scopes_cap_every_route_family,
    keys_follow_their_owners_current_rights,
    keys_stay_in_their_org_and_conversations,
    rotation_keeps_the_old_key_for_the_grace_period,
    ip_allowlist_and_last_use,
    creation_checks_every_field,
    keys_of_others_cannot_be_touched,
    keys_on_the_gateway,
    free_keys_spend_the_owner_budget_and_tiers_have_their_own,
);

/// Every scope a key can be given; the first six are those of the messaging and org routes.
pub(crate) const ALL_SCOPES: &[&str] = &[
    "messages:read",
    "messages:write",
    "conversations:read",
    "conversations:admin",
    "org:read",
    "org:admin",
    "files:write",
    "webhooks:admin",
];

/// Creates a key as `owner`; answers its id and the key.
pub(crate) async fn make_key(app: &TestApp, owner: &User, body: Value) -> (String, String) {
    let res = app
        .post("/api/v1/api-keys", &owner.token, body)
        .await
        .expect(201);
    let key = res.body["key"].as_str().expect("the key").to_owned();
    (res.id(), key)
}

/// Every scope but `but`: a key that lacks only the one a route needs.
pub(crate) fn all_scopes_but(but: &str) -> Vec<&'static str> {
    ALL_SCOPES.iter().copied().filter(|s| *s != but).collect()
}

/// A key `owner` makes in `org` with `scopes`, limited to `conversations` unless that is
/// empty; answers the key.
pub(crate) async fn org_key(
    app: &TestApp,
    owner: &User,
    org: &str,
    scopes: &[&str],
    conversations: &[&str],
) -> String {
    let mut body = json!({"name": "k", "org_id": org, "scopes": scopes});
    if !conversations.is_empty() {
        body["conversation_ids"] = json!(conversations);
    }
    make_key(app, owner, body).await.1
}

/// The caller's keys as listed.
async fn listed(app: &TestApp, owner: &User) -> Vec<Value> {
    app.items("/api/v1/api-keys", &owner.token).await
}

fn messages(conv: &str) -> String {
    format!("/api/v1/conversations/{conv}/messages")
}
