//! AUTH-10 over HTTP, OpenID Connect. Two providers:
//!
//! - the real `oidc-provider` (npm, a certified implementation) started from
//!   `web/tests/oidc-provider.mjs`, driven through its login and consent pages like a browser:
//!   the happy path, a replayed callback (code and state used twice), a state that does not
//!   match the browser's cookie, a disabled account and org roles from a `groups` claim;
//! - a provider written here (`Forger`) whose token endpoint checks PKCE like a real one but
//!   answers with the ID token a test asks for — signed with its published RSA key unless the
//!   test forges it otherwise — for what a real provider never does: a wrong nonce, another
//!   audience, an expired token, `alg: none`, HS256 signed with the provider's public key.

use crate::both_backends;
use crate::helpers::*;
use crate::python::python;
use axum::extract::State;
use base64::Engine as _;
use conclave_core::Clock;
use conclave_server::config::{Config, OidcProviderConfig, OnOff};
use serde_json::{json, Value};
use sha2::Digest;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

both_backends!(
    oidc_provider_signs_in_links_and_maps_roles,
    replayed_and_cross_browser_callbacks_are_refused,
    disabled_accounts_cannot_sign_in_with_oidc,
    forged_id_tokens_are_refused,
    link_existing_takes_only_a_verified_email,
    the_access_gate_holds_for_openid_sign_in,
    erased_accounts_come_back_only_as_new_ones,
    several_providers_at_once_keep_their_identities_apart,
    openid_failures_count_toward_the_address_back_off,
    a_state_begun_outside_the_gate_is_not_completed_through_it,
);

const CLIENT_ID: &str = "conclave-test";
const CLIENT_SECRET: &str = "conclave test client secret";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A port nobody listens on now (the app is started on it so the provider can know its
/// redirect URI first).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn provider(id: &str, issuer: &str, extra: Value) -> OidcProviderConfig {
    let mut p = json!({
        "id": id, "issuer": issuer, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
        "scopes": ["openid", "email", "profile", "groups"], "create_users": true,
        "allow_insecure_http": true,
    });
    for (k, v) in extra.as_object().unwrap() {
        p[k] = v.clone();
    }
    serde_json::from_value(p).unwrap()
}

/// Lets the app reach the providers on loopback, the callbacks come "from" trusted proxies.
fn reach(c: &mut Config, ports: Vec<u16>) {
    c.rate_limits = OnOff::Off;
    c.webhook_allow_cidrs = vec!["127.0.0.1/32".parse().unwrap()];
    c.webhook_allow_ports = ports;
}

/// The real provider, killed when dropped.
struct NodeOp {
    _child: tokio::process::Child,
    issuer: String,
    port: u16,
}

/// Reads (and drops) what the provider prints after its first line: a closed pipe would end it
/// at its next write.
fn drain(mut lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>) {
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
}

/// Starts `web/tests/oidc-provider.mjs` for `redirect_uri` and `accounts`; `None` (after saying
/// SKIPPED) when node or its packages are missing outside CI.
async fn node_op(redirect_uri: &str, accounts: Value) -> Option<NodeOp> {
    use tokio::io::AsyncBufReadExt;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let config = json!({
        "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
        "redirect_uri": redirect_uri, "accounts": accounts,
    });
    let spawned = tokio::process::Command::new("node")
        .arg(root.join("web/tests/oidc-provider.mjs"))
        .arg(config.to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn();
    let skip = |why: String| {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "oidc-provider is required under CI=true (cd web/tests && npm ci): {why}"
        );
        eprintln!("SKIPPED an OpenID test: oidc-provider cannot start ({why})");
        None
    };
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => return skip(e.to_string()),
    };
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line()).await;
    let issuer = match line {
        Ok(Ok(Some(l))) => serde_json::from_str::<Value>(&l).unwrap()["issuer"]
            .as_str()
            .unwrap()
            .to_owned(),
        other => return skip(format!("{other:?}")),
    };
    drain(lines);
    let port = url::Url::parse(&issuer).unwrap().port().unwrap();
    Some(NodeOp {
        _child: child,
        issuer,
        port,
    })
}

/// A browser: keeps cookies (ours and the provider's), follows nothing by itself.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn location(res: &reqwest::Response, base: &reqwest::Url) -> String {
    let loc = res.headers()["location"].to_str().unwrap();
    base.join(loc).unwrap().to_string()
}

