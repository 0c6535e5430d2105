//! Single sign-on (AUTH-10, AUTH-11): outside identities linked to local accounts, single-use
//! token ids, and OpenID sign-ins between their start and their callback.

use super::StoreResult;
use crate::audit::AuditEntry;
use crate::ids::*;
use crate::model::*;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

/// Where an outside identity comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IdentityKind {
    /// A host app's signed JWT (AUTH-11); the provider is the `[[host_jwt]]` id.
    HostJwt,
    /// An OpenID Connect provider (AUTH-10); the provider is its issuer.
    Oidc,
    /// An LDAP directory (AUTH-10); the provider is the directory's URL.
    Ldap,
}

impl IdentityKind {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::HostJwt => "host_jwt",
            Self::Oidc => "oidc",
            Self::Ldap => "ldap",
        }
    }

    #[must_use]
    pub fn parse(raw: &str) -> Option<Self> {
        [Self::HostJwt, Self::Oidc, Self::Ldap]
            .into_iter()
            .find(|k| k.as_str() == raw)
    }
}

/// The key of an outside identity: who vouches (kind and provider) and for whom (subject).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdentityKey {
    pub kind: IdentityKind,
    pub provider: String,
    pub subject: String,
}

/// An outside identity linked to a local account, as the account's admins see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct LinkedIdentity {
    pub kind: IdentityKind,
    /// The `[[host_jwt]]` id, the OpenID issuer or the directory URL.
    pub provider: String,
    /// The provider's id of the user (`sub`, or the directory entry's DN).
    pub subject: String,
    pub user_id: UserId,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
}

/// Outside identities, single-use token ids and pending OpenID sign-ins.
#[async_trait]
pub trait SsoStore: Send + Sync + 'static {
    /// The account `key` is linked to, if any (its `last_used_at` set to `at`).
    async fn user_by_identity(
        &self,
        key: &IdentityKey,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<User>>;

    /// Creates `user` linked to `key`, in one transaction with `audit`. `IdentityTaken` when
    /// another request linked `key` first (nothing is created then), `UsernameTaken` when the
    /// name is in use.
    async fn create_user_with_identity(
        &self,
        user: &NewUser,
        key: &IdentityKey,
        audit: &[AuditEntry],
    ) -> StoreResult<User>;

    /// Links `key` to the existing account `user`; `IdentityTaken` when it is linked already.
    async fn link_identity(
        &self,
        user: UserId,
        key: &IdentityKey,
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> StoreResult<()>;

    /// The one account whose email is `email` (case-insensitively), when the server knows the
    /// account owns it ([`User::email_verified`]); `None` when there is none, more than one
    /// account has it, or the one that has it is not verified.
    async fn user_by_verified_email(&self, email: &str) -> StoreResult<Option<User>>;

    /// The identities linked to `user`, oldest first.
    async fn identities_of(&self, user: UserId) -> StoreResult<Vec<LinkedIdentity>>;

    /// Every identity of `kind` vouched for by `provider` (a directory's linked accounts, which
    /// its periodic check looks up again), oldest first.
    async fn identities_of_provider(
        &self,
        kind: IdentityKind,
        provider: &str,
    ) -> StoreResult<Vec<LinkedIdentity>>;

    /// Spends the single-use token id `token_id` of `provider`, remembered until `expires_at`:
    /// `false` when it was spent before (one conditional insert, so of any number of
    /// concurrent spends on any nodes exactly one wins). Ids past their expiry are forgotten.
    async fn spend_token_id(
        &self,
        provider: &str,
        token_id: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// Records a pending OpenID sign-in under the keyed hash of its `state`.
    async fn put_sso_login(
        &self,
        state_hash: &[u8; 32],
        provider: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;

    /// Takes (deletes) the pending sign-in under `state_hash`: its provider, when it existed
    /// and had not expired at `now`. A second take of the same state finds nothing.
    async fn take_sso_login(
        &self,
        state_hash: &[u8; 32],
        now: DateTime<Utc>,
    ) -> StoreResult<Option<String>>;
}
