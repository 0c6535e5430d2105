//! Who manages guards and reviews flags (owners and admins, keys with `org:admin`), everyone
//! refused on every route, and one org's guards never reaching another's.

use super::*;
use reqwest::Method;

crate::both_backends!(
    with crate::guards::guarded;
    only_owners_admins_and_admin_keys_manage_guards,
    an_orgs_guards_never_apply_to_another,
);

/// Every guard and flag route of `org` for guard `guard` and flag `flag`, with a body.
fn routes(org: &str, guard: &str, flag: &str) -> Vec<(Method, String, Option<Value>)> {
    let rule = json!({"kind": "blocklist", "mode": "block", "terms": ["x"]});
    vec![
        (Method::GET, guards(org), None),
        (Method::POST, guards(org), Some(rule)),
        (
            Method::PATCH,
            format!("{}/{guard}", guards(org)),
            Some(json!({"enabled": false})),
        ),
        (Method::DELETE, format!("{}/{guard}", guards(org)), None),
        (Method::GET, flags(org), None),
        (
            Method::POST,
            format!("{}/{flag}/resolve", flags(org)),
            Some(json!({"resolution": "dismissed"})),
        ),
    ]
}

async fn only_owners_admins_and_admin_keys_manage_guards(g: Guarded) {
    let app = &g.app;
    let admin = app.bootstrap().await;
    let team = app.acme_staff().await;
    let crate::fixtures::Team(owner, [ann, bob, vic, dee], org) = &team;
    let conv = app.group(org, owner, &[bob], json!("org")).await;
    let body = json!({"kind": "blocklist", "mode": "flag", "terms": ["refund"]});
    let watch = make_guard(app, org, owner, body).await;
    let guard = watch["id"].as_str().unwrap().to_owned();
    app.says(&conv, bob, "refund").await;
    let flag = open_flags(app, org, owner).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // An admin may.
    app.get(&guards(org), &ann.token).await.expect(200);
    app.get(&flags(org), &ann.token).await.expect(200);

    let refused = |who: &str, token: String, status: u16, code: Option<&'static str>| {
        (who.to_owned(), token, status, code)
    };
    // A key with every scope but `org:admin`.
    let all_but = crate::keys::all_scopes_but("org:admin");
    let weak = crate::keys::org_key(app, owner, org, &all_but, &[]).await;
    // A member's key with `org:admin`: capped by the member's role.
    let members_key = crate::keys::org_key(app, bob, org, &["org:admin"], &[]).await;
    // A key limited to one conversation, even with `org:admin` and an owner behind it.
    let listed_key = crate::keys::org_key(app, owner, org, &["org:admin"], &[conv.as_str()]).await;
    let (mallory, _) = app.mallory().await;
    // The owner, impersonated by a server admin.
    let impersonated = app.impersonation(&admin, owner).await;
    let mut callers = vec![
        refused("member", bob.token.clone(), 403, None),
        refused("viewer", vic.token.clone(), 403, None),
        refused("other org's owner", mallory.token.clone(), 404, None),
        refused(
            "key without org:admin",
            weak,
            403,
            Some("insufficient_scope"),
        ),
        refused("member's admin key", members_key, 403, None),
        refused(
            "conversation-limited key",
            listed_key,
            403,
            Some("insufficient_scope"),
        ),
    ];
    // A disabled admin (signed in before being disabled).
    app.set_disabled(&admin.token, dee, true).await.expect(200);
    callers.push(refused("disabled admin", dee.token.clone(), 401, None));
    for (who, token, status, code) in &callers {
        for (method, path, body) in routes(org, &guard, &flag) {
            let res = app
                .call(method.clone(), &path, Some(token.as_str()), body)
                .await;
            assert_eq!(
                res.status.as_u16(),
                *status,
                "{who}: {method} {path}: {:?}",
                res.body
            );
            if let Some(code) = code {
                assert_eq!(res.code(), *code, "{who}: {method} {path}");
            }
        }
    }
    // An impersonated session reads as the owner would but changes nothing.
    for (method, path, body) in routes(org, &guard, &flag) {
        let res = app
            .call(method.clone(), &path, Some(impersonated.as_str()), body)
            .await;
        let expected = if method == Method::GET { 200 } else { 403 };
        assert_eq!(
            res.status.as_u16(),
            expected,
            "impersonated {method} {path}: {:?}",
            res.body
        );
    }
    // A bot of the org, even a participant.
    let bot = crate::bots::make_bot(app, org, owner, json!({"name": "b"})).await;
    for (method, path, body) in routes(org, &guard, &flag) {
        let res = app.as_bot(method.clone(), &path, &bot.token, body).await;
        assert_eq!(
            res.status.as_u16(),
            403,
            "bot: {method} {path}: {:?}",
            res.body
        );
    }
    // The stats are for server admins only.
    app.get("/api/v1/admin/stats", &owner.token)
        .await
        .expect(403);
    app.get("/api/v1/admin/stats", &admin.token)
        .await
        .expect(200);

    // Nothing changed: one guard, enabled; the flag open.
    let listed = app.items(&guards(org), &owner.token).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["enabled"], true);
    assert_eq!(open_flags(app, org, owner).await.len(), 1);
    // An admin's key with `org:admin` manages guards; the queue shows message text, so it also
    // needs `messages:read` to read or resolve flags (AZ-5).
    let (_, admin_only) = crate::keys::make_key(
        app,
        ann,
        json!({"name": "a", "org_id": org, "scopes": ["org:admin"]}),
    )
    .await;
    app.get(&flags(org), &admin_only)
        .await
        .expect_error(403, "insufficient_scope");
    resolve_flag(app, org, &flag, &admin_only, "dismissed")
        .await
        .expect_error(403, "insufficient_scope");
    assert_eq!(open_flags(app, org, owner).await.len(), 1);
    let (_, strong) = crate::keys::make_key(
        app,
        ann,
        json!({"name": "s", "org_id": org, "scopes": ["org:admin", "messages:read"]}),
    )
    .await;
    assert_eq!(app.items(&flags(org), &strong).await.len(), 1);
    resolve_flag(app, org, &flag, &strong, "dismissed")
        .await
        .expect(200);
    app.post(
        &guards(org),
        &admin_only,
        json!({"kind": "regex", "mode": "flag", "patterns": ["x"]}),
    )
    .await
    .expect(201);
}

