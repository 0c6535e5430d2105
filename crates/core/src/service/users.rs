//! Profiles and server administration of accounts.

use super::{Actor, ClientMeta, Result, Services};
use crate::audit::{AuditActor, AuditEntry};
use crate::error::ServiceError;
use crate::event::{Cached, Control, Event};
use crate::files::FilesHeld;
use crate::ids::*;
use crate::model::*;
use crate::password::NewPassword;
use crate::policy;
use crate::store::{Page, UserFlags};
use crate::types::*;

/// Proof that the caller may use the server admin API: a server admin's session or the
/// management token. Only core makes one, after the check (`Services::admin_from_actor`,
/// `Services::identify_management`); its fields are core's alone.
#[derive(Debug, Clone)]
pub struct ServerAdmin {
    /// `None` when the management token is the caller.
    pub(super) user: Option<UserId>,
    /// Who this is in the audit log.
    pub(super) audit_actor: AuditActor,
    /// Where the request came from.
    pub(super) meta: ClientMeta,
}

impl ServerAdmin {
    /// The management token's capability, once `identity` has compared it.
    pub(crate) fn management(meta: ClientMeta) -> Self {
        Self {
            user: None,
            audit_actor: AuditActor::management(),
            meta,
        }
    }

    /// The operator of a server command (`conclave users reset-password`), who can read the
    /// configuration and the database anyway: in the audit log as the system, with the
    /// command as its user agent. Only the command-line tool makes one; no request can.
    #[must_use]
    pub fn command_line(command: &str) -> Self {
        Self {
            user: None,
            audit_actor: AuditActor::system(),
            meta: ClientMeta {
                user_agent: Some(command.to_owned()),
                ..ClientMeta::default()
            },
        }
    }

    /// The signed-in admin; `None` for the management token.
    #[must_use]
    pub const fn user(&self) -> Option<UserId> {
        self.user
    }
}

impl Services {
    /// Another user's public profile: only for users who share an org with the caller.
    pub async fn user_profile(&self, actor: &Actor, id: UserId) -> Result<UserSummary> {
        if id != actor.user.id && !self.store.users_share_org(actor.user.id, id).await? {
            return Err(ServiceError::NotFound("user"));
        }
        if id != actor.user.id && !self.shares_an_open_org(actor, id).await? {
            // Only orgs that lock the caller out (AUTH-4a) are shared: they lend no sight.
            return Err(ServiceError::NotFound("user"));
        }
        if let Some(org) = actor.credential.org() {
            // A bot or key sees only people of its own org.
            if id != actor.user.id && self.store.membership(org, id).await?.is_none() {
                return Err(ServiceError::forbidden(
                    "insufficient_scope",
                    "this credential's scopes do not cover this request",
                ));
            }
        }
        Ok(self.store.user(id).await?.summary())
    }

