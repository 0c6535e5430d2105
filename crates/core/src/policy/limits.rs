//! What a request's credential and session take away from its user's rights: an API key's
//! scopes (AUTH-7), the org and conversation limits of bots and keys (AZ-5, AZ-5a), and an
//! impersonated session (AUTH-12). Each action of [`super::OrgAction`] and
//! [`super::ConversationAction`] names the scope its routes need and what it is under
//! impersonation, so the `permissions` lists the API returns apply the same limits the routes do.

use super::{impersonation_allows, ImpersonatedRequest};
use crate::credential::{Credential, Scope};
use crate::ids::{ConversationId, OrgId};

/// The limits of one request, beyond its user's roles.
#[derive(Debug, Clone, Copy)]
pub struct CallerLimits<'a> {
    pub credential: &'a Credential,
    /// Whether a server admin acts as the user through this session (AUTH-12).
    pub impersonated: bool,
}

impl<'a> CallerLimits<'a> {
    /// A login session of the user themself: no limit beyond their roles.
    pub const OWN_SESSION: CallerLimits<'static> = CallerLimits {
        credential: &Credential::Session,
        impersonated: false,
    };

    /// Whether an action needing `scope` (`None`: a route no bot or key may use) and being
    /// `request` to an impersonated session is within these limits.
    #[must_use]
    pub fn allow(&self, scope: Option<Scope>, request: ImpersonatedRequest) -> bool {
        let scoped = match scope {
            Some(scope) => self.credential.allows(scope),
            None => !self.credential.is_limited(),
        };
        scoped && (!self.impersonated || impersonation_allows(request))
    }

    /// Whether the credential reaches conversation `conv` of `org` at all.
    #[must_use]
    pub fn reach(&self, org: OrgId, conv: ConversationId) -> bool {
        self.credential.covers_conversation(org, conv)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::testing::{scoped_key, with, IMPERSONATED};

    #[test]
    fn scopes_and_impersonation_narrow_what_a_caller_may() {
        let key = scoped_key(&[Scope::MessagesRead]);
        let limits = with(&key);
        assert!(limits.allow(Some(Scope::MessagesRead), ImpersonatedRequest::Read));
        assert!(!limits.allow(Some(Scope::MessagesWrite), ImpersonatedRequest::OwnMessage));
        assert!(!limits.allow(None, ImpersonatedRequest::Read));
        let own = CallerLimits::OWN_SESSION;
        assert!(own.allow(None, ImpersonatedRequest::OtherWrite));
        let impersonated = IMPERSONATED;
        assert!(impersonated.allow(Some(Scope::MessagesWrite), ImpersonatedRequest::OwnMessage));
        assert!(!impersonated.allow(Some(Scope::OrgAdmin), ImpersonatedRequest::OtherWrite));
    }
}
