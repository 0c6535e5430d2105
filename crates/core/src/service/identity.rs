//! Who is asking (AUTH-3, AUTH-4a, AUTH-6, AUTH-7, AUTH-9): the one place Conclave reads a
//! credential. Every surface — REST and the gateway today, MCP and the widget next — hands
//! what a request showed to [`Services::identify`] and maps the answer, an [`Actor`] or a
//! [`Refused`], to its own status or close code. No surface parses a token itself, so they
//! cannot drift apart.
//!
//! The order is fixed here: the access-token gate first ([`Services::access_gate`]; its
//! [`AccessGranted`] proof is what `identify` asks for), then the credential — an
//! `Authorization`-style value read by [`PresentedCredential::parse`], or a browser's session
//! cookie with its CSRF token — whose kind must be one the request's [`Surface`] accepts
//! (`policy::credentials::surface_accepts`: an OAuth access token only on `/mcp`) — then its
//! account, then the per-user 2FA gate. Another kind of credential (a widget visitor's
//! secret) is another variant of [`PresentedCredential`] and another arm of `identify`.

use super::widget::Visitor;
use super::{Actor, ClientMeta, ServerAdmin, Services};
pub use crate::credential::Surface;
use crate::error::ServiceError;
use crate::policy;
use crate::policy::credentials::CredentialKind;
use crate::store::widget::WidgetKey;
use crate::token::{self, TokenKind};
use crate::widget::{origin_listed, WidgetOrigin, WidgetSessionId};
use secrecy::{ExposeSecret, SecretString};
use std::net::IpAddr;

/// The server's own secrets for the gates: the access token every request must carry when
/// set (AUTH-9), and the management token, valid on the server admin API only.
#[derive(Default)]
pub struct Gates {
    pub access_token: Option<SecretString>,
    pub management_token: Option<SecretString>,
}

/// Proof that a request passed the access-token gate (AUTH-9); only
/// [`Services::access_gate`] makes one.
#[derive(Debug, Clone, Copy)]
pub struct AccessGranted(());

/// A credential as an `Authorization` header (or the gateway's `token`) presents it:
/// `<scheme> <token>`, the scheme matched case-insensitively (RFC 7235 §2.1). Which kind a
/// bearer token is comes from its prefix ([`TokenKind::claimed_by`]); a token is then checked
/// as that kind only, so a bot's token sent as `Bearer` or a key sent as `Bot` fails.
pub enum PresentedCredential {
    /// `Bearer cnv_s_…`, or a bearer token of another kind this server issues (which fails as
    /// a session).
    Session(SecretString),
    /// `Bearer cnv_k_…` (AUTH-7).
    ApiKey(SecretString),
    /// `Bot <token>` (AUTH-6).
    Bot(SecretString),
    /// `Bearer cnv_oa_…`: an OAuth access token (MCP-2).
    OAuth(SecretString),
    /// A bearer token of no kind this server issues: only the management token can be one,
    /// and only the server admin API accepts it.
    Management(SecretString),
}

impl PresentedCredential {
    /// The kind of credential this claims to be (the management token counts as a session:
    /// it is refused everywhere `identify` is asked).
    #[must_use]
    pub const fn kind(&self) -> CredentialKind {
        match self {
            Self::Session(_) | Self::Management(_) => CredentialKind::Session,
            Self::ApiKey(_) => CredentialKind::ApiKey,
            Self::Bot(_) => CredentialKind::Bot,
            Self::OAuth(_) => CredentialKind::OAuth,
        }
    }

    /// Reads `<scheme> <token>`; the token is trimmed. Any other scheme (`Basic`, or no
    /// scheme at all) is [`Refused::UnsupportedScheme`].
    pub fn parse(value: &str) -> Result<Self, Refused> {
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        let token = SecretString::from(rest.trim());
        if scheme.eq_ignore_ascii_case("bot") {
            return Ok(Self::Bot(token));
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(Refused::UnsupportedScheme);
        }
        Ok(match TokenKind::claimed_by(token.expose_secret()) {
            Some(TokenKind::ApiKey) => Self::ApiKey(token),
            Some(TokenKind::OAuthAccess) => Self::OAuth(token),
            Some(_) => Self::Session(token),
            None => Self::Management(token),
        })
    }
}