    /// Whether `actor` shares with `id` an org that does not lock them out for want of 2FA
    /// (AUTH-4a: nothing of such an org reaches them, its members' profiles included).
    async fn shares_an_open_org(&self, actor: &Actor, id: UserId) -> Result<bool> {
        let orgs = self.store.orgs_for_user(actor.user.id).await?;
        let locked = self.locked_orgs(actor, orgs.iter().map(|(o, _)| o)).await?;
        if locked.is_empty() {
            return Ok(true);
        }
        for (org, _) in orgs.iter().filter(|(o, _)| !locked.contains(&o.id)) {
            if self.store.membership(org.id, id).await?.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Changes the global profile: a session of the user only, never a bot or key (AZ-7) nor an
    /// impersonated session (AUTH-12). `None` changes nothing.
    pub async fn set_display_name(
        &self,
        actor: &Actor,
        name: Option<Option<DisplayName>>,
    ) -> Result<User> {
        Self::require_own_session(actor)?;
        let Some(name) = name else {
            return Ok(actor.user.clone());
        };
        let user = self
            .store
            .set_display_name(
                actor.user.id,
                name.as_ref(),
                &[self.own_audit(actor, "user.profile_updated")],
            )
            .await?;
        // Cached credentials carry the account as `GET /users/@me` answers it.
        self.stale(vec![Cached::User(user.id)]);
        Ok(user)
    }

    /// The admin capability for a signed-in user, if they are a server admin.
    pub fn admin_from_actor(&self, actor: &Actor) -> Result<ServerAdmin> {
        if policy::server_admin_allows(actor.user.server_admin) {
            Ok(ServerAdmin {
                user: Some(actor.user.id),
                audit_actor: actor.audit_actor(),
                meta: actor.meta.clone(),
            })
        } else {
            Err(ServiceError::not_allowed(
                "server admin rights are required",
            ))
        }
    }

    /// An audit entry for what a server admin (or the management token) does now.
    pub(super) fn admin_audit(&self, admin: &ServerAdmin, event: &str) -> AuditEntry {
        self.audit_as(admin.audit_actor.clone(), &admin.meta, event)
    }

    /// A page of accounts, each with what its files take (DATA-1: the quota's use).
    pub async fn admin_list_users(
        &self,
        _admin: &ServerAdmin,
        page: Page<UserId>,
    ) -> Result<Vec<(User, FilesHeld)>> {
        let users = self.store.list_users(page).await?;
        let ids: Vec<UserId> = users.iter().map(|u| u.id).collect();
        let mut held = self.store.files_held(&ids).await?;
        Ok(users
            .into_iter()
            .map(|u| {
                let files = held.remove(&u.id).unwrap_or_default();
                (u, files)
            })
            .collect())
    }

    pub async fn admin_create_user(
        &self,
        admin: &ServerAdmin,
        username: Username,
        password: NewPassword,
        email: Option<Email>,
        server_admin: bool,
    ) -> Result<User> {
        let mut new = self
            .new_password_user(username, &password, email, server_admin)
            .await?;
        // The admin typed the address: the server takes it as the owner's (AUTH-10 linking).
        new.email_verified = new.email.is_some();
        let audit = self
            .admin_audit(admin, "admin.user_created")
            .resource("user", new.id)
            .detail(serde_json::json!({ "server_admin": server_admin }));
        Ok(self.store.create_user(&new, &[audit]).await?)
    }

    /// Disables/enables an account or changes server-admin rights. Disabling revokes every
    /// session at once; so does any change of rights (a new session is issued at the next login).
    pub async fn admin_update_user(
        &self,
        admin: &ServerAdmin,
        id: UserId,
        flags: UserFlags,
    ) -> Result<User> {
        let demotes = flags.disabled == Some(true) || flags.server_admin == Some(false);
        if !policy::credentials::admin_may_update(admin.user, id, demotes) {
            return Err(ServiceError::conflict(
                "cannot_demote_self",
                "you cannot disable or demote your own account",
            ));
        }
        let before = self.existing_user(id).await?;
        let user = self
            .store
            .set_user_flags(
                id,
                flags,
                &[self
                    .admin_audit(admin, "admin.user_updated")
                    .resource("user", id)
                    .detail(serde_json::json!({
                        "disabled": flags.disabled,
                        "server_admin": flags.server_admin,
                        "require_2fa": flags.require_2fa,
                        "email_verified": flags.email_verified,
                    }))],
            )
            .await
            .map_err(|e| match e {
                // The account exists but was erased (DATA-6): it stays off for good.
                crate::store::StoreError::NotFound => ServiceError::conflict(
                    "account_erased",
                    "the account was erased and cannot be changed",
                ),
                other => other.into(),
            })?;
        // Every flag is read from the account cached with each credential.
        self.stale(vec![Cached::User(id)]);
        if user.disabled != before.disabled && user.disabled
            || user.server_admin != before.server_admin
        {
            // Hers, and those she started as someone else while a server admin.
            let ended = self.store.delete_sessions(id, None, &[]).await?;
            self.emit(Event::control(Control::RevokeUser {
                user: id,
                except: None,
            }));
            self.end_impersonations(&ended.impersonating);
        }
        if user.require_2fa && !before.require_2fa && !self.has_2fa(id).await? {
            // At once for every credential (AUTH-4a): open sockets close with 4014.
            self.emit(Event::control(Control::RequireSecondFactor { user: id }));
        }
        Ok(user)
    }
}
