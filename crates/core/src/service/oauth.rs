//! The OAuth 2.1 flow of Conclave's own authorization server (MCP-2): an authorization request
//! checked and stored for consent, the user's consent (cookie sessions only) turning it into a
//! 60-second single-use code, the token endpoint (code + PKCE S256, refresh-token rotation
//! with reuse detection), revocation (RFC 7009), and access tokens as callers — through
//! `identity`, on `/mcp` only. Grants and clients are `oauth_grants`.

use super::credentials::{credential_actor, stand_in};
use super::{Actor, ClientMeta, Result, Services};
use crate::audit::AuditActor;
use crate::credential::{Credential, Scope};
use crate::error::ServiceError;
use crate::ids::*;
use crate::oauth::*;
use crate::policy;
use crate::store::StoreError;
use crate::token::{self, TokenKind};
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use utoipa::ToSchema;

/// The issuer (the public URL) and the one resource its tokens are for (`<public URL>/mcp`).
#[derive(Debug, Clone, Default)]
pub struct OAuthSettings {
    pub issuer: String,
    pub resource: String,
}

impl OAuthSettings {
    /// Where the resource's RFC 9728 metadata is (RFC 9728 §3.1: the well-known path with the
    /// resource's path after it): what `/mcp`'s 401 names in `WWW-Authenticate: Bearer
    /// resource_metadata="…"`.
    #[must_use]
    pub fn resource_metadata_url(&self) -> String {
        format!("{}/.well-known/oauth-protected-resource/mcp", self.issuer)
    }
}

/// `GET /oauth/authorize`'s parameters, as given (each checked here, in RFC 6749 §4.1.2.1's
/// order: the client and its redirect URI first).
#[derive(Debug, Clone, Default)]
pub struct AuthorizeRequest {
    pub redirect_uri: Option<String>,
    pub response_type: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub state: Option<String>,
    pub scope: Option<String>,
    pub resource: Option<String>,
}

/// The client an authorization names: a registered client's id as given, or the checked
/// Client ID Metadata Document fetched from the URL it gave.
#[derive(Debug, Clone)]
pub enum AuthorizeClient {
    Registered(String),
    Document(ClientDocument),
}

/// Why an authorization request is refused.
#[derive(Debug)]
pub enum AuthorizeRefusal {
    /// Before the redirect URI is trusted (unknown client, redirect URI not registered): shown
    /// to the user, never sent anywhere.
    Shown(OAuthError),
    /// Sent back to the client at its verified redirect URI (this URL).
    Redirect(String),
    Service(ServiceError),
}

impl From<StoreError> for AuthorizeRefusal {
    fn from(e: StoreError) -> Self {
        Self::Service(e.into())
    }
}

/// What the consent page shows (`GET /api/v1/oauth/requests/{id}`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConsentView {
    pub id: OAuthRequestId,
    pub client_id: String,
    pub client_name: String,
    /// Whether an org admin registered the client (otherwise it named itself in a metadata
    /// document at `client_id`).
    pub registered: bool,
    /// Where the browser goes after the decision.
    pub redirect_host: String,
    pub scopes: Vec<Scope>,
    /// The orgs the user may grant access to (a registered client: its own org only).
    pub orgs: Vec<ConsentOrg>,
    pub expires_at: DateTime<Utc>,
}

/// An org offered on the consent page, with the caller's role in it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConsentOrg {
    pub id: OrgId,
    pub name: String,
    pub role: crate::types::OrgRole,
}

/// How a client authenticated at the token or revocation endpoint: `client_id` (form or
/// Basic) and, for confidential clients, the secret.
#[derive(Debug, Default)]
pub struct ClientAuth {
    pub client_id: Option<String>,
    pub secret: Option<SecretString>,
}