/// Signs in at `app` through oidc-provider's pages as `account`: follows redirects, fills the
/// login and consent forms, and stops at the URL the provider sends the browser back to.
async fn through_provider(app: &TestApp, browser: &reqwest::Client, account: &str) -> String {
    let start = app.url("/api/v1/auth/oidc/node/start");
    from_provider(app, browser, account, start).await
}

/// As [`through_provider`], from `url` (the provider's authorization URL, or our start).
async fn from_provider(
    app: &TestApp,
    browser: &reqwest::Client,
    account: &str,
    mut url: String,
) -> String {
    for _ in 0..20 {
        let res = browser.get(&url).send().await.unwrap();
        let here = res.url().clone();
        if res.status().is_redirection() {
            url = location(&res, &here);
            if url.starts_with(&app.base) && url.contains("/callback") {
                return url;
            }
            continue;
        }
        let html = res.text().await.unwrap();
        let action = html
            .split("action=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or_else(|| panic!("a form at {here}: {html}"));
        let form: Vec<(&str, &str)> = if html.contains("value=\"login\"") {
            vec![("prompt", "login"), ("login", account), ("password", "any")]
        } else {
            vec![("prompt", "consent")]
        };
        let posted = browser
            .post(here.join(action).unwrap())
            .form(&form)
            .send()
            .await
            .unwrap();
        assert!(posted.status().is_redirection(), "{}", posted.status());
        url = location(&posted, &here);
    }
    panic!("the provider never sent the browser back");
}

/// Follows the callback in `browser`: where it leads (`/` or `/#/signin?…`).
async fn callback(browser: &reqwest::Client, url: &str) -> String {
    let res = browser.get(url).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 302, "{url}");
    res.headers()["location"].to_str().unwrap().to_owned()
}

/// Starts a sign-in at `start` in `browser` (a 302 to the provider expected): the query of
/// the provider URL it sends the browser to (`state`, `nonce`, `code_challenge`, …).
async fn started(browser: &reqwest::Client, start: &str) -> HashMap<String, String> {
    let res = browser.get(start).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 302);
    let to = url::Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
    to.query_pairs().into_owned().collect()
}

