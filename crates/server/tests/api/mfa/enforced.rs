//! Who must have 2FA: a server admin requiring it of one user, and an org enforcing it on every
//! org-scoped route of its members.

use super::*;
use crate::cases::{get, patch, post, post_empty, Caller};
use crate::fixtures::Team;
use crate::helpers::{conv_path, org_path};

/// `PATCH /admin/users/{id}` `{"require_2fa": true}`: until the user turns 2FA on, their session
/// reaches only their account and the 2FA routes; then everything again.
pub(super) async fn a_server_admin_requires_2fa_of_one_user(app: TestApp) {
    let admin = app.bootstrap().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    app.org(&alice, "Acme").await;
    let path = format!("/api/v1/admin/users/{}", alice.id);
    // Refused to non-admins and for bad values; nothing changes.
    app.patch(&path, &bob.token, json!({ "require_2fa": true }))
        .await
        .expect_error(403, "forbidden");
    let res = app
        .patch(&path, &admin.token, json!({ "require_2fa": "yes" }))
        .await
        .expect(422);
    assert_eq!(res.field(), Some("/require_2fa"));
    app.get("/api/v1/orgs", &alice.token).await.expect(200);

    let res = app
        .patch(&path, &admin.token, json!({ "require_2fa": true }))
        .await
        .expect(200);
    assert_eq!(res.body["require_2fa"], true);
    app.get("/api/v1/orgs", &alice.token)
        .await
        .expect_error(403, "mfa_setup_required");
    let me = app.get("/api/v1/users/@me", &alice.token).await.expect(200);
    assert_eq!(me.body["require_2fa"], true);
    // Nor on the gateway (4014).
    let mut ws = crate::ws::Ws::connect(&app).await;
    ws.send(json!({"op": 2, "d": {"token": format!("Bearer {}", alice.token), "client": "tests/1.0.0", "protocol_version": 1}}))
        .await;
    assert_eq!(ws.close_code().await, 4014);
    // Others are not affected.
    app.get("/api/v1/orgs", &bob.token).await.expect(200);
    enable_2fa(&app, &alice).await;
    app.get("/api/v1/orgs", &alice.token).await.expect(200);
    crate::ws::Ws::identify(&app, &alice.token).await;
    let rows = app.audit_of("admin.user_updated").await;
    assert_eq!(rows.body["items"][0]["detail"]["require_2fa"], true);
    assert_eq!(rows.body["items"][0]["actor"]["id"], json!(admin.id));
}

/// Calls every kind of org-scoped route as `who`; returns each route with its answer.
pub(super) async fn org_scoped_calls(
    app: &TestApp,
    who: &User,
    org: &str,
    conv: &str,
    msg: &str,
) -> Vec<(String, Res)> {
    let mut out = Vec::new();
    let o = format!("/api/v1/orgs/{org}");
    let c = format!("/api/v1/conversations/{conv}");
    let calls: Vec<(Method, String, Option<Value>)> = vec![
        get(o.clone()),
        get(format!("{o}/members")),
        get(format!("{o}/teams")),
        get(format!("{o}/permissions/matrix")),
        post(
            format!("{o}/conversations"),
            json!({"kind": "group", "name": "new", "participant_ids": []}),
        ),
        get(c.clone()),
        get(format!("{c}/participants")),
        get(format!("{c}/messages")),
        post(format!("{c}/messages"), json!({"content": "let me in"})),
        post_empty(format!("{c}/typing")),
        patch(
            format!("/api/v1/messages/{msg}"),
            json!({"content": "edited"}),
        ),
        get(format!("/api/v1/messages/{msg}/history")),
    ];
    for (method, path, body) in calls {
        let res = app
            .call(method.clone(), &path, Some(&who.token), body)
            .await;
        out.push((format!("{method} {path}"), res));
    }
    out
}

