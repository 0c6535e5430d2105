//! Agents answering (AGENT-2, AGENT-3, AGENT-4) against the fake provider: a streamed answer
//! reaching two readers in order, a stop mid-stream, every way the provider fails, what the
//! model sees (only its conversation, newest last, within its context size), and the usage
//! report.

use super::*;
use crate::llm::Script;
use crate::ws::Ws;
use std::time::Duration;

crate::both_backends!(
    with crate::agents::agented;
    a_streamed_answer_reaches_two_readers_in_order,
    an_answer_is_stopped_mid_stream,
    the_model_sees_only_its_conversation_within_its_context,
    a_guarded_answer_is_blocked_before_anyone_sees_it,
    a_remotely_guarded_answer_is_held_and_screened_before_anyone_sees_it,
);

/// Cases on an app set up otherwise.
mod other_setup {
    use super::*;
    crate::both_backends!(
        with crate::agents::impatient;
        provider_failures_end_the_answer_failed_and_count_in_usage,
    );
}

/// Cases in an org with a moderation endpoint guard (a remote guard: answers held whole).
mod moderated_org {
    use super::*;
    crate::both_backends!(
        with super::moderated;
        a_held_answer_stopped_is_dropped_and_never_screened,
    );
}

/// An app whose agents call the fake provider and whose guards may call a local moderation
/// endpoint (`crate::guards::Moderator`).
pub struct Moderated {
    pub h: Agented,
    pub moderator: crate::guards::Moderator,
}

pub async fn moderated(backend: Backend) -> Option<Moderated> {
    let moderator = crate::guards::Moderator::start().await;
    let port = moderator.port;
    let h = agented_with(backend, |c| {
        c.webhook_allow_cidrs = vec!["127.0.0.1/32".parse().unwrap()];
        c.webhook_allow_ports = vec![port];
    })
    .await?;
    Some(Moderated { h, moderator })
}

/// What one reader saw of the agent's answer: the deltas in order and the final message.
pub struct Seen {
    pub deltas: String,
    pub indexes: Vec<u64>,
    pub end: Value,
}

/// Reads `ws` until the agent (`agent_user`) has finished a message: a notice (created
/// complete) or the MESSAGE_UPDATE that ends a streamed answer.
pub async fn answer_on(ws: &mut Ws, agent_user: &str) -> Seen {
    let mut seen = Seen {
        deltas: String::new(),
        indexes: Vec::new(),
        end: Value::Null,
    };
    loop {
        let e = ws.event().await;
        let d = &e["d"];
        match e["t"].as_str() {
            Some("MESSAGE_STREAM") => {
                seen.indexes.push(d["index"].as_u64().unwrap());
                seen.deltas.push_str(d["delta"].as_str().unwrap());
            }
            Some("MESSAGE_CREATE" | "MESSAGE_UPDATE")
                if d["author"]["id"] == agent_user && d["status"] != "streaming" =>
            {
                seen.end = d.clone();
                return seen;
            }
            _ => {}
        }
    }
}

/// Acme with Alice (owner) and Bob (member) in a group with the agent `Helper`.
pub struct Scene {
    pub alice: User,
    pub bob: User,
    pub org: String,
    pub conv: String,
    pub agent: Value,
    pub agent_user: String,
}

pub async fn scene(h: &Agented, extra: Value) -> Scene {
    let app = &h.app;
    let crate::fixtures::Team(alice, [bob], org) =
        app.team("alice", "Acme", [("bob", "member")]).await;
    let agent = make_agent(h, &org, &alice, "Helper", extra).await;
    let agent_user = agent["user_id"].as_str().unwrap().to_owned();
    let conv = app.group(&org, &alice, &[&bob], json!("private")).await;
    app.add_participant(&conv, &alice, &agent_user).await;
    Scene {
        alice,
        bob,
        org,
        conv,
        agent,
        agent_user,
    }
}

impl Scene {
    pub fn usage(&self) -> String {
        format!(
            "{}/{}/usage",
            agents(&self.org),
            self.agent["id"].as_str().unwrap()
        )
    }
}

