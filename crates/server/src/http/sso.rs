//! Single sign-on routes (AUTH-10, AUTH-11): `POST /auth/jwt` signs in the user a host app's JWT
//! names. The proof is checked by `crate::sso`; the session is made by the same service steps
//! as every sign-in (`core::service::sso`), and answered like `POST /auth/login`.

use super::auth::{login_answer, session_cookie, LoginAnswer};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{cookie, AdminCaller, ApiJson, Guest};
use crate::sso::oidc;
use crate::state::AppState;
use axum::extract::{Path, Query};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use conclave_core::service::{LoginOutcome, SsoFailure, SsoSignIn};
use conclave_core::store::IdentityKind;
use conclave_core::token::secrets_equal;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    use super::credentials::{declare, RouteAccess};
    let sign_in = OpenApiRouter::new()
        .routes(routes!(jwt_sign_in))
        .routes(routes!(oidc_start, oidc_start_url))
        .routes(routes!(oidc_callback));
    let admin = OpenApiRouter::new().routes(routes!(sso_overview));
    OpenApiRouter::new()
        .merge(declare(sign_in, RouteAccess::PUBLIC))
        .merge(declare(admin, RouteAccess::SESSION))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JwtBody {
    /// A JWT signed by a configured host app (`[[host_jwt]]`), naming the user in `sub`.
    token: String,
    /// Browsers: keep the session in an HttpOnly cookie instead of returning the token.
    #[serde(default)]
    cookie: bool,
}

/// Sign in with a host app's JWT (AUTH-11): the host is picked by `iss`; the token must name
/// this server in `aud`, be short-lived (`iat`, `exp`), signed with an algorithm and key
/// configured for the host, and (single-use hosts) carry an unused `jti`. The user is the
/// account linked to (host, `sub`), created on first use when the host may. Refusals are 401
/// with a `jwt_*` code and count toward the sign-in back-off; a disabled account is 403.
#[utoipa::path(post, path = "/auth/jwt", tag = "auth", request_body = JwtBody,
    responses((status = 200, body = LoginAnswer), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn jwt_sign_in(
    Guest { state, meta }: Guest,
    ApiJson(body): ApiJson<JwtBody>,
) -> ApiResult<Response> {
    if state.sso.host_jwt.is_empty() {
        return Err(ApiError::not_found("host_jwt"));
    }
    let (host, sub) = state.sso.host_jwt.claimed(&body.token);
    let sign_in = SsoSignIn {
        kind: IdentityKind::HostJwt,
        provider: host.unwrap_or("unknown").to_owned(),
        claimed: sub,
        meta,
        cookie: body.cookie,
    };
    let now = state.services.clock.now();
    let outcome = state
        .services
        .sso_sign_in(sign_in, state.sso.host_identity(&body.token, now))
        .await?;
    Ok(login_answer(&state, outcome, body.cookie))
}

/// The cookie that ties an OpenID sign-in to the browser that started it.
fn state_cookie_name(state: &AppState) -> &'static str {
    if state.secure_cookies {
        "__Host-conclave_oidc"
    } else {
        "conclave_oidc"
    }
}

/// `Set-Cookie` for the sign-in state: `SameSite=Lax` so that it comes back with the
/// provider's top-level redirect, ten minutes at most (`max_age` 0 clears it).
fn state_cookie(state: &AppState, value: &str, max_age: i64) -> HeaderValue {
    let secure = if state.secure_cookies { "; Secure" } else { "" };
    let name = state_cookie_name(state);
    let text = format!("{name}={value}; HttpOnly; SameSite=Lax; Path=/; Max-Age={max_age}{secure}");
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The configured OpenID provider `id`, or 404.
fn oidc_provider<'a>(state: &'a AppState, id: &str) -> Result<&'a oidc::OidcProvider, ApiError> {
    state
        .sso
        .oidc
        .provider(id)
        .ok_or_else(|| ApiError::not_found("provider"))
}

/// A 302 to `location` (a path of this server, or the provider).
fn redirect(location: &str) -> Response {
    let mut res = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

/// Back to the sign-in page with an error code.
fn failed(code: &str) -> Response {
    redirect(&format!("/#/signin?error={code}"))
}

/// Start signing in with an OpenID provider (AUTH-10): a 302 to the provider's authorization
/// endpoint (code flow with PKCE S256, `state` and `nonce`), with a short-lived cookie that
/// ties the sign-in to this browser. 404 for an unknown provider; when the provider cannot be
/// reached, back to `/#/signin?error=oidc_unavailable`.
#[utoipa::path(get, path = "/auth/oidc/{provider}/start", tag = "auth",
    params(("provider" = String, Path, description = "A configured `[[oidc.providers]]` id")),
    responses((status = 302, description = "To the provider, or back to the sign-in page"),
        (status = 404, body = ErrorBody)))]
