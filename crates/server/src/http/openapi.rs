//! The OpenAPI 3.1 document, generated from the handlers' annotations at start (CORE-11), then
//! given the security requirements and the generic error answers of each route. Its `x-scope`
//! is what each route group declared (`credentials::declare`), the same declaration the
//! request's scope check reads.

use super::error::ErrorBody;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{InfoBuilder, OpenApi, OpenApiBuilder};
use utoipa::{PartialSchema, ToSchema};

pub fn base() -> OpenApi {
    let mut doc = OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Conclave")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Self-hosted, secure, real-time chat backend. REST API v1.",
                ))
                .build(),
        )
        .build();
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "A session token or an API key (`cnv_k_…`); on /admin, the management token",
                ))
                .build(),
        ),
    );
    components.add_security_scheme(
        "bot",
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            "Authorization",
            "A bot's token as `Bot <token>`; valid on routes with an `x-scope`",
        ))),
    );
    components.add_security_scheme(
        "cookie",
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            "conclave_session",
            "Browser session; state-changing requests also need X-CSRF-Token",
        ))),
    );
    // The error shape every error answer refers to, whether or not a handler names it.
    let mut schemas = vec![(ErrorBody::name().into_owned(), ErrorBody::schema())];
    ErrorBody::schemas(&mut schemas);
    components.schemas.extend(schemas);
    doc
}

