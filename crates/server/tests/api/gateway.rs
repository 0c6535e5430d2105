//! MSG-4, MSG-5, RATE-3, CORE-9/10 on one node: the gateway protocol, live authorization,
//! revocation, typing, read markers, presence and RESUME. Runs on both backends.

use crate::both_backends;
use crate::fixtures::Acme;
use crate::helpers::*;
use crate::ws::Ws;
use serde_json::{json, Value};

both_backends!(
    identify_and_ready,
    protocol_errors_close_with_typed_codes,
    events_follow_rest_and_stay_in_their_org,
    removal_and_deletion_stop_events_at_once,
    a_lost_removal_stops_events_within_a_few_heartbeats,
    a_lost_2fa_lockout_holds_events_back_within_a_few_heartbeats,
    revoked_credentials_close_sockets,
    typing_read_markers_and_presence,
    resume_replays_what_was_missed,
    browsers_identify_with_their_cookie_from_allowed_origins,
    requiring_2fa_reaches_open_sockets,
);

struct World {
    alice: User,
    bob: User,
    outsider: User,
    org: String,
    conv: String,
    /// A conversation only the outsider is in, in another org: a marker for "nothing else came".
    outsider_conv: String,
    /// One only alice is in.
    alice_solo: String,
    bob_solo: String,
}

async fn world(app: &TestApp) -> World {
    let Acme { alice, bob, org } = app.acme().await;
    let outsider = app.user("outsider").await;
    let conv = app.group(&org, &alice, &[&bob], json!("private")).await;
    let other = app.org(&outsider, "Elsewhere").await;
    let outsider_conv = app.group(&other, &outsider, &[], json!("private")).await;
    let alice_solo = app.group(&org, &alice, &[], json!("private")).await;
    let bob_solo = app.group(&org, &bob, &[], json!("private")).await;
    World {
        alice,
        bob,
        outsider,
        org,
        conv,
        outsider_conv,
        alice_solo,
        bob_solo,
    }
}

/// Sends a marker message in `conv` as `by` and checks it is the next event `ws` sees.
async fn next_is_marker(app: &TestApp, ws: &mut Ws, conv: &str, by: &User) {
    let m = app.says(conv, by, "marker").await.id();
    let d = ws.expect("MESSAGE_CREATE").await;
    assert_eq!(d["id"], m.as_str(), "nothing came before the marker");
}

async fn identify_and_ready(app: TestApp) {
    let w = world(&app).await;
    app.says(&w.conv, &w.alice, "one").await;
    let two = app.says(&w.conv, &w.alice, "two").await.id();
    mark_read(&app, &w.conv, &w.bob, json!(two))
        .await
        .expect(204);
    app.says(&w.conv, &w.alice, "three").await;
    let (ws, ready) = Ws::identify(&app, &w.bob.token).await;
    assert!(ws.hello["d"]["heartbeat_interval_ms"].as_u64().unwrap() > 0);
    assert_eq!(ready["user"]["id"], w.bob.id.as_str());
    assert!(ready["session_id"].is_string());
    assert!(ready["resume_window_s"].as_u64().unwrap() > 0);
    let convs = ready["conversations"].as_array().unwrap();
    assert_eq!(convs.len(), 2, "bob's two conversations: {ready}");
    let c = convs.iter().find(|c| c["id"] == w.conv.as_str()).unwrap();
    assert_eq!(c["last_seq"], 3);
    assert_eq!(c["last_read_message_id"], two.as_str());
    assert_eq!(c["unread_count"], 1);
    // Capabilities announce the gateway.
    let caps = app.get_anon("/api/v1/capabilities").await;
    assert_eq!(caps.body["features"]["gateway"], true);
    assert_eq!(caps.body["limits"]["frame_max_bytes"], 65536);
}

