//! Organizations: the caller's role in one (the check every org route starts with), creating,
//! changing, deleting and transferring them, the org object's `permissions`, and the
//! permissions matrix. Members and teams are in `members`, invites in `invites`. Bots and keys
//! limited to a conversation list never change anything org-wide (AZ-5a), and an impersonated
//! session changes nothing here (AUTH-12).

use super::credentials::INSUFFICIENT_SCOPE;
use super::OrgView;
use super::{Actor, Result, Services};
use crate::error::ServiceError;
use crate::event::{Cached, Control, Event};
use crate::ids::*;
use crate::model::*;
use crate::policy::{self, CallerLimits, OrgAction};
use crate::store::{OrgPatch, Page, Transfer};
use crate::types::*;
use serde::Serialize;

/// The shortest audit retention an org may set, whatever the server allows (DATA-5).
pub const AUDIT_RETENTION_FLOOR_DAYS: u32 = 30;

/// One row of the matrix: an action and, per role, whether it is allowed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MatrixEntry {
    pub action: OrgAction,
    pub owner: bool,
    pub admin: bool,
    pub member: bool,
    pub viewer: bool,
}

/// Who can do what in an org, computed by `policy`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PermissionsMatrix {
    pub org_id: OrgId,
    /// Per org action, which roles may do it.
    pub roles: Vec<MatrixEntry>,
    /// Per member, the actions their role allows.
    pub members: Vec<MemberPermissions>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MemberPermissions {
    pub user_id: UserId,
    pub username: String,
    pub role: OrgRole,
    pub actions: Vec<OrgAction>,
}

impl Services {
    /// The caller's role in the org; 404 for non-members (nothing leaks across orgs), 403
    /// `insufficient_scope` for a bot or key of another org.
    /// 403 `mfa_setup_required` when the org requires 2FA and the caller has not enabled it.
    pub(super) async fn org_role(&self, actor: &Actor, org: OrgId) -> Result<OrgRole> {
        let standing = self
            .standing(org, actor.user.id)
            .await?
            .ok_or(ServiceError::NotFound("organization"))?;
        Self::check_org_credential(actor, org)?;
        self.check_2fa_standing(actor, org, &standing).await?;
        Ok(standing.role)
    }

    pub(super) async fn require_org(
        &self,
        actor: &Actor,
        org: OrgId,
        action: OrgAction,
    ) -> Result<OrgRole> {
        let role = self.org_role(actor, org).await?;
        if !policy::credential_allows_org_action(&actor.credential, action) {
            self.audit_denied(actor, "org.denied", "insufficient_scope", Some(org), None)
                .await;
            return Err(INSUFFICIENT_SCOPE);
        }
        if policy::org_allows(role, action) {
            Ok(role)
        } else {
            Err(ServiceError::not_allowed(
                "your role in this organization does not allow this",
            ))
        }
    }

    /// Refuses unless `actor` may manage the org's settings of `action` (webhooks, guards,
    /// agents, widget keys): the role and scope `require_org` asks, a credential not limited to
    /// listed conversations (AZ-5a), and for a change (`write`) no impersonated session.
    pub(super) async fn require_org_settings(
        &self,
        actor: &Actor,
        org: OrgId,
        action: OrgAction,
        write: bool,
    ) -> Result<()> {
        if write {
            Self::require_not_impersonated(actor)?;
        }
        self.require_org(actor, org, action).await?;
        Self::require_unlisted(actor)
    }

    /// Refuses (404, 403) a caller who may not change `org`'s settings with `action`, before
    /// work that must not be done for them: an endpoint URL's lookup through the SSRF guard,
    /// whose verdict ("a private address", "does not resolve") would map internal names for
    /// anyone. The change itself checks again.
    pub async fn authorize_org_change(
        &self,
        actor: &Actor,
        org: OrgId,
        action: OrgAction,
    ) -> Result<()> {
        self.require_org_settings(actor, org, action, true).await
    }

    /// `org` with the caller's `role` and what they may do in it through this credential.
    pub(super) fn org_view(actor: &Actor, org: Org, role: OrgRole) -> OrgView {
        OrgView {
            org,
            role,
            permissions: policy::org_permissions(role, super::conversations::limits(actor)),
        }
    }

    pub async fn create_org(&self, actor: &Actor, name: Name) -> Result<OrgView> {
        if !policy::may_create_org(actor.user.kind) {
            return Err(ServiceError::not_allowed(
                "bots cannot create organizations",
            ));
        }
        Self::require_own_session(actor)?;
        let org = Org {
            id: OrgId::new(),
            name: name.into_inner(),
            require_2fa: false,
            message_retention_days: None,
            audit_retention_days: None,
            erasure: ErasurePolicy::Tombstone,
            created_at: self.clock.now(),
        };
        let audit = self
            .audit(actor, "org.created")
            .resource("org", org.id)
            .org(org.id);
        self.store.create_org(&org, actor.user.id, &[audit]).await?;
        Ok(Self::org_view(actor, org, OrgRole::Owner))
    }

