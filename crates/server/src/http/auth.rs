//! `/auth/*`: registration, login (bearer or cookie) with its second-factor step, bootstrap,
//! logout, sessions, password, and two-factor setup (TOTP and recovery codes).

use super::error::{ApiResult, ErrorBody};
pub use super::extract::Meta;
use super::extract::{session_cookie_name, ApiJson, AuthVia, Caller, PathParams};
use super::pagination::List;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use conclave_core::model::{Session, User};
use conclave_core::password::NewPassword;
use conclave_core::service::{LoginOutcome, MfaPending, RecoveryCodes, SignedIn};
use conclave_core::totp::{SecondFactorCode, TotpCode};
use conclave_core::types::{Email, Username};
use conclave_core::SessionId;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    use super::credentials::{declare, RouteAccess};
    let sign_in = OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(login_mfa))
        .routes(routes!(bootstrap));
    let signed_in = OpenApiRouter::new()
        .routes(routes!(logout))
        .routes(routes!(current_session))
        .routes(routes!(list_sessions))
        .routes(routes!(revoke_session))
        .routes(routes!(revoke_other_sessions))
        .routes(routes!(change_password))
        .routes(routes!(totp_setup))
        .routes(routes!(totp_enable))
        .routes(routes!(totp_disable))
        .routes(routes!(regenerate_recovery_codes));
    OpenApiRouter::new()
        .merge(declare(sign_in, RouteAccess::PUBLIC))
        .merge(declare(signed_in, RouteAccess::SESSION.before_2fa()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    username: Username,
    password: NewPassword,
    email: Option<Email>,
    invite_code: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct UserEnvelope {
    pub user: User,
}

/// Create an account (when registration is open, or with an invite code).
#[utoipa::path(post, path = "/auth/register", tag = "auth", request_body = RegisterBody,
    responses((status = 201, body = UserEnvelope), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn register(
    State(state): State<AppState>,
    Meta(meta): Meta,
    ApiJson(body): ApiJson<RegisterBody>,
) -> ApiResult<(StatusCode, Json<UserEnvelope>)> {
    let user = state
        .services
        .register(
            body.username,
            body.password,
            body.email,
            body.invite_code.as_deref(),
            &meta,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(UserEnvelope { user })))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    username: String,
    password: String,
    /// Browsers: keep the session in an HttpOnly cookie instead of returning the token.
    #[serde(default)]
    cookie: bool,
}

/// A new session. Bearer logins get `token`; cookie logins get `csrf_token` instead.
#[derive(Serialize, ToSchema)]
pub struct LoginResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    csrf_token: Option<String>,
    session: Session,
    user: User,
}

/// The session cookie (AUTH-3): `__Host-conclave_session` with `Secure` when the public URL
/// is https, `conclave_session` on plain HTTP.
fn session_cookie(state: &AppState, value: &str, max_age: i64) -> HeaderValue {
    let secure = if state.secure_cookies { "; Secure" } else { "" };
    let name = session_cookie_name(state);
    let text =
        format!("{name}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}");
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Answers a sign-in: the token in the body, or in a cookie with the CSRF token in the body.
fn signed_in(state: &AppState, status: StatusCode, s: SignedIn, cookie: bool) -> Response {
    if cookie {
        let csrf = state.services.csrf_token(&s.session);
        let max_age = (s.session.expires_at - s.session.created_at).num_seconds();
        let mut res = (
            status,
            Json(LoginResponse {
                token: None,
                csrf_token: Some(csrf),
                session: s.session,
                user: s.user,
            }),
        )
            .into_response();
        res.headers_mut().insert(
            header::SET_COOKIE,
            session_cookie(state, s.token.expose_secret(), max_age),
        );
        res
    } else {
        let token = s.token.expose_secret().to_owned();
        (
            status,
            Json(LoginResponse {
                token: Some(token),
                csrf_token: None,
                session: s.session,
                user: s.user,
            }),
        )
            .into_response()
    }
}

/// The answer to a correct password when the account has 2FA on: no session yet, only a
/// short-lived token for `POST /auth/login/mfa`.
#[derive(Serialize, ToSchema)]
pub struct MfaRequiredResponse {
    /// Always `true`.
    mfa_required: bool,
    /// Send it with a code to `POST /auth/login/mfa` within 5 minutes; 5 wrong codes end it.
    mfa_token: String,
    /// What `code` may be there.
    #[schema(example = json!(["totp", "recovery_code"]))]
    methods: Vec<&'static str>,
    expires_at: chrono::DateTime<chrono::Utc>,
}

impl MfaRequiredResponse {
    fn new(pending: MfaPending) -> Self {
        Self {
            mfa_required: true,
            mfa_token: pending.mfa_token.expose_secret().to_owned(),
            methods: vec!["totp", "recovery_code"],
            expires_at: pending.expires_at,
        }
    }
}

/// A session, or (with 2FA on) the second-factor challenge.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum LoginAnswer {
    Session(Box<LoginResponse>),
    MfaRequired(MfaRequiredResponse),
}

/// Sign in with username and password. Repeated failures are answered 429 with `Retry-After`
/// (per account and IP, per account, per IP); unknown usernames are treated like known ones.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginBody,
    responses((status = 200, body = LoginAnswer), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody, headers(("Retry-After" = u64, description = "seconds until another attempt is allowed"))), (status = 503, body = ErrorBody)))]
