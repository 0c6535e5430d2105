//! WEB-4: a conversation object says where it comes from. `GET /conversations/{c}`, the lists
//! (`/conversations`, `/conversations/available`) and the answer of `PATCH
//! /conversations/{c}` carry `source` (`widget`, or null) and `status` (the widget status, or
//! null) — for a widget conversation and for an ordinary one alike.

use super::*;

crate::both_backends!(
    with crate::widget::widgeted;
    conversation_objects_carry_source_and_status,
);

/// Asserts that conversation object `c` is a widget conversation with `status`.
fn from_widget(c: &Value, status: &str) {
    assert_eq!(
        (&c["source"], &c["status"]),
        (&json!("widget"), &json!(status)),
        "{c}"
    );
}

/// Asserts that conversation object `c` carries `source` and `status`, both null.
fn ordinary(c: &Value) {
    assert!(c.get("source").is_some_and(Value::is_null), "{c}");
    assert!(c.get("status").is_some_and(Value::is_null), "{c}");
}

/// `who` changes `conv` with `body` (200 expected): the conversation object answered.
async fn updated(app: &TestApp, conv: &str, who: &User, body: Value) -> Value {
    let res = app.update_conversation(conv, who, body).await;
    res.expect(200).body
}

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
    let (_, conv) = app.visitor_opens(&s.key, "hello").await;
    let path = conv_path(&conv, "");
    // The team sees it among the conversations it may join, as the agent's (`bot`).
    let got = app.get(&path, &s.staff.token).await.expect(200).body;
    from_widget(&got, "bot");
    assert!(got["permissions"].is_array());
    let available = listed(
        app,
        "/api/v1/conversations/available",
        &s.staff.token,
        &conv,
    )
    .await;
    from_widget(&available, "bot");
    // Taken: the answer, the object and the list say `open`.
    let taken = updated(app, &conv, &s.staff, json!({"status": "open"})).await;
    from_widget(&taken, "open");
    assert_eq!(taken["id"], conv);
    app.post(&conv_path(&conv, "/join"), &s.staff.token, json!({}))
        .await
        .expect(200);
    let mine = listed(app, "/api/v1/conversations", &s.staff.token, &conv).await;
    from_widget(&mine, "open");
    // Resolved, then renamed: every answer keeps both.
    let resolved = updated(app, &conv, &s.staff, json!({"status": "resolved"})).await;
    from_widget(&resolved, "resolved");
    let renamed = updated(app, &conv, &s.owner, json!({"name": "Order 1234"})).await;
    from_widget(&renamed, "resolved");
    assert_eq!(renamed["name"], "Order 1234");
    let got = app.get(&path, &s.staff.token).await.expect(200).body;
    from_widget(&got, "resolved");
    // An ordinary conversation: both present and null, in every shape.
    let plain = app
        .group(&s.org, &s.owner, &[&s.staff], json!("private"))
        .await;
    let got = app
        .get(&conv_path(&plain, ""), &s.staff.token)
        .await
        .expect(200)
        .body;
    ordinary(&got);
    let mine = listed(app, "/api/v1/conversations", &s.staff.token, &plain).await;
    ordinary(&mine);
    let renamed = updated(app, &plain, &s.owner, json!({"name": "Lunch"})).await;
    ordinary(&renamed);
    // An ordinary conversation has no status to change.
    app.update_conversation(&plain, &s.owner, json!({"status": "resolved"}))
        .await
        .expect_error(422, "not_a_widget_conversation");
}
