//! Two-factor authentication (AUTH-4): TOTP setup, enabling (which issues recovery codes),
//! disabling, regenerating recovery codes, checking a second factor, and the second step of a
//! sign-in (`login_mfa`), which alone turns a password-checked challenge into a session.
//!
//! TOTP secrets are sealed at rest (`secretbox`, bound to `user_totp.secret` and the user id,
//! with the current key of the key ring; see `secrets`). A TOTP code is accepted
//! once: the store advances the user's last accepted step conditionally, so a replay — on this
//! node or another — finds the step taken. Recovery codes are looked up by their non-secret
//! prefix and verified with one Argon2id; an unknown prefix verifies against a dummy hash so it
//! costs the same. Wrong codes count toward the sign-in throttle (AUTH-5), and wrong codes on a
//! challenge kill it after five.

use super::throttle::LoginSubject;
use super::{Actor, ClientMeta, Result, Services, SignedIn};
use crate::audit::AuditActor;
use crate::error::ServiceError;
use crate::event::{Control, Event};
use crate::ids::UserId;
use crate::keyring::SecretRef;
use crate::mfa::{MfaChallenge, RecoveryCodeRef, StoredRecoveryCode};
use crate::password::{NewPassword, Verified};
use crate::secretbox::{Sealed, SealedColumn};
use crate::token::{self, TokenKind};
use crate::totp::{RecoveryCode, SecondFactorCode, TotpCode, TotpSecret, RECOVERY_CODE_COUNT};
use chrono::{DateTime, Duration, Utc};
use secrecy::{ExposeSecret, SecretString};

/// How long an `mfa_token` lives.
pub const MFA_TOKEN_TTL: Duration = Duration::minutes(5);
/// Wrong codes that kill an `mfa_token`.
pub const MFA_TOKEN_MAX_FAILURES: i32 = 5;

/// Where a user's TOTP secret is stored (its sealing binding).
fn totp_ref(user: UserId) -> SecretRef {
    SecretRef {
        column: SealedColumn::UserTotpSecret,
        row: user.0,
    }
}

/// What TOTP setup shows once: the secret and the URI for a QR code.
pub struct TotpSetup {
    pub secret: SecretString,
    pub otpauth_uri: SecretString,
}

/// A password-checked sign-in that needs its second factor.
pub struct MfaPending {
    pub mfa_token: SecretString,
    pub expires_at: DateTime<Utc>,
}

/// Fresh recovery codes, shown once (`xxxx-xxxx-xxxx-xxxx`).
pub struct RecoveryCodes(pub Vec<SecretString>);

const INVALID_MFA_TOKEN: ServiceError = ServiceError::unauthorized(
    "invalid_mfa_token",
    "the sign-in challenge is invalid, expired or used up; sign in again",
);
const INVALID_CODE: ServiceError =
    ServiceError::unauthorized("invalid_code", "the code is not valid");
const CODE_REUSED: ServiceError = ServiceError::unauthorized(
    "code_reused",
    "this code was used already; wait for the next one or use another recovery code",
);
const NOT_ENABLED: ServiceError = ServiceError::conflict(
    "mfa_not_enabled",
    "two-factor authentication is not enabled on this account",
);
const ALREADY_ENABLED: ServiceError = ServiceError::conflict(
    "mfa_already_enabled",
    "two-factor authentication is already enabled; disable it first to start over",
);

/// How a second factor checked out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Checked {
    Accepted,
    Wrong,
    Reused,
}

impl Checked {
    fn into_error(self) -> ServiceError {
        match self {
            Self::Reused => CODE_REUSED,
            _ => INVALID_CODE,
        }
    }
}

impl Services {
    /// Whether the user has 2FA on.
    pub async fn has_2fa(&self, user: UserId) -> Result<bool> {
        Ok(self
            .store
            .totp_enrolment(user)
            .await?
            .is_some_and(|e| e.enabled()))
    }

    /// Starts (or restarts) TOTP setup: a new secret, pending until confirmed with a code.
    /// The secret and its URI are returned here only.
    pub async fn totp_setup(&self, actor: &Actor) -> Result<TotpSetup> {
        Self::require_own_session(actor)?;
        let secret = TotpSecret::generate();
        let at = totp_ref(actor.user.id);
        let sealed = self
            .seal_secret(at.binding(), secret.expose_bytes())
            .await?;
        if !self
            .store
            .save_pending_totp(
                actor.user.id,
                &sealed,
                self.clock.now(),
                &[self.own_audit(actor, "totp.setup_started")],
            )
            .await?
        {
            return Err(ALREADY_ENABLED);
        }
        self.settle_sealed(at, sealed, secret.expose_bytes())
            .await?;
        Ok(TotpSetup {
            secret: secret.base32(),
            otpauth_uri: secret.otpauth_uri(&actor.user.username),
        })
    }

