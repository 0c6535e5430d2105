//! CORE-4, CORE-5 at the edges of what clients and other services send: a control character
//! (NUL above all, which PostgreSQL's text and jsonb cannot hold) in an OAuth `state`, a
//! client's metadata document, a model's streamed answer or a guard's pattern; dates chrono
//! reads but the document does not allow; a repeated query parameter; a gateway frame past the
//! codec's limit and an opcode past a byte. Each is refused with its documented answer naming
//! the field (or closed with its close code), or made safe, never a 500, a panic or a silent
//! hang-up. Runs on both backends.

use crate::agents::answers::{answer_on, scene};
use crate::agents::Agented;
use crate::both_backends;
use crate::helpers::*;
use crate::llm::Script;
use crate::oauth::{location, query_param, request_id, world, REDIRECT};
use crate::ws::Ws;
use futures::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::json;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

both_backends!(with crate::helpers::spawn_app_unlimited;
    an_oauth_state_with_a_control_character_is_refused_at_the_redirect_uri,
    control_characters_in_guard_patterns_are_refused_by_index,
    a_repeated_query_parameter_is_named,
    gateway_frames_past_the_codec_limit_and_opcodes_past_a_byte_get_their_close_codes,
);

/// Cases on an app whose agents reach the fake model provider.
mod agented {
    use super::*;
    crate::both_backends!(
        with crate::agents::agented;
        a_nul_from_the_model_is_stored_as_a_replacement_character,
        usage_days_are_exactly_yyyy_mm_dd,
    );
}

/// Cases on an app that fetches Client ID Metadata Documents from a local server.
mod documented {
    use super::*;
    crate::both_backends!(
        with crate::edge_input::documents;
        a_client_name_is_cleaned_of_invisible_characters_or_refused,
    );
}

const WAIT: Duration = Duration::from_secs(10);

async fn an_oauth_state_with_a_control_character_is_refused_at_the_redirect_uri(app: TestApp) {
    let w = world(&app).await;
    for state in [
        "a\u{0}b",
        "line\nbreak",
        "tab\there",
        "del\u{7f}",
        "c1\u{85}",
    ] {
        let res = app.authorize_as(&w.client_id, &[("state", state)]).await;
        // The client and its redirect URI are verified: the refusal goes back to the client.
        let to = location(&res);
        assert!(to.starts_with(REDIRECT), "{state:?}: {to}");
        assert_eq!(
            query_param(&to, "error").as_deref(),
            Some("invalid_request"),
            "{state:?}"
        );
        assert_eq!(
            query_param(&to, "state").as_deref(),
            Some(state),
            "{state:?}"
        );
        assert_eq!(
            query_param(&to, "iss").as_deref(),
            Some(app.base.as_str()),
            "{state:?}"
        );
    }
    // Any visible text is a state like any other: the browser goes on to the consent page.
    let id = request_id(&app.authorize_as(&w.client_id, &[("state", "é ✓ ~")]).await);
    let view = app
        .consent_api(&w.browser, Method::GET, &id, None)
        .await
        .expect(200);
    assert_eq!(view.body["client_id"], w.client_id.as_str());
}

async fn control_characters_in_guard_patterns_are_refused_by_index(app: TestApp) {
    let alice = app.user("alice").await;
    let org = app.org(&alice, "Acme").await;
    let path = org_path(&org, "/guards");
    let guard = |name: &str, patterns: serde_json::Value| json!({"name": name, "kind": "regex", "mode": "block", "patterns": patterns});
    for (patterns, field) in [
        (json!(["a\u{0}b"]), "/patterns/0"),
        (json!(["ok", "tab\there"]), "/patterns/1"),
        (json!(["ok", "fine", "del\u{7f}"]), "/patterns/2"),
        (json!(["line\n"]), "/patterns/0"),
    ] {
        let res = app
            .post(&path, &alice.token, guard("Bad", patterns.clone()))
            .await
            .expect_error(422, "invalid_pattern");
        assert_eq!(res.field(), Some(field), "{patterns}");
    }
    assert!(app.items(&path, &alice.token).await.is_empty());
    // Written as escapes, the same characters are patterns like any other: stored and read back.
    let escaped = json!([r"a\x00b", r"tab\there", r"\x7f"]);
    app.post(&path, &alice.token, guard("Escaped", escaped.clone()))
        .await
        .expect(201);
    let listed = app.items(&path, &alice.token).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["patterns"], escaped);
}

