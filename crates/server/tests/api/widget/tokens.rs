//! WEB-4: a host vouches for its signed-in visitor with a short-lived JWT signed HS256 with the
//! widget key's identity secret — verified like a correct hash (history from any browser,
//! allowed in `required` mode) and refused for every other algorithm, a wrong secret or key, a
//! missing `sub`, `exp` or `iat`, an expired or future token, or one that lives over an hour.
//! Tokens are minted here with `jsonwebtoken` and, independently, with PyJWT.

use super::*;
use crate::python::python;
use crate::sso::host_jwt::with;
use base64::Engine as _;
use conclave_core::Clock;
use jsonwebtoken::{Algorithm, EncodingKey, Header};

crate::both_backends!(
    with crate::widget::widgeted;
    a_token_verifies_the_visitor_like_a_hash,
    bad_tokens_are_refused_by_the_failing_rule,
    required_identity_refuses_unsigned_and_wrongly_signed_tokens,
    pyjwt_tokens_are_accepted_and_its_rs256_refused,
);

/// The app's time, in seconds.
fn now(h: &Widgeted) -> i64 {
    h.app.clock.now().timestamp()
}

/// Claims of a good token for `sub`, issued now for ten minutes.
fn claims(h: &Widgeted, sub: &str) -> Value {
    let t = now(h);
    json!({"sub": sub, "iat": t, "exp": t + 600})
}

/// `claims` signed with `alg` and `key`.
fn mint_key(alg: Algorithm, key: &[u8], claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(key)).unwrap()
}

/// `claims` signed with `alg` and `secret` (the identity secret's text is the key).
fn mint_with(alg: Algorithm, secret: &str, claims: &Value) -> String {
    mint_key(alg, secret.as_bytes(), claims)
}

fn mint(secret: &str, claims: &Value) -> String {
    mint_with(Algorithm::HS256, secret, claims)
}

/// An unsigned token (`alg: none`, empty signature).
fn unsigned(claims: &Value) -> String {
    let b64 = |v: &Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string().as_bytes())
    };
    format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(claims)
    )
}

/// A token whose header claims `alg` over a real HS256 signature with `secret` (the
/// algorithm-confusion attempt: the secret offered as another algorithm's key).
fn relabelled(alg: &str, secret: &str, claims: &Value) -> String {
    let good = mint(secret, claims);
    let (_, rest) = good.split_once('.').unwrap();
    let header = json!({"alg": alg, "typ": "JWT"}).to_string();
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(header.as_bytes());
    format!("{header}.{rest}")
}

fn token_body(token: &str) -> Value {
    json!({"identity": {"token": token}})
}

/// Starts a session of `key` with `body`, expecting `status` and `code`.
async fn refused(
    app: &TestApp,
    key: &str,
    body: &Value,
    status: u16,
    code: &str,
    case: &str,
) -> Res {
    let res = (app.start_session(key, body.clone()).await).check(
        status,
        Some(code),
        &format!("{case}: "),
    );
    // The token is never echoed.
    if let Some(t) = body["identity"]["token"].as_str().filter(|t| t.len() > 8) {
        assert!(
            !res.body.to_string().contains(t),
            "{case}: the token is not echoed"
        );
    }
    res
}

/// Starts a session of `key` with `token`, expecting 403 `identity_invalid`.
async fn refused_token(app: &TestApp, key: &str, token: &str, case: &str) -> Res {
    refused(app, key, &token_body(token), 403, "identity_invalid", case).await
}

