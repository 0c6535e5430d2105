//! How the host vouches for a signed-in visitor (WEB-4): the `identity` of a session request,
//! either `user_id` with an HMAC `hash` or a short-lived HS256 `token`.

use crate::http::error::{ApiError, ApiResult};
use crate::sso::host_jwt::{verify_widget_token, JwtRefusal};
use chrono::{DateTime, Utc};
use conclave_core::error::ServiceError;
use conclave_core::service::widget::{HostUser, SignedIdentity};
use conclave_core::types::{DisplayName, Email};
use conclave_core::widget::ExternalUserId;
use serde::Deserialize;
use utoipa::ToSchema;

/// How the host vouches for its signed-in visitor: `user_id` with `hash`, or `token`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentityBody {
    /// The host application's user id.
    user_id: Option<ExternalUserId>,
    name: Option<DisplayName>,
    email: Option<Email>,
    /// HMAC-SHA256 of `user_id` keyed with the widget key's identity secret, hex.
    #[schema(max_length = 128)]
    hash: Option<String>,
    /// Instead of `user_id` and `hash`: a short-lived JWT signed HS256 with the widget key's
    /// identity secret; `sub` is the user id, `exp` and `iat` are required (at most one hour
    /// apart), `name` and `email` are read when present.
    #[schema(max_length = 8192)]
    token: Option<String>,
}

/// The longest visitor token read.
const MAX_TOKEN_CHARS: usize = 8192;

/// What the identity body holds: a signature, or a token to check.
pub(super) enum Proof {
    Signed(SignedIdentity),
    Token(String),
}

impl IdentityBody {
    pub(super) fn proof(self) -> ApiResult<Proof> {
        if let Some(token) = self.token {
            if self.user_id.is_some() || self.hash.is_some() || self.name.is_some() {
                return Err(ApiError::invalid(
                    "not_combinable",
                    "give either `token` or `user_id` and `hash` (the token names the user)",
                    "/identity/token",
                ));
            }
            if self.email.is_some() {
                return Err(ApiError::invalid(
                    "not_combinable",
                    "with a `token`, the e-mail address is the token's `email` claim",
                    "/identity/email",
                ));
            }
            if token.is_empty() || token.len() > MAX_TOKEN_CHARS {
                return Err(ApiError::invalid(
                    "invalid_length",
                    "`token` must be 1 to 8192 characters",
                    "/identity/token",
                ));
            }
            return Ok(Proof::Token(token));
        }
        let Some(user_id) = self.user_id else {
            return Err(ApiError::invalid(
                "required",
                "`user_id` is required (or a `token`)",
                "/identity/user_id",
            ));
        };
        let Some(hash) = self.hash.filter(|h| h.len() <= 128) else {
            return Err(ApiError::invalid(
                "required",
                "`hash` is required (at most 128 hex digits)",
                "/identity/hash",
            ));
        };
        Ok(Proof::Signed(SignedIdentity {
            user: HostUser {
                user_id,
                name: self.name,
                email: self.email,
            },
            hash,
        }))
    }
}

/// Why a visitor token is refused: 403 `identity_invalid` naming the failing rule (nothing of
/// the token or the secret).
fn token_refused(why: JwtRefusal) -> ServiceError {
    let message = match why {
        JwtRefusal::Malformed => "the identity token is not a well-formed JWT",
        JwtRefusal::AlgorithmNotAllowed => "the identity token must be signed with HS256",
        JwtRefusal::BadSignature | JwtRefusal::UnknownKey => {
            "the identity token's signature does not verify with this widget key's identity secret"
        }
        JwtRefusal::Expired => "the identity token has expired",
        JwtRefusal::NotYetValid => "the identity token is not valid yet (`iat` or `nbf` is ahead)",
        JwtRefusal::LifetimeTooLong => {
            "the identity token's lifetime (`exp` - `iat`) must be above zero and at most one hour"
        }
        JwtRefusal::MissingClaim
        | JwtRefusal::UnknownIssuer
        | JwtRefusal::WrongAudience
        | JwtRefusal::WrongIssuer => {
            "a required claim of the identity token (sub, exp, iat) is missing or invalid"
        }
    };
    ServiceError::forbidden("identity_invalid", message)
}

/// WEB-4: the host user a visitor token names, once `verify_widget_token` believed it with the
/// key's identity secret; its `sub`, `name` and `email` are checked like the fields of a
/// signed identity.
pub(super) fn token_user(
    token: &str,
    secret: &[u8],
    now: DateTime<Utc>,
) -> Result<HostUser, ServiceError> {
    let claims = verify_widget_token(token, secret, now).map_err(token_refused)?;
    let bad = |claim: &str, r: conclave_core::types::Rejection| {
        ServiceError::invalid(
            "/identity/token",
            r.code,
            format!("the identity token's `{claim}` claim {}", r.message),
        )
    };
    let user_id = ExternalUserId::parse(&claims.subject).map_err(|r| bad("sub", r))?;
    let name = (claims.name.as_deref())
        .map(DisplayName::parse)
        .transpose()
        .map_err(|r| bad("name", r))?;
    let email = (claims.email.as_deref())
        .map(Email::parse)
        .transpose()
        .map_err(|r| bad("email", r))?;
    Ok(HostUser {
        user_id,
        name,
        email,
    })
}