async fn a_repeated_query_parameter_is_named(app: TestApp) {
    let (alice, org, conv) = app.alice_private().await;
    for (path, field) in [
        ("/api/v1/conversations?limit=5&limit=6".to_owned(), "limit"),
        (conv_path(&conv, "/messages?limit=1&limit=2"), "limit"),
        (org_path(&org, "/search?q=a&q=b"), "q"),
    ] {
        let res = app
            .get(&path, &alice.token)
            .await
            .expect_error(422, "duplicate_field");
        assert_eq!(res.field(), Some(field), "{path}");
    }
    // A value of the wrong type is still a 400 naming its parameter.
    let res = app
        .get("/api/v1/conversations?limit=ten", &alice.token)
        .await
        .expect_error(400, "invalid_query");
    assert_eq!(res.field(), Some("limit"));
}

/// Sends `text` as one frame while reading; answers the code of the server's close frame,
/// after checking that the connection then ends cleanly (no reset, which could lose the close
/// frame: the server read what it refused instead of dropping the connection on it).
async fn close_code_after_sending(ws: Ws, text: String) -> u16 {
    let (mut write, mut read) = ws.socket.split();
    let sender = tokio::spawn(async move {
        let _ = write.send(Message::Text(text.into())).await;
        write
    });
    let code = loop {
        match tokio::time::timeout(WAIT, read.next())
            .await
            .expect("the server closes within the timeout")
        {
            Some(Ok(Message::Close(Some(f)))) => break u16::from(f.code),
            Some(Ok(Message::Close(None)) | Err(_)) | None => {
                panic!("a close frame with a code")
            }
            Some(Ok(_)) => continue,
        }
    };
    match tokio::time::timeout(WAIT, read.next())
        .await
        .expect("the connection ends after the closing handshake")
    {
        None => {}
        Some(Ok(m)) => panic!("nothing after the close frame, got {m:?}"),
        Some(Err(e)) => panic!("the connection ended uncleanly after close {code}: {e}"),
    }
    sender.abort();
    code
}