async fn oidc_start(Guest { state, .. }: Guest, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(match begin_oidc(&state, &id).await? {
        Some((url, cookie)) => {
            let mut res = redirect(url.as_str());
            res.headers_mut().insert(header::SET_COOKIE, cookie);
            res
        }
        None => failed("oidc_unavailable"),
    })
}

/// Where the browser goes to sign in with the provider.
#[derive(Serialize, ToSchema)]
pub struct OidcStart {
    /// The provider's authorization URL (code flow with PKCE S256, `state` and `nonce`).
    url: String,
}

/// Start signing in with an OpenID provider from a script (AUTH-10): as `GET …/start`, but
/// answered with the provider's URL (200 `{"url"}`, the state cookie set) for the page to
/// navigate to. This is how the web client starts while the access-token gate (AUTH-9) is
/// on: a request it makes can carry `X-API-Access-Token`, a top-level navigation cannot.
/// 503 `oidc_unavailable` when the provider cannot be reached.
#[utoipa::path(post, path = "/auth/oidc/{provider}/start", tag = "auth",
    params(("provider" = String, Path, description = "A configured `[[oidc.providers]]` id")),
    responses((status = 200, body = OidcStart), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
async fn oidc_start_url(Guest { state, .. }: Guest, Path(id): Path<String>) -> ApiResult<Response> {
    let Some((url, cookie)) = begin_oidc(&state, &id).await? else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "oidc_unavailable",
            "the identity provider cannot be reached right now",
        ));
    };
    let mut res = Json(OidcStart {
        url: url.to_string(),
    })
    .into_response();
    res.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(res)
}

/// Begins a sign-in with provider `id`: its authorization URL and the state cookie that ties
/// the sign-in to this browser; `None` when the provider cannot be reached.
async fn begin_oidc(state: &AppState, id: &str) -> ApiResult<Option<(url::Url, HeaderValue)>> {
    let provider = oidc_provider(state, id)?;
    let services = &state.services;
    let now = services.clock.now();
    let Some((url, login)) = provider.start(&services.keys.token_pepper, now).await else {
        return Ok(None);
    };
    let hash = oidc::state_hash(&services.keys.token_pepper, &login);
    services
        .sso_login_started(&hash, &provider.settings.id, now + oidc::LOGIN_TTL)
        .await?;
    let max_age = oidc::LOGIN_TTL.num_seconds();
    Ok(Some((url, state_cookie(state, &login, max_age))))
}

/// What a provider sends the browser back with.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    /// The provider's refusal (`access_denied`, …), instead of a code.
    error: Option<String>,
}

/// Where an OpenID provider sends the browser back (the redirect URI to register there):
/// checks the state against the browser's cookie and the stored sign-in (single use),
/// exchanges the code with the PKCE verifier, verifies the ID token and signs the linked
/// account in: a session cookie and a 302 to `/`; with 2FA on, to `/#/signin?mfa_token=…`
/// for the second step; on any failure, to `/#/signin?error=<code>`. Failures are audited and
/// count toward the per-address sign-in back-off.
#[utoipa::path(get, path = "/auth/oidc/{provider}/callback", tag = "auth",
    params(("provider" = String, Path, description = "A configured `[[oidc.providers]]` id"), CallbackQuery),
    responses((status = 302, description = "Signed in (to `/`), or back to the sign-in page"),
        (status = 404, body = ErrorBody)))]
