//! OpenID Connect sign-in (AUTH-10) with the `openidconnect` crate: authorization code flow with
//! PKCE (S256), `state` and `nonce`.
//!
//! - **Start** makes a random `state`; the `nonce` and the PKCE verifier are HMACs of it under
//!   the server's token pepper, so the server stores only a keyed hash of the state (single use,
//!   ten minutes, `core::service::sso`) and nothing that could finish a sign-in. The browser
//!   also gets the state in a short-lived `SameSite=Lax` cookie, so a callback URL made in
//!   someone else's browser (login CSRF) does not match.
//! - **Callback** checks the cookie against `state`, takes the stored record (a replayed
//!   callback finds nothing), exchanges the code with the verifier, and verifies the ID token
//!   with the provider's keys: issuer, audience, expiry, nonce, and an algorithm from the
//!   provider's asymmetric ones only — HS* (a key the client holds) and `none` are never
//!   accepted. An unknown key id refetches the JWKS once per [`REFETCH_MIN`].
//! - Discovery, JWKS and the token request go through the SSRF guard (`GuardedHttp`), never
//!   a client of the crate's own; discovery is cached for [`DISCOVERY_TTL`].
//! - The identity is (issuer, `sub`); email links an existing account only when the provider
//!   is configured `link_existing = "email_verified"` and says the email is verified.

use crate::outbound::{Limits, OutboundError, OutboundGuard, OutboundRequest};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use conclave_core::service::{ExternalIdentity, SsoFailure, SsoRefusal, SsoRules};
use conclave_core::store::{IdentityKey, IdentityKind};
use conclave_core::types::OrgRole;
use conclave_core::OrgId;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreJsonWebKeySet, CoreJwsSigningAlgorithm,
    CoreProviderMetadata,
};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet,
    EndpointSet, IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    TokenResponse,
};
use secrecy::{ExposeSecret, SecretBox, SecretString};

/// How long discovered metadata (and its key set) is used before it is fetched again.
pub const DISCOVERY_TTL: chrono::Duration = chrono::Duration::hours(1);
/// The provider is asked again (after a failure, or for an unknown key id) at most this often.
pub const REFETCH_MIN: chrono::Duration = chrono::Duration::seconds(30);
/// How long a started sign-in may take to come back.
pub const LOGIN_TTL: chrono::Duration = chrono::Duration::minutes(10);

/// A configured provider, parsed (`config::sso`).
pub struct OidcSettings {
    pub id: String,
    pub name: String,
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<SecretString>,
    pub scopes: Vec<String>,
    pub link_existing: bool,
    pub create_users: bool,
    pub roles: Vec<RoleMapping>,
}

/// A claim value that grants an org role.
#[derive(Debug, Clone)]
pub struct RoleMapping {
    pub claim: String,
    pub value: String,
    pub org: OrgId,
    pub role: OrgRole,
}

/// The refusals of a callback, as `/#/signin?error=<code>` names them.
const fn refusal(code: &'static str, message: &'static str) -> SsoRefusal {
    SsoRefusal { code, message }
}
pub const STATE_MISMATCH: SsoRefusal = refusal(
    "oidc_state_mismatch",
    "the sign-in was not started in this browser",
);
pub const STATE_INVALID: SsoRefusal = refusal(
    "oidc_state_invalid",
    "the sign-in is unknown, expired or was already used",
);
pub const PROVIDER_REFUSED: SsoRefusal = refusal(
    "oidc_provider_error",
    "the identity provider refused the sign-in",
);
const CODE_REFUSED: SsoRefusal = refusal(
    "oidc_code_rejected",
    "the identity provider did not accept the authorization code",
);
const TOKEN_INVALID: SsoRefusal = refusal(
    "oidc_id_token_invalid",
    "the identity provider's ID token did not verify",
);

