//! What a service can answer besides success. The HTTP layer maps each variant to one status;
//! nothing here carries internal details to a client (store errors are logged, not shown).

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The resource does not exist or the caller may not know it does (404).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The caller may see the resource but not do this (403), with a machine code.
    #[error("{message}")]
    Forbidden {
        code: &'static str,
        message: &'static str,
    },
    /// No or bad credential (401).
    #[error("{message}")]
    Unauthorized {
        code: &'static str,
        message: &'static str,
    },
    /// A value parsed but is not acceptable (422), naming the field.
    #[error("{message}")]
    Invalid {
        field: String,
        code: &'static str,
        message: String,
    },
    /// The request conflicts with current state (409).
    #[error("{message}")]
    Conflict {
        code: &'static str,
        message: std::borrow::Cow<'static, str>,
    },
    /// A one-time resource was already consumed (410).
    #[error("{message}")]
    Gone {
        code: &'static str,
        message: &'static str,
    },
    /// Too many failed attempts (429): retry after this many seconds.
    #[error("too many failed attempts")]
    Throttled { retry_after_secs: u64 },
    /// The server is busy (503), the client should retry later.
    #[error("service busy")]
    Busy,
    /// Something the answer depends on (an identity provider) cannot be reached (503).
    #[error("{message}")]
    Unavailable {
        code: &'static str,
        message: &'static str,
    },
    /// Anything the client cannot act on; logged, answered with a generic 500.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ServiceError {
    #[must_use]
    pub fn invalid(
        field: impl Into<String>,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self::Invalid {
            field: field.into(),
            code,
            message: message.into(),
        }
    }

    #[must_use]
    pub const fn forbidden(code: &'static str, message: &'static str) -> Self {
        Self::Forbidden { code, message }
    }

    /// 403 `forbidden`: the caller's role does not allow this.
    #[must_use]
    pub const fn not_allowed(message: &'static str) -> Self {
        Self::forbidden("forbidden", message)
    }

    #[must_use]
    pub const fn conflict(code: &'static str, message: &'static str) -> Self {
        Self::Conflict {
            code,
            message: std::borrow::Cow::Borrowed(message),
        }
    }

    /// 409 with a message made for this case (e.g. naming what is in the way).
    #[must_use]
    pub fn conflict_naming(code: &'static str, message: String) -> Self {
        Self::Conflict {
            code,
            message: std::borrow::Cow::Owned(message),
        }
    }

    /// Maps a store error, answering its `NotFound` as 404 naming `what`.
    pub fn missing(what: &'static str) -> impl Fn(StoreError) -> Self {
        move |e| match e {
            StoreError::NotFound => Self::NotFound(what),
            other => other.into(),
        }
    }

    #[must_use]
    pub const fn unauthorized(code: &'static str, message: &'static str) -> Self {
        Self::Unauthorized { code, message }
    }

    #[must_use]
    pub const fn gone(code: &'static str, message: &'static str) -> Self {
        Self::Gone { code, message }
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::NotFound("resource"),
            StoreError::Conflict(c) => Self::Conflict {
                code: c.code(),
                message: std::borrow::Cow::Borrowed(c.message()),
            },
            StoreError::Backend(msg) => Self::Internal(msg),
            StoreError::Busy => Self::Busy,
        }
    }
}

pub type ServiceResult<T> = Result<T, ServiceError>;
