//! An acknowledged message is durable (MSG-2, issue 13's constraint that does not move): a node
//! killed with SIGKILL while senders keep it busy loses no message it answered 201 for and, when
//! the senders retry what was in flight with the same idempotency keys, stores none twice. Run
//! on the embedded SQLite database and on PostgreSQL; a single node, so it lives beside the
//! cluster's process harness rather than needing NATS.

use super::*;
use crate::helpers::{conv_path, org_path, post_json};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Parallel senders, each sending one message after another.
const SENDERS: usize = 16;
/// Acknowledged messages to wait for before the kill (so it lands mid-load, not at the start).
const BEFORE_KILL: usize = 200;

/// What one sender saw: the messages acknowledged (idempotency key → message), and the one it
/// had in flight when the node died (its key and content), if any.
#[derive(Default)]
struct Sent {
    acknowledged: Vec<(String, Value)>,
    in_flight: Option<(String, String)>,
}

/// Registers alice and gives her an org and a group conversation: (token, conversation id).
async fn alice_and_a_conversation(http: &reqwest::Client, node: &Node) -> (String, String) {
    let api = format!("{}/api/v1", node.base);
    let creds = json!({"username": "alice", "password": PASSWORD});
    let (status, body) = post_json(http, &format!("{api}/auth/register"), "", creds.clone())
        .await
        .expect("register");
    assert_eq!(status, 201, "register: {body}");
    let (status, body) = post_json(http, &format!("{api}/auth/login"), "", creds)
        .await
        .expect("login");
    assert_eq!(status, 200, "login: {body}");
    let token = body["token"].as_str().expect("token").to_owned();
    let (status, org) = post_json(
        http,
        &format!("{api}/orgs"),
        &token,
        json!({"name": "Acme"}),
    )
    .await
    .expect("org");
    assert_eq!(status, 201, "org: {org}");
    let org = org["id"].as_str().expect("org id");
    let (status, conv) = post_json(
        http,
        &format!("{}{}", node.base, org_path(org, "/conversations")),
        &token,
        json!({"kind": "group", "name": "Load", "participant_ids": []}),
    )
    .await
    .expect("conversation");
    assert_eq!(status, 201, "conversation: {conv}");
    (
        token,
        conv["id"].as_str().expect("conversation id").to_owned(),
    )
}

/// Every message of the conversation, oldest first (pages of the newest first, followed by
/// their `next` cursors).
async fn all_messages(http: &reqwest::Client, node: &Node, token: &str, conv: &str) -> Vec<Value> {
    let url = format!("{}{}", node.base, conv_path(conv, "/messages"));
    let mut all: Vec<Value> = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let mut req = http.get(&url).bearer_auth(token).query(&[("limit", "100")]);
        if let Some(cursor) = &before {
            req = req.query(&[("before", cursor)]);
        }
        let res = within("list messages", req.send()).await.expect("list");
        assert_eq!(res.status(), 200, "list messages");
        let page: Value = within("page", res.json()).await.expect("page json");
        all.extend(page["items"].as_array().expect("items").iter().cloned());
        match page["next"].as_str() {
            Some(next) => before = Some(next.to_owned()),
            None => break,
        }
    }
    all.reverse();
    all
}

