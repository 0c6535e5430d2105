//! Identity at the HTTP edge (AUTH-6, AUTH-7, AUTH-9, AZ-5): what each route group asks of
//! its caller — declared with [`declare`] where the group is built, the one source of the
//! request's scope check, its 2FA exemption and the OpenAPI `x-scope` — the access-token gate
//! in front of the API, and who a bot's or key's request is charged to. Reading the credential
//! itself is `conclave_core::service::identity`'s job; the extractors (`extract::Caller`) hand it over.

use super::error::{ApiError, ApiResult};
use crate::ratelimit::{Subject, Tier};
use crate::state::AppState;
use axum::extract::{FromRequestParts, RawPathParams, Request, State};
use axum::http::request::Parts;
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use conclave_core::credential::{Credential, Scope};
use conclave_core::policy::credentials::{scope_allows, ScopeRule};
use conclave_core::service::identity::AccessGranted;
use conclave_core::service::{Actor, Resource};
use conclave_core::types::KeyTier;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::SecurityRequirement;
use utoipa_axum::router::OpenApiRouter;
use uuid::Uuid;

/// What a route group asks of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteAccess {
    /// The scope a bot or API key needs; a login session passes on its user's rights.
    pub scope: ScopeRule,
    /// Open to a user who must turn on 2FA and has not (AUTH-4a): their account and the 2FA
    /// routes.
    pub before_2fa: bool,
    /// No credential at all (sign-in, the probes, the public documents).
    pub public: bool,
}

impl RouteAccess {
    /// Login sessions only (sessions, server administration, API-key management); also what a
    /// route without a declaration gets at request time.
    pub const SESSION: Self = Self {
        scope: ScopeRule::SessionOnly,
        before_2fa: false,
        public: false,
    };

    /// Anyone, without a credential.
    pub const PUBLIC: Self = Self {
        scope: ScopeRule::SessionOnly,
        before_2fa: true,
        public: true,
    };

    /// Sessions, and bots and keys holding `read` (for `GET`) or `write` (otherwise).
    #[must_use]
    pub const fn scoped(read: Scope, write: Scope) -> Self {
        Self {
            scope: ScopeRule::ReadWrite { read, write },
            before_2fa: false,
            public: false,
        }
    }

    /// Sessions, and bots and keys holding `scope` whatever the method.
    #[must_use]
    pub const fn always(scope: Scope) -> Self {
        Self {
            scope: ScopeRule::Always(scope),
            before_2fa: false,
            public: false,
        }
    }

    /// The same, and open before a required second factor is set up.
    #[must_use]
    pub const fn before_2fa(self) -> Self {
        Self {
            before_2fa: true,
            ..self
        }
    }

    /// The scope a request with `method` needs (`None`: no bot or key may make it).
    #[must_use]
    pub fn needed(self, method: &Method) -> Option<Scope> {
        self.scope.needed(method == Method::GET)
    }

    /// What the request's route declared; [`Self::SESSION`] when it declared nothing.
    #[must_use]
    pub fn of(parts: &Parts) -> Self {
        parts
            .extensions
            .get::<Self>()
            .copied()
            .unwrap_or(Self::SESSION)
    }
}

/// Declares what every route of `group` asks of its caller: each request carries the
/// declaration (read by [`RouteAccess::of`]), and each operation's `x-scope` and security
/// requirements say it in the OpenAPI document.
pub fn declare<S>(mut group: OpenApiRouter<S>, access: RouteAccess) -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    for item in group.get_openapi_mut().paths.paths.values_mut() {
        let ops: [(&mut Option<Operation>, Method); 5] = [
            (&mut item.get, Method::GET),
            (&mut item.post, Method::POST),
            (&mut item.put, Method::PUT),
            (&mut item.patch, Method::PATCH),
            (&mut item.delete, Method::DELETE),
        ];
        for (op, method) in ops {
            let Some(op) = op else { continue };
            let scope = access.needed(&method);
            op.extensions.get_or_insert_with(Default::default).insert(
                "x-scope".into(),
                scope.map_or(serde_json::Value::Null, |s| s.as_str().into()),
            );
            if !access.public {
                let schemes = match scope {
                    Some(_) => &["bearer", "bot", "cookie"][..],
                    None => &["bearer", "cookie"][..],
                };
                op.security = Some(
                    (schemes.iter())
                        .map(|name| SecurityRequirement::new(*name, [] as [&str; 0]))
                        .collect(),
                );
            }
        }
    }
    group.route_layer(axum::Extension(access))
}

