//! AUTH-4a: 2FA enforcement is total. A member of an org that requires 2FA who has not enabled
//! it — through a session, an API key they made or a bot they created — is refused that org's
//! routes, is listed nothing of it, and receives none of its gateway events: open sockets get
//! `ORG_ACCESS_LOST` and stay open for other orgs, then `ORG_ACCESS_RESTORED` and the org's
//! events again (4004 stays for revoked credentials). The per-user requirement reaches every
//! credential at once (403, sockets closed with 4014). AZ-5a: a key's socket receives an event
//! type only with the scope that reads it over REST.

use crate::both_backends;
use crate::bots::identify_bot;
use crate::cases::Caller;
use crate::fixtures::{Acme, Team};
use crate::helpers::*;
use crate::keys::make_key;
use crate::mfa::{code_at, enable_2fa};
use crate::ws::Ws;
use reqwest::Method;
use serde_json::{json, Value};

both_backends!(
    org_2fa_reaches_every_credential_on_rest,
    org_2fa_reaches_open_sockets_of_that_org_only,
    a_resumed_socket_stays_locked_out,
    per_user_requirement_reaches_every_credential,
    key_sockets_receive_only_what_their_scopes_read,
);

/// The ids in a list answer (`items`) or in READY's `conversations`.
fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect()
}

/// A bot made by `by` in `org`, participating in `conv`: its token.
async fn bot_in(app: &TestApp, org: &str, by: &User, conv: &str, name: &str) -> String {
    let made = crate::bots::make_bot(app, org, by, json!({"name": name})).await;
    let participants = format!("/api/v1/conversations/{conv}/participants");
    app.post(&participants, &by.token, json!({"user_id": made.user_id}))
        .await
        .expect(201);
    made.token
}

/// Sets the org's requirement as `who`.
async fn require(app: &TestApp, org: &str, who: &User, on: bool) {
    app.update_org(org, who, json!({"require_2fa": on}))
        .await
        .expect(200);
}

async fn org_2fa_reaches_every_credential_on_rest(app: TestApp) {
    let Team(owner, [ann, bob], acme) = app
        .team("owner", "Acme", [("ann", "admin"), ("bob", "member")])
        .await;
    let conv = app.group(&acme, &owner, &[&ann, &bob], json!("org")).await;
    let open = app.group(&acme, &owner, &[], json!("org")).await;
    // Bob's own org, which does not require 2FA.
    let other = app.org(&bob, "Other").await;
    let mine = app.group(&other, &bob, &[], json!("private")).await;
    let spec = json!({"name": "k", "org_id": acme,
            "scopes": ["messages:read", "messages:write", "conversations:read", "org:read"]});
    let (_, key) = make_key(&app, &bob, spec).await;
    let anns_bot = bot_in(&app, &acme, &ann, &conv, "anns-bot").await;
    enable_2fa(&app, &owner).await;
    let owners_bot = bot_in(&app, &acme, &owner, &conv, "owners-bot").await;
    let messages = format!("/api/v1/conversations/{conv}/messages");
    // Before: every credential reads the org.
    app.get(&messages, &key).await.expect(200);
    app.as_bot(Method::GET, &messages, &anns_bot, None)
        .await
        .expect(200);
    require(&app, &acme, &owner, true).await;

    // The session: nothing of Acme is listed, its routes answer mfa_setup_required.
    let orgs = app.get("/api/v1/orgs", &bob.token).await.expect(200);
    assert_eq!(
        ids(&orgs.body["items"]),
        vec![other.clone()],
        "{}",
        orgs.body
    );
    let convs = app
        .get("/api/v1/conversations", &bob.token)
        .await
        .expect(200);
    assert_eq!(ids(&convs.body["items"]), vec![mine.clone()]);
    let available = app
        .get("/api/v1/conversations/available", &bob.token)
        .await
        .expect(200);
    assert!(
        !ids(&available.body["items"]).contains(&open),
        "{}",
        available.body
    );
    app.expect_all([
        bob.get(&messages).err(403, "mfa_setup_required"),
        // Nor the profiles of people he shares only Acme with (his own stays readable).
        bob.get(&format!("/api/v1/users/{}", ann.id))
            .err(404, "not_found"),
        bob.get(&format!("/api/v1/users/{}", bob.id)).is(200),
    ])
    .await;
    // The key the member made: refused and listed nothing, writing included.
    app.get(&messages, &key)
        .await
        .expect_error(403, "mfa_setup_required");
    app.post(&messages, &key, json!({"content": "let me in"}))
        .await
        .expect_error(403, "mfa_setup_required");
    app.get(&org_path(&acme, ""), &key)
        .await
        .expect_error(403, "mfa_setup_required");
    let keyed = app.get("/api/v1/conversations", &key).await.expect(200);
    assert_eq!(keyed.body["items"], json!([]));
    assert_eq!(
        app.get("/api/v1/orgs", &key).await.expect(200).body["items"],
        json!([])
    );
    // The bot of a member without 2FA is held to its creator's standing; the owner's is not.
    app.as_bot(Method::GET, &messages, &anns_bot, None)
        .await
        .expect_error(403, "mfa_setup_required");
    app.as_bot(Method::GET, &messages, &owners_bot, None)
        .await
        .expect(200);
    // The other org is untouched.
    app.get(&conv_path(&mine, "/messages"), &bob.token)
        .await
        .expect(200);

    // Enabling 2FA opens every credential again.
    enable_2fa(&app, &bob).await;
    app.get(&messages, &key).await.expect(200);
    let keyed = app.get("/api/v1/conversations", &key).await.expect(200);
    assert_eq!(ids(&keyed.body["items"]), vec![conv.clone()]);
    let orgs = app.get("/api/v1/orgs", &bob.token).await.expect(200);
    assert_eq!(ids(&orgs.body["items"]).len(), 2);
    app.get(&format!("/api/v1/users/{}", ann.id), &bob.token)
        .await
        .expect(200);
    enable_2fa(&app, &ann).await;
    app.as_bot(Method::GET, &messages, &anns_bot, None)
        .await
        .expect(200);
}

