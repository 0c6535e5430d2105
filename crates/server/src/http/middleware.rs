//! Layers every response passes through: request ids (CORE-4), security headers (WEB-2) and the
//! client-version gate (CORE-9).

use super::error::{ApiError, REQUEST_ID};
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

/// A client-supplied id is kept only if it is short and plain.
fn acceptable_request_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// Gives the request an id (the client's if acceptable), makes it available to error bodies,
/// returns it in `X-Request-Id`, and runs everything after it — the inner layers and the
/// handler, with the services and stores it calls — inside the request's span, so every line
/// the request logs carries its id (CORE-4).
pub async fn request_id(req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable_request_id(v))
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned);
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path());
    async move {
        tracing::debug!("started");
        let mut res = REQUEST_ID.scope(id.clone(), next.run(req)).await;
        tracing::info!(status = res.status().as_u16(), "finished");
        if let Ok(v) = HeaderValue::from_str(&id) {
            res.headers_mut().insert("x-request-id", v);
        }
        res
    }
    .instrument(span)
    .await
}

/// Security headers on every response, errors included.
pub async fn security_headers(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    // WEB-2: authenticated answers (the REST API, MCP) and the probes are never cached.
    let api = path.starts_with("/api/") || path.starts_with("/health") || path == "/mcp";
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, k: &'static str, v: &'static str| {
        h.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
    };
    // A handler that set a stricter policy keeps it (downloads: `default-src 'none'; sandbox`).
    if !h.contains_key(axum::http::header::CONTENT_SECURITY_POLICY) {
        set(h, "content-security-policy", crate::headers::DEFAULT_CSP);
    }
    for (name, value) in crate::headers::FIXED_SECURITY_HEADERS {
        set(h, name, value);
    }
    if state.secure_cookies {
        set(
            h,
            "strict-transport-security",
            "max-age=31536000; includeSubDomains",
        );
    }
    if api {
        set(h, "cache-control", "no-store");
    }
    h.remove("server");
    h.remove("x-powered-by");
    res
}

/// CORE-9: `X-Client-Version: name/semver`; below the configured minimum → 426.
pub async fn client_version(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(value) = req.headers().get("x-client-version") {
        let parsed = value
            .to_str()
            .ok()
            .and_then(|v| v.split_once('/'))
            .filter(|(name, _)| !name.is_empty())
            .and_then(|(_, ver)| semver::Version::parse(ver.trim()).ok());
        let Some(version) = parsed else {
            return ApiError::bad_request(
                "invalid_client_version",
                "X-Client-Version must look like name/1.2.3",
                "X-Client-Version",
            )
            .into_response();
        };
        if let Some(min) = &state.min_client_version {
            if &version < min {
                let mut e = ApiError::new(
                    StatusCode::UPGRADE_REQUIRED,
                    "client_too_old",
                    format!("this server needs client version {min} or newer"),
                );
                e.extra = Some(Box::new((
                    "supported",
                    serde_json::json!({ "min": min.to_string() }),
                )));
                return e.into_response();
            }
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use tower::ServiceExt;

    /// What the log printed, as one string.
    #[derive(Clone, Default)]
    struct Log(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Log {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// CORE-4: a line logged inside the handler — and inside a service it awaits — carries the
    /// id of its request.
    #[tokio::test]
    async fn the_request_span_wraps_the_handler() {
        async fn service() {
            tracing::info!("inside a service");
        }
        let app = axum::Router::new()
            .route(
                "/",
                axum::routing::get(|| async {
                    tracing::info!("inside the handler");
                    service().await;
                    "ok"
                }),
            )
            .layer(axum::middleware::from_fn(super::request_id));
        let log = Log::default();
        let writer = log.clone();
        let _guard = tracing::subscriber::set_default(
            tracing_subscriber::fmt()
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .finish(),
        );
        let req = axum::http::Request::get("/")
            .header("x-request-id", "req-42")
            .body(axum::body::Body::empty())
            .unwrap();
        let res = app.oneshot(req).await.unwrap();
        assert_eq!(res.headers()["x-request-id"], "req-42");
        let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
        for message in ["inside the handler", "inside a service", "finished"] {
            assert!(
                text.lines()
                    .any(|l| l.contains(message) && l.contains("request_id=req-42")),
                "{message:?} carries the request id:\n{text}"
            );
        }
    }

    #[test]
    fn request_id_rules() {
        assert!(super::acceptable_request_id("abc-123_x.y:z"));
        assert!(!super::acceptable_request_id(""));
        assert!(!super::acceptable_request_id("a b"));
        assert!(!super::acceptable_request_id(&"a".repeat(129)));
    }
}
