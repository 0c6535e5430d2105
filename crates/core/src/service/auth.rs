//! Accounts and sessions: registration, login, the one-time bootstrap, bearer/cookie session
//! authentication with idle and absolute expiry, session listing and revocation, password change.

use super::invites::{invite_invalid, invite_refused};
use super::throttle::{password_changed, WrongPassword, INVALID_CREDENTIALS};
use super::{Actor, Result, Services};
use crate::audit::AuditActor;
use crate::cache::{Credentials, Identity};
use crate::error::ServiceError;
use crate::event::{Control, Event};
use crate::ids::*;
use crate::model::*;
use crate::password::{NewPassword, Verified};
use crate::policy;
use crate::store::{Conflict, PasswordChange, Seen, StoreError};
use crate::token::{self, TokenKind};
use crate::types::*;
use chrono::Duration;
use secrecy::{ExposeSecret, SecretString};

/// Session lifetimes and who may register.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// A session unused this long expires.
    pub session_idle: Duration,
    /// A session expires this long after login, used or not.
    pub session_absolute: Duration,
    pub registration: RegistrationMode,
}

/// How long an impersonated session lasts at most (AUTH-12).
pub const IMPERSONATION_TTL: Duration = Duration::hours(1);

/// Where a request came from, recorded on sessions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientMeta {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// The id the server gave the request (in its logs and error bodies).
    pub request_id: Option<String>,
    /// The surface the request came through (MCP writes are audited, MCP-3).
    pub surface: crate::credential::Surface,
}

impl ClientMeta {
    /// A request known only by its address.
    #[must_use]
    pub fn from_ip(ip: Option<&str>) -> Self {
        Self {
            ip: ip.map(str::to_owned),
            ..Self::default()
        }
    }
}

/// A new session: the token is shown to the client once.
pub struct SignedIn {
    pub token: SecretString,
    pub session: Session,
    pub user: User,
}

/// What a correct password leads to: a session, or — with 2FA on — a challenge that only
/// `login_mfa` turns into one.
pub enum LoginOutcome {
    SignedIn(Box<SignedIn>),
    MfaRequired(super::mfa::MfaPending),
}

/// Any session, bot or API-key credential that does not check out.
pub(super) const INVALID_TOKEN: ServiceError = ServiceError::unauthorized(
    "invalid_token",
    "the credential is invalid, expired or revoked",
);

const BOOTSTRAP_USED: ServiceError =
    ServiceError::gone("bootstrap_used", "the server already has an admin");

/// How long a preset bootstrap token is valid after the server's first start (CORE-3a).
pub const PRESET_BOOTSTRAP_TTL: Duration = Duration::hours(24);

/// The bootstrap token this node accepts: its hash, and when a preset one expires.
#[derive(Debug, Clone, Copy)]
pub(super) struct ArmedBootstrap {
    hash: [u8; 32],
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// How often `last_seen_at` is written at most.
const TOUCH_EVERY: Duration = Duration::minutes(1);

impl Services {
    /// Installs this node's bootstrap token (printed once at start); `None` when a server admin
    /// exists — however it was made: the bootstrap is disarmed for good then — or when a preset
    /// token has expired. Records the server's first start, once, in the database (CORE-3a).
    pub async fn prepare_bootstrap(&self, preset: Option<&str>) -> Result<Option<SecretString>> {
        let now = self.clock.now();
        let first_start = self.store.first_start(now).await?;
        if self.store.bootstrap_claimed().await? {
            return Ok(None);
        }
        let (token, expires_at) = match preset {
            Some(t) => {
                let expires_at = first_start + PRESET_BOOTSTRAP_TTL;
                if now >= expires_at {
                    tracing::warn!(
                        "the preset bootstrap token expired 24 h after the server's first start; create the first admin with the management token (POST /api/v1/admin/users)"
                    );
                    return Ok(None);
                }
                (SecretString::from(t.to_owned()), Some(expires_at))
            }
            None => (token::generate(TokenKind::Bootstrap), None),
        };
        let hash = token::hash(&self.keys.token_pepper, token.expose_secret());
        *self.bootstrap.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(ArmedBootstrap { hash, expires_at });
        Ok(Some(token))
    }

