//! MSG-2, MSG-3, CORE-5: sending, validation, sanitizing, idempotency, paging, edits, tombstones.

use crate::both_backends;
use crate::fixtures::Acme;
use crate::helpers::*;
use reqwest::Method;
use serde_json::json;

both_backends!(
    send_validate_and_sanitize,
    idempotent_sends,
    message_pages_both_ways,
    edits_keep_history_and_deletes_leave_tombstones,
    only_participants_touch_messages,
    concurrent_sends_get_distinct_ordered_seqs,
);

async fn setup(app: &TestApp) -> (User, User, String, String) {
    let Acme { alice, bob, org } = app.acme().await;
    let conv = app.group(&org, &alice, &[&bob], json!("private")).await;
    (alice, bob, org, conv)
}

async fn send_validate_and_sanitize(app: TestApp) {
    let (alice, bob, _, conv) = setup(&app).await;
    let path = format!("/api/v1/conversations/{conv}/messages");
    let m = app
        .send_message(&conv, &alice, "hello <b>world</b>")
        .await
        .expect(201);
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
    app.post(&path, &alice.token, json!({"content": "é".repeat(4000)}))
        .await
        .expect(201);
    app.post(&path, &alice.token, json!({"content": "bad\u{0}byte"}))
        .await
        .expect(422);
    app.post(
        &path,
        &alice.token,
        json!({"content": "hi", "format": "markdown"}),
    )
    .await
    .expect(422);
    app.post(
        &path,
        &alice.token,
        json!({"content": "hi", "attachment_ids": ["x"]}),
    )
    .await
    .expect_error(422, "attachments_unavailable");
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
    app.post(
        &path,
        &alice.token,
        json!({"content": "<script>alert(1)</script>", "format": "html"}),
    )
    .await
    .expect_error(422, "empty_after_sanitizing");
    // Replies must point into the same conversation.
    let first = m.id();
    let r = app
        .post(
            &path,
            &bob.token,
            json!({"content": "re", "reply_to": first}),
        )
        .await
        .expect(201);
    assert_eq!(r.body["reply_to"], first.as_str());
    app.post(
        &path,
        &bob.token,
        json!({"content": "re", "reply_to": uuid::Uuid::now_v7()}),
    )
    .await
    .expect_error(422, "unknown_message");
}

async fn idempotent_sends(app: TestApp) {
    let (alice, bob, _, conv) = setup(&app).await;
    let path = format!("/api/v1/conversations/{conv}/messages");
    let body = json!({"content": "once", "idempotency_key": "k-1"});
    let a = app
        .post(&path, &alice.token, body.clone())
        .await
        .expect(201);
    let b = app
        .post(&path, &alice.token, body.clone())
        .await
        .expect(200);
    assert_eq!(a.body, b.body, "a retried send returns the same message");
    app.post(
        &path,
        &alice.token,
        json!({"content": "different", "idempotency_key": "k-1"}),
    )
    .await
    .expect_error(409, "idempotency_conflict");
    assert_eq!(app.message_count(&conv, &alice).await, 1);
    // Scoped to the author: bob's "k-1" is a different message.
    app.post(&path, &bob.token, body.clone()).await.expect(201);
    app.post(
        &path,
        &alice.token,
        json!({"content": "x", "idempotency_key": "bad key!"}),
    )
    .await
    .expect(422);
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
    let p1 = app
        .get(&format!("{path}?limit=3"), &bob.token)
        .await
        .expect(200);
    assert_eq!(seqs(&p1), vec![7, 6, 5]);
    let p2 = app
        .get(
            &format!(
                "{path}?limit=3&before={}",
                p1.body["next"].as_str().unwrap()
            ),
            &bob.token,
        )
        .await
        .expect(200);
    assert_eq!(seqs(&p2), vec![4, 3, 2]);
    let p3 = app
        .get(
            &format!(
                "{path}?limit=3&before={}",
                p2.body["next"].as_str().unwrap()
            ),
            &bob.token,
        )
        .await
        .expect(200);
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
    app.get(
        &format!("{path}?before={}", uuid::Uuid::now_v7()),
        &bob.token,
    )
    .await
    .expect_error(422, "unknown_message");
    app.get(&format!("{path}?after=garbage"), &bob.token)
        .await
        .expect_error(400, "invalid_cursor");
}

async fn edits_keep_history_and_deletes_leave_tombstones(app: TestApp) {
    let (alice, bob, _, conv) = setup(&app).await;
    let id = app
        .send_message(&conv, &alice, "first draft")
        .await
        .expect(201)
        .id();
    let path = format!("/api/v1/messages/{id}");
    app.patch(&path, &bob.token, json!({"content": "bob was here"}))
        .await
        .expect_error(403, "forbidden");
    app.patch(&path, &alice.token, json!({"content": ""}))
        .await
        .expect(422);
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
    let versions: Vec<&str> = h.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["content"].as_str().unwrap())
        .collect();
    assert_eq!(versions, vec!["first draft", "second draft"]);
    // Bob (not author, not moderator) cannot delete; alice can; it stays as a tombstone.
    app.delete(&path, &bob.token)
        .await
        .expect_error(403, "forbidden");
    app.delete(&path, &alice.token).await.expect(204);
    let list = app
        .get(
            &format!("/api/v1/conversations/{conv}/messages"),
            &bob.token,
        )
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
    let bobs = app
        .send_message(&conv, &bob, "remove me")
        .await
        .expect(201)
        .id();
    app.delete(&format!("/api/v1/messages/{bobs}"), &alice.token)
        .await
        .expect(204);
    app.patch(
        "/api/v1/messages/not-a-uuid",
        &alice.token,
        json!({"content": "x"}),
    )
    .await
    .expect_error(400, "invalid_id");
}

async fn only_participants_touch_messages(app: TestApp) {
    let (alice, _bob, org, conv) = setup(&app).await;
    let member = app.user("member2").await;
    app.add_member(&org, &alice, &member, "member").await;
    let outsider = app.user("outsider").await;
    app.org(&outsider, "Elsewhere").await;
    let id = app
        .send_message(&conv, &alice, "secret")
        .await
        .expect(201)
        .id();
    let (messages, message) = (
        format!("/api/v1/conversations/{conv}/messages"),
        format!("/api/v1/messages/{id}"),
    );
    for u in [&member, &outsider] {
        let requests = [
            (Method::GET, messages.clone(), None),
            (
                Method::POST,
                messages.clone(),
                Some(json!({"content": "let me in"})),
            ),
            (
                Method::PATCH,
                message.clone(),
                Some(json!({"content": "x"})),
            ),
            (Method::DELETE, message.clone(), None),
            (Method::GET, format!("{message}/history"), None),
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
        let url = app.url(&format!("/api/v1/conversations/{conv}/messages"));
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
        .get(&format!("/api/v1/conversations/{conv}"), &alice.token)
        .await
        .expect(200);
    assert_eq!(c.body["last_seq"], 20);
}
