//! Password resets by a server admin (API `POST /admin/users/{id}/password-reset`, the
//! `conclave users reset-password` command): a one-time link, an hour, to set a new password.
//!
//! Making a link ends every session of the account at once (and every session she started as
//! someone else, every pending sign-in challenge) and replaces any earlier link; the password
//! itself stands until the link is used, so an account whose owner only forgot it is not
//! locked further, and an admin who suspects a stolen password disables the account too.
//! Using the link sets the password and ends, in the same transaction, every session, challenge
//! and link of the account again. Only the keyed hash of the link's token is stored; the token
//! travels in the URL's fragment, which browsers never send to a server.

use super::{ClientMeta, Result, ServerAdmin, Services};
use crate::audit::AuditActor;
use crate::error::ServiceError;
use crate::event::{Control, Event};
use crate::ids::UserId;
use crate::password::NewPassword;
use crate::store::{PasswordReset, SessionsDeleted, StoreError};
use crate::token::{self, TokenKind};
use crate::types::UserKind;
use crate::types::Username;
use chrono::{DateTime, Duration, Utc};
use secrecy::{ExposeSecret, SecretString};

/// How long a reset link works.
pub const PASSWORD_RESET_TTL: Duration = Duration::hours(1);

/// A link's answer for every token that does not open one (malformed, unknown, used, replaced
/// or expired): the same, so none tells which.
const RESET_LINK_INVALID: ServiceError = ServiceError::gone(
    "reset_link_invalid",
    "this password reset link is not valid: it expired, was used, or a newer link replaced it",
);

/// A new reset link's secret (shown once) and when it stops working.
pub struct ResetLink {
    pub token: SecretString,
    pub expires_at: DateTime<Utc>,
}

impl Services {
    /// A reset link for account `target`, made by a server admin or the management token;
    /// every session of the account ends now. Not for bots (they have no password), erased
    /// accounts (404) or from an impersonated session.
    pub async fn admin_reset_password(
        &self,
        admin: &ServerAdmin,
        target: UserId,
    ) -> Result<ResetLink> {
        if admin.audit_actor.impersonator.is_some() {
            return Err(ServiceError::forbidden(
                "impersonation_forbidden",
                "an impersonated session cannot reset passwords",
            ));
        }
        let user = self.existing_user(target).await?;
        if user.kind != UserKind::User {
            return Err(ServiceError::conflict(
                "cannot_reset_password",
                "a bot has no password: rotate its token instead",
            ));
        }
        let now = self.clock.now();
        let secret = token::generate(TokenKind::PasswordReset);
        let reset = PasswordReset {
            user: user.id,
            token_hash: token::hash(&self.keys.token_pepper, secret.expose_secret()).to_vec(),
            created_at: now,
            expires_at: now + PASSWORD_RESET_TTL,
        };
        let audit = self
            .admin_audit(admin, "password.reset")
            .resource("user", user.id)
            .detail(serde_json::json!({ "expires_at": reset.expires_at }));
        let ended = self
            .store
            .start_password_reset(&reset, &[audit])
            .await
            .map_err(ServiceError::missing("user"))?;
        self.sessions_ended(user.id, &ended);
        if let Err(e) = self.store.prune_password_resets(now).await {
            tracing::warn!(error = %e, "pruning expired password reset links failed");
        }
        Ok(ResetLink {
            token: secret,
            expires_at: reset.expires_at,
        })
    }

    /// [`Self::admin_reset_password`] for the account named `username` (the command line).
    pub async fn admin_reset_password_of(
        &self,
        admin: &ServerAdmin,
        username: &Username,
    ) -> Result<ResetLink> {
        let Some((user, _)) = self.store.user_by_username(&username.key()).await? else {
            return Err(ServiceError::NotFound("user"));
        };
        self.admin_reset_password(admin, user.id).await
    }

    /// Sets the password of the account a live reset link is for, using the link up. Every
    /// session, sign-in challenge and other link of the account ends with it. An unknown,
    /// used, replaced or expired link: 410 `reset_link_invalid`, whichever it was.
    pub async fn finish_password_reset(
        &self,
        link: &str,
        new: NewPassword,
        meta: ClientMeta,
    ) -> Result<()> {
        let hash = self.presented_token_hash(TokenKind::PasswordReset, link, RESET_LINK_INVALID)?;
        let now = self.clock.now();
        let user = self
            .store
            .password_reset_user(&hash, now)
            .await?
            .ok_or(RESET_LINK_INVALID)?;
        let phc = self.hasher.hash(&new).await?;
        let audit = self
            .audit_as(AuditActor::user(user), &meta, "password.changed")
            .resource("user", user)
            .detail(serde_json::json!({ "via": "reset_link" }));
        // Used meanwhile by a parallel request (or replaced): the same answer.
        let ended = self
            .store
            .finish_password_reset(&hash, user, now, &phc, &[audit])
            .await
            .map_err(|e| match e {
                StoreError::NotFound => RESET_LINK_INVALID,
                other => other.into(),
            })?;
        self.sessions_ended(user, &ended);
        Ok(())
    }

    /// Announces that every session of `user` ended (sockets close with 4004, caches forget).
    fn sessions_ended(&self, user: UserId, ended: &SessionsDeleted) {
        self.emit(Event::control(Control::RevokeUser { user, except: None }));
        self.end_impersonations(&ended.impersonating);
    }
}
