//! Teams inside an organisation and who belongs to them.

use super::StoreResult;
use crate::audit::AuditEntry;
use crate::ids::*;
use crate::model::*;
use async_trait::async_trait;

/// Teams and team members.
#[async_trait]
pub trait TeamStore: Send + Sync + 'static {
    async fn create_team(&self, team: &Team, audit: &[AuditEntry]) -> StoreResult<()>;
    async fn teams(&self, org: OrgId) -> StoreResult<Vec<Team>>;
    async fn team(&self, id: TeamId) -> StoreResult<Team>;
    async fn add_team_member(
        &self,
        team: TeamId,
        user: UserId,
        audit: &[AuditEntry],
    ) -> StoreResult<()>;
    async fn remove_team_member(
        &self,
        team: TeamId,
        user: UserId,
        audit: &[AuditEntry],
    ) -> StoreResult<()>;
    async fn user_teams(&self, org: OrgId, user: UserId) -> StoreResult<Vec<TeamId>>;
}