    /// Creates the first server admin with the one-time token and signs them in. 410
    /// `bootstrap_used` once any server admin exists, 410 `bootstrap_expired` for a preset
    /// token past its 24 hours.
    pub async fn bootstrap(
        &self,
        bootstrap_token: &str,
        username: Username,
        password: NewPassword,
        meta: ClientMeta,
        cookie: bool,
    ) -> Result<SignedIn> {
        if self.store.bootstrap_claimed().await? {
            return Err(BOOTSTRAP_USED);
        }
        let armed = *self.bootstrap.lock().unwrap_or_else(|e| e.into_inner());
        let given = token::hash(&self.keys.token_pepper, bootstrap_token);
        let Some(armed) = armed.filter(|a| {
            !bootstrap_token.is_empty()
                && bool::from(subtle::ConstantTimeEq::ct_eq(&a.hash[..], &given[..]))
        }) else {
            return Err(ServiceError::unauthorized(
                "invalid_bootstrap_token",
                "the bootstrap token is not valid",
            ));
        };
        if armed.expires_at.is_some_and(|at| self.clock.now() >= at) {
            return Err(ServiceError::gone(
                "bootstrap_expired",
                "the preset bootstrap token expired 24 hours after the server's first start",
            ));
        }
        let new = self
            .new_password_user(username, &password, None, true)
            .await?;
        let audit = self
            .audit_as(AuditActor::user(new.id), &meta, "user.bootstrapped")
            .resource("user", new.id);
        let user = self
            .store
            .claim_bootstrap(&new, &[audit])
            .await
            .map_err(|e| match e {
                StoreError::Conflict(Conflict::BootstrapUsed) => BOOTSTRAP_USED,
                other => other.into(),
            })?;
        *self.bootstrap.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.start_session(user, meta, cookie, "bootstrap", None)
            .await
    }

    /// Creates an account when registration allows it; with an invite code the user also joins
    /// the invite's org.
    pub async fn register(
        &self,
        username: Username,
        password: NewPassword,
        email: Option<Email>,
        invite_code: Option<&str>,
        meta: &ClientMeta,
    ) -> Result<User> {
        match (self.settings.registration, invite_code) {
            (RegistrationMode::Closed, _) => {
                return Err(ServiceError::forbidden(
                    "registration_closed",
                    "registration is closed on this server",
                ))
            }
            (RegistrationMode::Invite, None) => {
                return Err(ServiceError::invalid(
                    "invite_code",
                    "required",
                    "an invite code is required to register",
                ))
            }
            _ => {}
        }
        let invite_hash = match invite_code {
            Some(code) => Some(self.usable_invite(code, &username.key()).await?),
            None => None,
        };
        let new = self
            .new_password_user(username, &password, email, false)
            .await?;
        let who = AuditActor::user(new.id);
        let registered = self
            .audit_as(who.clone(), meta, "user.registered")
            .resource("user", new.id);
        let Some(h) = invite_hash else {
            return Ok(self.store.create_user(&new, &[registered]).await?);
        };
        // The account and the invite's use in one transaction: a code used up meanwhile (by a
        // parallel registration) leaves no account behind.
        let mut joined = self
            .audit_as(who, meta, "member.joined")
            .resource("user", new.id);
        if let Some(invite) = self.store.invite_by_code(&h).await? {
            joined = joined
                .org(invite.org_id)
                .detail(serde_json::json!({ "role": invite.role, "invite_id": invite.id }));
        }
        let (user, _, member) = self
            .store
            .register_with_invite(&new, &h, self.clock.now(), &[registered, joined])
            .await
            .map_err(invite_refused("invite_code"))?;
        self.announce_member_added(&member);
        Ok(user)
    }

