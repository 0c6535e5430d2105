//! What a key reaches: scopes capping every route family, the owner's current rights, its org
//! and conversations, the gateway, and the owner's rate budget.

use super::*;
use crate::cases::{delete, get, patch, post, post_empty, Caller, Token};
use crate::helpers::{conv_path, org_path};

pub(super) async fn scopes_cap_every_route_family(app: TestApp) {
    let Acme { alice, bob, org } = app.acme().await;
    let mallory = app.user("mallory").await;
    let conv = app.group(&org, &alice, &[&bob], json!("private")).await;
    let msg = app.says(&conv, &alice, "hello").await.id();
    let elsewhere = app.org(&mallory, "Evil").await;
    let hidden = app.group(&elsewhere, &mallory, &[], json!("private")).await;
    let spec =
        json!({"name": "reader", "org_id": org, "scopes": ["messages:read"], "tier": "team"});
    let (_, key) = make_key(&app, &alice, spec).await;

    app.get(&messages(&conv), &key).await.expect(200);
    app.get(&format!("/api/v1/messages/{msg}/history"), &key)
        .await
        .expect(200);
    // Marking read is reading, as MCP's `mark_read` (API.md).
    let marker = json!({ "message_id": msg });
    app.put(&conv_path(&conv, "/read-marker"), &key, marker)
        .await
        .expect(204);
    let refused: Vec<(Method, String, Option<Value>)> = vec![
        post(messages(&conv), json!({"content": "x"})),
        patch(format!("/api/v1/messages/{msg}"), json!({"content": "x"})),
        delete(format!("/api/v1/messages/{msg}")),
        post_empty(format!("/api/v1/conversations/{conv}/typing")),
        get("/api/v1/conversations".into()),
        get(format!("/api/v1/conversations/{conv}")),
        get(format!("/api/v1/conversations/{conv}/participants")),
        post(
            format!("/api/v1/orgs/{org}/conversations"),
            json!({"kind": "group", "name": "x"}),
        ),
        get("/api/v1/orgs".into()),
        get(format!("/api/v1/orgs/{org}")),
        get(format!("/api/v1/orgs/{org}/members")),
        get(format!("/api/v1/orgs/{org}/bots")),
        patch(format!("/api/v1/orgs/{org}"), json!({"name": "Pwned"})),
        get("/api/v1/users/@me".into()),
        get(format!("/api/v1/users/{}", bob.id)),
        // Routes without a scope refuse every key.
        (Method::GET, "/api/v1/auth/sessions".into(), None),
        post_empty("/api/v1/auth/logout".into()),
        get("/api/v1/api-keys".into()),
        post(
            "/api/v1/api-keys".into(),
            json!({"name": "more", "org_id": org, "scopes": ["messages:read"]}),
        ),
        get("/api/v1/admin/users".into()),
    ];
    for (method, path, body) in refused {
        app.call(method.clone(), &path, Some(&key), body)
            .await
            .expect_error(403, "insufficient_scope");
    }
    // Outside its scopes, on something its owner could not see either: 404.
    for path in [
        format!("/api/v1/conversations/{hidden}/participants"),
        format!("/api/v1/conversations/{}", uuid::Uuid::now_v7()),
        format!("/api/v1/orgs/{elsewhere}"),
        format!("/api/v1/users/{}", mallory.id),
    ] {
        app.get(&path, &key).await.expect_error(404, "not_found");
    }
    app.post(&messages(&hidden), &key, json!({"content": "x"}))
        .await
        .expect_error(404, "not_found");
    app.patch(
        &format!("/api/v1/messages/{}", uuid::Uuid::now_v7()),
        &key,
        json!({"content": "x"}),
    )
    .await
    .expect_error(404, "not_found");
    // Within its scopes, a resource its owner cannot see is 404 as for the owner.
    app.get(&messages(&hidden), &key)
        .await
        .expect_error(404, "not_found");

    // Nothing changed, and alice's own session is not limited.
    let list = app.get(&messages(&conv), &alice.token).await.expect(200);
    assert_eq!(list.items().len(), 1);
    assert_eq!(list.body["items"][0]["content"], "hello");
    app.get(&org_path(&org, ""), &alice.token).await.expect(200);
    assert_eq!(
        app.get(&org_path(&org, ""), &alice.token).await.body["name"],
        "Acme"
    );

    // A key never exceeds its owner: every scope, but bob is a member.
    let spec = json!({"name": "all", "org_id": org, "scopes": ALL_SCOPES});
    let (_, bobs) = make_key(&app, &bob, spec).await;
    app.patch(&org_path(&org, ""), &bobs, json!({"name": "Bob's"}))
        .await
        .expect_error(403, "forbidden");
    app.post(
        &org_path(&org, "/members"),
        &bobs,
        json!({"user_id": mallory.id, "role": "member"}),
    )
    .await
    .expect_error(403, "forbidden");
    app.get(&org_path(&org, "/members"), &bobs)
        .await
        .expect(200);
}

