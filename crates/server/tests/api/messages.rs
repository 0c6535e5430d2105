//! MSG-2, MSG-3, CORE-5: sending, validation, sanitizing, idempotency, paging, edits, tombstones.

use crate::both_backends;
use crate::cases::{delete, get, patch, post, Caller};
use crate::fixtures::Acme;
use crate::helpers::*;
use serde_json::json;

both_backends!(
    send_validate_and_sanitize,
    idempotent_sends,
    message_pages_both_ways,
    edits_keep_history_and_deletes_leave_tombstones,
    only_participants_touch_messages,
    concurrent_sends_get_distinct_ordered_seqs,
    idempotency_keys_are_forgotten_after_the_window,
);

async fn setup(app: &TestApp) -> (User, User, String, String) {
    let Acme { alice, bob, org } = app.acme().await;
    let conv = app.group(&org, &alice, &[&bob], json!("private")).await;
    (alice, bob, org, conv)
}

async fn send_validate_and_sanitize(app: TestApp) {
    let (alice, bob, _, conv) = setup(&app).await;
    let path = format!("/api/v1/conversations/{conv}/messages");
    let m = app.says(&conv, &alice, "hello <b>world</b>").await;
    assert_eq!(
        m.body["content"], "hello <b>world</b>",
        "plain text is stored as given"
    );
    assert_eq!(m.body["format"], "text");
    assert_eq!(m.body["seq"], 1);
    assert_eq!(m.body["author"]["username"], "alice");
    assert_eq!(m.body["author"]["kind"], "user");
    assert_eq!(m.body["attachments"], json!([]));
    for key in [
        "id",
        "conversation_id",
        "created_at",
        "edited_at",
        "deleted_at",
        "reply_to",
    ] {
        assert!(m.body.get(key).is_some(), "message has {key}");
    }
    // Length: 1–4000 scalar values; NUL refused; nothing written on refusal.
    app.post(&path, &alice.token, json!({"content": ""}))
        .await
        .expect_error(422, "invalid_value");
    let long = app
        .post(&path, &alice.token, json!({"content": "a".repeat(4001)}))
        .await
        .expect(422);
    assert_eq!(long.field(), Some("/content"));
    app.expect_all([
        alice
            .post(&path, json!({"content": "é".repeat(4000)}))
            .is(201),
        alice
            .post(&path, json!({"content": "bad\u{0}byte"}))
            .is(422),
        alice
            .post(&path, json!({"content": "hi", "format": "markdown"}))
            .is(422),
        alice
            .post(&path, json!({"content": "hi", "attachment_ids": ["x"]}))
            .err(422, "invalid_value"),
    ])
    .await;
    assert_eq!(app.message_count(&conv, &bob).await, 2);
    // HTML is sanitized before it is stored.
    let h = app
        .post(&path, &alice.token, json!({"content": "<p onclick=\"x()\">hi <a href=\"javascript:alert(1)\">x</a> <a href=\"https://ok.example\" target=\"_blank\">ok</a><script>alert(1)</script></p>", "format": "html"}))
        .await
        .expect(201);
    let html = h.body["content"].as_str().unwrap();
    assert!(
        !html.contains("onclick")
            && !html.contains("javascript")
            && !html.contains("script")
            && !html.contains("target")
    );
    assert!(
        html.contains(r#"<a href="https://ok.example" rel="noopener noreferrer nofollow">ok</a>"#),
        "{html}"
    );
    let only_script = json!({"content": "<script>alert(1)</script>", "format": "html"});
    let first = m.id();
    let reply_to = |to: serde_json::Value| json!({"content": "re", "reply_to": to});
    let unknown = json!(uuid::Uuid::now_v7());
    let answers = app
        .expect_all([
            alice
                .post(&path, only_script)
                .err(422, "empty_after_sanitizing"),
            // Replies must point into the same conversation.
            bob.post(&path, reply_to(json!(first))).is(201),
            bob.post(&path, reply_to(unknown))
                .err(422, "unknown_message"),
        ])
        .await;
    assert_eq!(answers[1].body["reply_to"], first.as_str());
}

async fn idempotent_sends(app: TestApp) {
    let (alice, bob, _, conv) = setup(&app).await;
    let path = format!("/api/v1/conversations/{conv}/messages");
    let body = json!({"content": "once", "idempotency_key": "k-1"});
    let different = json!({"content": "different", "idempotency_key": "k-1"});
    let answers = app
        .expect_all([
            alice.post(&path, body.clone()).is(201),
            alice.post(&path, body.clone()).is(200),
            alice
                .post(&path, different)
                .err(409, "idempotency_conflict"),
        ])
        .await;
    let (a, b) = (&answers[0], &answers[1]);
    assert_eq!(a.body, b.body, "a retried send returns the same message");
    assert_eq!(app.message_count(&conv, &alice).await, 1);
    // Scoped to the author: bob's "k-1" is a different message.
    app.expect_all([
        bob.post(&path, body.clone()).is(201),
        alice
            .post(
                &path,
                json!({"content": "x", "idempotency_key": "bad key!"}),
            )
            .is(422),
    ])
    .await;
    // Forgotten after 24 hours.
    app.clock.advance(chrono::Duration::hours(25));
    let c = app.post(&path, &alice.token, body).await.expect(201);
    assert_ne!(c.id(), a.id());
}

async fn message_pages_both_ways(app: TestApp) {
    let (alice, bob, _, conv) = setup(&app).await;
    let mut ids = Vec::new();
    for i in 1..=7 {
        ids.push(
            app.send_message(&conv, &alice, &format!("m{i}"))
                .await
                .expect(201)
                .id(),
        );
    }
    let path = format!("/api/v1/conversations/{conv}/messages");
    let seqs = |r: &Res| {
        r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["seq"].as_i64().unwrap())
            .collect::<Vec<_>>()
    };
    let first = format!("{path}?limit=3");
    let p1 = app.get(&first, &bob.token).await.expect(200);
    assert_eq!(seqs(&p1), vec![7, 6, 5]);
    let p2 = app.next_page(&first, &p1, &bob.token).await;
    assert_eq!(seqs(&p2), vec![4, 3, 2]);
    let p3 = app.next_page(&first, &p2, &bob.token).await;
    assert_eq!(seqs(&p3), vec![1]);
    assert!(p3.body["next"].is_null());
    // Forward from a message id, oldest first.
    let f1 = app
        .get(&format!("{path}?limit=2&after={}", ids[1]), &bob.token)
        .await
        .expect(200);
    assert_eq!(seqs(&f1), vec![3, 4]);
    let f2 = app
        .get(
            &format!("{path}?limit=2&after={}", f1.body["next"].as_str().unwrap()),
            &bob.token,
        )
        .await
        .expect(200);
    assert_eq!(seqs(&f2), vec![5, 6]);
    let b = app
        .get(&format!("{path}?before={}", ids[2]), &bob.token)
        .await
        .expect(200);
    assert_eq!(seqs(&b), vec![2, 1]);
    // A message id from elsewhere is refused.
    app.expect_all([
        bob.get(&format!("{path}?before={}", uuid::Uuid::now_v7()))
            .err(422, "unknown_message"),
        bob.get(&format!("{path}?after=garbage"))
            .err(400, "invalid_cursor"),
    ])
    .await;
}