/// The CSRF token a cookie request carries (AUTH-3).
#[derive(Debug, Clone, Copy)]
pub enum Csrf<'a> {
    /// A request that changes nothing (`GET`, `HEAD`, `OPTIONS`, the gateway's upgrade).
    NotNeeded,
    /// What `X-CSRF-Token` said (empty when it was missing).
    Given(&'a str),
}

/// Where the credential was.
#[derive(Debug, Clone, Copy)]
pub enum Shown<'a> {
    /// `Authorization` (REST), or IDENTIFY's and RESUME's `token` (gateway).
    Authorization(&'a str),
    /// A browser's session cookie.
    Cookie { token: &'a str, csrf: Csrf<'a> },
}

/// What a request showed, for [`Services::identify`].
pub struct Presented<'a> {
    pub credential: Shown<'a>,
    /// The client's address itself: an API key's allowlist is checked against it.
    pub ip: Option<IpAddr>,
    /// Where the request came from as recorded (its `ip` is the address as limits key it).
    pub meta: ClientMeta,
    /// Whether the route stays open to a user who must turn on 2FA and has not (their
    /// account and the 2FA routes).
    pub before_2fa: bool,
}

/// Why a request is not let in; each surface answers it its own way.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("a valid access token is required")]
    AccessToken,
    #[error("unsupported authorization scheme")]
    UnsupportedScheme,
    #[error("the credential is invalid, expired or revoked")]
    InvalidCredential,
    #[error("missing or wrong CSRF token")]
    Csrf,
    /// AUTH-4a: the user must turn on two-factor authentication first.
    #[error("two-factor authentication is required")]
    SecondFactorRequired,
    /// Anything else: an API key used from outside its allowlist, a database failure.
    #[error(transparent)]
    Service(ServiceError),
}

impl From<ServiceError> for Refused {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Unauthorized { .. } => Self::InvalidCredential,
            other => Self::Service(other),
        }
    }
}

impl Services {
    /// AUTH-9: with an access token configured, every request must carry it (compared in
    /// constant time); the proof is what [`Self::identify`] asks for.
    pub fn access_gate(&self, given: Option<&str>) -> Result<AccessGranted, Refused> {
        match &self.gates.access_token {
            None => Ok(AccessGranted(())),
            Some(expected)
                if token::secrets_equal(given.unwrap_or_default(), expected.expose_secret()) =>
            {
                Ok(AccessGranted(()))
            }
            Some(_) => Err(Refused::AccessToken),
        }
    }

    /// Whether the access-token gate is on (shown in the capabilities).
    #[must_use]
    pub fn access_gate_on(&self) -> bool {
        self.gates.access_token.is_some()
    }

    /// Who is asking: the credential checked as the kind it presents itself as, a cookie
    /// session with its CSRF token, then the per-user 2FA gate (AUTH-4a). Costs what checking
    /// the credential costs (one lookup by token hash, one of the account) and, only for a
    /// user who must turn on 2FA, one more — none of them while this node's cache holds a
    /// fresh copy (`crate::cache`); every check runs on the copy as on a fresh read.
    pub async fn identify(
        &self,
        _access: &AccessGranted,
        presented: Presented<'_>,
    ) -> Result<Actor, Refused> {
        let recorded_ip = presented.meta.ip.as_deref();
        let exact_ip = presented.ip.map(|i| i.to_string());
        let kind = match presented.credential {
            Shown::Authorization(value) => PresentedCredential::parse(value)?.kind(),
            Shown::Cookie { .. } => CredentialKind::Session,
        };
        if !policy::credentials::surface_accepts(presented.meta.surface, kind) {
            return Err(Refused::InvalidCredential);
        }
        let mut actor = match presented.credential {
            Shown::Authorization(value) => match PresentedCredential::parse(value)? {
                PresentedCredential::Session(t) => {
                    self.authenticate(t.expose_secret(), recorded_ip).await?
                }
                PresentedCredential::ApiKey(t) => {
                    (self.authenticate_api_key(t.expose_secret(), exact_ip.as_deref())).await?
                }
                PresentedCredential::Bot(t) => {
                    (self.authenticate_bot(t.expose_secret(), exact_ip.as_deref())).await?
                }
                PresentedCredential::OAuth(t) => {
                    (self.authenticate_oauth(t.expose_secret(), recorded_ip)).await?
                }
                PresentedCredential::Management(_) => return Err(Refused::InvalidCredential),
            },
            Shown::Cookie { token, csrf } => {
                let actor = self.authenticate(token, recorded_ip).await?;
                if !actor.session.cookie {
                    return Err(Refused::InvalidCredential);
                }
                if let Csrf::Given(given) = csrf {
                    if !token::secrets_equal(given, &self.csrf_token(&actor.session)) {
                        return Err(Refused::Csrf);
                    }
                }
                actor
            }
        };
        actor.meta = presented.meta;
        self.second_factor_gate(&actor, presented.before_2fa)
            .await?;
        Ok(actor)
    }