pub(super) async fn keys_follow_their_owners_current_rights(app: TestApp) {
    let Team(alice, [bob], org) = app.team("alice", "Acme", [("bob", "admin")]).await;
    let conv = app.group(&org, &alice, &[&bob], json!("private")).await;
    let spec = json!({"name": "bob", "org_id": org, "tier": "team",
            "scopes": ["messages:read", "messages:write", "org:read", "org:admin", "conversations:read"]});
    let (_, key) = make_key(&app, &bob, spec).await;
    app.post(&org_path(&org, "/teams"), &key, json!({"name": "Ops"}))
        .await
        .expect(201);

    // Demoted: the next request has a member's rights.
    app.set_role(&org, &alice, &bob, "member").await.expect(200);
    app.post(&org_path(&org, "/teams"), &key, json!({"name": "Ops 2"}))
        .await
        .expect_error(403, "forbidden");

    // Removed from the conversation: it is gone for the key at once.
    app.get(&messages(&conv), &key).await.expect(200);
    app.delete(
        &format!("/api/v1/conversations/{conv}/participants/{}", bob.id),
        &alice.token,
    )
    .await
    .expect(204);
    let requests = [
        get(messages(&conv)),
        post(messages(&conv), json!({"content": "x"})),
    ];
    app.refused_all(&key, 404, "not_found", requests).await;

    // Removed from the org: nothing of it is left.
    app.remove_member(&org, &alice, &bob.id).await;
    app.get(&org_path(&org, ""), &key)
        .await
        .expect_error(404, "not_found");
    let convs = app.get("/api/v1/conversations", &key).await.expect(200);
    assert!(convs.body["items"].as_array().unwrap().is_empty());
    assert_eq!(app.message_count(&conv, &alice).await, 0);
}

