//! A provider written here: its token endpoint checks PKCE like a real one but answers with
//! the ID token a test asks for, signed with its published RSA key unless forged otherwise.

use super::*;
use crate::python::python;
use axum::extract::State;
use base64::Engine as _;
use conclave_core::Clock;
use sha2::Digest;
use std::sync::{Arc, Mutex};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// What the forging provider does at its token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Forge {
    Good,
    /// A good token whose provider says it verified the email.
    GoodVerified,
    /// As `GoodVerified`, for the subject given (the same verified email).
    VerifiedAs(&'static str),
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
pub(super) struct Forger {
    pub(super) port: u16,
    state: Arc<Mutex<ForgerState>>,
}

impl Forger {
    pub(super) async fn start() -> Option<Self> {
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
    pub(super) async fn with_app(backend: Backend) -> Option<(Self, TestApp)> {
        let forger = Self::start().await?;
        let app = forger
            .app(backend, json!({ "scopes": ["openid"] }), |_| {})
            .await;
        Some((forger, app))
    }

    pub(super) fn issuer(&self) -> String {
        self.state.lock().unwrap().issuer.clone()
    }

    /// A fresh app with this provider as `forger` (`extra` adds to its configuration, `tweak`
    /// to the app's).
    pub(super) async fn app(
        &self,
        backend: Backend,
        extra: Value,
        tweak: impl FnOnce(&mut Config),
    ) -> TestApp {
        let p = provider("forger", &self.issuer(), extra);
        let port = self.port;
        spawn_app_with(backend, |c| {
            c.oidc.providers = vec![p];
            reach(c, vec![port]);
            tweak(c);
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
            Forge::VerifiedAs(sub) => {
                claims["sub"] = json!(sub);
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
    pub(super) async fn sign_in(
        &self,
        app: &TestApp,
        browser: &reqwest::Client,
        code: &str,
        mode: Forge,
    ) -> String {
        self.sign_in_at(app, "forger", browser, code, mode).await
    }

    /// As [`Self::sign_in`], with this provider configured at `app` as `id`.
    pub(super) async fn sign_in_at(
        &self,
        app: &TestApp,
        id: &str,
        browser: &reqwest::Client,
        code: &str,
        mode: Forge,
    ) -> String {
        let q = started(browser, &app.url(&format!("/api/v1/auth/oidc/{id}/start"))).await;
        self.answer(code, &q, mode);
        let back = format!(
            "{}?code={code}&state={}",
            app.url(&format!("/api/v1/auth/oidc/{id}/callback")),
            q["state"]
        );
        callback(browser, &back).await
    }

    /// Has the token endpoint answer `code`, for the sign-in whose provider URL had the query
    /// `q`, with `mode` (a code already used stays used).
    pub(super) fn answer(&self, code: &str, q: &HashMap<String, String>, mode: Forge) {
        self.state
            .lock()
            .unwrap()
            .codes
            .entry(code.to_owned())
            .or_insert((q["code_challenge"].clone(), q["nonce"].clone(), Some(mode)));
    }
}
