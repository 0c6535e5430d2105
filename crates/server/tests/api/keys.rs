//! AUTH-7, AZ-5: API keys — shown once and listed masked, scopes capping every route family
//! (403 `insufficient_scope`, or 404 when the owner could not see the resource either), org and
//! conversation limits, the owner's current rights, revocation, expiry, rotation with a grace
//! period, IP allowlists and last use, the gateway, and refused credentials changing nothing.

use crate::both_backends;
use crate::fixtures::Acme;
use crate::helpers::*;
use crate::ws::Ws;
use chrono::Duration;
use reqwest::Method;
use serde_json::{json, Value};

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

/// Creates a key as `owner`; answers its id and the key.
pub(crate) async fn make_key(app: &TestApp, owner: &User, body: Value) -> (String, String) {
    let res = app
        .post("/api/v1/api-keys", &owner.token, body)
        .await
        .expect(201);
    let key = res.body["key"].as_str().expect("the key").to_owned();
    (res.id(), key)
}

/// The caller's keys as listed.
async fn listed(app: &TestApp, owner: &User) -> Vec<Value> {
    app.items("/api/v1/api-keys", &owner.token).await
}

fn messages(conv: &str) -> String {
    format!("/api/v1/conversations/{conv}/messages")
}

async fn keys_are_shown_once_and_listed_masked(app: TestApp) {
    let doc = crate::meta::openapi(&app).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let org = app.org(&alice, "Acme").await;
    let res = app
        .post(
            "/api/v1/api-keys",
            &alice.token,
            json!({"name": "ci", "org_id": org, "scopes": ["org:read", "messages:read"], "tier": "team"}),
        )
        .await
        .expect(201);
    crate::meta::check(&doc, "post", "/api/v1/api-keys", 201, &res.body);
    let key = res.string("key");
    assert!(
        key.starts_with("cnv_k_") && key.len() == 6 + 43 + 8,
        "{key}"
    );
    assert_eq!(res.body["user_id"], alice.id.as_str());
    assert_eq!(res.body["org_id"], org.as_str());
    assert_eq!(res.body["scopes"], json!(["messages:read", "org:read"]));
    assert_eq!(res.body["tier"], "team");
    assert!(res.body["last_used_at"].is_null());

    let list = app.get("/api/v1/api-keys", &alice.token).await.expect(200);
    crate::meta::check(&doc, "get", "/api/v1/api-keys", 200, &list.body);
    let items = list.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], res.body["id"]);
    assert_eq!(
        items[0]["key"],
        format!("cnv_k_****{}", &key[key.len() - 4..])
    );
    let text = list.body.to_string();
    assert!(
        !text.contains(&key[6..30]),
        "the key's secret part is never shown again"
    );

    // The key acts as alice, and its use is recorded.
    let me = app.get("/api/v1/users/@me", &key).await.expect(200);
    assert_eq!(me.body["id"], alice.id.as_str());
    let used = &listed(&app, &alice).await[0];
    assert!(used["last_used_at"].is_string());
    assert_eq!(used["last_used_ip"], "127.0.0.1");

    // Nobody else sees it.
    assert!(listed(&app, &bob).await.is_empty());
}

