//! The OpenAPI document: every route listed, every response and error answer matching its
//! schema, every error the middleware and extractors can answer declared, integers as JSON has them.

use super::*;
use crate::helpers::org_path;

/// Every route of the REST contract that this server implements.
const ROUTES: &[(&str, &str)] = &[
    ("post", "/api/v1/auth/register"),
    ("get", "/api/v1/admin/audit"),
    ("get", "/api/v1/users/@me/export"),
    ("delete", "/api/v1/users/@me"),
    ("post", "/api/v1/admin/users/{id}/impersonate"),
    ("post", "/api/v1/admin/users/{id}/password-reset"),
    ("get", "/api/v1/admin/audit/verify"),
    ("get", "/api/v1/orgs/{org}/audit"),
    ("get", "/api/v1/users/@me/security-events"),
    ("get", "/api/v1/users/@me/invites"),
    ("get", "/api/v1/orgs/{org}/invites"),
    ("delete", "/api/v1/orgs/{org}/invites/{id}"),
    ("post", "/api/v1/orgs/invites/{id}/accept"),
    ("post", "/api/v1/admin/orgs/{org}/members"),
    ("post", "/api/v1/auth/login"),
    ("post", "/api/v1/auth/login/mfa"),
    ("post", "/api/v1/auth/jwt"),
    ("get", "/api/v1/auth/oidc/{provider}/start"),
    ("post", "/api/v1/auth/oidc/{provider}/start"),
    ("get", "/api/v1/auth/oidc/{provider}/callback"),
    ("get", "/api/v1/admin/sso"),
    ("get", "/api/v1/admin/users/{id}/identities"),
    ("post", "/api/v1/auth/totp/setup"),
    ("post", "/api/v1/auth/totp/enable"),
    ("post", "/api/v1/auth/totp/disable"),
    ("post", "/api/v1/auth/recovery-codes"),
    ("post", "/api/v1/auth/bootstrap"),
    ("post", "/api/v1/auth/password-reset"),
    ("post", "/api/v1/auth/logout"),
    ("get", "/api/v1/auth/session"),
    ("get", "/api/v1/auth/sessions"),
    ("delete", "/api/v1/auth/sessions/{id}"),
    ("post", "/api/v1/auth/sessions/revoke-others"),
    ("post", "/api/v1/auth/password"),
    ("get", "/api/v1/users/@me"),
    ("patch", "/api/v1/users/@me"),
    ("get", "/api/v1/users/{id}"),
    ("post", "/api/v1/orgs"),
    ("get", "/api/v1/orgs"),
    ("get", "/api/v1/orgs/{org}"),
    ("patch", "/api/v1/orgs/{org}"),
    ("delete", "/api/v1/orgs/{org}"),
    ("post", "/api/v1/orgs/{org}/transfer"),
    ("post", "/api/v1/orgs/{org}/invites"),
    ("post", "/api/v1/orgs/join"),
    ("get", "/api/v1/orgs/{org}/members"),
    ("post", "/api/v1/orgs/{org}/members"),
    ("patch", "/api/v1/orgs/{org}/members/{user}"),
    ("delete", "/api/v1/orgs/{org}/members/{user}"),
    ("get", "/api/v1/orgs/{org}/teams"),
    ("post", "/api/v1/orgs/{org}/teams"),
    ("post", "/api/v1/orgs/{org}/teams/{team}/members/{user}"),
    ("delete", "/api/v1/orgs/{org}/teams/{team}/members/{user}"),
    ("get", "/api/v1/orgs/{org}/permissions/matrix"),
    ("get", "/api/v1/orgs/{org}/bots"),
    ("post", "/api/v1/orgs/{org}/bots"),
    ("post", "/api/v1/orgs/{org}/bots/{bot}/token"),
    ("get", "/api/v1/orgs/{org}/webhooks"),
    ("post", "/api/v1/orgs/{org}/webhooks"),
    ("patch", "/api/v1/orgs/{org}/webhooks/{id}"),
    ("delete", "/api/v1/orgs/{org}/webhooks/{id}"),
    ("post", "/api/v1/orgs/{org}/webhooks/{id}/secret"),
    ("post", "/api/v1/orgs/{org}/webhooks/{id}/test"),
    ("get", "/api/v1/orgs/{org}/webhooks/{id}/deliveries"),
    (
        "post",
        "/api/v1/orgs/{org}/webhooks/{id}/deliveries/{delivery}/redeliver",
    ),
    ("get", "/api/v1/orgs/{org}/widget-keys"),
    ("post", "/api/v1/orgs/{org}/widget-keys"),
    ("patch", "/api/v1/orgs/{org}/widget-keys/{id}"),
    ("delete", "/api/v1/orgs/{org}/widget-keys/{id}"),
    ("get", "/api/v1/orgs/{org}/inbox"),
    ("get", "/api/v1/admin/conversations"),
    ("post", "/api/v1/widget/sessions"),
    ("post", "/api/v1/widget/chat"),
    ("get", "/api/v1/widget/chat"),
    ("post", "/api/v1/widget/handoff"),
    ("get", "/api/v1/widget/chat/stream"),
    ("get", "/api/v1/orgs/{org}/agents"),
    ("post", "/api/v1/orgs/{org}/agents"),
    ("get", "/api/v1/orgs/{org}/agents/{id}"),
    ("patch", "/api/v1/orgs/{org}/agents/{id}"),
    ("delete", "/api/v1/orgs/{org}/agents/{id}"),
    ("get", "/api/v1/orgs/{org}/agents/{id}/usage"),
    ("get", "/api/v1/orgs/{org}/agent-budget"),
    ("put", "/api/v1/orgs/{org}/agent-budget"),
    ("get", "/api/v1/orgs/{org}/guards"),
    ("post", "/api/v1/orgs/{org}/guards"),
    ("patch", "/api/v1/orgs/{org}/guards/{id}"),
    ("delete", "/api/v1/orgs/{org}/guards/{id}"),
    ("get", "/api/v1/orgs/{org}/flags"),
    ("post", "/api/v1/orgs/{org}/flags/{id}/resolve"),
    ("get", "/api/v1/admin/stats"),
    ("post", "/api/v1/api-keys"),
    ("get", "/api/v1/api-keys"),
    ("delete", "/api/v1/api-keys/{id}"),
    ("post", "/api/v1/api-keys/{id}/rotate"),
    ("get", "/api/v1/oauth/requests/{id}"),
    ("post", "/api/v1/oauth/requests/{id}"),
    ("get", "/api/v1/users/@me/grants"),
    ("delete", "/api/v1/users/@me/grants/{id}"),
    ("get", "/api/v1/orgs/{org}/oauth-clients"),
    ("post", "/api/v1/orgs/{org}/oauth-clients"),
    ("delete", "/api/v1/orgs/{org}/oauth-clients/{id}"),
    ("get", "/api/v1/orgs/{org}/grants"),
    ("delete", "/api/v1/orgs/{org}/grants/{id}"),
    ("post", "/api/v1/orgs/{org}/conversations"),
    ("get", "/api/v1/conversations"),
    ("get", "/api/v1/conversations/available"),
    ("get", "/api/v1/conversations/{c}"),
    ("patch", "/api/v1/conversations/{c}"),
    ("delete", "/api/v1/conversations/{c}"),
    ("post", "/api/v1/conversations/{c}/join"),
    ("post", "/api/v1/conversations/{c}/leave"),
    ("get", "/api/v1/conversations/{c}/participants"),
    ("post", "/api/v1/conversations/{c}/participants"),
    ("delete", "/api/v1/conversations/{c}/participants/{user}"),
    ("post", "/api/v1/conversations/{c}/messages"),
    ("get", "/api/v1/conversations/{c}/messages"),
    ("patch", "/api/v1/messages/{m}"),
    ("delete", "/api/v1/messages/{m}"),
    ("get", "/api/v1/messages/{m}/history"),
    ("post", "/api/v1/messages/{m}/stop"),
    ("post", "/api/v1/files"),
    ("get", "/api/v1/files/{id}/url"),
    ("post", "/api/v1/conversations/{c}/typing"),
    ("put", "/api/v1/conversations/{c}/read-marker"),
    ("get", "/api/v1/conversations/{c}/search"),
    ("get", "/api/v1/orgs/{org}/search"),
    ("get", "/api/v1/admin/users"),
    ("post", "/api/v1/admin/users"),
    ("patch", "/api/v1/admin/users/{id}"),
    ("get", "/api/v1/capabilities"),
    ("get", "/api/v1/openapi.json"),
    ("get", "/health"),
    ("get", "/health/ready"),
];

