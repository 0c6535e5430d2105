//! Deliveries: Standard Webhooks signatures checked by the independent `standardwebhooks`
//! package, one delivery per event, in order per endpoint, retries with back-off, the delivery
//! log, auto-disable after sustained failure, and parallel test/redeliver requests.

use super::receiver::Received;
use super::*;
use chrono::Duration;

crate::both_backends!(
    with crate::webhooks::hooked;
    deliveries_are_signed_and_verified_independently,
    failures_retry_with_back_off_in_order,
    sustained_failure_disables_the_endpoint,
    parallel_tests_and_redeliveries_send_what_was_asked,
);

/// What `standardwebhooks` (PyPI) says of a delivery, per secret (see `python.rs`).
fn python_verdicts(secrets: &[String], got: &Received) -> Option<String> {
    let headers = got.headers.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    crate::python::standardwebhooks_verdicts(secrets, headers, got.body.as_bytes())
}

async fn deliveries_are_signed_and_verified_independently(h: Hooked) {
    let (app, rx) = (&h.app, &h.rx[0]);
    let (alice, org, conv) = h.acme().await;
    let other = app.group(&org, &alice, &[], json!("org")).await;
    let (hook, secret) = make_hook(app, &org, &alice, &rx.url(), &["message.created"]).await;
    // A second endpoint hears only the other conversation.
    let only_other = app
        .post(
            &hooks(&org),
            &alice.token,
            json!({"url": h.rx[1].url(), "events": ["message.created"], "conversation_id": other}),
        )
        .await
        .expect(201);
    assert_eq!(only_other.body["conversation_id"], other);

    let sent = app.says(&conv, &alice, "hello hooks").await;
    run_worker(app, Duration::seconds(1)).await;
    let got = rx.received();
    assert_eq!(got.len(), 1, "one delivery per event");
    let body = got[0].json();
    assert_eq!(body["type"], "message.created");
    assert_eq!(body["data"]["id"], sent.body["id"]);
    assert!(body["timestamp"].is_string());
    assert!(got[0].header("webhook-id").starts_with("msg_"));
    assert!(got[0].header("webhook-signature").starts_with("v1,"));
    assert!(got[0].header("x-webhook-signature").starts_with("sha256="));
    assert_eq!(got[0].header("content-type"), "application/json");
    assert!(
        h.rx[1].received().is_empty(),
        "the other conversation's endpoint heard nothing"
    );
    if let Some(v) = python_verdicts(std::slice::from_ref(&secret), &got[0]) {
        assert_eq!(v, "ok,refused,match");
    }

    // The log: delivered, one attempt, a status and a latency; never the secret.
    let log = deliveries(app, &org, &hook, &alice).await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["status"], "delivered");
    assert_eq!(log[0]["attempts"], 1);
    assert_eq!(log[0]["last_status_code"], 200);
    assert!(log[0]["latency_ms"].is_i64());
    assert!(!log[0].to_string().contains(&secret[6..]));

    // After a rotation both secrets verify the same delivery; the hex header uses the new one.
    let rotated = app
        .post_empty(&format!("{}/{hook}/secret", hooks(&org)), &alice.token)
        .await
        .expect(200);
    let new_secret = rotated.string("secret");
    app.says(&conv, &alice, "after rotation").await;
    run_worker(app, Duration::seconds(1)).await;
    let got = rx.received();
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].header("webhook-signature").split(' ').count(), 2);
    if let Some(v) = python_verdicts(&[new_secret.clone(), secret.clone()], &got[1]) {
        assert_eq!(v, "ok,refused,match ok,refused,differ");
    }
    // Once the overlap is over only the new secret signs.
    app.clock.advance(Duration::hours(25));
    app.says(&conv, &alice, "overlap over").await;
    run_worker(app, Duration::seconds(1)).await;
    let got = rx.received();
    assert_eq!(got.len(), 3);
    assert_eq!(got[2].header("webhook-signature").split(' ').count(), 1);
    let id = got[2].header("webhook-id").to_owned();
    assert_ne!(id, got[1].header("webhook-id"));
}

