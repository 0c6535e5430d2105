//! CORE-4, CORE-5, CORE-6: each class of bad input on each route family gets its documented
//! status and a JSON error naming the field, and writes nothing.

use crate::both_backends;
use crate::cases::Caller;
use crate::helpers::*;
use reqwest::Method;
use serde_json::json;

both_backends!(
    malformed_bodies_on_every_family,
    bad_ids_and_paths,
    oversize_bodies
);

async fn malformed_bodies_on_every_family(app: TestApp) {
    let (alice, org, conv) = app.alice_private().await;
    let msg = app.says(&conv, &alice, "hi").await.id();
    let routes = [
        (Method::POST, "/api/v1/orgs".to_owned()),
        (Method::PATCH, format!("/api/v1/orgs/{org}")),
        (Method::POST, format!("/api/v1/orgs/{org}/members")),
        (Method::POST, format!("/api/v1/orgs/{org}/teams")),
        (Method::POST, format!("/api/v1/orgs/{org}/invites")),
        (Method::POST, format!("/api/v1/orgs/{org}/conversations")),
        (Method::PATCH, format!("/api/v1/conversations/{conv}")),
        (
            Method::POST,
            format!("/api/v1/conversations/{conv}/participants"),
        ),
        (
            Method::POST,
            format!("/api/v1/conversations/{conv}/messages"),
        ),
        (Method::PATCH, format!("/api/v1/messages/{msg}")),
        (Method::PATCH, "/api/v1/users/@me".to_owned()),
        (Method::POST, "/api/v1/auth/password".to_owned()),
        (Method::POST, "/api/v1/auth/login".to_owned()),
        (Method::POST, "/api/v1/auth/register".to_owned()),
    ];
    for (method, path) in &routes {
        // Seven writes a route: the client paces itself so the per-user write limit refills.
        app.clock.advance(chrono::Duration::minutes(1));
        let raw = |ct: &str, body: &'static [u8]| {
            app.client
                .request(method.clone(), app.url(path))
                .bearer_auth(&alice.token)
                .header("content-type", ct)
                .body(body)
        };
        let refused: [(&str, &'static [u8], u16, &str); 5] = [
            ("application/json", b"{\"name\": ", 400, "malformed_json"),
            (
                "application/json",
                b"{\"a\":1} trailing",
                400,
                "malformed_json",
            ),
            ("application/json", b"\xff\xfe{}", 400, "malformed_json"),
            (
                "text/plain",
                b"{\"name\":\"x\"}",
                415,
                "unsupported_media_type",
            ),
            (
                "application/x-www-form-urlencoded",
                b"name=x",
                415,
                "unsupported_media_type",
            ),
        ];
        for (ct, body, status, code) in refused {
            app.send(raw(ct, body)).await.expect_error(status, code);
        }
        let unknown = app
            .send(raw("application/json", b"{\"definitely_not_a_field\": 1}"))
            .await;
        assert_eq!(
            unknown.status.as_u16(),
            422,
            "{method} {path}: {}",
            unknown.body
        );
        assert!(
            unknown.field().is_some(),
            "{method} {path} names the field: {}",
            unknown.body
        );
        let not_object = app.send(raw("application/json", b"[1,2,3]")).await;
        assert_eq!(
            not_object.status.as_u16(),
            422,
            "{method} {path}: {}",
            not_object.body
        );
    }
    // Nothing was written by any of it.
    assert_eq!(app.message_count(&conv, &alice).await, 1);
    let orgs = app.get("/api/v1/orgs", &alice.token).await.expect(200);
    assert_eq!(orgs.items().len(), 1);
    assert_eq!(orgs.body["items"][0]["name"], "Acme");
    // An unknown field names itself as a JSON pointer.
    let u = app
        .post(
            "/api/v1/orgs",
            &alice.token,
            json!({"name": "x", "colour": "red"}),
        )
        .await
        .expect_error(422, "unknown_field");
    assert_eq!(u.field(), Some("/colour"));
    let t = app
        .post("/api/v1/orgs", &alice.token, json!({"name": 42}))
        .await
        .expect_error(422, "invalid_value");
    assert_eq!(t.field(), Some("/name"));
    // An empty body needs no content type; it is an empty object.
    let e = app
        .send(
            app.client
                .post(app.url("/api/v1/orgs"))
                .bearer_auth(&alice.token),
        )
        .await
        .expect_error(422, "missing_field");
    assert_eq!(e.field(), Some("/name"));
}

async fn bad_ids_and_paths(app: TestApp) {
    let alice = app.user("alice").await;
    for path in [
        "/api/v1/orgs/123",
        "/api/v1/orgs/not-a-uuid/members",
        "/api/v1/conversations/zzz",
        "/api/v1/conversations/zzz/messages",
        "/api/v1/messages/1/history",
        "/api/v1/users/nope",
    ] {
        let r = app
            .get(path, &alice.token)
            .await
            .expect_error(400, "invalid_id");
        assert!(r.field().is_some(), "{path}: the parameter is named");
    }
    // Invalid UTF-8 in a path segment.
    let r = app.get("/api/v1/conversations/%FF%FE", &alice.token).await;
    assert_eq!(r.status.as_u16(), 400, "{}", r.body);
    assert!(r.body["error"]["code"].is_string());
    // Well-formed ids that do not exist: 404.
    let id = uuid::Uuid::now_v7();
    app.expect_all([
        alice
            .get(&conv_path(&id.to_string(), ""))
            .err(404, "not_found"),
        alice
            .delete(&format!("/api/v1/messages/{id}"))
            .err(404, "not_found"),
        // Unknown routes and methods answer JSON too.
        alice.get("/api/v1/nothing-here").err(404, "not_found"),
    ])
    .await;
    app.call(Method::PUT, "/api/v1/orgs", Some(&alice.token), None)
        .await
        .expect_error(405, "method_not_allowed");
}

async fn oversize_bodies(app: TestApp) {
    let (alice, _, conv) = app.alice_private().await;
    let big = format!("{{\"content\": \"{}\"}}", "a".repeat(3 * 1024 * 1024));
    let r = app
        .send(
            app.client
                .post(app.url(&conv_path(&conv, "/messages")))
                .bearer_auth(&alice.token)
                .header("content-type", "application/json")
                .body(big),
        )
        .await;
    r.expect_error(413, "payload_too_large");
    assert_eq!(app.message_count(&conv, &alice).await, 0);
}