/// Who the browser's session cookie is.
async fn session_user(app: &TestApp, browser: &reqwest::Client) -> Value {
    let res = browser
        .get(app.url("/api/v1/auth/session"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    res.json::<Value>().await.unwrap()["user"].clone()
}

/// An app with the `node` provider at `op`, on the database of `first` when given (so orgs made
/// there can be mapped), listening where the provider's redirect URI points.
async fn node_app(
    backend: Backend,
    port: u16,
    op: &NodeOp,
    extra: Value,
    first: Option<&TestApp>,
) -> TestApp {
    let p = provider("node", &op.issuer, extra);
    let op_port = op.port;
    spawn_app_with(backend, |c| {
        c.listen = format!("127.0.0.1:{port}");
        c.oidc.providers = vec![p];
        reach(c, vec![op_port]);
        if let Some(first) = first {
            c.data_dir = first.data_dir.clone();
            c.database_url = first.database_url.clone();
        }
    })
    .await
    .expect("the app starts")
}

fn accounts() -> Value {
    json!({
        "op-alice": {"email": "alice@op.example", "email_verified": true, "name": "Alice Op",
                     "preferred_username": "opalice", "groups": ["chat-admins", "staff"]},
        "op-bob": {"email": "bob@op.example", "email_verified": false,
                   "preferred_username": "opbob", "groups": ["staff"]},
    })
}

async fn oidc_provider_signs_in_links_and_maps_roles(first: TestApp) {
    // An org to map roles into, made on the database the OpenID-enabled node then serves.
    let owner = first.user("owner").await;
    let org = first.org(&owner, "Acme").await;
    let port = free_port();
    let redirect = format!("http://127.0.0.1:{port}/api/v1/auth/oidc/node/callback");
    let Some(op) = node_op(&redirect, accounts()).await else {
        return;
    };
    let roles = json!([{"claim": "groups", "value": "chat-admins", "org": org, "role": "admin"}]);
    let app = node_app(
        first.backend,
        port,
        &op,
        json!({ "roles": roles }),
        Some(&first),
    )
    .await;
    let caps = app.get_anon("/api/v1/capabilities").await.expect(200);
    assert_eq!(
        caps.body["auth"]["providers"],
        json!([{"id": "node", "name": "node", "kind": "oidc"}])
    );
    assert_eq!(caps.body["features"]["sso"], true);
    // The start redirect asks for the code flow with PKCE S256, a state and a nonce.
    let start = app
        .client
        .get(app.url("/api/v1/auth/oidc/node/start"))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status().as_u16(), 302);
    let to = url::Url::parse(start.headers()["location"].to_str().unwrap()).unwrap();
    let q: HashMap<String, String> = to.query_pairs().into_owned().collect();
    assert!(to.as_str().starts_with(&op.issuer));
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(q["redirect_uri"], redirect);
    assert!(q["state"].len() >= 43 && q["nonce"].len() >= 43);
    assert!(q["scope"].contains("openid") && q["scope"].contains("groups"));
    let set_cookie = start.headers()["set-cookie"].to_str().unwrap();
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"));

    let alice_browser = browser();
    let back = through_provider(&app, &alice_browser, "op-alice").await;
    assert_eq!(callback(&alice_browser, &back).await, "/");
    let alice = session_user(&app, &alice_browser).await;
    assert_eq!(alice["username"], "opalice");
    assert_eq!(alice["display_name"], "Alice Op");
    // Her groups made her an admin of Acme; bob (staff only) gets no membership.
    let members = app
        .get(&format!("/api/v1/orgs/{org}/members"), &owner.token)
        .await
        .expect(200)
        .items();
    let member = members
        .iter()
        .find(|m| m["user"]["id"] == alice["id"])
        .expect("alice joined Acme");
    assert_eq!(member["role"], "admin");
    let bob_browser = browser();
    let back = through_provider(&app, &bob_browser, "op-bob").await;
    assert_eq!(callback(&bob_browser, &back).await, "/");
    let bob = session_user(&app, &bob_browser).await;
    let members = app
        .get(&format!("/api/v1/orgs/{org}/members"), &owner.token)
        .await
        .expect(200)
        .items();
    assert!(!members.iter().any(|m| m["user"]["id"] == bob["id"]));
    // Signing in again is the same account (issuer + sub), audited with the method.
    let again = browser();
    let back = through_provider(&app, &again, "op-alice").await;
    assert_eq!(callback(&again, &back).await, "/");
    assert_eq!(session_user(&app, &again).await["id"], alice["id"]);
    let identities = app
        .get(
            &format!(
                "/api/v1/admin/users/{}/identities",
                alice["id"].as_str().unwrap()
            ),
            ADMIN_TOKEN,
        )
        .await
        .expect(200)
        .items();
    assert_eq!(identities.len(), 1);
    assert_eq!(identities[0]["kind"], "oidc");
    assert_eq!(identities[0]["provider"], op.issuer);
    assert_eq!(identities[0]["subject"], "op-alice");
    let logins = app.audit_of("auth.login&limit=100").await.items();
    let by_oidc = logins
        .iter()
        .filter(|e| e["outcome"] == "success" && e["detail"]["method"] == "oidc")
        .count();
    assert_eq!(by_oidc, 3);
}

async fn replayed_and_cross_browser_callbacks_are_refused(app: TestApp) {
    let port = free_port();
    let redirect = format!("http://127.0.0.1:{port}/api/v1/auth/oidc/node/callback");
    let Some(op) = node_op(&redirect, accounts()).await else {
        return;
    };
    let app = node_app(app.backend, port, &op, json!({}), None).await;
    let alice = browser();
    let back = through_provider(&app, &alice, "op-alice").await;
    assert_eq!(callback(&alice, &back).await, "/");
    // The callback cleared the browser's state cookie; the same callback again, even with
    // the state's cookie put back (a replay by whoever saw both): the state was used.
    assert_eq!(
        callback(&alice, &back).await,
        "/#/signin?error=oidc_state_mismatch"
    );
    let state = url::Url::parse(&back)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let replay = app
        .client
        .get(&back)
        .header("cookie", format!("conclave_oidc={state}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        replay.headers()["location"],
        "/#/signin?error=oidc_state_invalid"
    );
    // A callback URL taken to another browser (login CSRF): its state is not that browser's.
    // Nor does a made-up state, or the provider's refusal, sign anyone in.
    let victim = browser();
    let started = browser();
    let back = through_provider(&app, &started, "op-bob").await;
    let base = app.url("/api/v1/auth/oidc/node/callback");
    let cases = [
        (&victim, back, "oidc_state_mismatch"),
        (
            &started,
            format!("{base}?code=x&state=made-up"),
            "oidc_state_mismatch",
        ),
        (
            &started,
            format!("{base}?error=access_denied"),
            "oidc_provider_error",
        ),
    ];
    for (b, url, code) in cases {
        assert_eq!(callback(b, &url).await, format!("/#/signin?error={code}"));
    }
    // Every failure is audited and counted; the unknown provider is a 404.
    let failed: Vec<Value> = app
        .audit_of("auth.login&limit=100")
        .await
        .items()
        .into_iter()
        .filter(|e| e["outcome"] == "failure")
        .collect();
    let reasons: Vec<&str> = failed
        .iter()
        .filter_map(|e| e["detail"]["reason"].as_str())
        .collect();
    for r in [
        "oidc_state_invalid",
        "oidc_state_mismatch",
        "oidc_provider_error",
    ] {
        assert!(reasons.contains(&r), "{r} in {reasons:?}");
    }
    app.get_anon("/api/v1/auth/oidc/nope/start")
        .await
        .expect_error(404, "not_found");
}

async fn disabled_accounts_cannot_sign_in_with_oidc(app: TestApp) {
    let port = free_port();
    let redirect = format!("http://127.0.0.1:{port}/api/v1/auth/oidc/node/callback");
    let Some(op) = node_op(&redirect, accounts()).await else {
        return;
    };
    let app = node_app(app.backend, port, &op, json!({}), None).await;
    let b = browser();
    let back = through_provider(&app, &b, "op-alice").await;
    assert_eq!(callback(&b, &back).await, "/");
    let alice = session_user(&app, &b).await;
    let who = User::without_token("opalice", alice["id"].as_str().unwrap());
    app.set_disabled(ADMIN_TOKEN, &who, true).await;
    let again = browser();
    let back = through_provider(&app, &again, "op-alice").await;
    assert_eq!(
        callback(&again, &back).await,
        "/#/signin?error=account_disabled"
    );
    // Her earlier session is gone too.
    let res = b.get(app.url("/api/v1/auth/session")).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 401);
}

/// What the forging provider does at its token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Forge {
    Good,
    /// A good token whose provider says it verified the email.
    GoodVerified,
    WrongNonce,
    WrongAudience,
    Expired,
    AlgNone,
    Hs256WithPublicKey,
}

