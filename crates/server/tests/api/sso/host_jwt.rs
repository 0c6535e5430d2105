//! AUTH-11 over HTTP: `POST /api/v1/auth/jwt` with tokens minted by PyJWT (HS256 with a shared
//! secret, RS256 from a JWKS served locally and rotated, EdDSA with a configured public key),
//! every refusal audited and counted, single use under 100 parallel replays, and disabled or
//! erased accounts kept out.

use super::jwks::JwksServer;
use crate::both_backends;
use crate::helpers::*;
use crate::python::python;
use conclave_core::Clock;
use conclave_server::config::{Config, HostJwtConfig, OnOff};
use serde_json::{json, Value};

both_backends!(
    pyjwt_tokens_sign_in_as_one_linked_account,
    pyjwt_keys_from_a_jwks_rotate_and_public_keys_verify,
    bad_tokens_are_refused_audited_and_counted,
    single_use_tokens_sign_in_once_under_100_parallel_replays,
    disabled_and_erased_accounts_cannot_get_in_with_a_jwt,
    unknown_subjects_need_create_users,
    a_jwt_user_with_2fa_gets_the_second_factor_step,
    accounts_without_a_password_erase_only_after_a_recent_sign_in,
    single_use_token_ids_are_spent_on_every_node,
);

const SECRET: &str = "the acme host secret, 32 bytes or more";
const AUD: &str = "https://chat.example";

/// Tokens minted by PyJWT, and the public halves of the keys it made (`rsa*`: RSA 2048,
/// `ed*`: Ed25519), as JWKs (`kid` = the key's name) and PEM.
struct Minted {
    tokens: Vec<String>,
    jwks: Value,
    pem: Value,
}

/// Mints one token per spec `{"key": "secret"|<key name>, "alg", "kid"?, "claims"}`.
fn mint(specs: Value) -> Option<Minted> {
    const SCRIPT: &str = r#"
import json, sys, jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from jwt.algorithms import OKPAlgorithm, RSAAlgorithm
req = json.load(sys.stdin)
keys = {}
def key(name):
    if name not in keys:
        keys[name] = (rsa.generate_private_key(public_exponent=65537, key_size=2048)
                      if name.startswith("rsa") else ed25519.Ed25519PrivateKey.generate())
    return keys[name]
out = {"tokens": [], "jwks": {}, "pem": {}}
for spec in req["specs"]:
    k = req["secret"] if spec["key"] == "secret" else key(spec["key"])
    headers = {"kid": spec["kid"]} if spec.get("kid") else None
    out["tokens"].append(jwt.encode(spec["claims"], k, algorithm=spec["alg"], headers=headers))
for name, k in keys.items():
    pub = k.public_key()
    algo = RSAAlgorithm if name.startswith("rsa") else OKPAlgorithm
    jwk = json.loads(algo.to_jwk(pub))
    jwk["kid"] = name
    out["jwks"][name] = jwk
    out["pem"][name] = pub.public_bytes(serialization.Encoding.PEM,
        serialization.PublicFormat.SubjectPublicKeyInfo).decode()
print(json.dumps(out))
"#;
    let input = json!({ "secret": SECRET, "specs": specs }).to_string();
    let out: Value = serde_json::from_str(&python("pyjwt", SCRIPT, &input)?).unwrap();
    Some(Minted {
        tokens: out["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_owned())
            .collect(),
        jwks: out["jwks"].clone(),
        pem: out["pem"].clone(),
    })
}

fn now() -> i64 {
    conclave_core::SystemClock.now().timestamp()
}

/// Claims of a good token for `sub` of `iss`, issued now for two minutes.
fn claims(iss: &str, sub: &str) -> Value {
    let t = now();
    json!({"iss": iss, "aud": AUD, "sub": sub, "iat": t - 5, "exp": t + 120})
}

/// `claims` with `key` set to `value` (removed when `value` is null).
pub fn with(mut claims: Value, key: &str, value: Value) -> Value {
    if value.is_null() {
        claims.as_object_mut().unwrap().remove(key);
    } else {
        claims[key] = value;
    }
    claims
}

fn hs(claims: Value) -> Value {
    json!({"key": "secret", "alg": "HS256", "claims": claims})
}

/// A `[[host_jwt]]` as an operator writes it; `extra` adds or overrides keys.
fn host(id: &str, extra: Value) -> HostJwtConfig {
    let mut h = json!({
        "id": id, "issuer": format!("https://{id}.example"), "audience": AUD,
        "algorithms": ["HS256"], "secret": SECRET, "create_users": true,
    });
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            h.as_object_mut().unwrap().remove(k);
        } else {
            h[k] = v.clone();
        }
    }
    serde_json::from_value(h).unwrap()
}

