//! MCP-3: the tool list per scope, each tool over the services REST uses, bad arguments, and
//! results cut to size with the cursor that continues.

use super::*;

/// The tool names `key` is offered.
pub(crate) async fn tool_names(app: &TestApp, key: &str) -> Vec<String> {
    let tools = rpc(app, key, "tools/list", json!({})).await;
    (tools["tools"].as_array().expect("tools").iter())
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

pub(crate) async fn tools_list_follows_the_scopes(app: TestApp) {
    let Acme { alice, org, .. } = app.acme().await;
    for (scopes, want) in [
        (
            &["messages:read"][..],
            &["read_messages", "search_messages", "mark_read"][..],
        ),
        (&["messages:write"], &["send_message"]),
        (
            &["conversations:read"],
            &["list_conversations", "list_participants"],
        ),
        (&["org:read"], &["get_user"]),
        (
            &[
                "org:admin",
                "files:write",
                "webhooks:admin",
                "conversations:admin",
            ],
            &[],
        ),
        (
            TOOL_SCOPES,
            &[
                "list_conversations",
                "read_messages",
                "search_messages",
                "send_message",
                "list_participants",
                "mark_read",
                "get_user",
            ],
        ),
    ] {
        let key = key(&app, &alice, &org, scopes, None).await;
        assert_eq!(tool_names(&app, &key).await, want, "{scopes:?}");
    }
    // Each tool says what it takes and whether it changes anything.
    let key = key(&app, &alice, &org, TOOL_SCOPES, None).await;
    let tools = rpc(&app, &key, "tools/list", json!({})).await;
    for tool in tools["tools"].as_array().unwrap() {
        let name = tool["name"].as_str().unwrap();
        assert_eq!(tool["inputSchema"]["type"], "object", "{name}");
        assert_eq!(tool["inputSchema"]["additionalProperties"], false, "{name}");
        let writes = ["send_message", "mark_read"].contains(&name);
        assert_eq!(tool["annotations"]["readOnlyHint"], !writes, "{name}");
    }
}

pub(crate) async fn every_tool_works_through_the_services(app: TestApp) {
    let Acme { alice, bob, org } = app.acme().await;
    let conv = app.group(&org, &alice, &[&bob], json!("private")).await;
    let first = app.says(&conv, &alice, "hello brave new world").await.id();
    app.says(&conv, &alice, "second thought").await;
    let key = key(&app, &bob, &org, TOOL_SCOPES, None).await;

    let listed = call_tool(&app, &key, "list_conversations", json!({})).await;
    let items = content(&listed)["items"].as_array().unwrap().clone();
    assert_eq!(pluck(&json!(items), "id"), [conv.as_str()]);
    assert_eq!(items[0]["name"], "General");

    let args = json!({"conversation_id": conv});
    let read = call_tool(&app, &key, "read_messages", args).await;
    let page = content(&read);
    assert_eq!(
        pluck(&page["items"], "content"),
        ["second thought", "hello brave new world"],
        "newest first"
    );
    assert_eq!(page["truncated"], false);
    let older = json!({"conversation_id": conv, "before": page["items"][0]["id"], "limit": 5});
    let older = call_tool(&app, &key, "read_messages", older).await;
    assert_eq!(pluck(&content(&older)["items"], "id"), [first.as_str()]);

    for args in [
        json!({"query": "brave"}),
        json!({"query": "brave", "conversation_id": conv}),
    ] {
        let found = call_tool(&app, &key, "search_messages", args.clone()).await;
        let hits = content(&found)["items"].as_array().unwrap().clone();
        assert_eq!(hits.len(), 1, "{args}");
        assert_eq!(hits[0]["message"]["id"], json!(first));
        assert!(hits[0]["snippet"]
            .as_str()
            .unwrap()
            .contains("<mark>brave</mark>"));
    }

    let args = json!({"conversation_id": conv, "content": "from the agent"});
    let sent = call_tool(&app, &key, "send_message", args).await;
    let sent = content(&sent);
    assert_eq!(sent["created"], true);
    assert_eq!(sent["message"]["author"]["id"], json!(bob.id));
    let mid = sent["message"]["id"].as_str().unwrap().to_owned();
    // What REST shows is what the tool wrote.
    let rest = app
        .get(&conv_path(&conv, "/messages?limit=1"), &alice.token)
        .await
        .expect(200);
    assert_eq!(rest.items()[0]["id"], json!(mid));
    assert_eq!(rest.items()[0]["content"], "from the agent");

    let args = json!({"conversation_id": conv});
    let people = call_tool(&app, &key, "list_participants", args).await;
    let mut names: Vec<String> = (content(&people)["items"].as_array().unwrap().iter())
        .map(|p| p["user"]["username"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["alice", "bob"]);

    let args = json!({"conversation_id": conv, "message_id": mid});
    let marked = call_tool(&app, &key, "mark_read", args).await;
    assert_eq!(ok(&marked)["marked_read"], true);
    let unknown = json!({"conversation_id": conv, "message_id": uuid::Uuid::now_v7()});
    let res = call_tool(&app, &key, "mark_read", unknown).await;
    assert_eq!(tool_error(&res), "unknown_message");

    let user = call_tool(&app, &key, "get_user", json!({"user_id": alice.id})).await;
    assert_eq!(content(&user)["username"], "alice");

    // Bad arguments are tool errors naming the argument; nothing is written.
    for (tool, args, argument) in [
        (
            "read_messages",
            json!({"conversation_id": "nope"}),
            "conversation_id",
        ),
        ("read_messages", json!({}), "conversation_id"),
        (
            "read_messages",
            json!({"conversation_id": conv, "limit": 0}),
            "limit",
        ),
        (
            "read_messages",
            json!({"conversation_id": conv, "before": "%%"}),
            "before",
        ),
        (
            "send_message",
            json!({"conversation_id": conv, "content": ""}),
            "content",
        ),
        (
            "send_message",
            json!({"conversation_id": conv, "content": "x".repeat(4001)}),
            "content",
        ),
        (
            "send_message",
            json!({"conversation_id": conv, "content": "x", "idempotency_key": "a b"}),
            "idempotency_key",
        ),
        (
            "send_message",
            json!({"conversation_id": conv, "content": "x", "format": "html"}),
            "format",
        ),
        ("search_messages", json!({"query": ""}), "query"),
        ("get_user", json!({"user_id": 7}), "user_id"),
    ] {
        let res = call_tool(&app, &key, tool, args.clone()).await;
        assert_ne!(res["isError"], json!(false), "{tool} {args}: {res}");
        let error = &res["structuredContent"]["error"];
        assert!(error["message"].is_string(), "{tool} {args}: {res}");
        if !argument.is_empty() {
            assert_eq!(error["argument"], argument, "{tool} {args}: {res}");
        }
    }
    assert_eq!(app.message_count(&conv, &alice).await, 3);
    let res = call_tool(&app, &key, "drop_tables", json!({})).await;
    assert_eq!(tool_error(&res), "not_found");
}

/// Every item `tool` answers for `args`, page after page (each result within the cap), and
/// how many results that took.
async fn read_all(
    app: &TestApp,
    key: &str,
    tool: &str,
    args: Value,
    id: &str,
) -> (Vec<String>, usize) {
    let (mut seen, mut pages, mut before) = (Vec::new(), 0, Value::Null);
    loop {
        let mut args = args.clone();
        if !before.is_null() {
            args["before"] = before.clone();
        }
        let res = call_tool(app, key, tool, args).await;
        let bytes = res["structuredContent"]["untrusted_user_content"]
            .to_string()
            .len();
        assert!(bytes <= 64 * 1024, "{tool}: {bytes} bytes");
        let page = content(&res).clone();
        for item in page["items"].as_array().unwrap() {
            seen.push(item.pointer(id).and_then(Value::as_str).unwrap().to_owned());
        }
        pages += 1;
        if page["truncated"] == false && page["next"].is_null() {
            return (seen, pages);
        }
        assert!(
            page["next"].is_string(),
            "{tool}: a cut page says where to go on"
        );
        before = page["next"].clone();
    }
}

pub(crate) async fn results_are_capped_and_paged(app: TestApp) {
    let Acme { alice, org, .. } = app.acme().await;
    let conv = app.group(&org, &alice, &[], json!("private")).await;
    let mut sent = Vec::new();
    for i in 0..18 {
        let text = format!("{i:02} filler {}", "y".repeat(3980));
        sent.push(app.says(&conv, &alice, &text).await.id());
    }
    let key = key(&app, &alice, &org, TOOL_SCOPES, None).await;
    let args = json!({"conversation_id": conv});
    let (seen, pages) = read_all(&app, &key, "read_messages", args, "/id").await;
    assert!(
        pages >= 2,
        "18 messages of 4,000 characters take more than one result"
    );
    sent.reverse();
    assert_eq!(
        seen, sent,
        "every message once, newest first, across the cut"
    );
    // Search hits carry their messages: cut and continued the same way.
    let args = json!({"query": "filler", "conversation_id": conv});
    let (mut hits, pages) = read_all(&app, &key, "search_messages", args, "/message/id").await;
    assert!(pages >= 2);
    hits.sort();
    sent.sort();
    assert_eq!(hits, sent);
}
