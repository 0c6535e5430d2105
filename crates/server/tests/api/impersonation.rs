//! AUTH-12: server admins impersonate a user for support — a marked session of at most an
//! hour that reads and sends as the user but cannot touch credentials or 2FA; every audited
//! action carries both identities; the user sees it happened; forged, expired and
//! unauthorised attempts are refused.

use crate::both_backends;
use crate::fixtures::Acme;
use crate::helpers::*;
use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::{json, Value};

both_backends!(
    an_admin_acts_as_a_user_in_a_marked_session,
    impersonation_cannot_touch_credentials,
    impersonation_is_refused_where_it_must_be,
    impersonation_cannot_take_over_the_users_org,
    impersonated_writes_are_audited_with_both_identities,
    denied_attempts_are_audited_within_a_budget,
    impersonations_end_with_the_admins_rights,
);

/// The rows of `event` with their outcome, as the management token reads them.
async fn rows_of(app: &TestApp, event: &str) -> Vec<Value> {
    app.items(
        &format!("/api/v1/admin/audit?event={event}&limit=100"),
        ADMIN_TOKEN,
    )
    .await
}

/// The attack of issue 10: acting as the owner, the admin adds their own account to the org
/// (directly or through an invite), then keeps access after the hour. Every path is refused,
/// audited as denied with both identities, and afterwards the admin is no member.
async fn impersonation_cannot_take_over_the_users_org(app: TestApp) {
    let admin = app.bootstrap().await;
    let Acme { alice, bob, org } = app.acme().await;
    let token = app.impersonation(&admin, &alice).await;
    let o = format!("/api/v1/orgs/{org}");
    let requests = [
        (
            Method::POST,
            format!("{o}/members"),
            json!({ "user_id": admin.id, "role": "owner" }),
        ),
        (
            Method::POST,
            format!("{o}/invites"),
            json!({ "username": "root-admin", "role": "owner" }),
        ),
        (
            Method::POST,
            format!("{o}/invites"),
            json!({ "role": "owner" }),
        ),
        (
            Method::PATCH,
            format!("{o}/members/{}", bob.id),
            json!({ "role": "owner" }),
        ),
        (Method::DELETE, format!("{o}/members/{}", bob.id), json!({})),
        (
            Method::POST,
            format!("{o}/transfer"),
            json!({ "user_id": bob.id }),
        ),
        (Method::POST, format!("{o}/teams"), json!({ "name": "t" })),
        (Method::PATCH, o.clone(), json!({ "name": "Taken" })),
        (Method::DELETE, o.clone(), json!({})),
        (
            Method::POST,
            "/api/v1/orgs".into(),
            json!({ "name": "New" }),
        ),
        (
            Method::PATCH,
            "/api/v1/users/@me".into(),
            json!({ "display_name": "Support" }),
        ),
        (Method::GET, "/api/v1/users/@me/export".into(), json!({})),
        (
            Method::DELETE,
            "/api/v1/users/@me".into(),
            json!({ "password": PASSWORD }),
        ),
    ];
    let requests = requests.map(|(method, path, body)| (method, path, Some(body)));
    app.refused_all(&token, 403, "impersonation_forbidden", requests)
        .await;
    // The refusals are in the log, as denied, with both identities.
    let denied = rows_of(&app, "impersonation.denied").await;
    assert!(!denied.is_empty());
    for r in &denied {
        assert_eq!(r["outcome"], "denied");
        assert_eq!(r["actor"]["id"], json!(alice.id));
        assert_eq!(r["actor"]["impersonator"], json!(admin.id));
    }
    // Nothing changed, and after the hour the admin has no way in.
    app.clock.advance(chrono::Duration::minutes(61));
    app.assert_signed_out(&token).await;
    let admin = app.sign_in_again("root-admin", admin).await;
    app.get(&o, &admin.token)
        .await
        .expect_error(404, "not_found");
    assert!(app
        .items("/api/v1/users/@me/invites", &admin.token)
        .await
        .is_empty());
    let alice = app.sign_in_again("alice", alice).await;
    let members = app
        .get(&format!("{o}/members"), &alice.token)
        .await
        .expect(200);
    let roles: Vec<(&str, &str)> = members.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["user"]["id"].as_str().unwrap(),
                m["role"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(roles.len(), 2, "{roles:?}");
    assert!(roles.contains(&(alice.id.as_str(), "owner")));
    assert!(roles.contains(&(bob.id.as_str(), "member")));
}

/// Sends, edits and deletions of an impersonated session are audited with both identities; it
/// deletes only the user's own messages, not others' (even where the user moderates).
async fn impersonated_writes_are_audited_with_both_identities(app: TestApp) {
    let admin = app.bootstrap().await;
    let Acme { alice, bob, org } = app.acme().await;
    let conv = app.group(&org, &alice, &[&bob], json!("org")).await;
    let bobs = app.says(&conv, &bob, "bob's").await.id();
    let token = app.impersonation(&admin, &alice).await;
    let support = alice.with_token(&token);
    let sent = app.says(&conv, &support, "hello").await.id();
    let body = json!({ "content": "hello again" });
    app.patch(&format!("/api/v1/messages/{sent}"), &token, body)
        .await
        .expect(200);
    app.call(
        Method::PUT,
        &conv_path(&conv, "/read-marker"),
        Some(&token),
        Some(json!({ "message_id": sent })),
    )
    .await
    .expect(204);
    app.post(&conv_path(&conv, "/typing"), &token, json!({}))
        .await
        .expect(204);
    app.delete(&format!("/api/v1/messages/{sent}"), &token)
        .await
        .expect(204);
    app.delete(&format!("/api/v1/messages/{bobs}"), &token)
        .await
        .expect_error(403, "impersonation_forbidden");
    for event in [
        "message.sent",
        "message.edited",
        "message.deleted",
        "read_marker.moved",
    ] {
        let rows = rows_of(&app, event).await;
        assert_eq!(rows.len(), 1, "{event}: {rows:?}");
        assert_eq!(rows[0]["actor"]["id"], json!(alice.id));
        assert_eq!(rows[0]["actor"]["impersonator"], json!(admin.id));
        assert_eq!(rows[0]["org_id"], json!(org));
        assert_eq!(rows[0]["outcome"], "success");
    }
    // Bob's message is untouched; alice's own sends are not audit events.
    assert_eq!(app.message_count(&conv, &bob).await, 2);
    app.says(&conv, &alice, "myself").await;
    assert_eq!(rows_of(&app, "message.sent").await.len(), 1);
}

/// A flood of refused attempts writes at most `DENIED_ROWS_PER_MINUTE` rows per actor and
/// minute; the next minute's first row says how many were left out.
async fn denied_attempts_are_audited_within_a_budget(app: TestApp) {
    let admin = app.bootstrap().await;
    let alice = app.user("alice").await;
    let token = app.impersonation(&admin, &alice).await;
    let budget = conclave_core::service::DENIED_ROWS_PER_MINUTE as usize;
    let tries = (0..3 * budget).map(|_| app.post("/api/v1/orgs", &token, json!({ "name": "x" })));
    for r in futures::future::join_all(tries).await {
        assert!(r.status == 403 || r.status == 429, "{}", r.body);
    }
    assert_eq!(rows_of(&app, "impersonation.denied").await.len(), budget);
    app.clock.advance(chrono::Duration::seconds(61));
    app.post("/api/v1/orgs", &token, json!({ "name": "x" }))
        .await
        .expect_error(403, "impersonation_forbidden");
    let rows = rows_of(&app, "impersonation.denied").await;
    assert_eq!(rows.len(), budget + 1);
    assert!(rows[0]["detail"]["unrecorded_before"].as_u64().unwrap() > 0);
}

async fn an_admin_acts_as_a_user_in_a_marked_session(app: TestApp) {
    let admin = app.bootstrap().await;
    let Acme { alice, bob, org } = app.acme().await;
    let conv = app.group(&org, &alice, &[&bob], json!("org")).await;

    let res = app.impersonate(&admin, &alice).await.expect(201);
    let token = res.string("token");
    assert_eq!(res.body["user"]["id"], json!(alice.id));
    let expires: DateTime<Utc> = res.body["expires_at"].as_str().unwrap().parse().unwrap();
    let now = conclave_core::Clock::now(&*app.clock);
    assert!(expires <= now + chrono::Duration::hours(1));
    assert!(expires > now);

    // It reads and sends as alice.
    let me = app.get("/api/v1/users/@me", &token).await.expect(200);
    assert_eq!(me.body["id"], json!(alice.id));
    app.send_message(&conv, &alice.with_token(&token), "from support")
        .await
        .expect(201);
    // Its sends are audited with both identities (AUTH-12), unlike alice's own.
    let rows = app
        .items("/api/v1/admin/audit?event=message.sent", ADMIN_TOKEN)
        .await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["actor"]["id"], json!(alice.id));
    assert_eq!(rows[0]["actor"]["impersonator"], json!(admin.id));
    assert_eq!(rows[0]["org_id"], json!(org));
    let started = app.audit_of("impersonation.started").await.body["items"][0].clone();
    assert_eq!(started["actor"]["id"], json!(admin.id));
    assert_eq!(
        started["resource"],
        json!({ "type": "user", "id": alice.id })
    );

    // Alice sees that it happened: in her security events and her sessions.
    let events = app
        .items("/api/v1/users/@me/security-events", &alice.token)
        .await;
    let seen: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "impersonation.started")
        .collect();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0]["actor"]["id"], json!(admin.id));
    let sessions = app
        .get("/api/v1/auth/sessions", &alice.token)
        .await
        .expect(200);
    let marked: Vec<&Value> = sessions.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["impersonator"] == json!(admin.id))
        .collect();
    assert_eq!(marked.len(), 1, "{}", sessions.body);

    // At most an hour.
    app.clock.advance(chrono::Duration::minutes(61));
    app.assert_signed_out(&token).await;
}

