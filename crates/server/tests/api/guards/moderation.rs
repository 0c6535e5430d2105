//! A moderation endpoint (OpenAI moderation API shape) through the SSRF guard: flagging, its
//! timeouts and failures with fail-open and fail-closed, refused URLs, and its API key sealed
//! and never shown.

use super::*;

crate::both_backends!(
    with crate::guards::guarded;
    a_moderation_endpoint_flags_and_blocks,
    timeouts_and_failures_follow_the_fail_mode,
    moderation_urls_pass_the_ssrf_guard_and_keys_stay_secret,
    a_send_waiting_for_its_guards_cannot_outrun_a_removal,
);

const KEY: &str = "sk-moderation-Zq8XfWv3Lr";

async fn acme(app: &TestApp) -> (User, String, String) {
    let alice = app.user("alice").await;
    let org = app.org(&alice, "Acme").await;
    let conv = app.group(&org, &alice, &[], json!("private")).await;
    (alice, org, conv)
}

async fn a_moderation_endpoint_flags_and_blocks(g: Guarded) {
    let app = &g.app;
    let (alice, org, conv) = acme(app).await;
    let body = json!({"name": "Moderation", "kind": "moderation_endpoint", "mode": "flag",
           "url": g.moderator.url(), "api_key": KEY, "fail": "open"});
    let guard = make_guard(app, &org, &alice, body).await;
    assert_eq!(guard["has_api_key"], true);
    assert_eq!(guard["timeout_ms"], 2000);
    app.says(&conv, &alice, "a kind word").await;
    let flagged = app.says(&conv, &alice, "a hateful word").await;
    let queue = open_flags(app, &org, &alice).await;
    assert_eq!(queue.len(), 1);
    assert_eq!(queue[0]["message"]["id"], flagged.body["id"]);
    // The endpoint got the text as `input`, with the key as a bearer token.
    let seen = g.moderator.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].0, format!("Bearer {KEY}"));
    assert_eq!(seen[1].1, json!({"input": "a hateful word"}));
    // HTML is screened on its text.
    app.post(
        &conv_path(&conv, "/messages"),
        &alice.token,
        json!({"content": "<p><i>hateful</i> &amp; more</p>", "format": "html"}),
    )
    .await
    .expect(201);
    let seen = g.moderator.seen.lock().unwrap().clone();
    assert_eq!(seen[2].1, json!({"input": "hateful & more"}));

    // In block mode the same answer refuses, naming the guard.
    let path = format!("{}/{}", guards(&org), guard["id"].as_str().unwrap());
    app.patch(&path, &alice.token, json!({"mode": "block"}))
        .await
        .expect(200);
    let res = app
        .send_message(&conv, &alice, "more hateful words")
        .await
        .expect_error(422, "content_blocked");
    assert!(res.message().contains("Moderation"));
    let listed = listed_guard(app, &org, &alice, guard["id"].as_str().unwrap()).await;
    assert_eq!(counts(&listed), (1, 2, 1, 0));
}

async fn timeouts_and_failures_follow_the_fail_mode(g: Guarded) {
    let app = &g.app;
    let (alice, org, conv) = acme(app).await;
    let body = json!({"name": "Lenient", "kind": "moderation_endpoint", "mode": "block",
           "url": g.moderator.url(), "timeout_ms": 300, "fail": "open"});
    let open = make_guard(app, &org, &alice, body).await;
    let open_id = open["id"].as_str().unwrap();
    // Timed out: let through, an error counted.
    let started = std::time::Instant::now();
    app.says(&conv, &alice, "said slowly").await;
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    // Failed (500): the same.
    app.says(&conv, &alice, "broken answer").await;
    assert_eq!(
        counts(&listed_guard(app, &org, &alice, open_id).await),
        (0, 0, 0, 2)
    );

    // Fail-closed: refused with 422 naming the guard, an error counted, nothing stored.
    let path = format!("{}/{open_id}", guards(&org));
    app.patch(
        &path,
        &alice.token,
        json!({"fail": "closed", "name": "Strict"}),
    )
    .await
    .expect(200);
    let before = texts(app, &conv, &alice).await;
    for text in ["said slowly again", "broken again"] {
        let res = app
            .send_message(&conv, &alice, text)
            .await
            .expect_error(422, "content_blocked");
        assert!(res.message().contains("Strict"));
    }
    assert_eq!(texts(app, &conv, &alice).await, before);
    app.says(&conv, &alice, "fine").await;
    assert_eq!(
        counts(&listed_guard(app, &org, &alice, open_id).await),
        (1, 0, 0, 4)
    );
    // The stats count them too.
    let admin = app.bootstrap().await;
    let stats = app
        .get("/api/v1/admin/stats", &admin.token)
        .await
        .expect(200);
    assert_eq!(stats.body["guards"]["counts"]["errors"], 4);
    assert_eq!(stats.body["guards"]["enabled"], 1);
}

