//! What the log holds and who reads it: security events and mutations with their context,
//! filters and pages, access, no route changing a row, a user's own security events.

use super::*;
use crate::cases::Caller;

pub(super) async fn security_events_and_mutations_are_logged_with_their_context(app: TestApp) {
    let (app, _) = app_and_config(app).await;
    let admin = app.bootstrap().await;
    let alice = app.user("alice").await;
    // A failed sign-in, of a known name and of an unknown one.
    for name in ["alice", "nobody-here"] {
        let failed = app.login(name, "not the password").await;
        failed.expect_error(401, "invalid_credentials");
    }
    let signed_in = app
        .send(
            app.client
                .post(app.url("/api/v1/auth/login"))
                .header("user-agent", "audit-test/1.0")
                .json(&json!({ "username": "alice", "password": PASSWORD })),
        )
        .await
        .expect(200);
    let session = signed_in.body["session"]["id"].as_str().unwrap().to_owned();
    let org = app.org(&alice, "Acme").await;
    let bob = app.user("bob").await;
    app.add_member(&org, &alice, &bob, "member").await;
    app.set_role(&org, &alice, &bob, "admin").await.expect(200);
    app.update_org(&org, &alice, json!({ "message_retention_days": 30 }))
        .await
        .expect(200);
    let spec = json!({ "name": "ci", "org_id": org, "scopes": ["messages:read"] });
    let (_, key) = make_key(&app, &alice, spec).await;
    let conv = app.group(&org, &alice, &[&bob], json!("org")).await;
    let sent = app.says(&conv, &bob, "delete me").await;
    // A moderator's deletion is audited; an author's own send is not.
    app.delete(&format!("/api/v1/messages/{}", sent.id()), &alice.token)
        .await
        .expect(204);
    app.set_disabled(&admin.token, &bob, true).await;

    let rows = audit(&app, "?limit=100").await;
    let names = events(&rows);
    assert_includes(
        &names,
        &[
            "user.bootstrapped",
            "auth.login",
            "user.registered",
            "org.created",
            "invite.created",
            "member.joined",
            "member.role_changed",
            "org.settings_changed",
            "api_key.created",
            "conversation.created",
            "message.moderated",
            "admin.user_updated",
        ],
    );
    assert!(
        !names.contains(&"message.created"),
        "an author's own messages are not audit events"
    );
    // Every row has every key.
    for r in &rows {
        for k in [
            "id",
            "at",
            "event",
            "actor",
            "resource",
            "org_id",
            "ip",
            "user_agent",
            "request_id",
            "outcome",
        ] {
            assert!(r.get(k).is_some(), "{k} in {r}");
        }
        for k in ["id", "type", "impersonator"] {
            assert!(r["actor"].get(k).is_some(), "actor.{k} in {r}");
        }
    }
    let failures: Vec<_> = rows
        .iter()
        .filter(|r| r["event"] == "auth.login" && r["outcome"] == "failure")
        .collect();
    assert_eq!(failures.len(), 2, "both failed sign-ins");
    assert!(failures
        .iter()
        .any(|r| r["resource"]["id"] == json!(alice.id)));
    assert!(failures.iter().all(|r| r["actor"]["type"] == "anonymous"));
    let login = rows
        .iter()
        .find(|r| {
            r["event"] == "auth.login"
                && r["outcome"] == "success"
                && r["detail"]["session_id"] == json!(session)
        })
        .expect("the sign-in with a user agent");
    assert_eq!(login["actor"]["id"], json!(alice.id));
    assert_eq!(login["actor"]["type"], "user");
    assert_eq!(login["ip"], "127.0.0.1");
    assert_eq!(login["user_agent"], "audit-test/1.0");
    assert!(login["request_id"].as_str().is_some_and(|r| !r.is_empty()));
    let role = rows
        .iter()
        .find(|r| r["event"] == "member.role_changed")
        .unwrap();
    assert_eq!(role["org_id"], json!(org));
    assert_eq!(role["resource"], json!({ "type": "user", "id": bob.id }));
    assert_eq!(role["detail"]["role"], "admin");
    let disabled = rows
        .iter()
        .find(|r| r["event"] == "admin.user_updated")
        .unwrap();
    assert_eq!(disabled["actor"]["id"], json!(admin.id));
    // Never a secret or message content.
    let text = serde_json::to_string(&rows).unwrap();
    for secret in [PASSWORD, key.as_str(), "delete me", alice.token.as_str()] {
        assert!(!text.contains(secret), "the log holds no secret or content");
    }
}

