//! Widget keys: made by owners and admins (and keys with `org:admin`), the identity secret
//! shown once and masked after, origins parsed exactly, team and agent of the org only,
//! audited; everyone else refused; a revoked key refused by every widget call.

use super::*;

crate::both_backends!(
    with crate::widget::widgeted;
    keys_are_managed_by_owners_and_admins_only,
    key_fields_are_checked_and_the_secret_shown_once,
    a_revoked_key_is_refused,
    the_key_cap_holds_under_a_hundred_parallel_creations,
);

async fn keys_are_managed_by_owners_and_admins_only(h: Widgeted) {
    let app = &h.app;
    let s = site(&h, "acme", "optional", false).await;
    let path = widget_keys(&s.org);
    let item = format!("{path}/{}", s.key_id);
    // A member, a viewer and a user of another org are refused on every route.
    let viewer = app.user("acme-viewer").await;
    app.add_member(&s.org, &s.owner, &viewer, "viewer").await;
    let outsider = app.user("outsider").await;
    let other = app.org(&outsider, "other").await;
    let body = json!({"name": "x", "allowed_origins": [ORIGIN], "team_id": s.team});
    for (who, status) in [(&s.staff, 403), (&viewer, 403), (&outsider, 404)] {
        app.get(&path, &who.token)
            .await
            .check(status, None, &who.name);
        (app.post(&path, &who.token, body.clone()).await).check(status, None, &who.name);
        (app.patch(&item, &who.token, json!({"name": "y"})).await).check(status, None, &who.name);
        app.delete(&item, &who.token)
            .await
            .check(status, None, &who.name);
    }
    // Another org's owner cannot reach this key through their own org either.
    let foreign = format!("{}/{}", widget_keys(&other), s.key_id);
    app.patch(&foreign, &outsider.token, json!({"name": "y"}))
        .await
        .expect_error(404, "not_found");
    // An API key outside `org:admin`, or limited to conversations (AZ-5a), is refused.
    let read_only = crate::keys::org_key(
        app,
        &s.owner,
        &s.org,
        &["org:read", "conversations:read"],
        &[],
    )
    .await;
    app.get(&path, &read_only)
        .await
        .expect_error(403, "insufficient_scope");
    let conv = app.group(&s.org, &s.owner, &[], json!("private")).await;
    let listed =
        crate::keys::org_key(app, &s.owner, &s.org, &["org:admin"], &[conv.as_str()]).await;
    app.post(&path, &listed, body.clone())
        .await
        .expect_error(403, "insufficient_scope");
    let admin_key = crate::keys::org_key(app, &s.owner, &s.org, &["org:admin"], &[]).await;
    app.post(&path, &admin_key, body).await.expect(201);
    // An admin manages keys; the changes are audited.
    let admin = app.user("acme-admin").await;
    app.add_member(&s.org, &s.owner, &admin, "admin").await;
    app.patch(&item, &admin.token, json!({"prechat_form": true}))
        .await
        .expect(200);
    let audit = app.audit_of("widget_key.updated").await;
    assert_eq!(
        audit.items()[0]["detail"]["fields"],
        json!(["prechat_form"])
    );
    assert_eq!(app.audit_of("widget_key.created").await.items().len(), 2);
}

