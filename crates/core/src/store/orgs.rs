//! Organisations and their members: settings, roles, the last-owner rule and transfers.

use super::{Page, StoreResult};
use crate::audit::AuditEntry;
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

/// Organisations and memberships; every role change keeps an owner (`LastOrgOwner`).
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
    async fn delete_org(&self, id: OrgId, audit: &[AuditEntry]) -> StoreResult<()>;
    async fn membership(&self, org: OrgId, user: UserId) -> StoreResult<Option<OrgRole>>;
    async fn members(&self, org: OrgId, page: Page<UserId>) -> StoreResult<Vec<Member>>;
    async fn member(&self, org: OrgId, user: UserId) -> StoreResult<Member>;
    async fn add_member(
        &self,
        org: OrgId,
        user: UserId,
        role: OrgRole,
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> StoreResult<()>;
    /// Fails with `LastOrgOwner` when it would leave the org without an owner.
    async fn set_member_role(
        &self,
        org: OrgId,
        user: UserId,
        role: OrgRole,
        audit: &[AuditEntry],
    ) -> StoreResult<()>;
    /// Removes the member, their team memberships and conversation participations in the org;
    /// answers the conversations they left, as the transaction saw them (so a participation
    /// added while the removal ran is never missed). Conversations they were the only owner of
    /// pass to their longest-standing participant.
    async fn remove_member(
        &self,
        org: OrgId,
        user: UserId,
        audit: &[AuditEntry],
    ) -> StoreResult<Vec<ConversationId>>;
    /// `to` becomes owner and `from` admin, atomically.
    async fn transfer_org(
        &self,
        org: OrgId,
        from: UserId,
        to: UserId,
        audit: &[AuditEntry],
    ) -> StoreResult<()>;
}