    /// Confirms setup with a code of the pending secret (that code then counts as used) and
    /// returns the first recovery codes.
    pub async fn totp_enable(
        &self,
        actor: &Actor,
        code: SecondFactorCode,
    ) -> Result<RecoveryCodes> {
        Self::require_own_session(actor)?;
        let SecondFactorCode::Totp(code) = code else {
            return Err(ServiceError::invalid(
                "code",
                "invalid_format",
                "enter the 6-digit code your authenticator app shows",
            ));
        };
        let enrolment =
            self.store
                .totp_enrolment(actor.user.id)
                .await?
                .ok_or(ServiceError::conflict(
                    "mfa_setup_missing",
                    "start with POST /auth/totp/setup",
                ))?;
        if enrolment.enabled() {
            return Err(ALREADY_ENABLED);
        }
        let secret = self.open_secret(actor.user.id, &enrolment.secret).await?;
        let Some(step) = secret.matching_step(&code, self.clock.now()) else {
            return Err(INVALID_CODE);
        };
        let (shown, stored) = self.new_recovery_codes().await?;
        let mut nonce = enrolment.secret.nonce;
        for _ in 0..3 {
            if self
                .store
                .enable_totp(
                    actor.user.id,
                    &nonce,
                    step,
                    &stored,
                    self.clock.now(),
                    &[self.own_audit(actor, "totp.enabled")],
                )
                .await?
            {
                self.announce_own_2fa(actor.user.id).await?;
                return Ok(shown);
            }
            // A key rotation re-seals a pending secret under a new nonce: the same secret, so
            // enable that one. A new setup (another secret) or an enabled one ends here.
            match self.store.totp_enrolment(actor.user.id).await? {
                Some(now)
                    if !now.enabled()
                        && now.secret.nonce != nonce
                        && self
                            .is_same_totp_secret(actor.user.id, &now.secret, &secret)
                            .await? =>
                {
                    nonce = now.secret.nonce;
                }
                _ => break,
            }
        }
        // Enabled by a concurrent request, or the secret was replaced by a new setup.
        Err(if self.has_2fa(actor.user.id).await? {
            ALREADY_ENABLED
        } else {
            INVALID_CODE
        })
    }

    /// Whether `sealed` holds `secret`, compared in constant time.
    async fn is_same_totp_secret(
        &self,
        user: UserId,
        sealed: &Sealed,
        secret: &TotpSecret,
    ) -> Result<bool> {
        use subtle::ConstantTimeEq;
        let other = self.open_secret(user, sealed).await?;
        Ok(other.expose_bytes().ct_eq(secret.expose_bytes()).into())
    }

    /// Turns 2FA off after a valid code (TOTP or recovery).
    pub async fn totp_disable(
        &self,
        actor: &Actor,
        code: SecondFactorCode,
        meta: &ClientMeta,
    ) -> Result<()> {
        self.confirm_2fa_change(actor, &code, meta).await?;
        let audit = self.own_audit(actor, "totp.disabled");
        self.store.disable_totp(actor.user.id, &[audit]).await?;
        self.announce_own_2fa(actor.user.id).await?;
        // A user a server admin requires to use 2FA now lacks it: every credential is refused
        // at once (AUTH-4a) — open sockets too. The flag is read after the change, so an admin
        // setting it meanwhile is seen here or sees the 2FA gone (`update_user` reads it after).
        if self.store.user(actor.user.id).await?.require_2fa {
            self.emit(Event::control(Control::RequireSecondFactor {
                user: actor.user.id,
            }));
        }
        Ok(())
    }

    /// Replaces every recovery code after a valid code (TOTP or recovery).
    pub async fn regenerate_recovery_codes(
        &self,
        actor: &Actor,
        code: SecondFactorCode,
        meta: &ClientMeta,
    ) -> Result<RecoveryCodes> {
        self.confirm_2fa_change(actor, &code, meta).await?;
        let (shown, stored) = self.new_recovery_codes().await?;
        if !self
            .store
            .replace_recovery_codes(
                actor.user.id,
                &stored,
                self.clock.now(),
                &[self.own_audit(actor, "recovery_codes.regenerated")],
            )
            .await?
        {
            return Err(NOT_ENABLED);
        }
        Ok(shown)
    }