async fn key_fields_are_checked_and_the_secret_shown_once(h: Widgeted) {
    let app = &h.app;
    let s = site(&h, "acme", "required", true).await;
    assert!(s.key.starts_with("cnv_w_"));
    assert_eq!(s.identity_secret.len(), 64);
    let path = widget_keys(&s.org);
    let listed = app.items(&path, &s.owner.token).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0]["key"],
        s.key.as_str(),
        "the publishable key is listed"
    );
    assert_eq!(listed[0]["identity_secret"], "****");
    assert_eq!(listed[0]["allowed_origins"], json!([ORIGIN]));
    assert_eq!(listed[0]["identity"], "required");
    assert!(!listed
        .iter()
        .any(|k| k.to_string().contains(&s.identity_secret)));
    // The key's bots are not ordinary bots: not listed, no token to rotate.
    assert!(app
        .items(&org_path(&s.org, "/bots"), &s.owner.token)
        .await
        .is_empty());
    let base = json!({"name": "k", "allowed_origins": [ORIGIN], "team_id": s.team});
    let with = |field: &str, value: Value| {
        let mut b = base.clone();
        b[field] = value;
        b
    };
    let other_owner = app.user("other-owner").await;
    let other = app.org(&other_owner, "other").await;
    let foreign_team = app.create_team(&other, &other_owner, "Theirs").await;
    for (body, field) in [
        (with("allowed_origins", json!(["*"])), "/allowed_origins/0"),
        (
            with("allowed_origins", json!(["https://a.example/path"])),
            "/allowed_origins/0",
        ),
        (
            with("allowed_origins", json!(["shop.example"])),
            "/allowed_origins/0",
        ),
        (with("allowed_origins", json!([])), "/allowed_origins"),
        (with("identity", json!("sometimes")), "/identity"),
        (with("name", json!("")), "/name"),
    ] {
        let res = app.post(&path, &s.owner.token, body.clone()).await;
        assert_eq!(res.status.as_u16(), 422, "{body}: {}", res.body);
        assert_eq!(res.field(), Some(field), "{body}");
    }
    // A team or agent that is not the org's is not found.
    for body in [
        with("team_id", json!(foreign_team)),
        with("agent_id", json!(uuid::Uuid::now_v7())),
    ] {
        app.post(&path, &s.owner.token, body)
            .await
            .expect_error(404, "not_found");
    }
    // Exact origins are kept normalised; an update replaces them.
    let item = format!("{path}/{}", s.key_id);
    let res = app
        .patch(
            &item,
            &s.owner.token,
            json!({"allowed_origins": ["HTTPS://Shop.Example:443/", "http://127.0.0.1:8080"]}),
        )
        .await
        .expect(200);
    assert_eq!(
        res.body["allowed_origins"],
        json!(["http://127.0.0.1:8080", ORIGIN])
    );
    assert_eq!(res.body["identity_secret"], "****");
}

async fn a_revoked_key_is_refused(h: Widgeted) {
    let app = &h.app;
    let s = site(&h, "acme", "optional", false).await;
    let session = app.visit(&s.key, json!({})).await;
    app.visitor_says(&s.key, &session, "hello").await;
    app.delete(
        &format!("{}/{}", widget_keys(&s.org), s.key_id),
        &s.owner.token,
    )
    .await
    .expect(204);
    let res = app
        .visitor_reads(&s.key, &session)
        .await
        .expect_error(403, "widget_key_invalid");
    assert!(res.headers.get("access-control-allow-origin").is_none());
    app.start_session(&s.key, json!({}))
        .await
        .expect_error(403, "widget_key_invalid");
    assert!(app
        .items(&widget_keys(&s.org), &s.owner.token)
        .await
        .is_empty());
    // The conversation stays with the team.
    let inbox = app.items(&org_path(&s.org, "/inbox"), &s.staff.token).await;
    assert_eq!(inbox.len(), 1);
    assert_eq!(app.audit_of("widget_key.revoked").await.items().len(), 1);
}

/// An org holds at most 50 live keys however many creations race (the count is taken under
/// the org's lock in the creating transaction); a revoked key frees its place.
async fn the_key_cap_holds_under_a_hundred_parallel_creations(h: Widgeted) {
    let app = &h.app;
    let s = site(&h, "acme", "optional", false).await;
    let path = widget_keys(&s.org);
    let creations = (0..100).map(|i| {
        let body =
            json!({"name": format!("site {i}"), "allowed_origins": [ORIGIN], "team_id": s.team});
        app.post(&path, &s.owner.token, body)
    });
    let answers = futures::future::join_all(creations).await;
    let made = answers.iter().filter(|r| r.status == 201).count();
    for refused in answers.iter().filter(|r| r.status != 201) {
        assert_eq!(refused.status, 409, "{}", refused.body);
        assert_eq!(refused.code(), "too_many_widget_keys");
    }
    // The site's own key was the first of the 50.
    assert_eq!(made, 49);
    let listed = app.get(&path, &s.owner.token).await.expect(200);
    assert_eq!(listed.items().len(), 50);
    let body = json!({"name": "one more", "allowed_origins": [ORIGIN], "team_id": s.team});
    app.post(&path, &s.owner.token, body.clone())
        .await
        .expect_error(409, "too_many_widget_keys");
    app.delete(&format!("{path}/{}", s.key_id), &s.owner.token)
        .await
        .expect(204);
    app.post(&path, &s.owner.token, body).await.expect(201);
}