async fn login(
    State(state): State<AppState>,
    Meta(meta): Meta,
    ApiJson(body): ApiJson<LoginBody>,
) -> ApiResult<Response> {
    let outcome = state
        .services
        .login(&body.username, &body.password, meta, body.cookie)
        .await?;
    Ok(match outcome {
        LoginOutcome::SignedIn(s) => signed_in(&state, StatusCode::OK, *s, body.cookie),
        LoginOutcome::MfaRequired(pending) => {
            Json(MfaRequiredResponse::new(pending)).into_response()
        }
    })
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginMfaBody {
    /// From the login answer.
    mfa_token: String,
    /// The 6-digit code of the authenticator app, or a recovery code (`xxxx-xxxx-xxxx-xxxx`).
    code: SecondFactorCode,
    /// Browsers: keep the session in an HttpOnly cookie (also implied when the password step
    /// asked for one).
    #[serde(default)]
    cookie: bool,
}

/// Finish a sign-in with a second factor: answers like a login, with a new session. Wrong or
/// reused codes are 401 (`invalid_code`, `code_reused`) and count toward the login throttle;
/// an expired, used or exhausted `mfa_token` is 401 `invalid_mfa_token`.
#[utoipa::path(post, path = "/auth/login/mfa", tag = "auth", request_body = LoginMfaBody,
    responses((status = 200, body = LoginResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody, headers(("Retry-After" = u64, description = "seconds until another attempt is allowed"))), (status = 503, body = ErrorBody)))]
async fn login_mfa(
    State(state): State<AppState>,
    Meta(meta): Meta,
    ApiJson(body): ApiJson<LoginMfaBody>,
) -> ApiResult<Response> {
    let s = state
        .services
        .login_mfa(&body.mfa_token, body.code, meta, body.cookie)
        .await?;
    let cookie = s.session.cookie;
    Ok(signed_in(&state, StatusCode::OK, s, cookie))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BootstrapBody {
    bootstrap_token: String,
    username: Username,
    password: NewPassword,
    #[serde(default)]
    cookie: bool,
}

/// Create the first server admin with the one-time bootstrap token, signed in.
#[utoipa::path(post, path = "/auth/bootstrap", tag = "auth", request_body = BootstrapBody,
    responses((status = 201, body = LoginResponse), (status = 401, body = ErrorBody), (status = 410, body = ErrorBody)))]
async fn bootstrap(
    State(state): State<AppState>,
    Meta(meta): Meta,
    ApiJson(body): ApiJson<BootstrapBody>,
) -> ApiResult<Response> {
    let s = state
        .services
        .bootstrap(
            &body.bootstrap_token,
            body.username,
            body.password,
            meta,
            body.cookie,
        )
        .await?;
    Ok(signed_in(&state, StatusCode::CREATED, s, body.cookie))
}

/// End this session (and clear the cookie).
#[utoipa::path(post, path = "/auth/logout", tag = "auth", responses((status = 204), (status = 401, body = ErrorBody)))]
async fn logout(State(state): State<AppState>, caller: Caller) -> ApiResult<Response> {
    state.services.logout(&caller.actor).await?;
    let mut res = StatusCode::NO_CONTENT.into_response();
    res.headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&state, "", 0));
    Ok(res)
}

#[derive(Serialize, ToSchema)]
pub struct SessionInfo {
    /// Only for cookie sessions: the token to send as `X-CSRF-Token`.
    csrf_token: Option<String>,
    user: User,
    session: Session,
}

/// The current session; for cookie sessions also the CSRF token (after a page reload).
#[utoipa::path(get, path = "/auth/session", tag = "auth", responses((status = 200, body = SessionInfo), (status = 401, body = ErrorBody)))]
async fn current_session(State(state): State<AppState>, caller: Caller) -> Json<SessionInfo> {
    let csrf_token =
        (caller.via == AuthVia::Cookie).then(|| state.services.csrf_token(&caller.actor.session));
    Json(SessionInfo {
        csrf_token,
        user: caller.actor.user,
        session: caller.actor.session,
    })
}

#[derive(Serialize, ToSchema)]
pub struct SessionView {
    #[serde(flatten)]
    session: Session,
    /// Whether this is the session making the request.
    current: bool,
}

