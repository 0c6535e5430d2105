//! WEB-4: a conversation object says where it comes from. `GET /conversations/{c}`, the lists
//! (`/conversations`, `/conversations/available`) and the answer of `PATCH
//! /conversations/{c}` carry `source` (`widget`, or null) and `status` (the widget status, or
//! null) — for a widget conversation and for an ordinary one alike.

use super::*;

crate::both_backends!(
    with crate::widget::widgeted;
    conversation_objects_carry_source_and_status,
);

/// The item of `list` (at `path`, as `token`) with id `conv`.
async fn listed(app: &TestApp, path: &str, token: &str, conv: &str) -> Value {
    app.items(path, token)
        .await
        .into_iter()
        .find(|c| c["id"] == conv)
        .unwrap_or_else(|| panic!("{conv} in {path}"))
}

async fn conversation_objects_carry_source_and_status(h: Widgeted) {
    let app = &h.app;
    let s = site(&h, "acme", "optional", true).await;
    let v = app.visit(&s.key, json!({})).await;
    app.visitor_says(&s.key, &v, "hello").await;
    let conv = app.visitor_history(&s.key, &v).await["conversation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = conv_path(&conv, "");
    // The team sees it among the conversations it may join, as the agent's (`bot`).
    let got = app.get(&path, &s.staff.token).await.expect(200).body;
    assert_eq!(got["source"], "widget");
    assert_eq!(got["status"], "bot");
    assert!(got["permissions"].is_array());
    let available = listed(
        app,
        "/api/v1/conversations/available",
        &s.staff.token,
        &conv,
    )
    .await;
    assert_eq!(available["source"], "widget");
    assert_eq!(available["status"], "bot");
    // Taken: the answer, the object and the list say `open`.
    let taken = app
        .update_conversation(&conv, &s.staff, json!({"status": "open"}))
        .await
        .expect(200)
        .body;
    assert_eq!(
        (&taken["source"], &taken["status"]),
        (&json!("widget"), &json!("open"))
    );
    assert_eq!(taken["id"], conv);
    app.post(&conv_path(&conv, "/join"), &s.staff.token, json!({}))
        .await
        .expect(200);
    let mine = listed(app, "/api/v1/conversations", &s.staff.token, &conv).await;
    assert_eq!(
        (&mine["source"], &mine["status"]),
        (&json!("widget"), &json!("open"))
    );
    // Resolved, then renamed: every answer keeps both.
    let resolved = app
        .update_conversation(&conv, &s.staff, json!({"status": "resolved"}))
        .await
        .expect(200)
        .body;
    assert_eq!(resolved["status"], "resolved");
    let renamed = app
        .update_conversation(&conv, &s.owner, json!({"name": "Order 1234"}))
        .await
        .expect(200)
        .body;
    assert_eq!(
        (&renamed["source"], &renamed["status"]),
        (&json!("widget"), &json!("resolved"))
    );
    assert_eq!(renamed["name"], "Order 1234");
    let got = app.get(&path, &s.staff.token).await.expect(200).body;
    assert_eq!(
        (&got["source"], &got["status"]),
        (&json!("widget"), &json!("resolved"))
    );
    // An ordinary conversation: both present and null, in every shape.
    let plain = app
        .group(&s.org, &s.owner, &[&s.staff], json!("private"))
        .await;
    let got = app
        .get(&conv_path(&plain, ""), &s.staff.token)
        .await
        .expect(200)
        .body;
    assert!(got.get("source").is_some_and(Value::is_null), "{got}");
    assert!(got.get("status").is_some_and(Value::is_null), "{got}");
    let mine = listed(app, "/api/v1/conversations", &s.staff.token, &plain).await;
    assert!(mine["source"].is_null() && mine.get("status").is_some_and(Value::is_null));
    let renamed = app
        .update_conversation(&plain, &s.owner, json!({"name": "Lunch"}))
        .await
        .expect(200)
        .body;
    assert!(
        renamed.get("source").is_some_and(Value::is_null),
        "{renamed}"
    );
    assert!(
        renamed.get("status").is_some_and(Value::is_null),
        "{renamed}"
    );
    // An ordinary conversation has no status to change.
    app.update_conversation(&plain, &s.owner, json!({"status": "resolved"}))
        .await
        .expect_error(422, "not_a_widget_conversation");
}
