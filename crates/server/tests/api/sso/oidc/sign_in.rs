//! Sign-in through the real provider: the happy path with org roles from `groups`, replayed and
//! cross-browser callbacks, and disabled accounts.

use super::node::{node_app, node_op, node_with_app, through_provider};
use super::*;

/// Signs `browser` in at `app` as `account` through the provider, the callback leading to `/`;
/// answers the callback URL.
async fn signed_in(app: &TestApp, browser: &reqwest::Client, account: &str) -> String {
    let back = through_provider(app, browser, account).await;
    assert_eq!(callback(browser, &back).await, "/");
    back
}

pub(super) async fn oidc_provider_signs_in_links_and_maps_roles(first: TestApp) {
    // An org to map roles into, made on the database the OpenID-enabled node then serves.
    let owner = first.user("owner").await;
    let org = first.org(&owner, "Acme").await;
    let Some(op) = node_op().await else {
        return;
    };
    let roles = json!([{"claim": "groups", "value": "chat-admins", "org": org, "role": "admin"}]);
    let app = node_app(first.backend, &op, json!({ "roles": roles }), |c| {
        same_database(c, &first);
    })
    .await;
    let caps = app.get_anon("/api/v1/capabilities").await.expect(200);
    assert_eq!(
        caps.body["auth"]["providers"],
        json!([{"id": "node", "name": "node", "kind": "oidc"}])
    );
    assert_eq!(caps.body["features"]["sso"], true);
    // The start redirect asks for the code flow with PKCE S256, a state and a nonce.
    let start = app
        .client
        .get(app.url("/api/v1/auth/oidc/node/start"))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status().as_u16(), 302);
    let to = url::Url::parse(start.headers()["location"].to_str().unwrap()).unwrap();
    let q: HashMap<String, String> = to.query_pairs().into_owned().collect();
    assert!(to.as_str().starts_with(&op.issuer));
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(q["redirect_uri"], op.redirect_uri);
    assert!(q["state"].len() >= 43 && q["nonce"].len() >= 43);
    assert!(q["scope"].contains("openid") && q["scope"].contains("groups"));
    let set_cookie = start.headers()["set-cookie"].to_str().unwrap();
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"));

    let alice_browser = browser();
    signed_in(&app, &alice_browser, "op-alice").await;
    let alice = session_user(&app, &alice_browser).await;
    assert_eq!(alice["username"], "opalice");
    assert_eq!(alice["display_name"], "Alice Op");
    // Her groups made her an admin of Acme; bob (staff only) gets no membership.
    let members = app
        .items(&format!("/api/v1/orgs/{org}/members"), &owner.token)
        .await;
    let member = members
        .iter()
        .find(|m| m["user"]["id"] == alice["id"])
        .expect("alice joined Acme");
    assert_eq!(member["role"], "admin");
    let bob_browser = browser();
    signed_in(&app, &bob_browser, "op-bob").await;
    let bob = session_user(&app, &bob_browser).await;
    let members = app
        .items(&format!("/api/v1/orgs/{org}/members"), &owner.token)
        .await;
    assert!(!members.iter().any(|m| m["user"]["id"] == bob["id"]));
    // Signing in again is the same account (issuer + sub), audited with the method.
    let again = browser();
    signed_in(&app, &again, "op-alice").await;
    assert_eq!(session_user(&app, &again).await["id"], alice["id"]);
    let identities = app
        .items(
            &format!(
                "/api/v1/admin/users/{}/identities",
                alice["id"].as_str().unwrap()
            ),
            ADMIN_TOKEN,
        )
        .await;
    assert_eq!(identities.len(), 1);
    assert_eq!(identities[0]["kind"], "oidc");
    assert_eq!(identities[0]["provider"], op.issuer);
    assert_eq!(identities[0]["subject"], "op-alice");
    let logins = app.audit_of("auth.login&limit=100").await.items();
    let by_oidc = logins
        .iter()
        .filter(|e| e["outcome"] == "success" && e["detail"]["method"] == "oidc")
        .count();
    assert_eq!(by_oidc, 3);
}

pub(super) async fn replayed_and_cross_browser_callbacks_are_refused(app: TestApp) {
    let Some((_op, app)) = node_with_app(app.backend).await else {
        return;
    };
    let alice = browser();
    let back = signed_in(&app, &alice, "op-alice").await;
    // The callback cleared the browser's state cookie; the same callback again, even with
    // the state's cookie put back (a replay by whoever saw both): the state was used.
    assert_eq!(
        callback(&alice, &back).await,
        "/#/signin?error=oidc_state_mismatch"
    );
    let state = url::Url::parse(&back)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    assert_eq!(
        callback_with_state(&app, &back, &state).await,
        "/#/signin?error=oidc_state_invalid"
    );
    // A callback URL taken to another browser (login CSRF): its state is not that browser's.
    // Nor does a made-up state, or the provider's refusal, sign anyone in.
    let victim = browser();
    let started = browser();
    let back = through_provider(&app, &started, "op-bob").await;
    let base = app.url("/api/v1/auth/oidc/node/callback");
    let cases = [
        (&victim, back, "oidc_state_mismatch"),
        (
            &started,
            format!("{base}?code=x&state=made-up"),
            "oidc_state_mismatch",
        ),
        (
            &started,
            format!("{base}?error=access_denied"),
            "oidc_provider_error",
        ),
    ];
    for (b, url, code) in cases {
        assert_eq!(callback(b, &url).await, format!("/#/signin?error={code}"));
    }
    // Every failure is audited and counted; the unknown provider is a 404.
    let failed: Vec<Value> = app
        .audit_of("auth.login&limit=100")
        .await
        .items()
        .into_iter()
        .filter(|e| e["outcome"] == "failure")
        .collect();
    let reasons: Vec<&str> = failed
        .iter()
        .filter_map(|e| e["detail"]["reason"].as_str())
        .collect();
    for r in [
        "oidc_state_invalid",
        "oidc_state_mismatch",
        "oidc_provider_error",
    ] {
        assert!(reasons.contains(&r), "{r} in {reasons:?}");
    }
    app.get_anon("/api/v1/auth/oidc/nope/start")
        .await
        .expect_error(404, "not_found");
}

pub(super) async fn disabled_accounts_cannot_sign_in_with_oidc(app: TestApp) {
    let Some((_op, app)) = node_with_app(app.backend).await else {
        return;
    };
    let b = browser();
    signed_in(&app, &b, "op-alice").await;
    let alice = session_user(&app, &b).await;
    let who = User::without_token("opalice", alice["id"].as_str().unwrap());
    app.set_disabled(ADMIN_TOKEN, &who, true).await;
    let again = browser();
    let back = through_provider(&app, &again, "op-alice").await;
    assert_eq!(
        callback(&again, &back).await,
        "/#/signin?error=account_disabled"
    );
    // Her earlier session is gone too.
    let res = b.get(app.url("/api/v1/auth/session")).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 401);
}