/// A fresh app with `hosts`, behind a trusted loopback proxy (clients set by
/// `X-Forwarded-For`), request rate limits off (only AUTH-5 answers), and the SSRF guard letting
/// through the local JWKS server's port.
async fn jwt_app(backend: Backend, hosts: Vec<HostJwtConfig>, jwks_port: Option<u16>) -> TestApp {
    spawn_app_with(backend, |c: &mut Config| {
        c.host_jwt = hosts;
        c.rate_limits = OnOff::Off;
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        if let Some(port) = jwks_port {
            c.webhook_allow_cidrs = vec!["127.0.0.1/32".parse().unwrap()];
            c.webhook_allow_ports = vec![port];
        }
    })
    .await
    .expect("the app starts")
}

/// The failed sign-ins in the audit log, newest first.
async fn failures(app: &TestApp) -> Vec<Value> {
    let all = app.audit_of("auth.login&limit=100").await.items();
    all.into_iter()
        .filter(|e| e["outcome"] == "failure")
        .collect()
}

async fn jwt_from(app: &TestApp, ip: &str, body: Value) -> Res {
    app.send(
        app.client
            .post(app.url("/api/v1/auth/jwt"))
            .header("x-forwarded-for", ip)
            .json(&body),
    )
    .await
}

async fn sign_in(app: &TestApp, token: &str) -> Res {
    jwt_from(app, "10.0.0.1", json!({ "token": token })).await
}

/// The user a successful sign-in answered with, checked by `GET /users/@me` with its token.
async fn me(app: &TestApp, res: Res) -> Value {
    let res = res.expect(200);
    let token = res.string("token");
    let me = app.get("/api/v1/users/@me", &token).await.expect(200);
    assert_eq!(me.body["id"], res.body["user"]["id"]);
    me.body
}

async fn pyjwt_tokens_sign_in_as_one_linked_account(app: TestApp) {
    let iss = "https://acme.example";
    let profile = |sub: &str| {
        let c = claims(iss, sub);
        let c = with(c, "preferred_username", json!("hostalice"));
        with(
            with(c, "name", json!("Alice Host")),
            "email",
            json!("alice@acme.example"),
        )
    };
    let Some(m) = mint(json!([
        hs(profile("u-1")),
        hs(profile("u-1")),
        hs(profile("u-2")),
        hs(claims(iss, "u-1")),
    ])) else {
        return;
    };
    let app = jwt_app(app.backend, vec![host("acme", json!({}))], None).await;
    let first = me(&app, sign_in(&app, &m.tokens[0]).await).await;
    assert_eq!(first["username"], "hostalice");
    assert_eq!(first["display_name"], "Alice Host");
    // The same subject again is the same account; another subject with the same wished-for
    // name gets its own account under another name.
    let again = me(&app, sign_in(&app, &m.tokens[1]).await).await;
    assert_eq!(again["id"], first["id"]);
    let other = me(&app, sign_in(&app, &m.tokens[2]).await).await;
    assert_ne!(other["id"], first["id"]);
    assert!(other["username"]
        .as_str()
        .unwrap()
        .starts_with("hostalice-"));
    // Browsers get the cookie and a CSRF token, as with a password.
    let cookie = jwt_from(
        &app,
        "10.0.0.1",
        json!({"token": m.tokens[3], "cookie": true}),
    )
    .await
    .expect(200);
    assert!(cookie.body["token"].is_null());
    assert!(cookie.body["csrf_token"].is_string());
    let set_cookie = cookie.headers["set-cookie"].to_str().unwrap();
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"));
    assert_eq!(cookie.body["user"]["id"], first["id"]);
    // Audited with the method; the account's linked identity is shown to server admins.
    let logins = app.audit_of("auth.login&limit=100").await.items();
    let by_jwt = logins
        .iter()
        .filter(|e| e["outcome"] == "success" && e["detail"]["method"] == "host_jwt")
        .count();
    assert_eq!(by_jwt, 4, "{logins:?}");
    let linked = app.audit_of("sso.identity_linked").await.items();
    assert_eq!(linked.len(), 2, "one link per subject");
    let id = first["id"].as_str().unwrap();
    let identities = app
        .get(&format!("/api/v1/admin/users/{id}/identities"), ADMIN_TOKEN)
        .await
        .expect(200);
    let items = identities.items();
    assert_eq!(items.len(), 1, "{}", identities.body);
    assert_eq!(items[0]["kind"], "host_jwt");
    assert_eq!(items[0]["provider"], "acme");
    assert_eq!(items[0]["subject"], "u-1");
    // Nobody else reads them.
    let token = sign_in(&app, &m.tokens[1])
        .await
        .expect(200)
        .string("token");
    app.get(&format!("/api/v1/admin/users/{id}/identities"), &token)
        .await
        .expect_error(403, "forbidden");
}

