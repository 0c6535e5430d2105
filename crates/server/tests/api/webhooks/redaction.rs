//! DATA-5 and DATA-6 reach the delivery log (HOOK-2): a delivery's body goes with the message it
//! is about (deleted) and with the person it names (erased): the log shows `redacted_at`, such a
//! delivery cannot be redelivered, one still retrying is given up, and the receiver never gets a
//! deleted message's text again. A deleted conversation or a retention purge takes the
//! deliveries of the messages it removes.

use super::*;
use chrono::Duration;

crate::both_backends!(
    with crate::webhooks::hooked;
    deleted_messages_leave_no_body_to_send_again,
    erasure_and_retention_reach_the_delivery_log,
);

fn redeliver(org: &str, hook: &str, delivery: &Value) -> String {
    let d = delivery["id"].as_str().unwrap();
    format!("{}/{hook}/deliveries/{d}/redeliver", hooks(org))
}

/// The event types of a delivery log, in its order.
fn types(log: &[Value]) -> Vec<&str> {
    log.iter()
        .map(|d| d["event_type"].as_str().unwrap())
        .collect()
}

/// How many of the bodies `rx` received contain `text`.
fn heard(rx: &receiver::Receiver, text: &str) -> usize {
    rx.received()
        .iter()
        .filter(|r| r.body.contains(text))
        .count()
}

async fn deleted_messages_leave_no_body_to_send_again(h: Hooked) {
    let (app, rx) = (&h.app, &h.rx[0]);
    let (alice, org, conv) = h.acme().await;
    let events = ["message.created", "message.updated", "message.deleted"];
    let (hook, _) = make_hook(app, &org, &alice, &rx.url(), &events).await;
    let gone = app
        .says(&conv, &alice, "a secret said by mistake")
        .await
        .id();
    app.says(&conv, &alice, "an ordinary line").await;
    run_worker(app, Duration::seconds(1)).await;
    assert_eq!(rx.received().len(), 2);
    app.delete(&format!("/api/v1/messages/{gone}"), &alice.token)
        .await
        .expect(204);
    run_worker(app, Duration::seconds(1)).await;
    // Newest first: the tombstone, the ordinary line, the deleted message's creation.
    let log = deliveries(app, &org, &hook, &alice).await;
    assert_eq!(
        types(&log),
        ["message.deleted", "message.created", "message.created"]
    );
    assert!(log[0]["redacted_at"].is_null(), "the tombstone is kept");
    assert!(
        log[1]["redacted_at"].is_null(),
        "another message's body is kept"
    );
    assert!(log[2]["redacted_at"].is_string(), "{:?}", log[2]);
    assert_eq!(log[2]["status"], "delivered", "the log line stays");
    app.post_empty(&redeliver(&org, &hook, &log[2]), &alice.token)
        .await
        .expect_error(409, "delivery_redacted");
    app.post_empty(&redeliver(&org, &hook, &log[1]), &alice.token)
        .await
        .expect(202);
    run_worker(app, Duration::seconds(1)).await;
    assert_eq!(
        heard(rx, "a secret said by mistake"),
        1,
        "sent once, before the deletion"
    );
    assert_eq!(heard(rx, "an ordinary line"), 2);

    // A delivery still retrying when its message is deleted is given up.
    rx.always(Some(500));
    let retried = app.says(&conv, &alice, "another secret").await.id();
    run_worker(app, Duration::seconds(1)).await;
    assert_eq!(heard(rx, "another secret"), 1, "the first attempt failed");
    app.delete(&format!("/api/v1/messages/{retried}"), &alice.token)
        .await
        .expect(204);
    rx.always(None);
    for _ in 0..3 {
        run_worker(app, Duration::hours(1)).await;
    }
    assert_eq!(heard(rx, "another secret"), 1, "never sent again");
    let log = deliveries(app, &org, &hook, &alice).await;
    let given_up = log
        .iter()
        .find(|d| d["event_type"] == "message.created" && d["status"] == "failed")
        .expect("the retried delivery");
    assert_eq!(given_up["last_error"], "redacted");
    assert!(given_up["redacted_at"].is_string());
    assert_eq!(log[0]["event_type"], "message.deleted");
    assert_eq!(log[0]["status"], "delivered", "the queue moved on");

    // Deleting the conversation takes the deliveries about all its messages, as a retention
    // purge does; another conversation's stay.
    let ordinary = log
        .iter()
        .filter(|d| d["event_type"] == "message.created" && d["redacted_at"].is_null())
        .count();
    assert_eq!(ordinary, 2, "the ordinary line and its redelivery");
    let elsewhere = app.group(&org, &alice, &[], json!("org")).await;
    app.says(&elsewhere, &alice, "in another room").await;
    run_worker(app, Duration::seconds(1)).await;
    app.delete(&format!("/api/v1/conversations/{conv}"), &alice.token)
        .await
        .expect(204);
    let log = deliveries(app, &org, &hook, &alice).await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert!(log[0]["redacted_at"].is_null());
    assert_eq!(heard(rx, "in another room"), 1);
}

async fn erasure_and_retention_reach_the_delivery_log(h: Hooked) {
    let (app, rx) = (&h.app, &h.rx[0]);
    let (alice, org, conv) = h.acme().await;
    app.update_org(&org, &alice, json!({ "message_retention_days": 1 }))
        .await
        .expect(200);
    let events = ["message.created", "member.added"];
    let (hook, _) = make_hook(app, &org, &alice, &rx.url(), &events).await;
    app.says(&conv, &alice, "words from long ago").await;
    run_worker(app, Duration::seconds(1)).await;
    assert_eq!(deliveries(app, &org, &hook, &alice).await.len(), 1);
    // Two days on, retention has purged the message, and its delivery left the log.
    app.clock.advance(Duration::days(2));
    app.clock.settled().await;
    let alice = app.sign_in_again("alice", alice).await;
    assert_eq!(app.message_count(&conv, &alice).await, 0, "the job ran");
    assert!(deliveries(app, &org, &hook, &alice).await.is_empty());
    assert_eq!(heard(rx, "words from long ago"), 1);

    // Carol joins and speaks; her erasure takes the bodies that name her.
    let carol = app.user("carol").await;
    app.add_member(&org, &alice, &carol, "member").await;
    app.post_empty(&format!("/api/v1/conversations/{conv}/join"), &carol.token)
        .await
        .expect(200);
    app.says(&conv, &carol, "carol was here").await;
    app.says(&conv, &alice, "alice stays").await;
    run_worker(app, Duration::seconds(1)).await;
    let log = deliveries(app, &org, &hook, &alice).await;
    assert_eq!(
        types(&log),
        ["message.created", "message.created", "member.added"]
    );
    assert!(log.iter().all(|d| d["redacted_at"].is_null()));
    crate::privacy::erase(
        app,
        &carol.token,
        json!({ "password": crate::helpers::PASSWORD }),
    )
    .await
    .expect(204);
    let log = deliveries(app, &org, &hook, &alice).await;
    assert!(log[0]["redacted_at"].is_null(), "alice's message is hers");
    assert!(log[1]["redacted_at"].is_string(), "carol's message");
    assert!(log[2]["redacted_at"].is_string(), "carol's membership");
    for d in &log[1..] {
        app.post_empty(&redeliver(&org, &hook, d), &alice.token)
            .await
            .expect_error(409, "delivery_redacted");
    }
    // A member of the org who is not an admin sees no log; another org's admin neither.
    let (mallory, _) = app.mallory().await;
    let path = format!("{}/{hook}/deliveries", hooks(&org));
    assert!([403, 404].contains(&app.get(&path, &mallory.token).await.status.as_u16()));
}