async fn moderation_urls_pass_the_ssrf_guard_and_keys_stay_secret(g: Guarded) {
    let app = &g.app;
    let (alice, org, _conv) = acme(app).await;
    for url in [
        "http://169.254.169.254/latest",
        "http://10.0.0.1/moderate",
        "http://127.0.0.1:1/moderate",
        "file:///etc/passwd",
        "http://user:pw@127.0.0.1/",
    ] {
        let res = app
            .post(
                &guards(&org),
                &alice.token,
                json!({"kind": "moderation_endpoint", "mode": "block", "url": url, "fail": "open"}),
            )
            .await
            .expect_error(422, "url_not_allowed");
        assert_eq!(res.field(), Some("url"), "{url}");
    }
    let made = app
        .post(
            &guards(&org),
            &alice.token,
            json!({"kind": "moderation_endpoint", "mode": "flag", "url": g.moderator.url(),
                   "api_key": KEY, "fail": "closed"}),
        )
        .await
        .expect(201);
    let path = format!("{}/{}", guards(&org), made.id());
    app.patch(
        &path,
        &alice.token,
        json!({"url": "http://169.254.169.254/"}),
    )
    .await
    .expect_error(422, "url_not_allowed");
    // The key appears in no answer, no audit row, and not as plain text at rest.
    let listed = app.get(&guards(&org), &alice.token).await.expect(200);
    let patched = app
        .patch(&path, &alice.token, json!({"timeout_ms": 500}))
        .await
        .expect(200);
    let audit = app
        .get(&org_path(&org, "/audit"), &alice.token)
        .await
        .expect(200);
    for body in [&made.body, &listed.body, &patched.body, &audit.body] {
        assert!(!body.to_string().contains(KEY), "{body}");
    }
    assert_eq!(patched.body["has_api_key"], true);
    assert!(!stored_guard_bytes(app)
        .await
        .windows(KEY.len())
        .any(|w| w == KEY.as_bytes()));
    // The stored key goes only to the host it was given for (DATA-3): moving the URL to
    // another origin needs `api_key` in the same change; another path on the same origin does
    // not, and without a stored key the URL moves freely.
    let elsewhere = g.moderator.url().replacen("http://", "https://", 1);
    let res = app
        .patch(&path, &alice.token, json!({"url": elsewhere}))
        .await
        .expect_error(422, "api_key_required");
    assert_eq!(res.field(), Some("/api_key"));
    let same_host = format!("{}/", g.moderator.url().trim_end_matches('/'));
    app.patch(&path, &alice.token, json!({"url": same_host}))
        .await
        .expect(200);
    app.patch(
        &path,
        &alice.token,
        json!({"url": elsewhere, "api_key": KEY}),
    )
    .await
    .expect(200);
    app.patch(
        &path,
        &alice.token,
        json!({"url": g.moderator.url(), "api_key": KEY}),
    )
    .await
    .expect(200);
    // Removing the key.
    let removed = app
        .patch(&path, &alice.token, json!({"api_key": null}))
        .await
        .expect(200);
    assert_eq!(removed.body["has_api_key"], false);
    app.patch(&path, &alice.token, json!({"url": elsewhere}))
        .await
        .expect(200);
}

/// Every byte of the guard tables (settings, sealed keys) as stored.
async fn stored_guard_bytes(app: &TestApp) -> Vec<u8> {
    use sqlx::Row;
    let db = crate::db::Db::of(app).await;
    let sealed = db
        .sealed(
            "SELECT secret_nonce, secret_ciphertext FROM guard_secrets",
            None,
        )
        .await;
    let configs: Vec<String> = crate::with_pool!(&db, p => sqlx::query("SELECT config FROM guards")
        .fetch_all(p)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect());
    db.close().await;
    assert_eq!(sealed.len(), 1, "one sealed key");
    let mut all = Vec::new();
    for (nonce, ciphertext) in sealed {
        assert_eq!(nonce.len(), 12);
        all.extend(ciphertext);
    }
    for c in configs {
        all.extend(c.into_bytes());
    }
    all
}

/// AZ-2, AZ-3: a send (or an edit) is authorized, then waits for its guards — a remote one for
/// seconds —, then is stored: the store asks again in its transaction, so a participant taken
/// out, or a conversation archived, while the guard answered gets nothing stored or announced.
async fn a_send_waiting_for_its_guards_cannot_outrun_a_removal(g: Guarded) {
    let app = &g.app;
    let crate::fixtures::Team(alice, [bob], org) =
        app.team("alice", "Acme", [("bob", "member")]).await;
    let conv = app.group(&org, &alice, &[&bob], json!("private")).await;
    let before = app.says(&conv, &bob, "before").await.id();
    let body = json!({"name": "Slow", "kind": "moderation_endpoint", "mode": "block",
           "url": g.moderator.url(), "timeout_ms": 1500, "fail": "open"});
    make_guard(app, &org, &alice, body).await;
    let token = alice.token.clone();
    let meanwhile = |work: reqwest::Method, path: String, body: Option<Value>| {
        let token = token.clone();
        async move {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            app.call(work, &path, Some(&token), body).await
        }
    };
    // Bob's message and his edit wait for the guard; meanwhile he is taken out.
    let message_path = format!("/api/v1/messages/{before}");
    let edit = app.patch(
        &message_path,
        &bob.token,
        json!({"content": "said slowly, edited"}),
    );
    let (sent, edited, removed) = tokio::join!(
        app.send_message(&conv, &bob, "said slowly"),
        edit,
        meanwhile(
            reqwest::Method::DELETE,
            conv_path(&conv, &format!("/participants/{}", bob.id)),
            None,
        ),
    );
    removed.expect(204);
    sent.expect_error(404, "not_found");
    edited.expect_error(404, "not_found");
    assert_eq!(texts(app, &conv, &alice).await, vec!["before"]);
    // Alice's own message waits while she archives the conversation: refused as any send
    // to an archived conversation is.
    let (sent, archived) = tokio::join!(
        app.send_message(&conv, &alice, "said slowly too"),
        meanwhile(
            reqwest::Method::PATCH,
            conv_path(&conv, ""),
            Some(json!({"archived": true})),
        ),
    );
    archived.expect(200);
    sent.expect_error(403, "forbidden");
    assert_eq!(texts(app, &conv, &alice).await, vec!["before"]);
}