    /// The server admin capability for the management token: only a non-empty token equal to
    /// the configured one (constant time) makes one (CORE-3a).
    pub fn identify_management(
        &self,
        _access: &AccessGranted,
        credential: &PresentedCredential,
        meta: ClientMeta,
    ) -> Result<ServerAdmin, Refused> {
        let PresentedCredential::Management(given) = credential else {
            return Err(Refused::InvalidCredential);
        };
        let given = given.expose_secret();
        let matches = !given.is_empty()
            && (self.gates.management_token.as_ref())
                .is_some_and(|t| token::secrets_equal(given, t.expose_secret()));
        if matches {
            Ok(ServerAdmin::management(meta))
        } else {
            Err(Refused::InvalidCredential)
        }
    }

    /// WEB-4: a support widget call. `key` (`X-Widget-Key`) must be a live widget key and
    /// `origin` (`Origin`) one of its allowed origins; anything else is 403 — the same answer
    /// for an unknown, revoked or malformed key (`widget_key_invalid`), and
    /// `origin_not_allowed` for a page elsewhere. A malformed key costs no query.
    pub async fn identify_widget(
        &self,
        key: Option<&str>,
        origin: Option<&str>,
    ) -> Result<WidgetKey, ServiceError> {
        let invalid = ServiceError::forbidden(
            "widget_key_invalid",
            "the widget key is missing, unknown or revoked",
        );
        let key = key.map(str::trim).unwrap_or_default();
        if !token::well_formed(TokenKind::WidgetKey, key) {
            return Err(invalid);
        }
        let Some(found) = self.store.widget_key_by_value(key).await? else {
            return Err(invalid);
        };
        if !origin.is_some_and(|o| origin_listed(&found.allowed_origins, o)) {
            return Err(ServiceError::forbidden(
                "origin_not_allowed",
                "this page's origin may not use this widget key",
            ));
        }
        Ok(found)
    }

    /// WEB-4: whether some live widget key allows `origin` (a CORS preflight carries no key).
    pub async fn widget_origin_known(&self, origin: &str) -> Result<bool, ServiceError> {
        match WidgetOrigin::parse(origin) {
            Ok(o) => Ok(self.store.widget_origin_known(o.as_str()).await?),
            Err(_) => Ok(false),
        }
    }

