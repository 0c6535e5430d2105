//! The gateway's credential check for IDENTIFY and RESUME: the access-token gate, the
//! credential itself, and the personal 2FA requirement. Moved here unchanged from
//! `connection.rs`; the identity work owns its contents.

use super::connection::Start;
use super::protocol::CloseCode;
use super::{Gateway, UpgradeContext};
use conclave_core::credential::Scope;
use conclave_core::service::Actor;
use secrecy::ExposeSecret;

/// Authenticates the credential of IDENTIFY or RESUME: a bearer session token, a bot token
/// (`Bot …`), an API key holding `messages:read` (`Bearer cnv_k_…`; without it 4014), or for
/// browsers (no token) the session cookie of an allowed origin. A bot's or key's socket goes by
/// the id of the secret it used, so revoking that secret closes it (`RevokeSession`).
pub(super) async fn authenticate(
    gw: &Gateway,
    ctx: &UpgradeContext,
    token: Option<&str>,
    access_token: Option<&str>,
) -> Result<Actor, Start> {
    if !access_granted(gw, ctx, access_token) {
        return Err(Start::Refuse(
            CloseCode::AuthenticationFailed,
            "access token missing or wrong",
        ));
    }
    let failed = Start::Refuse(CloseCode::AuthenticationFailed, "authentication failed");
    let ip = ctx.ip.map(|i| i.to_string());
    match token {
        Some(t) => {
            if let Some(bot) = t.strip_prefix("Bot ") {
                let actor = gw
                    .services
                    .authenticate_bot(bot.trim(), ip.as_deref())
                    .await
                    .map_err(|_| failed)?;
                return personal_2fa(gw, actor).await;
            }
            let t = t.strip_prefix("Bearer ").unwrap_or(t).trim();
            if t.starts_with("cnv_k_") {
                let actor = gw
                    .services
                    .authenticate_api_key(t, ip.as_deref())
                    .await
                    .map_err(|_| failed)?;
                if !actor.credential.allows(Scope::MessagesRead) {
                    return Err(Start::Refuse(
                        CloseCode::NotPermitted,
                        "the API key lacks messages:read",
                    ));
                }
                return personal_2fa(gw, actor).await;
            }
            let actor = gw
                .services
                .authenticate(t, ip.as_deref())
                .await
                .map_err(|_| failed)?;
            personal_2fa(gw, actor).await
        }
        None => {
            let cookie = ctx.cookie_token.as_deref().ok_or(Start::Refuse(
                CloseCode::AuthenticationFailed,
                "authentication failed",
            ))?;
            let actor = gw
                .services
                .authenticate(cookie, ip.as_deref())
                .await
                .map_err(|_| {
                    Start::Refuse(CloseCode::AuthenticationFailed, "authentication failed")
                })?;
            if actor.session.cookie {
                personal_2fa(gw, actor).await
            } else {
                Err(failed)
            }
        }
    }
}

/// The access-token gate (AUTH-9) covers every credential kind, the browser's cookie included:
/// IDENTIFY or RESUME carries `access_token` (what a browser can send), or the upgrade request
/// carried `X-API-Access-Token` (as every REST request does). A token given in the frame is the
/// one judged. Compared in constant time.
fn access_granted(gw: &Gateway, ctx: &UpgradeContext, given: Option<&str>) -> bool {
    let Some(gate) = &gw.access_token else {
        return true;
    };
    match given {
        Some(given) => conclave_core::token::secrets_equal(given, gate.expose_secret()),
        None => ctx.access_header_ok,
    }
}

/// A user a server admin requires to use 2FA gets no gateway session until they turn it on
/// (4014, as REST answers 403 `mfa_setup_required`).
async fn personal_2fa(gw: &Gateway, actor: Actor) -> Result<Actor, Start> {
    match gw.services.check_personal_2fa(&actor, false).await {
        Ok(()) => Ok(actor),
        Err(_) => Err(Start::Refuse(
            CloseCode::NotPermitted,
            "two-factor authentication is required: turn it on first",
        )),
    }
}
