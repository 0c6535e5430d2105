//! Organisations and their members: settings, roles, the last-owner rule and transfers.

use super::{Page, StoreResult};
use crate::audit::AuditEntry;
use crate::files::FreedBlobs;
use crate::ids::*;
use crate::model::*;
use crate::types::*;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// Settings of an org that owners and admins may change.
#[derive(Debug, Clone, Default)]
pub struct OrgPatch {
    pub name: Option<Name>,
    pub require_2fa: Option<bool>,
    pub message_retention_days: Option<Option<i32>>,
    pub audit_retention_days: Option<Option<i32>>,
    pub erasure: Option<ErasurePolicy>,
}

/// Who holds which role in an org: what `add_member` and `set_member_role` write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Membership {
    pub org: OrgId,
    pub user: UserId,
    pub role: OrgRole,
}

/// The rule a change to someone else's membership was allowed by (AZ-2), asked again by the
/// store under the org's lock with the roles held now: `allows(by's role now — None when no
/// longer a member —, the member's role now)`. A change decided on roles read before its
/// transaction is made only while the rule still allows it (`Conflict::RolesChanged`
/// otherwise) — so an admin's demotion or removal of a member promoted to owner meanwhile, or
/// a change by an admin demoted meanwhile, never lands; one that holds on either order does.
#[derive(Clone, Copy)]
pub struct DecidedOn<'a> {
    pub by: UserId,
    pub allows: &'a (dyn Fn(Option<OrgRole>, OrgRole) -> bool + Send + Sync),
}

impl std::fmt::Debug for DecidedOn<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecidedOn").field("by", &self.by).finish()
    }
}

/// An org's ownership handed from one member to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transfer {
    pub org: OrgId,
    pub from: UserId,
    pub to: UserId,
}

/// A member taken out of an org, as the removal's own transaction saw them: the membership,
/// and the participations in the org's conversations that went with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    pub member: Member,
    pub participations: Vec<Participant>,
}

/// Organisations and memberships; every role change keeps an owner (`LastOrgOwner`). Each
/// change of a membership answers the membership as its own transaction left (or, removed,
/// found) it: what the change's REST answer and its webhook event carry.
#[async_trait]
pub trait OrgStore: Send + Sync + 'static {
    async fn create_org(&self, org: &Org, owner: UserId, audit: &[AuditEntry]) -> StoreResult<()>;
    async fn org(&self, id: OrgId) -> StoreResult<Org>;
    async fn orgs_for_user(&self, user: UserId) -> StoreResult<Vec<(Org, OrgRole)>>;
    async fn update_org(
        &self,
        id: OrgId,
        patch: &OrgPatch,
        audit: &[AuditEntry],
    ) -> StoreResult<Org>;
    /// Deletes the org with everything in it; its files' rows go (their bytes given back to
    /// their uploaders) and their keys are answered.
    async fn delete_org(&self, id: OrgId, audit: &[AuditEntry]) -> StoreResult<FreedBlobs>;
    async fn membership(&self, org: OrgId, user: UserId) -> StoreResult<Option<OrgRole>>;
    async fn members(&self, org: OrgId, page: Page<UserId>) -> StoreResult<Vec<Member>>;
    async fn member(&self, org: OrgId, user: UserId) -> StoreResult<Member>;
    async fn add_member(
        &self,
        membership: Membership,
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> StoreResult<Member>;
    /// Answers the membership with its new role, and whether the role changed (it may have
    /// been the role already; then `audit` is not written). Fails with `LastOrgOwner` when it
    /// would leave the org without an owner.
    /// With `decided` (a change made by someone else), only while those roles still hold.
    async fn set_member_role(
        &self,
        membership: Membership,
        decided: Option<DecidedOn<'_>>,
        audit: &[AuditEntry],
    ) -> StoreResult<(Member, bool)>;
    /// Removes the member, their team memberships and conversation participations in the org;
    /// answers them as the transaction saw them (so a participation added while the removal
    /// ran is never missed). Conversations they were the only owner of pass to their
    /// longest-standing participant. With `decided` (a removal by someone else), only while
    /// those roles still hold.
    async fn remove_member(
        &self,
        org: OrgId,
        user: UserId,
        decided: Option<DecidedOn<'_>>,
        audit: &[AuditEntry],
    ) -> StoreResult<Removed>;
    /// `to` becomes owner and `from` admin, atomically, while `from` is still an owner
    /// (`Conflict::RolesChanged` otherwise); answers the memberships whose role
    /// changed (`to` first: already a co-owner, only `from` changes; none when `from == to`).
    async fn transfer_org(
        &self,
        transfer: Transfer,
        audit: &[AuditEntry],
    ) -> StoreResult<Vec<Member>>;
}
