//! CORE-4, CORE-7, CORE-8, CORE-9, CORE-11, WEB-1, WEB-2: health, capabilities, headers on
//! every response, request ids, CORS, client versions, and the OpenAPI document.

use crate::both_backends;
use crate::helpers::*;
use reqwest::Method;
use serde_json::{json, Value};

both_backends!(
    health_and_capabilities,
    headers_on_every_response,
    cors_allowlist,
    client_version_gate,
    openapi_lists_every_route,
    responses_match_the_openapi_schemas,
    openapi_declares_every_error,
    error_answers_match_the_openapi_schemas,
    whole_numbers_are_integers,
    web_client_is_served,
);

async fn health_and_capabilities(app: TestApp) {
    let h = app.get_anon("/health").await.expect(200);
    assert_eq!(h.body["status"], "ok");
    let r = app.get_anon("/health/ready").await.expect(200);
    assert_eq!(r.body["status"], "ready");
    let c = app.get_anon("/api/v1/capabilities").await.expect(200);
    assert_eq!(c.body["api_version"], "v1");
    assert_eq!(c.body["gateway"]["protocol_versions"], json!([1]));
    assert!(c.body["gateway"]["url"]
        .as_str()
        .unwrap()
        .starts_with("ws://127.0.0.1:"));
    assert_eq!(c.body["limits"]["message_max_chars"], 4000);
    assert_eq!(c.body["auth"]["registration"], "open");
    assert_eq!(c.body["auth"]["access_token_gate"], false);
    assert!(c.body["server_version"].is_string());
    // What is served is reported as such (CORE-8).
    for feature in ["gateway", "two_factor", "api_keys", "bots", "audit_log"] {
        assert_eq!(c.body["features"][feature], true, "{feature}");
    }
}

async fn headers_on_every_response(app: TestApp) {
    let alice = app.user("alice").await;
    let ok = app.get("/api/v1/users/@me", &alice.token).await.expect(200);
    let err = app.get_anon("/api/v1/users/@me").await.expect(401);
    let missing = app.get_anon("/no/such/page").await.expect(404);
    let malformed = app
        .send(
            app.client
                .post(app.url("/api/v1/orgs"))
                .bearer_auth(&alice.token)
                .header("content-type", "application/json")
                .body("{"),
        )
        .await;
    for res in [&ok, &err, &missing, &malformed] {
        let h = &res.headers;
        assert!(h
            .get("content-security-policy")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("script-src 'self'"));
        assert_eq!(h.get("x-content-type-options").unwrap(), "nosniff");
        assert_eq!(h.get("x-frame-options").unwrap(), "DENY");
        assert_eq!(h.get("referrer-policy").unwrap(), "no-referrer");
        assert!(h.get("permissions-policy").is_some());
        assert!(h.get("server").is_none() && h.get("x-powered-by").is_none());
        assert!(h.get("x-request-id").is_some());
        assert!(
            h.get("strict-transport-security").is_none(),
            "no HSTS on plain HTTP"
        );
    }
    assert_eq!(ok.headers.get("cache-control").unwrap(), "no-store");
    // The error body carries the same request id as the header.
    assert_eq!(
        err.body["error"]["request_id"].as_str().unwrap(),
        err.headers.get("x-request-id").unwrap().to_str().unwrap()
    );
    // A client id is kept only when plain; otherwise a fresh one is made.
    let kept = app
        .send(
            app.client
                .get(app.url("/health"))
                .header("x-request-id", "client-123.abc"),
        )
        .await;
    assert_eq!(kept.headers.get("x-request-id").unwrap(), "client-123.abc");
    let replaced = app
        .send(
            app.client
                .get(app.url("/health"))
                .header("x-request-id", "bad id with spaces"),
        )
        .await;
    assert_ne!(
        replaced.headers.get("x-request-id").unwrap(),
        "bad id with spaces"
    );
    // Errors never leak internals.
    for res in [&err, &missing, &malformed] {
        let text = res.body.to_string().to_lowercase();
        for leak in ["sqlx", "sqlite", "postgres", "panicked", "/work/", "src/"] {
            assert!(!text.contains(leak), "error body leaks {leak}: {text}");
        }
    }
    // HSTS and Secure cookies when the public URL is https.
    let https = spawn_app_with(app.backend, |c| {
        c.public_url = Some("https://chat.example".into())
    })
    .await
    .unwrap();
    let r = https.get_anon("/health").await;
    assert!(r.headers.get("strict-transport-security").is_some());
    let _ = https.user("hank").await;
    let login = https.cookie_login("hank").await;
    assert!(login
        .headers
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .contains("Secure"));
}

