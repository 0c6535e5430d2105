//! The authorization request and the user's consent: a request checked and stored, shown
//! to its user (cookie sessions only), and turned into a single-use code or a refusal.

use super::{
    new_token, with_query, AuthorizeClient, AuthorizeRefusal, AuthorizeRequest, ConsentOrg,
    ConsentView,
};
use crate::credential::Scope;
use crate::error::ServiceError;
use crate::ids::*;
use crate::oauth::*;
use crate::policy;
use crate::service::{Actor, Result, Services};
use crate::store::StoreError;
use crate::token::TokenKind;
use secrecy::ExposeSecret;

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
        // Errors go back to the client's redirect URI only for a client an org registered.
        // One that describes itself (a metadata document anyone can host) named that URI
        // itself: redirecting there before the user has signed in and decided would make this
        // server an open redirect for any URL (RFC 9700 §4.11.2), so its errors are shown.
        let registered = client.registered.is_some();
        let back = |e: OAuthError| {
            if !registered {
                return AuthorizeRefusal::Shown(e);
            }
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
        // The state is stored with the request and sent back as given: a control character
        // (NUL above all, which PostgreSQL's text cannot hold) is refused, never stored.
        if state
            .as_ref()
            .is_some_and(|s| s.chars().any(char::is_control))
        {
            return Err(back(OAuthError::invalid_request(
                "state must not contain control characters",
            )));
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
}