pub(super) async fn openapi_lists_every_route(app: TestApp) {
    let doc = app.get_anon("/api/v1/openapi.json").await.expect(200).body;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc["paths"].as_object().unwrap();
    let mut listed = 0;
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            listed += 1;
            assert!(
                ROUTES.contains(&(method.as_str(), path.as_str())),
                "documented but not expected: {method} {path}"
            );
            assert!(
                op.get("x-scope").is_some(),
                "{method} {path} carries x-scope"
            );
        }
    }
    for (method, path) in ROUTES {
        assert!(
            paths.get(*path).and_then(|p| p.get(*method)).is_some(),
            "undocumented route: {method} {path}"
        );
        // And the route really exists: an unauthenticated call is never answered "no such route".
        let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let concrete = fill_placeholders(path);
        let r = app.call(m, &concrete, None, None).await;
        let fallback = r.body["error"]["message"] == "no such route" || r.status.as_u16() == 405;
        assert!(!fallback, "{method} {path} is routed: {}", r.body);
    }
    assert_eq!(listed, ROUTES.len());
    assert_eq!(
        doc["paths"]["/api/v1/conversations/{c}/messages"]["post"]["x-scope"],
        "messages:write"
    );
    // Marking read is reading (MCP's `mark_read` asks the same); what only a person's own
    // login session does names no scope, so no key or bot is sent to it (CORE-11, AZ-7).
    assert_eq!(
        doc["paths"]["/api/v1/conversations/{c}/read-marker"]["put"]["x-scope"],
        "messages:read"
    );
    for (method, path) in [
        ("post", "/api/v1/orgs"),
        ("post", "/api/v1/orgs/join"),
        ("post", "/api/v1/orgs/invites/{id}/accept"),
        ("get", "/api/v1/users/@me/invites"),
        ("patch", "/api/v1/users/@me"),
        ("get", "/api/v1/users/@me/security-events"),
        ("get", "/api/v1/users/@me/export"),
        ("delete", "/api/v1/users/@me"),
    ] {
        let op = &doc["paths"][path][method];
        assert_eq!(op["x-scope"], Value::Null, "{method} {path}");
        let schemes: Vec<&str> = op["security"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s.as_object().unwrap().keys().map(String::as_str))
            .collect();
        assert!(!schemes.contains(&"bot"), "{method} {path}: {schemes:?}");
    }
    assert_eq!(doc["paths"]["/api/v1/orgs"]["get"]["x-scope"], "org:read");
    assert_eq!(
        doc["paths"]["/api/v1/users/@me"]["get"]["x-scope"],
        "org:read"
    );
}