async fn oidc_callback(
    Guest { state, meta }: Guest,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> ApiResult<Response> {
    let provider = oidc_provider(&state, &id)?;
    let services = &state.services;
    let pepper = &services.keys.token_pepper;
    let now = services.clock.now();
    let cookie_state = cookie(&headers, state_cookie_name(&state)).map(str::to_owned);
    let verify = async {
        if q.error.is_some() {
            return Err(oidc::PROVIDER_REFUSED.into());
        }
        let (Some(code), Some(login)) = (q.code.as_deref(), q.state.as_deref()) else {
            return Err(oidc::STATE_INVALID.into());
        };
        let same_browser = cookie_state
            .as_deref()
            .is_some_and(|c| secrets_equal(c, login));
        if !same_browser {
            return Err(oidc::STATE_MISMATCH.into());
        }
        let taken = services
            .sso_login_taken(&oidc::state_hash(pepper, login))
            .await
            .map_err(SsoFailure::Unavailable)?;
        if taken.as_deref() != Some(provider.settings.id.as_str()) {
            return Err(oidc::STATE_INVALID.into());
        }
        provider.finish(code, login, pepper, now).await
    };
    let sign_in = SsoSignIn {
        kind: IdentityKind::Oidc,
        provider: provider.settings.id.clone(),
        claimed: None,
        meta,
        cookie: true,
    };
    let mut res = match services.sso_sign_in(sign_in, verify).await {
        Ok(LoginOutcome::SignedIn(s)) => {
            let mut res = redirect("/");
            let max_age = (s.session.expires_at - s.session.created_at).num_seconds();
            res.headers_mut().append(
                header::SET_COOKIE,
                session_cookie(&state, s.token.expose_secret(), max_age),
            );
            res
        }
        Ok(LoginOutcome::MfaRequired(pending)) => redirect(&format!(
            "/#/signin?mfa_token={}",
            pending.mfa_token.expose_secret()
        )),
        Err(e) => failed(ApiError::from(e).code),
    };
    res.headers_mut()
        .append(header::SET_COOKIE, state_cookie(&state, "", 0));
    Ok(res)
}

/// A `[[host_jwt]]` as the admin console shows it: never its secret.
#[derive(Serialize, ToSchema)]
pub struct HostJwtView {
    id: String,
    issuer: String,
    audience: String,
    algorithms: Vec<String>,
    /// `secret`, `public_key` or `jwks_url`.
    keys: &'static str,
    jwks_url: Option<String>,
    single_use: bool,
    create_users: bool,
    max_lifetime_secs: i64,
    leeway_secs: i64,
}

/// A mapping of an ID token claim to an org role.
#[derive(Serialize, ToSchema)]
pub struct RoleMappingView {
    claim: String,
    value: String,
    org: conclave_core::OrgId,
    role: conclave_core::types::OrgRole,
}

/// An `[[oidc.providers]]` as the admin console shows it; the client secret masked.
#[derive(Serialize, ToSchema)]
pub struct OidcProviderView {
    id: String,
    name: String,
    issuer: String,
    client_id: String,
    /// `****abcd`, or null for a public client.
    client_secret: Option<String>,
    scopes: Vec<String>,
    /// `none` or `email_verified`.
    link_existing: &'static str,
    create_users: bool,
    roles: Vec<RoleMappingView>,
    /// Where the provider sends browsers back (register it there).
    redirect_uri: String,
}

/// The single sign-on configuration (read-only: it comes from the configuration file).
#[derive(Serialize, ToSchema)]
pub struct SsoOverview {
    host_jwt: Vec<HostJwtView>,
    oidc: Vec<OidcProviderView>,
}

/// The configured host apps and OpenID providers (AUTH-10, AUTH-11), for server admins;
/// secrets masked. Configured in the TOML file, so read-only here.
#[utoipa::path(get, path = "/admin/sso", tag = "admin",
    responses((status = 200, body = SsoOverview), (status = 403, body = ErrorBody)))]
async fn sso_overview(a: AdminCaller) -> Json<SsoOverview> {
    use crate::sso::host_jwt::HostKeys;
    let state = a.state();
    let host_jwt = state
        .sso
        .host_jwt
        .hosts()
        .map(|h| HostJwtView {
            id: h.id.clone(),
            issuer: h.issuer.clone(),
            audience: h.audience.clone(),
            algorithms: h.algorithms.iter().map(|a| format!("{a:?}")).collect(),
            keys: match &h.keys {
                HostKeys::Secret(_) => "secret",
                HostKeys::PublicKey(_) => "public_key",
                HostKeys::Jwks(_) => "jwks_url",
            },
            jwks_url: match &h.keys {
                HostKeys::Jwks(url) => Some(url.clone()),
                _ => None,
            },
            single_use: h.single_use,
            create_users: h.create_users,
            max_lifetime_secs: h.max_lifetime_secs,
            leeway_secs: h.leeway_secs,
        })
        .collect();
    let oidc = state
        .sso
        .oidc
        .providers()
        .map(|p| {
            let s = &p.settings;
            OidcProviderView {
                id: s.id.clone(),
                name: s.name.clone(),
                issuer: s.issuer.clone(),
                client_id: s.client_id.clone(),
                client_secret: s.client_secret.as_ref().map(|secret| {
                    let text = secret.expose_secret();
                    let hint = if text.chars().count() >= 12 {
                        conclave_core::token::hint(text)
                    } else {
                        String::new()
                    };
                    conclave_core::agent::masked_key(&hint)
                }),
                scopes: s.scopes.clone(),
                link_existing: if s.link_existing {
                    "email_verified"
                } else {
                    "none"
                },
                create_users: s.create_users,
                roles: s
                    .roles
                    .iter()
                    .map(|r| RoleMappingView {
                        claim: r.claim.clone(),
                        value: r.value.clone(),
                        org: r.org,
                        role: r.role,
                    })
                    .collect(),
                redirect_uri: p.redirect_uri().to_owned(),
            }
        })
        .collect();
    Json(SsoOverview { host_jwt, oidc })
}