/// A token request (RFC 6749 §4.1.3, §6).
#[derive(Debug)]
pub enum TokenRequest {
    AuthorizationCode {
        code: String,
        code_verifier: Option<String>,
        redirect_uri: Option<String>,
        resource: Option<String>,
    },
    RefreshToken {
        refresh_token: String,
        scope: Option<String>,
        resource: Option<String>,
    },
}

/// What the token endpoint answers: the tokens (shown once) and what they allow.
#[derive(Debug)]
pub struct IssuedTokens {
    pub access_token: SecretString,
    pub refresh_token: SecretString,
    pub expires_in: i64,
    pub scopes: Vec<Scope>,
}

/// Why a token or revocation request failed: an RFC 6749 §5.2 error, or a failure of ours.
#[derive(Debug)]
pub enum TokenFailure {
    OAuth(OAuthError),
    Service(ServiceError),
}

impl From<OAuthError> for TokenFailure {
    fn from(e: OAuthError) -> Self {
        Self::OAuth(e)
    }
}

impl From<StoreError> for TokenFailure {
    fn from(e: StoreError) -> Self {
        Self::Service(e.into())
    }
}

impl From<ServiceError> for TokenFailure {
    fn from(e: ServiceError) -> Self {
        Self::Service(e)
    }
}

/// `uri` with `params` added to its query.
fn with_query(uri: &str, params: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        query.append_pair(k, v);
    }
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}{}", query.finish())
}

/// A fresh token of `kind` and how it is stored.
fn new_token(
    kind: TokenKind,
    pepper: &secrecy::SecretBox<[u8; 32]>,
    expires_at: DateTime<Utc>,
) -> (SecretString, NewToken) {
    let text = token::generate(kind);
    let stored = NewToken {
        id: uuid::Uuid::now_v7(),
        hash: token::hash(pepper, text.expose_secret()),
        expires_at,
    };
    (text, stored)
}

const REQUEST_GONE: ServiceError = ServiceError::NotFound("authorization request");

impl Services {
    /// Checks an authorization request and stores it for the user's consent; answers its id.
    /// The client and its redirect URI (an exact string match) are checked first: until they
    /// are, a refusal is shown, never redirected.
    pub async fn authorize(
        &self,
        client: AuthorizeClient,
        req: AuthorizeRequest,
    ) -> std::result::Result<OAuthRequestId, AuthorizeRefusal> {
        let shown =
            |e: &'static str, d: &'static str| AuthorizeRefusal::Shown(OAuthError::new(e, d));
        let (client, redirect_uris) = match client {
            AuthorizeClient::Document(doc) => (
                ClientRef {
                    client_id: doc.client_id,
                    registered: None,
                    name: doc.name,
                },
                doc.redirect_uris,
            ),
            AuthorizeClient::Registered(id) => {
                let unknown = || shown("invalid_client", "unknown client_id");
                let id = uuid::Uuid::try_parse(&id).map_err(|_| unknown())?;
                let c = match self.store.oauth_client(OAuthClientId(id)).await {
                    Ok(c) => c,
                    Err(StoreError::NotFound) => return Err(unknown()),
                    Err(e) => return Err(e.into()),
                };
                let client = ClientRef {
                    client_id: c.id.to_string(),
                    registered: Some(c.id),
                    name: c.name,
                };
                (client, c.redirect_uris)
            }
        };
        let Some(redirect_uri) = req.redirect_uri.filter(|u| redirect_uris.contains(u)) else {
            return Err(shown(
                "invalid_request",
                "redirect_uri is missing or not registered for this client",
            ));
        };
        let state = req.state;
        let issuer = self.oauth.issuer.clone();
        let back = |e: OAuthError| {
            let mut params = vec![("error", e.error), ("error_description", &*e.description)];
            if let Some(s) = &state {
                params.push(("state", s.as_str()));
            }
            params.push(("iss", issuer.as_str()));
            AuthorizeRefusal::Redirect(with_query(&redirect_uri, &params))
        };
        if req.response_type.as_deref() != Some("code") {
            return Err(back(OAuthError::new(
                "unsupported_response_type",
                "only response_type=code is supported",
            )));
        }
        match req.code_challenge_method.as_deref() {
            Some("S256") => {}
            None => {
                return Err(back(OAuthError::invalid_request(
                    "PKCE is required: send code_challenge with code_challenge_method=S256",
                )))
            }
            Some(_) => {
                return Err(back(OAuthError::invalid_request(
                    "only code_challenge_method=S256 is supported",
                )))
            }
        }
        let Some(code_challenge) = req.code_challenge.filter(|c| challenge_well_formed(c)) else {
            return Err(back(OAuthError::invalid_request(
                "code_challenge must be an S256 challenge (43 characters of base64url)",
            )));
        };
        if req.resource.as_deref() != Some(self.oauth.resource.as_str()) {
            return Err(back(OAuthError::new(
                "invalid_target",
                "resource is required and must be this server's MCP endpoint",
            )));
        }
        let scopes = match req.scope.as_deref().filter(|s| !s.trim().is_empty()) {
            Some(text) => parse_scope_text(text).map_err(&back)?,
            None => DEFAULT_SCOPES.to_vec(),
        };
        if state.as_ref().is_some_and(|s| s.len() > 1000) {
            return Err(back(OAuthError::invalid_request("state is too long")));
        }
        let now = self.clock.now();
        let request = AuthorizationRequest {
            id: OAuthRequestId::new(),
            client,
            redirect_uri: redirect_uri.clone(),
            scopes,
            state: state.clone(),
            code_challenge,
            resource: self.oauth.resource.clone(),
            created_at: now,
            expires_at: now + REQUEST_TTL,
        };
        self.store.create_oauth_request(&request).await?;
        Ok(request.id)
    }

