//! Where limits meet HTTP: the `limit_requests` layer charges every request to its global and
//! per-IP buckets and leaves a `RequestLimits` slot in the request; `check_caller` (called once
//! the caller is authenticated) charges the caller's buckets and records them in that slot; on
//! the way out the layer writes `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`
//! for the most constrained bucket. Probes and the OpenAPI document are never limited; the
//! gateway's upgrade is charged like a request (its frames have their own budget). `body_deadline` is RATE-5's body timeout, the router layer of
//! `ratelimit::connections`. The limiter itself (`ratelimit`) knows nothing of HTTP responses.

use super::client_ip;
use super::error::ApiError;
use crate::ratelimit::connections::TrackedBody;
use crate::ratelimit::{Outcome, RouteClass, Status, Subject};
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

/// Paths no limit applies to. The gateway's upgrade is not one of them: each connection is
/// charged to the global and per-IP buckets like a request (RATE-1, RATE-3), so IDENTIFY
/// attempts — and with them guesses at the access token (AUTH-9) — come no faster than REST
/// requests; the socket's own frames have their own budget.
pub fn exempt(path: &str) -> bool {
    matches!(path, "/health" | "/health/ready" | "/api/v1/openapi.json")
        || path.starts_with("/health/")
}

/// The per-request slot shared by the middleware and `check_caller`.
#[derive(Debug, Clone)]
pub struct RequestLimits(Arc<Mutex<SlotState>>);

#[derive(Debug)]
struct SlotState {
    class: RouteClass,
    caller_checked: bool,
    status: Option<Status>,
}

impl RequestLimits {
    fn new(class: RouteClass, status: Option<Status>) -> Self {
        Self(Arc::new(Mutex::new(SlotState {
            class,
            caller_checked: false,
            status,
        })))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SlotState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, status: Status) {
        let mut slot = self.lock();
        slot.status = Some(match slot.status {
            Some(old) => old.tighter(status),
            None => status,
        });
    }

    /// What the headers say: the most constrained bucket charged so far.
    #[must_use]
    pub fn status(&self) -> Option<Status> {
        self.lock().status
    }
}

fn set_headers(res: &mut Response, status: Option<Status>) {
    let Some(s) = status else {
        return;
    };
    let h = res.headers_mut();
    h.insert("ratelimit-limit", HeaderValue::from(s.limit));
    h.insert("ratelimit-remaining", HeaderValue::from(s.remaining));
    h.insert("ratelimit-reset", HeaderValue::from(s.reset_secs));
}

/// RATE-1: the global and per-IP (and, on sign-in routes, per-IP auth) limits, before any
/// handler runs; then the `RateLimit-*` headers on the way out.
pub async fn limit_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !state.limiter.enabled() || exempt(req.uri().path()) {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    let class = RouteClass::of(&parts.method, parts.uri.path());
    let ip = client_ip::of_request(&parts, &state);
    let status = match state
        .limiter
        .check(&state.limiter.request_layers(class, ip))
        .await
    {
        Outcome::Allowed(status) => status,
        Outcome::Denied {
            what,
            retry_after_secs,
            status,
        } => {
            let mut res = ApiError::rate_limited(what, retry_after_secs).into_response();
            set_headers(&mut res, Some(status));
            return res;
        }
    };
    let slot = RequestLimits::new(class, status);
    parts.extensions.insert(slot.clone());
    let mut res = next.run(Request::from_parts(parts, body)).await;
    set_headers(&mut res, slot.status());
    res
}

/// RATE-1 for an authenticated caller: its API key's tier (or its per-user bucket for the
/// route class) and its org. Charged once per request, however often the caller is extracted;
/// a no-op on routes the middleware does not limit.
pub async fn check_caller(
    parts: &mut Parts,
    state: &AppState,
    subject: Subject,
) -> Result<(), ApiError> {
    let Some(slot) = parts.extensions.get::<RequestLimits>().cloned() else {
        return Ok(());
    };
    let class = {
        let mut s = slot.lock();
        if s.caller_checked {
            return Ok(());
        }
        s.caller_checked = true;
        s.class
    };
    match state
        .limiter
        .check(&state.limiter.caller_layers(class, &subject))
        .await
    {
        Outcome::Allowed(Some(status)) => {
            slot.record(status);
            Ok(())
        }
        Outcome::Allowed(None) => Ok(()),
        Outcome::Denied {
            what,
            retry_after_secs,
            status,
        } => {
            slot.lock().status = Some(status);
            Err(ApiError::rate_limited(what, retry_after_secs))
        }
    }
}

/// RATE-5, the body timeout (see `ratelimit::connections`); `state.body_timeout` counts from the moment
/// the router has the request head.
pub async fn body_deadline(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let (body, arrived) = TrackedBody::new(body);
    let body = axum::body::Body::new(body);
    let handled = next.run(Request::from_parts(parts, body));
    let expired = async {
        tokio::time::sleep(state.body_timeout).await;
        if arrived.load(Ordering::Relaxed) {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        res = handled => res,
        () = expired => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!(
                "the request body did not arrive within {} s",
                state.body_timeout.as_secs()
            ),
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn probes_and_the_document_are_exempt() {
        for path in ["/health", "/health/ready", "/api/v1/openapi.json"] {
            assert!(super::exempt(path), "{path}");
        }
        for path in [
            "/api/v1/users/@me",
            "/healthz",
            "/api/v1/auth/login",
            "/gateway",
        ] {
            assert!(!super::exempt(path), "{path}");
        }
    }
}
