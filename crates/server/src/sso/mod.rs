//! Single sign-on (AUTH-10, AUTH-11): checking what another system says about a user. Each
//! kind proves an identity its own way — `host_jwt` verifies a host app's signed token — and
//! hands it to `core::service::sso`, which turns it into a session by the same steps for
//! every kind (counters, single use, account linking, disabled accounts, audit).

pub mod host_jwt;
pub mod ldap;
pub mod oidc;

use conclave_core::service::{ExternalIdentity, SsoFailure, SsoRefusal, SsoRules};
use conclave_core::store::{IdentityKey, IdentityKind};
use host_jwt::{HostJwtError, HostJwtVerifier, VerifiedClaims};

/// Everything the server checks outside identities with, built once at start.
#[derive(Debug)]
pub struct Sso {
    pub host_jwt: HostJwtVerifier,
    pub oidc: oidc::Oidc,
    /// The LDAP directory `POST /auth/login` asks about names no local password account holds.
    pub ldap: Option<ldap::Directory>,
}

impl Sso {
    /// Verifies a host JWT at `now` and says who it names, by the host's rules.
    pub async fn host_identity(
        &self,
        token: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(ExternalIdentity, SsoRules), SsoFailure> {
        let claims = self
            .host_jwt
            .verify(token, now)
            .await
            .map_err(|e| match e {
                HostJwtError::Refused(r) => SsoFailure::Refused(SsoRefusal {
                    code: r.code(),
                    message: r.message(),
                }),
                HostJwtError::KeysUnavailable => SsoFailure::Unavailable(keys_unavailable()),
            })?;
        Ok(host_identity(claims))
    }
}

/// What a verified host token says, as an outside identity and its host's rules.
fn host_identity(c: VerifiedClaims) -> (ExternalIdentity, SsoRules) {
    let rules = SsoRules {
        create_users: c.create_users,
        link_by_verified_email: false,
        grants: Vec::new(),
        managed_orgs: Vec::new(),
    };
    let single_use = match (c.single_use, c.token_id) {
        (true, Some(id)) => Some((id, c.remember_until)),
        _ => None,
    };
    let identity = ExternalIdentity {
        key: IdentityKey {
            kind: IdentityKind::HostJwt,
            provider: c.host,
            subject: c.subject,
        },
        username: c.preferred_username,
        display_name: c.name,
        email: c.email,
        // A host's email claim links nothing (AUTH-11 maps `sub` only).
        email_verified: false,
        single_use,
    };
    (identity, rules)
}

/// 503: the provider's keys could not be fetched, so nothing could be decided.
fn keys_unavailable() -> conclave_core::error::ServiceError {
    conclave_core::error::ServiceError::Unavailable {
        code: "sso_unavailable",
        message: "the identity provider's keys could not be fetched; retry shortly",
    }
}

/// The claims of a JWT whose signature was checked already (by `openidconnect`), as JSON: for
/// reading claims the crate has no field for (role mappings).
fn payload(token: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let mut validation = jsonwebtoken::Validation::default();
    validation.insecure_disable_signature_validation();
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    jsonwebtoken::decode(
        token,
        &jsonwebtoken::DecodingKey::from_secret(&[]),
        &validation,
    )
    .ok()
    .map(|d| d.claims)
}
