//! Invites to an organisation: created by code or for a named user, redeemed within their
//! limits, revoked.

use super::StoreResult;
use crate::audit::AuditEntry;
use crate::ids::*;
use crate::model::*;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// Who uses an invite, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InviteUse {
    pub user: UserId,
    pub at: DateTime<Utc>,
}

/// Invites; use counts and expiry are checked in the same transaction that adds the member.
#[async_trait]
pub trait InviteStore: Send + Sync + 'static {
    async fn create_invite(
        &self,
        invite: &Invite,
        code_hash: &[u8],
        audit: &[AuditEntry],
    ) -> StoreResult<()>;
    /// Uses an invite for `user`: checks expiry and use count, adds the membership; answers
    /// the invite as used and the new membership.
    async fn redeem_invite(
        &self,
        code_hash: &[u8],
        by: InviteUse,
        audit: &[AuditEntry],
    ) -> StoreResult<(Invite, Member)>;
    /// Creates `user` and uses the invite for them, in one transaction with `audit`: when the
    /// invite cannot be used (`InviteExhausted`: used up, expired, for someone else, or gone)
    /// or the name is taken, nothing is created and no use is taken — so parallel
    /// registrations with one single-use code make one account, not one each.
    async fn register_with_invite(
        &self,
        user: &NewUser,
        code_hash: &[u8],
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> StoreResult<(User, Invite, Member)>;
    /// Checks an invite could be used now, without using it.
    async fn invite_by_code(&self, code_hash: &[u8]) -> StoreResult<Option<Invite>>;
    /// Every invite of an org, newest first.
    async fn org_invites(&self, org: OrgId) -> StoreResult<Vec<Invite>>;
    /// Deletes an invite of `org`; `NotFound` when `org` has no such invite.
    async fn revoke_invite(
        &self,
        org: OrgId,
        id: InviteId,
        audit: &[AuditEntry],
    ) -> StoreResult<()>;
    /// The usable invites naming `user` (by username) of orgs they are not in, newest first.
    async fn pending_invites(
        &self,
        user: UserId,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<PendingInvite>>;
    /// Takes invite `id` for `user` in one step: only when it names them and is usable now;
    /// adds the membership, answered as in `redeem_invite`. `NotFound` otherwise,
    /// `AlreadyMember` when they are in the org.
    async fn accept_invite(
        &self,
        id: InviteId,
        by: InviteUse,
        audit: &[AuditEntry],
    ) -> StoreResult<(Invite, Member)>;
}