pub(super) async fn org_enforced_2fa(app: TestApp) {
    let (app, _) = without_rate_limits(app, |_| {}).await;
    let roles = [("admin", "admin"), ("member", "member")];
    let Team(owner, [admin, member], org) = app.team("owner", "Acme", roles).await;
    let stranger = app.user("stranger").await;
    let conv = app.group(&org, &owner, &[&member], json!("private")).await;
    let hidden = app.group(&org, &owner, &[], json!("private")).await;
    let msg = app.says(&conv, &member, "hello").await.id();
    let patch = |who: &User, on: bool| {
        let who = who.clone();
        let path = format!("/api/v1/orgs/{org}");
        let app = &app;
        async move {
            app.patch(&path, &who.token, json!({"require_2fa": on}))
                .await
        }
    };

    // Requiring 2FA needs 2FA yourself: the owner without it gets 409, as does an admin.
    patch(&owner, true)
        .await
        .expect_error(409, "mfa_required_for_owner");
    patch(&admin, true)
        .await
        .expect_error(409, "mfa_required_for_owner");
    // Nothing changed: the member still works normally.
    for (route, res) in org_scoped_calls(&app, &member, &org, &conv, &msg).await {
        assert!(res.status.is_success(), "{route}: {}", res.body);
    }
    let (owner_secret, _) = enable_2fa(&app, &owner).await;
    let on = patch(&owner, true).await.expect(200);
    assert_eq!(on.body["require_2fa"], true);

    // The member without 2FA is stopped on every org route with 403 mfa_setup_required.
    let count_before = app.message_count(&conv, &owner).await;
    let history_path = format!("/api/v1/messages/{msg}/history");
    let history_before = app.get(&history_path, &owner.token).await.expect(200).body;
    for (route, res) in org_scoped_calls(&app, &member, &org, &conv, &msg).await {
        assert_eq!(res.status.as_u16(), 403, "{route}: {}", res.body);
        assert_eq!(res.code(), "mfa_setup_required", "{route}");
    }
    // Leaving is an org route too.
    app.delete(
        &format!("/api/v1/orgs/{org}/members/{}", member.id),
        &member.token,
    )
    .await
    .expect_error(403, "mfa_setup_required");
    // Nothing they tried was written.
    assert_eq!(app.message_count(&conv, &owner).await, count_before);
    let history = app.get(&history_path, &owner.token).await.expect(200);
    assert_eq!(history.body, history_before);
    // A conversation they could not see stays 404; strangers still get 404 everywhere.
    app.get(&conv_path(&hidden, ""), &member.token)
        .await
        .expect_error(404, "not_found");
    for (route, res) in org_scoped_calls(&app, &stranger, &org, &conv, &msg).await {
        assert_eq!(res.status.as_u16(), 404, "{route}: {}", res.body);
    }
    // Who they are, their org list (without this org: AUTH-4a), 2FA setup and logout keep
    // working.
    app.get("/api/v1/users/@me", &member.token)
        .await
        .expect(200);
    let orgs = app.get("/api/v1/orgs", &member.token).await.expect(200);
    assert_eq!(orgs.body["items"], json!([]));
    let second = app
        .login("member", PASSWORD)
        .await
        .expect(200)
        .string("token");
    app.logout(&second).await;
    // The admin without 2FA is stopped as well (and cannot lift the requirement).
    patch(&admin, false)
        .await
        .expect_error(403, "mfa_setup_required");

    // Once the member enables 2FA, the org opens up again.
    enable_2fa(&app, &member).await;
    for (route, res) in org_scoped_calls(&app, &member, &org, &conv, &msg).await {
        assert!(res.status.is_success(), "{route}: {}", res.body);
    }
    // An owner who turns their own 2FA off is held to the same rule.
    app.expect_all([
        owner
            .post(
                "/api/v1/auth/totp/disable",
                json!({"code": code_at(&app, &owner_secret, 0)}),
            )
            .is(204),
        owner
            .get(&org_path(&org, ""))
            .err(403, "mfa_setup_required"),
    ])
    .await;
    let (_, _) = enable_2fa(&app, &owner).await;
    let off = patch(&owner, false).await.expect(200);
    assert_eq!(off.body["require_2fa"], false);
    app.get(&org_path(&org, ""), &admin.token).await.expect(200);
}
