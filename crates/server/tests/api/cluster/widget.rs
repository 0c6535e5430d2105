//! WEB-4 across nodes: a widget key revoked through node A ends the visitor streams open on
//! node B at once (the revocation reaches every node's widget streams through the fan-out),
//! and B refuses the key from then on.

use super::*;
use crate::helpers::org_path;
use reqwest::Method;

const ORIGIN: &str = "https://shop.example";

/// SCALE-2, WEB-4: revoking on A closes B's open streams of the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_revoked_on_a_ends_its_streams_on_b() {
    let Some(c) = Cluster::start().await else {
        return;
    };
    let w = c.world().await;
    let (_, org) = c
        .request(&c.a, (Method::GET, "/api/v1/orgs"), Some(&w.alice), None)
        .await;
    let org = org["items"][0]["id"].as_str().expect("org id").to_owned();
    let (status, team) = c
        .call(
            &c.a,
            &org_path(&org, "/teams"),
            Some(&w.alice),
            json!({"name": "Support"}),
        )
        .await;
    assert_eq!(status, 201, "team: {team}");
    let (status, key) = c
        .call(
            &c.a,
            &org_path(&org, "/widget-keys"),
            Some(&w.alice),
            json!({"name": "Shop", "allowed_origins": [ORIGIN], "team_id": team["id"]}),
        )
        .await;
    assert_eq!(status, 201, "key: {key}");
    let (key_id, key) = (key["id"].as_str().unwrap(), key["key"].as_str().unwrap());
    // No client timeout: the stream is meant to stay open until the server ends it.
    let http = reqwest::Client::new();
    let widget = |method: Method, path: &str| {
        http.request(method, format!("{}/api/v1/widget{path}", c.b.base))
            .header("origin", ORIGIN)
            .header("x-widget-key", key)
    };
    let session: Value = within(
        "session on B",
        widget(Method::POST, "/sessions").json(&json!({})).send(),
    )
    .await
    .expect("session")
    .json()
    .await
    .expect("session body");
    let (id, secret) = (
        session["session_id"].as_str().expect("session id"),
        session["visitor_secret"].as_str().expect("secret"),
    );
    let said = within(
        "say on B",
        widget(Method::POST, "/chat")
            .header("x-widget-visitor", secret)
            .json(&json!({"session_id": id, "message": "hello"}))
            .send(),
    )
    .await
    .expect("said");
    assert_eq!(said.status().as_u16(), 201);
    let mut stream = within(
        "stream on B",
        widget(Method::GET, &format!("/chat/stream?session_id={id}"))
            .header("x-widget-visitor", secret)
            .send(),
    )
    .await
    .expect("stream");
    assert_eq!(stream.status().as_u16(), 200);
    // The current messages arrive: the stream is live.
    let mut seen = String::new();
    while !seen.contains("event: status") && !seen.contains("event:status") {
        let chunk = within("first events", stream.chunk()).await.expect("read");
        seen.push_str(&String::from_utf8_lossy(&chunk.expect("open")));
    }
    let (status, body) = c
        .request(
            &c.a,
            (
                Method::DELETE,
                &org_path(&org, &format!("/widget-keys/{key_id}")),
            ),
            Some(&w.alice),
            None,
        )
        .await;
    assert_eq!(status, 204, "revoke on A: {body}");
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(Some(_)) = stream.chunk().await {}
    })
    .await;
    assert!(
        ended.is_ok(),
        "B's stream ends within 5 s of the revocation on A"
    );
    let refused = within(
        "history on B",
        widget(Method::GET, &format!("/chat?session_id={id}"))
            .header("x-widget-visitor", secret)
            .send(),
    )
    .await
    .expect("answer");
    assert_eq!(refused.status().as_u16(), 403);
}
