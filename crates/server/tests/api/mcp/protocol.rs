//! MCP-1, MCP-2 at the edge: the handshakes, who gets in, and what is refused before a
//! credential is read.

use super::*;
use crate::bots::make_bot;
use reqwest::Method;

/// `initialize` of `version`, as a client's first message.
fn initialize(version: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": version,
        "capabilities": {},
        "clientInfo": {"name": "conclave-test", "version": "1.0"},
    }})
}

/// The per-request metadata of the 2026-07-28 revision (no handshake).
fn meta_2026() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "conclave-test", "version": "1.0"},
    })
}

pub(crate) async fn initialize_and_tools_list_per_revision(app: TestApp) {
    let Acme { alice, org, .. } = app.acme().await;
    let key = key(&app, &alice, &org, TOOL_SCOPES, None).await;
    for version in ["2025-11-25", "2025-06-18", "2025-03-26"] {
        let res = mcp_post(&app, Some(&key), &[], initialize(version))
            .await
            .expect(200);
        let result = &res.body["result"];
        assert_eq!(result["protocolVersion"], version, "{}", res.body);
        assert_eq!(result["serverInfo"]["name"], "conclave");
        assert!(result["capabilities"]["tools"].is_object(), "{result}");
        let instructions = result["instructions"].as_str().unwrap();
        assert!(
            instructions.contains("untrusted_user_content"),
            "{instructions}"
        );
        // Stateless: no protocol session is handed out, so none can authenticate anything.
        assert!(res.headers.get("mcp-session-id").is_none());
        // WEB-2: an authenticated answer is never stored by a cache.
        assert_eq!(res.headers["cache-control"], "no-store");
    }
    // A revision the SDK does not know is answered with the newest one that has a handshake.
    let res = mcp_post(&app, Some(&key), &[], initialize("2024-01-01"))
        .await
        .expect(200);
    assert_eq!(
        res.body["result"]["protocolVersion"], "2025-11-25",
        "{}",
        res.body
    );
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let res = mcp_post(
        &app,
        Some(&key),
        &[("mcp-protocol-version", REVISION)],
        initialized,
    )
    .await;
    assert_eq!(res.status.as_u16(), 202);
    let tools = rpc(&app, &key, "tools/list", json!({})).await;
    assert_eq!(tools["tools"].as_array().unwrap().len(), 7, "{tools}");
    // ping, and a method that does not exist (a JSON-RPC error, not a crash).
    assert_eq!(rpc(&app, &key, "ping", json!({})).await, json!({}));
    let headers = [("mcp-protocol-version", REVISION)];
    let res = mcp_post(
        &app,
        Some(&key),
        &headers,
        request("resources/list", json!({})),
    )
    .await;
    assert!(res.body["error"]["code"].is_i64(), "{}", res.body);

    // 2026-07-28: no handshake; each request carries its revision and client capabilities.
    let discover = json!({"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {"_meta": meta_2026()}});
    let headers = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "server/discover"),
    ];
    let res = mcp_post(&app, Some(&key), &headers, discover)
        .await
        .expect(200);
    let versions = res.body["result"]["supportedVersions"]
        .as_array()
        .expect("versions");
    assert!(versions.contains(&json!("2026-07-28")), "{}", res.body);
    assert!(versions.contains(&json!("2025-11-25")), "{}", res.body);
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "_meta": meta_2026(), "name": "list_conversations", "arguments": {},
    }});
    let headers = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "list_conversations"),
    ];
    let res = mcp_post(&app, Some(&key), &headers, call).await.expect(200);
    assert_eq!(res.body["result"]["isError"], json!(false), "{}", res.body);
    assert_eq!(res.body["result"]["resultType"], "complete", "{}", res.body);
    let caps = app.get_anon("/api/v1/capabilities").await.expect(200);
    assert_eq!(caps.body["features"]["mcp"], true);
}

/// The challenge every 401 of `/mcp` carries.
fn challenge(app: &TestApp) -> String {
    format!(
        "Bearer resource_metadata=\"{}/.well-known/oauth-protected-resource\"",
        app.base
    )
}

#[track_caller]
pub(crate) fn refused_401(app: &TestApp, res: Res, code: &str, shown: bool) {
    let header = (res.headers.get("www-authenticate"))
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let mut want = challenge(app);
    if shown {
        want.push_str(", error=\"invalid_token\"");
    }
    assert_eq!(header, want);
    res.expect_error(401, code);
}

