//! MCP-2: Conclave's own OAuth 2.1 authorization server, spoken to as an MCP client and a
//! browser would: the metadata documents, authorization code + PKCE S256 through the consent
//! API, the token endpoint (single-use codes, refresh rotation and reuse detection), grants
//! and their revocation, registered and metadata-document clients. Tokens are checked on the
//! one identity path (`Services::identify` with the MCP surface) and refused on REST.

mod clients;
mod documents;
mod flow;
mod forwarding;
mod grants;
mod mcp;

use crate::helpers::*;
use conclave_core::service::identity::{Presented, Shown, Surface};
use conclave_core::service::ClientMeta;
use conclave_server::config::OnOff;
use reqwest::Method;
use serde_json::{json, Value};

/// A signed-in browser: its session cookie and CSRF token.
pub struct Browser {
    pub cookie: String,
    pub csrf: String,
}

/// A user, their org and a public client registered there, with a browser signed in.
pub struct World {
    pub owner: User,
    pub org: String,
    pub browser: Browser,
    pub client_id: String,
    pub redirect: String,
}

impl World {
    /// The same org and client, as `user` in `browser`.
    pub fn as_user(&self, user: &User, browser: Browser) -> World {
        World {
            owner: user.clone(),
            org: self.org.clone(),
            browser,
            client_id: self.client_id.clone(),
            redirect: self.redirect.clone(),
        }
    }
}

pub const REDIRECT: &str = "http://127.0.0.1:9/callback";
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
/// RFC 7636 Appendix B: the S256 challenge of [`VERIFIER`], computed by the RFC's authors.
pub const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

impl TestApp {
    pub async fn browser(&self, username: &str) -> Browser {
        let res = self.cookie_login(username).await;
        Browser {
            cookie: res.session_cookie(),
            csrf: res.string("csrf_token"),
        }
    }

    /// The MCP resource tokens are bound to.
    pub fn resource(&self) -> String {
        format!("{}/mcp", self.base)
    }

