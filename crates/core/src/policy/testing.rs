//! Credentials and limits the policy tests share.

use super::CallerLimits;
use crate::credential::{Credential, Scope};
use crate::ids::{ApiKeyId, ConversationId, OrgId};
use crate::types::KeyTier;

/// An API key of `org` with `scopes`, limited to `conversations` when set.
pub(super) fn api_key(
    org: OrgId,
    scopes: &[Scope],
    conversations: Option<Vec<ConversationId>>,
) -> Credential {
    Credential::ApiKey {
        key: ApiKeyId::new(),
        org,
        scopes: scopes.to_vec(),
        conversations,
        tier: KeyTier::Free,
    }
}

/// An API key of some org with `scopes`, reaching all its conversations.
pub(super) fn scoped_key(scopes: &[Scope]) -> Credential {
    api_key(OrgId::new(), scopes, None)
}

/// A request made with `credential` (not impersonated).
pub(super) const fn with(credential: &Credential) -> CallerLimits<'_> {
    CallerLimits {
        credential,
        impersonated: false,
    }
}

/// A server admin's impersonated login session of the user (AUTH-12).
pub(super) const IMPERSONATED: CallerLimits<'static> = CallerLimits {
    credential: &Credential::Session,
    impersonated: true,
};