async fn protocol_errors_close_with_typed_codes(app: TestApp) {
    let w = world(&app).await;
    // Unknown protocol version: refused before the upgrade.
    let r = app.send(app.client.get(app.url("/gateway?v=2"))).await;
    r.expect_error(400, "unsupported_version");
    // A foreign Origin may not open it (cross-site WebSocket hijacking).
    let r = app
        .get_with_header("/gateway?v=1", "origin", "https://evil.example")
        .await;
    r.expect_error(403, "origin_not_allowed");
    let cases: Vec<(Value, u16)> = vec![
        (
            json!({"op": 2, "d": {"token": "Bearer cnv_s_nonsense", "client": "t/1.0.0", "protocol_version": 1}}),
            4004,
        ),
        (
            json!({"op": 2, "d": {"client": "t/1.0.0", "protocol_version": 1}}),
            4004,
        ),
        (json!({"op": 3, "d": {"status": "online"}}), 4003),
        (json!({"op": 42, "d": null}), 4001),
        (
            json!({"op": 2, "d": {"token": format!("Bearer {}", w.alice.token), "protocol_version": 2}}),
            4012,
        ),
    ];
    for (frame, code) in cases {
        let mut ws = Ws::connect(&app).await;
        ws.send(frame.clone()).await;
        assert_eq!(ws.close_code().await, code, "{frame}");
    }
    let mut ws = Ws::connect(&app).await;
    ws.send_raw("{not json".into()).await;
    assert_eq!(ws.close_code().await, 4002);
    // Identifying twice.
    let (mut ws, _) = Ws::identify(&app, &w.alice.token).await;
    ws.send(json!({"op": 2, "d": {"token": format!("Bearer {}", w.alice.token)}}))
        .await;
    assert_eq!(ws.close_code().await, 4005);
    // Payload too large.
    let (mut ws, _) = Ws::identify(&app, &w.alice.token).await;
    ws.send_raw(format!(
        "{{\"op\":1,\"d\":null,\"pad\":\"{}\"}}",
        "x".repeat(70 * 1024)
    ))
    .await;
    assert_eq!(ws.close_code().await, 4010);
    // Too many frames: 120 a minute.
    let (mut ws, _) = Ws::identify(&app, &w.alice.token).await;
    for _ in 0..130 {
        ws.send_raw("{\"op\":1,\"d\":null}".into()).await;
    }
    assert_eq!(ws.close_code().await, 4008);
    // Old clients.
    let old = spawn_app_with(app.backend, |c| c.min_client_version = Some("2.0.0".into()))
        .await
        .unwrap();
    let u = old.user("olduser").await;
    let mut ws = Ws::connect(&old).await;
    ws.send(json!({"op": 2, "d": {"token": format!("Bearer {}", u.token), "client": "web/1.0.0", "protocol_version": 1}})).await;
    assert_eq!(ws.close_code().await, 4012);
    // A missed heartbeat times the session out; connections per user are capped.
    let tight = spawn_app_with(app.backend, |c| {
        c.gateway.heartbeat_interval_ms = 1000;
        c.gateway.max_connections_per_user = 2;
    })
    .await
    .unwrap();
    let u = tight.user("tight").await;
    let (mut a, _) = Ws::identify(&tight, &u.token).await;
    let (mut b, _) = Ws::identify(&tight, &u.token).await;
    let mut c = Ws::connect(&tight).await;
    c.send(json!({"op": 2, "d": {"token": format!("Bearer {}", u.token)}}))
        .await;
    assert_eq!(c.close_code().await, 4008);
    b.heartbeat().await;
    assert_eq!(a.close_code().await, 4009);
}

async fn events_follow_rest_and_stay_in_their_org(app: TestApp) {
    let w = world(&app).await;
    let (mut alice, _) = Ws::identify(&app, &w.alice.token).await;
    let (mut outsider, _) = Ws::identify(&app, &w.outsider.token).await;
    let sent = app.says(&w.conv, &w.bob, "hello alice").await;
    let d = alice.expect("MESSAGE_CREATE").await;
    assert_eq!(d, sent.body, "d is the REST object");
    // The 201 is the event's payload as serialized once, still answered as JSON.
    assert_eq!(sent.headers["content-type"], "application/json");
    let id = sent.id();
    let edited = app
        .patch(
            &format!("/api/v1/messages/{id}"),
            &w.bob.token,
            json!({"content": "edited"}),
        )
        .await
        .expect(200);
    assert_eq!(alice.expect("MESSAGE_UPDATE").await, edited.body);
    app.delete(&format!("/api/v1/messages/{id}"), &w.bob.token)
        .await
        .expect(204);
    let tomb = alice.expect("MESSAGE_DELETE").await;
    assert!(tomb["content"].is_null() && tomb["deleted_at"].is_string());
    let renamed = app
        .patch(
            &format!("/api/v1/conversations/{}", w.conv),
            &w.alice.token,
            json!({"name": "Renamed"}),
        )
        .await
        .expect(200);
    assert_eq!(alice.expect("CONVERSATION_UPDATE").await, renamed.body);
    // A new conversation reaches its participants first as CONVERSATION_CREATE.
    let fresh = app
        .group(&w.org, &w.bob, &[&w.alice], json!("private"))
        .await;
    assert_eq!(
        alice.expect("CONVERSATION_CREATE").await["id"],
        fresh.as_str()
    );
    next_is_marker(&app, &mut alice, &fresh, &w.bob).await;
    // The outsider saw none of it: their next event is their own marker.
    next_is_marker(&app, &mut outsider, &w.outsider_conv, &w.outsider).await;
}