/// The server's HTTP for the crate: every request through the SSRF guard.
async fn guarded(
    guard: OutboundGuard,
    req: openidconnect::HttpRequest,
) -> Result<openidconnect::HttpResponse, OutboundError> {
    let (parts, body) = req.into_parts();
    let request = OutboundRequest {
        method: parts.method,
        url: parts.uri.to_string(),
        headers: parts.headers,
        body: body.into(),
        limits: Limits {
            timeout: std::time::Duration::from_secs(10),
            max_response_bytes: 512 * 1024,
        },
    };
    let fetched = guard.send(request).await?;
    let mut response = http::Response::builder().status(fetched.status);
    if let Some(headers) = response.headers_mut() {
        *headers = fetched.headers;
    }
    response
        .body(fetched.body.to_vec())
        .map_err(|_| OutboundError::Transport("the answer could not be read"))
}

/// What discovery found, and when.
struct Discovered {
    metadata: CoreProviderMetadata,
    fetched_at: DateTime<Utc>,
}

#[derive(Default)]
struct Cache {
    discovered: Option<Discovered>,
    /// When the provider was last asked (discovery or keys), successful or not.
    tried_at: Option<DateTime<Utc>>,
}

/// One provider: its settings, where it sends browsers back to, and its cached metadata.
pub struct OidcProvider {
    pub settings: OidcSettings,
    redirect: RedirectUrl,
    guard: OutboundGuard,
    cache: tokio::sync::Mutex<Cache>,
}

/// Every configured provider.
pub struct Oidc {
    providers: Vec<OidcProvider>,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self
            .providers
            .iter()
            .map(|p| p.settings.id.as_str())
            .collect();
        f.debug_struct("Oidc").field("providers", &ids).finish()
    }
}

