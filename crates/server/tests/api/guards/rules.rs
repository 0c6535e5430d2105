//! Blocklists and regexes: blocking before anything is stored, flagging into the review queue,
//! edits and bots screened, the linear-time engine, refused patterns.

use super::*;
use crate::ws::Ws;
use reqwest::Method;

crate::both_backends!(
    with crate::guards::guarded;
    blocked_posts_are_never_stored_or_announced,
    flagged_posts_are_delivered_and_queued_for_review,
    edits_and_bots_are_screened,
    regexes_run_in_linear_time_and_bad_ones_are_refused,
    settings_are_checked_and_changed_within_their_kind,
);

/// Alice's org Acme with Bob in a group conversation.
async fn acme(app: &TestApp) -> (User, User, String, String) {
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let org = app.org(&alice, "Acme").await;
    app.add_member(&org, &alice, &bob, "member").await;
    let conv = app.group(&org, &alice, &[&bob], json!("private")).await;
    (alice, bob, org, conv)
}

async fn blocked_posts_are_never_stored_or_announced(g: Guarded) {
    let app = &g.app;
    let (alice, bob, org, conv) = acme(app).await;
    // An endpoint of the (private) conversation: the org's own endpoints hear only of
    // conversations every member may read.
    app.post(
        &crate::webhooks::hooks(&org),
        &alice.token,
        json!({"url": g.rx.url(), "events": ["message.created"], "conversation_id": conv}),
    )
    .await
    .expect(201);
    let body = json!({"name": "Language", "kind": "blocklist", "mode": "block", "terms": ["darn", "Heck"]});
    let words = make_guard(app, &org, &alice, body).await;
    assert_eq!(words["terms"], json!(["darn", "Heck"]));
    assert_eq!(words["position"], 0);
    let body = json!({"name": "Card numbers", "kind": "regex", "mode": "block",
           "patterns": [r"\b\d{4}-\d{4}-\d{4}-\d{4}\b"]});
    let cards = make_guard(app, &org, &alice, body).await;
    assert_eq!(cards["position"], 1);
    let (mut ws, _) = Ws::identify(app, &bob.token).await;

    for (body, guard) in [
        (json!({"content": "oh DARN it"}), "Language"),
        (json!({"content": "heck!"}), "Language"),
        (
            json!({"content": "card 1234-5678-9012-3456 ok"}),
            "Card numbers",
        ),
        (
            json!({"content": "<p>so <b>darn</b></p>", "format": "html"}),
            "Language",
        ),
        // Where a link leads is screened as much as its label.
        (
            json!({"content": "<p><a href=\"https://darn.example/x\">docs</a></p>", "format": "html"}),
            "Language",
        ),
        (
            json!({"content": "<a href=\"https://pay.example/?c=1234-5678-9012-3456\">pay</a>",
                   "format": "html"}),
            "Card numbers",
        ),
        // Paragraphs (and line breaks) part words the reader sees parted, for whole-word
        // terms and `\b` alike: not `okdarn`, not `x1234…`.
        (
            json!({"content": "<p>ok</p><p>darn</p>", "format": "html"}),
            "Language",
        ),
        (
            json!({"content": "<p>x</p><p>1234-5678-9012-3456</p>", "format": "html"}),
            "Card numbers",
        ),
    ] {
        let res = app
            .post(&conv_path(&conv, "/messages"), &alice.token, body.clone())
            .await
            .expect_error(422, "content_blocked");
        assert_eq!(res.field(), Some("/content"));
        assert!(res.message().contains(guard), "{body}: {}", res.message());
        // The refusal does not repeat the content.
        assert!(!res.message().contains("1234"), "{}", res.message());
    }
    // Not whole words: delivered.
    let ok = app.says(&conv, &alice, "darned good, hecking fine").await;
    // Nothing blocked was stored: the conversation holds only what was let through …
    assert_eq!(
        texts(app, &conv, &bob).await,
        vec!["darned good, hecking fine"]
    );
    // … no gateway event came before the delivered one …
    let event = ws.expect("MESSAGE_CREATE").await;
    assert_eq!(event["id"], ok.body["id"]);
    // … and the only webhook delivery is the delivered message.
    crate::webhooks::run_worker(app, chrono::Duration::seconds(1)).await;
    let got = g.rx.received();
    assert_eq!(got.len(), 1, "one delivery: {got:?}");
    assert_eq!(got[0].json()["data"]["id"], ok.body["id"]);
    // Sequence numbers show no gap either: the blocked sends took none.
    assert_eq!(ok.body["seq"], 1);

    // Every decision counted: the blocklist decided all nine, the regex the four it saw.
    let words = listed_guard(app, &org, &alice, words["id"].as_str().unwrap()).await;
    assert_eq!(counts(&words), (4, 0, 5, 0));
    let cards = listed_guard(app, &org, &alice, cards["id"].as_str().unwrap()).await;
    assert_eq!(counts(&cards), (1, 0, 3, 0));

    // A disabled guard does not run; a deleted one neither.
    let path = format!("{}/{}", guards(&org), words["id"].as_str().unwrap());
    app.patch(&path, &alice.token, json!({"enabled": false}))
        .await
        .expect(200);
    app.says(&conv, &alice, "darn").await;
    app.delete(
        &format!("{}/{}", guards(&org), cards["id"].as_str().unwrap()),
        &alice.token,
    )
    .await
    .expect(204);
    app.says(&conv, &alice, "1234-5678-9012-3456").await;
    assert!(app.items(&guards(&org), &alice.token).await.len() == 1);
}