async fn gateway_frames_past_the_codec_limit_and_opcodes_past_a_byte_get_their_close_codes(
    app: TestApp,
) {
    let alice = app.user("alice").await;
    // An opcode past a byte is an unknown opcode (4001), not a decode error; before IDENTIFY
    // as after it.
    let mut ws = Ws::connect(&app).await;
    ws.send_raw(r#"{"op":256,"d":null}"#.to_owned()).await;
    assert_eq!(ws.close_code().await, 4001);
    let (mut ws, _) = Ws::identify(&app, &alice.token).await;
    ws.send_raw(r#"{"op":18446744073709551615,"d":null}"#.to_owned())
        .await;
    assert_eq!(ws.close_code().await, 4001);
    // Not an unsigned integer at all: a decode error.
    let (mut ws, _) = Ws::identify(&app, &alice.token).await;
    ws.send_raw(r#"{"op":-1,"d":null}"#.to_owned()).await;
    assert_eq!(ws.close_code().await, 4002);
    // Past the codec's own limit (4 × the 64 KiB frame limit), the frame is not even read:
    // still 4010, as for one past 64 KiB, and a clean closing handshake.
    let big = format!(
        "{{\"op\":1,\"d\":null,\"pad\":\"{}\"}}",
        "x".repeat(320 * 1024)
    );
    let (ws, _) = Ws::identify(&app, &alice.token).await;
    assert_eq!(close_code_after_sending(ws, big.clone()).await, 4010);
    let ws = Ws::connect(&app).await;
    assert_eq!(close_code_after_sending(ws, big).await, 4010);
}

async fn a_nul_from_the_model_is_stored_as_a_replacement_character(h: Agented) {
    let app = &h.app;
    let s = scene(&h, json!({})).await;
    let (mut bob, _) = Ws::identify(app, &s.bob.token).await;
    h.llm.answer(Script::says(&["nul\u{0}", "here\u{0}!"]));
    app.says(&s.conv, &s.bob, "@Helper say it").await;
    let want = "nul\u{FFFD}here\u{FFFD}!";
    let seen = answer_on(&mut bob, &s.agent_user).await;
    assert_eq!(seen.end["status"], "complete", "{}", seen.end);
    assert_eq!(seen.deltas, want);
    assert_eq!(seen.end["content"], want);
    let listed = app
        .items(&conv_path(&s.conv, "/messages"), &s.bob.token)
        .await;
    assert_eq!(listed[0]["content"], want);
    assert_eq!(listed[0]["status"], "complete");
}

async fn usage_days_are_exactly_yyyy_mm_dd(h: Agented) {
    let app = &h.app;
    let s = scene(&h, json!({})).await;
    let usage = |q: &str| format!("{}?{q}", s.usage());
    for (q, field) in [
        // chrono reads these (and the first panicked 29 days before it); the document does not.
        ("until=-262143-01-01", "until"),
        ("since=-262143-01-01", "since"),
        ("until=%2B2024-01-01", "until"),
        ("since=%2B12024-01-01", "since"),
        ("since=20240-01-01", "since"),
        ("since=2024-1-1", "since"),
        ("until=2024-01-1", "until"),
        ("until=%202024-01-01", "until"),
        ("since=2024-01-01T00:00:00Z", "since"),
        ("until=2024-02-30", "until"),
        ("since=2024/01/01", "since"),
    ] {
        let res = app
            .get(&usage(q), &s.alice.token)
            .await
            .expect_error(422, "invalid_date");
        assert_eq!(res.field(), Some(field), "{q}");
    }
    // Four-digit years, the earliest included, are days like any other.
    for q in [
        "until=0000-01-01",
        "since=0000-01-01&until=0000-01-31",
        "since=9999-12-01&until=9999-12-31",
    ] {
        let res = app.get(&usage(q), &s.alice.token).await.expect(200);
        assert!(res.items().is_empty(), "{q}: {}", res.body);
    }
    // A day given twice is named.
    let res = app
        .get(&usage("since=2026-01-01&since=2026-01-02"), &s.alice.token)
        .await
        .expect_error(422, "duplicate_field");
    assert_eq!(res.field(), Some("since"));
}

/// An app whose SSRF guard lets through a local server of Client ID Metadata Documents: `named`
/// has a `client_name` with control and bidi characters around visible text, `blank` one with
/// nothing visible.
pub struct Documents {
    pub app: TestApp,
    pub named: String,
    pub blank: String,
}

pub async fn documents(backend: Backend) -> Option<Documents> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let url = |path: &str| format!("http://127.0.0.1:{port}/{path}");
    let (named, blank) = (url("named.json"), url("blank.json"));
    let document = |id: &str, name: &str| {
        json!({
            "client_id": id,
            "client_name": name,
            "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "none",
        })
    };
    let named_doc = document(&named, "\u{202E}Good\u{0} Tool\u{200B}\u{FEFF}\u{2066}");
    let blank_doc = document(&blank, "\u{200B}\u{0}\u{2066}\u{FEFF}\u{202A}");
    let router = axum::Router::new()
        .route(
            "/named.json",
            axum::routing::get(move || {
                let doc = named_doc.clone();
                async move { axum::Json(doc) }
            }),
        )
        .route(
            "/blank.json",
            axum::routing::get(move || {
                let doc = blank_doc.clone();
                async move { axum::Json(doc) }
            }),
        );
    tokio::spawn(async move { axum::serve(listener, router).await });
    let app = spawn_app_with(backend, |c| {
        c.rate_limits = conclave_server::config::OnOff::Off;
        c.webhook_allow_cidrs = vec!["127.0.0.1/32".parse().unwrap()];
        c.webhook_allow_ports = vec![port];
    })
    .await?;
    Some(Documents { app, named, blank })
}

async fn a_client_name_is_cleaned_of_invisible_characters_or_refused(d: Documents) {
    let app = &d.app;
    let w = world(app).await;
    let id = request_id(&app.authorize_as(&d.named, &[]).await);
    let view = app
        .consent_api(&w.browser, Method::GET, &id, None)
        .await
        .expect(200);
    assert_eq!(view.body["client_name"], "Good Tool");
    assert_eq!(view.body["client_id"], d.named.as_str());
    // Nothing visible left: the client is refused, shown (never redirected).
    let res = app.authorize_as(&d.blank, &[]).await;
    assert_eq!(res.status.as_u16(), 400, "{}", res.body);
    assert_eq!(res.body["error"], "invalid_client", "{}", res.body);
    assert!(res.headers.get("location").is_none());
}
