//! OAuth clients and grants as people manage them (MCP-2): org owners and admins register and
//! delete clients and see and revoke the grants made for their org; every user sees and
//! revokes their own. Revoking a grant deletes its tokens in the same transaction, so the next
//! `/mcp` request with one of them gets 401 on every node (access tokens are not cached).

use super::{Actor, Result, Services};
use crate::error::ServiceError;
use crate::ids::*;
use crate::oauth::*;
use crate::policy::OrgAction;
use crate::store::StoreError;
use crate::token::{self, TokenKind};
use crate::types::Name;
use secrecy::{ExposeSecret, SecretString};

/// A client to register (already parsed).
#[derive(Debug, Clone)]
pub struct NewOAuthClient {
    pub name: Name,
    pub redirect_uris: Vec<String>,
    /// Public clients authenticate with PKCE alone; confidential ones also with a secret.
    pub public: bool,
}

/// Checks a client's redirect URIs: 1–10 distinct acceptable ones, 422 naming the entry.
fn redirect_uris(list: Vec<String>) -> Result<Vec<String>> {
    if list.is_empty() || list.len() > MAX_REDIRECT_URIS {
        return Err(ServiceError::invalid(
            "redirect_uris",
            "invalid_length",
            format!("list 1 to {MAX_REDIRECT_URIS} redirect URIs"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for (i, uri) in list.into_iter().enumerate() {
        if let Some(why) = redirect_uri_refusal(&uri) {
            return Err(ServiceError::invalid(
                format!("/redirect_uris/{i}"),
                "invalid_redirect_uri",
                why,
            ));
        }
        if !out.contains(&uri) {
            out.push(uri);
        }
    }
    Ok(out)
}

impl Services {
    /// Registers an OAuth client for `org`; a confidential client's secret is answered once.
    pub async fn create_oauth_client(
        &self,
        actor: &Actor,
        org: OrgId,
        new: NewOAuthClient,
    ) -> Result<(OAuthClient, Option<SecretString>)> {
        self.require_org(actor, org, OrgAction::ManageOAuth).await?;
        let redirect_uris = redirect_uris(new.redirect_uris)?;
        let secret = (!new.public).then(|| token::generate(TokenKind::OAuthClientSecret));
        let client = OAuthClient {
            id: OAuthClientId::new(),
            org_id: org,
            name: new.name.into_inner(),
            redirect_uris,
            public: new.public,
            created_by: Some(actor.user.id),
            created_at: self.clock.now(),
            secret_hash: (secret.as_ref())
                .map(|s| token::hash(&self.keys.token_pepper, s.expose_secret()).to_vec()),
            secret_hint: secret.as_ref().map(|s| token::hint(s.expose_secret())),
        };
        let audit = self
            .audit(actor, "oauth_client.created")
            .resource("oauth_client", client.id)
            .org(org)
            .detail(serde_json::json!({
                "public": client.public, "redirect_uris": client.redirect_uris,
            }));
        self.store.create_oauth_client(&client, &[audit]).await?;
        Ok((client, secret))
    }

    /// The org's registered clients, oldest first.
    pub async fn oauth_clients(&self, actor: &Actor, org: OrgId) -> Result<Vec<OAuthClient>> {
        self.require_org(actor, org, OrgAction::ManageOAuth).await?;
        Ok(self.store.oauth_clients(org).await?)
    }

    /// Deletes one of the org's clients with its pending requests, codes and grants — every
    /// token it holds stops working at once.
    pub async fn delete_oauth_client(
        &self,
        actor: &Actor,
        org: OrgId,
        id: OAuthClientId,
    ) -> Result<()> {
        self.require_org(actor, org, OrgAction::ManageOAuth).await?;
        let audit = self
            .audit(actor, "oauth_client.deleted")
            .resource("oauth_client", id)
            .org(org);
        (self.store.delete_oauth_client(org, id, &[audit]).await)
            .map_err(ServiceError::missing("OAuth client"))
    }

    /// The caller's live grants, oldest first.
    pub async fn my_grants(&self, actor: &Actor) -> Result<Vec<Grant>> {
        Self::require_session(actor)?;
        Ok(self.store.user_grants(actor.user.id).await?)
    }

    /// The org's live grants, oldest first (owners and admins).
    pub async fn org_grants(&self, actor: &Actor, org: OrgId) -> Result<Vec<Grant>> {
        self.require_org(actor, org, OrgAction::ManageOAuth).await?;
        Ok(self.store.org_grants(org).await?)
    }

    /// Revokes one of the caller's own grants.
    pub async fn revoke_my_grant(&self, actor: &Actor, id: GrantId) -> Result<()> {
        Self::require_own_session(actor)?;
        let grant = self.live_grant(id).await?;
        if grant.user_id != actor.user.id {
            return Err(ServiceError::NotFound("grant"));
        }
        self.revoke_grant(actor, grant).await
    }

    /// Revokes a grant made for the org (owners and admins).
    pub async fn revoke_org_grant(&self, actor: &Actor, org: OrgId, id: GrantId) -> Result<()> {
        self.require_org(actor, org, OrgAction::ManageOAuth).await?;
        let grant = self.live_grant(id).await?;
        if grant.org_id != org {
            return Err(ServiceError::NotFound("grant"));
        }
        self.revoke_grant(actor, grant).await
    }

    /// Revokes every live grant of `user` (their tokens with it), as the system for `reason`,
    /// each audited as `oauth_grant.revoked`. Answers how many; one revoked meanwhile is not
    /// an error.
    pub(super) async fn revoke_all_grants(&self, user: UserId, reason: &str) -> Result<u64> {
        let mut revoked = 0;
        for grant in self.store.user_grants(user).await? {
            let audit = self
                .system_audit("oauth_grant.revoked")
                .resource("oauth_grant", grant.id)
                .org(grant.org_id)
                .detail(serde_json::json!({
                    "client_id": grant.client_id, "user_id": user, "reason": reason,
                }));
            match self
                .store
                .revoke_oauth_grant(grant.id, self.clock.now(), &[audit])
                .await
            {
                Ok(_) => revoked += 1,
                Err(StoreError::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(revoked)
    }

    async fn live_grant(&self, id: GrantId) -> Result<Grant> {
        match self.store.oauth_grant(id).await {
            Ok(g) if g.revoked_at.is_none() => Ok(g),
            Ok(_) | Err(StoreError::NotFound) => Err(ServiceError::NotFound("grant")),
            Err(e) => Err(e.into()),
        }
    }

    async fn revoke_grant(&self, actor: &Actor, grant: Grant) -> Result<()> {
        let audit = self
            .audit(actor, "oauth_grant.revoked")
            .resource("oauth_grant", grant.id)
            .org(grant.org_id)
            .detail(serde_json::json!({ "client_id": grant.client_id, "user_id": grant.user_id }));
        (self
            .store
            .revoke_oauth_grant(grant.id, self.clock.now(), &[audit])
            .await)
            .map(|_| ())
            .map_err(ServiceError::missing("grant"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uri_lists_are_checked_entry_by_entry() {
        assert!(redirect_uris(vec![]).is_err());
        let Err(ServiceError::Invalid { field, .. }) = redirect_uris(vec![
            "https://ok.example/cb".into(),
            "http://not-loopback.example/cb".into(),
        ]) else {
            panic!("refused");
        };
        assert_eq!(field, "/redirect_uris/1");
        let same = redirect_uris(vec![
            "https://a.example/cb".into(),
            "https://a.example/cb".into(),
        ]);
        assert_eq!(same.unwrap().len(), 1);
    }
}
