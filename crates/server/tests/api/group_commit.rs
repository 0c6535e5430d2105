//! Issue 13: concurrent sends are group-committed (several in one transaction). Over HTTP each
//! send must still be answered as if it were alone: its own message and `seq`, replays and
//! conflicts for keys, 422 only for the send whose attachment is unavailable, and an audit
//! chain that verifies.

use crate::both_backends;
use crate::files::As;
use crate::fixtures::Acme;
use crate::helpers::*;
use serde_json::{json, Value};

both_backends!(with crate::helpers::spawn_app_unlimited; a_burst_of_sends_is_answered_send_by_send);

async fn a_burst_of_sends_is_answered_send_by_send(app: TestApp) {
    let Acme { alice, bob, org } = app.acme().await;
    let conv = app.group(&org, &alice, &[&bob], json!("private")).await;
    let own = app
        .upload(As::Bearer(&alice.token), &conv, "own.txt", b"own\n")
        .await
        .expect(201)
        .id();
    let bobs = app
        .upload(As::Bearer(&bob.token), &conv, "bob.txt", b"bob\n")
        .await
        .expect(201)
        .id();
    let earlier = app
        .post(
            &conv_path(&conv, "/messages"),
            &alice.token,
            json!({"content": "earlier", "idempotency_key": "used"}),
        )
        .await
        .expect(201);

    // (body, token, expected status)
    let mut sends: Vec<(Value, String, u16)> = Vec::new();
    for i in 0..100 {
        let by = if i % 2 == 0 { &alice } else { &bob };
        sends.push((
            json!({"content": format!("burst {i}")}),
            by.token.clone(),
            201,
        ));
    }
    for _ in 0..10 {
        let body = json!({"content": "once", "idempotency_key": "k-once"});
        sends.push((body, alice.token.clone(), 0));
    }
    let different = json!({"content": "not the earlier one", "idempotency_key": "used"});
    sends.push((different, alice.token.clone(), 409));
    let foreign = json!({"content": "bob's file", "attachment_ids": [bobs]});
    sends.push((foreign, alice.token.clone(), 422));
    let attached = json!({"content": "own file", "attachment_ids": [own]});
    sends.push((attached, alice.token.clone(), 201));

    let url = app.url(&conv_path(&conv, "/messages"));
    let tasks: Vec<_> = sends
        .into_iter()
        .map(|(body, token, expected)| {
            let (client, url) = (app.client.clone(), url.clone());
            tokio::spawn(async move {
                let answered = post_json(&client, &url, &token, body.clone()).await;
                let (status, answer) = answered.expect("an answer");
                (body, expected, status, answer)
            })
        })
        .collect();
    let (mut seqs, mut once) = (Vec::new(), Vec::new());
    for task in tasks {
        let (body, expected, status, answer) = task.await.unwrap();
        match expected {
            0 => {
                assert!(status == 201 || status == 200, "{status}: {answer}");
                assert_eq!(answer["content"], "once");
                if status == 201 {
                    seqs.push(answer["seq"].as_i64().unwrap());
                }
                once.push((status, answer["id"].clone()));
            }
            201 => {
                assert_eq!(status, 201, "{answer}");
                assert_eq!(
                    answer["content"], body["content"],
                    "each send gets its own message"
                );
                seqs.push(answer["seq"].as_i64().unwrap());
                if body.get("attachment_ids").is_some() {
                    assert_eq!(answer["attachments"][0]["id"], own.as_str());
                }
            }
            409 => assert_eq!(answer["error"]["code"], "idempotency_conflict", "{answer}"),
            422 => assert_eq!(
                answer["error"]["code"], "attachment_unavailable",
                "{answer}"
            ),
            _ => unreachable!(),
        }
        assert_eq!(
            status,
            if expected == 0 { status } else { expected },
            "{answer}"
        );
    }
    assert_eq!(
        once.iter().filter(|(s, _)| *s == 201).count(),
        1,
        "one key, one message"
    );
    assert!(
        once.iter().all(|(_, id)| *id == once[0].1),
        "the others replay it"
    );
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (2..=103).collect::<Vec<i64>>(),
        "every seq once, none lost to a refusal"
    );
    assert_eq!(earlier.body["seq"], 1);
    let c = app
        .get(&conv_path(&conv, ""), &alice.token)
        .await
        .expect(200);
    assert_eq!(c.body["last_seq"], 103);
    let report = app
        .get("/api/v1/admin/audit/verify", ADMIN_TOKEN)
        .await
        .expect(200)
        .body;
    assert_eq!(report["ok"], true, "{report}");
}
