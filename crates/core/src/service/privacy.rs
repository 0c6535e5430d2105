//! Privacy (DATA-6): a user's export of all their data, and erasure of their account.

use super::throttle::WrongPassword;
use super::{Actor, AuditEvent, ClientMeta, Result, Services};
use crate::audit::{AuditFilter, AuditRow};
use crate::error::ServiceError;
use crate::event::{Control, Event};
use crate::ids::*;
use crate::model::*;
use crate::store::{Conflict, Cursor, Page, StoreError};
use crate::totp::SecondFactorCode;
use crate::types::{Limit, OrgRole};
use serde::Serialize;
use utoipa::ToSchema;

/// How many messages the export reads at a time.
const BATCH: i64 = 500;

/// How many other rows it reads at a time (the largest list page).
const PAGE: u32 = Limit::MAX;

/// What `format` says of every archive.
pub const EXPORT_FORMAT: &str = "conclave-export-v1";

/// One org the user belongs to.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = MembershipView)]
pub struct ExportedMembership {
    #[schema(value_type = Object)]
    pub org: Org,
    #[schema(value_type = String)]
    pub role: OrgRole,
}

/// Everything Conclave holds about the caller. Never secrets: no password hash, TOTP secret,
/// recovery code or token.
// The JSON archive of `GET /users/@me/export`, as it is written.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = AccountArchive)]
pub struct AccountExport {
    /// `conclave-export-v1`.
    pub format: String,
    pub exported_at: chrono::DateTime<chrono::Utc>,
    pub user: User,
    pub two_factor_enabled: bool,
    pub memberships: Vec<ExportedMembership>,
    pub conversations: Vec<Conversation>,
    /// Every message the user wrote, oldest first (deleted ones as tombstones).
    pub messages: Vec<Message>,
    pub sessions: Vec<Session>,
    /// Masked: the secrets were shown once at creation.
    pub api_keys: Vec<ApiKey>,
    /// Audit events by the user or about their account, oldest first.
    // As the user is shown them: no other person's IP address or user agent.
    pub audit_events: Vec<AuditEvent>,
    /// The earlier versions of the user's edited messages (each message's, oldest first).
    pub message_versions: Vec<MessageVersion>,
    /// The teams the user is in.
    pub teams: Vec<ExportedTeam>,
    /// Outside identities (OpenID Connect, LDAP, host JWT) linked to the account.
    pub linked_identities: Vec<crate::store::sso::LinkedIdentity>,
    /// The consents the user gave OAuth (MCP) clients that are still live.
    pub oauth_grants: Vec<crate::oauth::Grant>,
}

/// A team the exporting user is in.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ExportedTeam {
    pub org_id: OrgId,
    pub team_id: TeamId,
    pub name: String,
}

/// What an erasure did.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Erased {
    pub messages_tombstoned: u64,
    pub orgs_left: usize,
}

