//! Conclave's OAuth 2.1 authorization server at the root (MCP-2), beside `/mcp`: the metadata
//! documents (RFC 9728 protected resource, RFC 8414 authorization server), `GET
//! /oauth/authorize` (checked by core, then a 302 to the web client's consent page),
//! `POST /oauth/token` and `POST /oauth/revoke` (form-encoded, RFC 6749 §5.2 / RFC 7009
//! answers). A `client_id` that is a URL is a Client ID Metadata Document, fetched here through
//! the SSRF guard. The consent page's own API is `oauth_api`.

use crate::outbound::{Limits, OutboundRequest};
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use conclave_core::credential::Scope;
use conclave_core::oauth::{is_document_client_id, parse_client_document, scope_text, OAuthError};
use conclave_core::service::{
    AuthorizeClient, AuthorizeRefusal, AuthorizeRequest, ClientAuth, ClientMeta, TokenFailure,
    TokenRequest,
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use std::collections::HashMap;
use std::time::Duration;

/// The biggest Client ID Metadata Document fetched, and how long its fetch may take.
const DOCUMENT_MAX_BYTES: usize = 64 * 1024;
const DOCUMENT_TIMEOUT: Duration = Duration::from_secs(5);
/// The biggest form body the token and revocation endpoints read.
const FORM_MAX_BYTES: usize = 16 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/.well-known/oauth-protected-resource",
            get(protected_resource),
        )
        .route(
            "/.well-known/oauth-protected-resource/mcp",
            get(protected_resource),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            get(authorization_server),
        )
        .route("/oauth/authorize", get(authorize))
        .route("/oauth/token", post(token))
        .route("/oauth/revoke", post(revoke))
}

fn scope_names() -> Vec<&'static str> {
    Scope::ALL.iter().map(|s| s.as_str()).collect()
}

/// RFC 9728: what `/mcp` is and who issues its tokens (also at the path-suffixed URL that
/// RFC 9728 §3.1 derives from the resource `<public URL>/mcp`).
async fn protected_resource(State(state): State<AppState>) -> Response {
    let oauth = state.services.oauth_settings();
    Json(json!({
        "resource": oauth.resource,
        "authorization_servers": [oauth.issuer],
        "scopes_supported": scope_names(),
        "bearer_methods_supported": ["header"],
        "resource_name": "Conclave MCP",
    }))
    .into_response()
}

/// RFC 8414: the endpoints and what they support — code + PKCE S256 only.
async fn authorization_server(State(state): State<AppState>) -> Response {
    let issuer = &state.services.oauth_settings().issuer;
    let auth_methods = ["none", "client_secret_post", "client_secret_basic"];
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/oauth/authorize"),
        "token_endpoint": format!("{issuer}/oauth/token"),
        "revocation_endpoint": format!("{issuer}/oauth/revoke"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "scopes_supported": scope_names(),
        "client_id_metadata_document_supported": true,
        "authorization_response_iss_parameter_supported": true,
    }))
    .into_response()
}

/// An RFC 6749 §5.2 error body with `status`; never cached. A 401 (`invalid_client`) names
/// the Basic scheme (§5.2).
fn oauth_error(status: StatusCode, e: &OAuthError) -> Response {
    let body = json!({ "error": e.error, "error_description": e.description });
    let mut res = (status, Json(body)).into_response();
    no_store(res.headers_mut());
    if status == StatusCode::UNAUTHORIZED {
        res.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"conclave\""),
        );
    }
    res
}

fn no_store(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

fn found(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(v) => {
            let mut res = StatusCode::FOUND.into_response();
            res.headers_mut().insert(header::LOCATION, v);
            no_store(res.headers_mut());
            res
        }
        Err(_) => oauth_error(
            StatusCode::BAD_REQUEST,
            &OAuthError::invalid_request("the redirect URI cannot be sent"),
        ),
    }
}

/// A query or form as name → value; a parameter given twice is refused (RFC 6749 §3.1).
fn params(raw: &[u8]) -> Result<HashMap<String, String>, OAuthError> {
    let mut out = HashMap::new();
    for (k, v) in form_urlencoded::parse(raw) {
        if out.insert(k.clone().into_owned(), v.into_owned()).is_some() {
            return Err(OAuthError::invalid_request(format!(
                "the parameter {k} is given more than once"
            )));
        }
    }
    Ok(out)
}