async fn pyjwt_keys_from_a_jwks_rotate_and_public_keys_verify(app: TestApp) {
    let (rs, ed) = ("https://rs.example", "https://ed.example");
    let Some(m) = mint(json!([
        {"key": "rsa1", "alg": "RS256", "kid": "rsa1", "claims": claims(rs, "r-1")},
        {"key": "rsa2", "alg": "RS256", "kid": "rsa2", "claims": claims(rs, "r-1")},
        {"key": "rsa3", "alg": "RS256", "kid": "rsa3", "claims": claims(rs, "r-1")},
        {"key": "ed1", "alg": "EdDSA", "claims": claims(ed, "e-1")},
        {"key": "rsa1", "alg": "RS256", "kid": "rsa1", "claims": claims(ed, "e-1")},
    ])) else {
        return;
    };
    let server = JwksServer::start(json!([m.jwks["rsa1"]])).await;
    let hosts = vec![
        host(
            "rs",
            json!({"algorithms": ["RS256"], "secret": null, "jwks_url": server.url()}),
        ),
        host(
            "ed",
            json!({"algorithms": ["EdDSA"], "secret": null, "public_key": m.pem["ed1"]}),
        ),
    ];
    let app = jwt_app(app.backend, hosts, Some(server.port)).await;
    let first = me(&app, sign_in(&app, &m.tokens[0]).await).await;
    assert_eq!(server.fetches(), 1);
    // Cached: no second fetch.
    sign_in(&app, &m.tokens[0]).await.expect(200);
    assert_eq!(server.fetches(), 1);
    // The host rotates to rsa2: the unknown kid refetches once, then the new key verifies.
    server.serve(json!([m.jwks["rsa2"]]));
    app.clock.advance(chrono::Duration::seconds(31));
    let rotated = me(&app, sign_in(&app, &m.tokens[1]).await).await;
    assert_eq!(rotated["id"], first["id"]);
    assert_eq!(server.fetches(), 2);
    // The retired key no longer verifies, and unknown kids refetch at most once per 30 s.
    for token in [&m.tokens[0], &m.tokens[2], &m.tokens[2]] {
        jwt_from(&app, "10.0.0.2", json!({ "token": token }))
            .await
            .expect_error(401, "jwt_unknown_key");
    }
    assert_eq!(server.fetches(), 2, "within 30 s of the last fetch");
    // EdDSA with the configured public key; an RS256 token for that host is refused.
    me(&app, sign_in(&app, &m.tokens[3]).await).await;
    sign_in(&app, &m.tokens[4])
        .await
        .expect_error(401, "jwt_algorithm_not_allowed");
    // HS256 "signed" with the RSA public key (algorithm confusion) and `alg: none`.
    let pem = m.pem["rsa2"].as_str().unwrap();
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims(rs, "r-1"),
        &jsonwebtoken::EncodingKey::from_secret(pem.as_bytes()),
    )
    .unwrap();
    sign_in(&app, &forged)
        .await
        .expect_error(401, "jwt_algorithm_not_allowed");
    use base64::Engine as _;
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let none = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "JWT"})),
        b64(claims(rs, "r-1"))
    );
    sign_in(&app, &none)
        .await
        .expect_error(401, "jwt_malformed");
}