async fn impersonation_cannot_touch_credentials(app: TestApp) {
    let admin = app.bootstrap().await;
    let alice = app.user("alice").await;
    let org = app.org(&alice, "Acme").await;
    let token = app.impersonation(&admin, &alice).await;
    for (method, path, body) in [
        (
            Method::POST,
            "/api/v1/auth/password",
            json!({ "current_password": PASSWORD, "new_password": "another long passphrase" }),
        ),
        (Method::POST, "/api/v1/auth/totp/setup", json!({})),
        (
            Method::POST,
            "/api/v1/auth/totp/enable",
            json!({ "code": "123456" }),
        ),
        (
            Method::POST,
            "/api/v1/auth/totp/disable",
            json!({ "code": "123456" }),
        ),
        (
            Method::POST,
            "/api/v1/auth/recovery-codes",
            json!({ "code": "123456" }),
        ),
        (
            Method::POST,
            "/api/v1/auth/sessions/revoke-others",
            json!({}),
        ),
        (
            Method::POST,
            "/api/v1/api-keys",
            json!({ "name": "k", "org_id": org, "scopes": ["messages:read"] }),
        ),
        (
            Method::POST,
            &org_path(&org, "/bots"),
            json!({ "name": "Bot" }),
        ),
        (
            Method::POST,
            &format!("/api/v1/admin/users/{}/impersonate", admin.id),
            json!({}),
        ),
    ] {
        let res = app
            .call(method.clone(), path, Some(&token), Some(body))
            .await;
        assert_eq!(res.status.as_u16(), 403, "{method} {path}: {}", res.body);
    }
    app.post("/api/v1/auth/totp/setup", &token, json!({}))
        .await
        .expect_error(403, "impersonation_forbidden");
    // Nothing changed: alice's password still works, and she has no key.
    app.login("alice", PASSWORD).await.expect(200);
    let keys = app.get("/api/v1/api-keys", &alice.token).await.expect(200);
    assert_eq!(keys.body["items"].as_array().map(Vec::len), Some(0));
    // Signing out ends the impersonation.
    app.post("/api/v1/auth/logout", &token, json!({}))
        .await
        .expect(204);
    app.assert_signed_out(&token).await;
}