#[derive(Default)]
struct ForgerState {
    issuer: String,
    /// code → (PKCE challenge, nonce, what to answer with); a code works once.
    codes: HashMap<String, (String, String, Option<Forge>)>,
    private_pem: String,
    public_pem: String,
    jwk: Value,
}

/// A provider whose token endpoint answers with forged ID tokens.
#[derive(Clone)]
struct Forger {
    port: u16,
    state: Arc<Mutex<ForgerState>>,
}

impl Forger {
    async fn start() -> Option<Self> {
        const SCRIPT: &str = r#"
import json, sys
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
jwk = json.loads(RSAAlgorithm.to_jwk(k.public_key()))
jwk.update({"kid": "forger-1", "use": "sig", "alg": "RS256"})
print(json.dumps({
  "private": k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode(),
  "public": k.public_key().public_bytes(serialization.Encoding.PEM,
                             serialization.PublicFormat.SubjectPublicKeyInfo).decode(),
  "jwk": jwk}))
"#;
        let keys: Value = serde_json::from_str(&python("pyjwt", SCRIPT, "")?).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(ForgerState {
            issuer: format!("http://127.0.0.1:{port}"),
            private_pem: keys["private"].as_str().unwrap().to_owned(),
            public_pem: keys["public"].as_str().unwrap().to_owned(),
            jwk: keys["jwk"].clone(),
            ..ForgerState::default()
        }));
        let app = axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                axum::routing::get(Self::discovery),
            )
            .route("/jwks", axum::routing::get(Self::jwks))
            .route("/token", axum::routing::post(Self::token))
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Some(Self { port, state })
    }

    /// A forger and a fresh app asking it for `openid` only; `None` without PyJWT.
    async fn with_app(backend: Backend) -> Option<(Self, TestApp)> {
        let forger = Self::start().await?;
        let app = forger.app(backend, json!({ "scopes": ["openid"] })).await;
        Some((forger, app))
    }

    fn issuer(&self) -> String {
        self.state.lock().unwrap().issuer.clone()
    }

    /// A fresh app with this provider as `forger` (`extra` adds to its configuration).
    async fn app(&self, backend: Backend, extra: Value) -> TestApp {
        let p = provider("forger", &self.issuer(), extra);
        let port = self.port;
        spawn_app_with(backend, |c| {
            c.oidc.providers = vec![p];
            reach(c, vec![port]);
        })
        .await
        .expect("the app starts")
    }

    async fn discovery(State(s): State<Arc<Mutex<ForgerState>>>) -> axum::Json<Value> {
        let iss = s.lock().unwrap().issuer.clone();
        axum::Json(json!({
            "issuer": iss,
            "authorization_endpoint": format!("{iss}/authorize"),
            "token_endpoint": format!("{iss}/token"),
            "jwks_uri": format!("{iss}/jwks"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            // A provider saying it signs with HS256 too: never accepted all the same.
            "id_token_signing_alg_values_supported": ["RS256", "HS256"],
        }))
    }

    async fn jwks(State(s): State<Arc<Mutex<ForgerState>>>) -> axum::Json<Value> {
        axum::Json(json!({ "keys": [s.lock().unwrap().jwk.clone()] }))
    }

    /// The token endpoint: the code must be known and unused, and the verifier must match
    /// its challenge (S256), as at a real provider.
    async fn token(
        State(s): State<Arc<Mutex<ForgerState>>>,
        axum::Form(form): axum::Form<HashMap<String, String>>,
    ) -> (axum::http::StatusCode, axum::Json<Value>) {
        let bad = |e: &str| {
            (
                axum::http::StatusCode::BAD_REQUEST,
                axum::Json(json!({ "error": e })),
            )
        };
        let mut st = s.lock().unwrap();
        let code = form.get("code").cloned().unwrap_or_default();
        let Some((challenge, nonce, Some(mode))) = st.codes.get(&code).cloned() else {
            return bad("invalid_grant");
        };
        st.codes
            .insert(code, (challenge.clone(), nonce.clone(), None));
        let verifier = form.get("code_verifier").cloned().unwrap_or_default();
        if b64(&sha2::Sha256::digest(verifier.as_bytes())) != challenge {
            return bad("invalid_grant");
        }
        let now = conclave_core::SystemClock.now().timestamp();
        let mut claims = json!({
            "iss": st.issuer, "aud": CLIENT_ID, "sub": "forged-sub", "iat": now - 5,
            "exp": now + 300, "nonce": nonce, "email": "mallory@forger.example",
            "preferred_username": "mallory",
        });
        let rs256 = |claims: &Value| {
            let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
            header.kid = Some("forger-1".into());
            let key = jsonwebtoken::EncodingKey::from_rsa_pem(st.private_pem.as_bytes()).unwrap();
            jsonwebtoken::encode(&header, claims, &key).unwrap()
        };
        let id_token = match mode {
            Forge::Good => rs256(&claims),
            Forge::GoodVerified => {
                claims["sub"] = json!("verified-sub");
                claims["email_verified"] = json!(true);
                rs256(&claims)
            }
            Forge::WrongNonce => {
                claims["nonce"] = json!("another-nonce");
                rs256(&claims)
            }
            Forge::WrongAudience => {
                claims["aud"] = json!("another-client");
                rs256(&claims)
            }
            Forge::Expired => {
                claims["iat"] = json!(now - 900);
                claims["exp"] = json!(now - 600);
                rs256(&claims)
            }
            Forge::AlgNone => format!(
                "{}.{}.",
                b64(br#"{"alg":"none","typ":"JWT"}"#),
                b64(claims.to_string().as_bytes())
            ),
            Forge::Hs256WithPublicKey => jsonwebtoken::encode(
                &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
                &claims,
                &jsonwebtoken::EncodingKey::from_secret(st.public_pem.as_bytes()),
            )
            .unwrap(),
        };
        (
            axum::http::StatusCode::OK,
            axum::Json(json!({
                "access_token": "forged-access-token", "token_type": "Bearer",
                "expires_in": 300, "id_token": id_token,
            })),
        )
    }

    /// Starts a sign-in at `app` in `browser`, has the provider answer code `code` with
    /// `mode`, and follows the callback: where it leads.
    async fn sign_in(
        &self,
        app: &TestApp,
        browser: &reqwest::Client,
        code: &str,
        mode: Forge,
    ) -> String {
        self.sign_in_at(app, "forger", browser, code, mode).await
    }

    /// As [`Self::sign_in`], with this provider configured at `app` as `id`.
    async fn sign_in_at(
        &self,
        app: &TestApp,
        id: &str,
        browser: &reqwest::Client,
        code: &str,
        mode: Forge,
    ) -> String {
        let q = started(browser, &app.url(&format!("/api/v1/auth/oidc/{id}/start"))).await;
        // A code already used stays used.
        self.state
            .lock()
            .unwrap()
            .codes
            .entry(code.to_owned())
            .or_insert((q["code_challenge"].clone(), q["nonce"].clone(), Some(mode)));
        let back = format!(
            "{}?code={code}&state={}",
            app.url(&format!("/api/v1/auth/oidc/{id}/callback")),
            q["state"]
        );
        callback(browser, &back).await
    }
}

async fn forged_id_tokens_are_refused(app: TestApp) {
    let Some((forger, app)) = Forger::with_app(app.backend).await else {
        return;
    };
    let cases = [
        (Forge::WrongNonce, "w1"),
        (Forge::WrongAudience, "w2"),
        (Forge::Expired, "w3"),
        (Forge::AlgNone, "w4"),
        (Forge::Hs256WithPublicKey, "w5"),
    ];
    for (mode, code) in cases {
        assert_eq!(
            forger.sign_in(&app, &browser(), code, mode).await,
            "/#/signin?error=oidc_id_token_invalid",
            "{mode:?}"
        );
    }
    // A well-made token from the same provider signs in: the refusals were the tokens'.
    let b = browser();
    assert_eq!(forger.sign_in(&app, &b, "good", Forge::Good).await, "/");
    assert_eq!(session_user(&app, &b).await["username"], "mallory");
    // The code again, under a new state: the provider refuses it.
    assert_eq!(
        forger.sign_in(&app, &browser(), "good", Forge::Good).await,
        "/#/signin?error=oidc_code_rejected"
    );
    let failed = app.audit_of("auth.login&limit=100").await.items();
    let invalid = failed
        .iter()
        .filter(|e| e["detail"]["reason"] == "oidc_id_token_invalid")
        .count();
    assert_eq!(invalid, 5);
}

async fn link_existing_takes_only_a_verified_email(app: TestApp) {
    let Some(forger) = Forger::start().await else {
        return;
    };
    let extra = json!({
        "scopes": ["openid"], "create_users": false, "link_existing": "email_verified",
    });
    let app = forger.app(app.backend, extra).await;
    let body = json!({
        "username": "carol", "password": PASSWORD, "email": "Mallory@forger.example",
    });
    let carol = app
        .post_anon("/api/v1/auth/register", body)
        .await
        .expect(201);
    // An email the provider does not say it verified links nothing (and creates nothing).
    assert_eq!(
        forger.sign_in(&app, &browser(), "c1", Forge::Good).await,
        "/#/signin?error=sso_user_unknown"
    );
    // A verified one takes the one account with that email, and stays linked.
    let b = browser();
    assert_eq!(
        forger.sign_in(&app, &b, "c2", Forge::GoodVerified).await,
        "/"
    );
    assert_eq!(session_user(&app, &b).await["id"], carol.body["user"]["id"]);
    let linked = app.audit_of("sso.identity_linked").await.items();
    assert_eq!(linked.len(), 1);
    assert_eq!(linked[0]["detail"]["subject"], "verified-sub");
}

const ACCESS: &str = "the access code of this server";

async fn the_access_gate_holds_for_openid_sign_in(app: TestApp) {
    let port = free_port();
    let redirect = format!("http://127.0.0.1:{port}/api/v1/auth/oidc/node/callback");
    let Some(op) = node_op(&redirect, accounts()).await else {
        return;
    };
    let p = provider("node", &op.issuer, json!({}));
    let op_port = op.port;
    let app = spawn_app_with(app.backend, |c| {
        c.listen = format!("127.0.0.1:{port}");
        c.oidc.providers = vec![p];
        c.access_token = Some(secrecy::SecretString::from(ACCESS));
        reach(c, vec![op_port]);
    })
    .await
    .expect("the app starts");
    let start = app.url("/api/v1/auth/oidc/node/start");
    // Begun without the access token — a top-level navigation cannot send it, nor can a
    // script that does not know it — the flow never starts: no state, no cookie.
    let b = browser();
    let nav = b.get(&start).send().await.unwrap();
    assert_eq!(nav.status().as_u16(), 401);
    assert!(nav.headers().get("set-cookie").is_none());
    for token in [None, Some("wrong")] {
        let mut req = b.post(&start);
        if let Some(t) = token {
            req = req.header("x-api-access-token", t);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status().as_u16(), 401, "{token:?}");
        assert!(res.headers().get("set-cookie").is_none());
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "access_token_required");
    }
    // The callback is reachable without the header, but completes only a state this server
    // stored for a flow begun through the gate: anything else is a refused sign-in.
    let made_up = format!(
        "{}?code=x&state=made-up",
        app.url("/api/v1/auth/oidc/node/callback")
    );
    assert_eq!(
        callback(&b, &made_up).await,
        "/#/signin?error=oidc_state_mismatch"
    );
    let forged = app
        .client
        .get(&made_up)
        .header("cookie", "conclave_oidc=made-up")
        .send()
        .await
        .unwrap();
    assert_eq!(
        forged.headers()["location"],
        "/#/signin?error=oidc_state_invalid"
    );
    // Begun with it (as the web client does: a POST that carries the header, then a
    // navigation to the provider), the sign-in completes against the real provider.
    let res = b
        .post(&start)
        .header("x-api-access-token", ACCESS)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let set_cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"));
    let url = res.json::<Value>().await.unwrap()["url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(url.starts_with(&op.issuer), "{url}");
    let back = from_provider(&app, &b, "op-alice", url).await;
    assert_eq!(callback(&b, &back).await, "/");
    // The session it made is behind the gate like every other.
    let session = app.url("/api/v1/auth/session");
    let res = b.get(&session).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 401);
    let res = b
        .get(&session)
        .header("x-api-access-token", ACCESS)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let me: Value = res.json().await.unwrap();
    assert_eq!(me["user"]["username"], "opalice");
    // Failures on the callback are sign-in failures all the same: audited.
    let audit = app
        .send(
            app.client
                .get(app.url("/api/v1/admin/audit?event=auth.login&limit=100"))
                .bearer_auth(ADMIN_TOKEN)
                .header("x-api-access-token", ACCESS),
        )
        .await
        .expect(200);
    let reasons: Vec<Value> = audit
        .items()
        .into_iter()
        .filter(|e| e["outcome"] == "failure")
        .map(|e| e["detail"]["reason"].clone())
        .collect();
    assert!(
        reasons.contains(&json!("oidc_state_mismatch")),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&json!("oidc_state_invalid")),
        "{reasons:?}"
    );
}