/// Fetches and checks the Client ID Metadata Document at `url` through the SSRF guard: https
/// (or http to an address the outbound allowlist lets through — tests), a path, no
/// fragment, at most 64 KiB within 5 seconds, answered 200. The URL is never logged with
/// anything a client sent.
async fn client_document(
    state: &AppState,
    url: &str,
) -> Result<conclave_core::oauth::ClientDocument, OAuthError> {
    let refuse = |why: &'static str| OAuthError::new("invalid_client", why);
    let parsed = url::Url::parse(url).map_err(|_| refuse("client_id is not a valid URL"))?;
    let allowlisted_http = parsed.scheme() == "http"
        && match parsed.host() {
            Some(url::Host::Ipv4(ip)) => (state.outbound.policy().allow_cidrs.iter())
                .any(|n| n.contains(&std::net::IpAddr::V4(ip))),
            Some(url::Host::Ipv6(ip)) => (state.outbound.policy().allow_cidrs.iter())
                .any(|n| n.contains(&std::net::IpAddr::V6(ip))),
            _ => false,
        };
    if parsed.scheme() != "https" && !allowlisted_http {
        return Err(refuse("a client_id URL must be https"));
    }
    if parsed.path().len() <= 1 || parsed.fragment().is_some() || !parsed.username().is_empty() {
        return Err(refuse(
            "a client_id URL needs a path and no fragment or credentials",
        ));
    }
    let mut req = OutboundRequest::get(url);
    req.headers
        .insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    req.limits = Limits {
        timeout: DOCUMENT_TIMEOUT,
        max_response_bytes: DOCUMENT_MAX_BYTES,
    };
    // One answer for every way the fetch fails: anyone may ask, signed in or not, so telling
    // "a private address" from "no such name" would map the internal network (as R10).
    let unusable = || refuse("the client metadata document could not be used");
    let fetched = state.outbound.send(req).await.map_err(|_| unusable())?;
    // A document is taken only from its own URL (never through a redirect, which would let
    // an open redirect on a reputable site vouch for another's client) and only as JSON.
    let json = fetched
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|t| t.trim().to_ascii_lowercase())
        .is_some_and(|t| t == "application/json" || t.ends_with("+json"));
    if fetched.status != StatusCode::OK || fetched.final_url.as_str() != parsed.as_str() || !json {
        return Err(unusable());
    }
    parse_client_document(url, &fetched.body)
}

/// `GET /oauth/authorize`: a refusal before the client and its redirect URI are verified is
/// answered here (400 JSON), never redirected; later ones go back to the client; a valid
/// request is stored and the browser sent to the consent page.
async fn authorize(State(state): State<AppState>, req: Request) -> Response {
    let shown = |e: OAuthError| oauth_error(StatusCode::BAD_REQUEST, &e);
    let q = match params(req.uri().query().unwrap_or_default().as_bytes()) {
        Ok(q) => q,
        Err(e) => return shown(e),
    };
    let Some(client_id) = q.get("client_id").filter(|c| !c.is_empty()) else {
        return shown(OAuthError::invalid_request("client_id is required"));
    };
    let client = if is_document_client_id(client_id) {
        match client_document(&state, client_id).await {
            Ok(doc) => AuthorizeClient::Document(doc),
            Err(e) => return shown(e),
        }
    } else {
        AuthorizeClient::Registered(client_id.clone())
    };
    let get = |k: &str| q.get(k).cloned();
    let request = AuthorizeRequest {
        redirect_uri: get("redirect_uri"),
        response_type: get("response_type"),
        code_challenge: get("code_challenge"),
        code_challenge_method: get("code_challenge_method"),
        state: get("state"),
        scope: get("scope"),
        resource: get("resource"),
    };
    match state.services.authorize(client, request).await {
        Ok(id) => found(&format!("/#/oauth/consent?request={id}")),
        Err(AuthorizeRefusal::Shown(e)) => shown(e),
        Err(AuthorizeRefusal::Redirect(to)) => found(&to),
        Err(AuthorizeRefusal::Service(e)) => super::error::ApiError::from(e).into_response(),
    }
}

