//! MCP-2 end to end: an access token from the OAuth flow calls `/mcp` tools within its grant
//! (its scopes, its org, the user's rights) and stops at once when the grant is revoked; an
//! expired one, a refresh token, a code, and a token sent from a foreign page are refused
//! on `/mcp` itself; a member demoted or removed after consenting keeps no more than their
//! role now gives.

use super::*;
use crate::both_backends;
use crate::mcp::{call_tool, content, mcp_post, request, tool_error, REVISION};

both_backends!(with crate::helpers::spawn_app_unlimited;
    an_oauth_token_calls_mcp_tools_within_its_grant,
    mcp_refuses_expired_and_other_tokens_with_the_challenge,
    a_grant_follows_the_members_role_and_membership,
);

/// `read_messages` of `conv` with `token`.
async fn read_with(app: &TestApp, token: &str, conv: &str) -> Value {
    call_tool(
        app,
        token,
        "read_messages",
        json!({"conversation_id": conv}),
    )
    .await
}

/// A 401 of `/mcp` for a credential shown and refused, with the challenge.
#[track_caller]
fn refused_as_invalid(app: &TestApp, res: Res) {
    crate::mcp::refused_401(app, res, "invalid_token", true);
}

async fn mcp_refuses_expired_and_other_tokens_with_the_challenge(app: TestApp) {
    let w = world(&app).await;
    let code = code_for(&app, &w, &w.client_id, &w.org).await;
    let (access, refresh_token) = tokens(&redeem(&app, &w.client_id, &code).await.expect(200));
    let list = request("tools/list", json!({}));
    let version = [("mcp-protocol-version", REVISION)];
    mcp_post(&app, Some(&access), &version, list.clone())
        .await
        .expect(200);
    // A page of another origin cannot use it (403 before the token is read).
    let foreign = [("origin", "https://evil.example")];
    mcp_post(&app, Some(&access), &foreign, list.clone())
        .await
        .expect_error(403, "origin_not_allowed");
    // Neither the refresh token nor the (spent) code is an MCP credential.
    for other in [&refresh_token, &code] {
        refused_as_invalid(
            &app,
            mcp_post(&app, Some(other), &version, list.clone()).await,
        );
    }
    // One character off: refused.
    let mut off = access.clone();
    let last = if off.ends_with('A') { 'B' } else { 'A' };
    off.pop();
    off.push(last);
    refused_as_invalid(
        &app,
        mcp_post(&app, Some(&off), &version, list.clone()).await,
    );
    // An hour on, the access token is refused on /mcp itself; the refresh brings a new one.
    app.clock.advance(chrono::Duration::seconds(3600));
    refused_as_invalid(
        &app,
        mcp_post(&app, Some(&access), &version, list.clone()).await,
    );
    let (fresh, _) = tokens(
        &refresh(&app, &w.client_id, &refresh_token)
            .await
            .expect(200),
    );
    mcp_post(&app, Some(&fresh), &version, list)
        .await
        .expect(200);
}

async fn a_grant_follows_the_members_role_and_membership(app: TestApp) {
    let w = world(&app).await;
    let mia = app.user("mia").await;
    app.add_member(&w.org, &w.owner, &mia, "member").await;
    let conv = app.group(&w.org, &w.owner, &[&mia], json!("private")).await;
    app.says(&conv, &w.owner, "for members").await;
    let mw = w.as_user(&mia, app.browser("mia").await);
    let code = code_for(&app, &mw, &mw.client_id, &mw.org).await;
    let (access, _) = tokens(&redeem(&app, &mw.client_id, &code).await.expect(200));
    let send = |content: &str| {
        call_tool(
            &app,
            &access,
            "send_message",
            json!({"conversation_id": conv, "content": content}),
        )
    };
    content(&send("as a member").await);
    // Demoted to viewer after consenting: the grant's messages:write no longer sends.
    app.set_role(&w.org, &w.owner, &mia, "viewer")
        .await
        .expect(200);
    assert!(!tool_error(&send("as a viewer").await).is_empty());
    let read = read_with(&app, &access, &conv).await;
    assert!(content(&read).to_string().contains("for members"));
    // Removed from the org: nothing of it is in reach any more.
    app.remove_member(&w.org, &w.owner, &mia.id).await;
    let read = read_with(&app, &access, &conv).await;
    assert!(!tool_error(&read).is_empty());
    let listed = call_tool(&app, &access, "list_conversations", json!({})).await;
    let still = listed["isError"] == json!(true)
        || content(&listed)["items"]
            .as_array()
            .is_some_and(|i| i.is_empty());
    assert!(still, "a removed member lists nothing: {listed}");
    let texts: Vec<String> = app
        .items(&conv_path(&conv, "/messages"), &w.owner.token)
        .await
        .iter()
        .map(|m| m["content"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(!texts.contains(&"as a viewer".to_owned()), "{texts:?}");
}

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
    let code = approved_code(&app, &w, &id, &w.org).await;
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
    let read = read_with(&app, &access, &conv).await;
    assert!(content(&read).to_string().contains("hello from the web"));
    let args = json!({"conversation_id": conv, "content": "not allowed"});
    let send = call_tool(&app, &access, "send_message", args).await;
    assert!(!tool_error(&send).is_empty());
    let foreign = read_with(&app, &access, &other_conv).await;
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