async fn bad_keys_are_refused_and_change_nothing(app: TestApp) {
    let alice = app.user("alice").await;
    let org = app.org(&alice, "Acme").await;
    let conv = app.group(&org, &alice, &[], json!("private")).await;
    let scopes = json!(["messages:read", "messages:write"]);
    let (id, key) = make_key(
        &app,
        &alice,
        json!({"name": "ci", "org_id": org, "scopes": scopes, "tier": "team"}),
    )
    .await;
    let sent = app
        .post(&messages(&conv), &key, json!({"content": "via key"}))
        .await
        .expect(201);
    assert_eq!(sent.body["author"]["id"], alice.id.as_str());
    let count = app.message_count(&conv, &alice).await;
    let write = |token: String| {
        let app = &app;
        let conv = conv.clone();
        async move {
            app.post(
                &messages(&conv),
                &token,
                json!({"content": "should not land"}),
            )
            .await
        }
    };

    // A broken checksum, a truncated key, garbage with the prefix.
    let mut broken: Vec<char> = key.chars().collect();
    let last = broken.len() - 1;
    broken[last] = if broken[last] == '0' { '1' } else { '0' };
    let broken: String = broken.into_iter().collect();
    write(broken).await.expect_error(401, "invalid_token");
    write(key[..key.len() - 1].to_owned())
        .await
        .expect_error(401, "invalid_token");
    write("cnv_k_nonsense".into())
        .await
        .expect_error(401, "invalid_token");
    // A key sent with the bot scheme is checked as a bot token.
    app.send(
        app.client
            .post(app.url(&messages(&conv)))
            .header("authorization", format!("Bot {key}"))
            .json(&json!({"content": "should not land"})),
    )
    .await
    .expect_error(401, "invalid_token");

    // Expired: any future time is accepted, and the key stops at it.
    let soon = app.clock_now() + Duration::seconds(60);
    let (_, short) = make_key(
        &app,
        &alice,
        json!({"name": "short", "org_id": org, "scopes": scopes, "expires_at": soon, "tier": "team"}),
    )
    .await;
    app.get(&messages(&conv), &short).await.expect(200);
    app.clock.advance(Duration::seconds(61));
    write(short).await.expect_error(401, "invalid_token");

    // Revoked: the very next request fails.
    app.delete(&format!("/api/v1/api-keys/{id}"), &alice.token)
        .await
        .expect(204);
    write(key.clone()).await.expect_error(401, "invalid_token");
    app.get("/api/v1/users/@me", &key)
        .await
        .expect_error(401, "invalid_token");
    app.delete(&format!("/api/v1/api-keys/{id}"), &alice.token)
        .await
        .expect_error(404, "not_found");

    assert_eq!(
        app.message_count(&conv, &alice).await,
        count,
        "nothing was written"
    );
}