pub(super) async fn listings_filter_and_page(app: TestApp) {
    let (app, _) = app_and_config(app).await;
    let alice = app.user("alice").await;
    let acme = app.org(&alice, "Acme").await;
    let other = app.org(&alice, "Other").await;
    for i in 0..4 {
        app.create_team(&acme, &alice, &format!("team {i}")).await;
    }
    let teams = audit(&app, "?event=team.created").await;
    assert_eq!(teams.len(), 4);
    assert!(teams.iter().all(|r| r["event"] == "team.created"));
    let in_other = audit(&app, &format!("?org={other}")).await;
    assert_eq!(events(&in_other), vec!["org.created"]);
    let by_alice = audit(&app, &format!("?actor={}&event=org.created", alice.id)).await;
    assert_eq!(by_alice.len(), 2);
    // Time windows (the test clock stands still, so every row has the same instant).
    let at = teams[0]["at"].as_str().unwrap().to_owned();
    let since = |t: &str| format!("?event=team.created&since={}", urlencode(t));
    assert_eq!(audit(&app, &since(&at)).await.len(), 4);
    assert!(audit(&app, &since("2999-01-01T00:00:00Z")).await.is_empty());
    assert!(audit(&app, &format!("?until={}", urlencode(&at)))
        .await
        .is_empty());
    // Pages of two, newest first, continuing with `next`.
    let first = app.audit_of("team.created&limit=2").await;
    let next = first.body["next"].as_str().expect("a next cursor");
    let second = app
        .get(
            &format!("/api/v1/admin/audit?event=team.created&limit=2&before={next}"),
            ADMIN_TOKEN,
        )
        .await
        .expect(200);
    let page_ids: Vec<_> = first.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second.body["items"].as_array().unwrap())
        .map(|r| r["id"].clone())
        .collect();
    let all_ids: Vec<_> = teams.iter().map(|r| r["id"].clone()).collect();
    assert_eq!(page_ids, all_ids);
    // Bad filters get a clear error naming the field.
    for (query, status, field) in [
        ("?actor=not-a-uuid", 422, "actor"),
        ("?org=42", 422, "org"),
        ("?since=yesterday", 422, "since"),
        (
            "?since=2030-01-02T00:00:00Z&until=2030-01-01T00:00:00Z",
            422,
            "until",
        ),
        ("?event=DROP%20TABLE", 422, "event"),
        ("?limit=0", 422, "limit"),
        ("?before=%%%", 400, "before"),
    ] {
        let res = app
            .get(&format!("/api/v1/admin/audit{query}"), ADMIN_TOKEN)
            .await;
        assert_eq!(res.status.as_u16(), status, "{query}: {}", res.body);
        assert_eq!(res.field(), Some(field), "{query}: {}", res.body);
    }
    let res = app
        .get("/api/v1/admin/audit?colour=blue", ADMIN_TOKEN)
        .await;
    assert_eq!(res.status.as_u16(), 400, "unknown parameters are refused");
}

