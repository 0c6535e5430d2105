//! The gateway protocol at its edges (MSG-4, RATE-3, AUTH-9, AUTH-7): the closing handshake
//! while a client is still sending, control frames against the frame budget, RESUME before any
//! event, credentials re-checked at every heartbeat (not only through the event bus), and the
//! access-token gate on IDENTIFY and RESUME for every credential kind. Runs on both backends.

use crate::both_backends;
use crate::fixtures::Acme;
use crate::helpers::*;
use crate::ws::Ws;
use futures::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

both_backends!(
    a_client_still_sending_gets_the_close_frame,
    ping_and_pong_frames_count_against_the_budget,
    resume_with_a_null_seq_starts_from_zero,
    heartbeats_recheck_credentials_revoked_elsewhere,
    heartbeats_recheck_a_2fa_requirement_made_elsewhere,
    identify_and_resume_recheck_a_credential_revoked_while_cached,
    the_access_token_gate_covers_every_gateway_credential,
);

const WAIT: Duration = Duration::from_secs(10);

/// Reads until the server's close frame, then on until the connection ends; answers the close
/// code, after checking the closing handshake (RFC 6455 §7.1.1): the server waited for our
/// close frame (tungstenite answers with it while reading on), so the TCP connection ends
/// cleanly. A server that drops the connection while our frames are still unread in its
/// buffer resets it instead, and a reset can lose the close frame itself.
async fn close_code<S>(read: &mut S) -> u16
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let code = loop {
        match tokio::time::timeout(WAIT, read.next())
            .await
            .expect("the server closes within the timeout")
        {
            Some(Ok(Message::Close(Some(f)))) => break u16::from(f.code),
            other @ (Some(Ok(Message::Close(None)) | Err(_)) | None) => {
                panic!("a close frame with a code, got {other:?}")
            }
            Some(Ok(_)) => continue,
        }
    };
    match tokio::time::timeout(WAIT, read.next())
        .await
        .expect("the connection ends after the closing handshake")
    {
        None => code,
        Some(Ok(m)) => panic!("nothing after the close frame, got {m:?}"),
        Some(Err(e)) => panic!("the connection ended uncleanly after close {code}: {e}"),
    }
}

/// Keeps sending `frame` (at most `limit` times, until sending fails) while reading; answers
/// the code of the server's close frame (see `close_code`).
async fn close_code_while_sending(ws: Ws, frame: Message, limit: usize) -> u16 {
    let (mut write, mut read) = ws.socket.split();
    let sender = tokio::spawn(async move {
        for _ in 0..limit {
            if write.send(frame.clone()).await.is_err() {
                break;
            }
        }
    });
    let code = close_code(&mut read).await;
    sender.abort();
    code
}

async fn logout(app: &TestApp, token: &str) {
    app.post_empty("/api/v1/auth/logout", token)
        .await
        .expect(204);
}

fn text(s: &str) -> Message {
    Message::Text(s.to_owned().into())
}

