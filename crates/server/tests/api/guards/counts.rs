//! Every decision counted exactly, under parallel sends, and reported by `GET /admin/stats`.

use super::*;

crate::both_backends!(
    with crate::guards::guarded;
    counters_are_exact_under_parallel_sends,
);

async fn counters_are_exact_under_parallel_sends(g: Guarded) {
    let app = &g.app;
    let admin = app.bootstrap().await;
    let alice = app.user("alice").await;
    let org = app.org(&alice, "Acme").await;
    let conv = app.group(&org, &alice, &[], json!("private")).await;
    let body = json!({"kind": "blocklist", "mode": "block", "terms": ["stop"]});
    let words = make_guard(app, &org, &alice, body).await;
    let body = json!({"kind": "regex", "mode": "flag", "patterns": ["(?i)look"]});
    let flags_guard = make_guard(app, &org, &alice, body).await;
    // 100 sends at once: every third blocked, every fifth flagged (unless blocked first).
    let sends = (0..100).map(|i| {
        let text = match (i % 3, i % 5) {
            (0, _) => format!("stop {i}"),
            (_, 0) => format!("look {i}"),
            _ => format!("fine {i}"),
        };
        let path = conv_path(&conv, "/messages");
        let token = alice.token.clone();
        async move { app.post(&path, &token, json!({"content": text})).await }
    });
    let answers = futures::future::join_all(sends).await;
    let blocked = (0..100).filter(|i| i % 3 == 0).count() as i64;
    let flagged = (0..100).filter(|i| i % 3 != 0 && i % 5 == 0).count() as i64;
    let passed = only(answers, 201, (422, "content_blocked"));
    assert_eq!(passed.len() as i64, 100 - blocked);
    let w = listed_guard(app, &org, &alice, words["id"].as_str().unwrap()).await;
    assert_eq!(counts(&w), (100 - blocked, 0, blocked, 0));
    let f = listed_guard(app, &org, &alice, flags_guard["id"].as_str().unwrap()).await;
    assert_eq!(counts(&f), (100 - blocked - flagged, flagged, 0, 0));
    assert_eq!(open_flags(app, &org, &alice).await.len() as i64, flagged);
    assert_eq!(app.message_count(&conv, &alice).await as i64, 100 - blocked);

    // The server's totals.
    let stats = app
        .get("/api/v1/admin/stats", &admin.token)
        .await
        .expect(200);
    let totals = &stats.body["guards"];
    assert_eq!(totals["guards"], 2);
    assert_eq!(totals["enabled"], 2);
    assert_eq!(totals["orgs"], 1);
    assert_eq!(totals["open_flags"], flagged);
    assert_eq!(
        totals["counts"],
        json!({"allowed": 200 - 2 * blocked - flagged, "flagged": flagged, "blocked": blocked, "errors": 0})
    );
}