/// The client's credentials: HTTP Basic (RFC 6749 §2.3.1, each part form-decoded) or
/// `client_id` / `client_secret` in the form — not both.
fn client_auth(
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<ClientAuth, (StatusCode, OAuthError)> {
    let unauthorized = || (StatusCode::UNAUTHORIZED, OAuthError::invalid_client());
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"));
    let Some((_, encoded)) = basic else {
        return Ok(ClientAuth {
            client_id: form.get("client_id").cloned(),
            secret: form.get("client_secret").cloned().map(SecretString::from),
        });
    };
    if form.contains_key("client_secret") {
        return Err((
            StatusCode::BAD_REQUEST,
            OAuthError::invalid_request("use one client authentication method"),
        ));
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(unauthorized)?;
    let (id, secret) = decoded.split_once(':').ok_or_else(unauthorized)?;
    let decode = |s: &str| -> String {
        form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let id = decode(id);
    if form.get("client_id").is_some_and(|f| *f != id) {
        return Err(unauthorized());
    }
    Ok(ClientAuth {
        client_id: Some(id),
        secret: Some(SecretString::from(decode(secret))),
    })
}

/// Where the request came from, and its form-encoded body (a wrong content type is an
/// `invalid_request`, as RFC 6749 answers everything here).
async fn form(
    state: &AppState,
    req: Request,
) -> Result<(ClientMeta, HeaderMap, HashMap<String, String>), Response> {
    let bad =
        |d: &'static str| oauth_error(StatusCode::BAD_REQUEST, &OAuthError::invalid_request(d));
    let (parts, body) = req.into_parts();
    let meta = super::extract::request_meta(&parts, state);
    let is_form = (parts.headers.get(header::CONTENT_TYPE))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<mime::Mime>().ok())
        .is_some_and(|m| m.essence_str() == "application/x-www-form-urlencoded");
    if !is_form {
        return Err(bad(
            "send the parameters as application/x-www-form-urlencoded",
        ));
    }
    let bytes = axum::body::to_bytes(body, FORM_MAX_BYTES)
        .await
        .map_err(|_| bad("the request body is too large or unreadable"))?;
    let form = params(&bytes).map_err(|e| oauth_error(StatusCode::BAD_REQUEST, &e))?;
    Ok((meta, parts.headers, form))
}

/// What the token and revocation endpoints read first: where the request came from, the
/// client's credentials and the form.
async fn client_form(
    state: &AppState,
    req: Request,
) -> Result<(ClientMeta, ClientAuth, HashMap<String, String>), Response> {
    let (meta, headers, form) = form(state, req).await?;
    let auth = client_auth(&headers, &form).map_err(|(status, e)| oauth_error(status, &e))?;
    Ok((meta, auth, form))
}

/// How the token and revocation endpoints answer a failure.
fn token_failure(f: TokenFailure) -> Response {
    match f {
        TokenFailure::OAuth(e) if e.error == "invalid_client" => {
            oauth_error(StatusCode::UNAUTHORIZED, &e)
        }
        TokenFailure::OAuth(e) => oauth_error(StatusCode::BAD_REQUEST, &e),
        TokenFailure::Service(e) => super::error::ApiError::from(e).into_response(),
    }
}

/// The grant a token request's form asks for.
fn token_request(form: &HashMap<String, String>) -> Result<TokenRequest, OAuthError> {
    let get = |k: &str| form.get(k).cloned();
    let required =
        |k: &str| get(k).ok_or_else(|| OAuthError::invalid_request(format!("{k} is required")));
    match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => Ok(TokenRequest::AuthorizationCode {
            code: required("code")?,
            code_verifier: get("code_verifier"),
            redirect_uri: get("redirect_uri"),
            resource: get("resource"),
        }),
        Some("refresh_token") => Ok(TokenRequest::RefreshToken {
            refresh_token: required("refresh_token")?,
            scope: get("scope"),
            resource: get("resource"),
        }),
        Some(_) => Err(OAuthError::new(
            "unsupported_grant_type",
            "grant_type must be authorization_code or refresh_token",
        )),
        None => Err(OAuthError::invalid_request("grant_type is required")),
    }
}

/// `POST /oauth/token`: `authorization_code` (with `code_verifier` and `redirect_uri`) or
/// `refresh_token` (rotated: the answer carries the next one).
async fn token(State(state): State<AppState>, req: Request) -> Response {
    let (meta, auth, form) = match client_form(&state, req).await {
        Ok(f) => f,
        Err(res) => return res,
    };
    let request = match token_request(&form) {
        Ok(r) => r,
        Err(e) => return oauth_error(StatusCode::BAD_REQUEST, &e),
    };
    match state.services.oauth_token(auth, request, &meta).await {
        Ok(t) => {
            let body = json!({
                "access_token": t.access_token.expose_secret(),
                "token_type": "Bearer",
                "expires_in": t.expires_in,
                "refresh_token": t.refresh_token.expose_secret(),
                "scope": scope_text(&t.scopes),
            });
            let mut res = Json(body).into_response();
            no_store(res.headers_mut());
            res
        }
        Err(f) => token_failure(f),
    }
}

/// `POST /oauth/revoke` (RFC 7009): 200 whether or not the token was known.
async fn revoke(State(state): State<AppState>, req: Request) -> Response {
    let (meta, auth, form) = match client_form(&state, req).await {
        Ok(f) => f,
        Err(res) => return res,
    };
    let Some(token) = form.get("token") else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            &OAuthError::invalid_request("token is required"),
        );
    };
    match state.services.oauth_revoke(auth, token, &meta).await {
        Ok(()) => {
            let mut res = StatusCode::OK.into_response();
            no_store(res.headers_mut());
            res
        }
        Err(f) => token_failure(f),
    }
}
