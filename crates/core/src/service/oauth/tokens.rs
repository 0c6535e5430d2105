//! The token endpoint (code + PKCE S256, refresh-token rotation with reuse detection),
//! revocation (RFC 7009), and access tokens as callers.

use super::{new_token, ClientAuth, IssuedTokens, TokenFailure, TokenRequest};
use crate::audit::AuditActor;
use crate::credential::Credential;
use crate::ids::*;
use crate::oauth::*;
use crate::service::auth::INVALID_TOKEN;
use crate::service::credentials::{credential_actor, stand_in};
use crate::service::{Actor, ClientMeta, Result, Services};
use crate::store::StoreError;
use crate::token::{self, TokenKind};
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};

impl Services {
    /// Authenticates the client of a token or revocation request; answers its `client_id`.
    /// Clients identified by a metadata document and public registered clients send no
    /// secret; confidential ones must send theirs (compared as keyed hashes, constant time).
    async fn authenticate_oauth_client(
        &self,
        auth: &ClientAuth,
    ) -> std::result::Result<String, TokenFailure> {
        let client_id = auth
            .client_id
            .clone()
            .ok_or_else(|| OAuthError::invalid_request("client_id is required"))?;
        let secret = auth.secret.as_ref().map(|s| s.expose_secret().to_owned());
        if is_document_client_id(&client_id) {
            return match secret {
                None => Ok(client_id),
                Some(_) => Err(OAuthError::invalid_client().into()),
            };
        }
        let id = uuid::Uuid::try_parse(&client_id).map_err(|_| OAuthError::invalid_client())?;
        let client = match self.store.oauth_client(OAuthClientId(id)).await {
            Ok(c) => c,
            Err(StoreError::NotFound) => return Err(OAuthError::invalid_client().into()),
            Err(e) => return Err(e.into()),
        };
        let ok = match (&client.secret_hash, secret) {
            (None, None) => true,
            (Some(stored), Some(given)) => {
                token::well_formed(TokenKind::OAuthClientSecret, &given) && {
                    let hash = token::hash(&self.keys.token_pepper, &given);
                    bool::from(subtle::ConstantTimeEq::ct_eq(&hash[..], &stored[..]))
                }
            }
            _ => false,
        };
        if ok {
            Ok(client.id.to_string())
        } else {
            Err(OAuthError::invalid_client().into())
        }
    }

    /// The resource a token request names, if any, must be the MCP endpoint (RFC 8707).
    fn check_resource(&self, resource: Option<&str>) -> std::result::Result<(), OAuthError> {
        match resource {
            Some(r) if r != self.oauth.resource => Err(OAuthError::new(
                "invalid_target",
                "resource must be this server's MCP endpoint",
            )),
            _ => Ok(()),
        }
    }

    /// A fresh access and refresh token pair.
    fn new_tokens(&self, now: DateTime<Utc>) -> (SecretString, SecretString, NewTokens) {
        let pepper = &self.keys.token_pepper;
        let (access_text, access) = new_token(TokenKind::OAuthAccess, pepper, now + ACCESS_TTL);
        let (refresh_text, refresh) = new_token(TokenKind::OAuthRefresh, pepper, now + REFRESH_TTL);
        (access_text, refresh_text, NewTokens { access, refresh })
    }