async fn a_streamed_answer_reaches_two_readers_in_order(h: Agented) {
    let app = &h.app;
    let s = scene(&h, json!({"system_prompt": "You are Helper."})).await;
    let (mut alice, _) = Ws::identify(app, &s.alice.token).await;
    let (mut bob, _) = Ws::identify(app, &s.bob.token).await;
    h.llm.answer(Script::says(&["Hel", "lo ", "wor", "ld"]));
    let asked = app.says(&s.conv, &s.bob, "@Helper hi there").await.id();
    for ws in [&mut alice, &mut bob] {
        let seen = answer_on(ws, &s.agent_user).await;
        assert_eq!(seen.deltas, "Hello world");
        let want: Vec<u64> = (0..seen.indexes.len() as u64).collect();
        assert_eq!(seen.indexes, want, "indexes count from 0 in order");
        assert_eq!(seen.end["status"], "complete");
        assert_eq!(seen.end["content"], "Hello world");
        assert_eq!(seen.end["reply_to"], asked.as_str());
        assert_eq!(seen.end["author"]["kind"], "bot");
    }
    // REST shows it.
    let listed = app
        .items(&conv_path(&s.conv, "/messages"), &s.bob.token)
        .await;
    assert_eq!(listed[0]["content"], "Hello world");
    assert_eq!(listed[0]["status"], "complete");
    // The model got the system prompt first, then the question, as Bob, with the key.
    let seen = h.llm.requests();
    assert_eq!(seen.len(), 1);
    let body = &seen[0].body;
    assert_eq!(body["model"], "fake-1");
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(
        messages[0],
        json!({"role": "system", "content": "You are Helper."})
    );
    let last = messages.last().unwrap();
    assert_eq!(last["role"], "user");
    assert_eq!(last["name"], "bob");
    assert_eq!(last["content"], "@Helper hi there");
    assert_eq!(
        seen[0].authorization.as_deref(),
        Some(format!("Bearer {KEY}").as_str())
    );
    // One call in today's usage, with the provider's token counts.
    let usage = app.items(&s.usage(), &s.alice.token).await;
    assert_eq!(usage.len(), 1, "{usage:?}");
    assert_eq!(usage[0]["calls"], 1);
    assert_eq!(usage[0]["tokens_in"], 7);
    assert_eq!(usage[0]["tokens_out"], 3);
    assert_eq!(usage[0]["failures"], 0);
    assert!(usage[0]["latency_p50_ms"].is_i64() && usage[0]["latency_p95_ms"].is_i64());
    // Its own answer is context, as `assistant`, next time.
    h.llm.answer(Script::says(&["again"]));
    app.says(&s.conv, &s.alice, "@helper and now?").await;
    answer_on(&mut bob, &s.agent_user).await;
    let seen = h.llm.requests();
    let roles: Vec<&str> = seen[1].body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["system", "user", "assistant", "user"]);
    // Bad usage spans are refused naming the field.
    for (q, field) in [
        ("since=2026-13-01", "since"),
        ("until=yesterday", "until"),
        ("since=2020-01-01&until=2020-12-31", "since"),
        ("since=2026-02-01&until=2026-01-01", "since"),
    ] {
        let res = app.get(&format!("{}?{q}", s.usage()), &s.alice.token).await;
        assert_eq!(res.status.as_u16(), 422, "{q}: {}", res.body);
        assert_eq!(
            res.field().map(|f| f.trim_start_matches('/')),
            Some(field),
            "{q}"
        );
    }
}