/// Runs `sql`, binding `ids` (UUIDs) in order, on the app's database behind the server's back
/// (no event says so); answers how many rows it changed.
async fn unannounced(app: &TestApp, sql: &str, ids: &[&str]) -> u64 {
    let db = crate::db::Db::of(app).await;
    crate::with_pool!(&db, p => {
        let mut q = sqlx::query(sql);
        for id in ids {
            q = q.bind(uuid::Uuid::parse_str(id).unwrap());
        }
        q.execute(p).await.unwrap().rows_affected()
    })
}

/// Three heartbeats, each answered — the third reconciles the socket with the store — and a
/// moment for the hub to apply it.
async fn reconciled(ws: &mut Ws) {
    for _ in 0..3 {
        ws.heartbeat().await;
        while ws.frame().await.expect("open")["op"] != 11 {}
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
}

/// MSG-4, AZ-3: a removal whose event never reached the hub — here the participant's row is
/// deleted in the database, with no event at all — stops the conversation's events within a
/// few heartbeats: every third one holds the socket's subscriptions against the store.
async fn a_lost_removal_stops_events_within_a_few_heartbeats(app: TestApp) {
    let w = world(&app).await;
    let (mut bob, _) = Ws::identify(&app, &w.bob.token).await;
    app.says(&w.conv, &w.alice, "seen").await;
    bob.expect("MESSAGE_CREATE").await;
    let sql = "DELETE FROM participants WHERE conversation_id = $1 AND user_id = $2";
    assert_eq!(unannounced(&app, sql, &[&w.conv, &w.bob.id]).await, 1);
    // Until then the socket still has it (the store alone changed)...
    app.says(&w.conv, &w.alice, "before the heartbeats").await;
    bob.expect("MESSAGE_CREATE").await;
    // ...after three heartbeats it no longer does.
    reconciled(&mut bob).await;
    app.says(&w.conv, &w.alice, "bob must not see this").await;
    next_is_marker(&app, &mut bob, &w.bob_solo, &w.bob).await;
}

/// AUTH-4a: an org that starts requiring 2FA — here set in the database, so no
/// `ORG_ACCESS_LOST` is ever sent — holds its events back from a member without 2FA within a
/// few heartbeats, while their other orgs' events still come.
async fn a_lost_2fa_lockout_holds_events_back_within_a_few_heartbeats(app: TestApp) {
    let w = world(&app).await;
    crate::mfa::enable_2fa(&app, &w.alice).await;
    let own = app.org(&w.bob, "Bob's own").await;
    let elsewhere = app.group(&own, &w.bob, &[], json!("private")).await;
    let (mut bob, _) = Ws::identify(&app, &w.bob.token).await;
    let sql = "UPDATE orgs SET require_2fa = TRUE WHERE id = $1";
    assert_eq!(unannounced(&app, sql, &[&w.org]).await, 1);
    app.says(&w.conv, &w.alice, "before the heartbeats").await;
    bob.expect("MESSAGE_CREATE").await;
    reconciled(&mut bob).await;
    app.says(&w.conv, &w.alice, "bob must not see this").await;
    next_is_marker(&app, &mut bob, &elsewhere, &w.bob).await;
}

async fn removal_and_deletion_stop_events_at_once(app: TestApp) {
    let w = world(&app).await;
    let carol = app.user("carol").await;
    app.add_member(&w.org, &w.alice, &carol, "member").await;
    let (mut bob, _) = Ws::identify(&app, &w.bob.token).await;
    let (mut carol_ws, _) = Ws::identify(&app, &carol.token).await;
    // Adding carol: she gets the conversation first, then the participant event.
    let parts = conv_path(&w.conv, "/participants");
    let body = json!({"user_id": carol.id});
    app.post(&parts, &w.alice.token, body).await.expect(201);
    assert_eq!(
        carol_ws.expect("CONVERSATION_CREATE").await["id"],
        w.conv.as_str()
    );
    let add = carol_ws.expect("PARTICIPANT_ADD").await;
    assert_eq!(add["user_id"], carol.id.as_str());
    assert_eq!(
        bob.expect("PARTICIPANT_ADD").await["user_id"],
        carol.id.as_str()
    );
    // Removing bob: his last event of the conversation is his own removal.
    let bob_part = format!("{parts}/{}", w.bob.id);
    app.delete(&bob_part, &w.alice.token).await.expect(204);
    let rm = bob.expect("PARTICIPANT_REMOVE").await;
    assert_eq!(rm["user_id"], w.bob.id.as_str());
    assert_eq!(rm["conversation_id"], w.conv.as_str());
    app.says(&w.conv, &w.alice, "bob must not see this").await;
    carol_ws.expect("PARTICIPANT_REMOVE").await;
    carol_ws.expect("MESSAGE_CREATE").await;
    next_is_marker(&app, &mut bob, &w.bob_solo, &w.bob).await;
    // Removing carol from the org removes her from its conversations, live.
    app.remove_member(&w.org, &w.alice, &carol.id).await;
    assert_eq!(
        carol_ws.expect("PARTICIPANT_REMOVE").await["user_id"],
        carol.id.as_str()
    );
    app.says(&w.conv, &w.alice, "carol is gone").await;
    // Deleting the conversation: the last event, for everyone.
    let (mut alice, _) = Ws::identify(&app, &w.alice.token).await;
    app.delete(&format!("/api/v1/conversations/{}", w.conv), &w.alice.token)
        .await
        .expect(204);
    assert_eq!(
        alice.expect("CONVERSATION_DELETE").await["id"],
        w.conv.as_str()
    );
    next_is_marker(&app, &mut alice, &w.alice_solo, &w.alice).await;
    // Carol's socket saw nothing after her removal: her next event is a conversation of her own.
    let her_org = app.org(&carol, "Carol's").await;
    let hers = app.group(&her_org, &carol, &[], json!("private")).await;
    assert_eq!(
        carol_ws.expect("CONVERSATION_CREATE").await["id"],
        hers.as_str()
    );
}

async fn revoked_credentials_close_sockets(app: TestApp) {
    let w = world(&app).await;
    // Logout closes that session's sockets with 4004.
    let (mut ws, _) = Ws::identify(&app, &w.alice.token).await;
    app.logout(&w.alice.token).await;
    assert_eq!(ws.close_code().await, 4004);
    // Revoking one session by id.
    let t2 = app.login("alice", PASSWORD).await.string("token");
    let t3 = app.login("alice", PASSWORD).await.string("token");
    let (mut ws2, _) = Ws::identify(&app, &t2).await;
    let (mut ws3, _) = Ws::identify(&app, &t3).await;
    let sid2 = app.get("/api/v1/auth/session", &t2).await.body["session"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.delete(&format!("/api/v1/auth/sessions/{sid2}"), &t3)
        .await
        .expect(204);
    assert_eq!(ws2.close_code().await, 4004);
    // A password change revokes the others but keeps the caller's own.
    let t4 = app.login("alice", PASSWORD).await.string("token");
    let (mut ws4, _) = Ws::identify(&app, &t4).await;
    app.post(
        "/api/v1/auth/password",
        &t3,
        json!({"current_password": PASSWORD, "new_password": "another long passphrase"}),
    )
    .await
    .expect(204);
    assert_eq!(ws4.close_code().await, 4004);
    next_is_marker(&app, &mut ws3, &w.alice_solo, &w.alice.with_token(&t3)).await;
    // Disabling the account closes everything.
    let (mut bob_ws, _) = Ws::identify(&app, &w.bob.token).await;
    app.set_disabled(ADMIN_TOKEN, &w.bob, true).await;
    assert_eq!(bob_ws.close_code().await, 4004);
    // A revoked token cannot identify again.
    let mut again = Ws::connect(&app).await;
    again
        .send(json!({"op": 2, "d": {"token": format!("Bearer {}", w.bob.token)}}))
        .await;
    assert_eq!(again.close_code().await, 4004);
}

async fn typing_read_markers_and_presence(app: TestApp) {
    let w = world(&app).await;
    let (mut alice, _) = Ws::identify(&app, &w.alice.token).await;
    alice.skip_presence = false;
    let (mut outsider, _) = Ws::identify(&app, &w.outsider.token).await;
    outsider.skip_presence = false;
    // Bob comes online: alice (who shares a conversation) is told.
    let (mut bob, _) = Ws::identify(&app, &w.bob.token).await;
    let p = alice.expect("PRESENCE_UPDATE").await;
    assert_eq!(p, json!({"user_id": w.bob.id, "status": "online"}));
    bob.send(json!({"op": 3, "d": {"status": "idle"}})).await;
    assert_eq!(alice.expect("PRESENCE_UPDATE").await["status"], "idle");
    // Typing reaches the other participants.
    let typing = conv_path(&w.conv, "/typing");
    app.post_empty(&typing, &w.bob.token).await.expect(204);
    let t = alice.expect("TYPING_START").await;
    assert_eq!(t["user_id"], w.bob.id.as_str());
    assert_eq!(t["conversation_id"], w.conv.as_str());
    assert!(t["at"].is_string());
    app.post_empty(&typing, &w.outsider.token).await.expect(404);
    // Read markers go to the user's own sessions only.
    let m = app.says(&w.conv, &w.alice, "read me").await.id();
    alice.expect("MESSAGE_CREATE").await;
    bob.expect("TYPING_START").await;
    bob.expect("MESSAGE_CREATE").await;
    let (mut bob2, _) = Ws::identify(&app, &w.bob.token).await;
    // One of bob's sessions is active again: online wins over idle.
    assert_eq!(alice.expect("PRESENCE_UPDATE").await["status"], "online");
    mark_read(&app, &w.conv, &w.bob, json!(m)).await.expect(204);
    let r = bob2.expect("READ_MARKER_UPDATE").await;
    assert_eq!(
        r,
        json!({"conversation_id": w.conv, "user_id": w.bob.id, "message_id": m})
    );
    assert_eq!(
        bob.expect("READ_MARKER_UPDATE").await["message_id"],
        m.as_str()
    );
    mark_read(&app, &w.conv, &w.bob, json!(uuid::Uuid::now_v7()))
        .await
        .expect_error(422, "unknown_message");
    // Bob's sockets all go: offline.
    drop(bob);
    drop(bob2);
    // The two sockets close in either order: idle may show on the way to offline.
    let mut status = alice.expect("PRESENCE_UPDATE").await["status"].clone();
    if status == "idle" {
        status = alice.expect("PRESENCE_UPDATE").await["status"].clone();
    }
    assert_eq!(status, "offline");
    // Alice saw no read marker of bob's; the outsider saw no presence, typing or messages.
    next_is_marker(&app, &mut alice, &w.alice_solo, &w.alice).await;
    next_is_marker(&app, &mut outsider, &w.outsider_conv, &w.outsider).await;
}

async fn resume_replays_what_was_missed(app: TestApp) {
    let w = world(&app).await;
    let (mut alice, ready) = Ws::identify(&app, &w.alice.token).await;
    let session_id = ready["session_id"].as_str().unwrap().to_owned();
    app.says(&w.conv, &w.bob, "m1").await;
    alice.expect("MESSAGE_CREATE").await;
    alice.heartbeat().await;
    app.says(&w.conv, &w.bob, "m2").await;
    alice.expect("MESSAGE_CREATE").await;
    let seen = alice.last_s;
    drop(alice);
    // Missed while away: m3, m4, and a removal from another conversation... then resume.
    for c in ["m3", "m4"] {
        app.says(&w.conv, &w.bob, c).await;
    }
    // Wait until the old connection's state is saved (the server notices the close).
    let (mut ws, first) = Ws::resume(&app, &w.alice.token, &session_id, seen).await;
    assert_eq!(first["t"], "MESSAGE_CREATE", "{first}");
    assert_eq!(first["d"]["content"], "m3");
    assert_eq!(first["s"].as_u64().unwrap(), seen + 1);
    ws.last_s = seen + 1;
    assert_eq!(ws.expect("MESSAGE_CREATE").await["content"], "m4");
    assert_eq!(ws.expect("RESUMED").await["replayed"], 2);
    app.says(&w.conv, &w.bob, "m5").await;
    assert_eq!(ws.expect("MESSAGE_CREATE").await["content"], "m5");
    // A session id that does not exist (or belongs to someone else) cannot be resumed.
    let mut bad = Ws::connect(&app).await;
    bad.send(json!({"op": 6, "d": {"token": format!("Bearer {}", w.bob.token), "session_id": session_id, "seq": 0}})).await;
    let f = bad.frame().await.unwrap();
    assert_eq!(
        f,
        json!({"op": 9, "d": {"resumable": false}, "s": null, "t": null})
    );
    // After INVALID_SESSION the client may identify on the same socket.
    bad.send(json!({"op": 2, "d": {"token": format!("Bearer {}", w.bob.token)}}))
        .await;
    assert_eq!(bad.expect("READY").await["user"]["id"], w.bob.id.as_str());
}

async fn browsers_identify_with_their_cookie_from_allowed_origins(app: TestApp) {
    let w = world(&app).await;
    let login = app.cookie_login("alice").await;
    let cookie = login.session_cookie();
    // From an allowed origin, IDENTIFY without a token uses the cookie.
    let mut ws = Ws::connect_with(
        &app,
        &[("origin", "https://allowed.example"), ("cookie", &cookie)],
    )
    .await;
    ws.send(json!({"op": 2, "d": {"client": "web/1.0.0", "protocol_version": 1}}))
        .await;
    assert_eq!(ws.expect("READY").await["user"]["id"], w.alice.id.as_str());
    // The server's own origin is allowed too.
    let own = app.base.clone();
    let mut ws2 = Ws::connect_with(&app, &[("origin", &own), ("cookie", &cookie)]).await;
    ws2.send(json!({"op": 2, "d": {}})).await;
    assert_eq!(ws2.expect("READY").await["user"]["id"], w.alice.id.as_str());
    // Without an Origin (not a browser), the cookie is not used.
    let mut ws3 = Ws::connect_with(&app, &[("cookie", &cookie)]).await;
    ws3.send(json!({"op": 2, "d": {}})).await;
    assert_eq!(ws3.close_code().await, 4004);
    // A bearer token cannot be smuggled in as the cookie.
    let bearer_cookie = format!("conclave_session={}", w.bob.token);
    let mut ws4 = Ws::connect_with(
        &app,
        &[
            ("origin", "https://allowed.example"),
            ("cookie", &bearer_cookie),
        ],
    )
    .await;
    ws4.send(json!({"op": 2, "d": {}})).await;
    assert_eq!(ws4.close_code().await, 4004);
}

async fn requiring_2fa_reaches_open_sockets(app: TestApp) {
    let w = world(&app).await;
    // Alice (owner) sets up 2FA; bob (member) has none and is connected.
    crate::mfa::enable_2fa(&app, &w.alice).await;
    let (mut bob, ready) = Ws::identify(&app, &w.bob.token).await;
    assert!(ready["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["id"] == w.conv.as_str()));
    let body = json!({"require_2fa": true});
    app.patch(&format!("/api/v1/orgs/{}", w.org), &w.alice.token, body)
        .await
        .expect(200);
    // Enforcement reaches the open socket at once, which stays open (4004 is for revoked
    // credentials only; see `api::org_2fa`) ...
    assert_eq!(
        bob.expect("ORG_ACCESS_LOST").await["org_id"],
        w.org.as_str()
    );
    // ... and a new one no longer lists the org's conversations (bob has no others).
    let (_again, ready) = Ws::identify(&app, &w.bob.token).await;
    assert_eq!(ready["conversations"], json!([]), "{ready}");
    // The owner, who has 2FA, keeps everything.
    let (_alice, ready) = Ws::identify(&app, &w.alice.token).await;
    assert!(ready["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["id"] == w.conv.as_str()));
}

/// `by` marks `message_id` read in `conv`.
async fn mark_read(app: &TestApp, conv: &str, by: &User, message_id: Value) -> Res {
    let path = format!("/api/v1/conversations/{conv}/read-marker");
    let body = json!({ "message_id": message_id });
    app.put(&path, &by.token, body).await
}