async fn failures_retry_with_back_off_in_order(h: Hooked) {
    let (app, rx) = (&h.app, &h.rx[0]);
    let (alice, org, conv) = h.acme().await;
    let (hook, _) = make_hook(app, &org, &alice, &rx.url(), &["message.created"]).await;
    rx.answer(&[500, 503]);
    let first = app.says(&conv, &alice, "first").await.id();
    let second = app.says(&conv, &alice, "second").await.id();

    run_worker(app, Duration::seconds(1)).await;
    // The first failed; the second waits behind it (order per endpoint).
    let got = rx.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].json()["data"]["id"], first);
    let log = deliveries(app, &org, &hook, &alice).await;
    let head = log
        .iter()
        .find(|d| d["attempts"] == 1)
        .expect("the failed one");
    assert_eq!(head["status"], "pending");
    assert_eq!(head["last_status_code"], 500);
    assert!(head["last_error"].as_str().unwrap().contains("500"));
    let next: chrono::DateTime<chrono::Utc> =
        head["next_attempt_at"].as_str().unwrap().parse().unwrap();
    let failed_at = conclave_core::Clock::now(&*app.clock);
    // Back-off with jitter: between half and all of the first 10 s step.
    let wait = next - failed_at;
    assert!(
        wait >= Duration::seconds(5) && wait <= Duration::seconds(10),
        "{wait}"
    );

    // Not yet due: nothing is sent.
    run_worker(app, Duration::seconds(2)).await;
    assert_eq!(rx.received().len(), 1);
    // Due: the retry fails again (503), and the next one waits up to 20 s.
    run_worker(app, Duration::seconds(10)).await;
    assert_eq!(rx.received().len(), 2);
    // Then it succeeds, and the second follows in the same turn.
    run_worker(app, Duration::seconds(25)).await;
    let got = rx.received();
    let order: Vec<Value> = got.iter().map(|r| r.json()["data"]["id"].clone()).collect();
    assert_eq!(
        order,
        vec![json!(first), json!(first), json!(first), json!(second)]
    );
    // Retries keep the message id (receivers de-duplicate on it).
    assert_eq!(got[0].header("webhook-id"), got[2].header("webhook-id"));
    let log = deliveries(app, &org, &hook, &alice).await;
    assert!(log.iter().all(|d| d["status"] == "delivered"));
    let attempts: Vec<i64> = log
        .iter()
        .map(|d| d["attempts"].as_i64().unwrap())
        .collect();
    assert_eq!(attempts, vec![1, 3], "newest first");
}

async fn sustained_failure_disables_the_endpoint(h: Hooked) {
    let (app, rx) = (&h.app, &h.rx[0]);
    let (alice, org, hook) = alice_hook(app, rx).await;
    rx.always(Some(500));
    let test = format!("{}/{hook}/test", hooks(&org));
    for _ in 0..3 {
        app.post_empty(&test, &alice.token).await.expect(202);
    }
    for _ in 0..40 {
        run_worker(app, Duration::hours(2)).await;
    }
    // 20 failed attempts in a row disable it: 8 of the first (then it failed for good), 8 of
    // the second, 4 of the third.
    assert_eq!(rx.received().len(), 20);
    let listed = app.items(&hooks(&org), &alice.token).await;
    assert_eq!(listed[0]["enabled"], false);
    assert_eq!(listed[0]["disabled_reason"], "failing");
    let log = deliveries(app, &org, &hook, &alice).await;
    let statuses: Vec<&str> = log.iter().map(|d| d["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, vec!["pending", "failed", "failed"]);
    let audit = app
        .items(&format!("/api/v1/orgs/{org}/audit"), &alice.token)
        .await;
    assert_eq!(
        audit
            .iter()
            .filter(|r| r["event"] == "webhook.disabled")
            .count(),
        1
    );
    // A disabled endpoint refuses tests; re-enabling resumes the queue.
    app.post_empty(&test, &alice.token)
        .await
        .expect_error(409, "webhook_disabled");
    rx.always(None);
    app.patch(
        &format!("{}/{hook}", hooks(&org)),
        &alice.token,
        json!({"enabled": true}),
    )
    .await
    .expect(200);
    run_worker(app, Duration::seconds(1)).await;
    assert_eq!(rx.received().len(), 21);
    let log = deliveries(app, &org, &hook, &alice).await;
    assert_eq!(log[0]["status"], "delivered");
}

async fn parallel_tests_and_redeliveries_send_what_was_asked(h: Hooked) {
    let (app, rx) = (&h.app, &h.rx[0]);
    let (alice, org, hook) = alice_hook(app, rx).await;
    let test = format!("{}/{hook}/test", hooks(&org));
    let asks = (0..100).map(|_| app.post_empty(&test, &alice.token));
    let answers = futures::future::join_all(asks).await;
    let accepted = answers.iter().filter(|r| r.status.as_u16() == 202).count();
    assert!(answers
        .iter()
        .all(|r| [202, 429].contains(&r.status.as_u16())));
    run_worker(app, Duration::seconds(1)).await;
    let got = rx.received();
    assert_eq!(got.len(), accepted, "exactly one send per accepted request");
    assert!(got.iter().all(|r| r.json()["type"] == "webhook.test"));
    let ids: std::collections::HashSet<&str> = got.iter().map(|r| r.header("webhook-id")).collect();
    assert_eq!(ids.len(), accepted);

    let one = deliveries(app, &org, &hook, &alice).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let redeliver = format!("{}/{hook}/deliveries/{one}/redeliver", hooks(&org));
    let asks = (0..100).map(|_| app.post_empty(&redeliver, &alice.token));
    let answers = futures::future::join_all(asks).await;
    let again = answers.iter().filter(|r| r.status.as_u16() == 202).count();
    run_worker(app, Duration::seconds(1)).await;
    assert_eq!(rx.received().len(), accepted + again);
    // Another org's admin cannot redeliver it.
    let (mallory, _) = app.mallory().await;
    app.post_empty(&redeliver, &mallory.token).await.expect(404);
}