impl Oidc {
    /// The providers, each sending browsers back to
    /// `<public_url>/api/v1/auth/oidc/<id>/callback`.
    pub fn new(
        settings: Vec<OidcSettings>,
        public_url: &str,
        guard: &OutboundGuard,
    ) -> Result<Self, String> {
        let providers = settings
            .into_iter()
            .map(|settings| {
                let url = format!("{public_url}/api/v1/auth/oidc/{}/callback", settings.id);
                let redirect = RedirectUrl::new(url)
                    .map_err(|e| format!("oidc provider {:?}: {e}", settings.id))?;
                Ok(OidcProvider {
                    settings,
                    redirect,
                    guard: guard.clone(),
                    cache: tokio::sync::Mutex::new(Cache::default()),
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(Self { providers })
    }

    #[must_use]
    pub fn provider(&self, id: &str) -> Option<&OidcProvider> {
        self.providers.iter().find(|p| p.settings.id == id)
    }

    pub fn providers(&self) -> impl Iterator<Item = &OidcProvider> {
        self.providers.iter()
    }
}

/// `base64url(HMAC(pepper, purpose || state))`: the nonce and the PKCE verifier of a state.
fn derived(pepper: &SecretBox<[u8; 32]>, purpose: &str, state: &str) -> String {
    let mac = conclave_core::token::hash(pepper, &format!("oidc-{purpose}:{state}"));
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac)
}

/// The keyed hash a started sign-in is stored under.
#[must_use]
pub fn state_hash(pepper: &SecretBox<[u8; 32]>, state: &str) -> [u8; 32] {
    conclave_core::token::hash(pepper, &format!("oidc-state:{state}"))
}

/// A new random state (256 bits, base64url).
fn new_state() -> String {
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The crate's client as discovery makes it: authorization endpoint set, token and userinfo
/// endpoints when the provider has them.
type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Signs with a key only the provider holds: never HS* (its key would be the client secret,
/// which this server holds too) and never `none`.
fn asymmetric(alg: &CoreJwsSigningAlgorithm) -> bool {
    use CoreJwsSigningAlgorithm as A;
    matches!(
        alg,
        A::RsaSsaPkcs1V15Sha256
            | A::RsaSsaPkcs1V15Sha384
            | A::RsaSsaPkcs1V15Sha512
            | A::RsaSsaPssSha256
            | A::RsaSsaPssSha384
            | A::RsaSsaPssSha512
            | A::EcdsaP256Sha256
            | A::EcdsaP384Sha384
            | A::EdDsa
    )
}

impl OidcProvider {
    /// Where the provider sends browsers back.
    #[must_use]
    pub fn redirect_uri(&self) -> &str {
        self.redirect.as_str()
    }

    fn client(&self, metadata: CoreProviderMetadata) -> Client {
        let secret = self
            .settings
            .client_secret
            .as_ref()
            .map(|s| ClientSecret::new(s.expose_secret().to_owned()));
        CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.settings.client_id.clone()),
            secret,
        )
        .set_redirect_uri(self.redirect.clone())
    }

    /// The provider's metadata and keys: cached, fetched again after [`DISCOVERY_TTL`] (or,
    /// with `keys_again`, after [`REFETCH_MIN`] — an ID token named a key the cache lacks);
    /// a failed fetch keeps what was cached and waits [`REFETCH_MIN`] before asking again.
    async fn metadata(&self, now: DateTime<Utc>, keys_again: bool) -> Option<CoreProviderMetadata> {
        let mut cache = self.cache.lock().await;
        let may_try = cache.tried_at.is_none_or(|t| now - t >= REFETCH_MIN);
        let stale = cache
            .discovered
            .as_ref()
            .is_none_or(|d| now - d.fetched_at >= DISCOVERY_TTL);
        if may_try && (stale || keys_again) {
            cache.tried_at = Some(now);
            let guard = self.guard.clone();
            let http = move |req| guarded(guard.clone(), req);
            match (&cache.discovered, stale) {
                (Some(d), false) => {
                    match CoreJsonWebKeySet::fetch_async(d.metadata.jwks_uri(), &http).await {
                        Ok(keys) => {
                            let metadata = d.metadata.clone().set_jwks(keys);
                            cache.discovered = Some(Discovered {
                                metadata,
                                fetched_at: d.fetched_at,
                            });
                        }
                        Err(e) => {
                            tracing::warn!(provider = %self.settings.id, error = %e, "fetching the OpenID provider's keys failed")
                        }
                    }
                }
                _ => match IssuerUrl::new(self.settings.issuer.clone()) {
                    Ok(issuer) => match CoreProviderMetadata::discover_async(issuer, &http).await {
                        Ok(metadata) => {
                            cache.discovered = Some(Discovered {
                                metadata,
                                fetched_at: now,
                            });
                        }
                        Err(e) => {
                            tracing::warn!(provider = %self.settings.id, error = %e, "OpenID discovery failed")
                        }
                    },
                    Err(e) => {
                        tracing::warn!(provider = %self.settings.id, error = %e, "the issuer is not a URL")
                    }
                },
            }
        }
        cache.discovered.as_ref().map(|d| d.metadata.clone())
    }

    /// Starts a sign-in: the provider's authorization URL (code flow, PKCE S256, state, nonce)
    /// and the state, which the caller records (`Services::sso_login_started`) and hands the
    /// browser as a cookie. `None` when the provider cannot be reached.
    pub async fn start(
        &self,
        pepper: &SecretBox<[u8; 32]>,
        now: DateTime<Utc>,
    ) -> Option<(url::Url, String)> {
        let metadata = self.metadata(now, false).await?;
        let state = new_state();
        let nonce = derived(pepper, "nonce", &state);
        let verifier = PkceCodeVerifier::new(derived(pepper, "pkce", &state));
        let challenge = PkceCodeChallenge::from_code_verifier_sha256(&verifier);
        let client = self.client(metadata);
        let (csrf, n) = (state.clone(), nonce);
        let mut request = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                move || CsrfToken::new(csrf),
                move || Nonce::new(n),
            )
            .set_pkce_challenge(challenge);
        for scope in self.settings.scopes.iter().filter(|s| *s != "openid") {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, _, _) = request.url();
        Some((url, state))
    }

    /// Finishes a sign-in whose `state` was checked and taken: exchanges `code` with the
    /// state's PKCE verifier and verifies the ID token (its nonce is the state's). The
    /// identity, and the rules this provider applies to it.
    pub async fn finish(
        &self,
        code: &str,
        state: &str,
        pepper: &SecretBox<[u8; 32]>,
        now: DateTime<Utc>,
    ) -> Result<(ExternalIdentity, SsoRules), SsoFailure> {
        let unavailable = || {
            SsoFailure::Unavailable(conclave_core::error::ServiceError::Unavailable {
                code: "oidc_unavailable",
                message: "the identity provider could not be reached; retry shortly",
            })
        };
        let metadata = self.metadata(now, false).await.ok_or_else(unavailable)?;
        let client = self.client(metadata.clone());
        let guard = self.guard.clone();
        let http = move |req| guarded(guard.clone(), req);
        let verifier = PkceCodeVerifier::new(derived(pepper, "pkce", state));
        let exchange = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|_| SsoFailure::Refused(CODE_REFUSED))?
            .set_pkce_verifier(verifier)
            .request_async(&http)
            .await;
        let tokens = match exchange {
            Ok(t) => t,
            Err(openidconnect::RequestTokenError::ServerResponse(_)) => {
                return Err(CODE_REFUSED.into())
            }
            Err(e) => {
                tracing::warn!(provider = %self.settings.id, error = %e, "the OpenID token request failed");
                return Err(CODE_REFUSED.into());
            }
        };
        let id_token = tokens
            .id_token()
            .ok_or(SsoFailure::Refused(TOKEN_INVALID))?;
        let nonce = Nonce::new(derived(pepper, "nonce", state));
        let verify = |metadata: &CoreProviderMetadata| {
            let algs: Vec<CoreJwsSigningAlgorithm> = metadata
                .id_token_signing_alg_values_supported()
                .iter()
                .filter(|a| asymmetric(a))
                .cloned()
                .collect();
            let client = self.client(metadata.clone());
            let verifier = client
                .id_token_verifier()
                .set_allowed_algs(algs)
                .set_time_fn(move || now);
            id_token
                .claims(&verifier, &nonce)
                .map(|c| (c.clone(), id_token.to_string()))
        };
        let verified = match verify(&metadata) {
            Err(openidconnect::ClaimsVerificationError::SignatureVerification(
                openidconnect::SignatureVerificationError::NoMatchingKey,
            )) => {
                // The provider may have rotated its keys since they were fetched.
                let fresh = self.metadata(now, true).await.ok_or_else(unavailable)?;
                verify(&fresh)
            }
            other => other,
        };
        let (claims, raw) = verified.map_err(|e| {
            tracing::info!(provider = %self.settings.id, error = %e, "an OpenID ID token was refused");
            SsoFailure::Refused(TOKEN_INVALID)
        })?;
        let identity = ExternalIdentity {
            key: IdentityKey {
                kind: IdentityKind::Oidc,
                provider: claims.issuer().to_string(),
                subject: claims.subject().to_string(),
            },
            username: claims.preferred_username().map(|u| u.to_string()),
            display_name: claims
                .name()
                .and_then(|n| n.get(None))
                .map(|n| n.to_string()),
            email: claims.email().map(|e| e.to_string()),
            email_verified: claims.email_verified().unwrap_or(false),
            single_use: None,
        };
        let payload = super::payload(&raw).unwrap_or_default();
        let grants = self
            .settings
            .roles
            .iter()
            .filter(|r| claim_holds(payload.get(&r.claim), &r.value))
            .map(|r| (r.org, r.role))
            .collect();
        let rules = SsoRules {
            create_users: self.settings.create_users,
            link_by_verified_email: self.settings.link_existing,
            grants,
            managed_orgs: Vec::new(),
        };
        Ok((identity, rules))
    }
}

/// Whether a claim is `value`, or a list holding it.
fn claim_holds(claim: Option<&serde_json::Value>, value: &str) -> bool {
    match claim {
        Some(serde_json::Value::String(s)) => s == value,
        Some(serde_json::Value::Array(items)) => items.iter().any(|i| i.as_str() == Some(value)),
        Some(serde_json::Value::Bool(b)) => b.to_string() == value,
        _ => false,
    }
}
