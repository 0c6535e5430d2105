//! `ApiError`: the only place that picks a status code. Bodies follow CORE-4:
//! `{"error":{"code","message","field","request_id"}}`. 5xx bodies are generic; the detail goes
//! to the log with the request id.

use crate::outbound::OutboundError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use conclave_core::event::Data;
use conclave_core::service::identity::Refused;
use conclave_core::ServiceError;
use serde::Serialize;
use std::future::Future;
use utoipa::ToSchema;

tokio::task_local! {
    /// The id of the request being served, set by the request-id middleware.
    pub static REQUEST_ID: String;
}

/// The current request id, or an empty string outside a request.
pub fn current_request_id() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_default()
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    /// Extra top-level members (e.g. `supported` on 426).
    pub extra: Option<Box<(&'static str, serde_json::Value)>>,
    pub retry_after: Option<u64>,
}

/// The error document.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable, snake_case.
    pub code: String,
    /// For people.
    pub message: String,
    /// JSON pointer (body) or parameter name, when one input was at fault.
    pub field: Option<String>,
    pub request_id: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            extra: None,
            retry_after: None,
        }
    }

    #[must_use]
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn bad_request(
        code: &'static str,
        message: impl Into<String>,
        field: impl Into<String>,
    ) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message).with_field(field)
    }

    pub fn invalid(
        code: &'static str,
        message: impl Into<String>,
        field: impl Into<String>,
    ) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message).with_field(field)
    }

    /// Tells the client when to try again (`Retry-After`, in seconds).
    #[must_use]
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// 429 `rate_limited`: the limit `what` was reached.
    pub fn rate_limited(what: &str, retry_after_secs: u64) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many requests: {what} was reached; retry in {retry_after_secs} s"),
        )
        .with_retry_after(retry_after_secs)
    }

    /// 422 `url_not_allowed` naming `field`: the SSRF guard refused a URL given for `purpose`
    /// (the rule is named), or its host does not resolve to an allowed address.
    pub fn url_not_allowed(e: &OutboundError, purpose: &str, field: &str) -> Self {
        let message = if e.is_url_not_allowed() {
            format!("this URL is not allowed for {purpose}: {e}")
        } else {
            // A name that does not resolve (or a lookup failure) is not a reachable target either.
            "this URL's host does not resolve to an allowed address".to_owned()
        };
        Self::invalid("url_not_allowed", message, field)
    }

    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "the server failed to handle this request",
        )
    }
}

/// Body fields are named by JSON pointer.
fn pointer(field: String) -> String {
    if field.starts_with('/') {
        field
    } else {
        format!("/{field}")
    }
}

/// How REST answers a request `identify` did not let in (AUTH-3, AUTH-4a, AUTH-9).
impl From<Refused> for ApiError {
    fn from(refused: Refused) -> Self {
        match refused {
            Refused::AccessToken => Self::unauthorized(
                "access_token_required",
                "a valid X-API-Access-Token header is required",
            ),
            Refused::UnsupportedScheme => {
                Self::unauthorized("unsupported_scheme", "use Authorization: Bearer <token>")
            }
            Refused::InvalidCredential => Self::unauthorized(
                "invalid_token",
                "the credential is invalid, expired or revoked",
            ),
            Refused::Csrf => Self::forbidden("csrf_failed", "missing or wrong X-CSRF-Token"),
            Refused::SecondFactorRequired => Self::forbidden(
                "mfa_setup_required",
                "your account requires two-factor authentication: turn it on first",
            ),
            Refused::Service(e) => e.into(),
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::NotFound(what) => Self::not_found(what),
            ServiceError::Forbidden { code, message } => Self::forbidden(code, message),
            ServiceError::Unauthorized { code, message } => Self::unauthorized(code, message),
            ServiceError::Invalid {
                field,
                code,
                message,
            } => Self::invalid(code, message, pointer(field)),
            ServiceError::Conflict { code, message } => {
                Self::new(StatusCode::CONFLICT, code, message)
            }
            ServiceError::Gone { code, message } => Self::new(StatusCode::GONE, code, message),
            ServiceError::Throttled { retry_after_secs } => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
                "too many failed attempts; retry later",
            )
            .with_retry_after(retry_after_secs.max(1)),
            ServiceError::Busy => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "the server is busy; retry shortly",
            )
            .with_retry_after(1),
            ServiceError::Unavailable { code, message } => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message).with_retry_after(5)
            }
            ServiceError::Internal(detail) => {
                tracing::error!(request_id = %current_request_id(), error = %detail, "internal error");
                Self::internal()
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({
            "error": {
                "code": self.code,
                "message": self.message,
                "field": self.field,
                "request_id": current_request_id(),
            }
        });
        if let Some((key, value)) = self.extra.map(|b| *b) {
            body[key] = value;
        }
        let mut res = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            res.headers_mut()
                .insert("retry-after", HeaderValue::from(secs));
        }
        res
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// A 200 answer with a JSON body.
pub type Answer<T> = ApiResult<axum::Json<T>>;

/// A 204 answer.
pub type NoContent = ApiResult<StatusCode>;

/// Answers 204 once `action` has succeeded (whatever it answers is not sent).
pub async fn no_content<T>(action: impl Future<Output = Result<T, ServiceError>>) -> NoContent {
    action.await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A 201 answer with the created resource.
pub type Created<T> = ApiResult<(StatusCode, axum::Json<T>)>;

/// Answers 201 with `value`.
pub fn created<T>(value: T) -> Created<T> {
    Ok((StatusCode::CREATED, axum::Json(value)))
}

/// Answers 201 with what `making` made.
pub async fn created_by<T>(making: impl Future<Output = Result<T, ServiceError>>) -> Created<T> {
    created(making.await?)
}

/// Answers 200 with what `reading` read.
pub async fn json<T>(
    reading: impl Future<Output = Result<T, ServiceError>>,
) -> ApiResult<axum::Json<T>> {
    Ok(axum::Json(reading.await?))
}

/// Answers 200 with `body` when `fresh` is false (an existing one, or a replay), else 201.
pub fn created_or_found<B>(fresh: bool, body: B) -> ApiResult<(StatusCode, B)> {
    let status = if fresh {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, body))
}

/// A JSON body serialized before the answer (an event's payload), sent as it is.
pub struct JsonText(pub Data);

/// A 201 (or 200) answer whose JSON body was serialized before.
pub type CreatedText = ApiResult<(StatusCode, JsonText)>;

impl IntoResponse for JsonText {
    fn into_response(self) -> Response {
        /// The payload's bytes, shared with the event rather than copied.
        struct Text(Data);
        impl AsRef<[u8]> for Text {
            fn as_ref(&self) -> &[u8] {
                self.0.get().as_bytes()
            }
        }
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(mime::APPLICATION_JSON.as_ref()),
            )],
            bytes::Bytes::from_owner(Text(self.0)),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use conclave_core::store::StoreError;

    #[test]
    fn an_overloaded_database_answers_503_with_retry_after() {
        let res = ApiError::from(ServiceError::from(StoreError::Busy)).into_response();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()["retry-after"], "1");
    }
}