pub(crate) async fn only_api_keys_get_in(app: TestApp) {
    let Acme { alice, bob, org } = app.acme().await;
    let list = request("tools/list", json!({}));
    // No credential, a session (bearer or cookie), a bot, a bad or revoked key: 401 with the
    // challenge that leads to the protected-resource metadata.
    refused_401(
        &app,
        mcp_post(&app, None, &[], list.clone()).await,
        "unauthenticated",
        false,
    );
    let res = mcp_post(&app, Some(&alice.token), &[], list.clone()).await;
    refused_401(&app, res, "invalid_token", true);
    let cookie = app.cookie_login("alice").await.session_cookie();
    let res = mcp_post(&app, None, &[("cookie", &cookie)], list.clone()).await;
    refused_401(&app, res, "unauthenticated", false);
    let bot = make_bot(&app, &org, &alice, json!({"name": "Helper"})).await;
    let bot_auth = format!("Bot {}", bot.token);
    let res = mcp_post(&app, None, &[("authorization", &bot_auth)], list.clone()).await;
    refused_401(&app, res, "invalid_token", true);
    let res = mcp_post(&app, Some(&bot.token), &[], list.clone()).await;
    refused_401(&app, res, "invalid_token", true);
    let res = mcp_post(&app, Some("cnv_k_not-a-real-key"), &[], list.clone()).await;
    refused_401(&app, res, "invalid_token", true);
    let res = mcp_post(
        &app,
        None,
        &[("authorization", "Basic YWxpY2U6cHc=")],
        list.clone(),
    )
    .await;
    refused_401(&app, res, "unsupported_scheme", true);
    let (id, key) = make_key(
        &app,
        &bob,
        json!({"name": "a", "org_id": org, "scopes": TOOL_SCOPES}),
    )
    .await;
    assert!(rpc(&app, &key, "tools/list", json!({})).await["tools"].is_array());
    app.delete(&format!("/api/v1/api-keys/{id}"), &bob.token)
        .await
        .expect(204);
    let res = mcp_post(&app, Some(&key), &[], list.clone()).await;
    refused_401(&app, res, "invalid_token", true);
    // A disabled owner's key stops at once.
    let key = super::key(&app, &bob, &org, TOOL_SCOPES, None).await;
    assert!(rpc(&app, &key, "tools/list", json!({})).await["tools"].is_array());
    app.set_disabled(ADMIN_TOKEN, &bob, true).await;
    refused_401(
        &app,
        mcp_post(&app, Some(&key), &[], list).await,
        "invalid_token",
        true,
    );
}

pub(crate) async fn host_origin_method_and_body_are_checked(app: TestApp) {
    let Acme { alice, org, .. } = app.acme().await;
    let key = key(&app, &alice, &org, TOOL_SCOPES, None).await;
    let list = request("tools/list", json!({}));
    let port = app.base.rsplit(':').next().unwrap().to_owned();
    // DNS rebinding: a name that resolves here but is not ours. Refused before the credential
    // is read — with a key or without one.
    for host in [
        format!("evil.example:{port}"),
        "evil.example".into(),
        format!("127.0.0.1.nip.io:{port}"),
    ] {
        for token in [Some(key.as_str()), None] {
            let res = mcp_post(&app, token, &[("host", &host)], list.clone()).await;
            res.expect_error(403, "host_not_allowed");
        }
    }
    // The public URL's host (here 127.0.0.1 at the bound port) and loopback names pass.
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
    ] {
        let res = mcp_post(&app, Some(&key), &[("host", &host)], list.clone()).await;
        assert_eq!(res.status.as_u16(), 200, "{host}: {}", res.body);
    }
    // A browser page of another origin: 403; our own origin and allowlisted ones pass.
    for origin in [
        "https://evil.example",
        "null",
        "http://127.0.0.1:1",
        "https://allowed.example.evil",
    ] {
        let res = mcp_post(&app, Some(&key), &[("origin", origin)], list.clone()).await;
        res.expect_error(403, "origin_not_allowed");
    }
    for origin in [app.base.as_str(), "https://allowed.example"] {
        let res = mcp_post(&app, Some(&key), &[("origin", origin)], list.clone()).await;
        assert_eq!(res.status.as_u16(), 200, "{origin}: {}", res.body);
    }
    // Stateless: no stream to open, no session to end.
    for method in [Method::GET, Method::DELETE, Method::PUT] {
        let res = app
            .send(
                app.client
                    .request(method.clone(), app.url("/mcp"))
                    .bearer_auth(&key),
            )
            .await;
        assert_eq!(res.headers["allow"], "POST", "{method}");
        res.expect_error(405, "method_not_allowed");
    }
    // Bodies over 1 MiB are refused (413), streamed or not.
    let big = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "send_message", "arguments": {"conversation_id": org, "content": "x".repeat(1024 * 1024)}}});
    let res = mcp_post(&app, Some(&key), &[], big).await;
    assert_eq!(res.status.as_u16(), 413);
    assert_eq!(chunked_status(&app, &key, 80 * 16 * 1024).await, 413);
    assert_eq!(
        chunked_status(&app, &key, 0).await,
        200,
        "the same request, small"
    );
    // Malformed JSON-RPC is a client error, never a 500; a client that cannot take the
    // answer's media types is told so.
    let accept = "application/json, text/event-stream";
    let res = raw_post(&app, &key, accept, "{not json".into()).await;
    assert!(res.status.is_client_error(), "{}", res.status);
    let res = raw_post(&app, &key, "text/html", list.to_string()).await;
    assert_eq!(res.status.as_u16(), 406);
}

/// `body` as it is, to `/mcp` with `key` and `accept`.
async fn raw_post(app: &TestApp, key: &str, accept: &str, body: String) -> Res {
    let rb = (app.client.post(app.url("/mcp")))
        .bearer_auth(key)
        .header("accept", accept)
        .header("content-type", "application/json")
        .body(body);
    app.send(rb).await
}

/// The status of `tools/list` sent with chunked transfer encoding (no `Content-Length`),
/// `padding` bytes of white space after the JSON.
async fn chunked_status(app: &TestApp, key: &str, padding: usize) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\n\
         Accept: application/json, text/event-stream\r\nContent-Type: application/json\r\n\
         MCP-Protocol-Version: {REVISION}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    let mut body = request("tools/list", json!({})).to_string().into_bytes();
    body.extend(std::iter::repeat_n(b' ', padding));
    let _ = tcp.write_all(head.as_bytes()).await;
    for chunk in body.chunks(16 * 1024) {
        let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), chunk, b"\r\n"].concat();
        if tcp.write_all(&framed).await.is_err() {
            break; // answered and closed early
        }
    }
    let _ = tcp.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = tcp.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer);
    let status = text.split(' ').nth(1).unwrap_or_default();
    status
        .parse()
        .unwrap_or_else(|_| panic!("a status line in {text:?}"))
}
