//! What a credential itself allows, whatever its user's rights (AUTH-6, AUTH-7, AUTH-12, AZ-5,
//! MCP-2): which scope a route group asks of a bot or API key, which credentials `POST /mcp`
//! accepts, the rules that keep account and credential management to the user's own login
//! session, and what the server admin capability and impersonation (AUTH-12) may not do. Services ask these predicates and turn a `false`
//! into their error; the REST routes and the gateway declare a [`ScopeRule`].

use crate::credential::{Credential, Scope, Surface};
use crate::ids::UserId;
use crate::model::{Session, User};
use crate::types::{OrgRole, UserKind};

/// The kinds of credential a request can present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    /// A login session, by bearer token or browser cookie.
    Session,
    ApiKey,
    Bot,
    /// An OAuth access token (MCP-2).
    OAuth,
}

/// MCP-2: which kinds of credential a surface accepts, asked by `Services::identify` before
/// any lookup. OAuth access tokens are bound to the MCP resource (RFC 8707), so REST and the
/// gateway (`Surface::Api`) refuse them; `/mcp` takes API keys and OAuth access tokens only
/// (no session or bot token) — the same rule as [`mcp_accepts`] on the resolved credential.
#[must_use]
pub const fn surface_accepts(surface: Surface, kind: CredentialKind) -> bool {
    match surface {
        Surface::Api => !matches!(kind, CredentialKind::OAuth),
        Surface::Mcp => matches!(kind, CredentialKind::ApiKey | CredentialKind::OAuth),
    }
}

/// MCP-2: whether an OAuth grant made by a member with `role` may hold `scope`. A grant never
/// carries a scope its user's role could not use in the org (a viewer's grant reads only);
/// the user's current rights still decide every request.
#[must_use]
pub fn scope_fits_role(role: OrgRole, scope: Scope) -> bool {
    use super::orgs::{org_allows, OrgAction};
    match scope {
        Scope::MessagesRead | Scope::ConversationsRead | Scope::OrgRead => true,
        Scope::MessagesWrite | Scope::FilesWrite => role != OrgRole::Viewer,
        Scope::ConversationsAdmin => org_allows(role, OrgAction::CreateConversation),
        Scope::OrgAdmin => org_allows(role, OrgAction::UpdateOrg),
        Scope::WebhooksAdmin => org_allows(role, OrgAction::ManageWebhooks),
    }
}

/// The scope a route group asks of a bot or API key, declared where the group is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeRule {
    /// No bot or key may use the group: sign-in and sessions, server administration, API-key
    /// management, and routes that need no credential at all.
    SessionOnly,
    /// The same scope whatever the method (the org audit log is administration even to read).
    Always(Scope),
    /// `read` for `GET`, `write` for every other method.
    ReadWrite { read: Scope, write: Scope },
}

impl ScopeRule {
    /// The scope a request needs: `None` when no bot or key may make it.
    #[must_use]
    pub const fn needed(self, is_read: bool) -> Option<Scope> {
        match self {
            Self::SessionOnly => None,
            Self::Always(scope) => Some(scope),
            Self::ReadWrite { read, write } => Some(if is_read { read } else { write }),
        }
    }
}

/// AZ-5: whether a credential may make a request needing `needed`. A login session may make
/// any (its user's rights decide); a bot or key only one with a scope, and a key only when it
/// holds that scope.
#[must_use]
pub fn scope_allows(credential: &Credential, needed: Option<Scope>) -> bool {
    match needed {
        None => !credential.is_limited(),
        Some(scope) => credential.allows(scope),
    }
}

/// MCP-2: whether `POST /mcp` accepts a credential. Only credentials made for programs acting
/// for a user within stated scopes: API keys (AUTH-7) and OAuth access tokens issued by
/// Conclave's own authorization server. A login session (bearer or cookie) is
/// refused, so an agent never holds a user's whole account and a browser's cookie never
/// reaches the endpoint; a bot is its own account with no scopes an agent could be limited to.
/// Another kind of credential for agents is one more arm here.
#[must_use]
pub const fn mcp_accepts(credential: &Credential) -> bool {
    match credential {
        Credential::ApiKey { .. } | Credential::OAuth { .. } => true,
        Credential::Session | Credential::Bot { .. } => false,
    }
}

