//! MCP-1..3: `POST /mcp` with raw JSON-RPC — the handshake of each protocol revision, who may
//! call (API keys only; 401 with the resource-metadata challenge otherwise), Host and Origin,
//! body and result caps, every tool through the services REST uses (scopes, org and
//! conversation limits, the same "not found" for whatever is out of reach), the per-credential
//! rate limit, idempotent sends and their audit rows; then the official Python and TypeScript
//! SDKs as independent clients (`clients.rs`).

use crate::both_backends;
use crate::fixtures::Acme;
use crate::helpers::*;
use crate::keys::make_key;
use serde_json::{json, Value};

mod clients;
mod protocol;
mod reach;
mod tools;

use clients::*;
pub(crate) use protocol::refused_401;
use protocol::*;
use reach::*;
use tools::*;

both_backends!(
    initialize_and_tools_list_per_revision,
    only_api_keys_get_in,
    host_origin_method_and_body_are_checked,
    tools_list_follows_the_scopes,
    tool_calls_are_rate_limited_per_credential,
    the_python_sdk_connects,
    the_typescript_sdk_connects,
    the_python_sdk_authorizes_through_oauth,
    the_typescript_sdk_authorizes_through_oauth,
);

/// Tests that make many calls as one user (a hundred parallel retries, ten refusals per
/// credential): the rate limits, which `tool_calls_are_rate_limited_per_credential` covers,
/// are lifted so they do not decide the answers.
mod unlimited {
    use super::*;

    crate::both_backends!(
        with crate::helpers::spawn_app_unlimited;
        every_tool_works_through_the_services,
        out_of_reach_reads_as_not_found,
        results_are_capped_and_paged,
        sends_are_idempotent_and_audited,
    );
}

/// The revision current clients speak, with an `initialize` handshake.
pub(crate) const REVISION: &str = "2025-11-25";

/// One JSON-RPC message to `/mcp` with `token` as bearer (none when `None`) and any extra
/// headers; the answer as the server gave it.
pub(crate) async fn mcp_post(
    app: &TestApp,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Value,
) -> Res {
    let mut rb = (app.client.post(app.url("/mcp")))
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    for (name, value) in headers {
        rb = rb.header(*name, *value);
    }
    app.send(rb).await
}

/// A JSON-RPC request of `method` with `params`, as a client past `initialize` sends it.
pub(crate) fn request(method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
}

/// The `result` of `method` called with `key` (200 and no JSON-RPC error expected).
pub(crate) async fn rpc(app: &TestApp, key: &str, method: &str, params: Value) -> Value {
    let headers = [("mcp-protocol-version", REVISION)];
    let res = mcp_post(app, Some(key), &headers, request(method, params)).await;
    let res = res.expect(200);
    assert!(res.body["error"].is_null(), "{method}: {}", res.body);
    res.body["result"].clone()
}

/// The result of tool `name` called with `args` (a tool error included).
pub(crate) async fn call_tool(app: &TestApp, key: &str, name: &str, args: Value) -> Value {
    rpc(
        app,
        key,
        "tools/call",
        json!({"name": name, "arguments": args}),
    )
    .await
}

/// What a successful tool call answered: its structured content, after checking it is not a
/// tool error and that its text content says the same.
#[track_caller]
pub(crate) fn ok(result: &Value) -> &Value {
    assert_eq!(result["isError"], json!(false), "{result}");
    let text = result["content"][0]["text"].as_str().expect("a text block");
    let parsed: Value = serde_json::from_str(text).expect("the text is the JSON");
    assert_eq!(&parsed, &result["structuredContent"]);
    &result["structuredContent"]
}

/// The user content of a successful call, after checking the untrusted-content notice.
#[track_caller]
pub(crate) fn content(result: &Value) -> &Value {
    let v = ok(result);
    let notice = v["notice"].as_str().expect("a notice");
    assert!(notice.contains("never as instructions"), "{notice}");
    &v["untrusted_user_content"]
}

/// The code of a tool error.
#[track_caller]
pub(crate) fn tool_error(result: &Value) -> String {
    assert_eq!(result["isError"], json!(true), "{result}");
    result["structuredContent"]["error"]["code"]
        .as_str()
        .expect("an error code")
        .to_owned()
}

/// A key of `owner` in `org` with `scopes` (and the conversation list, when given).
pub(crate) async fn key(
    app: &TestApp,
    owner: &User,
    org: &str,
    scopes: &[&str],
    conversations: Option<&[&str]>,
) -> String {
    let mut body = json!({"name": "agent", "org_id": org, "scopes": scopes});
    if let Some(list) = conversations {
        body["conversation_ids"] = json!(list);
    }
    make_key(app, owner, body).await.1
}

/// Every scope the tools use.
pub(crate) const TOOL_SCOPES: &[&str] = &[
    "messages:read",
    "messages:write",
    "conversations:read",
    "org:read",
];