    /// `POST /oauth/token`: redeems a code (PKCE S256, the same client and redirect URI) or
    /// rotates a refresh token. A code or refresh token presented again revokes what it
    /// issued — the whole grant, every access token included.
    pub async fn oauth_token(
        &self,
        auth: ClientAuth,
        request: TokenRequest,
        meta: &ClientMeta,
    ) -> std::result::Result<IssuedTokens, TokenFailure> {
        let client_id = self.authenticate_oauth_client(&auth).await?;
        let now = self.clock.now();
        let (access_token, refresh_token, tokens) = self.new_tokens(now);
        let grant = match request {
            TokenRequest::AuthorizationCode {
                code,
                code_verifier,
                redirect_uri,
                resource,
            } => {
                let verifier = code_verifier
                    .ok_or_else(|| OAuthError::invalid_request("code_verifier is required"))?;
                if !verifier_well_formed(&verifier) {
                    return Err(OAuthError::invalid_grant("code_verifier is not valid").into());
                }
                let redirect_uri = redirect_uri
                    .ok_or_else(|| OAuthError::invalid_request("redirect_uri is required"))?;
                self.check_resource(resource.as_deref())?;
                if !token::well_formed(TokenKind::OAuthCode, &code) {
                    return Err(OAuthError::invalid_grant("the code is invalid").into());
                }
                let hash = token::hash(&self.keys.token_pepper, &code);
                let challenge = s256(&verifier);
                let check = |c: &AuthorizationCode| {
                    let matches = c.client.client_id == client_id
                        && c.redirect_uri == redirect_uri
                        && token::secrets_equal(&c.code_challenge, &challenge);
                    matches.then(|| {
                        let grant = Grant {
                            id: GrantId::new(),
                            user_id: c.user_id,
                            org_id: c.org_id,
                            client_id: c.client.client_id.clone(),
                            client_name: c.client.name.clone(),
                            scopes: c.scopes.clone(),
                            resource: c.resource.clone(),
                            created_at: now,
                            registered_client: c.client.registered,
                            revoked_at: None,
                        };
                        let audit = self
                            .audit_as(AuditActor::user(c.user_id), meta, "oauth_grant.created")
                            .resource("oauth_grant", grant.id)
                            .org(grant.org_id)
                            .detail(serde_json::json!({
                                "client_id": grant.client_id, "scopes": grant.scopes,
                            }));
                        (grant, vec![audit])
                    })
                };
                match (self.store)
                    .exchange_oauth_code(&hash, now, &check, &tokens)
                    .await?
                {
                    CodeExchange::Issued(grant) => grant,
                    CodeExchange::Invalid => {
                        return Err(OAuthError::invalid_grant(
                            "the code is invalid, expired, or was issued to another client or redirect_uri, or the code_verifier does not match",
                        )
                        .into())
                    }
                    CodeExchange::Replayed(grant) => {
                        if let Some(grant) = grant {
                            self.revoke_grant_for(grant, meta, "code_replayed").await?;
                        }
                        return Err(OAuthError::invalid_grant("the code was used already").into());
                    }
                }
            }
            TokenRequest::RefreshToken {
                refresh_token: presented,
                scope,
                resource,
            } => {
                self.check_resource(resource.as_deref())?;
                if !token::well_formed(TokenKind::OAuthRefresh, &presented) {
                    return Err(OAuthError::invalid_grant("the refresh token is invalid").into());
                }
                // A narrower scope is not offered: the grant's scopes stay what was consented.
                if let Some(text) = scope.as_deref().filter(|s| !s.trim().is_empty()) {
                    let _ = parse_scope_text(text)?;
                }
                let hash = token::hash(&self.keys.token_pepper, &presented);
                // A disabled (or erased) user's grants issue nothing more.
                if let Some(grant) = self.store.oauth_refresh_grant(&hash).await? {
                    if self.store.user(grant.user_id).await?.disabled {
                        return Err(OAuthError::invalid_grant("the account is disabled").into());
                    }
                }
                let check = |g: &Grant| g.client_id == client_id;
                match (self.store)
                    .rotate_oauth_refresh(&hash, now, &check, &tokens)
                    .await?
                {
                    RefreshRotation::Rotated(grant) => grant,
                    RefreshRotation::Invalid => {
                        return Err(OAuthError::invalid_grant(
                            "the refresh token is invalid, expired or revoked",
                        )
                        .into())
                    }
                    RefreshRotation::Reused(grant) => {
                        self.revoke_grant_for(grant, meta, "refresh_token_reused")
                            .await?;
                        return Err(OAuthError::invalid_grant(
                            "the refresh token was used already; the grant is revoked",
                        )
                        .into());
                    }
                }
            }
        };
        Ok(IssuedTokens {
            access_token,
            refresh_token,
            expires_in: ACCESS_TTL.num_seconds(),
            scopes: grant.scopes,
        })
    }

    /// Revokes a grant because one of its codes or refresh tokens came back (audited as the
    /// system, naming why). A grant revoked meanwhile is not an error.
    async fn revoke_grant_for(&self, grant: GrantId, meta: &ClientMeta, why: &str) -> Result<()> {
        let audit = self
            .audit_as(AuditActor::system(), meta, "oauth_grant.revoked")
            .resource("oauth_grant", grant)
            .detail(serde_json::json!({ "reason": why }));
        let audit = match self.store.oauth_grant(grant).await {
            Ok(g) => audit.org(g.org_id),
            Err(_) => audit,
        };
        match self
            .store
            .revoke_oauth_grant(grant, self.clock.now(), &[audit])
            .await
        {
            Ok(_) | Err(StoreError::NotFound) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// `POST /oauth/revoke` (RFC 7009): a refresh token revokes its whole grant, an access
    /// token itself. Unknown tokens and another client's tokens change nothing; either way the
    /// answer is the same.
    pub async fn oauth_revoke(
        &self,
        auth: ClientAuth,
        presented: &str,
        meta: &ClientMeta,
    ) -> std::result::Result<(), TokenFailure> {
        let client_id = self.authenticate_oauth_client(&auth).await?;
        let hash = token::hash(&self.keys.token_pepper, presented);
        match TokenKind::claimed_by(presented) {
            Some(TokenKind::OAuthRefresh)
                if token::well_formed(TokenKind::OAuthRefresh, presented) =>
            {
                if let Some(grant) = self.store.oauth_refresh_grant(&hash).await? {
                    if grant.client_id == client_id {
                        self.revoke_grant_for(grant.id, meta, "client_revoked")
                            .await?;
                    }
                }
            }
            Some(TokenKind::OAuthAccess)
                if token::well_formed(TokenKind::OAuthAccess, presented) =>
            {
                if let Some((grant, _, _)) = self.store.oauth_access_token(&hash).await? {
                    if grant.client_id == client_id {
                        self.store.delete_oauth_access_token(&hash).await?;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Resolves `Authorization: Bearer cnv_oa_…` (only `/mcp` gets here): a live token of a
    /// live grant, whose user is not disabled (erased accounts are disabled). The org and
    /// conversation checks of every service then apply the user's current rights.
    pub async fn authenticate_oauth(&self, token_text: &str, ip: Option<&str>) -> Result<Actor> {
        let hash = self.presented_token_hash(TokenKind::OAuthAccess, token_text, INVALID_TOKEN)?;
        let now = self.clock.now();
        let (grant, token_id, ends) = self
            .store
            .oauth_access_token(&hash)
            .await?
            .ok_or(INVALID_TOKEN)?;
        if now >= ends {
            return Err(INVALID_TOKEN);
        }
        let user = self.store.user(grant.user_id).await?;
        if user.disabled {
            return Err(INVALID_TOKEN);
        }
        let session = stand_in(
            SessionId(token_id),
            user.id,
            ip,
            grant.created_at,
            now,
            Some(ends),
        );
        let credential = Credential::OAuth {
            grant: grant.id,
            org: grant.org_id,
            scopes: grant.scopes,
        };
        Ok(credential_actor(user, session, ip, credential))
    }
}