/// `(t, d)` of the next event on a socket.
async fn next(ws: &mut Ws) -> (String, Value) {
    let e = ws.event().await;
    (
        e["t"].as_str().unwrap_or_default().to_owned(),
        e["d"].clone(),
    )
}

async fn org_2fa_reaches_open_sockets_of_that_org_only(app: TestApp) {
    let Team(alice, [bob, carol], acme) = app
        .team("alice", "Acme", [("bob", "member"), ("carol", "admin")])
        .await;
    let shared = app
        .group(&acme, &alice, &[&bob, &carol], json!("private"))
        .await;
    // A bot carol (without 2FA) made answers to her standing.
    let carols_bot = bot_in(&app, &acme, &carol, &shared, "carols-bot").await;
    let other = app.org(&bob, "Other").await;
    let elsewhere = app.group(&other, &bob, &[], json!("private")).await;
    let scopes = json!(["messages:read", "conversations:read"]);
    let spec = json!({"name": "acme", "org_id": acme, "scopes": scopes});
    let (_, acme_key) = make_key(&app, &bob, spec).await;
    let spec = json!({"name": "other", "org_id": other, "scopes": scopes, "tier": "team"});
    let (_, other_key) = make_key(&app, &bob, spec).await;
    enable_2fa(&app, &alice).await;
    let (mut session, _) = Ws::identify(&app, &bob.token).await;
    let (mut keyed, ready) = Ws::identify(&app, &acme_key).await;
    assert_eq!(ids(&ready["conversations"]), vec![shared.clone()]);
    let (mut other_socket, _) = Ws::identify(&app, &other_key).await;
    let (mut carols, _) = Ws::identify(&app, &carol.token).await;
    let (mut bot, ready) = identify_bot(&app, &carols_bot).await;
    assert_eq!(ids(&ready["conversations"]), vec![shared.clone()]);

    require(&app, &acme, &alice, true).await;
    for ws in [&mut session, &mut keyed, &mut carols, &mut bot] {
        let (t, d) = next(ws).await;
        assert_eq!(t, "ORG_ACCESS_LOST");
        assert_eq!(d, json!({"org_id": acme, "reason": "mfa_setup_required"}));
    }
    // Nothing of Acme follows — its messages, a new conversation with bob in it and that
    // conversation's messages — while the other org's events still do, on every socket.
    app.says(&shared, &alice, "secret").await;
    let created = app.group(&acme, &alice, &[&bob], json!("private")).await;
    app.says(&created, &alice, "also secret").await;
    let m = app.says(&elsewhere, &bob, "still here").await;
    for ws in [&mut session, &mut other_socket] {
        let (t, d) = next(ws).await;
        assert_eq!((t.as_str(), &d["id"]), ("MESSAGE_CREATE", &m.body["id"]));
    }
    // A new session starts without Acme; a new Acme key socket with nothing.
    let (_, ready) = Ws::identify(&app, &bob.token).await;
    assert_eq!(ids(&ready["conversations"]), vec![elsewhere.clone()]);
    let (_, ready) = Ws::identify(&app, &acme_key).await;
    assert_eq!(ready["conversations"], json!([]));

    // Bob turns 2FA on: Acme comes back, the conversation created meanwhile included.
    enable_2fa(&app, &bob).await;
    for ws in [&mut session, &mut keyed] {
        let (t, d) = next(ws).await;
        assert_eq!(t, "ORG_ACCESS_RESTORED");
        assert_eq!(d, json!({"org_id": acme}));
    }
    let first = app.send_message(&shared, &alice, "welcome back").await;
    let second = app.send_message(&created, &alice, "and here").await;
    for ws in [&mut session, &mut keyed] {
        for sent in [&first, &second] {
            let (t, d) = next(ws).await;
            assert_eq!((t.as_str(), &d["id"]), ("MESSAGE_CREATE", &sent.body["id"]));
        }
    }
    // Carol (still without 2FA) and her bot regain the org when it stops requiring it.
    require(&app, &acme, &alice, false).await;
    for ws in [&mut carols, &mut bot] {
        let (t, d) = next(ws).await;
        assert_eq!(
            (t.as_str(), d),
            ("ORG_ACCESS_RESTORED", json!({"org_id": acme}))
        );
    }
    // The next message is the first they get: nothing sent while locked out came.
    let last = app.send_message(&shared, &alice, "hi carol").await;
    for ws in [&mut carols, &mut bot] {
        let (t, d) = next(ws).await;
        assert_eq!((t.as_str(), &d["id"]), ("MESSAGE_CREATE", &last.body["id"]));
    }
    // Every socket stayed open throughout.
    for ws in [
        &mut session,
        &mut keyed,
        &mut other_socket,
        &mut carols,
        &mut bot,
    ] {
        ws.heartbeat().await;
        loop {
            let f = ws.frame().await.expect("the socket is still open");
            if f["op"] == 11 {
                break;
            }
        }
    }
}