    /// The caller's orgs, leaving out those they may not read now (AUTH-4a: an org that
    /// requires 2FA they lack shows nothing of itself, its name included; its routes answer
    /// 403 `mfa_setup_required`, and enabling 2FA needs none of them).
    pub async fn my_orgs(&self, actor: &Actor) -> Result<Vec<OrgView>> {
        let mut orgs = self.store.orgs_for_user(actor.user.id).await?;
        orgs.retain(|(org, _)| actor.credential.covers_org(org.id));
        let locked = self.locked_orgs(actor, orgs.iter().map(|(o, _)| o)).await?;
        orgs.retain(|(org, _)| !locked.contains(&org.id));
        Ok(orgs
            .into_iter()
            .map(|(org, role)| Self::org_view(actor, org, role))
            .collect())
    }

    pub async fn get_org(&self, actor: &Actor, id: OrgId) -> Result<OrgView> {
        let role = self.require_org(actor, id, OrgAction::ViewOrg).await?;
        Ok(Self::org_view(actor, self.store.org(id).await?, role))
    }

    pub async fn update_org(&self, actor: &Actor, id: OrgId, patch: OrgPatch) -> Result<OrgView> {
        Self::require_not_impersonated(actor)?;
        let role = self.require_org(actor, id, OrgAction::UpdateOrg).await?;
        let before = self.store.org(id).await?;
        let relaxes_2fa = before.require_2fa && patch.require_2fa == Some(false);
        let retention_change = patch
            .audit_retention_days
            .filter(|&days| days != before.audit_retention_days);
        if (relaxes_2fa || retention_change.is_some()) && !policy::may_change_security_setting(role)
        {
            return Err(ServiceError::forbidden(
                "owner_required",
                "only an owner turns off required 2FA or changes the audit retention",
            ));
        }
        if let Some(Some(days)) = retention_change {
            let floor = self.audit_retention_floor_days();
            if u32::try_from(days).map_or(true, |d| d < floor) {
                return Err(ServiceError::invalid(
                    "audit_retention_days",
                    "below_floor",
                    format!("must be at least {floor} days, or null to keep the log forever"),
                ));
            }
        }
        if patch.require_2fa == Some(true) && !self.has_2fa(actor.user.id).await? {
            // Requiring 2FA without having it would lock the caller out of their own org.
            return Err(ServiceError::conflict(
                "mfa_required_for_owner",
                "enable two-factor authentication on your own account before requiring it",
            ));
        }
        let mut changed = Vec::new();
        if patch.name.is_some() {
            changed.push("name");
        }
        if patch.require_2fa.is_some() {
            changed.push("require_2fa");
        }
        if patch.message_retention_days.is_some() {
            changed.push("message_retention_days");
        }
        if patch.audit_retention_days.is_some() {
            changed.push("audit_retention_days");
        }
        if patch.erasure.is_some() {
            changed.push("erasure");
        }
        // DATA-4: what each setting was and became (none is secret) — turning the org's 2FA
        // rule off must read differently from turning it on.
        let mut values = crate::audit::SettingChanges::default();
        if let Some(name) = &patch.name {
            values.record("name", &before.name, name.as_str());
        }
        if let Some(on) = patch.require_2fa {
            values.record("require_2fa", before.require_2fa, on);
        }
        if let Some(days) = patch.message_retention_days {
            values.record(
                "message_retention_days",
                before.message_retention_days,
                days,
            );
        }
        if let Some(days) = patch.audit_retention_days {
            values.record("audit_retention_days", before.audit_retention_days, days);
        }
        if let Some(policy) = patch.erasure {
            values.record("erasure", before.erasure, policy);
        }
        let audit = self
            .audit(actor, "org.settings_changed")
            .resource("org", id)
            .org(id)
            .detail(serde_json::json!({ "changed": changed, "values": values.into_value() }));
        let mut entries = vec![audit];
        if let Some(days) = retention_change {
            // Recorded in the server's chain too, which the org's owners cannot prune (DATA-5).
            entries.push(
                self.audit(actor, "org.audit_retention_changed")
                    .resource("org", id)
                    .detail(serde_json::json!({
                        "org_id": id,
                        "from": before.audit_retention_days,
                        "to": days,
                    })),
            );
        }
        let org = self.store.update_org(id, &patch, &entries).await?;
        // Its settings (the 2FA it requires) are part of every member's cached standing.
        self.stale(vec![Cached::Org(id)]);
        if org.require_2fa != before.require_2fa {
            // Enforcement holds on open sockets too (AUTH-4a): members without 2FA (and their
            // bots) get ORG_ACCESS_LOST and nothing more of this org, or ORG_ACCESS_RESTORED.
            self.announce_org_2fa(id).await?;
        }
        Ok(Self::org_view(actor, org, role))
    }

