//! What the forging provider sends that a real one never does — ID tokens with a wrong nonce,
//! another audience, expired, `alg: none`, HS256 with the public key — and accounts: linking
//! by verified email only, erased accounts, several providers at once, the address back-off.

use super::forger::{Forge, Forger};
use super::*;

pub(super) async fn forged_id_tokens_are_refused(app: TestApp) {
    let Some((forger, app)) = Forger::with_app(app.backend).await else {
        return;
    };
    let cases = [
        (Forge::WrongNonce, "w1"),
        (Forge::WrongAudience, "w2"),
        (Forge::Expired, "w3"),
        (Forge::AlgNone, "w4"),
        (Forge::Hs256WithPublicKey, "w5"),
    ];
    for (mode, code) in cases {
        assert_eq!(
            forger.sign_in(&app, &browser(), code, mode).await,
            "/#/signin?error=oidc_id_token_invalid",
            "{mode:?}"
        );
    }
    // A well-made token from the same provider signs in: the refusals were the tokens'.
    let b = browser();
    assert_eq!(forger.sign_in(&app, &b, "good", Forge::Good).await, "/");
    assert_eq!(session_user(&app, &b).await["username"], "mallory");
    // The code again, under a new state: the provider refuses it.
    assert_eq!(
        forger.sign_in(&app, &browser(), "good", Forge::Good).await,
        "/#/signin?error=oidc_code_rejected"
    );
    let failed = app.audit_of("auth.login&limit=100").await.items();
    let invalid = failed
        .iter()
        .filter(|e| e["detail"]["reason"] == "oidc_id_token_invalid")
        .count();
    assert_eq!(invalid, 5);
}

pub(super) async fn link_existing_takes_only_a_verified_email(app: TestApp) {
    let Some(forger) = Forger::start().await else {
        return;
    };
    let extra = json!({
        "scopes": ["openid"], "create_users": false, "link_existing": "email_verified",
    });
    let app = forger.app(app.backend, extra, |_| {}).await;
    // Someone registers with the address the provider will vouch for: it is only his word.
    let body = json!({
        "username": "carol", "password": PASSWORD, "email": "Mallory@forger.example",
    });
    let carol = app
        .post_anon("/api/v1/auth/register", body)
        .await
        .expect(201);
    assert_eq!(carol.body["user"]["email_verified"], false);
    // An email the provider does not say it verified links nothing (and creates nothing); nor
    // does a verified one while the account's own address is unverified.
    for (code, mode) in [("c1", Forge::Good), ("c2", Forge::GoodVerified)] {
        assert_eq!(
            forger.sign_in(&app, &browser(), code, mode).await,
            "/#/signin?error=sso_user_unknown",
            "{mode:?}"
        );
    }
    // Only a server admin vouches for an account's address; then a verified claim takes the
    // one account with that email, and stays linked.
    let id = carol.body["user"]["id"].as_str().unwrap();
    let path = format!("/api/v1/admin/users/{id}");
    let marked = app
        .patch(&path, ADMIN_TOKEN, json!({ "email_verified": true }))
        .await
        .expect(200);
    assert_eq!(marked.body["email_verified"], true);
    let b = browser();
    assert_eq!(
        forger.sign_in(&app, &b, "c3", Forge::GoodVerified).await,
        "/"
    );
    assert_eq!(session_user(&app, &b).await["id"], carol.body["user"]["id"]);
    let linked = app.audit_of("sso.identity_linked").await.items();
    assert_eq!(linked.len(), 1);
    assert_eq!(linked[0]["detail"]["subject"], "verified-sub");
    // An account an admin creates with an email is vouched for from the start; one without is
    // not, and marking it changes nothing.
    let made = app
        .post(
            "/api/v1/admin/users",
            ADMIN_TOKEN,
            json!({"username": "dave", "password": PASSWORD, "email": "dave@forger.example"}),
        )
        .await
        .expect(201);
    assert_eq!(made.body["email_verified"], true);
    let bare = app
        .post(
            "/api/v1/admin/users",
            ADMIN_TOKEN,
            json!({"username": "erin", "password": PASSWORD}),
        )
        .await
        .expect(201);
    let id = bare.body["id"].as_str().unwrap();
    let path = format!("/api/v1/admin/users/{id}");
    let marked = app
        .patch(&path, ADMIN_TOKEN, json!({ "email_verified": true }))
        .await
        .expect(200);
    assert_eq!(marked.body["email_verified"], false);
    // Vouching is the server admin's: the user herself cannot.
    let own = app
        .login("carol", PASSWORD)
        .await
        .expect(200)
        .string("token");
    let id = carol.body["user"]["id"].as_str().unwrap();
    let res = app
        .patch(
            &format!("/api/v1/admin/users/{id}"),
            &own,
            json!({ "email_verified": false }),
        )
        .await;
    assert_eq!(res.status.as_u16(), 403);
    let res = app
        .patch("/api/v1/users/@me", &own, json!({ "email_verified": true }))
        .await;
    assert_eq!(res.status.as_u16(), 422);
}

