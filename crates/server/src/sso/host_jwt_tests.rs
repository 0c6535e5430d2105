//! The verifier against RFC 7515 appendix A's examples and against tokens made here for every
//! rule. Integration tests (`tests/api/sso`) add tokens minted by PyJWT and JWKS fetches.

use super::*;
use base64::Engine as _;
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::json;

/// RFC 7515 A.1: HS256, `{"iss":"joe","exp":1300819380,"http://example.com/is_root":true}`.
const A1_TOKEN: &str = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const A1_KEY: &str =
    "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
/// RFC 7515 A.2: the same claims, RS256.
const A2_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";
const A2_N: &str = "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ";

const SECRET: &[u8] = b"a host secret of at least thirty-two bytes";

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap()
}

fn host(id: &str, issuer: &str, algorithms: Vec<Algorithm>, keys: HostKeys) -> HostJwt {
    HostJwt {
        id: id.into(),
        issuer: issuer.into(),
        audience: "conclave".into(),
        algorithms,
        keys,
        single_use: false,
        create_users: false,
        max_lifetime_secs: 300,
        leeway_secs: 30,
    }
}

fn verifier(hosts: Vec<HostJwt>) -> HostJwtVerifier {
    let guard = OutboundGuard::new(crate::outbound::OutboundPolicy::default()).unwrap();
    HostJwtVerifier::new(hosts, &guard)
}

fn secret_host() -> HostJwt {
    host(
        "acme",
        "https://acme.example",
        vec![Algorithm::HS256],
        HostKeys::Secret(SecretBox::new(Box::new(SECRET.to_vec()))),
    )
}

fn a2_jwk() -> Jwk {
    serde_json::from_value(json!({"kty": "RSA", "kid": "2011-04-29", "n": A2_N, "e": "AQAB"}))
        .unwrap()
}