async fn a_token_verifies_the_visitor_like_a_hash(h: Widgeted) {
    let app = &h.app;
    let s = site(&h, "acme", "optional", false).await;
    let first_claims = with(
        with(claims(&h, "user-9"), "name", json!("Ann")),
        "email",
        json!("ann@shop.example"),
    );
    let first = app
        .visit(&s.key, token_body(&mint(&s.identity_secret, &first_claims)))
        .await;
    assert!(first.body["conversation_id"].is_null());
    let said = app.visitor_says(&s.key, &first, "from my laptop").await;
    assert_eq!(said["author_name"], "Ann", "the token's name claim is used");
    // Another browser, a fresh token: the same visitor with their conversation.
    let second = app
        .visit(
            &s.key,
            token_body(&mint(&s.identity_secret, &claims(&h, "user-9"))),
        )
        .await;
    assert_ne!(second.id, first.id);
    let conv = app.visitor_history(&s.key, &first).await["conversation_id"].clone();
    assert!(conv.is_string());
    assert_eq!(second.body["conversation_id"], conv);
    let history = app.visitor_history(&s.key, &second).await;
    assert_eq!(history["messages"][0]["content"], "from my laptop");
    // The same user id signed the HMAC way is the same visitor (one namespace).
    let hashed = app
        .visit(
            &s.key,
            json!({"identity": {"user_id": "user-9", "hash": sign(&s.identity_secret, "user-9")}}),
        )
        .await;
    let history = app.visitor_history(&s.key, &hashed).await;
    assert_eq!(history["messages"][0]["content"], "from my laptop");
    // The support team sees who it is.
    let inbox = app.items(&org_path(&s.org, "/inbox"), &s.staff.token).await;
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0]["visitor"]["external_id"], "user-9");
    assert_eq!(inbox[0]["visitor"]["email"], "ann@shop.example");
    // Another user's token and an anonymous visitor see none of it.
    let other = app
        .visit(
            &s.key,
            token_body(&mint(&s.identity_secret, &claims(&h, "user-10"))),
        )
        .await;
    assert!(app.visitor_history(&s.key, &other).await["conversation_id"].is_null());
    let anon = app.visit(&s.key, json!({})).await;
    assert!(app.visitor_history(&s.key, &anon).await["conversation_id"].is_null());
    // Within the leeway (a host clock a little ahead) is fine.
    let t = now(&h);
    let ahead = json!({"sub": "user-9", "iat": t + 30, "exp": t + 630});
    app.visit(&s.key, token_body(&mint(&s.identity_secret, &ahead)))
        .await;
    // A token is checked when the session begins: one that expired later refuses a new
    // session, and the session begun with it goes on.
    let short = mint(
        &s.identity_secret,
        &json!({"sub": "user-9", "iat": now(&h), "exp": now(&h) + 120}),
    );
    let kept = app.visit(&s.key, token_body(&short)).await;
    app.clock.advance(chrono::Duration::seconds(120 + 61));
    refused_token(app, &s.key, &short, "expired later").await;
    app.visitor_says(&s.key, &kept, "still here").await;
}

async fn bad_tokens_are_refused_by_the_failing_rule(h: Widgeted) {
    let app = &h.app;
    let s = site(&h, "acme", "optional", false).await;
    let other = site(&h, "globex", "optional", false).await;
    let secret = s.identity_secret.as_str();
    let t = now(&h);
    let good = claims(&h, "user-1");
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "expired",
            mint(
                secret,
                &json!({"sub": "user-1", "iat": t - 900, "exp": t - 120}),
            ),
            "expired",
        ),
        (
            "issued in the future beyond the leeway",
            mint(
                secret,
                &json!({"sub": "user-1", "iat": t + 300, "exp": t + 900}),
            ),
            "not valid yet",
        ),
        (
            "not before, in the future",
            mint(secret, &with(good.clone(), "nbf", json!(t + 300))),
            "not valid yet",
        ),
        (
            "lives over an hour",
            mint(secret, &json!({"sub": "user-1", "iat": t, "exp": t + 3601})),
            "one hour",
        ),
        (
            "exp before iat",
            mint(
                secret,
                &json!({"sub": "user-1", "iat": t + 10, "exp": t + 5}),
            ),
            "one hour",
        ),
        (
            "signed with another secret",
            mint(&"0".repeat(64), &good),
            "does not verify",
        ),
        (
            "key B's token on key A",
            mint(&other.identity_secret, &good),
            "does not verify",
        ),
        (
            "the secret hex-decoded as the key",
            mint_key(Algorithm::HS256, &hex_bytes(secret), &good),
            "does not verify",
        ),
        ("alg none", unsigned(&good), "well-formed"),
        (
            "HS512 with the right secret",
            mint_with(Algorithm::HS512, secret, &good),
            "HS256",
        ),
        (
            "HS384 with the right secret",
            mint_with(Algorithm::HS384, secret, &good),
            "HS256",
        ),
        (
            "RS256 over the secret",
            relabelled("RS256", secret, &good),
            "HS256",
        ),
        (
            "ES256 over the secret",
            relabelled("ES256", secret, &good),
            "HS256",
        ),
        (
            "no sub",
            mint(secret, &with(good.clone(), "sub", Value::Null)),
            "claim",
        ),
        (
            "blank sub",
            mint(secret, &with(good.clone(), "sub", json!("  "))),
            "claim",
        ),
        (
            "numeric sub",
            mint(secret, &with(good.clone(), "sub", json!(42))),
            "well-formed",
        ),
        (
            "no exp",
            mint(secret, &with(good.clone(), "exp", Value::Null)),
            "claim",
        ),
        (
            "no iat",
            mint(secret, &with(good.clone(), "iat", Value::Null)),
            "claim",
        ),
        ("not a JWT", "eyJ.x.y".to_owned(), "well-formed"),
        (
            "a tampered payload",
            {
                let real = mint(secret, &good);
                let parts: Vec<&str> = real.split('.').collect();
                let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .encode(claims(&h, "admin").to_string().as_bytes());
                format!("{}.{forged}.{}", parts[0], parts[2])
            },
            "does not verify",
        ),
    ];
    for (case, token, why) in &cases {
        let res = refused_token(app, &s.key, token, case).await;
        assert!(
            res.message().contains(why),
            "{case}: the message names the rule ({why}): {}",
            res.message()
        );
    }
    // Malformed bodies and claims: 422 naming the field.
    let long = "a".repeat(8193);
    for (case, body, code, field) in [
        (
            "too long",
            token_body(&long),
            "invalid_length",
            "/identity/token",
        ),
        ("empty", token_body(""), "invalid_length", "/identity/token"),
        (
            "token and hash",
            json!({"identity": {"token": mint(secret, &good), "user_id": "user-1", "hash": sign(secret, "user-1")}}),
            "not_combinable",
            "/identity/token",
        ),
        (
            "a control character in sub",
            token_body(&mint(secret, &with(good.clone(), "sub", json!("a\u{7}b")))),
            "invalid_characters",
            "/identity/token",
        ),
        (
            "a bad email claim",
            token_body(&mint(
                secret,
                &with(good.clone(), "email", json!("not an address")),
            )),
            "invalid_format",
            "/identity/token",
        ),
    ] {
        let res = refused(app, &s.key, &body, 422, code, case).await;
        assert_eq!(res.field(), Some(field), "{case}: {}", res.body);
    }
    // Nothing above made a verified visitor.
    let inbox = app.items(&org_path(&s.org, "/inbox"), &s.staff.token).await;
    assert!(inbox.is_empty());
}