    /// What a change to a user's 2FA needs: their own session, 2FA on, and a valid code.
    async fn confirm_2fa_change(
        &self,
        actor: &Actor,
        code: &SecondFactorCode,
        meta: &ClientMeta,
    ) -> Result<()> {
        Self::require_own_session(actor)?;
        if !self.has_2fa(actor.user.id).await? {
            return Err(NOT_ENABLED);
        }
        self.verify_second_factor(actor, code, meta).await
    }

    /// Checks a signed-in user's second factor (re-authentication before a sensitive change).
    /// Throttled and counted like sign-in attempts.
    pub async fn verify_second_factor(
        &self,
        actor: &Actor,
        code: &SecondFactorCode,
        meta: &ClientMeta,
    ) -> Result<()> {
        let subject = self.login_subject(&actor.user.username, meta.ip.as_deref());
        let attempt = self.reserve_attempt(&subject).await?;
        match self.check_code(actor.user.id, code, meta).await {
            Ok(Checked::Accepted) => {
                self.give_back(attempt).await;
                Ok(())
            }
            Ok(bad) => {
                let audit = self.own_audit(actor, "auth.second_factor").failed();
                self.attempt_failed(attempt, audit).await?;
                Err(bad.into_error())
            }
            Err(e) => {
                self.give_back(attempt).await;
                Err(e)
            }
        }
    }

    /// Creates the challenge a password-checked sign-in of a 2FA user answers with.
    /// `password`: the stored hash the first step checked (none for a single sign-on); the
    /// challenge is made only while it is still the account's.
    pub(super) async fn issue_mfa_challenge(
        &self,
        user: UserId,
        cookie: bool,
        password: Option<&str>,
    ) -> Result<MfaPending> {
        let now = self.clock.now();
        let mfa_token = token::generate(TokenKind::MfaChallenge);
        let challenge = MfaChallenge {
            user_id: user,
            cookie,
            created_at: now,
            expires_at: now + MFA_TOKEN_TTL,
            failures: 0,
        };
        let hash = token::hash(&self.keys.token_pepper, mfa_token.expose_secret());
        self.store
            .create_mfa_challenge(&challenge, &hash, password)
            .await
            .map_err(super::throttle::password_changed)?;
        if let Err(e) = self.store.prune_mfa_challenges(now).await {
            tracing::warn!(error = %e, "pruning expired sign-in challenges failed");
        }
        Ok(MfaPending {
            mfa_token,
            expires_at: challenge.expires_at,
        })
    }

    /// The second step of a sign-in: a valid code for the challenge's user yields a new
    /// session (cookie-bound when either step asked for one). The challenge is single-use,
    /// expires after five minutes and dies after five checked codes: each check is first
    /// reserved on the sign-in counters (AUTH-5) and then on the challenge, so parallel
    /// guesses get no more checks than sequential ones.
    pub async fn login_mfa(
        &self,
        mfa_token: &str,
        code: SecondFactorCode,
        meta: ClientMeta,
        cookie: bool,
    ) -> Result<SignedIn> {
        let hash =
            self.presented_token_hash(TokenKind::MfaChallenge, mfa_token, INVALID_MFA_TOKEN)?;
        let now = self.clock.now();
        let challenge = self
            .store
            .mfa_challenge(&hash)
            .await?
            .filter(|c| c.expires_at > now && c.failures < MFA_TOKEN_MAX_FAILURES)
            .ok_or(INVALID_MFA_TOKEN)?;
        let user = self
            .store
            .user(challenge.user_id)
            .await
            .map_err(|_| INVALID_MFA_TOKEN)?;
        let subject: LoginSubject = self.login_subject(&user.username, meta.ip.as_deref());
        // A back-off answers 429 without using up a check of the challenge.
        let attempt = self.reserve_attempt(&subject).await?;
        match self
            .store
            .reserve_mfa_attempt(&hash, now, MFA_TOKEN_MAX_FAILURES)
            .await
        {
            Ok(Some(_)) => {}
            Ok(None) => {
                self.give_back(attempt).await;
                return Err(INVALID_MFA_TOKEN);
            }
            Err(e) => {
                self.give_back(attempt).await;
                return Err(e.into());
            }
        }
        let checked = match self.check_code(user.id, &code, &meta).await {
            Ok(c) => c,
            Err(e) => {
                self.give_back(attempt).await;
                return Err(e);
            }
        };
        if checked != Checked::Accepted {
            let audit = self
                .audit_as(AuditActor::anonymous(), &meta, "auth.login")
                .resource("user", user.id)
                .failed()
                .detail(serde_json::json!({ "reason": "invalid_second_factor" }));
            self.attempt_failed(attempt, audit).await?;
            return Err(checked.into_error());
        }
        let Some(challenge) = self.store.take_mfa_challenge(&hash, now).await? else {
            self.give_back(attempt).await;
            return Err(INVALID_MFA_TOKEN);
        };
        self.attempt_succeeded(&subject, attempt).await?;
        if user.disabled {
            return Err(ServiceError::forbidden(
                "account_disabled",
                "this account is disabled",
            ));
        }
        let method = match code {
            SecondFactorCode::Totp(_) => "totp",
            SecondFactorCode::Recovery(_) => "recovery_code",
        };
        self.start_session(user, meta, cookie || challenge.cookie, method, None)
            .await
    }

