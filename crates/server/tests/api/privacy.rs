//! DATA-6: a user's export of all their data (and nobody else's), and account erasure after
//! re-authentication — messages tombstoned or anonymised per org policy, credentials and
//! personal data gone, audited; refused without the password, the 2FA code, from a key or an
//! impersonation, or while the user is an org's only owner.

use crate::both_backends;
use crate::fixtures::Acme;
use crate::helpers::*;
use crate::keys::make_key;
use crate::mfa::{code_at, enable_2fa, next_step};
use reqwest::Method;
use serde_json::{json, Value};

both_backends!(
    the_export_holds_everything_about_the_caller_and_no_secret,
    erasure_needs_the_password_and_the_second_factor,
    erasure_follows_each_orgs_policy_and_removes_the_account,
    the_only_owner_of_an_org_cannot_erase_the_account,
    an_administrators_address_never_reaches_the_user,
);

async fn the_export_holds_everything_about_the_caller_and_no_secret(app: TestApp) {
    let admin = app.bootstrap().await;
    let Acme { alice, bob, org } = app.acme().await;
    let conv = app.group(&org, &alice, &[&bob], json!("org")).await;
    let first = app.says(&conv, &alice, "alice one").await;
    app.patch(
        &format!("/api/v1/messages/{}", first.id()),
        &alice.token,
        json!({ "content": "alice one, edited" }),
    )
    .await
    .expect(200);
    app.says(&conv, &alice, "alice two").await;
    app.says(&conv, &bob, "bob's own words").await;
    let spec = json!({ "name": "ci", "org_id": org, "scopes": ["messages:read"] });
    let (_, key) = make_key(&app, &alice, spec).await;
    let (secret, recovery) = enable_2fa(&app, &alice).await;
    let team = app
        .post(
            &org_path(&org, "/teams"),
            &alice.token,
            json!({"name": "Design"}),
        )
        .await
        .expect(201)
        .id();
    let place = org_path(&org, &format!("/teams/{team}/members/{}", alice.id));
    app.call(Method::POST, &place, Some(&alice.token), None)
        .await
        .expect(200);

    let res = app
        .get("/api/v1/users/@me/export", &alice.token)
        .await
        .expect(200);
    assert!(res
        .headers
        .get("content-disposition")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("attachment")));
    let e = &res.body;
    assert_eq!(e["format"], "conclave-export-v1");
    assert_eq!(e["user"]["id"], json!(alice.id));
    assert_eq!(e["two_factor_enabled"], true);
    assert_eq!(e["memberships"].as_array().unwrap().len(), 1);
    assert_eq!(e["memberships"][0]["role"], "owner");
    assert_eq!(e["conversations"][0]["id"], json!(conv));
    let contents: Vec<&str> = pluck(&e["messages"], "content");
    assert_eq!(
        contents,
        vec!["alice one, edited", "alice two"],
        "only her own"
    );
    assert!(!e["sessions"].as_array().unwrap().is_empty());
    // Her edit history, her teams, her linked identities and grants (none here).
    assert_eq!(pluck(&e["message_versions"], "content"), vec!["alice one"]);
    assert_eq!(e["teams"][0]["name"], "Design");
    assert_eq!(e["teams"][0]["team_id"], json!(team));
    assert_eq!(e["linked_identities"], json!([]));
    assert_eq!(e["oauth_grants"], json!([]));
    assert_eq!(e["api_keys"].as_array().unwrap().len(), 1);
    let events: Vec<&str> = pluck(&e["audit_events"], "event");
    assert_includes(
        &events,
        &[
            "user.registered",
            "auth.login",
            "org.created",
            "totp.enabled",
        ],
    );
    let text = e.to_string();
    let base32 = secrecy::ExposeSecret::expose_secret(&secret.base32()).to_owned();
    for secret_text in [
        PASSWORD,
        key.as_str(),
        alice.token.as_str(),
        base32.as_str(),
        recovery[0].as_str(),
        "bob's own words",
    ] {
        assert!(!text.contains(secret_text), "no secrets, nothing of others");
    }
    // The export is audited.
    let rows = app.audit_of("user.exported").await;
    assert_eq!(rows.body["items"][0]["actor"]["id"], json!(alice.id));
    // Bob's export is his alone.
    let b = app
        .get("/api/v1/users/@me/export", &bob.token)
        .await
        .expect(200);
    assert_eq!(b.body["user"]["id"], json!(bob.id));
    assert!(!b.body.to_string().contains("alice two"));
    // Not with a key, not impersonated, not unauthenticated.
    app.get("/api/v1/users/@me/export", &key).await.expect(403);
    let imp = app.impersonate(&admin, &alice).await.expect(201);
    app.get(
        "/api/v1/users/@me/export",
        imp.body["token"].as_str().unwrap(),
    )
    .await
    .expect_error(403, "impersonation_forbidden");
    app.get_anon("/api/v1/users/@me/export")
        .await
        .expect_error(401, "unauthenticated");
    let _ = code_at;
}

