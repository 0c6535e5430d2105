//! Directory sign-in (AUTH-10, LDAP / Active Directory): the ordinary `POST /auth/login` asks
//! the directory about a username no local password account holds, and a periodic check looks
//! every linked account up again. The directory protocol is the server's business; here is
//! what follows from its answers:
//!
//! - a username held by a local password account is checked against that password only (the
//!   directory is never asked, so it cannot take a local account over);
//! - the name is first spelled the way the directory compares names ([`directory_username`]),
//!   so every spelling it binds as one entry (`alice`, `alice `, ` ａlice`) is one name to the
//!   counters and to the local-account rule;
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

use super::sso::{ExternalIdentity, SsoFailure, SsoRefusal, SsoRules, SsoSignIn};

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

/// The refusal of every failed directory sign-in: the same as a wrong local password.
pub const DIRECTORY_REFUSED: SsoRefusal = SsoRefusal {
    code: "invalid_credentials",
    message: "invalid username or password",
};

/// `typed` as the directory compares it (RFC 4518 string preparation, which OpenLDAP and Active
/// Directory apply to `uid` and `sAMAccountName`): invisible characters dropped and
/// compatibility characters folded (NFKC, so `ａlice` is `alice`), leading and trailing white space dropped, inner runs of it one space.
/// The sign-in counters key on this spelling, so `alice`, `alice ` and ` alice` share one
/// back-off (AUTH-5) as the directory binds them all as alice. `None` for a name holding a
/// control character or nothing but white space: refused as a wrong password is, without
/// asking the directory.
#[must_use]
pub fn directory_username(typed: &str) -> Option<String> {
    if typed.chars().any(char::is_control) {
        return None;
    }
    // RFC 4518 maps invisible characters (soft hyphen, zero-width joiners) to nothing and
    // folds by NFKC: the guards' fold is that.
    let folded = crate::guards::fold(typed);
    let name = folded.split_whitespace().collect::<Vec<_>>().join(" ");
    (!name.is_empty()).then_some(name)
}

impl Services {
    /// Signs `username` in: with its local password when a local password account holds the
    /// name, else through the directory (`verify` binds as the user named by its argument, the
    /// name as the directory compares it, and says who they are).
    pub async fn login_or_directory<V, Fut>(
        &self,
        username: &str,
        password: &str,
        meta: ClientMeta,
        cookie: bool,
        verify: V,
    ) -> Result<LoginOutcome>
    where
        V: FnOnce(String) -> Fut,
        Fut: Future<Output = std::result::Result<(ExternalIdentity, SsoRules), SsoFailure>>,
    {
        let name = directory_username(username);
        let spelled = name.as_deref().unwrap_or(username);
        let local = match Username::parse(spelled) {
            Ok(u) => self.store.user_by_username(&u.key()).await?,
            Err(_) => None,
        };
        if matches!(local, Some((_, Some(_)))) {
            return self.login(spelled, password, meta, cookie).await;
        }
        let sign_in = SsoSignIn {
            kind: IdentityKind::Ldap,
            provider: DIRECTORY_PROVIDER.to_owned(),
            claimed: Some(spelled.to_owned()),
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
            match name {
                Some(name) => verify(name).await,
                None => Err(DIRECTORY_REFUSED.into()),
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_the_directory_binds_as_one_name_is_one_name() {
        for typed in [
            "alice",
            "alice ",
            " alice",
            "  alice   ",
            "alice\u{a0}",
            "\u{3000}alice",
            "\u{ff41}lice",
            "ali\u{200b}ce",
            "alice\u{ad}",
        ] {
            assert_eq!(
                directory_username(typed).as_deref(),
                Some("alice"),
                "{typed:?}"
            );
        }
        for typed in ["ann  lee", " ann\u{2003}lee ", "ann \u{a0} lee"] {
            assert_eq!(
                directory_username(typed).as_deref(),
                Some("ann lee"),
                "{typed:?}"
            );
        }
        for typed in [
            "",
            "   ",
            "alice\t",
            "ali\0ce",
            "alice\n",
            "\u{85}alice",
            "alice\u{7f}",
        ] {
            assert_eq!(directory_username(typed), None, "{typed:?}");
        }
    }
}