    /// The usual authorization parameters for `client_id`, `extra` replacing or adding (an
    /// empty value removing).
    pub fn authorize_query(
        &self,
        client_id: &str,
        extra: &[(&str, &str)],
    ) -> Vec<(String, String)> {
        let resource = self.resource();
        let mut params: Vec<(&str, &str)> = vec![
            ("client_id", client_id),
            ("redirect_uri", REDIRECT),
            ("response_type", "code"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
            ("state", "st-1"),
            ("resource", &resource),
            (
                "scope",
                "messages:read messages:write conversations:read org:read",
            ),
        ];
        for (k, v) in extra {
            params.retain(|(p, _)| p != k);
            if !v.is_empty() {
                params.push((k, v));
            }
        }
        (params.into_iter())
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    /// An authorization with the usual parameters for `client_id`, `extra` replacing or adding.
    pub async fn authorize_as(&self, client_id: &str, extra: &[(&str, &str)]) -> Res {
        let params = self.authorize_query(client_id, extra);
        self.send(self.client.get(self.url("/oauth/authorize")).query(&params))
            .await
    }

    /// The browser's request to the consent API.
    pub async fn consent_api(
        &self,
        b: &Browser,
        method: Method,
        id: &str,
        body: Option<Value>,
    ) -> Res {
        let mut rb = self
            .client
            .request(method, self.url(&format!("/api/v1/oauth/requests/{id}")))
            .header("cookie", &b.cookie)
            .header("x-csrf-token", &b.csrf);
        if let Some(body) = body {
            rb = rb.json(&body);
        }
        self.send(rb).await
    }

    /// The browser approves request `id` for `org`.
    pub async fn approve(&self, b: &Browser, id: &str, org: &str) -> Res {
        let body = json!({"approve": true, "org_id": org});
        self.consent_api(b, Method::POST, id, Some(body)).await
    }

    /// `POST /oauth/token` with `form`.
    pub async fn token(&self, form: &[(&str, &str)]) -> Res {
        self.send(self.client.post(self.url("/oauth/token")).form(form))
            .await
    }

    /// Whether `/mcp` would let this access token in: the one identity path, MCP surface.
    pub async fn mcp_accepts(&self, access_token: &str) -> bool {
        let granted = self.services.access_gate(None).expect("no gate");
        let value = format!("Bearer {access_token}");
        let presented = Presented {
            credential: Shown::Authorization(&value),
            ip: None,
            meta: ClientMeta {
                surface: Surface::Mcp,
                ..ClientMeta::default()
            },
            before_2fa: false,
        };
        self.services.identify(&granted, presented).await.is_ok()
    }
}

/// Where a 302 points.
pub fn location(res: &Res) -> String {
    assert_eq!(res.status, 302, "a redirect: {}", res.body);
    res.headers["location"].to_str().unwrap().to_owned()
}

/// A query parameter of a URL.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The pending request id the consent page was sent.
pub fn request_id(res: &Res) -> String {
    let to = location(res);
    to.strip_prefix("/#/oauth/consent?request=")
        .unwrap_or_else(|| panic!("sent to the consent page, not {to}"))
        .to_owned()
}

/// Registers a client of `org` as `by`.
pub async fn register(app: &TestApp, by: &User, org: &str, public: bool) -> Res {
    let body = json!({"name": "Test Agent", "redirect_uris": [REDIRECT], "public": public});
    app.post(&org_path(org, "/oauth-clients"), &by.token, body)
        .await
}

pub async fn world(app: &TestApp) -> World {
    let owner = app.user("olivia").await;
    let org = app.org(&owner, "Acme").await;
    let client_id = register(app, &owner, &org, true)
        .await
        .expect(201)
        .string("client_id");
    let browser = app.browser("olivia").await;
    World {
        owner,
        org,
        browser,
        client_id,
        redirect: REDIRECT.to_owned(),
    }
}

/// The whole flow up to a code: authorize, approve for `org`; answers the code.
pub async fn code_for(app: &TestApp, w: &World, client_id: &str, org: &str) -> String {
    let id = request_id(&app.authorize_as(client_id, &[]).await);
    approved_code(app, w, &id, org).await
}

/// `w`'s browser approves request `id` for `org`: answers the code sent back to the client.
pub async fn approved_code(app: &TestApp, w: &World, id: &str, org: &str) -> String {
    let res = app.approve(&w.browser, id, org).await.expect(200);
    let to = res.string("redirect_to");
    assert!(to.starts_with(REDIRECT), "{to}");
    assert_eq!(query_param(&to, "state").as_deref(), Some("st-1"));
    assert_eq!(query_param(&to, "iss").as_deref(), Some(app.base.as_str()));
    query_param(&to, "code").expect("a code")
}

/// Redeems `code` as the public client `client_id`.
pub async fn redeem(app: &TestApp, client_id: &str, code: &str) -> Res {
    let resource = app.resource();
    app.token(&[
        ("grant_type", "authorization_code"),
        ("code", code),
        ("code_verifier", VERIFIER),
        ("redirect_uri", REDIRECT),
        ("client_id", client_id),
        ("resource", &resource),
    ])
    .await
}

/// Rotates `refresh` as the public client `client_id`.
pub async fn refresh(app: &TestApp, client_id: &str, refresh: &str) -> Res {
    app.token(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh),
        ("client_id", client_id),
    ])
    .await
}

/// A refresh that must be refused as `invalid_grant`.
pub async fn refresh_refused(app: &TestApp, client_id: &str, token: &str) {
    oauth_error(&refresh(app, client_id, token).await, 400, "invalid_grant");
}

/// The live grants `user` lists as theirs.
pub async fn grants_of(app: &TestApp, user: &User) -> Vec<Value> {
    app.items("/api/v1/users/@me/grants", &user.token).await
}

/// The access and refresh token of a token answer.
pub fn tokens(res: &Res) -> (String, String) {
    (res.string("access_token"), res.string("refresh_token"))
}

/// An RFC 6749 §5.2 error: `status` and `error`.
pub fn oauth_error(res: &Res, status: u16, error: &str) {
    assert_eq!(res.status, status, "{}", res.body);
    assert_eq!(res.body["error"], error, "{}", res.body);
}

/// Of `answers` given at once, the one that succeeded (exactly one, `what`); every other one
/// is the OAuth error `invalid_grant`.
pub fn the_one_success<'a>(answers: &'a [Res], what: &str) -> &'a Res {
    let ok: Vec<&Res> = answers.iter().filter(|r| r.status == 200).collect();
    assert_eq!(ok.len(), 1, "{what}");
    for r in answers.iter().filter(|r| r.status != 200) {
        oauth_error(r, 400, "invalid_grant");
    }
    ok[0]
}
