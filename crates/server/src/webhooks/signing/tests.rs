use super::*;

#[path = "../../../tests/api/python.rs"]
mod python;

/// The Standard Webhooks specification's published test vector.
const VECTOR_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const VECTOR_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const VECTOR_TIMESTAMP: i64 = 1_614_265_330;
const VECTOR_BODY: &[u8] = br#"{"test": 2432232314}"#;
const VECTOR_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name).unwrap().to_str().unwrap()
}

#[test]
fn the_published_test_vector_is_reproduced() {
    let secret = WebhookSecret::parse(VECTOR_SECRET).unwrap();
    assert_eq!(
        secret.sign_v1(VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY),
        VECTOR_SIGNATURE
    );
    let h = signature_headers(&[&secret], VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY).unwrap();
    assert_eq!(header(&h, "webhook-id"), VECTOR_ID);
    assert_eq!(header(&h, "webhook-timestamp"), "1614265330");
    assert_eq!(header(&h, "webhook-signature"), VECTOR_SIGNATURE);
    // HMAC-SHA256 over the raw body with the same key (computed independently with Python's
    // hmac module).
    assert_eq!(
        header(&h, "x-webhook-signature"),
        "sha256=e2cb4f5251572539d458bfb8a7adb533b08801e6a794467e06f771debbb0818b"
    );
}

#[test]
fn rotation_sends_both_signatures_newest_first() {
    let old = WebhookSecret::parse(VECTOR_SECRET).unwrap();
    let new = WebhookSecret::generate();
    let h = signature_headers(&[&new, &old], VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY).unwrap();
    let sigs: Vec<&str> = header(&h, "webhook-signature").split(' ').collect();
    assert_eq!(
        sigs,
        [
            new.sign_v1(VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY)
                .as_str(),
            VECTOR_SIGNATURE
        ]
    );
    assert_eq!(
        header(&h, "x-webhook-signature"),
        new.sign_body(VECTOR_BODY)
    );
    assert_ne!(new.sign_body(VECTOR_BODY), old.sign_body(VECTOR_BODY));
}

#[test]
fn secrets_are_random_round_trip_and_never_show_in_debug() {
    let a = WebhookSecret::generate();
    let b = WebhookSecret::generate();
    let text = a.to_whsec();
    let text = text.expose_secret();
    assert!(text.starts_with("whsec_"));
    assert_eq!(STANDARD.decode(&text[6..]).unwrap().len(), 32);
    assert_ne!(text, b.to_whsec().expose_secret());
    let again = WebhookSecret::parse(text).unwrap();
    assert_eq!(again.sign_body(b"x"), a.sign_body(b"x"));
    // Unpadded base64 is the same secret.
    let unpadded = WebhookSecret::parse(text.trim_end_matches('=')).unwrap();
    assert_eq!(unpadded.sign_body(b"x"), a.sign_body(b"x"));
    let shown = format!("{a:?}");
    assert_eq!(shown, "WebhookSecret(whsec_[redacted])");
    assert!(!shown.contains(&text[6..12]));
}

#[test]
fn bad_secrets_ids_and_timestamps_are_refused() {
    for bad in [
        "",
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "whsec_",
        "whsec_not base64!",
        "whsec_c2hvcnQ=",
        &format!("whsec_{}", STANDARD.encode([7u8; 65])),
    ] {
        assert_eq!(
            WebhookSecret::parse(bad).unwrap_err(),
            SigningError::BadSecret,
            "{bad}"
        );
    }
    let s = WebhookSecret::generate();
    assert_eq!(
        signature_headers(&[], "msg_1", 1, b"").unwrap_err(),
        SigningError::NoSecret
    );
    let long = "a".repeat(257);
    for id in ["", "msg.1", "msg 1", "msg\n1", "mség", long.as_str()] {
        assert_eq!(
            signature_headers(&[&s], id, 1, b"").unwrap_err(),
            SigningError::BadId,
            "{id:?}"
        );
    }
    assert_eq!(
        signature_headers(&[&s], "msg_1", -1, b"").unwrap_err(),
        SigningError::BadTimestamp
    );
}

/// What `standardwebhooks` (PyPI) says of `headers` for `body`, per secret.
fn python_verdicts(secrets: &[String], headers: &HeaderMap, body: &[u8]) -> Option<String> {
    let headers = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.to_str().unwrap()));
    python::standardwebhooks_verdicts(secrets, headers, body)
}

#[test]
fn an_independent_verifier_accepts_our_headers() {
    let old = WebhookSecret::generate();
    let new = WebhookSecret::generate();
    let body = br#"{"type":"message.created","timestamp":"2026-12-04T21:00:00Z","data":{"text":"h\u00e9 \ud83d\udc4b"}}"#;
    let now = conclave_core::Clock::now(&conclave_core::SystemClock).timestamp();
    let secrets = [
        new.to_whsec().expose_secret().to_owned(),
        old.to_whsec().expose_secret().to_owned(),
    ];
    // During a rotation both secrets verify; only the newest signs X-Webhook-Signature.
    let both = signature_headers(&[&new, &old], "msg_01JEXAMPLE", now, body).unwrap();
    let Some(verdicts) = python_verdicts(&secrets, &both, body) else {
        return;
    };
    assert_eq!(verdicts, "ok,refused,match ok,refused,differ");
    // After the overlap the old secret no longer verifies.
    let single = signature_headers(&[&new], "msg_01JEXAMPLE", now, body).unwrap();
    let verdicts = python_verdicts(&secrets, &single, body).unwrap();
    assert_eq!(
        verdicts,
        "ok,refused,match fail:WebhookVerificationError,refused,differ"
    );
}
