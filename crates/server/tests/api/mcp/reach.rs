//! MCP-3 with AZ-5, AZ-5a: whatever a credential may not reach answers exactly like a
//! conversation or user that does not exist; tool calls are limited per credential; sends
//! keep their idempotency key under parallel retries and are audited with the key.

use super::*;
use crate::fixtures::Rivals;

/// The structured answer of a call (a tool error's included), for comparing refusals.
async fn answer(app: &TestApp, key: &str, tool: &str, args: Value) -> Value {
    call_tool(app, key, tool, args).await["structuredContent"].clone()
}

/// Asserts that each call answers exactly what the same call on a conversation that does
/// not exist answers.
async fn like_missing(app: &TestApp, key: &str, conv: &str, who: &str) {
    let nowhere = uuid::Uuid::now_v7().to_string();
    let message = uuid::Uuid::now_v7().to_string();
    for (tool, args) in [
        ("read_messages", json!({"conversation_id": "{c}"})),
        (
            "search_messages",
            json!({"query": "secret", "conversation_id": "{c}"}),
        ),
        (
            "send_message",
            json!({"conversation_id": "{c}", "content": "intrusion"}),
        ),
        ("list_participants", json!({"conversation_id": "{c}"})),
        (
            "mark_read",
            json!({"conversation_id": "{c}", "message_id": message}),
        ),
    ] {
        let with =
            |c: &str| serde_json::from_str::<Value>(&args.to_string().replace("{c}", c)).unwrap();
        let missing = answer(app, key, tool, with(&nowhere)).await;
        assert_eq!(missing["error"]["code"], "not_found", "{tool}: {missing}");
        let refused = answer(app, key, tool, with(conv)).await;
        assert_eq!(
            refused, missing,
            "{who}: {tool} on an out-of-reach conversation"
        );
    }
}

pub(crate) async fn out_of_reach_reads_as_not_found(app: TestApp) {
    let Rivals(alice, mallory, acme, evil) = app.rivals().await;
    let theirs = app.group(&evil, &mallory, &[], json!("org")).await;
    app.says(&theirs, &mallory, "secret plans").await;
    // Another org's conversation, org-visible there.
    let alices = key(&app, &alice, &acme, TOOL_SCOPES, None).await;
    like_missing(&app, &alices, &theirs, "another org").await;
    let found = call_tool(&app, &alices, "search_messages", json!({"query": "secret"})).await;
    assert_eq!(content(&found)["items"], json!([]));
    let args = json!({"user_id": uuid::Uuid::now_v7()});
    let nobody = answer(&app, &alices, "get_user", args).await;
    let stranger = answer(&app, &alices, "get_user", json!({"user_id": mallory.id})).await;
    assert_eq!(stranger, nobody);
    assert_eq!(nobody["error"]["message"], "user not found");

    // In the same org: a non-participant, a removed participant, a viewer who may not write.
    let bob = app.user("bob").await;
    let vic = app.user("vic").await;
    app.add_member(&acme, &alice, &bob, "member").await;
    app.add_member(&acme, &alice, &vic, "viewer").await;
    let private = app.group(&acme, &alice, &[&vic], json!("private")).await;
    app.says(&private, &alice, "secret salaries").await;
    let bobs = key(&app, &bob, &acme, TOOL_SCOPES, None).await;
    like_missing(&app, &bobs, &private, "a non-participant").await;
    let left = app.group(&acme, &alice, &[&bob], json!("private")).await;
    app.says(&left, &alice, "secret before bob left").await;
    app.delete(
        &conv_path(&left, &format!("/participants/{}", bob.id)),
        &alice.token,
    )
    .await
    .expect(204);
    like_missing(&app, &bobs, &left, "a removed participant").await;
    let found = call_tool(&app, &bobs, "search_messages", json!({"query": "secret"})).await;
    assert_eq!(
        content(&found)["items"],
        json!([]),
        "nothing of either reaches bob"
    );
    let vics = key(&app, &vic, &acme, TOOL_SCOPES, None).await;
    let nowhere = json!({"conversation_id": uuid::Uuid::now_v7(), "content": "hi"});
    let missing = answer(&app, &vics, "send_message", nowhere).await;
    let args = json!({"conversation_id": private, "content": "hi"});
    let viewer = answer(&app, &vics, "send_message", args).await;
    assert_eq!(
        viewer, missing,
        "a viewer's refused send reads as not found"
    );
    let args = json!({"conversation_id": private});
    let read = call_tool(&app, &vics, "read_messages", args).await;
    assert_eq!(
        content(&read)["items"].as_array().unwrap().len(),
        1,
        "the viewer reads"
    );

    // A key limited to one conversation sees and reaches that one only (AZ-5a).
    let general = app.group(&acme, &alice, &[], json!("org")).await;
    app.says(&general, &alice, "secret roadmap").await;
    let limited = key(&app, &alice, &acme, TOOL_SCOPES, Some(&[general.as_str()])).await;
    let listed = call_tool(&app, &limited, "list_conversations", json!({})).await;
    assert_eq!(pluck(&content(&listed)["items"], "id"), [general.as_str()]);
    like_missing(
        &app,
        &limited,
        &private,
        "a key limited to another conversation",
    )
    .await;
    let args = json!({"query": "secret"});
    let found = call_tool(&app, &limited, "search_messages", args).await;
    let hits = content(&found)["items"].as_array().unwrap().clone();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0]["message"]["content"], "secret roadmap");

    // A key without messages:write is not offered send_message, and calling it anyway is a
    // tool error like any unknown tool; nothing is sent, and the refusal is audited.
    let reader = key(
        &app,
        &alice,
        &acme,
        &["messages:read", "conversations:read"],
        None,
    )
    .await;
    let unknown = answer(&app, &reader, "no_such_tool", json!({})).await;
    let args = json!({"conversation_id": general, "content": "hi"});
    let refused = answer(&app, &reader, "send_message", args).await;
    assert_eq!(refused, unknown);
    assert_eq!(refused["error"]["message"], "tool not found");
    assert_eq!(app.message_count(&general, &alice).await, 1);
    let denied = app.audit_of("scope.denied").await.items();
    assert!(
        denied.iter().any(
            |r| r["resource"] == json!({"type": "mcp_tool", "id": "send_message"})
                && r["actor"]["type"] == "api_key"
        ),
        "{denied:?}"
    );
}

