//! An answer from open to end: coalesced deltas to readers only, the text so far over REST,
//! RESUME, edits refused while streaming and deletion stopping the stream.

use super::*;
use conclave_core::types::MessageStatus;
use reqwest::Method;

crate::both_backends!(
    deltas_reach_readers_in_order_and_rest_shows_the_text_so_far,
    a_resumed_client_gets_the_missed_deltas_then_the_end,
    a_streaming_answer_cannot_be_edited_and_deleting_it_stops_it,
    an_answer_its_node_left_streaming_is_ended_by_the_sweep,
    an_answer_is_searchable_by_its_final_text_once_it_ends,
    only_a_bot_that_may_send_opens_an_answer,
);

/// `d` is the message object with this content, status and reason.
#[track_caller]
fn shows(d: &Value, content: &str, status: &str, reason: Option<&str>) {
    assert_eq!(d["content"], content, "{d}");
    assert_eq!(d["status"], status, "{d}");
    assert_eq!(d["status_reason"].as_str(), reason, "{d}");
    assert!(d.as_object().unwrap().contains_key("status_reason"), "{d}");
}

async fn deltas_reach_readers_in_order_and_rest_shows_the_text_so_far(app: TestApp) {
    let r = room(&app).await;
    let (mut alice, _) = Ws::identify(&app, &r.alice.token).await;
    let (mut vic, _) = Ws::identify(&app, &r.vic.token).await;
    let (mut carol, _) = Ws::identify(&app, &r.carol.token).await;
    let (mut dave, _) = Ws::identify(&app, &r.dave.token).await;
    let (mut mallory, _) = Ws::identify(&app, &r.mallory.token).await;
    // Dave is removed first: that is the last he hears of the conversation.
    let dave_out = conv_path(&r.conv, &format!("/participants/{}", r.dave.id));
    app.delete(&dave_out, &r.alice.token).await.expect(204);
    for ws in [&mut alice, &mut vic, &mut dave] {
        ws.expect("PARTICIPANT_REMOVE").await;
    }

    let mut s = r.open(&app).await;
    let id = s.message.id.to_string();
    for ws in [&mut alice, &mut vic] {
        let d = ws.expect("MESSAGE_CREATE").await;
        shows(&d, "", "streaming", None);
        assert_eq!(d["author"]["kind"], "bot");
        assert_eq!(d["format"], "text");
    }
    // The first delta goes out at once; the next within 50 ms is held and joined.
    assert_eq!(delta(&app, &mut s, 0, "Hel").await, Flow::Continue);
    assert_eq!(delta(&app, &mut s, 10, "lo").await, Flow::Continue);
    assert_eq!(delta(&app, &mut s, 40, ", wor").await, Flow::Continue);
    // Nothing is written before 250 ms; then the text so far is, for REST.
    shows(
        &listed(&app, &r.conv, &r.bob, &id).await,
        "",
        "streaming",
        None,
    );
    assert_eq!(delta(&app, &mut s, 200, "ld").await, Flow::Continue);
    let so_far = listed(&app, &r.conv, &r.bob, &id).await;
    shows(&so_far, "Hello, world", "streaming", None);
    let one = app
        .get(&format!("/api/v1/messages/{id}/history"), &r.bob.token)
        .await
        .expect(200);
    assert!(one.items().is_empty(), "writing the text so far is no edit");
    // A held delta goes out when the writer flushes (its model paused), and what is held
    // when the answer ends goes out before the end.
    assert_eq!(delta(&app, &mut s, 10, "!").await, Flow::Continue);
    assert_eq!(
        app.services.stream_flush(&mut s).await.unwrap(),
        Flow::Continue
    );
    assert_eq!(delta(&app, &mut s, 10, "?").await, Flow::Continue);
    assert_eq!(s.text(), "Hello, world!?");
    let done = close(&app, s, StreamEnd::Complete).await;
    assert_eq!(done.content.as_deref(), Some("Hello, world!?"));
    assert_eq!(
        (done.status, done.status_reason),
        (MessageStatus::Complete, None)
    );
    for ws in [&mut alice, &mut vic] {
        expect_delta(ws, &id, 0, "Hel").await;
        expect_delta(ws, &id, 1, "lo, wor").await;
        expect_delta(ws, &id, 2, "ld").await;
        expect_delta(ws, &id, 3, "!").await;
        expect_delta(ws, &id, 4, "?").await;
        shows(
            &ws.expect("MESSAGE_UPDATE").await,
            "Hello, world!?",
            "complete",
            None,
        );
    }
    shows(
        &listed(&app, &r.conv, &r.bob, &id).await,
        "Hello, world!?",
        "complete",
        None,
    );
    // A member outside the conversation, a removed participant and another org heard none
    // of it: their next event is the barrier.
    app.says(&r.lounge, &r.alice, "barrier").await;
    for ws in [&mut carol, &mut dave] {
        assert_eq!(ws.expect("MESSAGE_CREATE").await["content"], "barrier");
    }
    app.says(&r.evil_conv, &r.mallory, "barrier").await;
    assert_eq!(mallory.expect("MESSAGE_CREATE").await["content"], "barrier");
}

