//! A key's own life: shown once and listed masked, bad keys refused, rotation with a grace
//! period, IP allowlists and last use, every creation field checked, others' keys untouchable.

use super::*;
use crate::cases::Caller;

pub(super) async fn keys_are_shown_once_and_listed_masked(app: TestApp) {
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

pub(super) async fn bad_keys_are_refused_and_change_nothing(app: TestApp) {
    let (alice, org, conv) = app.alice_private().await;
    let scopes = json!(["messages:read", "messages:write"]);
    let spec = json!({"name": "ci", "org_id": org, "scopes": scopes, "tier": "team"});
    let (id, key) = make_key(&app, &alice, spec).await;
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
    let spec = json!({"name": "short", "org_id": org, "scopes": scopes, "expires_at": soon, "tier": "team"});
    let (_, short) = make_key(&app, &alice, spec).await;
    app.get(&messages(&conv), &short).await.expect(200);
    app.clock.advance(Duration::seconds(61));
    write(short).await.expect_error(401, "invalid_token");

    // Revoked: the very next request fails.
    app.delete(&format!("/api/v1/api-keys/{id}"), &alice.token)
        .await
        .expect(204);
    write(key.clone()).await.expect_error(401, "invalid_token");
    app.assert_signed_out(&key).await;
    app.delete(&format!("/api/v1/api-keys/{id}"), &alice.token)
        .await
        .expect_error(404, "not_found");

    assert_eq!(
        app.message_count(&conv, &alice).await,
        count,
        "nothing was written"
    );
}

pub(super) async fn rotation_keeps_the_old_key_for_the_grace_period(app: TestApp) {
    let alice = app.user("alice").await;
    let org = app.org(&alice, "Acme").await;
    let spec = json!({"name": "ci", "org_id": org, "scopes": ["org:read"], "tier": "team"});
    let (id, first) = make_key(&app, &alice, spec).await;
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

pub(super) async fn ip_allowlist_and_last_use(app: TestApp) {
    let app = spawn_app_with(app.backend, |c| {
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await
    .unwrap();
    let alice = app.user("alice").await;
    let org = app.org(&alice, "Acme").await;
    let spec = json!({"name": "office", "org_id": org, "scopes": ["org:read"], "tier": "team",
            "allowed_ips": ["10.0.0.0/8", "2001:db8::1"]});
    let (_, key) = make_key(&app, &alice, spec).await;
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
    // AUTH-7, DATA-4: each refusal is in the org's log, the key as its actor, with the
    // address it came from — a working key used elsewhere is the mark of a stolen one.
    let rows = app
        .items(
            &format!("/api/v1/orgs/{org}/audit?event=api_key.denied"),
            &alice.token,
        )
        .await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0]["outcome"], "denied");
    assert_eq!(rows[0]["actor"]["type"], "api_key");
    assert_eq!(rows[0]["detail"]["reason"], "ip_not_allowed");
    assert!(rows.iter().any(|r| r["ip"] == "192.168.1.5"), "{rows:?}");
    // Its making is there with every bound it was given.
    let made = app
        .items(
            &format!("/api/v1/orgs/{org}/audit?event=api_key.created"),
            &alice.token,
        )
        .await;
    let bounds = &made[0]["detail"];
    assert_eq!(
        bounds["allowed_ips"],
        json!(["10.0.0.0/8", "2001:db8::1/128"]),
        "{made:?}"
    );
    assert_eq!(bounds["tier"], "team");
    assert!(bounds["expires_at"].is_null() && bounds["conversation_ids"].is_null());
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

pub(super) async fn creation_checks_every_field(app: TestApp) {
    let Team(alice, [bob], org) = app.team("alice", "Acme", [("bob", "member")]).await;
    let (mallory, evil) = app.mallory().await;
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
        // Past the year 9999 (on SQLite such a time sorted before every other: a key listed,
        // never working).
        (
            with("expires_at", json!("+10000-01-01T00:00:00Z")),
            "/expires_at",
        ),
        (
            with("expires_at", json!("9999-12-31T23:30:00-01:00")),
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

pub(super) async fn keys_of_others_cannot_be_touched(app: TestApp) {
    let Team(alice, [bob], org) = app.team("alice", "Acme", [("bob", "admin")]).await;
    let mallory = app.user("mallory").await;
    let spec = json!({"name": "ci", "org_id": org, "scopes": ["org:read"], "tier": "team"});
    let (id, key) = make_key(&app, &alice, spec).await;
    // Neither a member of the same org (even an admin) nor a user of another org.
    for other in [&bob, &mallory] {
        assert!(listed(&app, other).await.is_empty());
        app.expect_all([
            other
                .delete(&format!("/api/v1/api-keys/{id}"))
                .err(404, "not_found"),
            other
                .post(
                    &format!("/api/v1/api-keys/{id}/rotate"),
                    json!({"grace_seconds": 0}),
                )
                .err(404, "not_found"),
        ])
        .await;
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