/// An address the provider gave to someone else (alice@corp reassigned to a new hire, another
/// subject) never reaches the account the first subject holds: the new person gets a new account
/// where the provider may create one, and is refused where it may not.
pub(super) async fn a_reassigned_email_never_links_to_another_subjects_account(app: TestApp) {
    let Some(forger) = Forger::start().await else {
        return;
    };
    let backend = app.backend;
    let extra = json!({ "scopes": ["openid"], "link_existing": "email_verified" });
    let app = forger.app(backend, extra, |_| {}).await;
    let leaver = browser();
    assert_eq!(
        forger
            .sign_in(&app, &leaver, "r1", Forge::VerifiedAs("s1"))
            .await,
        "/"
    );
    let alice = session_user(&app, &leaver).await;
    let hire = browser();
    assert_eq!(
        forger
            .sign_in(&app, &hire, "r2", Forge::VerifiedAs("s2"))
            .await,
        "/"
    );
    let hired = session_user(&app, &hire).await;
    assert_ne!(
        hired["id"], alice["id"],
        "the new subject got the leaver's account"
    );
    let id = alice["id"].as_str().unwrap();
    let held = app
        .get(&format!("/api/v1/admin/users/{id}/identities"), ADMIN_TOKEN)
        .await
        .expect(200)
        .items();
    let subjects: Vec<&Value> = held.iter().map(|i| &i["subject"]).collect();
    assert_eq!(subjects, [&json!("s1")]);
    // The first subject still reaches its own account.
    let again = browser();
    assert_eq!(
        forger
            .sign_in(&app, &again, "r3", Forge::VerifiedAs("s1"))
            .await,
        "/"
    );
    assert_eq!(session_user(&app, &again).await["id"], alice["id"]);
    // A provider that may not create accounts: the account an admin made with the address is
    // linked to the first subject by it, and the second is unknown.
    let extra = json!({
        "scopes": ["openid"], "create_users": false, "link_existing": "email_verified",
    });
    let app = forger.app(backend, extra, |_| {}).await;
    let made = app
        .post(
            "/api/v1/admin/users",
            ADMIN_TOKEN,
            json!({"username": "alice", "password": PASSWORD, "email": "mallory@forger.example"}),
        )
        .await
        .expect(201);
    let leaver = browser();
    assert_eq!(
        forger
            .sign_in(&app, &leaver, "r4", Forge::VerifiedAs("s1"))
            .await,
        "/"
    );
    assert_eq!(session_user(&app, &leaver).await["id"], made.body["id"]);
    assert_eq!(
        forger
            .sign_in(&app, &browser(), "r5", Forge::VerifiedAs("s2"))
            .await,
        "/#/signin?error=sso_user_unknown"
    );
    let linked = app.audit_of("sso.identity_linked").await.items();
    assert_eq!(linked.len(), 1, "{linked:?}");
}

pub(super) async fn erased_accounts_come_back_only_as_new_ones(app: TestApp) {
    let Some((forger, app)) = Forger::with_app(app.backend).await else {
        return;
    };
    let b = browser();
    assert_eq!(forger.sign_in(&app, &b, "e1", Forge::Good).await, "/");
    let signed_in = session(&app, &b).await;
    let old = &signed_in["user"];
    // No password (made by the provider), a sign-in just now: the browser erases it.
    let token = signed_in["csrf_token"].as_str().unwrap();
    let res = b
        .delete(app.url("/api/v1/users/@me"))
        .header("x-csrf-token", token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 204);
    let res = b.get(app.url("/api/v1/auth/session")).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 401);
    let id = old["id"].as_str().unwrap();
    let identities = app
        .get(&format!("/api/v1/admin/users/{id}/identities"), ADMIN_TOKEN)
        .await;
    assert!(identities.status.as_u16() == 404 || identities.items().is_empty());
    // The provider still vouching for the same subject reaches a new, empty account (its
    // creation audited), never the erased one.
    let again = browser();
    assert_eq!(forger.sign_in(&app, &again, "e2", Forge::Good).await, "/");
    let new = session_user(&app, &again).await;
    assert_ne!(new["id"], old["id"]);
    let registered = app.audit_of("user.registered").await.items();
    assert_eq!(registered.len(), 2, "{registered:?}");
}