async fn edits_keep_history_and_deletes_leave_tombstones(app: TestApp) {
    let (alice, bob, _, conv) = setup(&app).await;
    let id = app.says(&conv, &alice, "first draft").await.id();
    let path = format!("/api/v1/messages/{id}");
    app.expect_all([
        bob.patch(&path, json!({"content": "bob was here"}))
            .err(403, "forbidden"),
        alice.patch(&path, json!({"content": ""})).is(422),
    ])
    .await;
    let e = app
        .patch(&path, &alice.token, json!({"content": "second draft"}))
        .await
        .expect(200);
    assert_eq!(e.body["content"], "second draft");
    assert!(e.body["edited_at"].is_string());
    app.patch(
        &path,
        &alice.token,
        json!({"content": "<em>final</em>", "format": "html"}),
    )
    .await
    .expect(200);
    let h = app
        .get(&format!("{path}/history"), &bob.token)
        .await
        .expect(200);
    let versions: Vec<&str> = pluck(&h.body["items"], "content");
    assert_eq!(
        versions,
        vec!["second draft", "first draft"],
        "newest first"
    );
    // Bob (not author, not moderator) cannot delete; alice can; it stays as a tombstone.
    app.expect_all([
        bob.delete(&path).err(403, "forbidden"),
        alice.delete(&path).is(204),
    ])
    .await;
    let list = app
        .get(&conv_path(&conv, "/messages"), &bob.token)
        .await
        .expect(200);
    let m = &list.body["items"][0];
    assert_eq!(m["id"], id.as_str());
    assert!(m["content"].is_null());
    assert!(m["deleted_at"].is_string());
    app.patch(&path, &alice.token, json!({"content": "undead"}))
        .await
        .expect_error(409, "message_deleted");
    // A moderator (the conversation owner) may delete others' messages.
    let bobs = app.says(&conv, &bob, "remove me").await.id();
    app.expect_all([
        alice.delete(&format!("/api/v1/messages/{bobs}")).is(204),
        alice
            .patch("/api/v1/messages/not-a-uuid", json!({"content": "x"}))
            .err(400, "invalid_id"),
    ])
    .await;
}

