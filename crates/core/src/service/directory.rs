//! Directory sign-in (AUTH-10, LDAP / Active Directory): the ordinary `POST /auth/login` asks
//! the directory about a username no local password account holds, and a periodic check looks
//! every linked account up again. The directory protocol is the server's business; here is
//! what follows from its answers:
//!
//! - a username held by a local password account is checked against that password only (the
//!   directory is never asked, so it cannot take a local account over);
//! - any other username is a directory sign-in through `sso_sign_in` (counters, linking by the
//!   directory's stable id, disabled accounts, org roles, 2FA, audit), after the same Argon2id
//!   work a password check costs, so the answer's timing does not tell local names apart;
//! - the check revokes every session (and socket), API key and OAuth grant of an account the
//!   directory no longer has or no longer lets in (bots are the org's and stay), and brings
//!   its org roles in line with its groups.

use super::{ClientMeta, LoginOutcome, Result, Services};
use crate::event::{Control, Event};
use crate::store::{IdentityKind, LinkedIdentity};
use crate::types::*;
use std::future::Future;

use super::sso::{ExternalIdentity, SsoFailure, SsoRules, SsoSignIn};

/// What the directory says about a linked account at a check.
#[derive(Debug)]
pub enum DirectoryVerdict {
    /// It is there and may sign in; its groups grant these roles.
    Present(SsoRules),
    /// It is gone, or the directory's filter leaves it out (disabled).
    Gone,
}

/// What a check took from one account the directory no longer lets in. Bots belong to their
/// org, not to the person who made them, and stay.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DirectoryRevoked {
    pub sessions: u64,
    pub api_keys: u64,
    pub oauth_grants: u64,
}

impl DirectoryRevoked {
    /// Whether anything was revoked.
    pub fn any(&self) -> bool {
        self.sessions + self.api_keys + self.oauth_grants > 0
    }
}

/// The audit event of a check's revocations, and the reason the revoked keys and grants name.
const REVOKED_REASON: &str = "sso.directory_revoked";

/// The name sign-ins through the directory carry in the counters and the audit log.
pub const DIRECTORY_PROVIDER: &str = "ldap";

impl Services {
    /// Signs `username` in: with its local password when a local password account holds the
    /// name, else through the directory (`verify` binds as the user and says who they are).
    pub async fn login_or_directory<V, Fut>(
        &self,
        username: &str,
        password: &str,
        meta: ClientMeta,
        cookie: bool,
        verify: V,
    ) -> Result<LoginOutcome>
    where
        V: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<(ExternalIdentity, SsoRules), SsoFailure>>,
    {
        let local = match Username::parse(username) {
            Ok(u) => self.store.user_by_username(&u.key()).await?,
            Err(_) => None,
        };
        if matches!(local, Some((_, Some(_)))) {
            return self.login(username, password, meta, cookie).await;
        }
        let sign_in = SsoSignIn {
            kind: IdentityKind::Ldap,
            provider: DIRECTORY_PROVIDER.to_owned(),
            claimed: Some(username.to_owned()),
            meta,
            cookie,
        };
        let hasher = self.hasher.clone();
        let password = password.to_owned();
        self.sso_sign_in(sign_in, async move {
            // The work of a password check (its answer is always "no"), so a directory name
            // costs what a local one does.
            hasher
                .verify(&password, None)
                .await
                .map_err(SsoFailure::Unavailable)?;
            verify().await
        })
        .await
    }

    /// The accounts linked to the directory `provider` (its URL), for its periodic check.
    pub async fn directory_accounts(&self, provider: &str) -> Result<Vec<LinkedIdentity>> {
        Ok(self
            .store
            .identities_of_provider(IdentityKind::Ldap, provider)
            .await?)
    }

    /// Applies what the directory said about `identity` at a check: a gone account loses its
    /// sessions (its sockets closed), every API key it owns and every OAuth grant it made,
    /// audited together; a present one's org roles follow its groups. Answers what was revoked.
    pub async fn directory_checked(
        &self,
        identity: &LinkedIdentity,
        verdict: DirectoryVerdict,
    ) -> Result<DirectoryRevoked> {
        let user = match self.store.user(identity.user_id).await {
            Ok(u) => u,
            // Erased meanwhile: nothing is left to revoke.
            Err(crate::store::StoreError::NotFound) => return Ok(DirectoryRevoked::default()),
            Err(e) => return Err(e.into()),
        };
        match verdict {
            DirectoryVerdict::Gone => {
                // Sessions first, so no key or grant can be made after the lists are read;
                // one a request already under way makes goes at the next check.
                let ended = self.store.delete_sessions(user.id, None, &[]).await?;
                let sessions = ended.own;
                if sessions > 0 {
                    self.emit(Event::control(Control::RevokeUser {
                        user: user.id,
                        except: None,
                    }));
                }
                self.end_impersonations(&ended.impersonating);
                let revoked = DirectoryRevoked {
                    sessions,
                    api_keys: self.revoke_all_api_keys(user.id, REVOKED_REASON).await?,
                    oauth_grants: self.revoke_all_grants(user.id, REVOKED_REASON).await?,
                };
                if revoked.any() {
                    let audit = self
                        .system_audit(REVOKED_REASON)
                        .resource("user", user.id)
                        .detail(serde_json::json!({
                            "provider": identity.provider,
                            "subject": identity.subject,
                            "sessions": revoked.sessions,
                            "api_keys": revoked.api_keys,
                            "oauth_grants": revoked.oauth_grants,
                        }));
                    self.store.append_audit(&[audit]).await?;
                }
                Ok(revoked)
            }
            DirectoryVerdict::Present(rules) => {
                if !user.disabled && user.kind == UserKind::User {
                    let sign_in = SsoSignIn {
                        kind: IdentityKind::Ldap,
                        provider: DIRECTORY_PROVIDER.to_owned(),
                        claimed: None,
                        meta: ClientMeta::default(),
                        cookie: false,
                    };
                    self.sso_grants(&user, &rules, &sign_in).await?;
                }
                Ok(DirectoryRevoked::default())
            }
        }
    }
}