/// `DELETE /users/@me` with `token` and `body`.
pub async fn erase(app: &TestApp, token: &str, body: Value) -> Res {
    app.call(Method::DELETE, "/api/v1/users/@me", Some(token), Some(body))
        .await
}

async fn erasure_needs_the_password_and_the_second_factor(app: TestApp) {
    let admin = app.bootstrap().await;
    let alice = app.user("alice").await;
    let org = app.org(&admin, "Acme").await;
    app.add_member(&org, &admin, &alice, "member").await;
    let res = erase(
        &app,
        &alice.token,
        json!({ "password": "wrong password here" }),
    )
    .await
    .expect(422);
    assert_eq!(res.field(), Some("/password"));
    // A fresh session does not stand in for the password of an account that has one.
    let res = erase(&app, &alice.token, json!({}))
        .await
        .expect_error(422, "required");
    assert_eq!(res.field(), Some("/password"));
    erase(
        &app,
        &alice.token,
        json!({ "password": PASSWORD, "extra": 1 }),
    )
    .await
    .expect(422);
    let (secret, _) = enable_2fa(&app, &alice).await;
    next_step(&app);
    let res = erase(&app, &alice.token, json!({ "password": PASSWORD }))
        .await
        .expect(422);
    assert_eq!(res.field(), Some("/code"));
    erase(
        &app,
        &alice.token,
        json!({ "password": PASSWORD, "code": "000000" }),
    )
    .await;
    let spec = json!({ "name": "k", "org_id": org, "scopes": ["org:admin"] });
    let (_, key) = make_key(&app, &alice, spec).await;
    erase(
        &app,
        &key,
        json!({ "password": PASSWORD, "code": code_at(&app, &secret, 0) }),
    )
    .await
    .expect(403);
    let imp = app.impersonate(&admin, &alice).await.expect(201);
    erase(
        &app,
        imp.body["token"].as_str().unwrap(),
        json!({ "password": PASSWORD, "code": code_at(&app, &secret, 0) }),
    )
    .await
    .expect_error(403, "impersonation_forbidden");
    app.call(
        Method::DELETE,
        "/api/v1/users/@me",
        None,
        Some(json!({ "password": PASSWORD })),
    )
    .await
    .expect_error(401, "unauthenticated");
    // Nothing was lost: alice is still there and still signs in.
    app.get("/api/v1/users/@me", &alice.token).await.expect(200);
    let failed = app.audit_of("user.erased").await;
    assert!(failed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["outcome"] == "failure"));
}

