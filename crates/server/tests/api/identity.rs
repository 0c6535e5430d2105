//! One identity path (issue 11): REST and the gateway hand the same credential text to the same
//! core call, so the same `Authorization` value gets the same verdict on both — let in, refused
//! as no valid credential (REST 401, gateway 4004), or let in but not permitted (REST 403,
//! gateway 4014). The REST probe reads a conversation's messages, which needs `messages:read`,
//! the scope the gateway asks of an API key.

use crate::both_backends;
use crate::helpers::*;
use crate::ws::Ws;
use futures::StreamExt;
use reqwest::Method;
use serde_json::json;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

both_backends!(
    the_same_credential_text_gets_the_same_verdict_on_rest_and_the_gateway,
    account_state_and_scopes_get_the_same_verdict_on_rest_and_the_gateway,
    the_management_token_is_good_on_the_admin_api_only,
);

/// What a surface made of a credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// REST 2xx; the gateway's READY.
    In,
    /// REST 401; the gateway's 4004.
    NoCredential,
    /// REST 403; the gateway's 4014.
    NotPermitted,
}

/// The REST verdict and error code for `authorization` on `GET …/messages` of `conv`.
async fn on_rest(app: &TestApp, conv: &str, authorization: &str) -> (Verdict, String) {
    let res = app
        .get_with_header(
            &conv_path(conv, "/messages"),
            "authorization",
            authorization,
        )
        .await;
    let verdict = match res.status.as_u16() {
        200 => Verdict::In,
        401 => Verdict::NoCredential,
        403 => Verdict::NotPermitted,
        other => panic!("{authorization:?}: unexpected {other} {}", res.body),
    };
    (verdict, res.code().to_owned())
}

/// The gateway's verdict for IDENTIFY with `token`.
async fn on_gateway(app: &TestApp, token: &str) -> Verdict {
    let mut ws = Ws::connect(app).await;
    ws.send(
        json!({"op": 2, "d": {"token": token, "client": "tests/1.0.0", "protocol_version": 1}}),
    )
    .await;
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.socket.next())
            .await
            .expect("an answer to IDENTIFY");
        match msg {
            Some(Ok(Message::Text(t))) => {
                let frame: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
                if frame["t"] == "READY" {
                    return Verdict::In;
                }
            }
            Some(Ok(Message::Close(Some(f)))) => {
                return match u16::from(f.code) {
                    4004 => Verdict::NoCredential,
                    4014 => Verdict::NotPermitted,
                    other => panic!("{token:?}: unexpected close {other}"),
                }
            }
            Some(Ok(_)) => continue,
            other => panic!("{token:?}: the socket ended without a close code: {other:?}"),
        }
    }
}

/// Both surfaces give `authorization` the verdict `expected` (and REST the error `code`).
async fn same_verdict(app: &TestApp, conv: &str, authorization: &str, expected: (Verdict, &str)) {
    let (rest, code) = on_rest(app, conv, authorization).await;
    assert_eq!(
        (rest, code.as_str()),
        expected,
        "REST, Authorization: {authorization:?}"
    );
    let gateway = on_gateway(app, authorization).await;
    assert_eq!(gateway, expected.0, "gateway, token: {authorization:?}");
}

/// Alice's org with a conversation she shares with a bot: the conversation and the bot's token.
async fn world(app: &TestApp, alice: &User) -> (String, String, String) {
    let org = app.org(alice, "Acme").await;
    let bot = crate::bots::make_bot(app, &org, alice, json!({"name": "helper"})).await;
    let bot_user = User::without_token("bot", &bot.user_id);
    let conv = app.group(&org, alice, &[&bot_user], json!("private")).await;
    (org, conv, bot.token)
}

async fn make_key(app: &TestApp, owner: &User, org: &str, scopes: &[&str]) -> String {
    let body = json!({"name": "k", "org_id": org, "scopes": scopes, "tier": "team"});
    app.post("/api/v1/api-keys", &owner.token, body)
        .await
        .expect(201)
        .string("key")
}