/// The CSRF token of `browser`'s cookie session.
async fn csrf(app: &TestApp, browser: &reqwest::Client) -> String {
    let res = browser
        .get(app.url("/api/v1/auth/session"))
        .send()
        .await
        .unwrap();
    res.json::<Value>().await.unwrap()["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn erased_accounts_come_back_only_as_new_ones(app: TestApp) {
    let Some((forger, app)) = Forger::with_app(app.backend).await else {
        return;
    };
    let b = browser();
    assert_eq!(forger.sign_in(&app, &b, "e1", Forge::Good).await, "/");
    let old = session_user(&app, &b).await;
    // No password (made by the provider), a sign-in just now: the browser erases it.
    let token = csrf(&app, &b).await;
    let res = b
        .delete(app.url("/api/v1/users/@me"))
        .header("x-csrf-token", token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 204);
    let res = b.get(app.url("/api/v1/auth/session")).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 401);
    let id = old["id"].as_str().unwrap();
    let identities = app
        .get(&format!("/api/v1/admin/users/{id}/identities"), ADMIN_TOKEN)
        .await;
    assert!(identities.status.as_u16() == 404 || identities.items().is_empty());
    // The provider still vouching for the same subject reaches a new, empty account (its
    // creation audited), never the erased one.
    let again = browser();
    assert_eq!(forger.sign_in(&app, &again, "e2", Forge::Good).await, "/");
    let new = session_user(&app, &again).await;
    assert_ne!(new["id"], old["id"]);
    let registered = app.audit_of("user.registered").await.items();
    assert_eq!(registered.len(), 2, "{registered:?}");
}