async fn impersonation_is_refused_where_it_must_be(app: TestApp) {
    let admin = app.bootstrap().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let other_admin = app.user("root2").await;
    app.update_user(&admin.token, &other_admin, json!({ "server_admin": true }))
        .await
        .expect(200);
    // The management token has no identity to put beside the user's.
    app.post(
        &format!("/api/v1/admin/users/{}/impersonate", alice.id),
        ADMIN_TOKEN,
        json!({}),
    )
    .await
    .expect_error(403, "impersonation_forbidden");
    // Not server admins: refused.
    app.impersonate(&bob, &alice)
        .await
        .expect_error(403, "forbidden");
    app.call(
        Method::POST,
        &format!("/api/v1/admin/users/{}/impersonate", alice.id),
        None,
        None,
    )
    .await
    .expect_error(401, "unauthenticated");
    // A forged token is just an invalid one.
    app.get(
        "/api/v1/users/@me",
        "cnv_s_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    )
    .await
    .expect(401);
    // Not oneself, not another server admin, not a disabled account, not an unknown one.
    app.impersonate(&admin, &admin)
        .await
        .expect_error(409, "cannot_impersonate");
    app.impersonate(&admin, &other_admin)
        .await
        .expect_error(409, "cannot_impersonate");
    app.set_disabled(&admin.token, &bob, true).await;
    app.impersonate(&admin, &bob)
        .await
        .expect_error(409, "cannot_impersonate");
    let ghost = User::without_token("ghost", &uuid::Uuid::now_v7().to_string());
    app.impersonate(&admin, &ghost)
        .await
        .expect_error(404, "not_found");
    app.post(
        "/api/v1/admin/users/not-an-id/impersonate",
        &admin.token,
        json!({}),
    )
    .await
    .expect(400);
    // Nothing was started by any of these.
    let rows = app.audit_of("impersonation.started").await;
    assert_eq!(rows.body["items"].as_array().map(Vec::len), Some(0));
    // AUTH-12: each refused attempt is in the log, the admin (or the management token) as
    // its actor, the user it aimed at as its resource.
    let denied = app.audit_of("impersonation.denied").await.items();
    assert_eq!(denied.len(), 4, "{denied:?}");
    assert!(
        denied.iter().all(|r| r["outcome"] == "denied"),
        "{denied:?}"
    );
    let by_admin = denied
        .iter()
        .filter(|r| r["actor"]["id"] == json!(admin.id))
        .count();
    assert_eq!(by_admin, 3, "{denied:?}");
    assert!(denied
        .iter()
        .any(|r| r["actor"]["type"] == "management" && r["resource"]["id"] == json!(alice.id)));
}

/// AUTH-12, AZ-5: a session an admin started as a user is hers, not the user's: it ends — on
/// REST and on open sockets — when she is demoted or disabled, signs out everywhere else or
/// changes her password. Before, it lived out its hour after the admin lost her rights.
async fn impersonations_end_with_the_admins_rights(app: TestApp) {
    let app = &app;
    let admin = app.bootstrap().await;
    let Acme { alice, .. } = app.acme().await;
    let me = "/api/v1/users/@me";
    let sign_in = || async {
        let res = app.login("root-admin", PASSWORD).await.expect(200);
        res.string("token")
    };
    let path = format!("/api/v1/admin/users/{}", admin.id);
    let flags = |on: Value| {
        let path = &path;
        async move { app.patch(path, ADMIN_TOKEN, on).await.expect(200) }
    };
    // Demoted, then disabled: each time a fresh impersonation and its socket end at once.
    for (lose, regain) in [
        (
            json!({"server_admin": false}),
            json!({"server_admin": true}),
        ),
        (json!({"disabled": true}), json!({"disabled": false})),
    ] {
        let now = User {
            token: sign_in().await,
            ..admin.clone()
        };
        let token = app.impersonation(&now, &alice).await;
        app.get(me, &token).await.expect(200);
        let (mut ws, _) = crate::ws::Ws::identify(app, &token).await;
        flags(lose).await;
        app.get(me, &token).await.expect_error(401, "invalid_token");
        assert_eq!(ws.close_code().await, 4004);
        flags(regain).await;
        app.get(me, &token).await.expect_error(401, "invalid_token");
    }
    // Her "sign out everywhere else" and a password change end them too; alice's own
    // session and the admin's current one stay.
    let now = User {
        token: sign_in().await,
        ..admin.clone()
    };
    for end in ["revoke", "password"] {
        let token = app.impersonation(&now, &alice).await;
        let (mut ws, _) = crate::ws::Ws::identify(app, &token).await;
        if end == "revoke" {
            let path = "/api/v1/auth/sessions/revoke-others";
            app.post(path, &now.token, json!({})).await.expect(200);
        } else {
            let body = json!({"current_password": PASSWORD, "new_password": PASSWORD});
            app.post("/api/v1/auth/password", &now.token, body)
                .await
                .expect(204);
        }
        app.get(me, &token).await.expect_error(401, "invalid_token");
        assert_eq!(ws.close_code().await, 4004, "{end}");
    }
    app.get(me, &alice.token).await.expect(200);
    app.get(me, &now.token).await.expect(200);
}