async fn bad_tokens_are_refused_audited_and_counted(app: TestApp) {
    let iss = "https://acme.example";
    let c = || claims(iss, "victim");
    let t = now();
    let cases = [
        (with(c(), "exp", json!(t - 60)), "jwt_expired"),
        (
            with(c(), "aud", json!("https://other.example")),
            "jwt_wrong_audience",
        ),
        (
            with(c(), "iss", json!("https://evil.example")),
            "jwt_unknown_issuer",
        ),
        (with(c(), "iat", json!(null)), "jwt_missing_claim"),
        (with(c(), "sub", json!(null)), "jwt_missing_claim"),
        (with(c(), "iat", json!(t + 120)), "jwt_not_yet_valid"),
        (with(c(), "exp", json!(t + 3600)), "jwt_lifetime_too_long"),
    ];
    let mut specs: Vec<Value> = cases.iter().map(|(c, _)| hs(c.clone())).collect();
    specs.push(hs(c()));
    specs.push(json!({"key": "secret", "alg": "HS512", "claims": c()}));
    let Some(m) = mint(Value::Array(specs)) else {
        return;
    };
    let app = jwt_app(app.backend, vec![host("acme", json!({}))], None).await;
    for (i, (_, code)) in cases.iter().enumerate() {
        jwt_from(
            &app,
            &format!("10.1.0.{i}"),
            json!({ "token": m.tokens[i] }),
        )
        .await
        .check(401, Some(code), code);
    }
    let good = &m.tokens[cases.len()];
    let tampered = format!("{}x", &good[..good.len() - 1]);
    sign_in(&app, &tampered)
        .await
        .expect_error(401, "jwt_bad_signature");
    sign_in(&app, &m.tokens[cases.len() + 1])
        .await
        .expect_error(401, "jwt_algorithm_not_allowed");
    jwt_from(&app, "10.0.0.1", json!({ "token": "" }))
        .await
        .expect_error(401, "jwt_malformed");
    jwt_from(&app, "10.0.0.1", json!({ "token": 5 }))
        .await
        .expect(422);
    // Every refusal is a failed sign-in in the audit log, with its reason.
    let failed = failures(&app).await;
    let reasons: Vec<&str> = failed
        .iter()
        .filter_map(|e| e["detail"]["reason"].as_str())
        .collect();
    for (_, code) in &cases {
        assert!(reasons.contains(code), "{code} in {reasons:?}");
    }
    assert!(failed.iter().all(|e| e["detail"]["method"] == "host_jwt"));
    // Counted like wrong passwords (AUTH-5): from one address, for the subject the tokens
    // claim, the fifth failure starts the back-off — and then even a good token waits.
    for _ in 0..5 {
        jwt_from(&app, "10.9.9.9", json!({ "token": tampered }))
            .await
            .expect_error(401, "jwt_bad_signature");
    }
    jwt_from(&app, "10.9.9.9", json!({ "token": good }))
        .await
        .expect_error(429, "too_many_attempts");
    // Another address is not held back by them.
    jwt_from(&app, "10.9.9.10", json!({ "token": good }))
        .await
        .expect(200);
}