/// Replaces `{param}` segments with fresh ids.
fn fill_placeholders(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            if seg.starts_with('{') {
                uuid::Uuid::now_v7().to_string()
            } else {
                seg.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Validates `instance` against the response schema documented for `method path status`.
pub(crate) fn check(doc: &Value, method: &str, path: &str, status: u16, instance: &Value) {
    let schema = &doc["paths"][path][method]["responses"][status.to_string()]["content"]
        ["application/json"]["schema"];
    assert!(
        !schema.is_null(),
        "no schema documented for {method} {path} {status}"
    );
    let mut root = schema.clone();
    root["components"] = doc["components"].clone();
    let validator = jsonschema::validator_for(&root).expect("a valid schema");
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {path} {status} does not match its schema: {errors:?}\n{instance}"
    );
}

/// Checks a response against the schema documented for `method path` and its own status.
fn check_res(doc: &Value, method: &str, path: &str, res: &Res) {
    check(doc, method, path, res.status.as_u16(), &res.body);
}

pub(super) async fn responses_match_the_openapi_schemas(app: TestApp) {
    let doc = openapi(&app).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let org_res = app.create_org(&alice, "Acme").await.expect(201);
    check_res(&doc, "post", "/api/v1/orgs", &org_res);
    let org = org_res.id();
    let m = app.admin_add_member(&org, &bob, "member").await.expect(201);
    check_res(&doc, "post", "/api/v1/admin/orgs/{org}/members", &m);
    let body = json!({"kind": "group", "name": "g", "participant_ids": [bob.id]});
    let conv = app
        .post(&org_path(&org, "/conversations"), &alice.token, body)
        .await
        .expect(201);
    check_res(&doc, "post", "/api/v1/orgs/{org}/conversations", &conv);
    let c = conv.id();
    let msg = app.says(&c, &alice, "hello").await;
    check_res(&doc, "post", "/api/v1/conversations/{c}/messages", &msg);
    let messages = format!("/api/v1/conversations/{c}/messages");
    let list = app.get(&messages, &bob.token).await.expect(200);
    check_res(&doc, "get", "/api/v1/conversations/{c}/messages", &list);
    app.delete(&format!("/api/v1/messages/{}", msg.id()), &alice.token)
        .await
        .expect(204);
    // Each read (documented path, path, reader) after the message was deleted.
    let reads = [
        ("/api/v1/conversations/{c}/messages", messages, &bob),
        ("/api/v1/users/@me", "/api/v1/users/@me".to_owned(), &alice),
        (
            "/api/v1/auth/sessions",
            "/api/v1/auth/sessions".to_owned(),
            &alice,
        ),
        (
            "/api/v1/orgs/{org}/permissions/matrix",
            format!("/api/v1/orgs/{org}/permissions/matrix"),
            &bob,
        ),
        (
            "/api/v1/conversations/{c}/participants",
            format!("/api/v1/conversations/{c}/participants"),
            &bob,
        ),
    ];
    for (documented, path, reader) in reads {
        let res = app.get(&path, &reader.token).await.expect(200);
        check_res(&doc, "get", documented, &res);
    }
    let login = app.login("bob", PASSWORD).await.expect(200);
    check_res(&doc, "post", "/api/v1/auth/login", &login);
    check(
        &doc,
        "get",
        "/api/v1/capabilities",
        200,
        &app.get_anon("/api/v1/capabilities").await.body,
    );
    let err = app.get(&org_path(&org, ""), "bad").await.expect(401);
    check_res(&doc, "get", "/api/v1/orgs/{org}", &err);
    let invites = format!("/api/v1/orgs/{org}/invites");
    let inv = app
        .post(&invites, &alice.token, json!({}))
        .await
        .expect(201);
    check_res(&doc, "post", "/api/v1/orgs/{org}/invites", &inv);
}

/// The served OpenAPI document.
pub(crate) async fn openapi(app: &TestApp) -> Value {
    app.get_anon("/api/v1/openapi.json").await.expect(200).body
}

/// CORE-4, CORE-11: every operation declares the errors the middleware and extractors can
/// answer — a malformed or too old `X-Client-Version` (400, 426), the rate limit (429), the
/// credential and the access-token gate (401, 403), an id in the path (400, 404), the query
/// (400, 422), a JSON body (408, 400, 413, 415, 422) — each with the error shape; a body that
/// requires no member is optional (an empty body reads as `{}`).
pub(super) async fn openapi_declares_every_error(app: TestApp) {
    let doc = openapi(&app).await;
    let paths = doc["paths"].as_object().unwrap();
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let mut expected = vec!["400", "426"];
            if !matches!(
                path.as_str(),
                "/health" | "/health/ready" | "/api/v1/openapi.json"
            ) {
                expected.push("429");
            }
            if op["security"].is_array() {
                expected.extend(["401", "403"]);
            }
            if path.starts_with("/api/")
                && !matches!(
                    path.as_str(),
                    "/api/v1/capabilities" | "/api/v1/openapi.json"
                )
            {
                expected.push("401");
            }
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            if params.iter().any(|p| p["in"] == "path") {
                expected.push("404");
            }
            if params.iter().any(|p| p["in"] == "query") {
                expected.push("422");
            }
            let body = &op["requestBody"];
            if !body.is_null() {
                expected.extend(["408", "413", "415", "422"]);
                let mut schema = body["content"]["application/json"]["schema"].clone();
                if let Some(name) = schema["$ref"].as_str() {
                    let name = name.trim_start_matches("#/components/schemas/");
                    schema = doc["components"]["schemas"][name].clone();
                }
                let requires = schema["required"].as_array().is_some_and(|r| !r.is_empty());
                assert_eq!(
                    body["required"], requires,
                    "{method} {path}: the body is required exactly when a member is"
                );
            }
            let responses = op["responses"].as_object().unwrap();
            for status in expected {
                assert!(
                    responses.contains_key(status),
                    "{method} {path} does not declare {status}"
                );
            }
            for (status, response) in responses {
                if status.as_str() < "400" {
                    continue;
                }
                assert_eq!(
                    response["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{method} {path} {status} has the error shape"
                );
                assert!(
                    response["description"]
                        .as_str()
                        .is_some_and(|d| !d.is_empty()),
                    "{method} {path} {status} is described"
                );
            }
        }
    }
    for (method, path, required) in [
        ("post", "/api/v1/orgs/{org}/invites", false),
        ("patch", "/api/v1/users/@me", false),
        ("patch", "/api/v1/orgs/{org}", false),
        ("post", "/api/v1/orgs", true),
    ] {
        assert_eq!(
            doc["paths"][path][method]["requestBody"]["required"], required,
            "{method} {path}"
        );
    }
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
}