pub(super) async fn keys_stay_in_their_org_and_conversations(app: TestApp) {
    let alice = app.user("alice").await;
    let mallory = app.user("mallory").await;
    let acme = app.org(&alice, "Acme").await;
    let beta = app.org(&alice, "Beta").await;
    let evil = app.org(&mallory, "Evil").await;
    let a1 = app.group(&acme, &alice, &[], json!("private")).await;
    let a2 = app.group(&acme, &alice, &[], json!("private")).await;
    let b1 = app.group(&beta, &alice, &[], json!("private")).await;
    let e1 = app.group(&evil, &mallory, &[], json!("private")).await;
    let all = json!(ALL_SCOPES[..6]);
    let spec = json!({"name": "one", "org_id": acme, "scopes": all, "conversation_ids": [a1], "tier": "team"});
    let (_, listed_key) = make_key(&app, &alice, spec).await;

    let convs = app
        .get("/api/v1/conversations", &listed_key)
        .await
        .expect(200);
    let ids = convs.ids();
    assert_eq!(ids, vec![a1.as_str()]);
    let listed = Token("the listed key", &listed_key);
    let scope = "insufficient_scope";
    let group = json!({"kind": "group", "name": "new"});
    app.expect_all([
        listed
            .post(&messages(&a1), json!({"content": "in"}))
            .is(201),
        listed.get(&messages(&a1)).is(200),
    ])
    .await;
    // Conversations alice may use but the key may not: 403; what alice cannot see: 404.
    for conv in [&a2, &b1] {
        app.expect_all([
            listed.get(&messages(conv)).err(403, scope),
            listed
                .post(&messages(conv), json!({"content": "out"}))
                .err(403, scope),
            listed.get(&conv_path(conv, "")).err(403, scope),
        ])
        .await;
    }
    app.expect_all([
        listed.get(&messages(&e1)).err(404, "not_found"),
        // It cannot create what would lie outside its list.
        listed
            .post(&org_path(&acme, "/conversations"), group.clone())
            .err(403, scope),
    ])
    .await;

    // Without a list the key reaches its org's conversations, and only its org.
    let spec = json!({"name": "org", "org_id": acme, "scopes": all, "tier": "team"});
    let (_, org_key) = make_key(&app, &alice, spec).await;
    let convs = app.get("/api/v1/conversations", &org_key).await.expect(200);
    let mut ids = convs.ids();
    ids.sort();
    let mut want = vec![a1.clone(), a2.clone()];
    want.sort();
    assert_eq!(ids, want);
    let orgs = app.get("/api/v1/orgs", &org_key).await.expect(200);
    assert_eq!(orgs.items().len(), 1);
    assert_eq!(orgs.body["items"][0]["id"], acme.as_str());
    let key = Token("the org key", &org_key);
    let answers = app
        .expect_all([
            key.get(&org_path(&beta, "")).err(403, scope),
            key.get(&messages(&b1)).err(403, scope),
            key.post(&org_path(&beta, "/conversations"), group.clone())
                .err(403, scope),
            key.get(&org_path(&evil, "")).err(404, "not_found"),
            // Keys neither create nor join orgs.
            key.post("/api/v1/orgs", json!({"name": "Side"}))
                .err(403, scope),
            key.post(&org_path(&acme, "/conversations"), group).is(201),
        ])
        .await;
    assert_eq!(answers[5].body["created_by"], alice.id.as_str());
}

