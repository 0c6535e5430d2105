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
    web_client_is_served,
);

async fn health_and_capabilities(app: TestApp) {
    let h = app
        .call(Method::GET, "/health", None, None)
        .await
        .expect(200);
    assert_eq!(h.body["status"], "ok");
    let r = app
        .call(Method::GET, "/health/ready", None, None)
        .await
        .expect(200);
    assert_eq!(r.body["status"], "ready");
    let c = app
        .call(Method::GET, "/api/v1/capabilities", None, None)
        .await
        .expect(200);
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
    let err = app
        .call(Method::GET, "/api/v1/users/@me", None, None)
        .await
        .expect(401);
    let missing = app
        .call(Method::GET, "/no/such/page", None, None)
        .await
        .expect(404);
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
    let r = https.call(Method::GET, "/health", None, None).await;
    assert!(r.headers.get("strict-transport-security").is_some());
    let _ = https.user("hank").await;
    let login = https
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "hank", "password": PASSWORD, "cookie": true})),
        )
        .await
        .expect(200);
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
    let caps = gated
        .call(Method::GET, "/api/v1/capabilities", None, None)
        .await
        .expect(200);
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
    let doc = app
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await
        .expect(200)
        .body;
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
    let doc = app
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await
        .expect(200)
        .body;
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
        &app.call(Method::GET, "/api/v1/capabilities", None, None)
            .await
            .body,
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
    app.call(Method::GET, "/assets/missing.js", None, None)
        .await
        .expect_error(404, "not_found");
    app.call(Method::GET, "/assets/../Cargo.toml", None, None)
        .await
        .expect(404);
    let api = app
        .call(Method::GET, "/api/v1/capabilities", None, None)
        .await;
    assert_eq!(api.headers["cache-control"], "no-store");
}