/// The error answers of the middleware and extractors, each checked against the schema the
/// document declares for its operation and status.
pub(super) async fn error_answers_match_the_openapi_schemas(app: TestApp) {
    let doc = openapi(&app).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let org = app.org(&alice, "Acme").await;
    app.add_member(&org, &alice, &bob, "member").await;
    let post_orgs = |body: reqwest::Body, content_type: &'static str| {
        app.client
            .post(app.url("/api/v1/orgs"))
            .bearer_auth(&alice.token)
            .header("content-type", content_type)
            .body(body)
    };
    // The answer is the documented error of `method path`.
    let documented = |method: &str, path: &str, res: Res, status: u16, code: &str| {
        let res = res.expect_error(status, code);
        check(&doc, method, path, status, &res.body);
    };
    let orgs = "/api/v1/orgs";
    let res = app.send(post_orgs("{".into(), "application/json")).await;
    documented("post", orgs, res, 400, "malformed_json");
    let res = app
        .send(post_orgs(r#"{"name":"x"}"#.into(), "text/plain"))
        .await;
    documented("post", orgs, res, 415, "unsupported_media_type");
    let huge = vec![b' '; 3 * 1024 * 1024];
    let res = app.send(post_orgs(huge.into(), "application/json")).await;
    documented("post", orgs, res, 413, "payload_too_large");
    let res = app
        .post(orgs, &alice.token, json!({"name": "x", "owner": 1}))
        .await;
    documented("post", orgs, res, 422, "unknown_field");
    let res = app.get("/api/v1/orgs/not-an-id", &alice.token).await;
    documented("get", "/api/v1/orgs/{org}", res, 400, "invalid_id");
    let nowhere = format!("/api/v1/conversations/{}", uuid::Uuid::now_v7());
    let res = app.get(&nowhere, &alice.token).await;
    documented("get", "/api/v1/conversations/{c}", res, 404, "not_found");
    let res = app
        .patch(
            &format!("{orgs}/{org}"),
            &bob.token,
            json!({"name": "Mine"}),
        )
        .await;
    documented("patch", "/api/v1/orgs/{org}", res, 403, "forbidden");
    let res = app.get("/api/v1/conversations?limit=0", &alice.token).await;
    documented("get", "/api/v1/conversations", res, 422, "out_of_range");
    let res = app
        .get("/api/v1/conversations?limit=many", &alice.token)
        .await;
    documented("get", "/api/v1/conversations", res, 400, "invalid_query");
    let res = app.get_anon("/api/v1/users/@me").await;
    documented("get", "/api/v1/users/@me", res, 401, "unauthenticated");
    let version = |app: &TestApp, path: &str, v: &str| {
        app.client
            .get(app.url(path))
            .header("x-client-version", v.to_owned())
    };
    let res = app.send(version(&app, "/health", "nonsense")).await;
    documented("get", "/health", res, 400, "invalid_client_version");
    let gated = spawn_app_with(app.backend, |c| c.min_client_version = Some("2.0.0".into()))
        .await
        .unwrap();
    let res = gated
        .send(version(&gated, "/api/v1/capabilities", "web/1.0.0"))
        .await;
    documented("get", "/api/v1/capabilities", res, 426, "client_too_old");
}

/// JSON (and JSON Schema's `integer`) does not tell `3.0` from `3`: an integer member takes a
/// whole number however it is written, and still refuses a fraction, naming the member.
pub(super) async fn whole_numbers_are_integers(app: TestApp) {
    let alice = app.user("alice").await;
    let org = app.org(&alice, "Acme").await;
    let invites = format!("/api/v1/orgs/{org}/invites");
    for (written, read) in [(json!(3.0), 3), (json!(2e1), 20), (json!(7), 7)] {
        let inv = app
            .post(&invites, &alice.token, json!({"max_uses": written}))
            .await
            .expect(201);
        assert_eq!(inv.body["max_uses"], read, "{written}");
    }
    let refused = app
        .post(&invites, &alice.token, json!({"max_uses": 2.5}))
        .await
        .expect_error(422, "invalid_value");
    assert_eq!(refused.field(), Some("/max_uses"));
    app.post(
        &invites,
        &alice.token,
        json!({"max_uses": 1.0, "rol": "admin"}),
    )
    .await
    .expect_error(422, "unknown_field");
    // A body is an object, never the members in order (serde would read `["Acme"]` as
    // `{"name":"Acme"}`).
    for (path, body) in [
        ("/api/v1/orgs", json!(["Acme"])),
        (invites.as_str(), json!([null, 3])),
        (invites.as_str(), json!(null)),
        (invites.as_str(), json!(3)),
    ] {
        app.post(path, &alice.token, body)
            .await
            .expect_error(422, "invalid_value");
    }
}