async fn single_use_tokens_sign_in_once_under_100_parallel_replays(app: TestApp) {
    let iss = "https://acme.example";
    let with_jti = |sub: &str, jti: &str| with(claims(iss, sub), "jti", json!(jti));
    let Some(m) = mint(json!([
        hs(with_jti("u-1", "once")),
        hs(with_jti("u-1", "twice")),
        hs(claims(iss, "u-1")),
    ])) else {
        return;
    };
    let hosts = vec![host("acme", json!({"single_use": true}))];
    let app = jwt_app(app.backend, hosts, None).await;
    let answers = futures::future::join_all((0..100).map(|i| {
        let ip = format!("10.2.{}.{}", i / 50, i % 50);
        let app = &app;
        let token = m.tokens[0].clone();
        async move { jwt_from(app, &ip, json!({ "token": token })).await }
    }))
    .await;
    let signed_in = answers.iter().filter(|r| r.status.as_u16() == 200).count();
    assert_eq!(
        signed_in, 1,
        "exactly one session from one single-use token"
    );
    // The others are replays — or, once the replays in the subject's name pile up, held back
    // by the sign-in counters (AUTH-5) before they are even checked.
    let mut replayed = 0;
    for r in answers.iter().filter(|r| r.status.as_u16() != 200) {
        match r.status.as_u16() {
            401 => {
                assert_eq!(r.code(), "token_replayed", "{}", r.body);
                replayed += 1;
            }
            429 => assert_eq!(r.code(), "too_many_attempts", "{}", r.body),
            other => panic!("{other}: {}", r.body),
        }
    }
    assert!(replayed >= 1);
    // Past the subject's back-off (two minutes at most across addresses), another token id
    // signs in; the spent one stays spent; a token without an id is refused.
    app.clock.advance(chrono::Duration::seconds(130));
    sign_in(&app, &m.tokens[1]).await.expect(200);
    sign_in(&app, &m.tokens[0])
        .await
        .expect_error(401, "token_replayed");
    sign_in(&app, &m.tokens[2])
        .await
        .expect_error(401, "jwt_missing_claim");
}

async fn disabled_and_erased_accounts_cannot_get_in_with_a_jwt(app: TestApp) {
    let iss = "https://acme.example";
    let named = |sub: &str, name: &str| with(claims(iss, sub), "preferred_username", json!(name));
    let Some(m) = mint(json!([
        hs(named("b-1", "hostbob")),
        hs(named("b-1", "hostbob")),
        hs(named("b-1", "hostbob")),
        hs(named("c-1", "hostcarol")),
        hs(named("c-1", "hostcarol")),
    ])) else {
        return;
    };
    let app = jwt_app(app.backend, vec![host("acme", json!({}))], None).await;
    let bob_res = sign_in(&app, &m.tokens[0]).await.expect(200);
    let bob = User {
        name: "hostbob".into(),
        id: bob_res.body["user"]["id"].as_str().unwrap().to_owned(),
        token: bob_res.string("token"),
    };
    app.set_disabled(ADMIN_TOKEN, &bob, true).await;
    sign_in(&app, &m.tokens[1])
        .await
        .expect_error(403, "account_disabled");
    app.get("/api/v1/users/@me", &bob.token)
        .await
        .expect_error(401, "invalid_token");
    app.set_disabled(ADMIN_TOKEN, &bob, false).await;
    sign_in(&app, &m.tokens[2]).await.expect(200);
    // Carol erases her account (no password: her sign-in is recent); the host still vouching
    // for her subject reaches a new, empty account, never the erased one, and her old
    // session is gone.
    let carol = sign_in(&app, &m.tokens[3]).await.expect(200);
    let (carol_id, carol_token) = (
        carol.body["user"]["id"].as_str().unwrap().to_owned(),
        carol.string("token"),
    );
    crate::privacy::erase(&app, &carol_token, json!({}))
        .await
        .expect(204);
    app.get("/api/v1/users/@me", &carol_token)
        .await
        .expect_error(401, "invalid_token");
    let identities = app
        .get(
            &format!("/api/v1/admin/users/{carol_id}/identities"),
            ADMIN_TOKEN,
        )
        .await
        .expect(200);
    assert!(identities.items().is_empty(), "erasure unlinks");
    let fresh = sign_in(&app, &m.tokens[4]).await.expect(200);
    assert_ne!(fresh.body["user"]["id"], json!(carol_id));
}

async fn unknown_subjects_need_create_users(app: TestApp) {
    let iss = "https://acme.example";
    let Some(m) = mint(json!([hs(claims(iss, "nobody"))])) else {
        return;
    };
    // A server with no host apps has no such route to speak of.
    sign_in(&app, &m.tokens[0])
        .await
        .expect_error(404, "not_found");
    let hosts = vec![host("acme", json!({"create_users": false}))];
    let app = jwt_app(app.backend, hosts, None).await;
    sign_in(&app, &m.tokens[0])
        .await
        .expect_error(401, "sso_user_unknown");
    let failed = failures(&app).await;
    assert_eq!(failed[0]["detail"]["reason"], "sso_user_unknown");
}

