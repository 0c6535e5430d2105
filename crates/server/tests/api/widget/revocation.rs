//! WEB-4 "keys are revocable": revoking a widget key ends its open visitor streams at once and
//! refuses every later call with the key or its visitors' secrets; taking an origin off the
//! key ends the streams of that origin's pages only; requiring signed visitors ends the
//! anonymous visitors' streams. Another key's streams go on. (Across nodes:
//! `cluster::widget`.)

use super::*;

crate::both_backends!(
    with crate::widget::widgeted;
    revoking_a_key_ends_its_open_streams_and_refuses_its_visitors,
    removing_an_origin_ends_that_origins_streams_only,
    requiring_identity_ends_anonymous_streams,
);

/// How long a stream may take to end after its key changed.
const PROMPTLY: Duration = Duration::from_secs(5);

/// Whether `stream` still delivers: `v` says `text` and the stream shows it.
async fn still_live(app: &TestApp, key: &str, v: &Session, stream: &mut Stream, text: &str) {
    app.visitor_says(key, v, text).await;
    stream
        .until(|e| e.event == "message" && e.data["content"] == text)
        .await;
}

async fn revoking_a_key_ends_its_open_streams_and_refuses_its_visitors(h: Widgeted) {
    let app = &h.app;
    let s = site(&h, "acme", "optional", false).await;
    // One visitor with a conversation (its stream follows it), one still without (its stream
    // waits for one), and a visitor of another key of the same org.
    let (talking, conv) = app.visitor_opens(&s.key, "my card number is …").await;
    let waiting = app.visit(&s.key, json!({})).await;
    let other = app
        .post(
            &widget_keys(&s.org),
            &s.owner.token,
            json!({"name": "other", "allowed_origins": [ORIGIN], "team_id": s.team}),
        )
        .await
        .expect(201)
        .string("key");
    let bystander = app.visit(&other, json!({})).await;
    let mut a = Stream::open(app, &s.key, &talking, None).await;
    a.until(|e| e.event == "status").await;
    let mut b = Stream::open(app, &s.key, &waiting, None).await;
    let mut c = Stream::open(app, &other, &bystander, None).await;
    still_live(app, &other, &bystander, &mut c, "before").await;
    app.delete(
        &format!("{}/{}", widget_keys(&s.org), s.key_id),
        &s.owner.token,
    )
    .await
    .expect(204);
    assert!(a.ends_within(PROMPTLY).await, "the following stream ends");
    assert!(b.ends_within(PROMPTLY).await, "the waiting stream ends");
    still_live(app, &other, &bystander, &mut c, "after").await;
    // Every later call with the key, whatever secret it shows, is refused.
    for v in [&talking, &waiting] {
        for (method, path, body) in [
            (Method::GET, format!("/chat?session_id={}", v.id), None),
            (
                Method::GET,
                format!("/chat/stream?session_id={}", v.id),
                None,
            ),
            (
                Method::POST,
                "/chat".to_owned(),
                Some(json!({"session_id": v.id, "message": "hello?"})),
            ),
            (
                Method::POST,
                "/handoff".to_owned(),
                Some(json!({"session_id": v.id})),
            ),
            (
                Method::POST,
                "/sessions".to_owned(),
                Some(json!({"session_id": v.id})),
            ),
        ] {
            let res = app
                .as_visitor(&s.key, &v.secret, method, &path, body)
                .await
                .expect_error(403, "widget_key_invalid");
            assert!(res.body.get("messages").is_none());
            assert!(res.headers.get("access-control-allow-origin").is_none());
        }
    }
    // The visitor secrets open nothing through another key either.
    app.visitor_reads(&other, &talking)
        .await
        .expect_error(401, "visitor_invalid");
    // Nothing was written after the revocation; the team keeps the conversation.
    let kept = app
        .get(&conv_path(&conv, ""), &s.staff.token)
        .await
        .expect(200);
    assert_eq!(kept.body["last_seq"], 1);
    assert_eq!(kept.body["source"], "widget");
}

async fn removing_an_origin_ends_that_origins_streams_only(h: Widgeted) {
    let app = &h.app;
    let s = site(&h, "acme", "optional", false).await;
    const SECOND: &str = "https://help.shop.example";
    app.change_key(&s, json!({"allowed_origins": [ORIGIN, SECOND]}))
        .await;
    let here = app.visit(&s.key, json!({})).await;
    app.visitor_says(&s.key, &here, "hello").await;
    let there = app.visit(&s.key, json!({})).await;
    app.visitor_says(&s.key, &there, "hi").await;
    let mut first = Stream::open_from(app, ORIGIN, &s.key, &here, None).await;
    first.until(|e| e.event == "status").await;
    let mut second = Stream::open_from(app, SECOND, &s.key, &there, None).await;
    second.until(|e| e.event == "status").await;
    // A change that keeps both origins ends nothing.
    app.change_key(
        &s,
        json!({"allowed_origins": [SECOND, ORIGIN], "name": "renamed"}),
    )
    .await;
    still_live(app, &s.key, &here, &mut first, "still here").await;
    app.change_key(&s, json!({"allowed_origins": [SECOND]}))
        .await;
    assert!(
        first.ends_within(PROMPTLY).await,
        "the removed origin's stream ends"
    );
    // The other origin's stream goes on; the removed origin is refused from now on.
    let said = app
        .widget_call(
            Method::POST,
            "/chat",
            Some(SECOND),
            Some(&s.key),
            Some(&there.secret),
            Some(json!({"session_id": there.id, "message": "from the help site"})),
        )
        .await
        .expect(201);
    assert_eq!(said.body["content"], "from the help site");
    second
        .until(|e| e.event == "message" && e.data["content"] == "from the help site")
        .await;
    app.visitor_reads(&s.key, &here)
        .await
        .expect_error(403, "origin_not_allowed");
}

async fn requiring_identity_ends_anonymous_streams(h: Widgeted) {
    let app = &h.app;
    let s = site(&h, "acme", "optional", false).await;
    let anon = app.visit(&s.key, json!({})).await;
    let signed = app
        .visit(
            &s.key,
            json!({"identity": {"user_id": "u-1", "hash": sign(&s.identity_secret, "u-1")}}),
        )
        .await;
    app.visitor_says(&s.key, &signed, "hello").await;
    let mut anon_stream = Stream::open(app, &s.key, &anon, None).await;
    let mut signed_stream = Stream::open(app, &s.key, &signed, None).await;
    signed_stream.until(|e| e.event == "status").await;
    app.change_key(&s, json!({"identity": "required"})).await;
    assert!(
        anon_stream.ends_within(PROMPTLY).await,
        "the anonymous stream ends"
    );
    still_live(app, &s.key, &signed, &mut signed_stream, "still signed in").await;
    app.as_visitor(
        &s.key,
        &anon.secret,
        Method::GET,
        &format!("/chat/stream?session_id={}", anon.id),
        None,
    )
    .await
    .expect_error(403, "identity_required");
}