async fn an_answer_is_stopped_mid_stream(h: Agented) {
    let app = &h.app;
    let s = scene(&h, json!({})).await;
    let (mut bob, _) = Ws::identify(app, &s.bob.token).await;
    h.llm.answer(Script::Stream {
        chunks: vec!["tick "; 400],
        delay: Duration::from_millis(25),
        usage: (5, 5),
    });
    app.says(&s.conv, &s.bob, "@Helper count").await;
    // Once the answer streams, Bob stops it.
    let id = loop {
        let e = bob.event().await;
        if e["t"] == "MESSAGE_STREAM" {
            break e["d"]["message_id"].as_str().unwrap().to_owned();
        }
    };
    app.post_empty(&format!("/api/v1/messages/{id}/stop"), &s.bob.token)
        .await
        .expect(200);
    let seen = answer_on(&mut bob, &s.agent_user).await;
    assert_eq!(seen.end["status"], "stopped");
    let got = app
        .items(&conv_path(&s.conv, "/messages"), &s.bob.token)
        .await;
    assert_eq!(got[0]["status"], "stopped");
    assert!(!got[0]["content"]
        .as_str()
        .unwrap()
        .contains(&"tick ".repeat(400)));
}

async fn the_model_sees_only_its_conversation_within_its_context(h: Agented) {
    let app = &h.app;
    let s = scene(&h, json!({"context_messages": 3})).await;
    // Conversation B of the same org, without the agent; Mallory's org.
    let other = app.group(&s.org, &s.alice, &[&s.bob], json!("org")).await;
    app.says(&other, &s.alice, "B-SECRET launch codes").await;
    let (mallory, evil) = app.mallory().await;
    let evil_conv = app.group(&evil, &mallory, &[], json!("org")).await;
    app.says(&evil_conv, &mallory, "EVIL-SECRET plans").await;
    for i in 0..4 {
        app.says(&s.conv, &s.alice, &format!("old line {i}")).await;
    }
    let (mut bob, _) = Ws::identify(app, &s.bob.token).await;
    app.says(
        &s.conv,
        &s.bob,
        &format!("@Helper read conversation {other} and repeat it"),
    )
    .await;
    answer_on(&mut bob, &s.agent_user).await;
    let seen = h.llm.requests();
    assert_eq!(seen.len(), 1);
    let text = seen[0].body.to_string();
    assert!(
        !text.contains("B-SECRET") && !text.contains("EVIL-SECRET"),
        "{text}"
    );
    // The last three messages, newest last (no system prompt was set).
    let contents: Vec<&str> = seen[0].body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents.len(), 3, "{contents:?}");
    assert_eq!(contents[0], "old line 2");
    assert_eq!(contents[1], "old line 3");
    assert!(contents[2].starts_with("@Helper read conversation"));
}

async fn provider_failures_end_the_answer_failed_and_count_in_usage(h: Agented) {
    let app = &h.app;
    let s = scene(&h, json!({})).await;
    let (mut bob, _) = Ws::identify(app, &s.bob.token).await;
    let cases = [
        (Script::Error { status: 500 }, "provider_error"),
        (Script::Hang, "timeout"),
        (Script::Garbage, "provider_error"),
        (Script::Endless, "timeout"),
        (Script::BrokenMidStream, "provider_error"),
    ];
    let n = cases.len();
    for (script, reason) in cases {
        h.llm.answer(script.clone());
        app.says(&s.conv, &s.bob, "@Helper try").await;
        let seen = answer_on(&mut bob, &s.agent_user).await;
        assert_eq!(seen.end["status"], "failed", "{script:?}");
        assert_eq!(seen.end["status_reason"], reason, "{script:?}");
        assert!(!seen.end.to_string().contains(crate::llm::PROVIDER_TEXT));
    }
    let usage = app.items(&s.usage(), &s.alice.token).await;
    assert_eq!(usage[0]["calls"], n);
    assert_eq!(usage[0]["failures"], n);
}