async fn only_participants_touch_messages(app: TestApp) {
    let (alice, _bob, org, conv) = setup(&app).await;
    let member = app.user("member2").await;
    app.add_member(&org, &alice, &member, "member").await;
    let outsider = app.user("outsider").await;
    app.org(&outsider, "Elsewhere").await;
    let id = app.says(&conv, &alice, "secret").await.id();
    let (messages, message) = (
        format!("/api/v1/conversations/{conv}/messages"),
        format!("/api/v1/messages/{id}"),
    );
    for u in [&member, &outsider] {
        let requests = [
            get(messages.clone()),
            post(messages.clone(), json!({"content": "let me in"})),
            patch(message.clone(), json!({"content": "x"})),
            delete(message.clone()),
            get(format!("{message}/history")),
        ];
        app.refused_all(&u.token, 404, "not_found", requests).await;
    }
    assert_eq!(app.message_count(&conv, &alice).await, 1);
}

async fn concurrent_sends_get_distinct_ordered_seqs(app: TestApp) {
    let (alice, bob, _, conv) = setup(&app).await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let client = app.client.clone();
        let url = app.url(&conv_path(&conv, "/messages"));
        let token = if i % 2 == 0 {
            alice.token.clone()
        } else {
            bob.token.clone()
        };
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .bearer_auth(token)
                .json(&json!({"content": format!("c{i}")}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 201);
            r.json::<serde_json::Value>().await.unwrap()["seq"]
                .as_i64()
                .unwrap()
        }));
    }
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.push(t.await.unwrap());
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=20).collect::<Vec<_>>());
    let c = app
        .get(&conv_path(&conv, ""), &alice.token)
        .await
        .expect(200);
    assert_eq!(c.body["last_seq"], 20);
}

/// The idempotency keys stored for `key`.
async fn stored_keys(app: &TestApp, key: &str) -> i64 {
    let db = crate::db::Db::of(app).await;
    crate::with_pool!(&db, p => sqlx::query_scalar(
        "SELECT COUNT(*) FROM idempotency_keys WHERE key = $1",
    )
    .bind(key)
    .fetch_one(p)
    .await
    .unwrap())
}

