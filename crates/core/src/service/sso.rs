//! Single sign-on (AUTH-10, AUTH-11): turning an identity another system vouched for — a host
//! app's signed JWT, an OpenID provider's ID token, a directory bind — into an ordinary session
//! (AUTH-2). The server checks the proof (signatures, keys, directories are its business);
//! everything after that is here, the same for every kind:
//!
//! 1. the attempt is reserved on the sign-in counters (AUTH-5) before the proof is checked, and
//!    a refused proof stays counted and is audited (`auth.login`, failed, with the reason);
//! 2. a single-use token id is spent in one conditional insert (a replay on any node fails);
//! 3. the identity (kind, provider, subject) finds its linked account — never an email alone —
//!    or links one by the provider's explicit rule (`link_existing = email_verified`: never an
//!    account that already holds another subject of the same provider), or creates one when
//!    the provider may (`create_users`), or is refused;
//! 4. a disabled or erased account, or a bot, is refused whatever vouched for it;
//! 5. configured org roles are applied; with 2FA on the answer is the usual challenge, else a
//!    session whose audit row names the method.

use super::{LoginOutcome, Result, Services};
use crate::audit::AuditActor;
use crate::error::ServiceError;
use crate::model::*;
use crate::store::{Conflict, IdentityKey, LinkedIdentity, StoreError};
use crate::types::*;
use chrono::{DateTime, Utc};
use std::future::Future;

use super::auth::ClientMeta;

/// An identity a provider vouched for, with the profile it offered for a new account.
#[derive(Debug, Clone)]
pub struct ExternalIdentity {
    pub key: IdentityKey,
    /// A wished-for username (`preferred_username`, the directory's uid); made valid and
    /// unique when an account is created.
    pub username: Option<String>,
    pub display_name: Option<String>,
    pub email: Option<String>,
    /// The provider says it checked `email` (OpenID's `email_verified`).
    pub email_verified: bool,
    /// A single-use proof's id and until when it must be remembered.
    pub single_use: Option<(String, DateTime<Utc>)>,
}

/// What a provider's configuration allows for identities it vouches for.
#[derive(Debug, Clone, Default)]
pub struct SsoRules {
    /// An identity linked to no account creates one.
    pub create_users: bool,
    /// An identity linked to no account is linked to the account with the same email, when
    /// the provider says it verified it (and the account is not a server admin, nor holds an
    /// identity of the same provider for another subject).
    pub link_by_verified_email: bool,
    /// Orgs the account joins with these roles (from the provider's claims or groups, mapped
    /// by configuration), when it is not a member yet; an existing membership is left as
    /// its org's admins set it.
    pub grants: Vec<(crate::ids::OrgId, OrgRole)>,
    /// Orgs whose memberships the provider governs (a directory's mapped groups): there the
    /// highest granted role replaces the member's role, and a member granted none is removed.
    /// An owner is never changed.
    pub managed_orgs: Vec<crate::ids::OrgId>,
}

/// Why a provider's proof was refused: a code and message for the client, counted as a failed
/// sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SsoRefusal {
    pub code: &'static str,
    pub message: &'static str,
}

/// What checking a proof can end with besides an identity.
#[derive(Debug)]
pub enum SsoFailure {
    /// The proof is not good (a failed sign-in: counted and audited).
    Refused(SsoRefusal),
    /// It could not be checked (the provider's keys could not be fetched): not counted.
    Unavailable(ServiceError),
}

impl From<SsoRefusal> for SsoFailure {
    fn from(r: SsoRefusal) -> Self {
        Self::Refused(r)
    }
}

/// A sign-in by an outside identity: which provider it names (for the counters and the audit
/// log) and how the session is delivered.
#[derive(Debug, Clone)]
pub struct SsoSignIn {
    pub kind: crate::store::IdentityKind,
    /// The provider's configured id (a `[[host_jwt]]` id, an OpenID provider id, `ldap`).
    pub provider: String,
    /// What the counters key the account on: the name the proof claims (`sub`, the typed
    /// username); `None` when it names none (then only the address's counter applies, so no
    /// one can lock a provider's users out by failing in their name).
    pub claimed: Option<String>,
    pub meta: ClientMeta,
    pub cookie: bool,
}