impl Services {
    /// All of the caller's data (their own login session only: not a bot, key or an
    /// impersonation). The export itself is audited.
    pub async fn export_account(&self, actor: &Actor) -> Result<AccountExport> {
        Self::require_own_session(actor)?;
        let user = self.store.user(actor.user.id).await?;
        let memberships: Vec<ExportedMembership> = self
            .store
            .orgs_for_user(user.id)
            .await?
            .into_iter()
            .map(|(org, role)| ExportedMembership { org, role })
            .collect();
        let mut conversations = Vec::new();
        let mut cursor = Cursor::Latest;
        loop {
            let page = self
                .store
                .conversations_for_user(user.id, self.batch(cursor))
                .await?;
            let full = page.len() >= PAGE as usize;
            if let Some(last) = page.last() {
                cursor = Cursor::Before(last.id);
            }
            conversations.extend(page);
            if !full {
                break;
            }
        }
        let mut messages = Vec::new();
        let mut after = None;
        loop {
            let page = self.store.messages_by_author(user.id, after, BATCH).await?;
            after = page.last().map(|m| m.id);
            let full = page.len() as i64 >= BATCH;
            messages.extend(page);
            if !full {
                break;
            }
        }
        let mut audit_events = self
            .all_audit(AuditFilter {
                resource: Some(("user".to_owned(), user.id.0.to_string())),
                ..AuditFilter::default()
            })
            .await?;
        let seen: std::collections::HashSet<uuid::Uuid> =
            audit_events.iter().map(|r| r.entry.id).collect();
        audit_events.extend(
            self.all_audit(AuditFilter {
                actor: Some(user.id.0),
                ..AuditFilter::default()
            })
            .await?
            .into_iter()
            .filter(|r| !seen.contains(&r.entry.id)),
        );
        audit_events.sort_by_key(|r| r.entry.id);
        let audit_events = self.shown_to(user.id, audit_events).await?;
        let mut message_versions = Vec::new();
        for m in messages.iter().filter(|m| m.edited_at.is_some()) {
            message_versions.extend(self.all_versions(m.id).await?);
        }
        let mut teams = Vec::new();
        for m in &memberships {
            let ExportedMembership { org, .. } = m;
            for id in self.store.user_teams(org.id, user.id).await? {
                let team = self.store.team(id).await?;
                teams.push(ExportedTeam {
                    org_id: org.id,
                    team_id: id,
                    name: team.name,
                });
            }
        }
        let export = AccountExport {
            format: EXPORT_FORMAT.to_owned(),
            exported_at: self.clock.now(),
            two_factor_enabled: self.has_2fa(user.id).await?,
            memberships,
            conversations,
            messages,
            sessions: self.sessions_shown(user.id).await?,
            api_keys: self.store.api_keys(user.id).await?,
            audit_events: audit_events.into_iter().map(AuditEvent::from).collect(),
            message_versions,
            teams,
            linked_identities: self.store.identities_of(user.id).await?,
            oauth_grants: self.store.user_grants(user.id).await?,
            user,
        };
        let audit = self
            .own_audit(actor, "user.exported")
            .detail(serde_json::json!({
                "messages": export.messages.len(),
                "conversations": export.conversations.len(),
            }));
        self.store.append_audit(&[audit]).await?;
        Ok(export)
    }

    /// Whether the caller's account has a password (one made by single sign-on has none).
    pub async fn has_password(&self, actor: &Actor) -> Result<bool> {
        Ok(self.store.password_hash(actor.user.id).await?.is_some())
    }

    /// DATA-6 re-authentication before erasure. An account with a password gives it (checked
    /// and counted like a sign-in, AUTH-5). An account without one — made by single sign-on,
    /// it has nothing to type — shows instead that it signed in within the last ten minutes
    /// (`policy::credentials::RECENT_SIGN_IN`): an older session is refused with
    /// `reauthentication_required` (audited as denied) and its user signs in again through
    /// their provider. Never neither.
    async fn erasure_reauthenticated(
        &self,
        actor: &Actor,
        password: Option<&str>,
        meta: &ClientMeta,
    ) -> Result<()> {
        let phc = self.store.password_hash(actor.user.id).await?;
        match (phc, password) {
            (Some(phc), Some(password)) => {
                let wrong = WrongPassword {
                    event: "user.erased",
                    field: "password",
                    message: "the password is not correct",
                };
                self.recheck_password(actor, meta.ip.as_deref(), password, Some(phc), wrong)
                    .await
            }
            (Some(_), None) => Err(ServiceError::invalid(
                "password",
                "required",
                "your current password is required",
            )),
            (None, Some(_)) => Err(ServiceError::invalid(
                "password",
                "not_set",
                "this account has no password (it signs in through single sign-on): leave the \
                 password out; erasing it takes a sign-in within the last ten minutes",
            )),
            (None, None) => {
                let now = self.clock.now();
                if crate::policy::credentials::signed_in_recently(&actor.session, now) {
                    return Ok(());
                }
                let user = ("user", actor.user.id.0.to_string());
                self.audit_denied(actor, "user.erased", "sign_in_not_recent", None, Some(user))
                    .await;
                Err(ServiceError::forbidden(
                    "reauthentication_required",
                    "this account has no password: sign in again through your identity \
                     provider, then erase the account within ten minutes of signing in",
                ))
            }
        }
    }