async fn a_guarded_answer_is_blocked_before_anyone_sees_it(h: Agented) {
    let app = &h.app;
    let s = scene(&h, json!({})).await;
    let guard = json!({"kind": "blocklist", "mode": "block", "terms": ["forbidden"]});
    app.post(&org_path(&s.org, "/guards"), &s.alice.token, guard)
        .await
        .expect(201);
    let (mut bob, _) = Ws::identify(app, &s.bob.token).await;
    h.llm
        .answer(Script::says(&["this is ", "forbid", "den text"]));
    app.says(&s.conv, &s.bob, "@Helper say it").await;
    let seen = answer_on(&mut bob, &s.agent_user).await;
    assert_eq!(seen.end["status"], "failed", "{}", seen.end);
    assert_eq!(seen.end["status_reason"], "content_blocked");
    // The blocked word never went out, split across deltas or not.
    assert!(!seen.deltas.contains("forbidden"), "{}", seen.deltas);
    // What passed before the block stays (the text so far, screened at each delta).
    assert_eq!(seen.end["content"], "this is forbid");
    // A notice says why instead.
    let notice = answer_on(&mut bob, &s.agent_user).await;
    assert_eq!(
        notice.end["content"],
        "I can't show my answer: this organization's content guards do not allow it."
    );
    // An answer the guards allow streams as usual.
    h.llm.answer(Script::says(&["all ", "fine"]));
    app.says(&s.conv, &s.bob, "@Helper again").await;
    let seen = answer_on(&mut bob, &s.agent_user).await;
    assert_eq!(seen.end["content"], "all fine");
    // RATE-6: a flagging guard flags an answer once, however many of its deltas it judged
    // (each is screened with the text so far; before, each added the same flag again — a
    // long answer's thousands overflowed the insert and left the review queue without it).
    let guard = json!({"kind": "blocklist", "mode": "flag", "terms": ["darn"]});
    app.post(&org_path(&s.org, "/guards"), &s.alice.token, guard)
        .await
        .expect(201);
    // More deltas than one insert may carry flags for (SQLite: 4,095 of eight parameters).
    let mut chunks = vec!["darn "];
    chunks.extend(std::iter::repeat_n("x ", 4_500));
    h.llm.answer(Script::says(&chunks));
    app.says(&s.conv, &s.bob, "@Helper grumble").await;
    let seen = answer_on(&mut bob, &s.agent_user).await;
    assert_eq!(seen.end["status"], "complete", "{}", seen.end);
    assert!(seen.end["content"]
        .as_str()
        .unwrap()
        .starts_with("darn x x"));
    // The flags are written after the end is announced, all in one statement.
    let flags = || crate::guards::open_flags(app, &s.org, &s.alice);
    crate::widget::eventually("the flag", || async { !flags().await.is_empty() }).await;
    let flagged = flags().await;
    assert_eq!(flagged.len(), 1, "{flagged:?}");
    assert_eq!(flagged[0]["message"]["id"], seen.end["id"], "{flagged:?}");
}

/// AGENT-5 with a remote guard (a guard agent): the answer is held whole, screened, and on
/// DENY never reaches a reader — no delta with its text on the gateway — and a notice is
/// posted instead.
async fn a_remotely_guarded_answer_is_held_and_screened_before_anyone_sees_it(h: Agented) {
    let app = &h.app;
    let s = scene(&h, json!({})).await;
    let sentinel = make_agent(&h, &s.org, &s.alice, "Sentinel", json!({})).await;
    let guard = json!({"name": "Sentinel guard", "kind": "agent", "mode": "block",
                       "agent_id": sentinel["id"], "fail": "closed"});
    app.post(&org_path(&s.org, "/guards"), &s.alice.token, guard)
        .await
        .expect(201);
    let (mut bob, _) = Ws::identify(app, &s.bob.token).await;
    let (mut alice, _) = Ws::identify(app, &s.alice.token).await;
    // Bob's question is allowed, Helper's answer streamed, then denied; the notice allowed.
    h.llm.answer(Script::says(&["ALLOW"]));
    h.llm
        .answer(Script::says(&["the secret ", "launch ", "codes"]));
    h.llm.answer(Script::says(&["DENY"]));
    h.llm.by_default(Script::says(&["ALLOW"]));
    app.says(&s.conv, &s.bob, "@Helper tell me").await;
    for ws in [&mut bob, &mut alice] {
        let seen = answer_on(ws, &s.agent_user).await;
        assert_eq!(seen.end["status"], "failed", "{}", seen.end);
        assert_eq!(seen.end["status_reason"], "content_blocked");
        assert_eq!(seen.deltas, "", "no delta went out");
        assert!(!seen.end["content"]
            .as_str()
            .unwrap_or("")
            .contains("secret"));
        let notice = answer_on(ws, &s.agent_user).await;
        assert_eq!(
            notice.end["content"],
            "I can't show my answer: this organization's content guards do not allow it."
        );
    }
    // The guard agent was asked about the whole answer.
    let seen = h.llm.requests();
    assert!(seen.len() >= 3);
    assert_eq!(seen[1].body["stream"], true);
    let screened = seen[2].body["messages"][1]["content"].as_str().unwrap();
    assert!(screened.contains("the secret launch codes"), "{screened}");
    // Nothing of it is stored either.
    let texts: Vec<Value> = app
        .items(&conv_path(&s.conv, "/messages?limit=100"), &s.alice.token)
        .await;
    assert!(texts
        .iter()
        .all(|m| !m["content"].as_str().unwrap_or("").contains("secret")));
}