async fn scopes_cap_every_route_family(app: TestApp) {
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let mallory = app.user("mallory").await;
    let org = app.org(&alice, "Acme").await;
    app.add_member(&org, &alice, &bob, "member").await;
    let conv = app.group(&org, &alice, &[&bob], json!("private")).await;
    let msg = app
        .send_message(&conv, &alice, "hello")
        .await
        .expect(201)
        .id();
    let elsewhere = app.org(&mallory, "Evil").await;
    let hidden = app.group(&elsewhere, &mallory, &[], json!("private")).await;
    let (_, key) = make_key(
        &app,
        &alice,
        json!({"name": "reader", "org_id": org, "scopes": ["messages:read"], "tier": "team"}),
    )
    .await;

    app.get(&messages(&conv), &key).await.expect(200);
    app.get(&format!("/api/v1/messages/{msg}/history"), &key)
        .await
        .expect(200);
    let refused: Vec<(Method, String, Option<Value>)> = vec![
        (Method::POST, messages(&conv), Some(json!({"content": "x"}))),
        (
            Method::PATCH,
            format!("/api/v1/messages/{msg}"),
            Some(json!({"content": "x"})),
        ),
        (Method::DELETE, format!("/api/v1/messages/{msg}"), None),
        (
            Method::POST,
            format!("/api/v1/conversations/{conv}/typing"),
            None,
        ),
        (Method::GET, "/api/v1/conversations".into(), None),
        (Method::GET, format!("/api/v1/conversations/{conv}"), None),
        (
            Method::GET,
            format!("/api/v1/conversations/{conv}/participants"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/orgs/{org}/conversations"),
            Some(json!({"kind": "group", "name": "x"})),
        ),
        (Method::GET, "/api/v1/orgs".into(), None),
        (Method::GET, format!("/api/v1/orgs/{org}"), None),
        (Method::GET, format!("/api/v1/orgs/{org}/members"), None),
        (Method::GET, format!("/api/v1/orgs/{org}/bots"), None),
        (
            Method::PATCH,
            format!("/api/v1/orgs/{org}"),
            Some(json!({"name": "Pwned"})),
        ),
        (Method::GET, "/api/v1/users/@me".into(), None),
        (Method::GET, format!("/api/v1/users/{}", bob.id), None),
        // Routes without a scope refuse every key.
        (Method::GET, "/api/v1/auth/sessions".into(), None),
        (Method::POST, "/api/v1/auth/logout".into(), None),
        (Method::GET, "/api/v1/api-keys".into(), None),
        (
            Method::POST,
            "/api/v1/api-keys".into(),
            Some(json!({"name": "more", "org_id": org, "scopes": ["messages:read"]})),
        ),
        (Method::GET, "/api/v1/admin/users".into(), None),
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
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(list.body["items"][0]["content"], "hello");
    app.get(&format!("/api/v1/orgs/{org}"), &alice.token)
        .await
        .expect(200);
    assert_eq!(
        app.get(&format!("/api/v1/orgs/{org}"), &alice.token)
            .await
            .body["name"],
        "Acme"
    );

    // A key never exceeds its owner: every scope, but bob is a member.
    let (_, bobs) = make_key(
        &app,
        &bob,
        json!({"name": "all", "org_id": org,
            "scopes": ["messages:read", "messages:write", "conversations:read", "conversations:admin",
                       "org:read", "org:admin", "files:write", "webhooks:admin"]}),
    )
    .await;
    app.patch(
        &format!("/api/v1/orgs/{org}"),
        &bobs,
        json!({"name": "Bob's"}),
    )
    .await
    .expect_error(403, "forbidden");
    app.post(
        &format!("/api/v1/orgs/{org}/members"),
        &bobs,
        json!({"user_id": mallory.id, "role": "member"}),
    )
    .await
    .expect_error(403, "forbidden");
    app.get(&format!("/api/v1/orgs/{org}/members"), &bobs)
        .await
        .expect(200);
}

async fn keys_follow_their_owners_current_rights(app: TestApp) {
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let org = app.org(&alice, "Acme").await;
    app.add_member(&org, &alice, &bob, "admin").await;
    let conv = app.group(&org, &alice, &[&bob], json!("private")).await;
    let (_, key) = make_key(
        &app,
        &bob,
        json!({"name": "bob", "org_id": org, "tier": "team",
            "scopes": ["messages:read", "messages:write", "org:read", "org:admin", "conversations:read"]}),
    )
    .await;
    app.post(
        &format!("/api/v1/orgs/{org}/teams"),
        &key,
        json!({"name": "Ops"}),
    )
    .await
    .expect(201);

    // Demoted: the next request has a member's rights.
    app.patch(
        &format!("/api/v1/orgs/{org}/members/{}", bob.id),
        &alice.token,
        json!({"role": "member"}),
    )
    .await
    .expect(200);
    app.post(
        &format!("/api/v1/orgs/{org}/teams"),
        &key,
        json!({"name": "Ops 2"}),
    )
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
    app.get(&messages(&conv), &key)
        .await
        .expect_error(404, "not_found");
    app.post(&messages(&conv), &key, json!({"content": "x"}))
        .await
        .expect_error(404, "not_found");

    // Removed from the org: nothing of it is left.
    app.delete(
        &format!("/api/v1/orgs/{org}/members/{}", bob.id),
        &alice.token,
    )
    .await
    .expect(204);
    app.get(&format!("/api/v1/orgs/{org}"), &key)
        .await
        .expect_error(404, "not_found");
    let convs = app.get("/api/v1/conversations", &key).await.expect(200);
    assert!(convs.body["items"].as_array().unwrap().is_empty());
    assert_eq!(app.message_count(&conv, &alice).await, 0);
}

async fn keys_stay_in_their_org_and_conversations(app: TestApp) {
    let alice = app.user("alice").await;
    let mallory = app.user("mallory").await;
    let acme = app.org(&alice, "Acme").await;
    let beta = app.org(&alice, "Beta").await;
    let evil = app.org(&mallory, "Evil").await;
    let a1 = app.group(&acme, &alice, &[], json!("private")).await;
    let a2 = app.group(&acme, &alice, &[], json!("private")).await;
    let b1 = app.group(&beta, &alice, &[], json!("private")).await;
    let e1 = app.group(&evil, &mallory, &[], json!("private")).await;
    let all = json!([
        "messages:read",
        "messages:write",
        "conversations:read",
        "conversations:admin",
        "org:read",
        "org:admin"
    ]);
    let (_, listed_key) = make_key(
        &app,
        &alice,
        json!({"name": "one", "org_id": acme, "scopes": all, "conversation_ids": [a1], "tier": "team"}),
    )
    .await;

    let convs = app
        .get("/api/v1/conversations", &listed_key)
        .await
        .expect(200);
    let ids: Vec<&str> = convs.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![a1.as_str()]);
    app.post(&messages(&a1), &listed_key, json!({"content": "in"}))
        .await
        .expect(201);
    app.get(&messages(&a1), &listed_key).await.expect(200);
    // Conversations alice may use but the key may not: 403; what alice cannot see: 404.
    for conv in [&a2, &b1] {
        app.get(&messages(conv), &listed_key)
            .await
            .expect_error(403, "insufficient_scope");
        app.post(&messages(conv), &listed_key, json!({"content": "out"}))
            .await
            .expect_error(403, "insufficient_scope");
        app.get(&format!("/api/v1/conversations/{conv}"), &listed_key)
            .await
            .expect_error(403, "insufficient_scope");
    }
    app.get(&messages(&e1), &listed_key)
        .await
        .expect_error(404, "not_found");
    // It cannot create what would lie outside its list.
    app.post(
        &format!("/api/v1/orgs/{acme}/conversations"),
        &listed_key,
        json!({"kind": "group", "name": "new"}),
    )
    .await
    .expect_error(403, "insufficient_scope");

    // Without a list the key reaches its org's conversations, and only its org.
    let (_, org_key) = make_key(
        &app,
        &alice,
        json!({"name": "org", "org_id": acme, "scopes": all, "tier": "team"}),
    )
    .await;
    let convs = app.get("/api/v1/conversations", &org_key).await.expect(200);
    let mut ids: Vec<String> = convs.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    let mut want = vec![a1.clone(), a2.clone()];
    want.sort();
    assert_eq!(ids, want);
    let orgs = app.get("/api/v1/orgs", &org_key).await.expect(200);
    assert_eq!(orgs.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(orgs.body["items"][0]["id"], acme.as_str());
    app.get(&format!("/api/v1/orgs/{beta}"), &org_key)
        .await
        .expect_error(403, "insufficient_scope");
    app.get(&messages(&b1), &org_key)
        .await
        .expect_error(403, "insufficient_scope");
    app.post(
        &format!("/api/v1/orgs/{beta}/conversations"),
        &org_key,
        json!({"kind": "group", "name": "new"}),
    )
    .await
    .expect_error(403, "insufficient_scope");
    app.get(&format!("/api/v1/orgs/{evil}"), &org_key)
        .await
        .expect_error(404, "not_found");
    // Keys neither create nor join orgs.
    app.post("/api/v1/orgs", &org_key, json!({"name": "Side"}))
        .await
        .expect_error(403, "insufficient_scope");
    let created = app
        .post(
            &format!("/api/v1/orgs/{acme}/conversations"),
            &org_key,
            json!({"kind": "group", "name": "new"}),
        )
        .await
        .expect(201);
    assert_eq!(created.body["created_by"], alice.id.as_str());
}

async fn rotation_keeps_the_old_key_for_the_grace_period(app: TestApp) {
    let alice = app.user("alice").await;
    let org = app.org(&alice, "Acme").await;
    let (id, first) = make_key(
        &app,
        &alice,
        json!({"name": "ci", "org_id": org, "scopes": ["org:read"], "tier": "team"}),
    )
    .await;
    let rotate = |grace: Value| {
        let app = &app;
        let path = format!("/api/v1/api-keys/{id}/rotate");
        let token = alice.token.clone();
        async move { app.post(&path, &token, grace).await }
    };
    let r = rotate(json!({"grace_seconds": 60})).await.expect(200);
    let second = r.string("key");
    assert_ne!(second, first);
    assert_eq!(r.body["id"], id.as_str(), "the same key, a new secret");
    assert!(r.body["previous_key_expires_at"].is_string());
    let me = "/api/v1/users/@me";
    app.get(me, &first).await.expect(200);
    app.get(me, &second).await.expect(200);
    app.clock.advance(Duration::seconds(61));
    app.get(me, &first).await.expect_error(401, "invalid_token");
    app.get(me, &second).await.expect(200);

    // Without a grace period the old secret stops at once.
    let third = rotate(json!({"grace_seconds": 0}))
        .await
        .expect(200)
        .string("key");
    app.get(me, &second)
        .await
        .expect_error(401, "invalid_token");
    app.get(me, &third).await.expect(200);
    // Rotating again drops a secret still in its grace period.
    let fourth = rotate(json!({"grace_seconds": 600}))
        .await
        .expect(200)
        .string("key");
    let fifth = rotate(json!({"grace_seconds": 600}))
        .await
        .expect(200)
        .string("key");
    app.get(me, &third).await.expect_error(401, "invalid_token");
    app.get(me, &fourth).await.expect(200);
    app.get(me, &fifth).await.expect(200);

    // Bad grace periods, and a key rotating itself.
    for bad in [
        json!({"grace_seconds": 86_401}),
        json!({"grace_seconds": -1}),
    ] {
        let r = rotate(bad).await.expect_error(422, "out_of_range");
        assert_eq!(r.field(), Some("/grace_seconds"));
    }
    rotate(json!({})).await.expect_error(422, "missing_field");
    app.post(
        &format!("/api/v1/api-keys/{id}/rotate"),
        &fifth,
        json!({"grace_seconds": 0}),
    )
    .await
    .expect_error(403, "insufficient_scope");
    app.get(me, &fifth).await.expect(200);
    assert_eq!(listed(&app, &alice).await.len(), 1);
}

async fn ip_allowlist_and_last_use(app: TestApp) {
    let app = spawn_app_with(app.backend, |c| {
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await
    .unwrap();
    let alice = app.user("alice").await;
    let org = app.org(&alice, "Acme").await;
    let (_, key) = make_key(
        &app,
        &alice,
        json!({"name": "office", "org_id": org, "scopes": ["org:read"], "tier": "team",
            "allowed_ips": ["10.0.0.0/8", "2001:db8::1"]}),
    )
    .await;
    let from = |ip: &'static str| {
        let app = &app;
        let key = key.clone();
        async move {
            app.send(
                app.client
                    .get(app.url("/api/v1/users/@me"))
                    .bearer_auth(key)
                    .header("x-forwarded-for", ip),
            )
            .await
        }
    };
    let stored = listed(&app, &alice).await;
    assert_eq!(
        stored[0]["allowed_ips"],
        json!(["10.0.0.0/8", "2001:db8::1/128"])
    );

    from("192.168.1.5")
        .await
        .expect_error(403, "ip_not_allowed");
    app.get("/api/v1/users/@me", &key)
        .await
        .expect_error(403, "ip_not_allowed");
    assert!(
        listed(&app, &alice).await[0]["last_used_at"].is_null(),
        "a refused request is not a use"
    );
    from("10.1.2.3").await.expect(200);
    from("2001:db8::1").await.expect(200);
    let used = &listed(&app, &alice).await[0];
    assert_eq!(
        used["last_used_ip"], "10.1.2.3",
        "written at most once a minute"
    );
    let first_use = used["last_used_at"].clone();
    app.clock.advance(Duration::seconds(61));
    from("10.9.9.9").await.expect(200);
    let used = &listed(&app, &alice).await[0];
    assert_eq!(used["last_used_ip"], "10.9.9.9");
    assert_ne!(used["last_used_at"], first_use);

    for (bad, field) in [
        (json!(["10.0.0.0/8", "nonsense"]), "/allowed_ips/1"),
        (json!(["10.0.0.0/33"]), "/allowed_ips/0"),
    ] {
        let r = app
            .post(
                "/api/v1/api-keys",
                &alice.token,
                json!({"name": "x", "org_id": org, "scopes": ["org:read"], "allowed_ips": bad}),
            )
            .await
            .expect(422);
        assert_eq!(r.field(), Some(field), "{}", r.body);
    }
    let r = app
        .post(
            "/api/v1/api-keys",
            &alice.token,
            json!({"name": "x", "org_id": org, "scopes": ["org:read"], "allowed_ips": []}),
        )
        .await
        .expect_error(422, "invalid_length");
    assert_eq!(r.field(), Some("/allowed_ips"));
    assert_eq!(listed(&app, &alice).await.len(), 1);
}

async fn creation_checks_every_field(app: TestApp) {
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let mallory = app.user("mallory").await;
    let org = app.org(&alice, "Acme").await;
    app.add_member(&org, &alice, &bob, "member").await;
    let evil = app.org(&mallory, "Evil").await;
    let theirs = app.group(&evil, &mallory, &[], json!("private")).await;
    let alices_private = app.group(&org, &alice, &[], json!("private")).await;
    let create = |by: &User, body: Value| {
        let app = &app;
        let token = by.token.clone();
        async move { app.post("/api/v1/api-keys", &token, body).await }
    };
    let base = json!({"name": "k", "org_id": org, "scopes": ["messages:read"]});
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };

    // Only org owners and admins set a tier above free.
    create(&bob, with("tier", json!("pro")))
        .await
        .expect_error(403, "forbidden");
    let free = create(&bob, base.clone()).await.expect(201);
    assert_eq!(free.body["tier"], "free");
    create(&alice, with("tier", json!("enterprise")))
        .await
        .expect(201);
    // Only for an org one belongs to.
    create(&mallory, base.clone())
        .await
        .expect_error(404, "not_found");
    // Field by field.
    let cases = [
        (with("scopes", json!(["messages:delete"])), "/scopes/0"),
        (with("scopes", json!([])), "/scopes"),
        (with("tier", json!("platinum")), "/tier"),
        (
            with("expires_at", json!("2001-01-01T00:00:00Z")),
            "/expires_at",
        ),
        (
            with("conversation_ids", json!([theirs])),
            "/conversation_ids/0",
        ),
        (with("conversation_ids", json!([])), "/conversation_ids"),
        (with("name", json!("")), "/name"),
        (with("surprise", json!(true)), "/surprise"),
    ];
    for (body, field) in cases {
        let r = create(&alice, body).await.expect(422);
        assert_eq!(r.field(), Some(field), "{}", r.body);
    }
    // A conversation the creator cannot see is unknown, as one of another org.
    let r = create(&bob, with("conversation_ids", json!([alices_private])))
        .await
        .expect_error(422, "unknown_conversation");
    assert_eq!(r.field(), Some("/conversation_ids/0"));
    let r = create(&alice, json!({"org_id": org, "scopes": ["messages:read"]}))
        .await
        .expect_error(422, "missing_field");
    assert_eq!(r.field(), Some("/name"));
    assert_eq!(listed(&app, &alice).await.len(), 1, "nothing else was made");
    assert_eq!(listed(&app, &bob).await.len(), 1);
}

async fn keys_of_others_cannot_be_touched(app: TestApp) {
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let mallory = app.user("mallory").await;
    let org = app.org(&alice, "Acme").await;
    app.add_member(&org, &alice, &bob, "admin").await;
    let (id, key) = make_key(
        &app,
        &alice,
        json!({"name": "ci", "org_id": org, "scopes": ["org:read"], "tier": "team"}),
    )
    .await;
    // Neither a member of the same org (even an admin) nor a user of another org.
    for other in [&bob, &mallory] {
        assert!(listed(&app, other).await.is_empty());
        app.delete(&format!("/api/v1/api-keys/{id}"), &other.token)
            .await
            .expect_error(404, "not_found");
        app.post(
            &format!("/api/v1/api-keys/{id}/rotate"),
            &other.token,
            json!({"grace_seconds": 0}),
        )
        .await
        .expect_error(404, "not_found");
    }
    app.delete("/api/v1/api-keys/not-an-id", &alice.token)
        .await
        .expect_error(400, "invalid_id");
    app.get("/api/v1/users/@me", &key).await.expect(200);
    assert_eq!(listed(&app, &alice).await.len(), 1);
    // Without a credential, nothing.
    app.get_anon("/api/v1/api-keys")
        .await
        .expect_error(401, "unauthenticated");
}

async fn keys_on_the_gateway(app: TestApp) {
    let Acme { alice, bob, org } = app.acme().await;
    let shared = app.group(&org, &alice, &[&bob], json!("private")).await;
    let solo = app.group(&org, &alice, &[], json!("private")).await;
    let (id, key) = make_key(
        &app,
        &alice,
        json!({"name": "listener", "org_id": org, "scopes": ["messages:read"],
            "conversation_ids": [shared], "tier": "team"}),
    )
    .await;
    let (mut ws, ready) = Ws::identify(&app, &key).await;
    assert_eq!(ready["user"]["id"], alice.id.as_str());
    let ids: Vec<&str> = ready["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![shared.as_str()], "only what the key reaches");

    // Events of other conversations, and new conversations of its owner, stay away.
    app.send_message(&solo, &alice, "private").await.expect(201);
    let _new = app.group(&org, &alice, &[&bob], json!("private")).await;
    let m = app
        .send_message(&shared, &bob, "for the key")
        .await
        .expect(201);
    let d = ws.expect("MESSAGE_CREATE").await;
    assert_eq!(d["id"], m.body["id"]);
    assert_eq!(d["conversation_id"], shared.as_str());

    // A key without messages:read may not identify (4014).
    let (_, blind) = make_key(
        &app,
        &alice,
        json!({"name": "blind", "org_id": org, "scopes": ["org:read"], "tier": "team"}),
    )
    .await;
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
    later_ws.heartbeat().await;
    loop {
        let f = later_ws
            .frame()
            .await
            .expect("still open within the grace period");
        if f["op"] == 11 {
            break;
        }
    }
    app.clock.advance(Duration::seconds(61));
    later_ws.heartbeat().await;
    assert_eq!(later_ws.close_code().await, 4004);
    let (_, ready) = Ws::identify(&app, &fresh).await;
    assert_eq!(ready["user"]["id"], alice.id.as_str());
}

async fn free_keys_spend_the_owner_budget_and_tiers_have_their_own(app: TestApp) {
    let Acme { alice, bob, org } = app.acme().await;
    let (_, free) = make_key(
        &app,
        &bob,
        json!({"name": "free", "org_id": org, "scopes": ["org:read"]}),
    )
    .await;
    let (_, team) = make_key(
        &app,
        &alice,
        json!({"name": "team", "org_id": org, "scopes": ["org:read"], "tier": "team"}),
    )
    .await;
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