async fn a_jwt_user_with_2fa_gets_the_second_factor_step(app: TestApp) {
    let iss = "https://acme.example";
    let Some(m) = mint(json!([hs(claims(iss, "d-1")), hs(claims(iss, "d-1"))])) else {
        return;
    };
    let app = jwt_app(app.backend, vec![host("acme", json!({}))], None).await;
    let owner = app.user("owner").await;
    let org = app.org(&owner, "Acme").await;
    let res = sign_in(&app, &m.tokens[0]).await.expect(200);
    let dave = User {
        name: "dave".into(),
        id: res.body["user"]["id"].as_str().unwrap().to_owned(),
        token: res.string("token"),
    };
    // An org that requires 2FA holds the SSO session back like any other (AUTH-4a).
    app.add_member(&org, &owner, &dave, "member").await;
    crate::mfa::enable_2fa(&app, &owner).await;
    app.update_org(&org, &owner, json!({"require_2fa": true}))
        .await
        .expect(200);
    let acme = format!("/api/v1/orgs/{org}");
    app.get(&acme, &dave.token)
        .await
        .expect_error(403, "mfa_setup_required");
    let (secret, _) = crate::mfa::enable_2fa(&app, &dave).await;
    app.get(&acme, &dave.token).await.expect(200);
    let challenge = sign_in(&app, &m.tokens[1]).await.expect(200);
    assert_eq!(challenge.body["mfa_required"], true);
    assert!(challenge.body["token"].is_null());
    let code = crate::mfa::code_at(&app, &secret, 0);
    let done = app
        .post_anon(
            "/api/v1/auth/login/mfa",
            json!({"mfa_token": challenge.body["mfa_token"], "code": code}),
        )
        .await
        .expect(200);
    assert_eq!(done.body["user"]["id"], json!(dave.id));
    // An ordinary session (AUTH-2): listed among his sessions, revocable, and erasure asks
    // it for a second factor too, though the sign-in was recent.
    let token = done.string("token");
    let sessions = app.get("/api/v1/auth/sessions", &token).await.expect(200);
    let current: Vec<Value> = sessions
        .items()
        .into_iter()
        .filter(|s| s["current"] == true)
        .collect();
    assert_eq!(current.len(), 1, "{}", sessions.body);
    let res = crate::privacy::erase(&app, &token, json!({}))
        .await
        .expect_error(422, "required");
    assert_eq!(res.field(), Some("/code"));
    let first = app
        .get("/api/v1/auth/session", &dave.token)
        .await
        .expect(200);
    let first_id = first.body["session"]["id"].as_str().unwrap().to_owned();
    app.delete(&format!("/api/v1/auth/sessions/{first_id}"), &token)
        .await
        .expect(204);
    app.get(&acme, &dave.token)
        .await
        .expect_error(401, "invalid_token");
    crate::mfa::next_step(&app);
    let code = crate::mfa::code_at(&app, &secret, 0);
    crate::privacy::erase(&app, &token, json!({ "code": code }))
        .await
        .expect(204);
}

/// Claims of a good token for `sub` of `iss`, issued `ahead` seconds from now (for a server
/// whose clock a test moved on).
fn claims_at(iss: &str, sub: &str, ahead: i64) -> Value {
    let t = now() + ahead;
    json!({"iss": iss, "aud": AUD, "sub": sub, "iat": t - 5, "exp": t + 120})
}