    /// Consent is given only through the user's own browser session (cookie and CSRF token):
    /// not a bearer session, a key, or an impersonating admin.
    fn require_cookie_session(actor: &Actor) -> Result<()> {
        Self::require_own_session(actor)?;
        if actor.session.cookie {
            Ok(())
        } else {
            Err(ServiceError::forbidden(
                "cookie_session_required",
                "consent is given in the web client, signed in with a browser session",
            ))
        }
    }

    /// A live pending authorization.
    async fn pending_request(&self, id: OAuthRequestId) -> Result<AuthorizationRequest> {
        let request = (self.store.oauth_request(id).await)
            .map_err(ServiceError::missing("authorization request"))?;
        if request.expires_at <= self.clock.now() {
            return Err(REQUEST_GONE);
        }
        Ok(request)
    }

    /// What the consent page shows for a pending authorization.
    pub async fn consent_view(&self, actor: &Actor, id: OAuthRequestId) -> Result<ConsentView> {
        Self::require_cookie_session(actor)?;
        let request = self.pending_request(id).await?;
        let client_org = match request.client.registered {
            Some(c) => Some(
                self.store
                    .oauth_client(c)
                    .await
                    .map_err(ServiceError::missing("authorization request"))?
                    .org_id,
            ),
            None => None,
        };
        let orgs = (self.store.orgs_for_user(actor.user.id).await?)
            .into_iter()
            .filter(|(o, _)| client_org.is_none_or(|c| c == o.id))
            .map(|(o, role)| ConsentOrg {
                id: o.id,
                name: o.name,
                role,
            })
            .collect();
        Ok(ConsentView {
            id: request.id,
            redirect_host: uri_host(&request.redirect_uri)
                .unwrap_or(&request.redirect_uri)
                .to_owned(),
            client_id: request.client.client_id,
            client_name: request.client.name,
            registered: request.client.registered.is_some(),
            scopes: request.scopes,
            orgs,
            expires_at: request.expires_at,
        })
    }

