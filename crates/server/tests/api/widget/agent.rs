//! The AI agent's first answer streamed to the visitor, handoff by the visitor and by the
//! agent (audited, AGENT-6; the agent silent after it), a person's reply reaching the stream,
//! and a reconnect with `Last-Event-ID` that misses nothing.

use super::*;
use crate::llm::Script;

crate::both_backends!(
    with crate::widget::widgeted;
    the_agent_answers_first_streamed_to_the_visitor,
    the_visitor_hands_off_and_the_agent_falls_silent,
    the_agent_hands_off_with_its_marker,
    a_reconnect_with_last_event_id_misses_nothing,
);

/// Cases on an app set up otherwise.
mod other_setup {
    use super::*;
    crate::both_backends!(
        with crate::widget::agent::invocations_limited;
        each_visitor_has_their_own_allowance_of_the_agent,
    );
}

/// Rate limits on: two invocations of an agent per person and minute (the widget's own limits
/// at their defaults, far above what these tests send).
async fn invocations_limited(backend: Backend) -> Option<Widgeted> {
    widgeted_with(backend, |c| {
        c.rate_limits = conclave_server::config::OnOff::On;
        c.agent_invocations_per_minute = 2;
    })
    .await
}

/// The agent's messages in the visitor's history, oldest first.
async fn agent_lines(app: &TestApp, key: &str, v: &Session) -> Vec<String> {
    let history = app.visitor_history(key, v).await;
    history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "agent" && m["status"] == "complete")
        .map(|m| m["content"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// AGENT-4 per person, WEB-4 per visitor: every visitor writes as the key's one visitor
/// account, yet one visitor who uses up their allowance leaves the others theirs.
async fn each_visitor_has_their_own_allowance_of_the_agent(h: Widgeted) {
    let app = &h.app;
    let s = site(&h, "acme", "optional", true).await;
    h.llm.by_default(Script::says(&["Sure."]));
    let greedy = app.visit(&s.key, json!({})).await;
    for n in 1..=3 {
        app.visitor_says(&s.key, &greedy, "question").await;
        agent_answers(app, &s.key, &greedy, n).await;
    }
    let lines = agent_lines(app, &s.key, &greedy).await;
    assert_eq!(lines[..2], ["Sure.", "Sure."]);
    assert_ne!(lines[2], "Sure.", "the third is refused: {lines:?}");
    assert_eq!(h.llm.requests().len(), 2);
    let other = app.visit(&s.key, json!({})).await;
    app.visitor_says(&s.key, &other, "my own question").await;
    agent_answers(app, &s.key, &other, 1).await;
    assert_eq!(agent_lines(app, &s.key, &other).await, ["Sure."]);
    assert_eq!(h.llm.requests().len(), 3);
}

async fn the_agent_answers_first_streamed_to_the_visitor(h: Widgeted) {
    let app = &h.app;
    let s = site(&h, "acme", "optional", true).await;
    let v = app.visit(&s.key, json!({})).await;
    assert_eq!(v.body["settings"]["agent_name"], "Helper");
    let mut stream = Stream::open(app, &s.key, &v, None).await;
    h.llm.answer(Script::Stream {
        chunks: vec!["Hello", ", how ", "can I help?"],
        delay: Duration::from_millis(80),
        usage: (5, 5),
    });
    let said = app.visitor_says(&s.key, &v, "I need help").await;
    assert_eq!(said["role"], "visitor");
    let events = stream
        .until(|e| {
            e.event == "message" && e.data["role"] == "agent" && e.data["status"] == "complete"
        })
        .await;
    let deltas: String = events
        .iter()
        .filter(|e| e.event == "delta")
        .map(|e| e.data["delta"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(deltas, "Hello, how can I help?");
    assert!(events
        .iter()
        .any(|e| e.event == "status" && e.data["status"] == "bot"));
    let end = &events.last().unwrap().data;
    assert_eq!(end["content"], "Hello, how can I help?");
    assert_eq!(end["author_name"], "Helper");
    // Ids increase; each event carries one.
    let positions: Vec<u64> = events
        .iter()
        .filter(|e| e.event != "status")
        .map(|e| e.id.rsplit_once('-').unwrap().1.parse().unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] <= w[1]), "{positions:?}");
    // The model was told how to hand off, and saw the visitor's message.
    let seen = h.llm.requests();
    let sent = seen.last().unwrap().body["messages"].to_string();
    assert!(sent.contains("[handoff]") && sent.contains("I need help"));
    let history = app.visitor_history(&s.key, &v).await;
    assert_eq!(history["status"], "bot");
    let roles: Vec<&str> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["visitor", "agent"]);
}

/// Waits for the agent's answer to finish in the visitor's history.
async fn agent_answers(app: &TestApp, key: &str, v: &Session, n: usize) {
    eventually("the agent's answer", || async {
        let h = app.visitor_history(key, v).await;
        h["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["role"] == "agent" && m["status"] == "complete")
            .count()
            >= n
    })
    .await;
}

async fn the_visitor_hands_off_and_the_agent_falls_silent(h: Widgeted) {
    let app = &h.app;
    let s = site(&h, "acme", "optional", true).await;
    let v = app.visit(&s.key, json!({})).await;
    // Nothing to hand off before the first message.
    app.visitor_hands_off(&s.key, &v)
        .await
        .expect_error(404, "not_found");
    h.llm.by_default(Script::says(&["Sure."]));
    app.visitor_says(&s.key, &v, "question").await;
    agent_answers(app, &s.key, &v, 1).await;
    let mut stream = Stream::open(app, &s.key, &v, None).await;
    stream.until(|e| e.event == "status").await;
    // Two handoffs at once: one changes the status, one audit row, one notice.
    let handoff = || app.visitor_hands_off(&s.key, &v);
    let (a, b) = tokio::join!(handoff(), handoff());
    assert_eq!(a.expect(200).body["status"], "open");
    assert_eq!(b.expect(200).body["status"], "open");
    let events = stream
        .until(|e| e.event == "message" && e.data["role"] == "system")
        .await;
    assert!(events
        .iter()
        .any(|e| e.event == "status" && e.data["status"] == "open"));
    let rows = app.audit_of("widget.handoff").await.items();
    assert_eq!(rows.len(), 1, "one handoff, audited once");
    assert_eq!(rows[0]["detail"]["by"], "visitor");
    assert_eq!(rows[0]["org_id"], s.org.as_str());
    // The agent answers no more.
    let calls = h.llm.requests().len();
    app.visitor_says(&s.key, &v, "are you there?").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        h.llm.requests().len(),
        calls,
        "no model call after the handoff"
    );
    // The team sees it open in the inbox, and a person's reply reaches the visitor live.
    let inbox = app
        .items(&org_path(&s.org, "/inbox?status=open"), &s.staff.token)
        .await;
    assert_eq!(inbox.len(), 1);
    let conv = inbox[0]["conversation_id"].as_str().unwrap().to_owned();
    app.post(&conv_path(&conv, "/join"), &s.staff.token, json!({}))
        .await
        .expect(200);
    app.says(&conv, &s.staff, "Hi, I am a person.").await;
    let got = stream
        .until(|e| e.event == "message" && e.data["role"] == "staff")
        .await;
    assert_eq!(got.last().unwrap().data["content"], "Hi, I am a person.");
    // Resolving it reaches the stream; the next visitor message starts a new conversation.
    app.update_conversation(&conv, &s.staff, json!({"status": "resolved"}))
        .await
        .expect(200);
    stream
        .until(|e| e.event == "status" && e.data["status"] == "resolved")
        .await;
    assert_eq!(app.audit_of("widget.status_changed").await.items().len(), 1);
    app.visitor_says(&s.key, &v, "one more thing").await;
    let history = app.visitor_history(&s.key, &v).await;
    assert_ne!(history["conversation_id"], conv.as_str());
    assert_eq!(history["status"], "bot");
    let got = stream
        .until(|e| e.event == "message" && e.data["content"] == "one more thing")
        .await;
    assert!(!got.is_empty());
}

async fn the_agent_hands_off_with_its_marker(h: Widgeted) {
    let app = &h.app;
    let s = site(&h, "acme", "optional", true).await;
    let v = app.visit(&s.key, json!({})).await;
    let mut stream = Stream::open(app, &s.key, &v, None).await;
    h.llm
        .answer(Script::says(&["Let me get a colleague.", "\n[handoff]"]));
    app.visitor_says(&s.key, &v, "I want a refund").await;
    let events = stream
        .until(|e| e.event == "status" && e.data["status"] == "open")
        .await;
    assert!(!events.is_empty());
    let history = app.visitor_history(&s.key, &v).await;
    assert_eq!(history["status"], "open");
    let agent = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "agent")
        .unwrap()
        .clone();
    assert_eq!(
        agent["content"], "Let me get a colleague.",
        "the marker is taken out"
    );
    let rows = app.audit_of("widget.handoff").await.items();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["detail"]["by"], "agent");
    assert_eq!(rows[0]["actor"]["type"], "bot");
}