/// The bytes of a hex string.
fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

async fn required_identity_refuses_unsigned_and_wrongly_signed_tokens(h: Widgeted) {
    let app = &h.app;
    let s = site(&h, "acme", "required", false).await;
    let other = site(&h, "globex", "required", false).await;
    let good = claims(&h, "user-42");
    for (case, body, code) in [
        ("unsigned", json!({}), "identity_required"),
        (
            "a profile only",
            json!({"profile": {"name": "Eve"}}),
            "identity_required",
        ),
        ("alg none", token_body(&unsigned(&good)), "identity_invalid"),
        (
            "another key's secret",
            token_body(&mint(&other.identity_secret, &good)),
            "identity_invalid",
        ),
        (
            "HS512",
            token_body(&mint_with(Algorithm::HS512, &s.identity_secret, &good)),
            "identity_invalid",
        ),
    ] {
        refused(app, &s.key, &body, 403, code, case).await;
    }
    // A good token chats, and finds its history again from another browser.
    let ok = app
        .visit(
            &s.key,
            token_body(&mint(
                &s.identity_secret,
                &with(good.clone(), "name", json!("Ann")),
            )),
        )
        .await;
    assert_eq!(
        app.visitor_says(&s.key, &ok, "hello").await["author_name"],
        "Ann"
    );
    let again = app
        .visit(&s.key, token_body(&mint(&s.identity_secret, &good)))
        .await;
    assert_eq!(
        app.visitor_history(&s.key, &again).await["messages"][0]["content"],
        "hello"
    );
    // An anonymous session made while the key was optional says nothing once it is required.
    let t = site(&h, "initech", "optional", false).await;
    let anon = app.visit(&t.key, json!({})).await;
    app.visitor_says(&t.key, &anon, "before").await;
    app.change_key(&t, json!({"identity": "required"})).await;
    app.visitor_sends(&t.key, &anon, "after")
        .await
        .expect_error(403, "identity_required");
    app.visitor_reads(&t.key, &anon)
        .await
        .expect_error(403, "identity_required");
}

async fn pyjwt_tokens_are_accepted_and_its_rs256_refused(h: Widgeted) {
    const SCRIPT: &str = r#"
import json, sys, jwt
from cryptography.hazmat.primitives.asymmetric import rsa
req = json.load(sys.stdin)
rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
out = [
    jwt.encode(req["claims"], req["secret"], algorithm="HS256"),
    jwt.encode(req["claims"], rsa_key, algorithm="RS256"),
    jwt.encode(req["claims"], req["secret"], algorithm="HS512"),
]
print(json.dumps(out))
"#;
    let app = &h.app;
    let s = site(&h, "acme", "required", false).await;
    let claims = with(claims(&h, "py-user"), "name", json!("Py"));
    let input = json!({"secret": s.identity_secret, "claims": claims}).to_string();
    let Some(out) = python("pyjwt", SCRIPT, &input) else {
        return;
    };
    let tokens: Vec<String> = serde_json::from_str(&out).unwrap();
    let v = app.visit(&s.key, token_body(&tokens[0])).await;
    assert_eq!(
        app.visitor_says(&s.key, &v, "hi from python").await["author_name"],
        "Py"
    );
    let again = app.visit(&s.key, token_body(&tokens[0])).await;
    assert_eq!(
        app.visitor_history(&s.key, &again).await["messages"][0]["content"],
        "hi from python"
    );
    for (case, token) in [("PyJWT RS256", &tokens[1]), ("PyJWT HS512", &tokens[2])] {
        refused_token(app, &s.key, token, case).await;
    }
}