async fn flagged_posts_are_delivered_and_queued_for_review(g: Guarded) {
    let app = &g.app;
    let (alice, bob, org, conv) = acme(app).await;
    let body =
        json!({"name": "Watch list", "kind": "blocklist", "mode": "flag", "terms": ["refund"]});
    let watch = make_guard(app, &org, &alice, body).await;
    let body = json!({"name": "Links", "kind": "regex", "mode": "flag", "patterns": ["https?://"]});
    let links = make_guard(app, &org, &alice, body).await;
    assert!(open_flags(app, &org, &alice).await.is_empty());
    let one = app.says(&conv, &bob, "I want a REFUND").await;
    let both = app
        .says(&conv, &bob, "refund here: https://example.com")
        .await;
    app.says(&conv, &bob, "just chatting").await;
    // Delivered: everyone reads them.
    assert_eq!(texts(app, &conv, &alice).await.len(), 3);

    // Queued: one flag per guard that objected, newest first, with the message as REST shows it.
    let queue = open_flags(app, &org, &alice).await;
    assert_eq!(queue.len(), 3, "{queue:?}");
    let for_both: Vec<&Value> = queue
        .iter()
        .filter(|f| f["message"]["id"] == both.body["id"])
        .collect();
    assert_eq!(for_both.len(), 2);
    let mut names: Vec<&str> = for_both
        .iter()
        .map(|f| f["guard_name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, vec!["Links", "Watch list"]);
    let first = queue
        .iter()
        .find(|f| f["message"]["id"] == one.body["id"])
        .unwrap();
    assert_eq!(first["status"], "open");
    assert_eq!(first["guard_id"], watch["id"]);
    assert_eq!(first["author_id"], bob.id);
    assert_eq!(first["conversation_id"], conv);
    assert_eq!(first["message"]["content"], "I want a REFUND");
    assert_eq!(first["message"]["author"]["username"], "bob");
    assert!(first["created_at"].is_string());
    let w = listed_guard(app, &org, &alice, watch["id"].as_str().unwrap()).await;
    assert_eq!(counts(&w), (1, 2, 0, 0));
    let l = listed_guard(app, &org, &alice, links["id"].as_str().unwrap()).await;
    assert_eq!(counts(&l), (2, 1, 0, 0));

    // Pages of one, newest first.
    let page = app
        .get(&format!("{}?limit=1", flags(&org)), &alice.token)
        .await
        .expect(200);
    assert_eq!(page.items().len(), 1);
    let next = app
        .next_page(&format!("{}?limit=1", flags(&org)), &page, &alice.token)
        .await;
    assert_eq!(next.items().len(), 1);
    assert_ne!(page.items()[0]["id"], next.items()[0]["id"]);

    // Dismissed: the message stays; removed: the message is deleted as a moderator deletes,
    // with the message's other open flags.
    let first_id = first["id"].as_str().unwrap();
    let dismissed = resolve_flag(app, &org, first_id, &alice.token, "dismissed")
        .await
        .expect(200);
    assert_eq!(dismissed.body["status"], "resolved");
    assert_eq!(dismissed.body["resolution"], "dismissed");
    assert_eq!(dismissed.body["resolved_by"], alice.id);
    resolve_flag(app, &org, first_id, &alice.token, "removed")
        .await
        .expect_error(409, "flag_resolved");
    let (mut ws, _) = Ws::identify(app, &bob.token).await;
    let removed_id = for_both[0]["id"].as_str().unwrap();
    let removed = resolve_flag(app, &org, removed_id, &alice.token, "removed")
        .await
        .expect(200);
    assert_eq!(removed.body["message"]["content"], Value::Null);
    assert!(removed.body["message"]["deleted_at"].is_string());
    let deleted = ws.expect("MESSAGE_DELETE").await;
    assert_eq!(deleted["id"], both.body["id"]);
    assert!(open_flags(app, &org, &alice).await.is_empty());
    let resolved = app
        .items(&format!("{}?status=resolved", flags(&org)), &alice.token)
        .await;
    assert_eq!(resolved.len(), 3);
    assert_eq!(
        texts(app, &conv, &alice).await,
        vec!["just chatting", "", "I want a REFUND"]
    );
    // Audited as a moderation, without the content.
    let audit = app.items(&org_path(&org, "/audit"), &alice.token).await;
    let events: Vec<&str> = audit.iter().filter_map(|r| r["event"].as_str()).collect();
    assert_includes(
        &events,
        &["guard.created", "flag.resolved", "message.moderated"],
    );
    let all = serde_json::to_string(&audit).unwrap();
    assert!(!all.contains("REFUND") && !all.contains("example.com"));
    // Unknown resolutions and statuses are refused.
    resolve_flag(app, &org, first_id, &alice.token, "ignored")
        .await
        .expect(422);
    app.get(&format!("{}?status=maybe", flags(&org)), &alice.token)
        .await
        .expect(400);
}

async fn edits_and_bots_are_screened(g: Guarded) {
    let app = &g.app;
    let (alice, bob, org, conv) = acme(app).await;
    let body = json!({"name": "Language", "kind": "blocklist", "mode": "block", "terms": ["darn"]});
    make_guard(app, &org, &alice, body).await;
    let body = json!({"name": "Watch", "kind": "blocklist", "mode": "flag", "terms": ["refund"]});
    make_guard(app, &org, &alice, body).await;
    let sent = app.says(&conv, &bob, "all fine").await;
    let path = format!("/api/v1/messages/{}", sent.id());
    let res = app
        .patch(&path, &bob.token, json!({"content": "all darn fine"}))
        .await
        .expect_error(422, "content_blocked");
    assert!(res.message().contains("Language"));
    assert_eq!(texts(app, &conv, &alice).await, vec!["all fine"]);
    let history = app
        .get(&format!("{path}/history"), &alice.token)
        .await
        .expect(200);
    assert!(
        history.items().is_empty(),
        "the refused edit left no version"
    );
    // An edit that a flagging guard objects to is delivered and queued.
    app.patch(&path, &bob.token, json!({"content": "a refund maybe"}))
        .await
        .expect(200);
    let queue = open_flags(app, &org, &alice).await;
    assert_eq!(queue.len(), 1);
    assert_eq!(queue[0]["message"]["content"], "a refund maybe");
    // Editing again while the flag is open queues no second flag for that guard.
    app.patch(&path, &bob.token, json!({"content": "a refund, surely"}))
        .await
        .expect(200);
    assert_eq!(open_flags(app, &org, &alice).await.len(), 1);

    // A bot's posts are screened like anyone's.
    let bot = crate::bots::make_bot(app, &org, &alice, json!({"name": "helper"})).await;
    app.add_participant(&conv, &alice, &bot.user_id).await;
    let messages = conv_path(&conv, "/messages");
    let post = |content: &str| {
        app.as_bot(
            Method::POST,
            &messages,
            &bot.token,
            Some(json!({"content": content})),
        )
    };
    post("darn it").await.expect_error(422, "content_blocked");
    post("refund?").await.expect(201);
    post("hello").await.expect(201);
    assert_eq!(open_flags(app, &org, &alice).await.len(), 2);
    assert_eq!(texts(app, &conv, &alice).await.len(), 3);
}

async fn regexes_run_in_linear_time_and_bad_ones_are_refused(g: Guarded) {
    let app = &g.app;
    let (alice, _bob, org, conv) = acme(app).await;
    let body = json!({"name": "Evil", "kind": "regex", "mode": "block", "patterns": ["(a+)+$"]});
    make_guard(app, &org, &alice, body).await;
    // Catastrophic for a backtracking engine: ~2^3999 paths. Linear here.
    let text = format!("{}b", "a".repeat(3999));
    let started = std::time::Instant::now();
    app.says(&conv, &alice, &text).await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    app.send_message(&conv, &alice, &"a".repeat(4000))
        .await
        .expect_error(422, "content_blocked");

    // Refused patterns name their index; nothing is stored.
    let path = guards(&org);
    let bad = |patterns: Value| {
        app.post(
            &path,
            &alice.token,
            json!({"kind": "regex", "mode": "block", "patterns": patterns}),
        )
    };
    let res = bad(json!(["ok", "(unclosed"]))
        .await
        .expect_error(422, "invalid_pattern");
    assert!(res.field().unwrap().ends_with("patterns/1"));
    let res = bad(json!([r"\w{1000}\w{1000}\w{1000}"]))
        .await
        .expect_error(422, "invalid_pattern");
    assert!(res.field().unwrap().ends_with("patterns/0"));
    assert!(res.message().contains("too large"), "{}", res.message());
    for pattern in [r"(a)\1", "(?=a)", ""] {
        let res = bad(json!([pattern]))
            .await
            .expect_error(422, "invalid_pattern");
        assert!(res.field().unwrap().ends_with("patterns/0"), "{pattern}");
    }
    bad(json!([])).await.expect_error(422, "invalid");
    assert_eq!(app.items(&guards(&org), &alice.token).await.len(), 1);
}

async fn settings_are_checked_and_changed_within_their_kind(g: Guarded) {
    let app = &g.app;
    let (alice, bob, org, conv) = acme(app).await;
    let path = guards(&org);
    let post = |body: Value| app.post(&path, &alice.token, body);
    // Missing settings, settings of another kind, bad terms: 422 naming the field.
    let cases = [
        (
            json!({"kind": "blocklist", "mode": "block"}),
            "required",
            "terms",
        ),
        (
            json!({"kind": "blocklist", "mode": "block", "terms": ["a"], "patterns": ["b"]}),
            "not_for_this_kind",
            "patterns",
        ),
        (
            json!({"kind": "regex", "mode": "flag", "patterns": ["a"], "api_key": "k"}),
            "not_for_this_kind",
            "api_key",
        ),
        (
            json!({"kind": "blocklist", "mode": "block", "terms": ["ok", "  "]}),
            "invalid",
            "terms/1",
        ),
        (
            json!({"kind": "blocklist", "mode": "block", "terms": []}),
            "invalid",
            "terms",
        ),
        (
            json!({"kind": "moderation_endpoint", "mode": "block", "url": g.moderator.url()}),
            "required",
            "fail",
        ),
        (
            json!({"kind": "agent", "mode": "block", "agent_id": uuid::Uuid::now_v7(), "fail": "open"}),
            "unknown_agent",
            "agent_id",
        ),
    ];
    for (body, code, field) in cases {
        let res = post(body.clone()).await.expect_error(422, code);
        assert!(
            res.field().unwrap_or("").ends_with(field),
            "{body}: {:?}",
            res.field()
        );
    }
    let many: Vec<String> = (0..1001).map(|i| format!("t{i}")).collect();
    post(json!({"kind": "blocklist", "mode": "block", "terms": many}))
        .await
        .expect(422);
    post(json!({"kind": "sentiment", "mode": "block"}))
        .await
        .expect(422);
    assert!(app.items(&guards(&org), &alice.token).await.is_empty());

    // Terms are trimmed and deduplicated; a PATCH changes them, not another kind's settings.
    let body = json!({"kind": "blocklist", "mode": "flag", "terms": [" spam ", "SPAM", "eggs"], "position": 7});
    let made = make_guard(app, &org, &alice, body).await;
    assert_eq!(made["name"], "blocklist");
    assert_eq!(made["terms"], json!(["spam", "eggs"]));
    assert_eq!(made["position"], 7);
    assert_eq!(
        made["counts"],
        json!({"allowed": 0, "flagged": 0, "blocked": 0, "errors": 0})
    );
    let path = format!("{}/{}", guards(&org), made["id"].as_str().unwrap());
    app.patch(&path, &alice.token, json!({"patterns": ["x"]}))
        .await
        .expect_error(422, "not_for_this_kind");
    let changed = app
        .patch(
            &path,
            &alice.token,
            json!({"terms": ["ham"], "mode": "block", "name": "Meat"}),
        )
        .await
        .expect(200);
    assert_eq!(changed.body["terms"], json!(["ham"]));
    assert_eq!(changed.body["mode"], "block");
    // The change applies to the next send at once (the cache is invalidated).
    app.send_message(&conv, &bob, "ham sandwich")
        .await
        .expect_error(422, "content_blocked");
    app.says(&conv, &bob, "spam and eggs").await;
    app.patch(&path, &alice.token, json!({"position": -1}))
        .await
        .expect(422);
}