    fn batch<K>(&self, cursor: Cursor<K>) -> Page<K> {
        Page {
            cursor,
            limit: Limit::parse(Some(i64::from(PAGE))).unwrap_or_default(),
        }
    }

    /// Every version kept of message `id` (at most `KEPT_VERSIONS`), oldest first, read a page
    /// at a time.
    async fn all_versions(&self, id: MessageId) -> Result<Vec<MessageVersion>> {
        let mut versions = Vec::new();
        let mut cursor = Cursor::Latest;
        loop {
            let page = self.store.message_history(id, self.batch(cursor)).await?;
            let full = page.len() >= PAGE as usize;
            if let Some(last) = page.last() {
                cursor = Cursor::Before(last.id);
            }
            versions.extend(page);
            if !full {
                break;
            }
        }
        versions.reverse();
        Ok(versions)
    }

    /// Every audit row matching `filter`, oldest first.
    async fn all_audit(&self, filter: AuditFilter) -> Result<Vec<AuditRow>> {
        let mut out = Vec::new();
        let mut cursor = Cursor::Latest;
        loop {
            let page = self.store.list_audit(&filter, self.batch(cursor)).await?;
            let full = page.len() >= PAGE as usize;
            if let Some(last) = page.last() {
                cursor = Cursor::Before(last.entry.id);
            }
            out.extend(page);
            if !full {
                break;
            }
        }
        out.reverse();
        Ok(out)
    }

    /// Erases the caller's account after re-authentication — their password, or for an account
    /// with none (single sign-on only) a sign-in within the last ten minutes (see
    /// [`Self::erasure_reauthenticated`]) — and a second-factor code when 2FA is on: per org policy their messages are tombstoned (their files removed) or,
    /// anonymised, move with their files to the org's placeholder author (unlinkable from the
    /// erased id); uploads no message carries, memberships, credentials, 2FA, sessions and the
    /// profile go. Refused
    /// (409, nothing changed) while they are an org's only owner.
    pub async fn erase_account(
        &self,
        actor: &Actor,
        password: Option<&str>,
        code: Option<&SecondFactorCode>,
        meta: &ClientMeta,
    ) -> Result<Erased> {
        Self::require_own_session(actor)?;
        self.erasure_reauthenticated(actor, password, meta).await?;
        if self.has_2fa(actor.user.id).await? {
            let Some(code) = code else {
                return Err(ServiceError::invalid(
                    "code",
                    "required",
                    "two-factor authentication is on: a code is required",
                ));
            };
            self.verify_second_factor(actor, code, meta).await?;
        }
        let orgs = self.store.orgs_for_user(actor.user.id).await?;
        let anonymous = format!("deleted-{}", &actor.user.id.0.simple().to_string()[20..]);
        let audit = self
            .own_audit(actor, "user.erased")
            .detail(serde_json::json!({
                "orgs": orgs.len(),
            }));
        let erased = self
            .store
            .erase_user(
                &crate::store::Erasure {
                    user: actor.user.id,
                    anonymous_name: &anonymous,
                    at: self.clock.now(),
                },
                &[audit],
            )
            .await
            .map_err(|e| match e {
                StoreError::Conflict(Conflict::LastOrgOwner) => ServiceError::conflict(
                    "last_owner",
                    "you are the only owner of an organization: transfer it or delete it first",
                ),
                other => other.into(),
            })?;
        // Each org hears that the member left, under the name the account has now: the erased
        // profile is not sent anywhere again.
        let anonymised = UserSummary {
            id: actor.user.id,
            username: anonymous,
            display_name: None,
            kind: actor.user.kind,
        };
        for mut removed in erased.removed {
            removed.member.user = anonymised.clone();
            for p in &mut removed.participations {
                p.user = anonymised.clone();
            }
            self.announce_member_removed(&removed);
        }
        self.emit(Event::control(Control::RevokeUser {
            user: actor.user.id,
            except: None,
        }));
        self.end_impersonations(&erased.impersonating);
        self.free(erased.freed).await;
        Ok(Erased {
            messages_tombstoned: erased.tombstoned,
            orgs_left: orgs.len(),
        })
    }
}