    /// Every member of an org, read page by page.
    pub(super) async fn all_members(&self, org: OrgId) -> Result<Vec<Member>> {
        let mut all = Vec::new();
        let limit = Limit::parse(Some(100)).unwrap_or_default();
        let mut cursor = crate::store::Cursor::After(UserId(uuid::Uuid::nil()));
        loop {
            let page = self.store.members(org, Page { cursor, limit }).await?;
            let full = page.len() == 100;
            if let Some(last) = page.last() {
                cursor = crate::store::Cursor::After(last.user.id);
            }
            all.extend(page);
            if !full {
                return Ok(all);
            }
        }
    }

    pub async fn delete_org(&self, actor: &Actor, id: OrgId) -> Result<()> {
        Self::require_not_impersonated(actor)?;
        self.require_org(actor, id, OrgAction::DeleteOrg).await?;
        // Every conversation of the org goes with it: collect them first to tell open sockets.
        let mut conversations = std::collections::BTreeSet::new();
        for m in self.all_members(id).await? {
            conversations.extend(
                self.store
                    .user_conversation_ids(m.user.id, Some(id))
                    .await?,
            );
        }
        let mut objects = Vec::with_capacity(conversations.len());
        for conv in conversations {
            objects.push(self.store.conversation(conv).await?);
        }
        // Recorded in the org's own chain (which outlives it) and in the server's.
        let in_org = self.audit(actor, "org.deleted").resource("org", id).org(id);
        let on_server = self.audit(actor, "org.deleted").resource("org", id);
        let freed = self.store.delete_org(id, &[in_org, on_server]).await?;
        self.stale(vec![Cached::Org(id)]);
        for conv in objects {
            let drop = Control::Drop {
                conversation: conv.id,
            };
            self.emit(
                Event::conversation("CONVERSATION_DELETE", conv.id, &conv)
                    .in_org(conv.org_id)
                    .with_control(drop),
            );
        }
        self.free(freed).await;
        Ok(())
    }

    pub async fn transfer_org(&self, actor: &Actor, id: OrgId, to: UserId) -> Result<()> {
        Self::require_not_impersonated(actor)?;
        self.require_org(actor, id, OrgAction::TransferOrg).await?;
        if to == actor.user.id {
            return Err(ServiceError::invalid(
                "user_id",
                "invalid_value",
                "you already own this organization",
            ));
        }
        if self.store.membership(id, to).await?.is_none() {
            return Err(ServiceError::invalid(
                "user_id",
                "not_a_member",
                "the new owner must be a member of the organization",
            ));
        }
        if !policy::may_own_org(self.existing_user(to).await?.kind) {
            return Err(super::members::bot_owner("user_id"));
        }
        let audit = self
            .audit(actor, "org.ownership_transferred")
            .resource("user", to)
            .org(id);
        for member in self
            .store
            .transfer_org(
                Transfer {
                    org: id,
                    from: actor.user.id,
                    to,
                },
                &[audit],
            )
            .await?
        {
            self.announce_role_changed(&member);
        }
        Ok(())
    }

    /// The matrix of org actions by role, and what each member may do.
    pub async fn permissions_matrix(&self, actor: &Actor, org: OrgId) -> Result<PermissionsMatrix> {
        self.require_org(actor, org, OrgAction::ViewMembers).await?;
        let roles = OrgAction::ALL
            .iter()
            .map(|&action| MatrixEntry {
                action,
                owner: policy::org_allows(OrgRole::Owner, action),
                admin: policy::org_allows(OrgRole::Admin, action),
                member: policy::org_allows(OrgRole::Member, action),
                viewer: policy::org_allows(OrgRole::Viewer, action),
            })
            .collect();
        let members = self
            .all_members(org)
            .await?
            .into_iter()
            .map(|m| MemberPermissions {
                user_id: m.user.id,
                username: m.user.username,
                role: m.role,
                actions: policy::org_permissions(m.role, CallerLimits::OWN_SESSION),
            })
            .collect();
        Ok(PermissionsMatrix {
            org_id: org,
            roles,
            members,
        })
    }
}