async fn several_providers_at_once_keep_their_identities_apart(app: TestApp) {
    let (Some(one), Some(two)) = (Forger::start().await, Forger::start().await) else {
        return;
    };
    let admin_email = "mallory@forger.example";
    let p1 = provider(
        "one",
        &one.issuer(),
        json!({ "scopes": ["openid"], "name": "One" }),
    );
    let p2 = provider(
        "two",
        &two.issuer(),
        json!({ "scopes": ["openid"], "create_users": false, "link_existing": "email_verified" }),
    );
    let ports = vec![one.port, two.port];
    let app = spawn_app_with(app.backend, |c| {
        c.oidc.providers = vec![p1, p2];
        reach(c, ports);
    })
    .await
    .expect("the app starts");
    let caps = app.get_anon("/api/v1/capabilities").await.expect(200);
    assert_eq!(
        caps.body["auth"]["providers"],
        json!([
            {"id": "one", "name": "One", "kind": "oidc"},
            {"id": "two", "name": "two", "kind": "oidc"},
        ])
    );
    // A server admin with the email both providers claim is never taken over, though the
    // second one links by verified email; nor does an unverified claim link anything, and the
    // second provider creates no account (its rules say no).
    app.post(
        "/api/v1/admin/users",
        ADMIN_TOKEN,
        json!({"username": "ops", "password": PASSWORD, "email": admin_email,
               "server_admin": true}),
    )
    .await
    .expect(201);
    for (code, mode) in [("b1", Forge::GoodVerified), ("b2", Forge::Good)] {
        assert_eq!(
            two.sign_in_at(&app, "two", &browser(), code, mode).await,
            "/#/signin?error=sso_user_unknown",
            "{mode:?}"
        );
    }
    // The first provider creates an account for its subject, and finds it again.
    let b = browser();
    assert_eq!(
        one.sign_in_at(&app, "one", &b, "a1", Forge::Good).await,
        "/"
    );
    let from_one = session_user(&app, &b).await;
    assert_eq!(from_one["username"], "mallory");
    let c = browser();
    assert_eq!(
        one.sign_in_at(&app, "one", &c, "a2", Forge::Good).await,
        "/"
    );
    assert_eq!(session_user(&app, &c).await["id"], from_one["id"]);
    let id = from_one["id"].as_str().unwrap();
    let identities = app
        .get(&format!("/api/v1/admin/users/{id}/identities"), ADMIN_TOKEN)
        .await
        .expect(200)
        .items();
    assert_eq!(identities.len(), 1);
    assert_eq!(identities[0]["provider"], one.issuer());
}

