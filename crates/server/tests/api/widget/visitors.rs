//! Visitors: the origin check and CORS on widget routes only, sessions made by the server
//! whose secret every call needs, signed identities, history across browsers, message limits
//! and plain text.

use super::*;

crate::both_backends!(
    with crate::widget::widgeted;
    only_the_keys_origins_get_in_and_get_cors,
    a_session_id_without_its_secret_reads_nothing,
    required_identity_refuses_unsigned_and_wrongly_signed_visitors,
    a_verified_visitor_finds_their_conversation_from_another_browser,
    the_visitor_secret_opens_no_other_route,
    messages_are_one_to_4000_characters_and_replies_arrive_as_text,
);

async fn only_the_keys_origins_get_in_and_get_cors(h: Widgeted) {
    let app = &h.app;
    let s = site(&h, "acme", "optional", false).await;
    let ok = app.start_session(&s.key, json!({})).await.expect(200);
    assert_eq!(ok.headers["access-control-allow-origin"], ORIGIN);
    assert!(ok.string("visitor_secret").starts_with("cnv_v_"));
    assert_eq!(ok.body["settings"]["title"], "acme support");
    assert_eq!(ok.body["settings"]["identity"], "optional");
    assert!(ok.body["conversation_id"].is_null());
    for (origin, key, code) in [
        (Some(EVIL), Some(s.key.as_str()), "origin_not_allowed"),
        (Some("null"), Some(s.key.as_str()), "origin_not_allowed"),
        (None, Some(s.key.as_str()), "origin_not_allowed"),
        (Some(ORIGIN), None, "widget_key_invalid"),
        (Some(ORIGIN), Some("cnv_w_made-up"), "widget_key_invalid"),
    ] {
        let res = app
            .widget_call(
                Method::POST,
                "/sessions",
                origin,
                key,
                None,
                Some(json!({})),
            )
            .await;
        let res = res.expect_error(403, code);
        assert!(
            res.headers.get("access-control-allow-origin").is_none(),
            "{origin:?}: no CORS header"
        );
    }
    // A well-formed key of no org.
    let fake = {
        let other = app
            .post(
                &widget_keys(&s.org),
                &s.owner.token,
                json!({"name": "gone", "allowed_origins": [ORIGIN], "team_id": s.team}),
            )
            .await
            .expect(201);
        let id = other.id();
        app.delete(&format!("{}/{id}", widget_keys(&s.org)), &s.owner.token)
            .await
            .expect(204);
        other.string("key")
    };
    app.start_session(&fake, json!({}))
        .await
        .expect_error(403, "widget_key_invalid");
    // Preflights: answered for a known origin only.
    let preflight = |origin: &'static str| {
        app.client
            .request(Method::OPTIONS, app.url("/api/v1/widget/chat"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type, x-widget-key",
            )
    };
    let res = app.send(preflight(ORIGIN)).await;
    assert_eq!(res.status.as_u16(), 204);
    assert_eq!(res.headers["access-control-allow-origin"], ORIGIN);
    assert!(res.headers["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("x-widget-visitor"));
    let res = app.send(preflight(EVIL)).await;
    assert_eq!(res.status.as_u16(), 403);
    assert!(res.headers.get("access-control-allow-origin").is_none());
    // The widget's origin gets no CORS on the rest of the API.
    let res = app
        .send(
            app.client
                .get(app.url("/api/v1/users/@me"))
                .header("origin", ORIGIN)
                .bearer_auth(&s.owner.token),
        )
        .await
        .expect(200);
    assert!(res.headers.get("access-control-allow-origin").is_none());
}

async fn a_session_id_without_its_secret_reads_nothing(h: Widgeted) {
    let app = &h.app;
    let s = site(&h, "acme", "optional", false).await;
    let victim = app.visit(&s.key, json!({})).await;
    app.visitor_says(&s.key, &victim, "my order number is 1234")
        .await;
    let thief = app.visit(&s.key, json!({})).await;
    let history = format!("/chat?session_id={}", victim.id);
    let stream = format!("/chat/stream?session_id={}", victim.id);
    let send = json!({"session_id": victim.id, "message": "hi"});
    let handoff = json!({"session_id": victim.id});
    for secret in [
        None,
        Some(thief.secret.as_str()),
        Some("cnv_v_guess"),
        Some(""),
    ] {
        for (method, path, body) in [
            (Method::GET, history.as_str(), None),
            (Method::GET, stream.as_str(), None),
            (Method::POST, "/chat", Some(send.clone())),
            (Method::POST, "/handoff", Some(handoff.clone())),
        ] {
            let res = app
                .widget_call(
                    method.clone(),
                    path,
                    Some(ORIGIN),
                    Some(&s.key),
                    secret,
                    body,
                )
                .await
                .expect_error(401, "visitor_invalid");
            assert!(!res.body.to_string().contains("1234"), "{method} {path}");
        }
    }
    // Resuming the victim's session without its secret makes a new, empty one.
    let res = app.resume_session(&s.key, &thief.secret, &victim.id).await;
    let res = res.expect(200);
    assert_ne!(res.string("session_id"), victim.id);
    assert!(res.body["conversation_id"].is_null());
    // With the secret, the session resumes.
    let res = app.resume_session(&s.key, &victim.secret, &victim.id).await;
    let res = res.expect(200);
    assert_eq!(res.string("session_id"), victim.id);
    assert_eq!(res.string("visitor_secret"), victim.secret);
    assert_eq!(res.body["status"], "open");
    // A session of another key is not this key's.
    let t = site(&h, "globex", "optional", false).await;
    app.as_visitor(&t.key, &victim.secret, Method::GET, &history, None)
        .await
        .expect_error(401, "visitor_invalid");
    let mine = app.visitor_history(&s.key, &victim).await;
    assert_eq!(mine["messages"][0]["content"], "my order number is 1234");
    assert_eq!(mine["messages"][0]["role"], "visitor");
}

async fn required_identity_refuses_unsigned_and_wrongly_signed_visitors(h: Widgeted) {
    let app = &h.app;
    let s = site(&h, "acme", "required", false).await;
    let good = sign(&s.identity_secret, "user-42");
    let wrong_secret = sign(&"0".repeat(64), "user-42");
    let other_user = sign(&s.identity_secret, "user-43");
    for (body, status, code) in [
        (json!({}), 403, "identity_required"),
        (
            json!({"profile": {"name": "Eve"}}),
            403,
            "identity_required",
        ),
        (
            json!({"identity": {"user_id": "user-42", "hash": wrong_secret}}),
            403,
            "identity_invalid",
        ),
        (
            json!({"identity": {"user_id": "user-42", "hash": other_user}}),
            403,
            "identity_invalid",
        ),
        (
            json!({"identity": {"user_id": "user-42", "hash": "zz"}}),
            403,
            "identity_invalid",
        ),
        (json!({"identity": {"user_id": "user-42"}}), 422, "required"),
        (
            json!({"identity": {"token": "eyJ.x.y"}}),
            403,
            "identity_invalid",
        ),
    ] {
        app.start_session(&s.key, body.clone())
            .await
            .check(status, Some(code), &body.to_string());
    }
    let ok = app
        .visit(
            &s.key,
            json!({"identity": {"user_id": "user-42", "name": "Ann", "hash": good}}),
        )
        .await;
    let said = app.visitor_says(&s.key, &ok, "hello").await;
    assert_eq!(said["author_name"], "Ann");
    // In optional mode a wrong signature is refused too (never silently anonymous).
    let t = site(&h, "globex", "optional", false).await;
    app.start_session(
        &t.key,
        json!({"identity": {"user_id": "u", "hash": sign(&s.identity_secret, "u")}}),
    )
    .await
    .expect_error(403, "identity_invalid");
}

async fn a_verified_visitor_finds_their_conversation_from_another_browser(h: Widgeted) {
    let app = &h.app;
    let s = site(&h, "acme", "optional", false).await;
    let identity =
        json!({"identity": {"user_id": "user-7", "hash": sign(&s.identity_secret, "user-7")}});
    let first = app.visit(&s.key, identity.clone()).await;
    app.visitor_says(&s.key, &first, "from my laptop").await;
    let second = app.visit(&s.key, identity).await;
    assert_ne!(second.id, first.id);
    assert!(second.body["conversation_id"].is_string());
    let history = app.visitor_history(&s.key, &second).await;
    assert_eq!(history["messages"][0]["content"], "from my laptop");
    // An anonymous visitor (and another user) sees none of it.
    let anon = app.visit(&s.key, json!({})).await;
    assert!(app.visitor_history(&s.key, &anon).await["messages"]
        .as_array()
        .unwrap()
        .is_empty());
    let other =
        json!({"identity": {"user_id": "user-8", "hash": sign(&s.identity_secret, "user-8")}});
    let other = app.visit(&s.key, other).await;
    assert!(app.visitor_history(&s.key, &other).await["conversation_id"].is_null());
}

async fn the_visitor_secret_opens_no_other_route(h: Widgeted) {
    let app = &h.app;
    let s = site(&h, "acme", "optional", false).await;
    let v = app.visit(&s.key, json!({})).await;
    let said = app.visitor_says(&s.key, &v, "hello").await;
    let conv = app.visitor_conversation(&s.key, &v).await;
    for path in [
        "/api/v1/users/@me".to_owned(),
        "/api/v1/conversations".to_owned(),
        format!("/api/v1/conversations/{conv}/messages"),
        format!("/api/v1/orgs/{}", s.org),
    ] {
        app.get(&path, &v.secret).await.expect(401);
        app.send(
            app.client
                .get(app.url(&path))
                .header("authorization", format!("Bot {}", v.secret)),
        )
        .await
        .expect(401);
        app.send(
            app.client
                .get(app.url(&path))
                .header("x-widget-visitor", &v.secret),
        )
        .await
        .expect(401);
    }
    app.post(
        &conv_path(&conv, "/messages"),
        &v.secret,
        json!({"content": "x"}),
    )
    .await
    .expect(401);
    // The widget key is no credential either.
    app.get("/api/v1/users/@me", &s.key).await.expect(401);
    assert!(said["id"].is_string());
}

async fn messages_are_one_to_4000_characters_and_replies_arrive_as_text(h: Widgeted) {
    let app = &h.app;
    let s = site(&h, "acme", "optional", false).await;
    let v = app.visit(&s.key, json!({})).await;
    for text in ["", "   "] {
        app.visitor_sends(&s.key, &v, text)
            .await
            .expect_error(422, "invalid_value");
    }
    let long = "x".repeat(4001);
    let res = app
        .visitor_sends(&s.key, &v, &long)
        .await
        .expect_error(422, "invalid_value");
    assert_eq!(res.field(), Some("/message"));
    assert!(res.message().contains("4000"), "{}", res.message());
    let max = "é".repeat(4000);
    let said = app.visitor_says(&s.key, &v, &max).await;
    assert_eq!(said["content"], max.as_str());
    let script = "<script>alert(1)</script>";
    let said = app.visitor_says(&s.key, &v, script).await;
    assert_eq!(said["content"], script, "visitor text is kept as text");
    // A staff reply in HTML reaches the visitor as its text only.
    let conv = app.visitor_conversation(&s.key, &v).await;
    app.post(&conv_path(&conv, "/join"), &s.staff.token, json!({}))
        .await
        .expect(200);
    let mut stream = Stream::open(app, &s.key, &v, None).await;
    stream.until(|e| e.event == "status").await;
    app.post(
        &conv_path(&conv, "/messages"),
        &s.staff.token,
        json!({"content": "<p>Hi <b>there</b><script>alert(2)</script><a href=\"javascript:x\">link</a></p>", "format": "html"}),
    )
    .await
    .expect(201);
    let got = stream
        .until(|e| e.event == "message" && e.data["role"] == "staff")
        .await;
    let reply = &got.last().unwrap().data;
    let text = reply["content"].as_str().unwrap();
    assert!(!text.contains('<') && !text.contains("script"), "{text}");
    assert!(text.contains("Hi there"), "{text}");
    assert_eq!(reply["author_name"], "acme-staff");
    let history = app.visitor_history(&s.key, &v).await;
    let last = history["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["content"], reply["content"]);
}