async fn acknowledged_messages_survive_sigkill(database_url: Option<String>) {
    let http = reqwest::Client::builder()
        .timeout(WAIT)
        .build()
        .expect("http client");
    let mut node = Node::alone("durable", database_url, &[("CONCLAVE_RATE_LIMITS", "off")]);
    node.wait_ready(&http).await;
    let (token, conv) = alice_and_a_conversation(&http, &node).await;
    let url = format!("{}{}", node.base, conv_path(&conv, "/messages"));

    let acknowledged = Arc::new(AtomicUsize::new(0));
    let senders: Vec<_> = (0..SENDERS)
        .map(|s| {
            let (http, url, token, acknowledged) = (
                http.clone(),
                url.clone(),
                token.clone(),
                acknowledged.clone(),
            );
            tokio::spawn(async move {
                let mut sent = Sent::default();
                for n in 0.. {
                    let (key, content) = (format!("k{s}-{n}"), format!("sender {s} message {n}"));
                    let body = json!({"content": content, "idempotency_key": key});
                    match post_json(&http, &url, &token, body).await {
                        Some((201, message)) => {
                            sent.acknowledged.push((key, message));
                            acknowledged.fetch_add(1, Ordering::Relaxed);
                        }
                        Some((status, body)) => panic!("send answered {status}: {body}"),
                        // The node died: the answer never came, so the message may or may not
                        // have been stored.
                        None => {
                            sent.in_flight = Some((key, content));
                            return sent;
                        }
                    }
                }
                unreachable!("a sender stops only when the node dies")
            })
        })
        .collect();
    within("the senders' first acknowledgements", async {
        while acknowledged.load(Ordering::Relaxed) < BEFORE_KILL {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    node.kill();
    let mut sent = Vec::new();
    for sender in senders {
        sent.push(within("a sender to notice", sender).await.expect("sender"));
    }
    let answered: usize = sent.iter().map(|s| s.acknowledged.len()).sum();
    assert!(answered >= BEFORE_KILL, "{answered} acknowledged");

    node.relaunch();
    node.wait_ready(&http).await;
    let stored = all_messages(&http, &node, &token, &conv).await;
    let by_id: HashMap<&str, &Value> = stored
        .iter()
        .map(|m| (m["id"].as_str().expect("id"), m))
        .collect();
    assert_eq!(by_id.len(), stored.len(), "a message listed twice");
    for (key, message) in sent.iter().flat_map(|s| &s.acknowledged) {
        let id = message["id"].as_str().expect("id");
        let kept = by_id
            .get(id)
            .unwrap_or_else(|| panic!("acknowledged message {key} ({id}) lost by the kill"));
        assert_eq!(kept["content"], message["content"], "{key}");
        assert_eq!(kept["seq"], message["seq"], "{key}");
    }
    let mut by_content: BTreeMap<&str, usize> = BTreeMap::new();
    for m in &stored {
        *by_content
            .entry(m["content"].as_str().expect("content"))
            .or_default() += 1;
    }
    if let Some((content, n)) = by_content.iter().find(|(_, n)| **n > 1) {
        panic!("{content:?} stored {n} times");
    }
    let seqs: Vec<i64> = stored
        .iter()
        .map(|m| m["seq"].as_i64().expect("seq"))
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "seq order: {seqs:?}");

    // The senders retry what was in flight, as a client does after a lost answer: each is
    // stored exactly once, whether or not the kill had already committed it.
    let url = format!("{}{}", node.base, conv_path(&conv, "/messages"));
    let (mut retried, mut new) = (0, 0);
    for (key, content) in sent.iter().filter_map(|s| s.in_flight.clone()) {
        let body = json!({"content": content, "idempotency_key": key});
        let (status, body) = post_json(&http, &url, &token, body).await.expect("retry");
        assert!(
            status == 201 || status == 200,
            "retry of {key}: {status} {body}"
        );
        assert_eq!(body["content"], content.as_str(), "retry of {key}");
        retried += 1;
        new += usize::from(!by_content.contains_key(content.as_str()));
    }
    let after = all_messages(&http, &node, &token, &conv).await;
    assert_eq!(
        after.len(),
        stored.len() + new,
        "only the lost in-flight sends were added"
    );
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for m in &after {
        *counts
            .entry(m["content"].as_str().expect("content"))
            .or_default() += 1;
    }
    assert!(
        counts.values().all(|n| *n == 1),
        "a retry stored a message twice"
    );
    for (_, content) in sent.iter().filter_map(|s| s.in_flight.as_ref()) {
        assert_eq!(
            counts.get(content.as_str()),
            Some(&1),
            "{content} after its retry"
        );
    }
    eprintln!(
        "durability: {answered} acknowledged before SIGKILL, {} stored, {retried} in flight \
         retried ({new} of them not stored by the killed node)",
        stored.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_keeps_every_acknowledged_message_through_sigkill() {
    acknowledged_messages_survive_sigkill(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_keeps_every_acknowledged_message_through_sigkill() {
    let Some(database_url) = fresh_postgres_db().await else {
        return;
    };
    acknowledged_messages_survive_sigkill(Some(database_url)).await;
}
