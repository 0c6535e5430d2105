//! The OAuth authorization server's records (MCP-2): registered clients, pending
//! authorizations, codes, grants and their tokens. Single use and rotation are atomic here:
//! a code is consumed, and a refresh token rotated, by one conditional `UPDATE` in the
//! transaction that issues the new tokens.

use super::StoreResult;
use crate::audit::AuditEntry;
use crate::ids::*;
use crate::oauth::*;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// Decides, inside the store's transaction, whether a consumed code may become a grant (and
/// which, with the audit rows of its creation): `None` refuses it (the code stays used).
pub type CodeCheck<'a> =
    &'a (dyn Fn(&AuthorizationCode) -> Option<(Grant, Vec<AuditEntry>)> + Send + Sync);

/// Decides, inside the store's transaction, whether a refresh token of this grant may be
/// rotated (the right client, the right resource).
pub type RefreshCheck<'a> = &'a (dyn Fn(&Grant) -> bool + Send + Sync);

#[async_trait]
pub trait OAuthStore: Send + Sync + 'static {
    async fn create_oauth_client(
        &self,
        client: &OAuthClient,
        audit: &[AuditEntry],
    ) -> StoreResult<()>;
    async fn oauth_client(&self, id: OAuthClientId) -> StoreResult<OAuthClient>;
    /// An org's clients, oldest first.
    async fn oauth_clients(&self, org: OrgId) -> StoreResult<Vec<OAuthClient>>;
    /// Deletes a client of `org` with everything it was granted; `NotFound` when there is none.
    async fn delete_oauth_client(
        &self,
        org: OrgId,
        id: OAuthClientId,
        audit: &[AuditEntry],
    ) -> StoreResult<()>;

    /// Stores a pending authorization (and drops those that expired before its creation).
    async fn create_oauth_request(&self, request: &AuthorizationRequest) -> StoreResult<()>;
    /// A pending authorization, expired or not.
    async fn oauth_request(&self, id: OAuthRequestId) -> StoreResult<AuthorizationRequest>;
    /// Removes a pending authorization that has not expired at `now` and answers it: whoever
    /// takes it decides it, once. `NotFound` when it is gone or expired.
    async fn take_oauth_request(
        &self,
        id: OAuthRequestId,
        now: DateTime<Utc>,
    ) -> StoreResult<AuthorizationRequest>;

    async fn create_oauth_code(&self, code: &AuthorizationCode, hash: &[u8]) -> StoreResult<()>;
    /// Redeems the code with this hash: marks it used (`UPDATE … WHERE used = false`), and when
    /// it has not expired at `now` and `check` makes a grant of it, stores that grant with
    /// `tokens` and the check's audit rows, all in one transaction. A code used before answers
    /// the grant it made.
    async fn exchange_oauth_code(
        &self,
        hash: &[u8],
        now: DateTime<Utc>,
        check: CodeCheck<'_>,
        tokens: &NewTokens,
    ) -> StoreResult<CodeExchange>;

    /// Rotates the refresh token with this hash: marks it used (`UPDATE … WHERE used =
    /// false`), and when it is live at `now`, its grant is not revoked and `check` accepts the
    /// grant, stores `tokens` for the grant, in one transaction. A token used before answers
    /// its grant (the family to revoke).
    async fn rotate_oauth_refresh(
        &self,
        hash: &[u8],
        now: DateTime<Utc>,
        check: RefreshCheck<'_>,
        tokens: &NewTokens,
    ) -> StoreResult<RefreshRotation>;

    /// The live grant of the access token with this hash, with the token's id and end
    /// (expiry is the caller's to check).
    async fn oauth_access_token(
        &self,
        hash: &[u8],
    ) -> StoreResult<Option<(Grant, uuid::Uuid, DateTime<Utc>)>>;
    /// The live grant of the refresh token with this hash, used or not.
    async fn oauth_refresh_grant(&self, hash: &[u8]) -> StoreResult<Option<Grant>>;
    /// Deletes one access token; whether there was one.
    async fn delete_oauth_access_token(&self, hash: &[u8]) -> StoreResult<bool>;

    async fn oauth_grant(&self, id: GrantId) -> StoreResult<Grant>;
    /// A user's live grants, oldest first.
    async fn user_grants(&self, user: UserId) -> StoreResult<Vec<Grant>>;
    /// An org's live grants, oldest first.
    async fn org_grants(&self, org: OrgId) -> StoreResult<Vec<Grant>>;
    /// Marks a live grant revoked at `at` and deletes its tokens, with `audit`, in one
    /// transaction; answers it. `NotFound` when it is gone or revoked already.
    async fn revoke_oauth_grant(
        &self,
        id: GrantId,
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> StoreResult<Grant>;
}