fn refusal(r: Result<VerifiedClaims, HostJwtError>) -> JwtRefusal {
    match r {
        Err(HostJwtError::Refused(r)) => r,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// `token` with one character of its signature changed.
fn tampered(token: &str) -> String {
    let mut t = token.to_owned();
    let last = t.pop().unwrap();
    t.push(if last == 'A' { 'B' } else { 'A' });
    t
}

const NOW: i64 = 1_800_000_000;
/// When RFC 7515's examples were signed (before their `exp`).
const RFC_NOW: i64 = 1_300_819_000;

fn mint(claims: serde_json::Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

fn good_claims() -> serde_json::Value {
    json!({
        "iss": "https://acme.example", "aud": "conclave", "sub": "user-42",
        "iat": NOW - 10, "exp": NOW + 60, "jti": "j-1",
        "preferred_username": "alice", "name": "Alice", "email": "alice@acme.example",
    })
}

fn with(mut claims: serde_json::Value, key: &str, value: serde_json::Value) -> serde_json::Value {
    if value.is_null() {
        claims.as_object_mut().unwrap().remove(key);
    } else {
        claims[key] = value;
    }
    claims
}

/// A host `joe` (the issuer of RFC 7515's examples) trusting `algorithm` with `keys`.
fn joe(algorithm: Algorithm, keys: HostKeys) -> HostJwt {
    host("joe", "joe", vec![algorithm], keys)
}

/// An RFC 7515 example `token` whose signature verifies with `v`'s key: it has no `aud`,
/// `sub` or `iat`, which a host token must have, so it is refused on its claims — after the
/// signature, never before; tampered, on its signature.
async fn refused_on_its_claims_only(v: &HostJwtVerifier, token: &str) {
    let when = at(RFC_NOW);
    assert_eq!(
        refusal(v.verify(token, when).await),
        JwtRefusal::MissingClaim
    );
    assert_eq!(
        refusal(v.verify(&tampered(token), when).await),
        JwtRefusal::BadSignature
    );
}

#[tokio::test]
async fn rfc7515_a1_hs256_verifies_with_its_key() {
    let key = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(A1_KEY)
        .unwrap();
    let v = verifier(vec![joe(
        Algorithm::HS256,
        HostKeys::Secret(SecretBox::new(Box::new(key))),
    )]);
    refused_on_its_claims_only(&v, A1_TOKEN).await;
    let other_key = joe(
        Algorithm::HS256,
        HostKeys::Secret(SecretBox::new(Box::new(SECRET.to_vec()))),
    );
    assert_eq!(
        refusal(
            verifier(vec![other_key])
                .verify(A1_TOKEN, at(RFC_NOW))
                .await
        ),
        JwtRefusal::BadSignature
    );
}

#[tokio::test]
async fn rfc7515_a2_rs256_verifies_with_its_jwk_and_refuses_confusion() {
    let key = pick(&[a2_jwk()], Some("2011-04-29"), Algorithm::RS256).expect("the A.2 JWK");
    let v = verifier(vec![joe(Algorithm::RS256, HostKeys::PublicKey(key))]);
    refused_on_its_claims_only(&v, A2_TOKEN).await;
    // HS256 "signed" with the RSA public key's bytes (algorithm confusion) is refused by the
    // algorithm list before any key is used.
    let forged = encode(
        &Header::new(Algorithm::HS256),
        &json!({"iss": "joe", "aud": "conclave", "sub": "x", "iat": 1_300_819_000, "exp": 1_300_819_100}),
        &EncodingKey::from_secret(A2_N.as_bytes()),
    )
    .unwrap();
    assert_eq!(
        refusal(v.verify(&forged, at(RFC_NOW)).await),
        JwtRefusal::AlgorithmNotAllowed
    );
    // The JWK is not picked for another algorithm's kind or another key id.
    assert!(pick(&[a2_jwk()], Some("2011-04-29"), Algorithm::ES256).is_none());
    assert!(pick(&[a2_jwk()], Some("other"), Algorithm::RS256).is_none());
    assert!(
        pick(&[a2_jwk()], None, Algorithm::RS256).is_some(),
        "the only key"
    );
    let hmac: Jwk = serde_json::from_value(json!({"kty": "oct", "kid": "s", "k": A1_KEY})).unwrap();
    assert!(
        pick(&[hmac], Some("s"), Algorithm::HS256).is_none(),
        "symmetric keys in a JWKS are ignored"
    );
}

#[tokio::test]
async fn a_good_token_yields_its_claims() {
    let v = verifier(vec![secret_host()]);
    let claims = v.verify(&mint(good_claims()), at(NOW)).await.unwrap();
    assert_eq!(claims.host, "acme");
    assert_eq!(claims.subject, "user-42");
    assert_eq!(claims.preferred_username.as_deref(), Some("alice"));
    assert_eq!(claims.email.as_deref(), Some("alice@acme.example"));
    assert_eq!(claims.token_id.as_deref(), Some("j-1"));
    assert_eq!(claims.expires_at, at(NOW + 60));
    assert_eq!(claims.remember_until, at(NOW + 90));
    assert_eq!(
        v.claimed(&mint(good_claims())),
        (Some("acme"), Some("user-42".to_owned()))
    );
}

#[tokio::test]
async fn every_rule_refuses() {
    let v = verifier(vec![secret_host()]);
    let g = good_claims;
    // Good claims with one changed, or removed (null).
    let claim_cases = [
        ("expired", "exp", json!(NOW - 31), JwtRefusal::Expired),
        (
            "issued in the future",
            "iat",
            json!(NOW + 31),
            JwtRefusal::NotYetValid,
        ),
        (
            "not before",
            "nbf",
            json!(NOW + 31),
            JwtRefusal::NotYetValid,
        ),
        (
            "lifetime",
            "exp",
            json!(NOW - 10 + 301),
            JwtRefusal::LifetimeTooLong,
        ),
        (
            "audience",
            "aud",
            json!("someone-else"),
            JwtRefusal::WrongAudience,
        ),
        (
            "unknown issuer",
            "iss",
            json!("https://evil.example"),
            JwtRefusal::UnknownIssuer,
        ),
        ("no issuer", "iss", json!(null), JwtRefusal::MissingClaim),
        ("no audience", "aud", json!(null), JwtRefusal::MissingClaim),
        ("no subject", "sub", json!(null), JwtRefusal::MissingClaim),
        ("empty subject", "sub", json!(" "), JwtRefusal::MissingClaim),
        ("no iat", "iat", json!(null), JwtRefusal::MissingClaim),
        ("no exp", "exp", json!(null), JwtRefusal::MissingClaim),
        ("bad exp", "exp", json!("soon"), JwtRefusal::Malformed),
    ];
    let claim_tokens = claim_cases
        .into_iter()
        .map(|(name, claim, value, expected)| (name, mint(with(g(), claim, value)), expected));
    let cases = [
        ("tampered", tampered(&mint(g())), JwtRefusal::BadSignature),
        ("garbage", "not.a.jwt".to_owned(), JwtRefusal::Malformed),
        ("huge", "a".repeat(9000), JwtRefusal::Malformed),
    ];
    for (name, token, expected) in claim_tokens.chain(cases) {
        assert_eq!(refusal(v.verify(&token, at(NOW)).await), expected, "{name}");
    }
    // Within the leeway, still accepted.
    let skewed = with(with(g(), "iat", json!(NOW + 29)), "exp", json!(NOW + 200));
    assert!(v.verify(&mint(skewed), at(NOW)).await.is_ok());
    let just_expired = with(with(g(), "iat", json!(NOW - 100)), "exp", json!(NOW - 29));
    assert!(v.verify(&mint(just_expired), at(NOW)).await.is_ok());
}

#[tokio::test]
async fn alg_none_and_foreign_algorithms_are_refused() {
    let v = verifier(vec![secret_host()]);
    let b64 = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let payload = b64(good_claims());
    for alg in ["none", "None", "NONE"] {
        let token = format!("{}.{payload}.", b64(json!({"alg": alg, "typ": "JWT"})));
        assert_eq!(
            refusal(v.verify(&token, at(NOW)).await),
            JwtRefusal::Malformed,
            "{alg}"
        );
    }
    let hs512 = encode(
        &Header::new(Algorithm::HS512),
        &good_claims(),
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap();
    assert_eq!(
        refusal(v.verify(&hs512, at(NOW)).await),
        JwtRefusal::AlgorithmNotAllowed
    );
}

#[tokio::test]
async fn single_use_hosts_need_a_token_id() {
    let mut h = secret_host();
    h.single_use = true;
    let v = verifier(vec![h]);
    assert_eq!(
        refusal(
            v.verify(&mint(with(good_claims(), "jti", json!(null))), at(NOW))
                .await
        ),
        JwtRefusal::MissingClaim
    );
    assert!(
        v.verify(&mint(good_claims()), at(NOW))
            .await
            .unwrap()
            .single_use
    );
}

/// WEB-4: widget visitor tokens — HS256 with the key's secret only, the time rules at the edges.
#[test]
fn widget_tokens() {
    let now = 1_700_000_000;
    let hs = |alg: Algorithm, key: &[u8], claims: serde_json::Value| {
        encode(&Header::new(alg), &claims, &EncodingKey::from_secret(key)).unwrap()
    };
    let good = json!({"sub": "u-1", "iat": now, "exp": now + 3600, "name": "Ann"});
    let verified =
        verify_widget_token(&hs(Algorithm::HS256, SECRET, good.clone()), SECRET, at(now));
    assert_eq!(
        verified,
        Ok(WidgetClaims {
            subject: "u-1".into(),
            name: Some("Ann".into()),
            email: None
        })
    );
    // The RFC's HS256 example, under its own key: well signed, but it has no `sub`.
    let a1_key = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(A1_KEY)
        .unwrap();
    assert_eq!(
        verify_widget_token(A1_TOKEN, &a1_key, at(RFC_NOW)),
        Err(JwtRefusal::MissingClaim)
    );
    assert_eq!(
        verify_widget_token(A2_TOKEN, SECRET, at(RFC_NOW)),
        Err(JwtRefusal::AlgorithmNotAllowed)
    );
    let cases = [
        (
            Algorithm::HS256,
            b"another secret".as_slice(),
            good.clone(),
            JwtRefusal::BadSignature,
        ),
        (
            Algorithm::HS512,
            SECRET,
            good.clone(),
            JwtRefusal::AlgorithmNotAllowed,
        ),
        (
            Algorithm::HS256,
            SECRET,
            json!({"sub": "u-1", "iat": now, "exp": now + 3601}),
            JwtRefusal::LifetimeTooLong,
        ),
        (
            Algorithm::HS256,
            SECRET,
            json!({"sub": "u-1", "iat": now - 200, "exp": now - WIDGET_LEEWAY_SECS}),
            JwtRefusal::Expired,
        ),
        (
            Algorithm::HS256,
            SECRET,
            json!({"sub": "u-1", "iat": now + WIDGET_LEEWAY_SECS + 1, "exp": now + 600}),
            JwtRefusal::NotYetValid,
        ),
        (
            Algorithm::HS256,
            SECRET,
            json!({"iat": now, "exp": now + 60}),
            JwtRefusal::MissingClaim,
        ),
        (
            Algorithm::HS256,
            SECRET,
            json!({"sub": "u-1", "exp": now + 60}),
            JwtRefusal::MissingClaim,
        ),
    ];
    for (alg, key, claims, want) in cases {
        let token = hs(alg, key, claims.clone());
        assert_eq!(
            verify_widget_token(&token, SECRET, at(now)),
            Err(want),
            "{claims}"
        );
    }
    // Just inside the leeway on both ends.
    let edge = json!({"sub": "u-1", "iat": now + WIDGET_LEEWAY_SECS, "exp": now + 600});
    assert!(verify_widget_token(&hs(Algorithm::HS256, SECRET, edge), SECRET, at(now)).is_ok());
    let late = json!({"sub": "u-1", "iat": now - 600, "exp": now - WIDGET_LEEWAY_SECS + 1});
    assert!(verify_widget_token(&hs(Algorithm::HS256, SECRET, late), SECRET, at(now)).is_ok());
    assert_eq!(
        verify_widget_token(&"a".repeat(9000), SECRET, at(now)),
        Err(JwtRefusal::Malformed)
    );
}