async fn cors_allowlist(app: TestApp) {
    let preflight = |origin: &str| {
        app.client
            .request(Method::OPTIONS, app.url("/api/v1/orgs"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type,x-csrf-token",
            )
    };
    let ok = app.send(preflight("https://allowed.example")).await;
    assert_eq!(
        ok.headers.get("access-control-allow-origin").unwrap(),
        "https://allowed.example"
    );
    assert_eq!(
        ok.headers.get("access-control-allow-credentials").unwrap(),
        "true"
    );
    let bad = app.send(preflight("https://evil.example")).await;
    assert!(bad.headers.get("access-control-allow-origin").is_none());
    let simple = app
        .send(
            app.client
                .get(app.url("/api/v1/capabilities"))
                .header("origin", "https://evil.example"),
        )
        .await;
    assert!(simple.headers.get("access-control-allow-origin").is_none());
}

async fn client_version_gate(app: TestApp) {
    let gated = spawn_app_with(app.backend, |c| c.min_client_version = Some("2.0.0".into()))
        .await
        .unwrap();
    let old = gated
        .send(
            gated
                .client
                .get(gated.url("/api/v1/capabilities"))
                .header("x-client-version", "web/1.9.9"),
        )
        .await;
    old.expect_error(426, "client_too_old");
    let old = gated
        .send(
            gated
                .client
                .get(gated.url("/api/v1/capabilities"))
                .header("x-client-version", "web/1.9.9"),
        )
        .await;
    assert_eq!(old.body["supported"]["min"], "2.0.0");
    gated
        .send(
            gated
                .client
                .get(gated.url("/api/v1/capabilities"))
                .header("x-client-version", "web/2.0.0"),
        )
        .await
        .expect(200);
    gated
        .send(
            gated
                .client
                .get(gated.url("/api/v1/capabilities"))
                .header("x-client-version", "nonsense"),
        )
        .await
        .expect_error(400, "invalid_client_version");
    // Without the header (curl) the request is served.
    let caps = gated.get_anon("/api/v1/capabilities").await.expect(200);
    assert_eq!(caps.body["min_client_version"], "2.0.0");
}

/// Every route of the REST contract that this server implements.
const ROUTES: &[(&str, &str)] = &[
    ("post", "/api/v1/auth/register"),
    ("get", "/api/v1/admin/audit"),
    ("get", "/api/v1/users/@me/export"),
    ("delete", "/api/v1/users/@me"),
    ("post", "/api/v1/admin/users/{id}/impersonate"),
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
    ("post", "/api/v1/auth/totp/setup"),
    ("post", "/api/v1/auth/totp/enable"),
    ("post", "/api/v1/auth/totp/disable"),
    ("post", "/api/v1/auth/recovery-codes"),
    ("post", "/api/v1/auth/bootstrap"),
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
    ("post", "/api/v1/api-keys"),
    ("get", "/api/v1/api-keys"),
    ("delete", "/api/v1/api-keys/{id}"),
    ("post", "/api/v1/api-keys/{id}/rotate"),
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
    ("post", "/api/v1/conversations/{c}/typing"),
    ("put", "/api/v1/conversations/{c}/read-marker"),
    ("get", "/api/v1/admin/users"),
    ("post", "/api/v1/admin/users"),
    ("patch", "/api/v1/admin/users/{id}"),
    ("get", "/api/v1/capabilities"),
    ("get", "/api/v1/openapi.json"),
    ("get", "/health"),
    ("get", "/health/ready"),
];

async fn openapi_lists_every_route(app: TestApp) {
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

async fn responses_match_the_openapi_schemas(app: TestApp) {
    let doc = app.get_anon("/api/v1/openapi.json").await.expect(200).body;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let org_res = app
        .post("/api/v1/orgs", &alice.token, json!({"name": "Acme"}))
        .await
        .expect(201);
    check(&doc, "post", "/api/v1/orgs", 201, &org_res.body);
    let org = org_res.id();
    let m = app.admin_add_member(&org, &bob, "member").await.expect(201);
    check(
        &doc,
        "post",
        "/api/v1/admin/orgs/{org}/members",
        201,
        &m.body,
    );
    let conv = app
        .post(
            &format!("/api/v1/orgs/{org}/conversations"),
            &alice.token,
            json!({"kind": "group", "name": "g", "participant_ids": [bob.id]}),
        )
        .await
        .expect(201);
    check(
        &doc,
        "post",
        "/api/v1/orgs/{org}/conversations",
        201,
        &conv.body,
    );
    let c = conv.id();
    let msg = app.send_message(&c, &alice, "hello").await.expect(201);
    check(
        &doc,
        "post",
        "/api/v1/conversations/{c}/messages",
        201,
        &msg.body,
    );
    let list = app
        .get(&format!("/api/v1/conversations/{c}/messages"), &bob.token)
        .await
        .expect(200);
    check(
        &doc,
        "get",
        "/api/v1/conversations/{c}/messages",
        200,
        &list.body,
    );
    app.delete(&format!("/api/v1/messages/{}", msg.id()), &alice.token)
        .await
        .expect(204);
    let list = app
        .get(&format!("/api/v1/conversations/{c}/messages"), &bob.token)
        .await
        .expect(200);
    check(
        &doc,
        "get",
        "/api/v1/conversations/{c}/messages",
        200,
        &list.body,
    );
    check(
        &doc,
        "get",
        "/api/v1/users/@me",
        200,
        &app.get("/api/v1/users/@me", &alice.token)
            .await
            .expect(200)
            .body,
    );
    check(
        &doc,
        "get",
        "/api/v1/auth/sessions",
        200,
        &app.get("/api/v1/auth/sessions", &alice.token)
            .await
            .expect(200)
            .body,
    );
    check(
        &doc,
        "get",
        "/api/v1/orgs/{org}/permissions/matrix",
        200,
        &app.get(
            &format!("/api/v1/orgs/{org}/permissions/matrix"),
            &bob.token,
        )
        .await
        .expect(200)
        .body,
    );
    check(
        &doc,
        "get",
        "/api/v1/conversations/{c}/participants",
        200,
        &app.get(
            &format!("/api/v1/conversations/{c}/participants"),
            &bob.token,
        )
        .await
        .expect(200)
        .body,
    );
    check(
        &doc,
        "post",
        "/api/v1/auth/login",
        200,
        &app.login("bob", PASSWORD).await.expect(200).body,
    );
    check(
        &doc,
        "get",
        "/api/v1/capabilities",
        200,
        &app.get_anon("/api/v1/capabilities").await.body,
    );
    let err = app
        .get(&format!("/api/v1/orgs/{org}"), "bad")
        .await
        .expect(401);
    check(&doc, "get", "/api/v1/orgs/{org}", 401, &err.body);
    let inv = app
        .post(
            &format!("/api/v1/orgs/{org}/invites"),
            &alice.token,
            json!({}),
        )
        .await
        .expect(201);
    check(&doc, "post", "/api/v1/orgs/{org}/invites", 201, &inv.body);
}

async fn openapi(app: &TestApp) -> Value {
    app.get_anon("/api/v1/openapi.json").await.expect(200).body
}

/// CORE-4, CORE-11: every operation declares the errors the middleware and extractors can
/// answer — a malformed or too old `X-Client-Version` (400, 426), the rate limit (429), the
/// credential and the access-token gate (401, 403), an id in the path (400, 404), the query
/// (400, 422), a JSON body (408, 400, 413, 415, 422) — each with the error shape; a body that
/// requires no member is optional (an empty body reads as `{}`).
async fn openapi_declares_every_error(app: TestApp) {
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
async fn error_answers_match_the_openapi_schemas(app: TestApp) {
    let doc = openapi(&app).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let org = app
        .post("/api/v1/orgs", &alice.token, json!({"name": "Acme"}))
        .await
        .expect(201)
        .id();
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
async fn whole_numbers_are_integers(app: TestApp) {
    let alice = app.user("alice").await;
    let org = app
        .post("/api/v1/orgs", &alice.token, json!({"name": "Acme"}))
        .await
        .expect(201)
        .id();
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

/// WEB-3: the embedded client and console, with their content types, revalidation and the CSP.
async fn web_client_is_served(app: TestApp) {
    for (path, kind) in [
        ("/", "text/html; charset=utf-8"),
        ("/admin", "text/html; charset=utf-8"),
        ("/assets/client.js", "text/javascript; charset=utf-8"),
        ("/assets/app.css", "text/css; charset=utf-8"),
        (
            "/assets/vendor/dompurify/purify.es.mjs",
            "text/javascript; charset=utf-8",
        ),
    ] {
        let res = app.send(app.client.get(app.url(path))).await.expect(200);
        assert_eq!(res.headers["content-type"], kind, "{path}");
        assert_eq!(res.headers["cache-control"], "no-cache", "{path}");
        let csp = res.headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self';") && !csp.contains("unsafe"),
            "{csp}"
        );
        let etag = res.headers["etag"].clone();
        app.send(app.client.get(app.url(path)).header("if-none-match", etag))
            .await
            .expect(304);
    }
    app.get_anon("/assets/missing.js")
        .await
        .expect_error(404, "not_found");
    app.get_anon("/assets/../Cargo.toml").await.expect(404);
    let api = app.get_anon("/api/v1/capabilities").await;
    assert_eq!(api.headers["cache-control"], "no-store");
}

/// CORE-11: the schema of each validated type accepts exactly what its `parse` accepts, so a
/// request valid by the document is never refused for its shape, nor an invalid one accepted.
mod schemas_match_parsers {
    use conclave_core::credential::Cidr;
    use conclave_core::password::NewPassword;
    use conclave_core::totp::{SecondFactorCode, TotpCode};
    use conclave_core::types::{DisplayName, Email, IdempotencyKey, MessageText, Name, Username};
    use proptest::prelude::*;
    use serde_json::Value;
    use std::any::TypeId;
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::rc::Rc;
    use utoipa::PartialSchema;

    /// Whether the schema of `T` accepts `s` (validators are compiled once per type and thread).
    fn accepts<T: PartialSchema + 'static>() -> impl Fn(&str) -> bool {
        thread_local! {
            static VALIDATORS: RefCell<HashMap<TypeId, Rc<jsonschema::Validator>>> = RefCell::default();
        }
        let validator = VALIDATORS.with_borrow_mut(|cache| {
            cache
                .entry(TypeId::of::<T>())
                .or_insert_with(|| {
                    let schema = serde_json::to_value(T::schema()).unwrap();
                    Rc::new(jsonschema::validator_for(&schema).expect("a valid schema"))
                })
                .clone()
        });
        move |s| validator.is_valid(&Value::String(s.to_owned()))
    }

    /// Characters that sit on the edges of the rules: white space (trimmed or not, control or
    /// not), controls, NUL, separators, non-ASCII letters, an astral character.
    const TRICKY: &str = "[a-zA-Z0-9_.:@/ \\-\t\n\u{b}\u{1}\u{0}\u{1c}\u{7f}\u{85}\u{a0}\u{3000}\u{feff}\u{180e}é😀]";

    fn tricky(len: std::ops::Range<usize>) -> impl Strategy<Value = String> {
        proptest::collection::vec(proptest::string::string_regex(TRICKY).unwrap(), len)
            .prop_map(|v| v.concat())
    }

    /// A string of `len` letters with white space around it.
    fn padded(len: std::ops::Range<usize>) -> impl Strategy<Value = String> {
        (
            "[ \t\u{85}\u{3000}]{0,3}",
            "[a-zé]{1}",
            len,
            "[ \t\u{85}]{0,3}",
        )
            .prop_map(|(a, c, n, b)| format!("{a}{}{b}", c.repeat(n)))
    }

    macro_rules! agree {
        ($t:ty, $s:expr) => {{
            let ok = accepts::<$t>()($s);
            prop_assert_eq!(ok, <$t>::parse($s).is_ok(), "{} {:?}", stringify!($t), $s);
        }};
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn text_types(s in tricky(0..12)) {
            agree!(Username, &s);
            agree!(DisplayName, &s);
            agree!(Name, &s);
            agree!(Email, &s);
            agree!(MessageText, &s);
            agree!(IdempotencyKey, &s);
        }

        #[test]
        fn lengths(s in padded(60..110)) {
            agree!(DisplayName, &s);
            agree!(Name, &s);
            agree!(Username, &s);
        }

        #[test]
        fn emails(local in tricky(0..4), domain in tricky(0..4), pad in padded(250..256)) {
            agree!(Email, &format!("{local}@{domain}"));
            agree!(Email, &format!("{}@{domain}", pad.trim()));
            agree!(Email, &format!(" {local}@x\t"));
        }

        #[test]
        fn codes(s in "[-0-9a-zA-Z \t\n]{0,24}", digits in "[0-9]{6}", recovery in "[0-9a-zA-Z]{16}") {
            agree!(SecondFactorCode, &s);
            for code in [digits.clone(), format!("{} {}", &digits[..3], &digits[3..]), recovery.clone(),
                         format!("{}-{}", &recovery[..8], &recovery[8..])] {
                agree!(SecondFactorCode, &code);
                let totp = matches!(SecondFactorCode::parse(&code), Ok(SecondFactorCode::Totp(_)));
                prop_assert_eq!(accepts::<TotpCode>()(&code), totp, "TotpCode {:?}", code);
            }
        }

        #[test]
        fn cidrs(v4 in any::<std::net::Ipv4Addr>(), v6 in any::<std::net::Ipv6Addr>(),
                 p4 in 0u8..40, p6 in 0u8..140, junk in tricky(0..6), groups in 0usize..6) {
            let mapped = v4.to_ipv6_mapped();
            let head = v6.segments()[..groups].iter().map(|g| format!("{g:x}:")).collect::<String>();
            for s in [v4.to_string(), v6.to_string(), format!("{v4}/{p4}"), format!("{v6}/{p6}"),
                      mapped.to_string(), format!("{head}:{v4}"), format!("{head}{v4}"),
                      format!(" {v4}\t"), format!("{v4}{junk}"), format!("{v6}{junk}"), junk.clone()] {
                agree!(Cidr, &s);
            }
        }

        #[test]
        fn passwords(s in "[12#é ß]{10,14}", c in "[a-z0-9 é]") {
            // The common-password list is not in the schema: only compare outside it.
            let ok = accepts::<NewPassword>()(&s);
            match NewPassword::parse(&s) {
                Ok(_) => prop_assert!(ok, "{:?}", s),
                Err(r) if r.code == "too_common" && s.chars().any(|x| !s.starts_with(x)) => {}
                Err(_) => prop_assert!(!ok, "{:?}", s),
            }
            let same = c.repeat(12);
            prop_assert!(!accepts::<NewPassword>()(&same) && NewPassword::parse(&same).is_err());
        }
    }

    #[test]
    fn boundaries() {
        let text = |n: usize| "a".repeat(n);
        for (n, ok) in [(0, false), (1, true), (4000, true), (4001, false)] {
            assert_eq!(accepts::<MessageText>()(&text(n)), ok, "{n}");
            assert_eq!(MessageText::parse(&text(n)).is_ok(), ok, "{n}");
        }
        // Message length counts every character, white space included.
        assert!(accepts::<MessageText>()(&format!(" {} ", text(3998))));
        assert!(MessageText::parse(&format!(" {} ", text(3998))).is_ok());
        assert!(!accepts::<MessageText>()(&format!(" {} ", text(3999))));
        assert!(!accepts::<MessageText>()(" \u{3000}\t"));
        for (n, ok) in [(64, true), (65, false)] {
            let padded = format!(" \u{85}{}\t ", text(n));
            assert_eq!(accepts::<DisplayName>()(&padded), ok, "{n}");
            assert_eq!(DisplayName::parse(&padded).is_ok(), ok, "{n}");
        }
        for (n, ok) in [(11, false), (12, true), (1024, true), (1025, false)] {
            let p = format!("ab{}", "c".repeat(n - 2));
            assert_eq!(accepts::<NewPassword>()(&p), ok, "{n}");
            assert_eq!(NewPassword::parse(&p).is_ok(), ok, "{n}");
        }
    }
}
