//! `POST /messages/{m}/stop`: a participant who may send stops an answer once; everyone else is
//! refused as the rest of the API refuses them; of many stops (and the stream's own end) at
//! once exactly one wins.

use super::*;
use crate::cases::{Caller, Token};
use crate::keys::make_key;
use conclave_core::types::MessageStatus;
use conclave_server::config::OnOff;
use reqwest::Method;

// Without rate limits: a hundred requests at once are the point of one test.
crate::both_backends!(
    with crate::helpers::spawn_app_unlimited;
    a_participant_stops_an_answer_once,
    only_those_who_may_send_there_stop,
    of_a_hundred_stops_exactly_one_wins,
    a_stop_on_another_node_ends_the_stream_at_its_next_write,
);

fn stop_path(id: &str) -> String {
    format!("/api/v1/messages/{id}/stop")
}

async fn a_participant_stops_an_answer_once(app: TestApp) {
    let r = room(&app).await;
    let (mut alice, _) = Ws::identify(&app, &r.alice.token).await;
    let mut s = r.open(&app).await;
    let id = s.message.id.to_string();
    delta(&app, &mut s, 0, "partial").await;
    delta(&app, &mut s, 250, " text").await;
    let stopped = app
        .post_empty(&stop_path(&id), &r.bob.token)
        .await
        .expect(200);
    assert_eq!(stopped.body["content"], "partial text");
    assert_eq!(stopped.body["status"], "stopped");
    assert_eq!(stopped.body["status_reason"], "stopped_by_user");
    app.post_empty(&stop_path(&id), &r.bob.token)
        .await
        .expect_error(409, "not_streaming");
    // The stream hears of it at its next delta, and writes nothing more.
    assert_eq!(delta(&app, &mut s, 250, " ignored").await, Flow::Stopped);
    let end = close(&app, s, StreamEnd::Complete).await;
    assert_eq!(end.status, MessageStatus::Stopped);
    assert_eq!(end.content.as_deref(), Some("partial text"));
    alice.expect("MESSAGE_CREATE").await;
    expect_delta(&mut alice, &id, 0, "partial").await;
    expect_delta(&mut alice, &id, 1, " text").await;
    let update = alice.expect("MESSAGE_UPDATE").await;
    assert_eq!(update["status"], "stopped", "{update}");
    app.says(&r.conv, &r.bob, "after").await;
    assert_eq!(alice.expect("MESSAGE_CREATE").await["content"], "after");
    // A plain message is not a stream.
    let plain = app.says(&r.conv, &r.bob, "plain").await.id();
    app.post_empty(&stop_path(&plain), &r.alice.token)
        .await
        .expect_error(409, "not_streaming");
    // An impersonated session writes only the user's own messages (AUTH-12): an agent's answer
    // is not one, so the stop is refused and audited as such.
    let admin = app.bootstrap().await;
    let as_bob = app.impersonation(&admin, &r.bob).await;
    let s = r.open(&app).await;
    let id = s.message.id.to_string();
    app.post_empty(&stop_path(&id), &as_bob)
        .await
        .expect_error(403, "impersonation_forbidden");
    let audit = app.audit_of("impersonation.denied").await;
    let refused = audit.items().iter().any(|row| {
        row["resource"]["id"]
            .as_str()
            .is_some_and(|r| r.contains("/messages/{m}/stop"))
    });
    assert!(refused, "{}", audit.body);
    let end = close(&app, s, StreamEnd::Complete).await;
    assert_eq!(
        end.status,
        MessageStatus::Complete,
        "the refused stop changed nothing"
    );
}