const UNKNOWN_USER: SsoRefusal = SsoRefusal {
    code: "sso_user_unknown",
    message: "this identity is not linked to an account here, and the provider may not create one",
};
const REPLAYED: SsoRefusal = SsoRefusal {
    code: "token_replayed",
    message: "this single-use token was used before",
};

/// How many made-up usernames are tried when the wished-for one is taken.
const USERNAME_TRIES: usize = 6;

impl Services {
    /// Signs in the identity `verify` yields (after it checked the proof), by the rules it
    /// yields with it. See the module documentation for the steps.
    pub async fn sso_sign_in<F>(&self, sign_in: SsoSignIn, verify: F) -> Result<LoginOutcome>
    where
        F: Future<Output = std::result::Result<(ExternalIdentity, SsoRules), SsoFailure>>,
    {
        let ip = sign_in.meta.ip.as_deref();
        let subject = match sign_in.claimed.as_deref().filter(|c| !c.is_empty()) {
            Some(claimed) => self.login_subject(
                &format!("{}:{}:{claimed}", sign_in.kind.as_str(), sign_in.provider),
                ip,
            ),
            None => self.address_subject(ip),
        };
        let attempt = self.reserve_attempt(&subject).await?;
        let refused = |reason: SsoRefusal, user: Option<&User>| {
            let mut audit = self
                .audit_as(AuditActor::anonymous(), &sign_in.meta, "auth.login")
                .failed()
                .detail(serde_json::json!({
                    "method": sign_in.kind.as_str(),
                    "provider": sign_in.provider,
                    "reason": reason.code,
                }));
            if let Some(u) = user {
                audit = audit.resource("user", u.id);
            }
            audit
        };
        let (identity, rules) = match verify.await {
            Ok(found) => found,
            Err(SsoFailure::Refused(reason)) => {
                self.attempt_failed(attempt, refused(reason, None)).await?;
                return Err(ServiceError::unauthorized(reason.code, reason.message));
            }
            Err(SsoFailure::Unavailable(e)) => {
                self.give_back(attempt).await;
                return Err(e);
            }
        };
        let now = self.clock.now();
        if let Some((id, until)) = &identity.single_use {
            let spent = self
                .store
                .spend_token_id(&sign_in.provider, id, *until, now)
                .await;
            match spent {
                Ok(true) => {}
                Ok(false) => {
                    self.attempt_failed(attempt, refused(REPLAYED, None))
                        .await?;
                    return Err(ServiceError::unauthorized(REPLAYED.code, REPLAYED.message));
                }
                Err(e) => {
                    self.give_back(attempt).await;
                    return Err(e.into());
                }
            }
        }
        let user = match self.sso_account(&identity, &rules, &sign_in).await {
            Ok(Some(user)) => user,
            Ok(None) => {
                self.attempt_failed(attempt, refused(UNKNOWN_USER, None))
                    .await?;
                return Err(ServiceError::unauthorized(
                    UNKNOWN_USER.code,
                    UNKNOWN_USER.message,
                ));
            }
            Err(e) => {
                self.give_back(attempt).await;
                return Err(e);
            }
        };
        if user.disabled || user.kind != UserKind::User {
            self.give_back(attempt).await;
            let reason = SsoRefusal {
                code: "account_disabled",
                message: "this account is disabled",
            };
            self.store
                .append_audit(&[refused(reason, Some(&user))])
                .await?;
            return Err(ServiceError::forbidden(reason.code, reason.message));
        }
        if let Err(e) = self.sso_grants(&user, &rules, &sign_in).await {
            self.give_back(attempt).await;
            return Err(e);
        }
        if self.has_2fa(user.id).await? {
            self.give_back(attempt).await;
            let pending = self
                .issue_mfa_challenge(user.id, sign_in.cookie, None)
                .await?;
            return Ok(LoginOutcome::MfaRequired(pending));
        }
        self.attempt_succeeded(&subject, attempt).await?;
        let method = sign_in.kind.as_str();
        Ok(LoginOutcome::SignedIn(Box::new(
            self.start_session(user, sign_in.meta, sign_in.cookie, method, None)
                .await?,
        )))
    }

