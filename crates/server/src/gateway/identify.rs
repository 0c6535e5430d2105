//! The gateway's credential check for IDENTIFY and RESUME. It parses nothing itself: the frame's
//! `Authorization`-style value (or a browser's cookie) goes to `Services::identify`, the one
//! identity path REST uses too; this file only maps core's verdict to close codes.

use super::protocol::CloseCode;
use super::{Gateway, UpgradeContext};
use conclave_core::credential::Scope;
use conclave_core::policy;
use conclave_core::service::identity::{Csrf, Presented, Refused, Shown};
use conclave_core::service::{Actor, ClientMeta};

/// Why a credential opens no gateway session: the close code and its reason (`start` turns it
/// into its `Start::Refuse`).
pub(super) struct Refusal(pub(super) CloseCode, pub(super) &'static str);

/// The scope an API key needs to open a gateway session.
const GATEWAY_SCOPE: Scope = Scope::MessagesRead;

/// Authenticates the credential of IDENTIFY or RESUME through `Services::identify`, as REST
/// does: `token` is an `Authorization` value (`Bearer …` for a session or an API key holding
/// `messages:read` — without it 4014 —, `Bot …` for a bot); a browser sends none and is known
/// by the session cookie of an allowed origin. The access-token gate (AUTH-9) judges the
/// frame's `access_token`, else the upgrade request's `X-API-Access-Token`. A bot's or key's
/// socket goes by the id of the secret it used, so revoking that secret closes it
/// (`RevokeSession`).
pub(super) async fn authenticate(
    gw: &Gateway,
    ctx: &UpgradeContext,
    token: Option<&str>,
    access_token: Option<&str>,
) -> Result<Actor, Refusal> {
    let failed = Refusal(CloseCode::AuthenticationFailed, "authentication failed");
    let given = access_token.or(ctx.access_header.as_deref());
    let Ok(access) = gw.services.access_gate(given) else {
        return Err(Refusal(
            CloseCode::AuthenticationFailed,
            "access token missing or wrong",
        ));
    };
    let credential = match (token, ctx.cookie_token.as_deref()) {
        (Some(value), _) => Shown::Authorization(value),
        (None, Some(cookie)) => Shown::Cookie {
            token: cookie,
            csrf: Csrf::NotNeeded,
        },
        (None, None) => return Err(failed),
    };
    let presented = Presented {
        credential,
        ip: ctx.ip,
        meta: ClientMeta {
            ip: ctx.ip.map(crate::ratelimit::ip_key),
            ..ClientMeta::default()
        },
        before_2fa: false,
    };
    let actor = match gw.services.identify(&access, presented).await {
        Ok(actor) => actor,
        // A user a server admin requires to use 2FA gets no gateway session until they turn
        // it on (4014, as REST answers 403 `mfa_setup_required`).
        Err(Refused::SecondFactorRequired) => {
            return Err(Refusal(
                CloseCode::NotPermitted,
                super::protocol::SECOND_FACTOR_REQUIRED,
            ))
        }
        Err(_) => return Err(failed),
    };
    if !policy::credentials::scope_allows(&actor.credential, Some(GATEWAY_SCOPE)) {
        return Err(Refusal(
            CloseCode::NotPermitted,
            "the API key lacks messages:read",
        ));
    }
    Ok(actor)
}