async fn an_orgs_guards_never_apply_to_another(g: Guarded) {
    let app = &g.app;
    let crate::fixtures::Rivals(alice, mallory, acme, evil) = app.rivals().await;
    let acme_conv = app.group(&acme, &alice, &[], json!("private")).await;
    let evil_conv = app.group(&evil, &mallory, &[], json!("private")).await;
    let body = json!({"kind": "blocklist", "mode": "block", "terms": ["hello"]});
    let theirs = make_guard(app, &evil, &mallory, body).await;
    let body = json!({"kind": "blocklist", "mode": "flag", "terms": ["world"]});
    make_guard(app, &evil, &mallory, body).await;
    // Acme is untouched by Evil's guards.
    app.says(&acme_conv, &alice, "hello world").await;
    assert!(open_flags(app, &acme, &alice).await.is_empty());
    app.send_message(&evil_conv, &mallory, "hello")
        .await
        .expect_error(422, "content_blocked");
    app.says(&evil_conv, &mallory, "world").await;
    // Neither sees the other's guards or flags, even by id through their own org.
    assert!(app.items(&guards(&acme), &alice.token).await.is_empty());
    assert!(open_flags(app, &acme, &alice).await.is_empty());
    let their_flag = open_flags(app, &evil, &mallory).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let id = theirs["id"].as_str().unwrap();
    app.patch(
        &format!("{}/{id}", guards(&acme)),
        &alice.token,
        json!({"enabled": false}),
    )
    .await
    .expect(404);
    app.delete(&format!("{}/{id}", guards(&acme)), &alice.token)
        .await
        .expect(404);
    resolve_flag(app, &acme, &their_flag, &alice.token, "removed")
        .await
        .expect(404);
    assert_eq!(texts(app, &evil_conv, &mallory).await, vec!["world"]);
    assert_eq!(open_flags(app, &evil, &mallory).await.len(), 1);
}