/// What every error answer looks like (CORE-4): the `ErrorBody` schema as JSON.
fn error_content() -> Value {
    json!({"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}})
}

/// Why each error status is answered, where no handler says more.
fn error_description(status: u16) -> &'static str {
    match status {
        400 => "The request cannot be parsed: malformed JSON, an id that is not a UUID, a query value of the wrong type, or a malformed X-Client-Version",
        401 => "No credential, or one that is invalid, expired or revoked; or, where the server has an access-token gate, no valid X-API-Access-Token",
        403 => "Not allowed: the caller's role, an API key's scope, a missing X-CSRF-Token or a required second factor",
        404 => "Not found, or not visible to the caller",
        408 => "The request body did not arrive in time",
        413 => "The request body is over the size limit",
        415 => "The body is not JSON: send Content-Type: application/json",
        422 => "A value is invalid, or a field is missing or unknown; `field` names it",
        426 => "X-Client-Version is below the server's minimum (`supported.min` says which)",
        429 => "Rate limited: retry after `Retry-After` seconds",
        _ => "An error",
    }
}

/// The error statuses an operation can answer whatever its handler does, from what it takes:
/// every route can refuse a malformed or too old `X-Client-Version` (400, 426) and, unless
/// exempt, the rate limit (429); routes with a credential refuse a missing or bad one (401)
/// and a caller without the right (403), and the access-token gate every API route but the
/// public documents (401); an id in the path can be malformed (400) or unknown (404); a query
/// can be malformed (400) or out of range (422); a JSON body can be late (408), malformed (400),
/// too large (413), not JSON (415) or invalid (422); every route that reads the database can
/// find it overloaded (503 with `Retry-After`). What a handler adds beyond these (409, 410,
/// a 404 for an id in the body) is in its own annotation.
fn generic_errors(path: &str, op: &Value) -> Vec<u16> {
    let mut out = vec![400, 426];
    if !super::limits::exempt(path) {
        out.push(429);
    }
    if op.get("security").is_some() {
        out.extend([401, 403]);
    }
    // The access-token gate (AUTH-9) covers sign-in too: every API route but the two documents
    // a client reads before it can know of the gate.
    if path.starts_with("/api/") && !matches!(path, "/api/v1/capabilities" | "/api/v1/openapi.json")
    {
        out.extend([401, 503]);
    }
    let params = op["parameters"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if params.iter().any(|p| p["in"] == "path") {
        out.push(404);
    }
    if params.iter().any(|p| p["in"] == "query") {
        out.push(422);
    }
    if op.get("requestBody").is_some() {
        out.extend([408, 413, 415, 422]);
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Declares the generic error answers of `op`, and gives every error answer the error shape
/// and a description.
fn declare_errors(path: &str, op: &mut Map<String, Value>) {
    let statuses = generic_errors(path, &Value::Object(op.clone()));
    let Some(responses) = op
        .entry("responses")
        .or_insert_with(|| json!({}))
        .as_object_mut()
    else {
        return;
    };
    for status in statuses {
        responses
            .entry(status.to_string())
            .or_insert_with(|| json!({}));
    }
    for (status, response) in responses.iter_mut() {
        let Ok(code) = status.parse::<u16>() else {
            continue;
        };
        if code < 400 {
            continue;
        }
        let Some(response) = response.as_object_mut() else {
            continue;
        };
        let described = response
            .get("description")
            .and_then(Value::as_str)
            .is_some_and(|d| !d.is_empty());
        if !described {
            response.insert("description".into(), error_description(code).into());
        }
        response.insert("content".into(), error_content());
        if code == 429 {
            response.insert(
                "headers".into(),
                json!({"Retry-After": {"description": "Seconds until a request may succeed",
                    "schema": {"type": "integer", "minimum": 1}}}),
            );
        }
    }
}

/// `ApiJson` reads an empty body as `{}`: a body whose schema requires no property may be left
/// out, so the document must not call it required.
fn optional_empty_body(op: &mut Map<String, Value>, schemas: &Value) {
    let Some(body) = op.get_mut("requestBody").and_then(Value::as_object_mut) else {
        return;
    };
    let schema = &body["content"]["application/json"]["schema"];
    let schema = match schema["$ref"].as_str() {
        Some(r) => &schemas[r.trim_start_matches("#/components/schemas/")],
        None => schema,
    };
    let requires_some = schema["required"].as_array().is_some_and(|r| !r.is_empty());
    body.insert("required".into(), Value::Bool(requires_some));
}

/// Adds security requirements, `x-scope` and the generic error answers to every operation, and
/// the OpenAPI route itself.
pub fn finish(doc: OpenApi) -> Arc<Value> {
    let mut value = serde_json::to_value(&doc).unwrap_or_else(|_| json!({}));
    let schemas = value["components"]["schemas"].clone();
    if let Some(paths) = value.get_mut("paths").and_then(Value::as_object_mut) {
        paths.insert(
            "/api/v1/openapi.json".into(),
            json!({"get": {"tags": ["meta"], "summary": "This document", "operationId": "openapi",
                "responses": {"200": {"description": "The OpenAPI 3.1 document", "content": {"application/json": {}}}}}}),
        );
        for (path, item) in paths.iter_mut() {
            let Some(ops) = item.as_object_mut() else {
                continue;
            };
            for op in ops.values_mut() {
                let Some(op) = op.as_object_mut() else {
                    continue;
                };
                // `x-scope` and `security` come from the route group's declaration
                // (`credentials::declare`); a route without one takes no credential.
                op.entry("x-scope").or_insert(Value::Null);
                declare_errors(path, op);
                optional_empty_body(op, &schemas);
            }
        }
    }
    Arc::new(value)
}

pub async fn serve(doc: Arc<Value>) -> impl IntoResponse {
    Json(doc.as_ref().clone())
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    /// The `x-scope` the route groups declare, as the document shows it.
    fn scope_for(doc: &Value, method: &str, path: &str) -> Option<String> {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} is documented");
        op["x-scope"].as_str().map(str::to_owned)
    }

    #[test]
    fn scopes() {
        let (_, doc) = super::super::api();
        let scope = |m: &str, p: &str| scope_for(&doc, m, p);
        let is = |s: &str| Some(s.to_owned());
        assert_eq!(
            scope("get", "/api/v1/conversations/{c}/messages"),
            is("messages:read")
        );
        assert_eq!(
            scope("post", "/api/v1/conversations/{c}/messages"),
            is("messages:write")
        );
        assert_eq!(scope("patch", "/api/v1/messages/{m}"), is("messages:write"));
        assert_eq!(
            scope("post", "/api/v1/messages/{m}/stop"),
            is("messages:write")
        );
        assert_eq!(
            scope("post", "/api/v1/orgs/{org}/conversations"),
            is("conversations:admin")
        );
        assert_eq!(scope("get", "/api/v1/orgs/{org}/members"), is("org:read"));
        // Bots are credentials: made, listed and rotated by sessions only (AUTH-6).
        assert_eq!(scope("get", "/api/v1/orgs/{org}/bots"), None);
        assert_eq!(scope("post", "/api/v1/orgs/{org}/bots/{bot}/token"), None);
        assert_eq!(scope("get", "/api/v1/api-keys"), None);
        assert_eq!(scope("post", "/api/v1/api-keys/{id}/rotate"), None);
        assert_eq!(scope("post", "/api/v1/auth/login"), None);
        assert_eq!(scope("get", "/api/v1/admin/users"), None);
        // Beyond the old table: the audit log is administration even to read; what only a
        // person's own login session does names no scope (R69); marking read is reading.
        assert_eq!(scope("get", "/api/v1/orgs/{org}/audit"), is("org:admin"));
        assert_eq!(scope("get", "/api/v1/users/@me/security-events"), None);
        assert_eq!(scope("delete", "/api/v1/users/@me"), None);
        assert_eq!(scope("get", "/api/v1/users/@me"), is("org:read"));
        assert_eq!(
            scope("put", "/api/v1/conversations/{c}/read-marker"),
            is("messages:read")
        );
    }
}