/// R82 (MSG-2, "kept 24 h"): the retention job forgets idempotency keys past their window.
/// Once a key was only forgotten when the same author sent the same key again, so the table
/// grew with every keyed send.
async fn idempotency_keys_are_forgotten_after_the_window(app: TestApp) {
    let (alice, _, _, conv) = setup(&app).await;
    let path = format!("/api/v1/conversations/{conv}/messages");
    let body = json!({"content": "once", "idempotency_key": "k-old"});
    app.post(&path, &alice.token, body).await.expect(201);
    assert_eq!(stored_keys(&app, "k-old").await, 1);
    app.clock.advance(chrono::Duration::hours(25));
    app.clock.settled().await;
    let alice = app.sign_in_again("alice", alice).await;
    let body = json!({"content": "later", "idempotency_key": "k-fresh"});
    app.post(&path, &alice.token, body).await.expect(201);
    assert_eq!(stored_keys(&app, "k-old").await, 0, "the job forgot it");
    assert_eq!(stored_keys(&app, "k-fresh").await, 1);
    assert_eq!(app.message_count(&conv, &alice).await, 2, "messages stay");
}

/// R81 (RATE-1): a message's history is paged like every list and holds at most its newest
/// 100 versions, however often it is edited. Once every edit kept a full copy and the route
/// answered all of them in one page with `next` always null.
async fn history_is_paged_and_versions_are_capped(app: TestApp) {
    let (alice, bob, _, conv) = setup(&app).await;
    let id = app.says(&conv, &alice, "v0").await.id();
    let path = format!("/api/v1/messages/{id}");
    for i in 1..=150 {
        app.patch(&path, &alice.token, json!({"content": format!("v{i}")}))
            .await
            .expect(200);
    }
    let history = format!("{path}/history");
    let doc = crate::meta::openapi(&app).await;
    // Newest first, 50 a page by default, until `next` is null.
    let mut res = app.get(&history, &bob.token).await.expect(200);
    crate::meta::check(&doc, "get", "/api/v1/messages/{m}/history", 200, &res.body);
    let mut contents: Vec<String> = Vec::new();
    let mut pages = 0;
    loop {
        let items = res.items();
        assert!(items.len() <= 50, "at most the page size");
        contents.extend(
            pluck(&res.body["items"], "content")
                .iter()
                .map(|c| c.to_string()),
        );
        pages += 1;
        assert!(pages <= 3, "paging ends");
        if !res.body["next"].is_string() {
            break;
        }
        let next = res.string("next");
        res = app
            .get(&format!("{history}?before={next}"), &bob.token)
            .await
            .expect(200);
    }
    let kept: Vec<String> = (50..150).rev().map(|i| format!("v{i}")).collect();
    assert_eq!(contents, kept, "the newest 100 versions, newest first");
    // `after` pages back towards newer versions; `limit` is 1–100.
    let first = app
        .get(&format!("{history}?limit=2"), &bob.token)
        .await
        .expect(200);
    assert_eq!(pluck(&first.body["items"], "content"), ["v149", "v148"]);
    let newer = app
        .get(
            &format!("{history}?after={}&limit=5", first.string("next")),
            &bob.token,
        )
        .await
        .expect(200);
    assert_eq!(pluck(&newer.body["items"], "content"), ["v149"]);
    app.get(&format!("{history}?limit=101"), &bob.token)
        .await
        .expect(422);
    // The database holds the 100 versions and no more.
    let db = crate::db::Db::of(&app).await;
    let message = uuid::Uuid::parse_str(&id).unwrap();
    let stored: i64 = crate::with_pool!(&db, p => sqlx::query_scalar(
        "SELECT COUNT(*) FROM message_versions WHERE message_id = $1",
    )
    .bind(message)
    .fetch_one(p)
    .await
    .unwrap());
    assert_eq!(stored, 100);
}

/// 150 edits on an app without rate limits (its own `both_backends!`).
mod many_edits {
    use super::history_is_paged_and_versions_are_capped;
    crate::both_backends!(with crate::helpers::spawn_app_unlimited; history_is_paged_and_versions_are_capped);
}