pub(crate) async fn tool_calls_are_rate_limited_per_credential(app: TestApp) {
    let Acme { alice, org, .. } = app.acme().await;
    let busy = app.user("busy").await;
    app.add_member(&org, &alice, &busy, "member").await;
    let first = key(&app, &busy, &org, TOOL_SCOPES, None).await;
    let second = key(&app, &busy, &org, TOOL_SCOPES, None).await;
    // 95 at once: with the two calls below, within the user's REST read burst (100), which
    // every MCP request is charged to as well.
    let calls = (0..95).map(|_| call_tool(&app, &first, "list_conversations", json!({})));
    let results = futures::future::join_all(calls).await;
    let (passed, refused): (Vec<&Value>, Vec<&Value>) =
        results.iter().partition(|r| r["isError"] == json!(false));
    // `rate_limit.mcp_tool_calls_burst` (30) at once, the clock standing still.
    assert_eq!(passed.len(), 30, "{:?}", refused.first());
    for r in &refused {
        assert_eq!(tool_error(r), "rate_limited");
        assert!(
            r["structuredContent"]["error"]["retry_after_secs"]
                .as_u64()
                .unwrap()
                >= 1
        );
    }
    // Another credential of the same user has its own tool-call bucket.
    let other = call_tool(&app, &second, "list_conversations", json!({})).await;
    assert_eq!(other["isError"], json!(false));
    let again = call_tool(&app, &first, "list_conversations", json!({})).await;
    assert_eq!(tool_error(&again), "rate_limited");
    app.clock.advance(chrono::Duration::seconds(60));
    let later = call_tool(&app, &first, "list_conversations", json!({})).await;
    assert_eq!(
        later["isError"],
        json!(false),
        "the bucket refills with time"
    );
}

/// The audit rows of `event` made with the API key `key_id`.
async fn rows_by_key(app: &TestApp, event: &str, key_id: &str) -> Vec<Value> {
    let rows = app.audit_of(&format!("{event}&limit=100")).await.items();
    rows.into_iter()
        .filter(|r| r["actor"] == json!({"id": key_id, "type": "api_key", "impersonator": null}))
        .collect()
}

pub(crate) async fn sends_are_idempotent_and_audited(app: TestApp) {
    let Acme { alice, bob, org } = app.acme().await;
    let conv = app.group(&org, &alice, &[&bob], json!("private")).await;
    let (key_id, key) = make_key(
        &app,
        &bob,
        json!({"name": "agent", "org_id": org, "scopes": TOOL_SCOPES}),
    )
    .await;
    // A hundred retries of one send at once: one message, every answer the same one.
    let args =
        json!({"conversation_id": conv, "content": "exactly once", "idempotency_key": "retry-1"});
    let calls = (0..100).map(|_| call_tool(&app, &key, "send_message", args.clone()));
    let results = futures::future::join_all(calls).await;
    let mut ids: Vec<String> = Vec::new();
    let mut created = 0;
    for r in &results {
        let sent = content(r);
        created += usize::from(sent["created"] == true);
        ids.push(sent["message"]["id"].as_str().unwrap().to_owned());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one message for every retry");
    assert_eq!(created, 1);
    assert_eq!(app.message_count(&conv, &alice).await, 1);
    // The same key with other content is a conflict, as on REST.
    let clash =
        json!({"conversation_id": conv, "content": "something else", "idempotency_key": "retry-1"});
    assert_eq!(
        tool_error(&call_tool(&app, &key, "send_message", clash).await),
        "idempotency_conflict"
    );

    // Audited with the key (DATA-4 exempts a person's own sends, not an agent's): one row for
    // the message, none for the replays; one for the read marker.
    let rows = rows_by_key(&app, "message.sent", &key_id).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        rows[0]["resource"],
        json!({"type": "message", "id": ids[0]})
    );
    assert_eq!(rows[0]["org_id"], json!(org));
    assert_eq!(rows[0]["detail"]["via"], "mcp");
    assert_eq!(rows[0]["detail"]["conversation_id"], json!(conv));
    let mark = json!({"conversation_id": conv, "message_id": ids[0]});
    ok(&call_tool(&app, &key, "mark_read", mark).await);
    assert_eq!(
        rows_by_key(&app, "read_marker.moved", &key_id).await.len(),
        1
    );
    // Bob's own REST send, with his session, stays unaudited; the same key over REST too.
    app.says(&conv, &bob, "by hand").await;
    app.says(&conv, &bob.with_token(&key), "by script").await;
    assert_eq!(app.audit_of("message.sent").await.items().len(), 1);
}