pub(super) async fn keys_on_the_gateway(app: TestApp) {
    let Acme { alice, bob, org } = app.acme().await;
    let shared = app.group(&org, &alice, &[&bob], json!("private")).await;
    let solo = app.group(&org, &alice, &[], json!("private")).await;
    let spec = json!({"name": "listener", "org_id": org, "scopes": ["messages:read"],
            "conversation_ids": [shared], "tier": "team"});
    let (id, key) = make_key(&app, &alice, spec).await;
    let (mut ws, ready) = Ws::identify(&app, &key).await;
    assert_eq!(ready["user"]["id"], alice.id.as_str());
    // AZ-5: without `org:read` (which `GET /users/@me` needs) READY shows the owner's public
    // summary only — no email, no account flags.
    assert_eq!(ready["user"]["username"], "alice");
    for private in ["email", "server_admin", "require_2fa", "email_verified"] {
        assert!(
            ready["user"].get(private).is_none(),
            "{private} in {}",
            ready["user"]
        );
    }
    app.get("/api/v1/users/@me", &key)
        .await
        .expect_error(403, "insufficient_scope");
    let spec = json!({"name": "reader", "org_id": org, "scopes": ["messages:read", "org:read"]});
    let (_, reader) = make_key(&app, &alice, spec).await;
    let (_, whole) = Ws::identify(&app, &reader).await;
    assert!(
        whole["user"].get("server_admin").is_some(),
        "{}",
        whole["user"]
    );
    let ids = crate::ws::ready_conversation_ids(&ready);
    assert_eq!(ids, vec![shared.as_str()], "only what the key reaches");

    // Events of other conversations, and new conversations of its owner, stay away.
    app.says(&solo, &alice, "private").await;
    let _new = app.group(&org, &alice, &[&bob], json!("private")).await;
    let m = app.says(&shared, &bob, "for the key").await;
    let d = ws.expect("MESSAGE_CREATE").await;
    assert_eq!(d["id"], m.body["id"]);
    assert_eq!(d["conversation_id"], shared.as_str());

    // A key without messages:read may not identify (4014).
    let spec = json!({"name": "blind", "org_id": org, "scopes": ["org:read"], "tier": "team"});
    let (_, blind) = make_key(&app, &alice, spec).await;
    let mut refused = Ws::connect(&app).await;
    refused
        .send(json!({"op": 2, "d": {"token": format!("Bearer {blind}"), "client": "tests/1.0.0"}}))
        .await;
    assert_eq!(refused.close_code().await, 4014);

    // Revoking the key closes its socket.
    app.delete(&format!("/api/v1/api-keys/{id}"), &alice.token)
        .await
        .expect(204);
    assert_eq!(ws.close_code().await, 4004);

    // Rotation: at once without grace; after the grace period otherwise (at a heartbeat).
    let body = json!({"name": "r", "org_id": org, "scopes": ["messages:read"], "tier": "team"});
    let (now_id, now_key) = make_key(&app, &alice, body.clone()).await;
    let (mut now_ws, _) = Ws::identify(&app, &now_key).await;
    app.post(
        &format!("/api/v1/api-keys/{now_id}/rotate"),
        &alice.token,
        json!({"grace_seconds": 0}),
    )
    .await
    .expect(200);
    assert_eq!(now_ws.close_code().await, 4004);
    let (later_id, later_key) = make_key(&app, &alice, body).await;
    let (mut later_ws, _) = Ws::identify(&app, &later_key).await;
    let fresh = app
        .post(
            &format!("/api/v1/api-keys/{later_id}/rotate"),
            &alice.token,
            json!({"grace_seconds": 60}),
        )
        .await
        .expect(200)
        .string("key");
    later_ws.outlives_the_grace_period_only(&app).await;
    let (_, ready) = Ws::identify(&app, &fresh).await;
    assert_eq!(ready["user"]["id"], alice.id.as_str());
}

pub(super) async fn free_keys_spend_the_owner_budget_and_tiers_have_their_own(app: TestApp) {
    let Acme { alice, bob, org } = app.acme().await;
    let spec = json!({"name": "free", "org_id": org, "scopes": ["org:read"]});
    let (_, free) = make_key(&app, &bob, spec).await;
    let spec = json!({"name": "team", "org_id": org, "scopes": ["org:read"], "tier": "team"});
    let (_, team) = make_key(&app, &alice, spec).await;
    // The clock stands still. A free key shares its owner's per-user read bucket (burst 100,
    // RATE-1/AUTH-7), so it runs out; a team key's tier bucket does not.
    let mut limited = None;
    for _ in 0..120 {
        let r = app.get("/api/v1/users/@me", &free).await;
        if r.status.as_u16() == 429 {
            limited = Some(r);
            break;
        }
        r.expect(200);
    }
    let limited = limited.expect("the free key is limited by its owner's budget");
    assert!(limited.headers.get("retry-after").is_some());
    for _ in 0..30 {
        app.get("/api/v1/users/@me", &team).await.expect(200);
    }
    // The free key spent Bob's own budget: his session is limited too.
    let own = app.get("/api/v1/users/@me", &bob.token).await;
    assert_eq!(own.status.as_u16(), 429, "{}", own.body);
    // Alice's session is untouched by her team key.
    app.get("/api/v1/users/@me", &alice.token).await.expect(200);
}