async fn openid_failures_count_toward_the_address_back_off(app: TestApp) {
    let Some((forger, app)) = Forger::with_app(app.backend).await else {
        return;
    };
    // A callback names nobody before it is verified, so only the address's counter (AUTH-5's
    // per-address rule: 50 free failures) holds it back — 100 refusals in parallel, each
    // audited, then even a good sign-in from that address waits.
    let refused = format!(
        "{}?error=access_denied",
        app.url("/api/v1/auth/oidc/forger/callback")
    );
    let b = browser();
    let answers = futures::future::join_all((0..100).map(|_| callback(&b, &refused))).await;
    let provider_error = answers
        .iter()
        .filter(|a| *a == "/#/signin?error=oidc_provider_error")
        .count();
    let held = answers
        .iter()
        .filter(|a| *a == "/#/signin?error=too_many_attempts")
        .count();
    assert_eq!(provider_error + held, 100, "{answers:?}");
    assert_eq!(provider_error, 50, "exactly the free failures were checked");
    assert_eq!(
        forger.sign_in(&app, &browser(), "late", Forge::Good).await,
        "/#/signin?error=too_many_attempts"
    );
    let failed = app
        .audit_of("auth.login&limit=100")
        .await
        .items()
        .into_iter()
        .filter(|e| e["outcome"] == "failure" && e["detail"]["reason"] == "oidc_provider_error")
        .count();
    assert_eq!(failed, provider_error);
}