    /// The stored hash of an invite code that `username` (its lowercased key) can use now, or
    /// 422 on `invite_code`: an invite naming another user is refused like an unknown code
    /// (AZ-7), before anything is created.
    pub(super) async fn usable_invite(&self, code: &str, username: &str) -> Result<[u8; 32]> {
        let bad = || invite_invalid("invite_code");
        let hash = self.presented_token_hash(TokenKind::Invite, code, bad())?;
        let invite = self.store.invite_by_code(&hash).await?.ok_or_else(bad)?;
        let now = self.clock.now();
        let expired = invite.expires_at.is_some_and(|e| e <= now);
        let used_up = invite.max_uses.is_some_and(|m| invite.uses >= m);
        let someone_elses = invite.username.as_deref().is_some_and(|n| n != username);
        if expired || used_up || someone_elses {
            return Err(bad());
        }
        Ok(hash)
    }

    /// Checks a username and password. Unknown users cost the same Argon2id work as known ones
    /// and get the same answer, and both are throttled the same way (AUTH-5): the attempt is
    /// reserved on the counters before any hashing (a blocked one is refused there), and stays
    /// counted when the password is wrong. With 2FA on, a correct password yields a challenge
    /// instead of a session and gives the attempt back; the counters reset only when a session
    /// is issued, so knowing the password does not buy more guesses at the second factor.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        meta: ClientMeta,
        cookie: bool,
    ) -> Result<LoginOutcome> {
        let subject = self.login_subject(username, meta.ip.as_deref());
        let attempt = self.reserve_attempt(&subject).await?;
        let found = match Username::parse(username) {
            Ok(u) => self.store.user_by_username(&u.key()).await,
            Err(_) => Ok(None),
        };
        let verdict = match found {
            Ok(found) => {
                let (user, phc) = match found {
                    Some((user, phc)) => (Some(user), phc),
                    None => (None, None),
                };
                // Kept: the session is made only while this is still the account's hash.
                let checked = phc.clone();
                self.hasher
                    .verify(password, phc)
                    .await
                    .map(|verdict| (user, checked, verdict))
            }
            Err(e) => Err(e.into()),
        };
        let (user, checked, verdict) = match verdict {
            Ok(v) => v,
            Err(e) => {
                // Never checked (the hashing pool was busy, the database failed): not a failure.
                self.give_back(attempt).await;
                return Err(e);
            }
        };
        let user = match (user, verdict) {
            (Some(user), Verified::Yes | Verified::YesRehash) => user,
            (user, _) => {
                let mut audit = self
                    .audit_as(AuditActor::anonymous(), &meta, "auth.login")
                    .failed()
                    .detail(serde_json::json!({ "reason": "invalid_credentials" }));
                if let Some(u) = user {
                    audit = audit.resource("user", u.id);
                }
                self.attempt_failed(attempt, audit).await?;
                return Err(INVALID_CREDENTIALS);
            }
        };
        let mut checked = checked;
        if verdict == Verified::YesRehash {
            // The password was checked above, so it satisfies the length rule it was set with.
            if let Ok(p) = NewPassword::parse(password) {
                let fresh = self.hasher.hash(&p).await?;
                let audit = self
                    .audit_as(AuditActor::system(), &meta, "password.rehashed")
                    .resource("user", user.id);
                let rehash = PasswordChange {
                    user: user.id,
                    phc: &fresh,
                    replaces: checked.as_deref(),
                    keep: None,
                };
                match self.store.set_password_hash(rehash, &[audit]).await {
                    Ok(_) => checked = Some(fresh),
                    // Changed meanwhile: this sign-in makes nothing (below).
                    Err(StoreError::Conflict(Conflict::PasswordChanged)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        if user.disabled {
            self.give_back(attempt).await;
            let audit = self
                .audit_as(AuditActor::user(user.id), &meta, "auth.login")
                .resource("user", user.id)
                .failed()
                .detail(serde_json::json!({ "reason": "account_disabled" }));
            self.store.append_audit(&[audit]).await?;
            return Err(ServiceError::forbidden(
                "account_disabled",
                "this account is disabled",
            ));
        }
        if self.has_2fa(user.id).await? {
            self.give_back(attempt).await;
            let pending = self
                .issue_mfa_challenge(user.id, cookie, checked.as_deref())
                .await?;
            return Ok(LoginOutcome::MfaRequired(pending));
        }
        self.attempt_succeeded(&subject, attempt).await?;
        let started = self
            .start_session(user, meta, cookie, "password", checked.as_deref())
            .await?;
        Ok(LoginOutcome::SignedIn(Box::new(started)))
    }

    /// Starts a marked session as `target` for a server admin (AUTH-12): at most an hour, no
    /// cookie, recorded in the audit log (which the user sees among their security events).
    /// Only a signed-in server admin may; not as themselves, another server admin, a bot or a
    /// disabled account.
    pub async fn admin_impersonate(
        &self,
        admin: &super::ServerAdmin,
        target: UserId,
    ) -> Result<SignedIn> {
        let Some(admin_id) = admin.user else {
            let entry = self.admin_audit(admin, "impersonation.denied");
            let resource = Some(("user", target.to_string()));
            self.record_denied(entry, "management_token", None, resource)
                .await;
            return Err(ServiceError::forbidden(
                "impersonation_forbidden",
                "impersonation needs a signed-in server admin, not the management token",
            ));
        };
        if admin.audit_actor.impersonator.is_some() {
            return Err(ServiceError::forbidden(
                "impersonation_forbidden",
                "an impersonated session cannot impersonate",
            ));
        }
        let user = self.existing_user(target).await?;
        let refusal = policy::credentials::impersonation_refusal(admin_id, &user);
        if let Some(message) = refusal {
            // AUTH-12: a refused attempt is in the log too, with the admin as its actor.
            let entry = self.admin_audit(admin, "impersonation.denied");
            let resource = Some(("user", target.to_string()));
            self.record_denied(entry, "cannot_impersonate", None, resource)
                .await;
            return Err(ServiceError::conflict("cannot_impersonate", message));
        }
        let now = self.clock.now();
        let token = token::generate(TokenKind::Session);
        let session = Session {
            id: SessionId::new(),
            user_id: user.id,
            device: Some("impersonation".to_owned()),
            ip: admin.meta.ip.clone(),
            created_at: now,
            last_seen_at: now,
            expires_at: now + IMPERSONATION_TTL,
            cookie: false,
            impersonator: Some(admin_id),
        };
        let hash = token::hash(&self.keys.token_pepper, token.expose_secret());
        let audit = self
            .admin_audit(admin, "impersonation.started")
            .resource("user", user.id)
            .detail(serde_json::json!({
                "session_id": session.id,
                "expires_at": session.expires_at,
            }));
        self.store
            .create_session(&session, &hash, None, &[audit])
            .await?;
        Ok(SignedIn {
            token,
            session,
            user,
        })
    }

    /// Account `id`, or 404 `user`.
    pub(super) async fn existing_user(&self, id: UserId) -> Result<User> {
        self.store
            .user(id)
            .await
            .map_err(ServiceError::missing("user"))
    }

    /// A new account that signs in with `password` (hashed here), with no display name yet.
    /// `email` is the owner's word only ([`NewUser::email_verified`] false); an admin who
    /// creates the account vouches for it (see `admin_create_user`).
    pub(super) async fn new_password_user(
        &self,
        username: Username,
        password: &NewPassword,
        email: Option<Email>,
        server_admin: bool,
    ) -> Result<NewUser> {
        Ok(NewUser {
            id: UserId::new(),
            username,
            display_name: None,
            email,
            email_verified: false,
            password_hash: Some(self.hasher.hash(password).await?),
            kind: UserKind::User,
            server_admin,
            created_at: self.clock.now(),
        })
    }

    /// `password`: the stored hash a password sign-in checked; the session is made only while
    /// it is still the account's (a change meanwhile: 401, as for the old password).
    pub(super) async fn start_session(
        &self,
        user: User,
        meta: ClientMeta,
        cookie: bool,
        method: &str,
        password: Option<&str>,
    ) -> Result<SignedIn> {
        let now = self.clock.now();
        let token = token::generate(TokenKind::Session);
        let session = Session {
            id: SessionId::new(),
            user_id: user.id,
            device: meta
                .user_agent
                .as_ref()
                .map(|ua| ua.chars().take(200).collect()),
            ip: meta.ip.clone(),
            created_at: now,
            last_seen_at: now,
            expires_at: now + self.settings.session_absolute,
            cookie,
            impersonator: None,
        };
        let hash = token::hash(&self.keys.token_pepper, token.expose_secret());
        let audit = self
            .audit_as(AuditActor::user(user.id), &meta, "auth.login")
            .resource("user", user.id)
            .detail(serde_json::json!({ "method": method, "session_id": session.id }));
        self.store
            .create_session(&session, &hash, password, &[audit])
            .await
            .map_err(password_changed)?;
        Ok(SignedIn {
            token,
            session,
            user,
        })
    }

    /// Resolves a session token to its user and session, enforcing checksum, revocation,
    /// idle and absolute expiry and disabled accounts. Refreshes `last_seen_at` at most once a
    /// minute. The session and its account come from this node's cache while it holds a fresh
    /// copy (`crate::cache`); a copy that would be refused is never the last word: the store's
    /// rows decide then (another node may have used the session since).
    pub async fn authenticate(&self, token_text: &str, ip: Option<&str>) -> Result<Actor> {
        let hash = self.presented_token_hash(TokenKind::Session, token_text, INVALID_TOKEN)?;
        let now = self.clock.now();
        let cached = match self.cache.get::<Credentials>(&hash, now) {
            Some(Identity::Session { session, user })
                if !self.session_ended(&session, now) && !user.disabled =>
            {
                Some((session, user))
            }
            _ => None,
        };
        let (mut session, user) = match cached {
            Some(found) => found,
            None => self.session_from_store(&hash, now).await?,
        };
        if now - session.last_seen_at >= TOUCH_EVERY {
            let seen = Seen { at: now, ip };
            self.store.touch_session(session.id, seen).await?;
            session.last_seen_at = now;
            if let Some(ip) = ip {
                session.ip = Some(ip.to_owned());
            }
            self.cache.update::<Credentials>(&hash, |cached| {
                if let Identity::Session { session: s, .. } = cached {
                    s.clone_from(&session);
                }
            });
        }
        Ok(Actor {
            meta: ClientMeta::from_ip(ip),
            user,
            session,
            credential: crate::credential::Credential::Session,
        })
    }

    /// Whether `session` has ended at `now`: past its absolute expiry, or unused too long.
    fn session_ended(&self, session: &Session, now: chrono::DateTime<chrono::Utc>) -> bool {
        now >= session.expires_at || now >= session.last_seen_at + self.settings.session_idle
    }

    /// The session under token hash `hash` and its account, read from the store (an ended
    /// session is deleted there) and kept in the cache when they let the request in.
    async fn session_from_store(
        &self,
        hash: &[u8; 32],
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(Session, User)> {
        self.cache.remove::<Credentials>(hash);
        let ticket = self.cache.ticket(now);
        let session = self
            .store
            .session_by_token_hash(hash)
            .await?
            .ok_or(INVALID_TOKEN)?;
        if self.session_ended(&session, now) {
            self.store
                .delete_session(session.user_id, session.id, &[])
                .await
                .ok();
            return Err(INVALID_TOKEN);
        }
        let user = self.store.user(session.user_id).await?;
        if user.disabled {
            return Err(INVALID_TOKEN);
        }
        let identity = Identity::Session {
            session: session.clone(),
            user: user.clone(),
        };
        self.cache.put::<Credentials>(ticket, *hash, identity);
        Ok((session, user))
    }

    /// The CSRF token bound to a cookie session.
    #[must_use]
    pub fn csrf_token(&self, session: &Session) -> String {
        token::csrf_token(&self.keys.csrf, &session.id)
    }

    pub async fn logout(&self, actor: &Actor) -> Result<()> {
        self.store
            .delete_session(
                actor.user.id,
                actor.session.id,
                &[self
                    .audit(actor, "auth.logout")
                    .resource("session", actor.session.id)],
            )
            .await?;
        self.emit(Event::control(Control::RevokeSession {
            session: actor.session.id,
        }));
        Ok(())
    }

    pub async fn sessions(&self, actor: &Actor) -> Result<Vec<Session>> {
        self.sessions_shown(actor.user.id).await
    }

    /// The user's sessions as they are shown them: an impersonation's address is the
    /// administrator's, so it is left out (DATA-6).
    pub(super) async fn sessions_shown(&self, user: UserId) -> Result<Vec<Session>> {
        let mut sessions = self.store.list_sessions(user).await?;
        for s in sessions.iter_mut().filter(|s| s.impersonator.is_some()) {
            s.ip = None;
        }
        Ok(sessions)
    }

    pub async fn revoke_session(&self, actor: &Actor, id: SessionId) -> Result<()> {
        Self::require_own_session(actor)?;
        self.store
            .delete_session(
                actor.user.id,
                id,
                &[self.audit(actor, "session.revoked").resource("session", id)],
            )
            .await
            .map_err(ServiceError::missing("session"))?;
        self.emit(Event::control(Control::RevokeSession { session: id }));
        Ok(())
    }

    pub async fn revoke_other_sessions(&self, actor: &Actor) -> Result<u64> {
        Self::require_own_session(actor)?;
        let ended = self
            .store
            .delete_sessions(
                actor.user.id,
                Some(actor.session.id),
                &[self.own_audit(actor, "sessions.revoked_others")],
            )
            .await?;
        self.emit(Event::control(Control::RevokeUser {
            user: actor.user.id,
            except: Some(actor.session.id),
        }));
        self.end_impersonations(&ended.impersonating);
        Ok(ended.own)
    }

    /// Changes the password after checking the current one; every other session is revoked.
    /// Wrong current passwords count like failed sign-ins of the account (AUTH-5): the check
    /// is reserved on the counters first, and refused with 429 while they back off.
    pub async fn change_password(
        &self,
        actor: &Actor,
        current: &str,
        new: NewPassword,
    ) -> Result<()> {
        Self::require_own_session(actor)?;
        let phc = self.store.password_hash(actor.user.id).await?;
        if phc.is_none() {
            return Err(ServiceError::conflict(
                "no_password",
                "this account has no password to change",
            ));
        }
        let wrong = WrongPassword {
            event: "password.changed",
            field: "current_password",
            message: "the current password is not correct",
        };
        let replaces = phc.clone();
        self.recheck_password(actor, actor.meta.ip.as_deref(), current, phc, wrong)
            .await?;
        let fresh = self.hasher.hash(&new).await?;
        let audit = self.own_audit(actor, "password.changed");
        // One transaction: the hash, every other session (and those she started as someone
        // else) and every pending sign-in challenge; a sign-in that checked the old hash and
        // had not made its session yet makes none (AUTH-2).
        let change = PasswordChange {
            user: actor.user.id,
            phc: &fresh,
            replaces: replaces.as_deref(),
            keep: Some(actor.session.id),
        };
        // Changed meanwhile by another of her sessions: 409 `password_changed`.
        let ended = self.store.set_password_hash(change, &[audit]).await?;
        self.emit(Event::control(Control::RevokeUser {
            user: actor.user.id,
            except: Some(actor.session.id),
        }));
        self.end_impersonations(&ended.impersonating);
        Ok(())
    }
}