async fn erasure_follows_each_orgs_policy_and_removes_the_account(app: TestApp) {
    let _admin = app.bootstrap().await;
    let crate::fixtures::ErasureOrgs(owner, alice, tomb, anon) = app.erasure_orgs().await;
    let mut convs = Vec::new();
    for org in [&tomb, &anon] {
        let conv = app.group(org, &owner, &[&alice], json!("org")).await;
        app.says(&conv, &alice, "words of alice").await;
        app.says(&conv, &owner, "words of owner").await;
        convs.push(conv);
    }
    let spec = json!({ "name": "k", "org_id": tomb, "scopes": ["messages:read"] });
    let (_, key) = make_key(&app, &alice, spec).await;
    erase(&app, &alice.token, json!({ "password": PASSWORD }))
        .await
        .expect(204);

    // Credentials are gone: the session, the key, the password.
    app.assert_signed_out(&alice.token).await;
    app.get("/api/v1/users/@me", &key).await.expect(401);
    app.login("alice", PASSWORD)
        .await
        .expect_error(401, "invalid_credentials");
    // Tombstoned in one org, anonymised in the other; the owner's words untouched.
    let read = |conv: String| {
        let app = &app;
        let owner = &owner;
        async move {
            app.items(&conv_path(&conv, "/messages"), &owner.token)
                .await
        }
    };
    let in_tomb = read(convs[0].clone()).await;
    let hers = in_tomb
        .iter()
        .find(|m| m["author"]["id"] == json!(alice.id))
        .unwrap();
    assert_eq!(hers["content"], Value::Null);
    assert!(hers["deleted_at"].is_string());
    assert!(in_tomb.iter().any(|m| m["content"] == "words of owner"));
    // Anonymised: the words stay, under the org's placeholder author — not the erased id,
    // which leads to none of them any more.
    let in_anon = read(convs[1].clone()).await;
    assert!(
        !in_anon.iter().any(|m| m["author"]["id"] == json!(alice.id)),
        "{in_anon:?}"
    );
    let hers = in_anon
        .iter()
        .find(|m| m["content"] == "words of alice")
        .unwrap();
    let placeholder = hers["author"]["id"].as_str().unwrap().to_owned();
    let name = hers["author"]["username"].as_str().unwrap();
    assert_eq!(name, format!("deleted-{}", &anon.replace('-', "")[20..]));
    assert_eq!(hers["author"]["display_name"], Value::Null);
    let users = app
        .items("/api/v1/admin/users?limit=100", ADMIN_TOKEN)
        .await;
    let account = users
        .iter()
        .find(|u| u["id"] == json!(placeholder))
        .expect("the placeholder account");
    assert_eq!(
        (
            &account["kind"],
            &account["disabled"],
            &account["server_admin"]
        ),
        (&json!("user"), &json!(true), &json!(false))
    );
    // One placeholder per org: bob's erasure there uses the same one; it cannot sign in.
    let bob = app.user("bob").await;
    app.add_member(&anon, &owner, &bob, "member").await;
    let bobs_conv = app.group(&anon, &owner, &[&bob], json!("org")).await;
    app.says(&bobs_conv, &bob, "words of bob").await;
    erase(&app, &bob.token, json!({ "password": PASSWORD }))
        .await
        .expect(204);
    let in_anon = read(bobs_conv).await;
    let bobs = in_anon
        .iter()
        .find(|m| m["content"] == "words of bob")
        .unwrap();
    assert_eq!(bobs["author"]["id"], json!(placeholder));
    app.login(name, PASSWORD)
        .await
        .expect_error(401, "invalid_credentials");
    // No longer a member anywhere; the name is free again.
    for org in [&tomb, &anon] {
        let members = app
            .get(&org_path(org, "/members"), &owner.token)
            .await
            .expect(200);
        assert!(!members.body.to_string().contains(&alice.id));
    }
    app.user("alice").await;
    // An erased account stays off: it cannot be re-enabled.
    app.update_user(ADMIN_TOKEN, &alice, json!({ "disabled": false }))
        .await
        .expect_error(409, "account_erased");
    // Audited, and the chain still verifies.
    let rows = app.audit_of("user.erased").await;
    let hers = rows.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource"]["id"] == json!(alice.id))
        .expect("her erasure");
    assert_eq!(hers["outcome"], "success");
    let v = app
        .get("/api/v1/admin/audit/verify", ADMIN_TOKEN)
        .await
        .expect(200);
    assert_eq!(v.body["ok"], true);
}