async fn a_reconnect_with_last_event_id_misses_nothing(h: Widgeted) {
    let app = &h.app;
    let s = site(&h, "acme", "optional", false).await;
    let (v, conv) = app.visitor_opens(&s.key, "first").await;
    app.post(&conv_path(&conv, "/join"), &s.staff.token, json!({}))
        .await
        .expect(200);
    let mut stream = Stream::open(app, &s.key, &v, None).await;
    let first = stream.until(|e| e.event == "status").await;
    assert_eq!(
        first[0].data["content"], "first",
        "the current messages come first"
    );
    app.says(&conv, &s.staff, "reply 1").await;
    let seen = stream
        .until(|e| e.event == "message" && e.data["content"] == "reply 1")
        .await;
    let last_id = seen.last().unwrap().id.clone();
    drop(stream);
    // Missed while disconnected: replies (one deleted since), a visitor message and a
    // status change.
    let mut replies = Vec::new();
    for i in 2..=4 {
        replies.push(app.says(&conv, &s.staff, &format!("reply {i}")).await.id());
    }
    app.delete(&format!("/api/v1/messages/{}", replies[1]), &s.staff.token)
        .await
        .expect(204);
    app.visitor_says(&s.key, &v, "second").await;
    app.update_conversation(&conv, &s.staff, json!({"status": "resolved"}))
        .await
        .expect(200);
    let mut resumed = Stream::open(app, &s.key, &v, Some(&last_id)).await;
    let got = resumed
        .until(|e| e.event == "status" && e.data["status"] == "resolved")
        .await;
    let contents: Vec<&str> = got
        .iter()
        .filter(|e| e.event == "message")
        .map(|e| e.data["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, ["reply 2", "reply 3", "reply 4", "second"]);
    // MSG-2: the replay sent "reply 3" as it was, then its deletion, which takes it back.
    let deleted: Vec<&Value> = got
        .iter()
        .filter(|e| e.event == "delete")
        .map(|e| &e.data)
        .collect();
    assert_eq!(deleted, [&json!({"message_id": replies[1]})]);
    // The session secret is still required to resume.
    let res = app
        .send(
            app.client
                .get(app.url(&format!("/api/v1/widget/chat/stream?session_id={}", v.id)))
                .header("origin", ORIGIN)
                .header("x-widget-key", &s.key)
                .header("last-event-id", &last_id),
        )
        .await;
    res.expect_error(401, "visitor_invalid");
}