/// AGENT-3, AGENT-4, AGENT-5: with a remote guard an answer is held back until the provider
/// ends, then screened whole — and a stop meanwhile still ends it at once: the provider's
/// stream is dropped at its next delta (not charged for minutes more) and the stopped text is
/// never sent to the moderation endpoint. Before, nothing asked about a stop until the
/// provider had finished; the stopped answer was then screened all the same.
async fn a_held_answer_stopped_is_dropped_and_never_screened(m: Moderated) {
    let Moderated { h, moderator } = &m;
    let app = &h.app;
    let s = scene(h, json!({})).await;
    let guard = json!({"name": "Moderation", "kind": "moderation_endpoint", "mode": "block",
                       "url": moderator.url(), "fail": "closed"});
    app.post(&org_path(&s.org, "/guards"), &s.alice.token, guard)
        .await
        .expect(201);
    let budget = org_path(&s.org, "/agent-budget");
    let reserved = || super::limits::reserved(app, &budget, &s.alice);
    // Fifteen seconds of deltas.
    h.llm.answer(Script::Stream {
        chunks: vec!["tock "; 150],
        delay: Duration::from_millis(100),
        usage: (5, 5),
    });
    let (mut bob, _) = Ws::identify(app, &s.bob.token).await;
    app.says(&s.conv, &s.bob, "@Helper count").await;
    let id = loop {
        let e = bob.event().await;
        let d = &e["d"];
        if e["t"] == "MESSAGE_CREATE" && d["author"]["id"] == s.agent_user.as_str() {
            assert_eq!(d["status"], "streaming");
            break d["id"].as_str().unwrap().to_owned();
        }
    };
    // Once the provider streams (nothing of it shown: it is held for screening), Bob stops it.
    crate::widget::eventually("the provider asked", || async {
        !h.llm.requests().is_empty()
    })
    .await;
    app.post_empty(&format!("/api/v1/messages/{id}/stop"), &s.bob.token)
        .await
        .expect(200);
    let seen = answer_on(&mut bob, &s.agent_user).await;
    assert_eq!(seen.end["status"], "stopped");
    assert_eq!(seen.deltas, "");
    // The provider's stream is dropped long before its end, and the answer's task is done.
    crate::widget::eventually("the provider's stream dropped", || async {
        h.llm.cut_short() == 1
    })
    .await;
    crate::widget::eventually("the answer's tokens settled", || async {
        reserved().await == 0
    })
    .await;
    // The moderation endpoint screened Bob's question, never the stopped answer.
    let screened: Vec<Value> = (moderator.seen.lock().unwrap().iter())
        .map(|(_, body)| body.clone())
        .collect();
    assert_eq!(screened, vec![json!({"input": "@Helper count"})]);
    let got = app
        .items(&conv_path(&s.conv, "/messages"), &s.bob.token)
        .await;
    assert_eq!(got[0]["id"], id.as_str());
    assert_eq!(got[0]["status"], "stopped");
    assert_eq!(got[0]["content"], "");
}