async fn the_same_credential_text_gets_the_same_verdict_on_rest_and_the_gateway(app: TestApp) {
    let app = unlimited(app).await;
    let alice = app.user("alice").await;
    let (org, conv, bot) = world(&app, &alice).await;
    let key = make_key(&app, &alice, &org, &["messages:read"]).await;
    let session = alice.token.as_str();
    let ok = (Verdict::In, "");
    let invalid = (Verdict::NoCredential, "invalid_token");
    let scheme = (Verdict::NoCredential, "unsupported_scheme");
    // RFC 7235: the scheme is case-insensitive, for sessions, keys and bots alike.
    for s in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        same_verdict(&app, &conv, &format!("{s} {session}"), ok).await;
        same_verdict(&app, &conv, &format!("{s} {key}"), ok).await;
    }
    for s in ["Bot", "bot", "BOT"] {
        same_verdict(&app, &conv, &format!("{s} {bot}"), ok).await;
    }
    // A token is checked as the kind it says it is: in the wrong place it fails.
    same_verdict(&app, &conv, &format!("Bearer {bot}"), invalid).await;
    same_verdict(&app, &conv, &format!("Bot {session}"), invalid).await;
    same_verdict(&app, &conv, &format!("Bot {key}"), invalid).await;
    // A scheme is required: a bare token is refused, whatever its kind.
    same_verdict(&app, &conv, &key, scheme).await;
    same_verdict(&app, &conv, session, scheme).await;
    same_verdict(&app, &conv, &format!("Basic {session}"), scheme).await;
    // Empty and blank tokens.
    same_verdict(&app, &conv, "Bearer", invalid).await;
    same_verdict(&app, &conv, "Bot", invalid).await;
    same_verdict(&app, &conv, "Bearer    x", invalid).await;
    same_verdict(&app, &conv, "", scheme).await;
    // A broken token of a known kind.
    same_verdict(&app, &conv, &format!("Bearer {session}x"), invalid).await;
    same_verdict(
        &app,
        &conv,
        &format!("Bearer {}", &key[..key.len() - 1]),
        invalid,
    )
    .await;
}

async fn account_state_and_scopes_get_the_same_verdict_on_rest_and_the_gateway(app: TestApp) {
    let app = unlimited(app).await;
    let admin = app.bootstrap().await;
    let alice = app.user("alice").await;
    let (org, conv, _) = world(&app, &alice).await;
    let ok = (Verdict::In, "");
    let invalid = (Verdict::NoCredential, "invalid_token");
    // A key outside its scopes: 403 insufficient_scope on REST, 4014 on the gateway.
    let blind = make_key(&app, &alice, &org, &["org:read"]).await;
    same_verdict(
        &app,
        &conv,
        &format!("Bearer {blind}"),
        (Verdict::NotPermitted, "insufficient_scope"),
    )
    .await;

    // An impersonation session reads on both surfaces (its writes are REST's to refuse).
    let imp = app.impersonation(&admin, &alice).await;
    same_verdict(&app, &conv, &format!("Bearer {imp}"), ok).await;

    // A user who must turn on 2FA: 403 mfa_setup_required on REST, 4014 on the gateway — for
    // a session and for a key alike; the impersonating admin is not asked for it.
    let key = make_key(&app, &alice, &org, &["messages:read"]).await;
    let path = format!("/api/v1/admin/users/{}", alice.id);
    app.patch(&path, &admin.token, json!({"require_2fa": true}))
        .await
        .expect(200);
    let second_factor = (Verdict::NotPermitted, "mfa_setup_required");
    same_verdict(
        &app,
        &conv,
        &format!("Bearer {}", alice.token),
        second_factor,
    )
    .await;
    same_verdict(&app, &conv, &format!("Bearer {key}"), second_factor).await;
    same_verdict(&app, &conv, &format!("Bearer {imp}"), ok).await;
    app.patch(&path, &admin.token, json!({"require_2fa": false}))
        .await
        .expect(200);

    // A disabled account: its session, its key and its impersonation are no credential.
    app.patch(&path, &admin.token, json!({"disabled": true}))
        .await
        .expect(200);
    same_verdict(&app, &conv, &format!("Bearer {}", alice.token), invalid).await;
    same_verdict(&app, &conv, &format!("Bearer {key}"), invalid).await;
    same_verdict(&app, &conv, &format!("Bearer {imp}"), invalid).await;
}

async fn the_management_token_is_good_on_the_admin_api_only(app: TestApp) {
    let app = unlimited(app).await;
    let alice = app.user("alice").await;
    let (_, conv, _) = world(&app, &alice).await;
    for s in ["Bearer", "bearer"] {
        let value = format!("{s} {ADMIN_TOKEN}");
        same_verdict(
            &app,
            &conv,
            &value,
            (Verdict::NoCredential, "invalid_token"),
        )
        .await;
        app.get_with_header("/api/v1/admin/users", "authorization", &value)
            .await
            .expect(200);
    }
    // Not as a bot, and never an empty or wrong one.
    for value in [
        format!("Bot {ADMIN_TOKEN}"),
        format!("Bearer {ADMIN_TOKEN}x"),
        "Bearer".to_owned(),
    ] {
        app.get_with_header("/api/v1/admin/users", "authorization", &value)
            .await
            .expect_error(401, "invalid_token");
    }
    let r = app
        .call(Method::GET, "/api/v1/admin/users", None, None)
        .await;
    r.expect_error(401, "unauthenticated");
}
