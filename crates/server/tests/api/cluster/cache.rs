//! Issue 13 across a real cluster: what node B caches is invalidated by the events of changes
//! made through node A. Each case warms B's cache, changes something on A, waits until B has
//! applied the change's event (a socket on B closes, hears of it, or sees a message published
//! after it), and proves the very next request on B is refused — well inside the cache TTL
//! ([`CACHE_TTL_MS`]), so it is the event that did it.

use super::*;
use crate::helpers::{conv_path, org_path};
use reqwest::Method;

impl Cluster {
    /// Expects `status` for `method path` as `token` on `node`; answers the body.
    async fn expect(
        &self,
        node: &Node,
        (method, path, token): (Method, &str, &str),
        body: Option<Value>,
        status: u16,
    ) -> Value {
        let call = (method.clone(), path);
        let (got, body) = self.request(node, call, Some(token), body).await;
        assert_eq!(got, status, "{method} {path} on {}: {body}", node.name);
        body
    }
}

impl Gw {
    /// Reads until the server closes the socket; answers the close code.
    async fn closed(&mut self) -> Option<u16> {
        loop {
            if let Frame::Closed(code) = self.frame().await {
                return code;
            }
        }
    }

    /// Reads until the MESSAGE_CREATE of `content`, skipping every other frame.
    async fn until_message(&mut self, content: &str) {
        while self.until("MESSAGE_CREATE").await["d"]["content"] != content {}
    }

    /// Reads until a DISPATCH named `t`.
    async fn until(&mut self, t: &str) -> Value {
        loop {
            match self.frame().await {
                Frame::Json(f) if f["t"] == t => return f,
                Frame::Json(_) => continue,
                Frame::Closed(code) => panic!("waiting for {t}, the socket closed ({code:?})"),
            }
        }
    }
}

/// A revoked session, a removed participant, a demoted member and a disabled account, each
/// warm on B and changed through A, are refused on B's next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_on_a_are_refused_on_b_at_once() {
    let Some(c) = Cluster::start().await else {
        return;
    };
    let (a, b) = (&c.a, &c.b);
    let started = Instant::now();
    let (_, alice) = c.user(a, "alice").await;
    let mut ids = Vec::new();
    let mut tokens = Vec::new();
    for name in ["bob", "carol", "dave"] {
        let (id, token) = c.user(a, name).await;
        ids.push(id);
        tokens.push(token);
    }
    let (bob, carol, dave) = (&tokens[0], &tokens[1], &tokens[2]);
    let org = c
        .expect(
            a,
            (Method::POST, "/api/v1/orgs", &alice),
            Some(json!({"name": "Acme"})),
            201,
        )
        .await["id"]
        .as_str()
        .expect("org id")
        .to_owned();
    for id in &ids {
        let path = format!("/api/v1/admin/orgs/{org}/members");
        let body = json!({"user_id": id, "role": "member"});
        c.expect(a, (Method::POST, &path, ADMIN_TOKEN), Some(body), 201)
            .await;
    }
    let body = json!({"kind": "group", "name": "General", "visibility": "private", "participant_ids": [ids[0], ids[1]]});
    let conversations = org_path(&org, "/conversations");
    let conv = c
        .expect(a, (Method::POST, &conversations, &alice), Some(body), 201)
        .await["id"]
        .as_str()
        .expect("conversation id")
        .to_owned();
    // Alice's second session, signed in on B.
    let creds = json!({"username": "alice", "password": PASSWORD});
    let (status, signed) = c.call(b, "/api/v1/auth/login", None, creds).await;
    assert_eq!(status, 200, "{signed}");
    let alice2 = signed["token"].as_str().expect("token").to_owned();
    let sid2 = signed["session"]["id"]
        .as_str()
        .expect("session id")
        .to_owned();

    // Warm B: every credential, every participation, and a socket for each.
    let me = "/api/v1/users/@me";
    for t in [&alice, &alice2, bob, carol, dave] {
        c.expect(b, (Method::GET, me, t), None, 200).await;
    }
    c.send(b, &conv, bob, "bob warm").await;
    c.send(b, &conv, carol, "carol warm").await;
    let (mut observer, _) = Gw::identify(b, &alice).await;
    let (mut alice2_on_b, _) = Gw::identify(b, &alice2).await;
    let (mut bob_on_b, _) = Gw::identify(b, bob).await;
    let (mut dave_on_b, _) = Gw::identify(b, dave).await;
    c.expect(b, (Method::GET, me, &alice2), None, 200).await;

    // A revoked session.
    let path = format!("/api/v1/auth/sessions/{sid2}");
    c.expect(a, (Method::DELETE, &path, &alice), None, 204)
        .await;
    assert_eq!(alice2_on_b.closed().await, Some(4004));
    c.expect(b, (Method::GET, me, &alice2), None, 401).await;

    // A removed participant: their socket on B hears of it, then B refuses their send.
    let path = conv_path(&conv, &format!("/participants/{}", ids[0]));
    c.expect(a, (Method::DELETE, &path, &alice), None, 204)
        .await;
    bob_on_b.until("PARTICIPANT_REMOVE").await;
    let send = conv_path(&conv, "/messages");
    let body = Some(json!({"content": "removed"}));
    c.expect(b, (Method::POST, &send, bob), body, 404).await;

    // A member demoted to viewer: no socket hears of it, so B is known to have applied it once
    // a message published after it reaches a socket on B (one stream, one order).
    let path = format!("/api/v1/orgs/{org}/members/{}", ids[1]);
    let body = Some(json!({"role": "viewer"}));
    c.expect(a, (Method::PATCH, &path, &alice), body, 200).await;
    c.send(a, &conv, &alice, "after the demotion").await;
    observer.until_message("after the demotion").await;
    let body = Some(json!({"content": "as a viewer"}));
    c.expect(b, (Method::POST, &send, carol), body, 403).await;

    // A disabled account.
    let path = format!("/api/v1/admin/users/{}", ids[2]);
    let body = Some(json!({"disabled": true}));
    c.expect(a, (Method::PATCH, &path, ADMIN_TOKEN), body, 200)
        .await;
    assert_eq!(dave_on_b.closed().await, Some(4004));
    c.expect(b, (Method::GET, me, dave), None, 401).await;

    // Nothing above waited for B's copies to expire.
    assert!(
        started.elapsed() < Duration::from_millis(CACHE_TTL_MS),
        "the whole case ran within the TTL, so the events invalidated B's cache"
    );
    // Those not concerned are still let in on B.
    c.expect(b, (Method::GET, me, &alice), None, 200).await;
    c.send(b, &conv, &alice, "still here").await;
}