async fn a_resumed_client_gets_the_missed_deltas_then_the_end(app: TestApp) {
    let r = room(&app).await;
    let (mut alice, ready) = Ws::identify(&app, &r.alice.token).await;
    let session_id = ready["session_id"].as_str().unwrap().to_owned();
    let mut s = r.open(&app).await;
    let id = s.message.id.to_string();
    alice.expect("MESSAGE_CREATE").await;
    delta(&app, &mut s, 0, "one").await;
    expect_delta(&mut alice, &id, 0, "one").await;
    alice.heartbeat().await;
    let seen = alice.last_s;
    drop(alice);
    // Missed while away: two deltas and the end.
    delta(&app, &mut s, 50, " two").await;
    delta(&app, &mut s, 50, " three").await;
    close(&app, s, StreamEnd::Complete).await;
    let (mut ws, first) = Ws::resume(&app, &r.alice.token, &session_id, seen).await;
    assert_eq!(first["t"], "MESSAGE_STREAM", "{first}");
    assert_eq!(first["s"].as_u64().unwrap(), seen + 1);
    assert_eq!(
        (first["d"]["index"].as_u64(), first["d"]["delta"].as_str()),
        (Some(1), Some(" two"))
    );
    ws.last_s = seen + 1;
    expect_delta(&mut ws, &id, 2, " three").await;
    shows(
        &ws.expect("MESSAGE_UPDATE").await,
        "one two three",
        "complete",
        None,
    );
    assert_eq!(ws.expect("RESUMED").await["replayed"], 3);
}

async fn a_streaming_answer_cannot_be_edited_and_deleting_it_stops_it(app: TestApp) {
    let r = room(&app).await;
    let edit = |id: String, content: &'static str| {
        let (app, token) = (&app, r.bot.token.clone());
        async move {
            let path = format!("/api/v1/messages/{id}");
            let body = Some(json!({ "content": content }));
            app.as_bot(Method::PATCH, &path, &token, body).await
        }
    };
    let mut s = r.open(&app).await;
    let id = s.message.id.to_string();
    delta(&app, &mut s, 0, "draft").await;
    // An answer longer than the server keeps is refused, the text so far kept.
    let long = "x".repeat(conclave_core::service::MAX_ANSWER_BYTES);
    let refused = app.services.stream_delta(&mut s, &long).await;
    assert!(
        matches!(
            refused,
            Err(conclave_core::ServiceError::Invalid {
                code: "answer_too_long",
                ..
            })
        ),
        "{refused:?}"
    );
    assert_eq!(s.text(), "draft");
    edit(id.clone(), "changed")
        .await
        .expect_error(409, "message_streaming");
    // Alice (the owner) deletes it: the stream, open on this node, is stopped at once — no
    // frame of the deleted text follows the deletion — and it writes no more.
    app.delete(&format!("/api/v1/messages/{id}"), &r.alice.token)
        .await
        .expect(204);
    assert!(s.is_stopped(), "stopped by the deletion itself");
    assert_eq!(delta(&app, &mut s, 0, " more").await, Flow::Stopped);
    assert!(s.is_stopped());
    assert_eq!(delta(&app, &mut s, 250, " again").await, Flow::Stopped);
    let end = close(&app, s, StreamEnd::Complete).await;
    assert!(end.content.is_none() && end.deleted_at.is_some());
    assert_eq!(end.status, MessageStatus::Stopped);
    assert_eq!(end.status_reason.as_deref(), Some("deleted"));
    // A finished answer is the bot's to edit like any message.
    let mut s = r.open(&app).await;
    let id = s.message.id.to_string();
    delta(&app, &mut s, 0, "v1").await;
    close(&app, s, StreamEnd::Failed("timeout".into())).await;
    let shown = listed(&app, &r.conv, &r.bob, &id).await;
    shows(&shown, "v1", "failed", Some("timeout"));
    let edited = edit(id, "v2").await.expect(200);
    assert_eq!(edited.body["content"], "v2");
}

