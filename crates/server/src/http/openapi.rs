//! The OpenAPI 3.1 document, generated from the handlers' annotations at start (CORE-11), then
//! given the security requirements and the API-key scope of each route (`x-scope`).

use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};
use std::sync::Arc;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{InfoBuilder, OpenApi, OpenApiBuilder};

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
    doc
}

/// Routes that need no credential.
fn is_public(path: &str) -> bool {
    matches!(
        path,
        "/health"
            | "/health/ready"
            | "/api/v1/capabilities"
            | "/api/v1/openapi.json"
            | "/api/v1/auth/login"
            | "/api/v1/auth/login/mfa"
            | "/api/v1/auth/register"
            | "/api/v1/auth/bootstrap"
    )
}

/// The API-key scope a route needs; `None` for routes no API key or bot may use (public,
/// session management, server administration, `/api-keys`). The one source for the scope
/// check of every request (`credentials::require_scope`) and for `x-scope`.
#[must_use]
pub fn scope_for(method: &str, path: &str) -> Option<&'static str> {
    let read = method.eq_ignore_ascii_case("get");
    let p = path.strip_prefix("/api/v1")?;
    if p.starts_with("/auth/") || p.starts_with("/admin/") || is_public(path) {
        return None;
    }
    let message_route = ["/messages", "/typing", "/read-marker"]
        .iter()
        .any(|m| p.contains(m));
    if p.starts_with("/messages/") || (p.starts_with("/conversations/") && message_route) {
        return Some(if read {
            "messages:read"
        } else {
            "messages:write"
        });
    }
    if p.starts_with("/conversations") || (p.starts_with("/orgs/") && p.ends_with("/conversations"))
    {
        return Some(if read {
            "conversations:read"
        } else {
            "conversations:admin"
        });
    }
    if p.starts_with("/orgs/") && p.ends_with("/audit") {
        // The audit log is administration even to read.
        return Some("org:admin");
    }
    if p.starts_with("/orgs") || p.starts_with("/users") {
        return Some(if read { "org:read" } else { "org:admin" });
    }
    None
}

/// Adds security requirements and `x-scope` to every operation, and the OpenAPI route itself.
pub fn finish(doc: OpenApi) -> Arc<Value> {
    let mut value = serde_json::to_value(&doc).unwrap_or_else(|_| json!({}));
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
            for (method, op) in ops.iter_mut() {
                let Some(op) = op.as_object_mut() else {
                    continue;
                };
                op.insert(
                    "x-scope".into(),
                    scope_for(method, path).map_or(Value::Null, |s| Value::String(s.into())),
                );
                if scope_for(method, path).is_some() {
                    op.insert(
                        "security".into(),
                        json!([{"bearer": []}, {"bot": []}, {"cookie": []}]),
                    );
                } else if !is_public(path) {
                    op.insert("security".into(), json!([{"bearer": []}, {"cookie": []}]));
                }
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
    use super::scope_for;

    #[test]
    fn scopes() {
        assert_eq!(
            scope_for("get", "/api/v1/conversations/{c}/messages"),
            Some("messages:read")
        );
        assert_eq!(
            scope_for("post", "/api/v1/conversations/{c}/messages"),
            Some("messages:write")
        );
        assert_eq!(
            scope_for("patch", "/api/v1/messages/{m}"),
            Some("messages:write")
        );
        assert_eq!(
            scope_for("post", "/api/v1/orgs/{org}/conversations"),
            Some("conversations:admin")
        );
        assert_eq!(
            scope_for("get", "/api/v1/orgs/{org}/members"),
            Some("org:read")
        );
        assert_eq!(
            scope_for("get", "/api/v1/orgs/{org}/bots"),
            Some("org:read")
        );
        assert_eq!(
            scope_for("post", "/api/v1/orgs/{org}/bots/{bot}/token"),
            Some("org:admin")
        );
        assert_eq!(scope_for("get", "/api/v1/api-keys"), None);
        assert_eq!(scope_for("post", "/api/v1/api-keys/{id}/rotate"), None);
        assert_eq!(scope_for("post", "/api/v1/auth/login"), None);
        assert_eq!(scope_for("get", "/api/v1/admin/users"), None);
    }
}
