//! CORE-4, CORE-7, CORE-8, CORE-9, CORE-11, WEB-1, WEB-2: health, capabilities, headers on
//! every response, request ids, CORS, client versions, and the OpenAPI document.

use crate::both_backends;
use crate::helpers::*;
use reqwest::Method;
use serde_json::{json, Value};

mod document;
mod schemas_match_parsers;

use document::*;
pub(crate) use document::{check, openapi};

both_backends!(
    health_and_capabilities,
    readiness_names_the_part_that_does_not_answer,
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
    // CORE-7: the database, the fan-out and the object store, each checked.
    for check in ["database", "fanout", "files", "audit"] {
        assert_eq!(r.body["checks"][check], "ok", "{check}: {}", r.body);
    }
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
    for feature in [
        "gateway",
        "two_factor",
        "api_keys",
        "bots",
        "audit_log",
        "search",
        "files",
        "mcp",
        "webhooks",
        "widget",
    ] {
        assert_eq!(c.body["features"][feature], true, "{feature}");
    }
    assert_eq!(
        c.body["auth"]["schemes"],
        json!(["bearer", "bot", "cookie"])
    );
}

/// CORE-7: a node whose object store does not answer is not ready, and says which part.
async fn readiness_names_the_part_that_does_not_answer(app: TestApp) {
    let closed = free_port();
    let app = spawn_app_with(app.backend, |c| {
        c.files.storage = conclave_server::config::StorageKind::S3;
        c.files.s3_bucket = Some("conclave-files".into());
        c.files.s3_endpoint = Some(format!("http://127.0.0.1:{closed}"));
        c.files.s3_region = Some("us-east-1".into());
        c.files.s3_access_key_id = Some("testing".into());
        c.files.s3_secret_access_key = Some(secrecy::SecretString::from("testing-secret"));
        c.files.s3_allow_http = true;
    })
    .await
    .expect("the app starts");
    let r = app.get_anon("/health/ready").await.expect(503);
    assert_eq!(r.body["status"], "not_ready");
    assert_eq!(r.body["checks"]["files"], "unreachable", "{}", r.body);
    assert_eq!(r.body["checks"]["database"], "ok");
    assert_eq!(r.body["checks"]["fanout"], "ok");
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
        .get_with_header("/health", "x-request-id", "client-123.abc")
        .await;
    assert_eq!(kept.headers.get("x-request-id").unwrap(), "client-123.abc");
    let replaced = app
        .get_with_header("/health", "x-request-id", "bad id with spaces")
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
        .get_with_header("/api/v1/capabilities", "origin", "https://evil.example")
        .await;
    assert!(simple.headers.get("access-control-allow-origin").is_none());
}

async fn client_version_gate(app: TestApp) {
    let gated = spawn_app_with(app.backend, |c| c.min_client_version = Some("2.0.0".into()))
        .await
        .unwrap();
    let old = gated
        .get_with_header("/api/v1/capabilities", "x-client-version", "web/1.9.9")
        .await;
    old.expect_error(426, "client_too_old");
    let old = gated
        .get_with_header("/api/v1/capabilities", "x-client-version", "web/1.9.9")
        .await;
    assert_eq!(old.body["supported"]["min"], "2.0.0");
    gated
        .get_with_header("/api/v1/capabilities", "x-client-version", "web/2.0.0")
        .await
        .expect(200);
    gated
        .get_with_header("/api/v1/capabilities", "x-client-version", "nonsense")
        .await
        .expect_error(400, "invalid_client_version");
    // Without the header (curl) the request is served.
    let caps = gated.get_anon("/api/v1/capabilities").await.expect(200);
    assert_eq!(caps.body["min_client_version"], "2.0.0");
}

/// WEB-3: the embedded client and console, with their content types, revalidation and the CSP;
/// WEB-4: `/widget.js` with its own caching.
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
    // WEB-4: the widget other sites load with a `<script>` tag: JavaScript, kept for five
    // minutes, loadable cross-origin, and never a 200 for a stale copy.
    let widget = app
        .send(app.client.get(app.url("/widget.js")))
        .await
        .expect(200);
    assert_eq!(
        widget.headers["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(widget.headers["cache-control"], "public, max-age=300");
    assert_eq!(
        widget.headers["cross-origin-resource-policy"],
        "cross-origin"
    );
    assert_eq!(widget.headers["x-content-type-options"], "nosniff");
    let etag = widget.headers["etag"].clone();
    app.send(
        app.client
            .get(app.url("/widget.js"))
            .header("if-none-match", etag),
    )
    .await
    .expect(304);
}