/// A node that stops mid-answer leaves its message streaming; the periodic job (every node runs
/// it) ends it as failed, `interrupted`, once it is older than any answer may take — but never
/// one still open on the node that runs the job.
async fn an_answer_its_node_left_streaming_is_ended_by_the_sweep(app: TestApp) {
    let r = room(&app).await;
    let (mut alice, _) = Ws::identify(&app, &r.alice.token).await;
    let mut left = r.open(&app).await;
    let left_id = left.message.id.to_string();
    delta(&app, &mut left, 0, "half").await;
    delta(&app, &mut left, 250, " done").await;
    let live = r.open(&app).await;
    let live_id = live.message.id.to_string();
    // Its node is gone: nobody writes it any more.
    drop(left);
    // The job runs every hour; an answer is abandoned after 2 × 120 s + 60 s.
    app.clock.advance(chrono::Duration::seconds(3_601));
    app.clock.settled().await;
    let shown = listed(&app, &r.conv, &r.bob, &left_id).await;
    shows(&shown, "half done", "failed", Some("interrupted"));
    let open = listed(&app, &r.conv, &r.bob, &live_id).await;
    assert_eq!(open["status"], "streaming", "still open on this node");
    let end = close(&app, live, StreamEnd::Complete).await;
    assert_eq!(end.status, MessageStatus::Complete);
    alice.expect("MESSAGE_CREATE").await;
    expect_delta(&mut alice, &left_id, 0, "half").await;
    expect_delta(&mut alice, &left_id, 1, " done").await;
    alice.expect("MESSAGE_CREATE").await;
    shows(
        &alice.expect("MESSAGE_UPDATE").await,
        "half done",
        "failed",
        Some("interrupted"),
    );
    let update = alice.expect("MESSAGE_UPDATE").await;
    assert_eq!(update["id"], live_id.as_str());
}

/// The ids of the messages `who` finds for `q` in the room's conversation.
async fn found(app: &TestApp, r: &Room, who: &User, q: &str) -> Vec<String> {
    let path = conv_path(&r.conv, &format!("/search?q={q}"));
    let res = app.get(&path, &who.token).await.expect(200);
    res.items()
        .iter()
        .map(|h| h["message"]["id"].as_str().expect("an id").to_owned())
        .collect()
}

async fn an_answer_is_searchable_by_its_final_text_once_it_ends(app: TestApp) {
    let r = room(&app).await;
    let mut s = r.open(&app).await;
    let id = s.message.id.to_string();
    delta(&app, &mut s, 0, "zebracorn ").await;
    delta(&app, &mut s, 300, "gallops").await;
    // The text so far is written (REST shows it) but not indexed: no half answers in search.
    shows(
        &listed(&app, &r.conv, &r.bob, &id).await,
        "zebracorn gallops",
        "streaming",
        None,
    );
    assert!(found(&app, &r, &r.bob, "zebracorn").await.is_empty());
    delta(&app, &mut s, 300, " onward").await;
    close(&app, s, StreamEnd::Complete).await;
    assert_eq!(found(&app, &r, &r.bob, "zebracorn").await, [id.as_str()]);
    assert_eq!(found(&app, &r, &r.bob, "onward").await, [id.as_str()]);
    // A stopped answer is indexed by the text it stopped at.
    let mut cut = r.open(&app).await;
    let cut_id = cut.message.id.to_string();
    delta(&app, &mut cut, 0, "quokkas ").await;
    delta(&app, &mut cut, 300, "wave").await;
    app.post_empty(&format!("/api/v1/messages/{cut_id}/stop"), &r.bob.token)
        .await
        .expect(200);
    assert_eq!(found(&app, &r, &r.bob, "quokkas").await, [cut_id.as_str()]);
    drop(cut);
    // An ordinary message is indexed as it is sent, as before.
    let plain = app.says(&r.conv, &r.alice, "zebracorn again").await;
    let plain = plain.body["id"].as_str().expect("an id").to_owned();
    assert!(found(&app, &r, &r.bob, "zebracorn").await.contains(&plain));
    assert_eq!(found(&app, &r, &r.bob, "zebracorn").await.len(), 2);
}

/// AZ-2: an answer is a message like any other: a bot made a Viewer, removed from the
/// conversation or in an archived one cannot open one (nothing is stored or sent).
async fn only_a_bot_that_may_send_opens_an_answer(app: TestApp) {
    let r = room(&app).await;
    let member = org_path(&r.org, &format!("/members/{}", r.bot.user_id));
    let (mut bob, _) = Ws::identify(&app, &r.bob.token).await;
    app.patch(&member, &r.alice.token, json!({"role": "viewer"}))
        .await
        .expect(200);
    let refused = r.open_as_bot(&app).await.err();
    assert!(
        matches!(refused, Some(conclave_core::ServiceError::Forbidden { .. })),
        "{refused:?}"
    );
    app.patch(&member, &r.alice.token, json!({"role": "member"}))
        .await
        .expect(200);
    r.open(&app).await;
    assert_eq!(bob.expect("MESSAGE_CREATE").await["status"], "streaming");
    app.update_conversation(&r.conv, &r.alice, json!({"archived": true}))
        .await
        .expect(200);
    assert!(r.open_as_bot(&app).await.is_err(), "archived");
    app.update_conversation(&r.conv, &r.alice, json!({"archived": false}))
        .await
        .expect(200);
    let path = conv_path(&r.conv, &format!("/participants/{}", r.bot.user_id));
    app.delete(&path, &r.alice.token).await.expect(204);
    assert!(r.open_as_bot(&app).await.is_err(), "removed");
    // Only the one answer it was allowed was stored.
    let mine = app
        .items(&conv_path(&r.conv, "/messages"), &r.alice.token)
        .await;
    let bots = mine
        .iter()
        .filter(|m| m["author"]["id"] == r.bot.user_id.as_str())
        .count();
    assert_eq!(bots, 1);
}