async fn a_state_begun_outside_the_gate_is_not_completed_through_it(app: TestApp) {
    let Some((forger, open)) = Forger::with_app(app.backend).await else {
        return;
    };
    // A second node on the same database and keys, with the gate on (as after turning it on).
    let p = provider("forger", &forger.issuer(), json!({ "scopes": ["openid"] }));
    let port = forger.port;
    let gated = spawn_app_with(open.backend, |c| {
        c.oidc.providers = vec![p];
        reach(c, vec![port]);
        c.access_token = Some(secrecy::SecretString::from(ACCESS));
        c.data_dir = open.data_dir.clone();
        c.database_url = open.database_url.clone();
    })
    .await
    .expect("the gated node starts");
    let b = browser();
    let q = started(&b, &open.url("/api/v1/auth/oidc/forger/start")).await;
    forger.state.lock().unwrap().codes.insert(
        "g1".into(),
        (
            q["code_challenge"].clone(),
            q["nonce"].clone(),
            Some(Forge::Good),
        ),
    );
    let path = format!(
        "/api/v1/auth/oidc/forger/callback?code=g1&state={}",
        q["state"]
    );
    // The browser holds the state's cookie (cookies ignore ports), but the state was begun
    // outside the gate: through the gated node it is not found.
    assert_eq!(
        callback(&b, &gated.url(&path)).await,
        "/#/signin?error=oidc_state_invalid"
    );
    // It was a good state all the same: on the node it was begun on, it completes.
    let done = open
        .client
        .get(open.url(&path))
        .header("cookie", format!("conclave_oidc={}", q["state"]))
        .send()
        .await
        .unwrap();
    assert_eq!(done.headers()["location"], "/");
}