async fn a_client_still_sending_gets_the_close_frame(app: TestApp) {
    let alice = app.user("alice").await;
    // A flood: 120 frames a minute, then 4008.
    let (ws, _) = Ws::identify(&app, &alice.token).await;
    let heartbeat = text(r#"{"op":1,"d":null}"#);
    assert_eq!(close_code_while_sending(ws, heartbeat, 5_000).await, 4008);
    // Oversized frames: 4010 at the first one.
    let (ws, _) = Ws::identify(&app, &alice.token).await;
    let big = text(&format!(
        "{{\"op\":1,\"d\":null,\"pad\":\"{}\"}}",
        "x".repeat(70 * 1024)
    ));
    assert_eq!(close_code_while_sending(ws, big, 200).await, 4010);
    // Garbage: 4002, before IDENTIFY as after it.
    let ws = Ws::connect(&app).await;
    assert_eq!(
        close_code_while_sending(ws, text("{not json"), 5_000).await,
        4002
    );
    // A revoked credential: 4004 reaches a client that keeps sending heartbeats.
    let (ws, _) = Ws::identify(&app, &alice.token).await;
    let (mut write, mut read) = ws.socket.split();
    let sender = tokio::spawn(async move {
        for _ in 0..100 {
            if write.send(text(r#"{"op":1,"d":null}"#)).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    logout(&app, &alice.token).await;
    let code = close_code(&mut read).await;
    sender.abort();
    assert_eq!(code, 4004);
}

async fn ping_and_pong_frames_count_against_the_budget(app: TestApp) {
    let alice = app.user("alice").await;
    let (ws, _) = Ws::identify(&app, &alice.token).await;
    let ping = Message::Ping(b"ping".to_vec().into());
    assert_eq!(close_code_while_sending(ws, ping, 1_000).await, 4008);
    let (ws, _) = Ws::identify(&app, &alice.token).await;
    let pong = Message::Pong(b"pong".to_vec().into());
    assert_eq!(close_code_while_sending(ws, pong, 1_000).await, 4008);
    // Before IDENTIFY too.
    let ws = Ws::connect(&app).await;
    let ping = Message::Ping(Vec::new().into());
    assert_eq!(close_code_while_sending(ws, ping, 1_000).await, 4008);
    // A well-behaved client is untouched.
    let (mut ws, _) = Ws::identify(&app, &alice.token).await;
    ws.socket
        .send(Message::Ping(Vec::new().into()))
        .await
        .unwrap();
    ws.heartbeat().await;
    assert_eq!(ws.frame().await.expect("HEARTBEAT_ACK")["op"], 11);
}

/// RESUMEs until the old connection's state is saved (INVALID_SESSION until then); answers the
/// socket and its first frame.
async fn resume(app: &TestApp, d: Value) -> (Ws, Value) {
    for _ in 0..100 {
        let mut ws = Ws::connect(app).await;
        ws.send(json!({"op": 6, "d": d})).await;
        let f = ws.frame().await.expect("an answer to RESUME, not a close");
        if f["op"] == 9 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        return (ws, f);
    }
    panic!("the session never became resumable");
}

async fn resume_with_a_null_seq_starts_from_zero(app: TestApp) {
    let Acme { alice, bob, org } = app.acme().await;
    let conv = app.group(&org, &alice, &[&bob], json!("private")).await;
    let (ws, ready) = Ws::identify(&app, &alice.token).await;
    let session_id = ready["session_id"].as_str().unwrap().to_owned();
    drop(ws);
    // Alice saw no event before she dropped; two arrive while she is away.
    for c in ["m1", "m2"] {
        app.says(&conv, &bob, c).await;
    }
    let d =
        json!({"token": format!("Bearer {}", alice.token), "session_id": session_id, "seq": null});
    let (mut ws, first) = resume(&app, d).await;
    assert_eq!(
        first["t"], "MESSAGE_CREATE",
        "replayed from the start: {first}"
    );
    assert_eq!(first["s"], 1);
    assert_eq!(first["d"]["content"], "m1");
    ws.last_s = 1;
    assert_eq!(ws.expect("MESSAGE_CREATE").await["content"], "m2");
    assert_eq!(ws.expect("RESUMED").await["replayed"], 2);
    // `seq` may be null, not absent or anything else.
    for bad in [
        json!({"session_id": session_id}),
        json!({"session_id": session_id, "seq": "0"}),
    ] {
        let mut ws = Ws::connect(&app).await;
        let mut d = bad.clone();
        d["token"] = json!(format!("Bearer {}", alice.token));
        ws.send(json!({"op": 6, "d": d})).await;
        assert_eq!(ws.close_code().await, 4002, "{bad}");
    }
}

/// Another node on the same database and keys whose events never reach `app`'s gateway (no
/// shared fan-out), as when an event is lost between nodes.
async fn node_without_shared_fanout(app: &TestApp) -> TestApp {
    let (data_dir, database_url) = (app.data_dir.clone(), app.database_url.clone());
    spawn_app_with(app.backend, move |c| {
        c.data_dir = data_dir;
        c.database_url = database_url;
    })
    .await
    .expect("the second node starts")
}

/// A new API key of `owner` in `org` that reads messages.
async fn reader_key(app: &TestApp, owner: &User, org: &str) -> String {
    app.post(
        "/api/v1/api-keys",
        &owner.token,
        json!({"name": "reader", "org_id": org, "scopes": ["messages:read"]}),
    )
    .await
    .expect(201)
    .string("key")
}

async fn login(app: &TestApp, username: &str, password: &str) -> String {
    app.login(username, password)
        .await
        .expect(200)
        .string("token")
}

/// Reads until a frame whose op is `op` (answered), or the server's close frame (its code).
async fn until_op(ws: &mut Ws, op: u64) -> Result<Value, u16> {
    loop {
        match tokio::time::timeout(WAIT, ws.socket.next())
            .await
            .expect("an answer within the timeout")
        {
            Some(Ok(Message::Text(t))) => {
                let f: Value = serde_json::from_str(t.as_str()).expect("JSON");
                if f["op"] == op {
                    return Ok(f);
                }
            }
            Some(Ok(Message::Close(Some(f)))) => return Err(u16::from(f.code)),
            other @ (Some(Ok(Message::Close(None)) | Err(_)) | None) => {
                panic!("op {op} or a close frame, got {other:?}")
            }
            Some(Ok(_)) => continue,
        }
    }
}

/// Sends a heartbeat and answers whether the server acknowledged it (`true`) or closed the
/// socket with 4004 (`false`). Events before the answer are skipped.
async fn heartbeat_acknowledged(ws: &mut Ws) -> bool {
    ws.heartbeat().await;
    match until_op(ws, 11).await {
        Ok(_) => true,
        Err(code) => {
            assert_eq!(code, 4004, "closed as revoked");
            false
        }
    }
}

async fn heartbeats_recheck_credentials_revoked_elsewhere(app: TestApp) {
    let other = node_without_shared_fanout(&app).await;
    let Acme { alice, bob, org } = app.acme().await;
    let solo = app.group(&org, &alice, &[], json!("private")).await;
    let (t2, t3) = (
        login(&app, "alice", PASSWORD).await,
        login(&app, "alice", PASSWORD).await,
    );
    let (mut ws1, _) = Ws::identify(&app, &alice.token).await;
    let (mut ws2, _) = Ws::identify(&app, &t2).await;
    let (mut ws3, _) = Ws::identify(&app, &t3).await;
    // Logged out through the other node: no event reaches this one ...
    logout(&other, &alice.token).await;
    let alice2 = alice.with_token(&t2);
    let m = app.says(&solo, &alice2, "marker").await;
    let d = ws1.expect("MESSAGE_CREATE").await;
    assert_eq!(
        d["id"], m.body["id"],
        "the socket is still open, nothing came"
    );
    // ... but the next heartbeat finds the session gone.
    assert!(!heartbeat_acknowledged(&mut ws1).await);
    assert!(
        heartbeat_acknowledged(&mut ws2).await,
        "other sessions stay"
    );
    // A password change through the other node ends the other sessions at their heartbeat.
    other
        .post(
            "/api/v1/auth/password",
            &t2,
            json!({"current_password": PASSWORD, "new_password": "another long passphrase"}),
        )
        .await
        .expect(204);
    assert!(!heartbeat_acknowledged(&mut ws3).await);
    assert!(
        heartbeat_acknowledged(&mut ws2).await,
        "the caller's own stays"
    );
    // Revoking one session by id.
    let sid2 = app.get("/api/v1/auth/session", &t2).await.body["session"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let t4 = login(&other, "alice", "another long passphrase").await;
    other
        .delete(&format!("/api/v1/auth/sessions/{sid2}"), &t4)
        .await
        .expect(204);
    assert!(!heartbeat_acknowledged(&mut ws2).await);
    // Disabling an account stops its sessions and its API keys.
    let key = reader_key(&app, &bob, &org).await;
    let (mut bob_ws, _) = Ws::identify(&app, &bob.token).await;
    let (mut key_ws, _) = Ws::identify(&app, &key).await;
    assert!(heartbeat_acknowledged(&mut key_ws).await);
    other.set_disabled(ADMIN_TOKEN, &bob, true).await;
    assert!(!heartbeat_acknowledged(&mut bob_ws).await);
    assert!(!heartbeat_acknowledged(&mut key_ws).await);
}

/// A server admin's 2FA requirement made through a node whose events never reach this one
/// still closes the user's open sockets here (4014, AUTH-4a) at their next heartbeat — the
/// backstop for a lost event and for one that came while a socket was being set up.
async fn heartbeats_recheck_a_2fa_requirement_made_elsewhere(app: TestApp) {
    let other = node_without_shared_fanout(&app).await;
    let Acme { alice, bob, .. } = app.acme().await;
    let (mut alice_ws, _) = Ws::identify(&app, &alice.token).await;
    let (mut bob_ws, _) = Ws::identify(&app, &bob.token).await;
    assert!(heartbeat_acknowledged(&mut alice_ws).await);
    other
        .update_user(ADMIN_TOKEN, &alice, json!({"require_2fa": true}))
        .await
        .expect(200);
    alice_ws.heartbeat().await;
    assert_eq!(until_op(&mut alice_ws, 11).await.err(), Some(4014));
    assert!(
        heartbeat_acknowledged(&mut bob_ws).await,
        "only her sockets close"
    );
}

/// RESUMEs with `d` once the old connection's state is saved (INVALID_SESSION until then): 0
/// when it resumed (its first frame is a DISPATCH), else the close code.
async fn resume_outcome(app: &TestApp, d: &Value) -> u16 {
    for _ in 0..100 {
        let mut ws = Ws::connect(app).await;
        ws.send(json!({"op": 6, "d": d})).await;
        loop {
            match tokio::time::timeout(WAIT, ws.socket.next())
                .await
                .expect("an answer to RESUME within the timeout")
            {
                Some(Ok(Message::Text(t))) => {
                    let f: Value = serde_json::from_str(t.as_str()).expect("JSON");
                    match f["op"].as_u64() {
                        Some(0) => return 0,
                        Some(9) => break,
                        _ => continue,
                    }
                }
                Some(Ok(Message::Close(Some(f)))) => return u16::from(f.code),
                Some(Ok(_)) => continue,
                other => panic!("an answer to RESUME, got {other:?}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the session never became resumable");
}

/// IDENTIFY and RESUME check the credential again once the hub routes the connection's events
/// (`gateway::start::still_valid`). Here each credential is revoked through a node whose
/// events never reach this one, while this node still serves it from its cache (a TTL of ten
/// minutes: nothing expires during the test, and REST still accepts it, as the cache allows
/// until its TTL). The gateway refuses it at once — 4004, or 4014 for a 2FA requirement — not
/// at the socket's first heartbeat. The same re-check closes the race of a revocation whose
/// event reaches the hub after the credential check but before the connection is registered
/// there, which would otherwise close nothing.
async fn identify_and_resume_recheck_a_credential_revoked_while_cached(app: TestApp) {
    let app = spawn_app_with(app.backend, |c| c.cache.ttl_ms = 600_000)
        .await
        .expect("the app starts");
    let other = node_without_shared_fanout(&app).await;
    let Acme { alice, bob, org } = app.acme().await;
    let carol = app.user("carol").await;
    let dave = app.user("dave").await;
    let key = reader_key(&app, &bob, &org).await;
    // A gateway session of alice's second login, saved for RESUME when its socket goes.
    let t2 = login(&app, "alice", PASSWORD).await;
    let (ws, ready) = Ws::identify(&app, &t2).await;
    let session_id = ready["session_id"].as_str().unwrap().to_owned();
    drop(ws);
    // Every credential is in this node's cache now.
    for token in [&alice.token, &bob.token, &key, &carol.token, &dave.token] {
        drop(Ws::identify(&app, token).await);
    }
    for token in [&alice.token, &t2, &bob.token, &carol.token] {
        app.get("/api/v1/users/@me", token).await.expect(200);
    }
    logout(&other, &alice.token).await;
    logout(&other, &t2).await;
    other.set_disabled(ADMIN_TOKEN, &bob, true).await;
    other
        .update_user(ADMIN_TOKEN, &carol, json!({"require_2fa": true}))
        .await
        .expect(200);
    // This node has heard of none of it: its cache still serves the credentials.
    app.get("/api/v1/users/@me", &alice.token).await.expect(200);
    let d = |token: &str| json!({"token": format!("Bearer {token}"), "client": "tests/1.0.0", "protocol_version": 1});
    assert_eq!(
        identify_outcome(&app, &[], d(&alice.token)).await,
        4004,
        "logged out"
    );
    assert_eq!(
        identify_outcome(&app, &[], d(&bob.token)).await,
        4004,
        "disabled"
    );
    assert_eq!(
        identify_outcome(&app, &[], d(&key)).await,
        4004,
        "its owner disabled"
    );
    assert_eq!(
        identify_outcome(&app, &[], d(&carol.token)).await,
        4014,
        "2FA required"
    );
    let resume = json!({"token": format!("Bearer {t2}"), "session_id": session_id, "seq": 0});
    assert_eq!(
        resume_outcome(&app, &resume).await,
        4004,
        "RESUME of a logged-out session"
    );
    // Nobody else is refused.
    assert_eq!(identify_outcome(&app, &[], d(&dave.token)).await, 0);
}

const GATE: &str = "gate-token-value-for-the-gateway";

/// A request to the gated app that carries the access token.
async fn gated(app: &TestApp, method: Method, path: &str, token: Option<&str>, body: Value) -> Res {
    let mut rb = app
        .client
        .request(method, app.url(path))
        .header("x-api-access-token", GATE)
        .json(&body);
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    app.send(rb).await
}

/// The first answer to what `ws` sent: 0 for a DISPATCH (READY, RESUMED), else the close code.
async fn outcome(ws: &mut Ws) -> u16 {
    until_op(ws, 0).await.map_or_else(|code| code, |_| 0)
}

/// IDENTIFY with `d` on a fresh socket opened with `headers`: 0 for READY, else the close code.
async fn identify_outcome(app: &TestApp, headers: &[(&str, &str)], d: Value) -> u16 {
    let mut ws = Ws::connect_with(app, headers).await;
    ws.send(json!({"op": 2, "d": d})).await;
    outcome(&mut ws).await
}

async fn the_access_token_gate_covers_every_gateway_credential(app: TestApp) {
    let app = spawn_app_with(app.backend, |c| {
        c.access_token = Some(secrecy::SecretString::from(GATE));
    })
    .await
    .expect("the gated app starts");
    let creds = json!({"username": "alice", "password": PASSWORD});
    gated(
        &app,
        Method::POST,
        "/api/v1/auth/register",
        None,
        creds.clone(),
    )
    .await
    .expect(201);
    let token = gated(&app, Method::POST, "/api/v1/auth/login", None, creds)
        .await
        .expect(200)
        .string("token");
    let bearer = format!("Bearer {token}");
    // A bearer token: the access token in IDENTIFY, or on the upgrade request.
    let with = |extra: Value| {
        let mut d = json!({"token": bearer, "client": "tests/1.0.0", "protocol_version": 1});
        for (k, v) in extra.as_object().unwrap() {
            d[k] = v.clone();
        }
        d
    };
    assert_eq!(identify_outcome(&app, &[], with(json!({}))).await, 4004);
    assert_eq!(
        identify_outcome(&app, &[], with(json!({"access_token": "wrong"}))).await,
        4004
    );
    assert_eq!(
        identify_outcome(&app, &[], with(json!({"access_token": ""}))).await,
        4004
    );
    assert_eq!(
        identify_outcome(&app, &[], with(json!({"access_token": GATE}))).await,
        0
    );
    let header = [("x-api-access-token", GATE)];
    assert_eq!(identify_outcome(&app, &header, with(json!({}))).await, 0);
    // What the frame says is what counts.
    assert_eq!(
        identify_outcome(&app, &header, with(json!({"access_token": "wrong"}))).await,
        4004
    );
    let wrong_header = [("x-api-access-token", "wrong")];
    assert_eq!(
        identify_outcome(&app, &wrong_header, with(json!({}))).await,
        4004
    );

    // A browser's cookie session: the cookie alone is not enough, even from an allowed origin.
    let login = gated(
        &app,
        Method::POST,
        "/api/v1/auth/login",
        None,
        json!({"username": "alice", "password": PASSWORD, "cookie": true}),
    )
    .await
    .expect(200);
    let cookie = login.session_cookie();
    let browser = [
        ("origin", "https://allowed.example"),
        ("cookie", cookie.as_str()),
    ];
    let web = json!({"client": "web/1.0.0", "protocol_version": 1});
    assert_eq!(identify_outcome(&app, &browser, web.clone()).await, 4004);
    let mut wrong = web.clone();
    wrong["access_token"] = json!("wrong");
    assert_eq!(identify_outcome(&app, &browser, wrong).await, 4004);
    let mut right = web.clone();
    right["access_token"] = json!(GATE);
    assert_eq!(identify_outcome(&app, &browser, right.clone()).await, 0);
    // A forged Origin never gets to use the cookie: refused before the upgrade.
    for origin in [
        "https://evil.example",
        "https://allowed.example.evil.example",
        "null",
    ] {
        app.send(
            app.client
                .get(app.url("/gateway?v=1"))
                .header("origin", origin)
                .header("cookie", &cookie)
                .header("x-api-access-token", GATE),
        )
        .await
        .expect_error(403, "origin_not_allowed");
    }

    // An API key, like every other credential.
    let org = gated(
        &app,
        Method::POST,
        "/api/v1/orgs",
        Some(&token),
        json!({"name": "Acme"}),
    )
    .await
    .expect(201)
    .id();
    let key = gated(
        &app,
        Method::POST,
        "/api/v1/api-keys",
        Some(&token),
        json!({"name": "reader", "org_id": org, "scopes": ["messages:read"]}),
    )
    .await
    .expect(201)
    .string("key");
    let key_identify = |extra: Option<&str>| {
        let mut d = json!({"token": format!("Bearer {key}")});
        if let Some(a) = extra {
            d["access_token"] = json!(a);
        }
        d
    };
    assert_eq!(identify_outcome(&app, &[], key_identify(None)).await, 4004);
    assert_eq!(
        identify_outcome(&app, &[], key_identify(Some(GATE))).await,
        0
    );

    // RESUME carries it too.
    let mut ws = Ws::connect(&app).await;
    ws.send(json!({"op": 2, "d": with(json!({"access_token": GATE}))}))
        .await;
    let ready = ws.expect("READY").await;
    let session_id = ready["session_id"].as_str().unwrap().to_owned();
    drop(ws);
    let mut ws = Ws::connect(&app).await;
    ws.send(json!({"op": 6, "d": {"token": bearer, "session_id": session_id, "seq": 0}}))
        .await;
    assert_eq!(outcome(&mut ws).await, 4004);
    let (mut ws, first) = resume(
        &app,
        json!({"token": bearer, "session_id": session_id, "seq": 0, "access_token": GATE}),
    )
    .await;
    assert_eq!(first["t"], "RESUMED", "{first}");
    ws.heartbeat().await;
}