async fn the_only_owner_of_an_org_cannot_erase_the_account(app: TestApp) {
    let alice = app.user("alice").await;
    let org = app.org(&alice, "Mine").await;
    let conv = app.group(&org, &alice, &[], json!("org")).await;
    app.says(&conv, &alice, "still here").await;
    erase(&app, &alice.token, json!({ "password": PASSWORD }))
        .await
        .expect_error(409, "last_owner");
    // Nothing changed.
    app.get("/api/v1/users/@me", &alice.token).await.expect(200);
    assert_eq!(app.message_count(&conv, &alice).await, 1);
}

/// A request as the administrator's browser sends it.
async fn as_admin(app: &TestApp, method: Method, path: &str, token: &str, body: Value) -> Res {
    app.send(
        app.client
            .request(method, app.url(path))
            .bearer_auth(token)
            .header("user-agent", "admin-console/9")
            .json(&body),
    )
    .await
}

async fn an_administrators_address_never_reaches_the_user(app: TestApp) {
    let admin = app.bootstrap().await;
    let alice = app.user("alice").await;
    let org = app.org(&alice, "Acme").await;
    // The admin impersonates alice and acts as her, and changes her account.
    let token = as_admin(
        &app,
        Method::POST,
        &format!("/api/v1/admin/users/{}/impersonate", alice.id),
        &admin.token,
        json!({}),
    )
    .await
    .expect(201)
    .string("token");
    // Under impersonation she may only write her own messages (AUTH-12): the admin sends one.
    let conv = app.group(&org, &alice, &[], json!("private")).await;
    as_admin(
        &app,
        Method::POST,
        &conv_path(&conv, "/messages"),
        &token,
        json!({ "content": "sent by support" }),
    )
    .await
    .expect(201);
    for on in [true, false] {
        as_admin(
            &app,
            Method::PATCH,
            &format!("/api/v1/admin/users/{}", alice.id),
            &admin.token,
            json!({ "require_2fa": on }),
        )
        .await
        .expect(200);
    }
    let check = |rows: &[Value], what: &str| {
        let mut by_admin = 0;
        for r in rows {
            let by = &r["by"];
            if by["kind"] == "you" {
                continue;
            }
            assert_eq!(r["ip"], Value::Null, "{what}: {r}");
            assert_eq!(r["user_agent"], Value::Null, "{what}: {r}");
            if by["kind"] == "administrator" {
                assert_eq!(by["username"], "root-admin", "{what}: {r}");
                by_admin += 1;
            }
        }
        assert!(
            !rows
                .iter()
                .any(|r| r.to_string().contains("admin-console/9")),
            "{what}: the admin's user agent shows"
        );
        by_admin
    };
    // Her security events: the impersonation and the admin's changes, by an administrator.
    let events = app
        .items("/api/v1/users/@me/security-events", &alice.token)
        .await;
    assert!(check(&events, "security events") >= 3, "{events:?}");
    // Her own sign-in still shows her address.
    let own = events
        .iter()
        .find(|e| e["event"] == "auth.login" && e["by"]["kind"] == "you")
        .expect("her own sign-in");
    assert_eq!(own["ip"], "127.0.0.1");
    // Her export: the same, plus what the admin did as her, and the impersonation's session.
    let export = app
        .get("/api/v1/users/@me/export", &alice.token)
        .await
        .expect(200)
        .body;
    let rows = export["audit_events"].as_array().unwrap();
    assert!(check(rows, "export") >= 4, "{rows:?}");
    let sent = rows
        .iter()
        .find(|r| r["event"] == "message.sent")
        .expect("the message the admin sent as her");
    assert_eq!(sent["by"]["kind"], "administrator");
    let sessions = export["sessions"].as_array().unwrap();
    let marked: Vec<&Value> = sessions
        .iter()
        .filter(|s| s["impersonator"] != Value::Null)
        .collect();
    assert_eq!(marked.len(), 1);
    assert_eq!(marked[0]["ip"], Value::Null);
    // The admin listing keeps everything for the admins.
    let all = app.audit_of("impersonation.started").await.body["items"][0].clone();
    assert_eq!(all["user_agent"], "admin-console/9");
}