/// Whether a write that is otherwise not an audit event (an author's own message or read
/// marker, DATA-4) is recorded: under impersonation, with both identities (AUTH-12), and when
/// an outside agent makes it over MCP, with its credential (MCP-3).
#[must_use]
pub const fn writes_audited(impersonated: bool, surface: Surface) -> bool {
    impersonated || matches!(surface, Surface::Mcp)
}

/// Whether the request came through a login session (not a bot or key): managing
/// credentials, creating or joining orgs take one.
#[must_use]
pub const fn is_login_session(credential: &Credential) -> bool {
    !credential.is_limited()
}

/// AUTH-12: whether the session is the user's own, not an admin impersonating them.
#[must_use]
pub const fn is_own_session(session: &Session) -> bool {
    session.impersonator.is_none()
}

/// DATA-6 for an account with no password (one that signs in through single sign-on only):
/// how recently its session must have been made for erasure to take it as re-authentication.
pub const RECENT_SIGN_IN: chrono::Duration = chrono::Duration::minutes(10);

/// Whether `session` was made by a sign-in (its 2FA step included) within [`RECENT_SIGN_IN`]
/// of `now`. A session is only ever made by a sign-in — never renewed in place — so its
/// creation time is when its user last proved who they are. An impersonation is never one.
#[must_use]
pub fn signed_in_recently(session: &Session, now: chrono::DateTime<chrono::Utc>) -> bool {
    session.impersonator.is_none() && now - session.created_at <= RECENT_SIGN_IN
}

/// Whether the credential reaches its whole org rather than listed conversations: what it
/// would create (a conversation, a bot's token) must not reach beyond its list.
#[must_use]
pub fn is_unlisted(credential: &Credential) -> bool {
    credential.conversations().is_none()
}

/// AUTH-4a: whether a user who must turn on 2FA and has not may still make this request —
/// on routes that set it up (`before_2fa`), or through an impersonated session (the admin
/// who impersonates is not the one asked for a second factor).
#[must_use]
pub const fn second_factor_waived(must_set_up: bool, before_2fa: bool, session: &Session) -> bool {
    !must_set_up || before_2fa || session.impersonator.is_some()
}

/// AUTH-12: why server admin `admin` may not impersonate `target`, if they may not: never
/// themselves, another server admin, a bot (it has tokens) or a disabled account.
#[must_use]
pub fn impersonation_refusal(admin: UserId, target: &User) -> Option<&'static str> {
    if target.id == admin {
        Some("you cannot impersonate yourself")
    } else if target.server_admin {
        Some("server admins cannot be impersonated")
    } else if target.kind != UserKind::User {
        Some("bots are not impersonated; use their tokens")
    } else if target.disabled {
        Some("the account is disabled")
    } else {
        None
    }
}

