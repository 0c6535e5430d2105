//! MCP-2 end to end: an access token from the OAuth flow calls `/mcp` tools within its grant
//! (its scopes, its org, the user's rights) and stops at once when the grant is revoked.

use super::*;
use crate::both_backends;
use crate::mcp::{call_tool, content, mcp_post, request, tool_error};

both_backends!(with super::oauth_app;
    an_oauth_token_calls_mcp_tools_within_its_grant,
);

async fn an_oauth_token_calls_mcp_tools_within_its_grant(app: TestApp) {
    let w = world(&app).await;
    let conv = app.group(&w.org, &w.owner, &[], json!("private")).await;
    app.says(&conv, &w.owner, "hello from the web").await;
    // Another org's conversation, where the owner also takes part.
    let elsewhere = app.org(&w.owner, "Elsewhere").await;
    let other_conv = app.group(&elsewhere, &w.owner, &[], json!("private")).await;
    // A grant without messages:write.
    let id = request_id(
        &app.authorize_as(
            &w.client_id,
            &[("scope", "messages:read conversations:read")],
        )
        .await,
    );
    let res = app
        .consent_api(
            &w.browser,
            Method::POST,
            &id,
            Some(json!({"approve": true, "org_id": w.org})),
        )
        .await
        .expect(200);
    let code = query_param(&res.string("redirect_to"), "code").unwrap();
    let (access, _) = tokens(&redeem(&app, &w.client_id, &code).await.expect(200));

    let listed_tools = crate::mcp::rpc(&app, &access, "tools/list", json!({})).await;
    let tools: Vec<String> = (listed_tools["tools"].as_array().unwrap().iter())
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(tools.contains(&"read_messages".to_owned()), "{tools:?}");
    assert!(
        !tools.contains(&"send_message".to_owned()),
        "no messages:write: {tools:?}"
    );
    let listed = call_tool(&app, &access, "list_conversations", json!({})).await;
    let items = content(&listed)["items"].as_array().unwrap().clone();
    assert_eq!(pluck(&json!(items), "id"), [conv.as_str()], "its org only");
    let read = call_tool(
        &app,
        &access,
        "read_messages",
        json!({"conversation_id": conv}),
    )
    .await;
    assert!(content(&read).to_string().contains("hello from the web"));
    let send = call_tool(
        &app,
        &access,
        "send_message",
        json!({"conversation_id": conv, "content": "not allowed"}),
    )
    .await;
    assert!(!tool_error(&send).is_empty());
    let foreign = call_tool(
        &app,
        &access,
        "read_messages",
        json!({"conversation_id": other_conv}),
    )
    .await;
    assert!(
        !tool_error(&foreign).is_empty(),
        "another org's conversation is out of reach"
    );

    // Revoked: /mcp answers 401 with the challenge naming the metadata.
    let grants = grants_of(&app, &w.owner).await;
    let grant = grants[0]["id"].as_str().unwrap();
    app.delete(&format!("/api/v1/users/@me/grants/{grant}"), &w.owner.token)
        .await
        .expect(204);
    let res = mcp_post(&app, Some(&access), &[], request("tools/list", json!({}))).await;
    assert_eq!(res.status, 401, "{}", res.body);
    let challenge = res.headers["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("resource_metadata="), "{challenge}");
}