/// Resumes `session_id` as `token` once the old connection's checkpoint is saved (the server
/// saves it when it notices the close); answers the socket and its first frame.
async fn resume(app: &TestApp, token: &str, session_id: &str, seq: u64) -> (Ws, Value) {
    for _ in 0..100 {
        let mut ws = Ws::connect(app).await;
        ws.last_s = seq;
        ws.send(json!({"op": 6, "d": {"token": format!("Bearer {token}"), "session_id": session_id, "seq": seq}}))
            .await;
        let f = ws.frame().await.expect("an answer to RESUME");
        if f["op"] != 9 {
            return (ws, f);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the session never became resumable");
}

/// A socket that resumes while its user is locked out gets nothing of the org replayed, and
/// still gets the org back when access is restored.
async fn a_resumed_socket_stays_locked_out(app: TestApp) {
    let Acme { alice, bob, org } = app.acme().await;
    let shared = app.group(&org, &alice, &[&bob], json!("private")).await;
    let other = app.org(&bob, "Other").await;
    let elsewhere = app.group(&other, &bob, &[], json!("private")).await;
    enable_2fa(&app, &alice).await;
    let (mut ws, ready) = Ws::identify(&app, &bob.token).await;
    let session_id = ready["session_id"].as_str().unwrap().to_owned();
    require(&app, &org, &alice, true).await;
    ws.expect("ORG_ACCESS_LOST").await;
    ws.heartbeat().await;
    let seen = ws.last_s;
    drop(ws);
    app.says(&shared, &alice, "secret").await;
    let mine = app.says(&elsewhere, &bob, "mine").await;
    let (mut ws, first) = resume(&app, &bob.token, &session_id, seen).await;
    assert_eq!(first["t"], "MESSAGE_CREATE", "{first}");
    assert_eq!(first["d"]["id"], mine.body["id"]);
    ws.last_s = first["s"].as_u64().unwrap();
    assert_eq!(ws.expect("RESUMED").await["replayed"], 1);
    enable_2fa(&app, &bob).await;
    assert_eq!(
        ws.expect("ORG_ACCESS_RESTORED").await["org_id"],
        org.as_str()
    );
    let back = app.send_message(&shared, &alice, "welcome").await;
    assert_eq!(ws.expect("MESSAGE_CREATE").await["id"], back.body["id"]);
}

async fn per_user_requirement_reaches_every_credential(app: TestApp) {
    let admin = app.bootstrap().await;
    let (alice, org, conv) = app.alice_private().await;
    let spec = json!({"name": "k", "org_id": org, "scopes": ["messages:read"], "tier": "team"});
    let (_, key) = make_key(&app, &alice, spec).await;
    let (mut session, _) = Ws::identify(&app, &alice.token).await;
    let (mut keyed, _) = Ws::identify(&app, &key).await;
    let messages = format!("/api/v1/conversations/{conv}/messages");
    app.get(&messages, &key).await.expect(200);
    let body = json!({"require_2fa": true});
    app.update_user(&admin.token, &alice, body)
        .await
        .expect(200);
    // Open sockets close at once with 4014, the key's too; the key is refused on REST, and
    // on the gateway.
    shut_out(&app, [&mut session, &mut keyed], &key, &messages).await;
    let mut again = Ws::connect(&app).await;
    again
        .send(json!({"op": 2, "d": {"token": format!("Bearer {key}"), "client": "tests/1.0.0"}}))
        .await;
    assert_eq!(again.close_code().await, 4014);
    // Her account stays readable.
    app.get("/api/v1/users/@me", &alice.token).await.expect(200);
    let (secret, _) = enable_2fa(&app, &alice).await;
    app.get(&messages, &key).await.expect(200);
    let (mut session, _) = Ws::identify(&app, &alice.token).await;
    let (mut keyed, _) = Ws::identify(&app, &key).await;
    // Turning it off again under the requirement: refused at once on every credential, the
    // open sockets close with 4014.
    crate::mfa::send_code(&app, &alice, "totp/disable", code_at(&app, &secret, 0))
        .await
        .expect(204);
    shut_out(&app, [&mut session, &mut keyed], &key, &messages).await;
}

/// Each of `sockets` closes with 4014 (AUTH-4a) and `key` is refused at `path` on REST.
async fn shut_out(app: &TestApp, sockets: [&mut Ws; 2], key: &str, path: &str) {
    for ws in sockets {
        assert_eq!(ws.close_code().await, 4014);
    }
    app.get(path, key)
        .await
        .expect_error(403, "mfa_setup_required");
}

async fn key_sockets_receive_only_what_their_scopes_read(app: TestApp) {
    let Acme { alice, bob, org } = app.acme().await;
    let conv = app.group(&org, &alice, &[], json!("private")).await;
    let key_with = |scopes: Value| {
        let app = &app;
        let alice = &alice;
        let org = org.clone();
        async move {
            make_key(
                app,
                alice,
                json!({"name": "k", "org_id": org, "scopes": scopes, "tier": "team"}),
            )
            .await
            .1
        }
    };
    let messages_only = key_with(json!(["messages:read"])).await;
    let both = key_with(json!(["messages:read", "conversations:read"])).await;
    let (mut narrow, _) = Ws::identify(&app, &messages_only).await;
    let (mut wide, _) = Ws::identify(&app, &both).await;
    narrow.skip_presence = false;
    wide.skip_presence = false;
    // Bob joins, comes online and types; alice renames the conversation and writes.
    app.add_participant(&conv, &alice, &bob.id).await;
    let (_bobs, _) = Ws::identify(&app, &bob.token).await;
    app.expect_all([
        bob.post_empty(&conv_path(&conv, "/typing")).is(204),
        alice
            .patch(&conv_path(&conv, ""), json!({"name": "Renamed"}))
            .is(200),
    ])
    .await;
    let m = app.says(&conv, &alice, "hello").await;
    // messages:read alone: typing and the message, nothing about conversations or presence.
    assert_eq!(next(&mut narrow).await.0, "TYPING_START");
    let (t, d) = next(&mut narrow).await;
    assert_eq!((t.as_str(), &d["id"]), ("MESSAGE_CREATE", &m.body["id"]));
    // With conversations:read too, everything.
    let mut seen = Vec::new();
    loop {
        let (t, d) = next(&mut wide).await;
        seen.push(t.clone());
        if t == "MESSAGE_CREATE" && d["id"] == m.body["id"] {
            break;
        }
    }
    for t in [
        "PARTICIPANT_ADD",
        "PRESENCE_UPDATE",
        "TYPING_START",
        "CONVERSATION_UPDATE",
    ] {
        assert!(seen.iter().any(|s| s == t), "{t} in {seen:?}");
    }
}