    /// The account `identity` is linked to; else one linked now by the rules (an existing
    /// account by verified email, or a new one); `None` when the rules allow neither.
    async fn sso_account(
        &self,
        identity: &ExternalIdentity,
        rules: &SsoRules,
        sign_in: &SsoSignIn,
    ) -> Result<Option<User>> {
        let now = self.clock.now();
        if let Some(user) = self.store.user_by_identity(&identity.key, now).await? {
            return Ok(Some(user));
        }
        let linked = serde_json::json!({
            "kind": identity.key.kind.as_str(),
            "provider": identity.key.provider,
            "subject": identity.key.subject,
        });
        if rules.link_by_verified_email && identity.email_verified {
            let existing = match identity.email.as_deref().map(Email::parse) {
                Some(Ok(email)) => self.store.user_by_verified_email(email.as_str()).await?,
                _ => None,
            };
            // A server admin is never taken over by an outside identity's email claim; nor is
            // an account this provider vouches for as someone else already: an address the
            // provider reassigned (a leaver's, given to a new hire) names a new person.
            let existing = match existing.filter(|u| !u.server_admin && u.kind == UserKind::User) {
                Some(user) if !self.holds_identity_of(user.id, &identity.key).await? => Some(user),
                _ => None,
            };
            if let Some(user) = existing {
                let audit = self
                    .audit_as(
                        AuditActor::user(user.id),
                        &sign_in.meta,
                        "sso.identity_linked",
                    )
                    .resource("user", user.id)
                    .detail(linked.clone());
                return match self
                    .store
                    .link_identity(user.id, &identity.key, now, &[audit])
                    .await
                {
                    Ok(()) => Ok(Some(user)),
                    Err(StoreError::Conflict(Conflict::IdentityTaken)) => {
                        Ok(self.store.user_by_identity(&identity.key, now).await?)
                    }
                    Err(e) => Err(e.into()),
                };
            }
        }
        if !rules.create_users {
            return Ok(None);
        }
        for attempt in 0..USERNAME_TRIES {
            let username = sso_username(identity, attempt);
            let new = NewUser {
                id: crate::ids::UserId::new(),
                username,
                display_name: identity
                    .display_name
                    .as_deref()
                    .and_then(|n| DisplayName::parse(n).ok()),
                email: identity.email.as_deref().and_then(|e| Email::parse(e).ok()),
                // The provider's word on the address, when it gave one it says it checked.
                email_verified: identity.email_verified,
                password_hash: None,
                kind: UserKind::User,
                server_admin: false,
                created_at: now,
            };
            let audit = [
                self.audit_as(AuditActor::user(new.id), &sign_in.meta, "user.registered")
                    .resource("user", new.id)
                    .detail(serde_json::json!({ "via": identity.key.kind.as_str() })),
                self.audit_as(
                    AuditActor::user(new.id),
                    &sign_in.meta,
                    "sso.identity_linked",
                )
                .resource("user", new.id)
                .detail(linked.clone()),
            ];
            match self
                .store
                .create_user_with_identity(&new, &identity.key, &audit)
                .await
            {
                Ok(user) => return Ok(Some(user)),
                Err(StoreError::Conflict(Conflict::UsernameTaken)) => continue,
                // Another request created the account first: it is this identity's.
                Err(StoreError::Conflict(Conflict::IdentityTaken)) => {
                    return Ok(self.store.user_by_identity(&identity.key, now).await?)
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(ServiceError::conflict(
            "username_taken",
            "no free username could be found for this identity",
        ))
    }

    /// Whether `user` holds an identity of the provider of `key` (its kind and provider, any
    /// subject).
    async fn holds_identity_of(&self, user: crate::ids::UserId, key: &IdentityKey) -> Result<bool> {
        let held = self.store.identities_of(user).await?;
        Ok(held
            .iter()
            .any(|i| i.kind == key.kind && i.provider == key.provider))
    }

    /// Adds `user` to each org the rules grant that they are not a member of yet; in the orgs
    /// the provider governs, also sets the granted role or removes a member granted none.
    pub(super) async fn sso_grants(
        &self,
        user: &User,
        rules: &SsoRules,
        sign_in: &SsoSignIn,
    ) -> Result<()> {
        let mut orgs: Vec<crate::ids::OrgId> = rules.grants.iter().map(|(o, _)| *o).collect();
        orgs.extend(rules.managed_orgs.iter().copied());
        orgs.sort_by_key(|o| o.0);
        orgs.dedup();
        let via = serde_json::json!({
            "via": sign_in.kind.as_str(),
            "provider": sign_in.provider,
        });
        for org in orgs {
            let granted = rules
                .grants
                .iter()
                .filter(|(o, _)| *o == org)
                .map(|(_, r)| *r)
                .max_by_key(|r| r.rank());
            let managed = rules.managed_orgs.contains(&org);
            let audit = |event: &str, role: Option<OrgRole>| {
                let mut detail = via.clone();
                if let Some(role) = role {
                    detail["role"] = serde_json::json!(role);
                }
                self.audit_as(AuditActor::system(), &sign_in.meta, event)
                    .resource("user", user.id)
                    .org(org)
                    .detail(detail)
            };
            let current = if managed {
                self.store.membership(org, user.id).await?
            } else {
                None
            };
            match (current, granted) {
                (Some(OrgRole::Owner), _) | (None, None) => {}
                (Some(now), Some(role)) if now == role => {}
                (Some(_), Some(role)) => {
                    let membership = crate::store::Membership {
                        org,
                        user: user.id,
                        role,
                    };
                    let (member, changed) = self
                        .store
                        .set_member_role(
                            membership,
                            None,
                            &[audit("member.role_changed", Some(role))],
                        )
                        .await?;
                    if changed {
                        self.announce_role_changed(&member);
                    }
                }
                (Some(_), None) => {
                    let removed = self
                        .store
                        .remove_member(org, user.id, None, &[audit("member.removed", None)])
                        .await;
                    match removed {
                        Ok(removed) => self.announce_member_removed(&removed),
                        Err(StoreError::NotFound) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                (None, Some(role)) => {
                    let membership = crate::store::Membership {
                        org,
                        user: user.id,
                        role,
                    };
                    match self
                        .store
                        .add_member(
                            membership,
                            self.clock.now(),
                            &[audit("member.added", Some(role))],
                        )
                        .await
                    {
                        Ok(member) => self.announce_member_added(&member),
                        Err(StoreError::Conflict(Conflict::AlreadyMember)) => {}
                        Err(StoreError::NotFound) => {
                            tracing::warn!(%org, provider = %sign_in.provider, "an SSO role mapping names an org that does not exist");
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        Ok(())
    }

    /// The outside identities linked to `user` (the admin console shows them).
    pub async fn admin_user_identities(
        &self,
        _admin: &super::ServerAdmin,
        user: crate::ids::UserId,
    ) -> Result<Vec<LinkedIdentity>> {
        self.existing_user(user).await?;
        Ok(self.store.identities_of(user).await?)
    }

    /// The caller's own linked identities.
    pub async fn my_identities(&self, actor: &super::Actor) -> Result<Vec<LinkedIdentity>> {
        Ok(self.store.identities_of(actor.user.id).await?)
    }

    /// Records a pending OpenID sign-in under the keyed hash of its `state` until `expires_at`
    /// (bound to the access token while the gate is on: [`Self::gated_state_key`]).
    pub async fn sso_login_started(
        &self,
        state_hash: &[u8; 32],
        provider: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<()> {
        let now = self.clock.now();
        let key = self.gated_state_key(state_hash);
        Ok(self
            .store
            .put_sso_login(&key, provider, expires_at, now)
            .await?)
    }

    /// Takes the pending sign-in under `state_hash` (once): the provider it was started for.
    pub async fn sso_login_taken(&self, state_hash: &[u8; 32]) -> Result<Option<String>> {
        let now = self.clock.now();
        let key = self.gated_state_key(state_hash);
        Ok(self.store.take_sso_login(&key, now).await?)
    }

    /// AUTH-9 for OpenID: the key a pending sign-in is stored under. With the access-token
    /// gate on, the start of a sign-in is behind the gate but the provider's redirect back
    /// cannot carry the header, so the callback is let through and the flow carries the gate
    /// instead: its state is stored under a key that also hashes the access token. A state is
    /// then found only when it was started through the gate with the token in force now —
    /// not one started before the gate was turned on or the token changed.
    fn gated_state_key(&self, state_hash: &[u8; 32]) -> [u8; 32] {
        use secrecy::ExposeSecret;
        match &self.gates.access_token {
            None => *state_hash,
            Some(access) => {
                let hex = crate::audit::hex(state_hash);
                crate::token::hash(
                    &self.keys.token_pepper,
                    &format!("oidc-gate:{hex}:{}", access.expose_secret()),
                )
            }
        }
    }
}

/// The username tried at `attempt` for a new account: the wished-for name made valid first,
/// then that name (or `user`) with a short random suffix.
fn sso_username(identity: &ExternalIdentity, attempt: usize) -> Username {
    let wished: String = identity
        .username
        .as_deref()
        .or_else(|| identity.email.as_deref().and_then(|e| e.split('@').next()))
        .unwrap_or("user")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .skip_while(|c| !c.is_ascii_alphanumeric())
        .take(24)
        .collect();
    let base = if wished.chars().count() < 3 {
        "user".to_owned()
    } else {
        wished
    };
    let name = if attempt == 0 {
        base
    } else {
        let suffix: String = uuid::Uuid::new_v4().simple().to_string()[..6].to_owned();
        format!("{base}-{suffix}")
    };
    Username::parse(&name).unwrap_or_else(|_| {
        Username::parse(&format!(
            "user-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ))
        .unwrap_or_else(|_| unreachable!("a fixed shape is a valid username"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::IdentityKind;

    fn identity(username: Option<&str>, email: Option<&str>) -> ExternalIdentity {
        ExternalIdentity {
            key: IdentityKey {
                kind: IdentityKind::HostJwt,
                provider: "host".into(),
                subject: "42".into(),
            },
            username: username.map(Into::into),
            display_name: None,
            email: email.map(Into::into),
            email_verified: false,
            single_use: None,
        }
    }

    #[test]
    fn usernames_are_made_valid() {
        let name = |u, e, n| sso_username(&identity(u, e), n).as_str().to_owned();
        assert_eq!(name(Some("alice"), None, 0), "alice");
        assert_eq!(name(Some("Ålice Smith"), None, 0), "lice_Smith");
        assert_eq!(name(None, Some("bob.b@example.com"), 0), "bob.b");
        assert_eq!(name(Some("x"), None, 0), "user");
        assert_eq!(name(Some("__*)(uid=*"), None, 0), "uid__");
        let suffixed = name(Some("alice"), None, 1);
        assert!(
            suffixed.starts_with("alice-") && suffixed.len() == 12,
            "{suffixed}"
        );
        let long = name(Some(&"a".repeat(64)), None, 3);
        assert!(Username::parse(&long).is_ok(), "{long}");
    }
}