    /// WEB-4: the visitor of session `session_id` of `key`, when `secret` (`X-Widget-Visitor`)
    /// is that session's visitor secret: its keyed hash is compared in constant time with the
    /// stored one. A missing or wrong secret, or a session of another key, is 401
    /// `visitor_invalid`, the same whether the session exists — a session id alone reads
    /// nothing. An anonymous session of a key that now requires signed visitors is 403
    /// `identity_required`. The secret is valid nowhere else: on every other route it is a bearer token
    /// of no session.
    pub async fn identify_visitor(
        &self,
        key: WidgetKey,
        session_id: &WidgetSessionId,
        secret: Option<&str>,
        meta: ClientMeta,
    ) -> Result<Visitor, ServiceError> {
        let invalid = || {
            ServiceError::unauthorized(
                "visitor_invalid",
                "the visitor session is unknown or its secret is wrong",
            )
        };
        let secret = secret.map(str::trim).unwrap_or_default();
        let hash = self.presented_token_hash(TokenKind::Visitor, secret, invalid())?;
        let Some((session, visitor)) = self
            .store
            .widget_session(key.id, session_id.as_str())
            .await?
        else {
            return Err(invalid());
        };
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            &hash[..],
            &session.secret_hash[..],
        )) {
            return Err(invalid());
        }
        // A session begun anonymously before the key came to require signed visitors reads
        // and says nothing any more.
        if key.identity == crate::widget::IdentityMode::Required && !session.verified {
            return Err(ServiceError::forbidden(
                "identity_required",
                "this widget requires a signed-in visitor",
            ));
        }
        Ok(Visitor {
            key,
            session,
            visitor,
            meta,
        })
    }

    /// AUTH-4a: every credential of a user a server admin requires to use 2FA — a session, or
    /// an API key they made (a bot is its own account, with its own flag) — reaches only the
    /// routes declared `before_2fa` until they turn it on.
    async fn second_factor_gate(&self, actor: &Actor, before_2fa: bool) -> Result<(), Refused> {
        if policy::credentials::second_factor_waived(
            actor.user.require_2fa,
            before_2fa,
            &actor.session,
        ) || self.second_factor_on(actor.user.id).await?
        {
            Ok(())
        } else {
            Err(Refused::SecondFactorRequired)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn kind(value: &str) -> Result<&'static str, &'static str> {
        match PresentedCredential::parse(value) {
            Ok(PresentedCredential::Session(_)) => Ok("session"),
            Ok(PresentedCredential::ApiKey(_)) => Ok("api_key"),
            Ok(PresentedCredential::Bot(_)) => Ok("bot"),
            Ok(PresentedCredential::OAuth(_)) => Ok("oauth"),
            Ok(PresentedCredential::Management(_)) => Ok("management"),
            Err(Refused::UnsupportedScheme) => Err("unsupported_scheme"),
            Err(_) => Err("other"),
        }
    }

    fn token_of(value: &str) -> String {
        match PresentedCredential::parse(value).unwrap() {
            PresentedCredential::Session(t)
            | PresentedCredential::ApiKey(t)
            | PresentedCredential::Bot(t)
            | PresentedCredential::OAuth(t)
            | PresentedCredential::Management(t) => t.expose_secret().to_owned(),
        }
    }

    #[test]
    fn schemes_and_prefixes_pick_the_kind() {
        for (value, expected, why) in [
            ("Bearer cnv_s_x", Ok("session"), ""),
            ("Bearer cnv_k_x", Ok("api_key"), ""),
            ("Bot cnv_b_x", Ok("bot"), ""),
            ("Bearer cnv_oa_x", Ok("oauth"), ""),
            (
                "Bearer cnv_or_x",
                Ok("session"),
                "a refresh token is no credential (fails as a session)",
            ),
            (
                "bot  cnv_k_y ",
                Ok("bot"),
                "a key sent as Bot is a bot (and fails)",
            ),
            (
                "Bearer cnv_b_x",
                Ok("session"),
                "a bot token as Bearer fails",
            ),
            ("Bearer s3cret-admin-token", Ok("management"), ""),
            ("Bearer ", Ok("management"), ""),
            ("Bearer", Ok("management"), ""),
            ("Basic YWxpY2U6cHc=", Err("unsupported_scheme"), ""),
            ("cnv_k_x", Err("unsupported_scheme"), "a scheme is required"),
            ("", Err("unsupported_scheme"), ""),
        ] {
            assert_eq!(kind(value), expected, "{value:?}: {why}");
        }
        assert_eq!(token_of("Bearer   cnv_s_x  "), "cnv_s_x");
        assert_eq!(token_of("Bot"), "");
    }

    proptest! {
        #[test]
        fn arbitrary_values_never_panic(value in any::<String>()) {
            let _ = PresentedCredential::parse(&value);
        }

        #[test]
        fn the_scheme_is_case_insensitive(
            scheme in prop::sample::select(vec!["bearer", "bot", "basic", "negotiate"]),
            upper in prop::collection::vec(any::<bool>(), 9),
            token in "[ -~]{0,60}",
        ) {
            let cased: String = scheme
                .chars()
                .zip(upper.iter().cycle())
                .map(|(c, up)| if *up { c.to_ascii_uppercase() } else { c })
                .collect();
            let a = kind(&format!("{scheme} {token}"));
            let b = kind(&format!("{cased} {token}"));
            prop_assert_eq!(a, b);
        }
    }
}