pub(super) async fn only_admins_and_org_owners_read_the_log(app: TestApp) {
    let (app, _) = app_and_config(app).await;
    let admin = app.bootstrap().await;
    let owner = app.user("owner").await;
    let helper = app.user("helper").await;
    let member = app.user("member").await;
    let outsider = app.user("outsider").await;
    let org = app.org(&owner, "Acme").await;
    let elsewhere = app.org(&outsider, "Elsewhere").await;
    app.add_member(&org, &owner, &helper, "admin").await;
    app.add_member(&org, &owner, &member, "member").await;
    let path = format!("/api/v1/orgs/{org}/audit");
    // Owners and admins of the org read its events, and only its events.
    for who in [&owner, &helper] {
        let rows = app.items(&path, &who.token).await;
        assert!(rows.iter().all(|r| r["org_id"] == json!(org)));
        assert!(events(&rows).contains(&"member.joined"));
    }
    // Members may not; outsiders do not see that the org exists.
    app.expect_all([
        member.get(&path).err(403, "forbidden"),
        outsider.get(&path).err(404, "not_found"),
    ])
    .await;
    let res = app
        .get(&format!("{path}?org={elsewhere}"), &owner.token)
        .await
        .expect(422);
    assert_eq!(res.field(), Some("org"));
    // An API key of the owner with read scopes only cannot read the log.
    let spec = json!({ "name": "reader", "org_id": org, "scopes": ["org:read"] });
    let (_, key) = make_key(&app, &owner, spec).await;
    app.get(&path, &key)
        .await
        .expect_error(403, "insufficient_scope");
    // The server-wide log and verification: server admins and the management token only.
    for p in ["/api/v1/admin/audit", "/api/v1/admin/audit/verify"] {
        app.get(p, &admin.token).await.expect(200);
        app.get(p, ADMIN_TOKEN).await.expect(200);
        app.get(p, &owner.token)
            .await
            .expect_error(403, "forbidden");
        app.get(p, &key).await.expect(403);
        app.get_anon(p).await.expect_error(401, "unauthenticated");
        app.get(p, "not-the-token")
            .await
            .expect_error(401, "invalid_token");
    }
    app.get_anon(&path)
        .await
        .expect_error(401, "unauthenticated");
}

pub(super) async fn no_route_changes_the_log(app: TestApp) {
    let (app, _) = app_and_config(app).await;
    let _alice = app.user("alice").await;
    let rows = audit(&app, "").await;
    let id = rows[0]["id"].as_str().unwrap();
    for (method, path) in [
        (Method::DELETE, "/api/v1/admin/audit".to_owned()),
        (Method::POST, "/api/v1/admin/audit".to_owned()),
        (Method::PATCH, "/api/v1/admin/audit".to_owned()),
        (Method::PUT, "/api/v1/admin/audit".to_owned()),
        (Method::DELETE, format!("/api/v1/admin/audit/{id}")),
        (Method::PATCH, format!("/api/v1/admin/audit/{id}")),
        (Method::POST, "/api/v1/admin/audit/verify".to_owned()),
    ] {
        let res = app
            .call(method.clone(), &path, Some(ADMIN_TOKEN), Some(json!({})))
            .await;
        assert!(
            [404, 405].contains(&res.status.as_u16()),
            "{method} {path}: {}",
            res.status
        );
    }
    assert_eq!(audit(&app, "").await.len(), rows.len());
}

pub(super) async fn users_see_the_security_events_about_their_account(app: TestApp) {
    let (app, _) = app_and_config(app).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    app.login("alice", "wrong password")
        .await
        .expect_error(401, "invalid_credentials");
    app.login("bob", "wrong password")
        .await
        .expect_error(401, "invalid_credentials");
    let org = app.org(&alice, "Acme").await;
    let rows = app
        .items("/api/v1/users/@me/security-events", &alice.token)
        .await;
    assert!(rows
        .iter()
        .all(|r| r["resource"] == json!({ "type": "user", "id": alice.id })));
    assert!(rows
        .iter()
        .any(|r| r["event"] == "auth.login" && r["outcome"] == "failure"));
    assert!(rows
        .iter()
        .any(|r| r["event"] == "auth.login" && r["outcome"] == "success"));
    assert!(
        !events(&rows).contains(&"org.created"),
        "security events, not everything"
    );
    let _ = bob;
    // Not for keys: a key of alice's cannot read her account's events.
    let spec = json!({ "name": "k", "org_id": org, "scopes": ["org:read"] });
    let (_, key) = make_key(&app, &alice, spec).await;
    app.get("/api/v1/users/@me/security-events", &key)
        .await
        .expect(403);
    app.get_anon("/api/v1/users/@me/security-events")
        .await
        .expect_error(401, "unauthenticated");
}