    async fn open_secret(&self, user: UserId, sealed: &Sealed) -> Result<TotpSecret> {
        let plain = self.open_sealed(totp_ref(user).binding(), sealed).await?;
        TotpSecret::from_bytes(plain).map_err(|e| ServiceError::Internal(e.to_owned()))
    }

    /// Checks a code against the user's enabled 2FA, consuming it when it is right; `meta` is
    /// the request's (a recovery code's use is recorded with its address, DATA-4).
    async fn check_code(
        &self,
        user: UserId,
        code: &SecondFactorCode,
        meta: &ClientMeta,
    ) -> Result<Checked> {
        match code {
            SecondFactorCode::Totp(code) => self.check_totp(user, code).await,
            SecondFactorCode::Recovery(code) => self.check_recovery_code(user, code, meta).await,
        }
    }

    async fn check_totp(&self, user: UserId, code: &TotpCode) -> Result<Checked> {
        let Some(enrolment) = self
            .store
            .totp_enrolment(user)
            .await?
            .filter(|e| e.enabled())
        else {
            return Ok(Checked::Wrong);
        };
        let secret = self.open_secret(user, &enrolment.secret).await?;
        let Some(step) = secret.matching_step(code, self.clock.now()) else {
            return Ok(Checked::Wrong);
        };
        if self.store.use_totp_step(user, step).await? {
            Ok(Checked::Accepted)
        } else {
            Ok(Checked::Reused)
        }
    }

    async fn check_recovery_code(
        &self,
        user: UserId,
        code: &RecoveryCode,
        meta: &ClientMeta,
    ) -> Result<Checked> {
        let lookup = code.lookup();
        let stored = self
            .store
            .recovery_code(RecoveryCodeRef { user, lookup })
            .await?;
        let phc = stored.as_ref().map(|s| s.hash.clone());
        // With no such prefix this verifies against the dummy hash: the same cost, a "No".
        let verdict = self
            .hasher
            .verify(code.secret().expose_secret(), phc)
            .await?;
        let Some(stored) = stored.filter(|_| verdict != Verified::No) else {
            return Ok(Checked::Wrong);
        };
        if stored.used_at.is_some() {
            return Ok(Checked::Reused);
        }
        if self
            .store
            .use_recovery_code(
                RecoveryCodeRef {
                    user,
                    lookup: &stored.lookup,
                },
                self.clock.now(),
                &[self
                    .audit_as(AuditActor::user(user), meta, "recovery_code.used")
                    .resource("user", user)],
            )
            .await?
        {
            Ok(Checked::Accepted)
        } else {
            Ok(Checked::Reused)
        }
    }

    /// Ten fresh recovery codes with distinct prefixes: shown forms and stored hashes.
    async fn new_recovery_codes(&self) -> Result<(RecoveryCodes, Vec<StoredRecoveryCode>)> {
        let mut shown = Vec::with_capacity(RECOVERY_CODE_COUNT);
        let mut stored: Vec<StoredRecoveryCode> = Vec::with_capacity(RECOVERY_CODE_COUNT);
        while stored.len() < RECOVERY_CODE_COUNT {
            let code = RecoveryCode::generate();
            if stored.iter().any(|s| s.lookup == code.lookup()) {
                continue;
            }
            // The hashing pool takes passwords; a random code passes the password rules except
            // in astronomically rare cases (say, sixteen equal characters): draw again then.
            let Ok(as_password) = NewPassword::parse(code.secret().expose_secret()) else {
                continue;
            };
            let hash = self.hasher.hash(&as_password).await?;
            stored.push(StoredRecoveryCode {
                lookup: code.lookup().to_owned(),
                hash,
                used_at: None,
            });
            shown.push(SecretString::from(code.display()));
        }
        Ok((RecoveryCodes(shown), stored))
    }
}