/// Whether a path is outside the access-token gate: the public documents a client reads before
/// it can know the gate exists (capabilities, the OpenAPI document), and everything that is
/// not the REST API — probes, the web client's files (public by nature) and the gateway
/// upgrade (the gateway checks `access_token` in IDENTIFY and RESUME instead). The support
/// widget's routes are exempt too: a visitor's browser on another site cannot hold the
/// access token; a live widget key and an origin it allows are their gate (WEB-4). The
/// OpenID callback is let through too: the provider's redirect back cannot carry the header,
/// so the flow carries the gate instead — its start is gated, and the callback completes only
/// a sign-in this server started through the gate (see `Services::sso_login_taken`).
fn gate_exempt(path: &str) -> bool {
    let path = path.strip_suffix('/').unwrap_or(path);
    !(path == "/api" || path.starts_with("/api/"))
        || path == "/api/v1/capabilities"
        || path == "/api/v1/openapi.json"
        || is_widget_path(path)
        || is_oidc_callback(path)
}

/// Whether `path` is `/api/v1/auth/oidc/{provider}/callback` (one path segment for the id).
fn is_oidc_callback(path: &str) -> bool {
    path.strip_prefix("/api/v1/auth/oidc/")
        .and_then(|rest| rest.strip_suffix("/callback"))
        .is_some_and(|id| !id.is_empty() && !id.contains('/'))
}

/// Whether `path` is one of the support widget's routes (WEB-4), which have their own gate
/// and CORS (`widget::gate`).
#[must_use]
pub fn is_widget_path(path: &str) -> bool {
    path.starts_with("/api/v1/widget/")
}

/// What the request said at the access-token gate.
fn access_header(parts: &axum::http::HeaderMap) -> Option<&str> {
    parts
        .get("x-api-access-token")
        .and_then(|v| v.to_str().ok())
}