async fn accounts_without_a_password_erase_only_after_a_recent_sign_in(app: TestApp) {
    let iss = "https://acme.example";
    let named = |c: Value| with(c, "preferred_username", json!("hostdan"));
    let later = 11 * 60;
    let Some(m) = mint(json!([
        hs(named(claims(iss, "d-1"))),
        hs(named(claims_at(iss, "d-1", later))),
    ])) else {
        return;
    };
    let app = jwt_app(app.backend, vec![host("acme", json!({}))], None).await;
    let admin = app.bootstrap().await;
    let res = sign_in(&app, &m.tokens[0]).await.expect(200);
    let dan = User {
        name: "hostdan".into(),
        id: res.body["user"]["id"].as_str().unwrap().to_owned(),
        token: res.string("token"),
    };
    // The client learns what erasure will ask: no password here, one for the admin.
    let session = app
        .get("/api/v1/auth/session", &dan.token)
        .await
        .expect(200);
    assert_eq!(session.body["has_password"], false);
    let session = app
        .get("/api/v1/auth/session", &admin.token)
        .await
        .expect(200);
    assert_eq!(session.body["has_password"], true);
    // A password is not what this account confirms with.
    let res = crate::privacy::erase(&app, &dan.token, json!({ "password": PASSWORD }))
        .await
        .expect_error(422, "not_set");
    assert_eq!(res.field(), Some("/password"));
    // Eleven minutes on, the session is too old to stand for a sign-in: refused, saying how to
    // go on, audited as denied; nothing erased.
    app.clock.advance(chrono::Duration::seconds(later));
    let res = crate::privacy::erase(&app, &dan.token, json!({}))
        .await
        .expect_error(403, "reauthentication_required");
    assert!(res.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("sign in again"));
    let denied = app.audit_of("user.erased").await.items();
    assert!(
        denied
            .iter()
            .any(|e| e["outcome"] == "denied" && e["detail"]["reason"] == "sign_in_not_recent"),
        "{denied:?}"
    );
    app.get("/api/v1/users/@me", &dan.token).await.expect(200);
    // A fresh session an admin made by impersonating him is no sign-in of his.
    let imp = app.impersonation(&admin, &dan).await;
    crate::privacy::erase(&app, &imp, json!({}))
        .await
        .expect_error(403, "impersonation_forbidden");
    // Nor is an API key, however new.
    let org = app.org(&admin, "Acme").await;
    app.add_member(&org, &admin, &dan, "member").await;
    let spec = json!({ "name": "k", "org_id": org, "scopes": ["org:admin"] });
    let (_, key) = crate::keys::make_key(&app, &dan, spec).await;
    crate::privacy::erase(&app, &key, json!({}))
        .await
        .expect(403);
    app.get("/api/v1/users/@me", &dan.token).await.expect(200);
    // Signed in again through the host: erased, every session with it.
    let fresh = sign_in(&app, &m.tokens[1]).await.expect(200);
    assert_eq!(fresh.body["user"]["id"], json!(dan.id));
    crate::privacy::erase(&app, &fresh.string("token"), json!({}))
        .await
        .expect(204);
    app.get("/api/v1/users/@me", &dan.token)
        .await
        .expect_error(401, "invalid_token");
    let erased = app.audit_of("user.erased").await.items();
    assert!(erased.iter().any(|e| e["outcome"] == "success"));
}

/// A second node on `first`'s database, with the same hosts.
async fn second_node(first: &TestApp, hosts: Vec<HostJwtConfig>) -> TestApp {
    spawn_app_with(first.backend, |c: &mut Config| {
        c.host_jwt = hosts;
        c.rate_limits = OnOff::Off;
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        c.data_dir = first.data_dir.clone();
        c.database_url = first.database_url.clone();
    })
    .await
    .expect("the second node starts")
}

async fn single_use_token_ids_are_spent_on_every_node(app: TestApp) {
    let iss = "https://acme.example";
    let Some(m) = mint(json!([hs(with(claims(iss, "n-1"), "jti", json!("one")))])) else {
        return;
    };
    let hosts = vec![host("acme", json!({"single_use": true}))];
    let a = jwt_app(app.backend, hosts.clone(), None).await;
    let b = second_node(&a, hosts).await;
    sign_in(&a, &m.tokens[0]).await.expect(200);
    // The token id is remembered in the shared store, not in node A's memory.
    sign_in(&b, &m.tokens[0])
        .await
        .expect_error(401, "token_replayed");
    // And the other way round, in parallel: of 20 replays split over both nodes, none gets in.
    let replays = futures::future::join_all((0..20).map(|i| {
        let node = if i % 2 == 0 { &a } else { &b };
        let token = m.tokens[0].clone();
        async move { jwt_from(node, &format!("10.3.0.{i}"), json!({ "token": token })).await }
    }))
    .await;
    assert!(replays.iter().all(|r| r.status.as_u16() != 200));
}