/// My sessions (devices), newest first.
#[utoipa::path(get, path = "/auth/sessions", tag = "auth", responses((status = 200, body = List<SessionView>), (status = 401, body = ErrorBody)))]
async fn list_sessions(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<List<SessionView>>> {
    let me = caller.actor.session.id;
    let items = state
        .services
        .sessions(&caller.actor)
        .await?
        .into_iter()
        .map(|session| SessionView {
            current: session.id == me,
            session,
        })
        .collect();
    Ok(Json(List::all(items)))
}

/// Revoke one of my sessions.
#[utoipa::path(delete, path = "/auth/sessions/{id}", tag = "auth", params(("id" = String, Path, format = Uuid)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn revoke_session(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
) -> ApiResult<StatusCode> {
    let id: SessionId = p.id("id")?;
    state.services.revoke_session(&caller.actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
pub struct Revoked {
    revoked: u64,
}

/// Revoke every session but this one.
#[utoipa::path(post, path = "/auth/sessions/revoke-others", tag = "auth", responses((status = 200, body = Revoked), (status = 401, body = ErrorBody)))]
async fn revoke_other_sessions(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Revoked>> {
    let revoked = state.services.revoke_other_sessions(&caller.actor).await?;
    Ok(Json(Revoked { revoked }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordBody {
    current_password: String,
    new_password: NewPassword,
}

/// Change my password; every other session is revoked.
#[utoipa::path(post, path = "/auth/password", tag = "auth", request_body = PasswordBody,
    responses((status = 204), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn change_password(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<PasswordBody>,
) -> ApiResult<StatusCode> {
    state
        .services
        .change_password(&caller.actor, &body.current_password, body.new_password)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new TOTP secret, shown once.
#[derive(Serialize, ToSchema)]
pub struct TotpSetupResponse {
    /// Base32, for typing into an authenticator app.
    secret: String,
    /// `otpauth://totp/…`, for a QR code.
    otpauth_uri: String,
}

/// Start (or restart) TOTP setup: a new secret that becomes active once confirmed with
/// `POST /auth/totp/enable`. 409 `mfa_already_enabled` while 2FA is on.
#[utoipa::path(post, path = "/auth/totp/setup", tag = "auth",
    responses((status = 200, body = TotpSetupResponse), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn totp_setup(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<TotpSetupResponse>> {
    let setup = state.services.totp_setup(&caller.actor).await?;
    Ok(Json(TotpSetupResponse {
        secret: setup.secret.expose_secret().to_owned(),
        otpauth_uri: setup.otpauth_uri.expose_secret().to_owned(),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeBody {
    /// A 6-digit TOTP code, or (where accepted) a recovery code.
    code: SecondFactorCode,
}

/// Ten one-time recovery codes, shown once.
#[derive(Serialize, ToSchema)]
pub struct RecoveryCodesResponse {
    recovery_codes: Vec<String>,
}

impl RecoveryCodesResponse {
    fn new(codes: RecoveryCodes) -> Self {
        Self {
            recovery_codes: codes
                .0
                .iter()
                .map(|c| c.expose_secret().to_owned())
                .collect(),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnableBody {
    /// A 6-digit code of the new secret (a recovery code is refused: there are none yet).
    #[schema(value_type = TotpCode)]
    code: SecondFactorCode,
}

/// Turn 2FA on with a code of the new secret (the code then counts as used); returns the
/// recovery codes.
#[utoipa::path(post, path = "/auth/totp/enable", tag = "auth", request_body = EnableBody,
    responses((status = 200, body = RecoveryCodesResponse), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn totp_enable(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<EnableBody>,
) -> ApiResult<Json<RecoveryCodesResponse>> {
    let codes = state.services.totp_enable(&caller.actor, body.code).await?;
    Ok(Json(RecoveryCodesResponse::new(codes)))
}

/// Turn 2FA off, confirmed with a TOTP or recovery code.
#[utoipa::path(post, path = "/auth/totp/disable", tag = "auth", request_body = CodeBody,
    responses((status = 204), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody, headers(("Retry-After" = u64, description = "seconds until another attempt is allowed")))))]
async fn totp_disable(
    State(state): State<AppState>,
    caller: Caller,
    Meta(meta): Meta,
    ApiJson(body): ApiJson<CodeBody>,
) -> ApiResult<StatusCode> {
    state
        .services
        .totp_disable(&caller.actor, body.code, &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replace every recovery code, confirmed with a TOTP or recovery code; returns the new ones.
#[utoipa::path(post, path = "/auth/recovery-codes", tag = "auth", request_body = CodeBody,
    responses((status = 200, body = RecoveryCodesResponse), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody, headers(("Retry-After" = u64, description = "seconds until another attempt is allowed"))), (status = 503, body = ErrorBody)))]
async fn regenerate_recovery_codes(
    State(state): State<AppState>,
    caller: Caller,
    Meta(meta): Meta,
    ApiJson(body): ApiJson<CodeBody>,
) -> ApiResult<Json<RecoveryCodesResponse>> {
    let codes = state
        .services
        .regenerate_recovery_codes(&caller.actor, body.code, &meta)
        .await?;
    Ok(Json(RecoveryCodesResponse::new(codes)))
}