/// AUTH-9: with `access_token` set, every REST request but the public documents — bearer,
/// cookie, bot, API key or management token, and every sign-in (login, its 2FA step,
/// bootstrap, register) — must carry `X-API-Access-Token` (401 `access_token_required`).
/// Runs after the per-IP limits, so guessing the access token is rate-limited like any request.
/// The proof it gets from core rides on the request for the extractors.
pub async fn access_gate(
    State(state): State<AppState>,
    mut req: Request,
    next: axum::middleware::Next,
) -> Response {
    if gate_exempt(req.uri().path()) {
        return next.run(req).await;
    }
    match state.services.access_gate(access_header(req.headers())) {
        Ok(granted) => {
            req.extensions_mut().insert(granted);
            next.run(req).await
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// The access-token proof of this request: the gate's, or checked now.
pub fn access_granted(parts: &Parts, state: &AppState) -> ApiResult<AccessGranted> {
    match parts.extensions.get::<AccessGranted>() {
        Some(granted) => Ok(*granted),
        None => Ok(state.services.access_gate(access_header(&parts.headers))?),
    }
}

fn insufficient_scope() -> ApiError {
    ApiError::forbidden(
        "insufficient_scope",
        "this credential's scopes do not cover this request",
    )
}

/// The most specific resource a route names: a message, a conversation, an org or a user.
fn named_resource(params: &RawPathParams, path: &str) -> Option<(Resource, &'static str)> {
    let id = |name: &str| {
        params
            .iter()
            .find(|(k, _)| *k == name)
            .and_then(|(_, v)| Uuid::try_parse(v).ok())
    };
    if let Some(m) = id("m") {
        return Some((Resource::Message(m.into()), "message"));
    }
    if let Some(c) = id("c") {
        return Some((Resource::Conversation(c.into()), "conversation"));
    }
    if let Some(org) = id("org") {
        return Some((Resource::Org(org.into()), "organization"));
    }
    if path.starts_with("/api/v1/users/") {
        return id("id").map(|u| (Resource::User(u.into()), "user"));
    }
    None
}

/// AZ-5 at the edge: a bot or key may use only routes that declare a scope, and a key only
/// those whose scope it holds. Outside its scopes a key gets 403 `insufficient_scope`, or 404
/// when its owner could not see the named resource either. The services then apply the owner's
/// current rights and the credential's org and conversation limits.
pub async fn require_scope(
    parts: &mut Parts,
    state: &AppState,
    actor: &Actor,
    access: RouteAccess,
) -> ApiResult<()> {
    let needed = access.needed(&parts.method);
    if scope_allows(&actor.credential, needed) {
        return Ok(());
    }
    if needed.is_none() {
        return Err(insufficient_scope());
    }
    let path = parts
        .extensions
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let Ok(params) = RawPathParams::from_request_parts(parts, state).await else {
        return Err(insufficient_scope());
    };
    match named_resource(&params, &path) {
        Some((resource, what)) if !state.services.owner_sees(actor, resource).await? => {
            Err(ApiError::not_found(what))
        }
        _ => Err(insufficient_scope()),
    }
}

/// Who a bot's or key's request is charged to: a key's tier replaces the per-user limits
/// (RATE-1), and both count against their org.
#[must_use]
pub fn rate_subject(actor: &Actor) -> Subject {
    let user = actor.user.id;
    match &actor.credential {
        Credential::ApiKey { key, org, tier, .. } => Subject {
            user,
            org: Some(*org),
            api_key: Some((
                key.0,
                match tier {
                    KeyTier::Free => Tier::Free,
                    KeyTier::Pro => Tier::Pro,
                    KeyTier::Team => Tier::Team,
                    KeyTier::Enterprise => Tier::Enterprise,
                },
            )),
        },
        Credential::Bot { org, .. } | Credential::OAuth { org, .. } => Subject {
            user,
            org: Some(*org),
            api_key: None,
        },
        Credential::Session => Subject {
            user,
            org: None,
            api_key: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt;
    use utoipa_axum::routes;

    /// Answers the declaration the request carried.
    #[utoipa::path(get, path = "/probe", responses((status = 200)))]
    async fn probe(parts: Parts) -> String {
        format!("{:?}", RouteAccess::of(&parts))
    }

    #[utoipa::path(post, path = "/probe", responses((status = 200)))]
    async fn probe_post(parts: Parts) -> String {
        format!("{:?}", RouteAccess::of(&parts))
    }

    #[tokio::test]
    async fn the_declaration_reaches_the_request_and_the_document() {
        let access = RouteAccess::scoped(Scope::MessagesRead, Scope::MessagesWrite).before_2fa();
        let group = declare(
            OpenApiRouter::new().routes(routes!(probe, probe_post)),
            access,
        );
        let (router, doc) = group.split_for_parts();
        let doc = serde_json::to_value(&doc).unwrap();
        assert_eq!(doc["paths"]["/probe"]["get"]["x-scope"], "messages:read");
        assert_eq!(doc["paths"]["/probe"]["post"]["x-scope"], "messages:write");
        assert_eq!(
            doc["paths"]["/probe"]["get"]["security"],
            serde_json::json!([{"bearer": []}, {"bot": []}, {"cookie": []}])
        );
        for method in [Method::GET, Method::POST] {
            let req = Request::builder()
                .method(method)
                .uri("/probe")
                .body(Body::empty())
                .unwrap();
            let res = router.clone().oneshot(req).await.unwrap();
            let body = axum::body::to_bytes(res.into_body(), 1024).await.unwrap();
            assert_eq!(body, format!("{access:?}").as_bytes());
        }
        // A session-only group: no scope, sessions only; a public one: no security at all.
        let (_, doc) = declare(
            OpenApiRouter::<()>::new().routes(routes!(probe)),
            RouteAccess::SESSION,
        )
        .split_for_parts();
        let doc = serde_json::to_value(&doc).unwrap();
        assert!(doc["paths"]["/probe"]["get"]["x-scope"].is_null());
        assert_eq!(
            doc["paths"]["/probe"]["get"]["security"],
            serde_json::json!([{"bearer": []}, {"cookie": []}])
        );
        let (_, doc) = declare(
            OpenApiRouter::<()>::new().routes(routes!(probe)),
            RouteAccess::PUBLIC,
        )
        .split_for_parts();
        let doc = serde_json::to_value(&doc).unwrap();
        assert!(doc["paths"]["/probe"]["get"].get("security").is_none());
    }

    #[test]
    fn only_the_openid_callback_passes_the_gate_among_sign_ins() {
        assert!(gate_exempt("/api/v1/auth/oidc/google/callback"));
        assert!(gate_exempt("/api/v1/auth/oidc/google/callback/"));
        for gated in [
            "/api/v1/auth/oidc/google/start",
            "/api/v1/auth/oidc//callback",
            "/api/v1/auth/oidc/a/b/callback",
            "/api/v1/auth/oidc/google/callbackx",
            "/api/v1/auth/login",
            "/api/v1/auth/jwt",
            "/api/v1/users/@me",
        ] {
            assert!(!gate_exempt(gated), "{gated}");
        }
    }

    #[test]
    fn undeclared_routes_are_for_sessions_only() {
        let (parts, ()) = axum::http::Request::new(()).into_parts();
        assert_eq!(RouteAccess::of(&parts), RouteAccess::SESSION);
    }
}