    /// The user's decision on a pending authorization (taken once, atomically): approval
    /// for an org of theirs makes a 60-second code for the scopes their role there can use;
    /// either way, answers where the browser goes next (the client's redirect URI).
    pub async fn decide_consent(
        &self,
        actor: &Actor,
        id: OAuthRequestId,
        approve: bool,
        org: Option<OrgId>,
    ) -> Result<String> {
        Self::require_cookie_session(actor)?;
        let request = self.pending_request(id).await?;
        let issuer = self.oauth.issuer.as_str();
        let mut params: Vec<(&str, String)> = Vec::new();
        let now = self.clock.now();
        let code = if approve {
            let org = org.ok_or_else(|| {
                ServiceError::invalid("org_id", "missing_field", "choose the org to grant")
            })?;
            let role = self.org_role(actor, org).await?;
            if let Some(c) = request.client.registered {
                let client = (self.store.oauth_client(c).await)
                    .map_err(ServiceError::missing("authorization request"))?;
                if client.org_id != org {
                    return Err(ServiceError::forbidden(
                        "client_org",
                        "this client is registered for another organization",
                    ));
                }
            }
            let scopes: Vec<Scope> = (request.scopes.iter().copied())
                .filter(|s| policy::credentials::scope_fits_role(role, *s))
                .collect();
            if scopes.is_empty() {
                return Err(ServiceError::forbidden(
                    "no_scope",
                    "your role in this organization allows none of the requested scopes",
                ));
            }
            Some((org, scopes))
        } else {
            None
        };
        let request = (self.store.take_oauth_request(id, now).await)
            .map_err(ServiceError::missing("authorization request"))?;
        match code {
            Some((org, scopes)) => {
                let (text, stored) = new_token(
                    TokenKind::OAuthCode,
                    &self.keys.token_pepper,
                    now + CODE_TTL,
                );
                let code = AuthorizationCode {
                    id: stored.id,
                    client: request.client.clone(),
                    user_id: actor.user.id,
                    org_id: org,
                    scopes,
                    redirect_uri: request.redirect_uri.clone(),
                    code_challenge: request.code_challenge.clone(),
                    resource: request.resource.clone(),
                    created_at: now,
                    expires_at: stored.expires_at,
                };
                self.store.create_oauth_code(&code, &stored.hash).await?;
                params.push(("code", text.expose_secret().to_owned()));
            }
            None => params.push(("error", "access_denied".to_owned())),
        }
        if let Some(state) = request.state {
            params.push(("state", state));
        }
        params.push(("iss", issuer.to_owned()));
        let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Ok(with_query(&request.redirect_uri, &pairs))
    }

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
        let invalid = super::auth::INVALID_TOKEN;
        let hash = self.presented_token_hash(TokenKind::OAuthAccess, token_text, invalid)?;
        let now = self.clock.now();
        let (grant, token_id, ends) = self
            .store
            .oauth_access_token(&hash)
            .await?
            .ok_or(super::auth::INVALID_TOKEN)?;
        if now >= ends {
            return Err(super::auth::INVALID_TOKEN);
        }
        let user = self.store.user(grant.user_id).await?;
        if user.disabled {
            return Err(super::auth::INVALID_TOKEN);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resource_metadata_url_follows_rfc_9728() {
        let s = OAuthSettings {
            issuer: "https://chat.example".into(),
            resource: "https://chat.example/mcp".into(),
        };
        assert_eq!(
            s.resource_metadata_url(),
            "https://chat.example/.well-known/oauth-protected-resource/mcp"
        );
    }

    #[test]
    fn redirects_add_to_the_query() {
        assert_eq!(
            with_query("https://c.example/cb", &[("code", "a b"), ("state", "x&y")]),
            "https://c.example/cb?code=a+b&state=x%26y"
        );
        assert_eq!(
            with_query("https://c.example/cb?k=1", &[("error", "access_denied")]),
            "https://c.example/cb?k=1&error=access_denied"
        );
    }
}