pub(super) async fn several_providers_at_once_keep_their_identities_apart(app: TestApp) {
    let (Some(one), Some(two)) = (Forger::start().await, Forger::start().await) else {
        return;
    };
    let admin_email = "mallory@forger.example";
    let p1 = provider(
        "one",
        &one.issuer(),
        json!({ "scopes": ["openid"], "name": "One" }),
    );
    let p2 = provider(
        "two",
        &two.issuer(),
        json!({ "scopes": ["openid"], "create_users": false, "link_existing": "email_verified" }),
    );
    let ports = vec![one.port, two.port];
    let app = spawn_app_with(app.backend, |c| {
        c.oidc.providers = vec![p1, p2];
        reach(c, ports);
    })
    .await
    .expect("the app starts");
    let caps = app.get_anon("/api/v1/capabilities").await.expect(200);
    assert_eq!(
        caps.body["auth"]["providers"],
        json!([
            {"id": "one", "name": "One", "kind": "oidc"},
            {"id": "two", "name": "two", "kind": "oidc"},
        ])
    );
    // A server admin with the email both providers claim is never taken over, though the
    // second one links by verified email; nor does an unverified claim link anything, and the
    // second provider creates no account (its rules say no).
    app.post(
        "/api/v1/admin/users",
        ADMIN_TOKEN,
        json!({"username": "ops", "password": PASSWORD, "email": admin_email,
               "server_admin": true}),
    )
    .await
    .expect(201);
    for (code, mode) in [("b1", Forge::GoodVerified), ("b2", Forge::Good)] {
        assert_eq!(
            two.sign_in_at(&app, "two", &browser(), code, mode).await,
            "/#/signin?error=sso_user_unknown",
            "{mode:?}"
        );
    }
    // The first provider creates an account for its subject, and finds it again.
    let b = browser();
    assert_eq!(
        one.sign_in_at(&app, "one", &b, "a1", Forge::Good).await,
        "/"
    );
    let from_one = session_user(&app, &b).await;
    assert_eq!(from_one["username"], "mallory");
    let c = browser();
    assert_eq!(
        one.sign_in_at(&app, "one", &c, "a2", Forge::Good).await,
        "/"
    );
    assert_eq!(session_user(&app, &c).await["id"], from_one["id"]);
    let id = from_one["id"].as_str().unwrap();
    let identities = app
        .items(&format!("/api/v1/admin/users/{id}/identities"), ADMIN_TOKEN)
        .await;
    assert_eq!(identities.len(), 1);
    assert_eq!(identities[0]["provider"], one.issuer());
}

pub(super) async fn openid_failures_count_toward_the_address_back_off(app: TestApp) {
    let Some((forger, app)) = Forger::with_app(app.backend).await else {
        return;
    };
    // A callback names nobody before it is verified, so only the address's counter (AUTH-5's
    // per-address rule: 50 free failures) holds it back — 100 refusals in parallel, each
    // audited, then even a good sign-in from that address waits.
    let refused = format!(
        "{}?error=access_denied",
        app.url("/api/v1/auth/oidc/forger/callback")
    );
    let b = browser();
    let answers = futures::future::join_all((0..100).map(|_| callback(&b, &refused))).await;
    let provider_error = answers
        .iter()
        .filter(|a| *a == "/#/signin?error=oidc_provider_error")
        .count();
    let held = answers
        .iter()
        .filter(|a| *a == "/#/signin?error=too_many_attempts")
        .count();
    assert_eq!(provider_error + held, 100, "{answers:?}");
    assert_eq!(provider_error, 50, "exactly the free failures were checked");
    assert_eq!(
        forger.sign_in(&app, &browser(), "late", Forge::Good).await,
        "/#/signin?error=too_many_attempts"
    );
    let failed = app
        .audit_of("auth.login&limit=100")
        .await
        .items()
        .into_iter()
        .filter(|e| e["outcome"] == "failure" && e["detail"]["reason"] == "oidc_provider_error")
        .count();
    assert_eq!(failed, provider_error);
}
