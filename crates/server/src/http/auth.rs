//! `/auth/*`: registration, login (bearer or cookie) with its second-factor step, bootstrap,
//! logout, sessions, password, and two-factor setup (TOTP and recovery codes).

use super::error::{created, no_content, Answer, ApiResult, Created, ErrorBody, NoContent};
pub use super::extract::Meta;
use super::extract::{session_cookie_name, ApiJson, AuthVia, Caller, Guest};
use super::pagination::{all_as, List, Listed};
use crate::state::AppState;
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
        .routes(routes!(bootstrap))
        .routes(routes!(finish_password_reset));
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
    responses((status = 201, body = UserEnvelope), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn register(
    Guest { state, meta }: Guest,
    ApiJson(body): ApiJson<RegisterBody>,
) -> Created<UserEnvelope> {
    let invite = body.invite_code.as_deref();
    let user = state
        .services
        .register(body.username, body.password, body.email, invite, &meta);
    created(UserEnvelope { user: user.await? })
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
pub(super) fn session_cookie(state: &AppState, value: &str, max_age: i64) -> HeaderValue {
    let secure = if state.secure_cookies { "; Secure" } else { "" };
    let name = session_cookie_name(state);
    let text =
        format!("{name}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}");
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Answers a sign-in: the token in the body, or in a cookie with the CSRF token in the body.
pub(super) fn signed_in(
    state: &AppState,
    status: StatusCode,
    s: SignedIn,
    cookie: bool,
) -> Response {
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
/// With `[ldap]` configured, a username no local password account holds is checked against the
/// directory (AUTH-10): refusals are the same 401, an unreachable directory is 503
/// `directory_unavailable`.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginBody,
    responses((status = 200, body = LoginAnswer), (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn login(
    Guest { state, meta }: Guest,
    ApiJson(body): ApiJson<LoginBody>,
) -> ApiResult<Response> {
    let (username, password) = (&body.username, &body.password);
    let outcome = match &state.sso.ldap {
        // AUTH-10: a name no local password account holds is the directory's to check.
        Some(directory) => {
            let verify =
                move |name: String| async move { directory.authenticate(&name, password).await };
            let services = &state.services;
            services
                .login_or_directory(username, password, meta, body.cookie, verify)
                .await?
        }
        None => {
            let services = &state.services;
            services
                .login(username, password, meta, body.cookie)
                .await?
        }
    };
    Ok(login_answer(&state, outcome, body.cookie))
}

/// Answers any sign-in as `POST /auth/login` does: a session, or the second-factor challenge.
pub(super) fn login_answer(state: &AppState, outcome: LoginOutcome, cookie: bool) -> Response {
    match outcome {
        LoginOutcome::SignedIn(s) => signed_in(state, StatusCode::OK, *s, cookie),
        LoginOutcome::MfaRequired(pending) => {
            Json(MfaRequiredResponse::new(pending)).into_response()
        }
    }
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
    responses((status = 200, body = LoginResponse), (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn login_mfa(
    Guest { state, meta }: Guest,
    ApiJson(body): ApiJson<LoginMfaBody>,
) -> ApiResult<Response> {
    let s = state
        .services
        .login_mfa(&body.mfa_token, body.code, meta, body.cookie);
    let s = s.await?;
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
    responses((status = 201, body = LoginResponse), (status = 410, body = ErrorBody)))]
async fn bootstrap(
    Guest { state, meta }: Guest,
    ApiJson(body): ApiJson<BootstrapBody>,
) -> ApiResult<Response> {
    let (token, cookie) = (&body.bootstrap_token, body.cookie);
    let s = state
        .services
        .bootstrap(token, body.username, body.password, meta, cookie);
    Ok(signed_in(&state, StatusCode::CREATED, s.await?, cookie))
}

/// End this session (and clear the cookie).
#[utoipa::path(post, path = "/auth/logout", tag = "auth", responses((status = 204)))]
async fn logout(me: Caller) -> ApiResult<Response> {
    me.services().logout(&me.actor).await?;
    let mut res = StatusCode::NO_CONTENT.into_response();
    res.headers_mut()
        .insert(header::SET_COOKIE, session_cookie(me.state(), "", 0));
    Ok(res)
}

#[derive(Serialize, ToSchema)]
pub struct SessionInfo {
    /// Only for cookie sessions: the token to send as `X-CSRF-Token`.
    csrf_token: Option<String>,
    user: User,
    session: Session,
    /// Whether the account has a password. One made by single sign-on has none: erasing it
    /// (`DELETE /users/@me`) takes a sign-in within the last ten minutes instead.
    has_password: bool,
}

/// The current session; for cookie sessions also the CSRF token (after a page reload).
#[utoipa::path(get, path = "/auth/session", tag = "auth", responses((status = 200, body = SessionInfo)))]
async fn current_session(me: Caller) -> ApiResult<Json<SessionInfo>> {
    let csrf_token =
        (me.via == AuthVia::Cookie).then(|| me.services().csrf_token(&me.actor.session));
    let has_password = me.services().has_password(&me.actor).await?;
    Ok(Json(SessionInfo {
        csrf_token,
        user: me.actor.user,
        session: me.actor.session,
        has_password,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct SessionView {
    #[serde(flatten)]
    session: Session,
    /// Whether this is the session making the request.
    current: bool,
}

/// My sessions (devices), newest first.
#[utoipa::path(get, path = "/auth/sessions", tag = "auth", responses((status = 200, body = List<SessionView>)))]
async fn list_sessions(me: Caller) -> Listed<SessionView> {
    let current = me.actor.session.id;
    let view = |session: Session| SessionView {
        current: session.id == current,
        session,
    };
    all_as(me.services().sessions(&me.actor), view).await
}

/// Revoke one of my sessions.
#[utoipa::path(delete, path = "/auth/sessions/{id}", tag = "auth", params(("id" = String, Path, format = Uuid)), responses((status = 204)))]
async fn revoke_session(me: Caller<SessionId>) -> NoContent {
    no_content(me.services().revoke_session(&me.actor, me.at)).await
}

#[derive(Serialize, ToSchema)]
pub struct Revoked {
    revoked: u64,
}

/// Revoke every session but this one.
#[utoipa::path(post, path = "/auth/sessions/revoke-others", tag = "auth", responses((status = 200, body = Revoked)))]
async fn revoke_other_sessions(me: Caller) -> Answer<Revoked> {
    let revoked = me.services().revoke_other_sessions(&me.actor).await?;
    Ok(Json(Revoked { revoked }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordBody {
    current_password: String,
    new_password: NewPassword,
}

/// Change my password; every other session is revoked.
#[utoipa::path(post, path = "/auth/password", tag = "auth", request_body = PasswordBody, responses((status = 204)))]
async fn change_password(me: Caller, ApiJson(body): ApiJson<PasswordBody>) -> NoContent {
    let current = &body.current_password;
    no_content(
        me.services()
            .change_password(&me.actor, current, body.new_password),
    )
    .await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordResetBody {
    /// The token of the reset link (what follows `#reset-password=`).
    token: String,
    new_password: NewPassword,
}

/// Set a password with the one-time link a server admin made (an hour, single use). Every
/// session of the account ends; sign in with the new password (and the second factor, when
/// the account has 2FA). A link that is unknown, used, replaced or expired: 410.
#[utoipa::path(post, path = "/auth/password-reset", tag = "auth", request_body = PasswordResetBody,
    responses((status = 204), (status = 410, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn finish_password_reset(
    Guest { state, meta }: Guest,
    ApiJson(body): ApiJson<PasswordResetBody>,
) -> NoContent {
    let reset = state
        .services
        .finish_password_reset(&body.token, body.new_password, meta);
    no_content(reset).await
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
    responses((status = 200, body = TotpSetupResponse), (status = 409, body = ErrorBody)))]
async fn totp_setup(me: Caller) -> Answer<TotpSetupResponse> {
    let setup = me.services().totp_setup(&me.actor).await?;
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
    responses((status = 200, body = RecoveryCodesResponse), (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn totp_enable(
    me: Caller,
    ApiJson(body): ApiJson<EnableBody>,
) -> Answer<RecoveryCodesResponse> {
    let codes = me.services().totp_enable(&me.actor, body.code).await?;
    Ok(Json(RecoveryCodesResponse::new(codes)))
}

/// Turn 2FA off, confirmed with a TOTP or recovery code.
#[utoipa::path(post, path = "/auth/totp/disable", tag = "auth", request_body = CodeBody,
    responses((status = 204), (status = 409, body = ErrorBody)))]
async fn totp_disable(me: Caller, Meta(meta): Meta, ApiJson(body): ApiJson<CodeBody>) -> NoContent {
    no_content(me.services().totp_disable(&me.actor, body.code, &meta)).await
}

/// Replace every recovery code, confirmed with a TOTP or recovery code; returns the new ones.
#[utoipa::path(post, path = "/auth/recovery-codes", tag = "auth", request_body = CodeBody,
    responses((status = 200, body = RecoveryCodesResponse), (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn regenerate_recovery_codes(
    me: Caller,
    Meta(meta): Meta,
    ApiJson(body): ApiJson<CodeBody>,
) -> Answer<RecoveryCodesResponse> {
    let codes = me
        .services()
        .regenerate_recovery_codes(&me.actor, body.code, &meta);
    Ok(Json(RecoveryCodesResponse::new(codes.await?)))
}