/// A server admin's capability over accounts: any change, but never disabling or demoting
/// their own account (the server would lose its admin). The management token has no account.
#[must_use]
pub fn admin_may_update(admin: Option<UserId>, target: UserId, demotes: bool) -> bool {
    !(demotes && admin == Some(target))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::*;
    use crate::policy::testing::scoped_key;

    #[test]
    fn rules_name_the_scope_of_a_method() {
        let rw = ScopeRule::ReadWrite {
            read: Scope::MessagesRead,
            write: Scope::MessagesWrite,
        };
        assert_eq!(rw.needed(true), Some(Scope::MessagesRead));
        assert_eq!(rw.needed(false), Some(Scope::MessagesWrite));
        assert_eq!(
            ScopeRule::Always(Scope::OrgAdmin).needed(true),
            Some(Scope::OrgAdmin)
        );
        assert_eq!(ScopeRule::SessionOnly.needed(false), None);
    }

    #[test]
    fn sessions_pass_every_route_keys_only_their_scopes() {
        assert!(scope_allows(&Credential::Session, None));
        assert!(scope_allows(&Credential::Session, Some(Scope::OrgAdmin)));
        let bot = Credential::Bot {
            bot: BotId::new(),
            org: OrgId::new(),
            conversations: None,
        };
        assert!(!scope_allows(&bot, None));
        assert!(scope_allows(&bot, Some(Scope::OrgAdmin)));
        let k = scoped_key(&[Scope::MessagesRead]);
        assert!(!scope_allows(&k, None));
        assert!(scope_allows(&k, Some(Scope::MessagesRead)));
        assert!(!scope_allows(&k, Some(Scope::MessagesWrite)));
        assert!(is_login_session(&Credential::Session) && !is_login_session(&k));
        assert!(is_unlisted(&k));
    }

    #[test]
    fn oauth_tokens_only_on_mcp_and_mcp_takes_no_session() {
        use CredentialKind::*;
        assert!(!surface_accepts(Surface::Api, OAuth));
        for kind in [Session, ApiKey, Bot] {
            assert!(surface_accepts(Surface::Api, kind));
        }
        assert!(surface_accepts(Surface::Mcp, OAuth) && surface_accepts(Surface::Mcp, ApiKey));
        assert!(!surface_accepts(Surface::Mcp, Session) && !surface_accepts(Surface::Mcp, Bot));
    }

    #[test]
    fn grants_hold_only_scopes_the_role_can_use() {
        for scope in Scope::ALL {
            assert!(scope_fits_role(OrgRole::Owner, *scope));
        }
        assert!(!scope_fits_role(OrgRole::Viewer, Scope::MessagesWrite));
        assert!(scope_fits_role(OrgRole::Viewer, Scope::MessagesRead));
        assert!(scope_fits_role(OrgRole::Member, Scope::MessagesWrite));
        assert!(!scope_fits_role(OrgRole::Member, Scope::OrgAdmin));
        assert!(!scope_fits_role(OrgRole::Member, Scope::WebhooksAdmin));
        assert!(scope_fits_role(OrgRole::Admin, Scope::OrgAdmin));
    }

    #[test]
    fn mcp_takes_api_keys_and_oauth_tokens_only() {
        assert!(mcp_accepts(&scoped_key(&[Scope::MessagesRead])));
        assert!(mcp_accepts(&Credential::OAuth {
            grant: crate::ids::GrantId::new(),
            org: OrgId::new(),
            scopes: vec![Scope::MessagesRead],
        }));
        assert!(!mcp_accepts(&Credential::Session));
        let bot = Credential::Bot {
            bot: BotId::new(),
            org: OrgId::new(),
            conversations: None,
        };
        assert!(!mcp_accepts(&bot));
    }

    #[test]
    fn own_writes_are_audited_under_impersonation_and_over_mcp() {
        assert!(!writes_audited(false, Surface::Api));
        assert!(writes_audited(false, Surface::Mcp));
        assert!(writes_audited(true, Surface::Api));
    }

    #[test]
    fn only_a_fresh_own_sign_in_is_recent() {
        use chrono::TimeZone;
        let now = chrono::Utc.with_ymd_and_hms(2030, 1, 1, 12, 0, 0).unwrap();
        let session = |minutes_ago: i64, impersonator: Option<UserId>| Session {
            id: crate::ids::SessionId::new(),
            user_id: UserId::new(),
            device: None,
            ip: None,
            created_at: now - chrono::Duration::minutes(minutes_ago),
            last_seen_at: now,
            expires_at: now + chrono::Duration::hours(1),
            cookie: true,
            impersonator,
        };
        assert!(signed_in_recently(&session(0, None), now));
        assert!(signed_in_recently(&session(10, None), now));
        assert!(!signed_in_recently(&session(11, None), now));
        assert!(!signed_in_recently(&session(0, Some(UserId::new())), now));
    }

    #[test]
    fn admins_never_demote_themselves() {
        let (me, other) = (UserId::new(), UserId::new());
        assert!(!admin_may_update(Some(me), me, true));
        assert!(admin_may_update(Some(me), me, false));
        assert!(admin_may_update(Some(me), other, true));
        assert!(
            admin_may_update(None, me, true),
            "the management token has no account"
        );
    }
}