async fn only_those_who_may_send_there_stop(app: TestApp) {
    let r = room(&app).await;
    let s = r.open(&app).await;
    let id = s.message.id.to_string();
    let path = stop_path(&id);
    let dave_out = conv_path(&r.conv, &format!("/participants/{}", r.dave.id));
    app.delete(&dave_out, &r.alice.token).await.expect(204);
    let (_, read_only) = make_key(
        &app,
        &r.bob,
        json!({"name": "ro", "org_id": r.org, "scopes": ["messages:read"]}),
    )
    .await;
    let bobs = app.group(&r.org, &r.bob, &[], json!("private")).await;
    let (_, elsewhere) = make_key(
        &app,
        &r.bob,
        json!({"name": "listed", "org_id": r.org, "scopes": ["messages:read", "messages:write"], "conversation_ids": [bobs]}),
    )
    .await;
    app.expect_all([
        r.carol.post_empty(&path).err(404, "not_found"),
        r.dave.post_empty(&path).err(404, "not_found"),
        r.mallory.post_empty(&path).err(404, "not_found"),
        r.vic.post_empty(&path).err(403, "forbidden"),
        Token("a read-only key", &read_only)
            .post_empty(&path)
            .err(403, "insufficient_scope"),
        Token("a key listing another conversation", &elsewhere)
            .post_empty(&path)
            .err(403, "insufficient_scope"),
        Token("nobody's token", "not-a-token")
            .post_empty(&path)
            .err(401, "invalid_token"),
    ])
    .await;
    // A bot of the org outside the conversation cannot see it.
    let other = make_bot(&app, &r.org, &r.alice, json!({"name": "other"})).await;
    app.as_bot(Method::POST, &path, &other.token, None)
        .await
        .expect_error(404, "not_found");
    // A disabled account's session is refused before anything else.
    let admin = app.bootstrap().await;
    app.set_disabled(&admin.token, &r.bob, true).await;
    app.post_empty(&path, &r.bob.token)
        .await
        .expect_error(401, "invalid_token");
    // None of that stopped it: the stream goes on, and a participant who may send stops it.
    let shown = listed(&app, &r.conv, &r.alice, &id).await;
    assert_eq!(shown["status"], "streaming");
    app.post_empty(&path, &r.alice.token).await.expect(200);
    // The agent's own bot participates and may send: it may stop (its own) answers too.
    let s2 = r.open(&app).await;
    let path2 = stop_path(&s2.message.id.to_string());
    app.as_bot(Method::POST, &path2, &r.bot.token, None)
        .await
        .expect(200);
    for s in [s, s2] {
        let end = close(&app, s, StreamEnd::Complete).await;
        assert_eq!(end.status, MessageStatus::Stopped);
    }
}

async fn of_a_hundred_stops_exactly_one_wins(app: TestApp) {
    let r = room(&app).await;
    let s = r.open(&app).await;
    let path = stop_path(&s.message.id.to_string());
    let stops = (0..100).map(|_| app.post_empty(&path, &r.bob.token));
    let answers = futures::future::join_all(stops).await;
    assert_eq!(only(answers, 200, (409, "not_streaming")).len(), 1);
    let end = close(&app, s, StreamEnd::Complete).await;
    assert_eq!(end.status, MessageStatus::Stopped);
    // Stops racing the stream's own end: exactly one of them wins, and the message says which.
    let s = r.open(&app).await;
    let id = s.message.id.to_string();
    let path = stop_path(&id);
    let stops = futures::future::join_all((0..50).map(|_| app.post_empty(&path, &r.bob.token)));
    let end = close(&app, s, StreamEnd::Complete);
    let (answers, end) = tokio::join!(stops, end);
    let won = only(answers, 200, (409, "not_streaming")).len();
    match end.status {
        MessageStatus::Stopped => assert_eq!(won, 1),
        MessageStatus::Complete => assert_eq!(won, 0),
        other => panic!("ended {other:?}"),
    }
    let stored = listed(&app, &r.conv, &r.alice, &id).await;
    assert_eq!(stored["status"], end.status.as_str());
}

/// Node B shares the database with node A, where the answer streams, but not its memory: the
/// stop reaches the stream through the conditional write alone.
async fn a_stop_on_another_node_ends_the_stream_at_its_next_write(app: TestApp) {
    let r = room(&app).await;
    let (data_dir, database_url) = (app.data_dir.clone(), app.database_url.clone());
    let b = spawn_app_with(app.backend, |c| {
        c.data_dir = data_dir;
        c.database_url = database_url;
        c.rate_limits = OnOff::Off;
    })
    .await
    .expect("node B starts");
    let mut s = r.open(&app).await;
    let id = s.message.id.to_string();
    delta(&app, &mut s, 0, "one").await;
    let stopped = b
        .post_empty(&stop_path(&id), &r.bob.token)
        .await
        .expect(200);
    assert_eq!(stopped.body["status"], "stopped");
    // Node A learns of it at its next write of the text so far (at most 250 ms later), and
    // from then on takes nothing more.
    assert_eq!(delta(&app, &mut s, 10, " two").await, Flow::Continue);
    assert_eq!(delta(&app, &mut s, 250, " three").await, Flow::Stopped);
    assert_eq!(delta(&app, &mut s, 250, " four").await, Flow::Stopped);
    let end = close(&app, s, StreamEnd::Complete).await;
    assert_eq!(end.status, MessageStatus::Stopped);
    assert_eq!(end.status_reason.as_deref(), Some("stopped_by_user"));
    let shown = listed(&b, &r.conv, &r.alice, &id).await;
    assert_eq!(shown["status"], "stopped");
    b.post_empty(&stop_path(&id), &r.bob.token)
        .await
        .expect_error(409, "not_streaming");
}
