//! AGENT-4: over a budget or the per-user invocation limit the model is not called and the
//! agent posts a notice; ~100 triggers at once against a small budget never spend past it.

use super::answers::{answer_on, scene};
use super::*;
use crate::llm::Script;
use crate::ws::Ws;
use std::time::Duration;

crate::both_backends!(
    with crate::agents::agented;
    a_spent_budget_gets_a_notice_and_no_model_call,
    concurrent_triggers_never_spend_past_the_budget,
);

/// Cases on an app set up otherwise.
mod other_setup {
    use super::*;
    crate::both_backends!(
        with crate::agents::limited;
        each_user_may_call_an_agent_a_few_times_a_minute,
    );
}

/// Cases with one model call at a time on the node.
mod one_slot {
    use super::*;
    crate::both_backends!(
        with crate::agents::limits::one_at_a_time;
        an_answer_that_cannot_start_gives_its_tokens_back,
        a_question_changed_while_it_waits_is_read_again,
    );
}

/// Cases with one model call at a time and a second provider.
mod two_origins {
    use super::*;
    crate::both_backends!(
        with crate::agents::two_providers;
        a_key_stored_while_an_answer_waits_goes_only_with_its_endpoint,
    );
}

/// One agent call at a time on the node (`agent_max_concurrent = 1`).
pub(crate) async fn one_at_a_time(backend: Backend) -> Option<Agented> {
    crate::agents::agented_with(backend, |c| c.agent_max_concurrent = 1).await
}

const ORG_NOTICE: &str =
    "I can't answer now: this organization's monthly AI token budget is used up.";
const AGENT_NOTICE: &str = "I can't answer now: my monthly AI token budget is used up.";

async fn a_spent_budget_gets_a_notice_and_no_model_call(h: Agented) {
    let app = &h.app;
    let s = scene(&h, json!({})).await;
    let (mut bob, _) = Ws::identify(app, &s.bob.token).await;
    let budget = org_path(&s.org, "/agent-budget");
    app.put(&budget, &s.alice.token, json!({"monthly_token_budget": 0}))
        .await
        .expect(200);
    app.says(&s.conv, &s.bob, "@Helper hi").await;
    let seen = answer_on(&mut bob, &s.agent_user).await;
    assert_eq!(seen.end["content"], ORG_NOTICE);
    assert_eq!(seen.end["status"], "complete");
    assert!(seen.deltas.is_empty(), "a notice is not streamed");
    // The agent's own budget: the same, with its own notice.
    app.put(
        &budget,
        &s.alice.token,
        json!({"monthly_token_budget": null}),
    )
    .await
    .expect(200);
    let one = format!("{}/{}", agents(&s.org), s.agent["id"].as_str().unwrap());
    app.patch(&one, &s.alice.token, json!({"monthly_token_budget": 10}))
        .await
        .expect(200);
    app.says(&s.conv, &s.bob, "@Helper hi").await;
    let seen = answer_on(&mut bob, &s.agent_user).await;
    assert_eq!(seen.end["content"], AGENT_NOTICE);
    assert!(h.llm.requests().is_empty(), "the model was never called");
    // With room again it answers.
    app.patch(&one, &s.alice.token, json!({"monthly_token_budget": null}))
        .await
        .expect(200);
    app.says(&s.conv, &s.bob, "@Helper hi").await;
    let seen = answer_on(&mut bob, &s.agent_user).await;
    assert_eq!(seen.end["content"], "Hello there");
    assert_eq!(h.llm.requests().len(), 1);
}

async fn concurrent_triggers_never_spend_past_the_budget(h: Agented) {
    let app = &h.app;
    let s = scene(&h, json!({"max_output_tokens": 100})).await;
    // Each call uses 100 tokens; the org may spend 1000 a month: at most ten calls.
    h.llm.by_default(Script::Stream {
        chunks: vec!["ok"],
        delay: Duration::ZERO,
        usage: (60, 40),
    });
    let budget = org_path(&s.org, "/agent-budget");
    app.put(
        &budget,
        &s.alice.token,
        json!({"monthly_token_budget": 1000}),
    )
    .await
    .expect(200);
    let (mut bob, _) = Ws::identify(app, &s.bob.token).await;
    let n = 100;
    let texts: Vec<String> = (0..n).map(|i| format!("@Helper {i}")).collect();
    let sends = texts.iter().map(|t| app.send_message(&s.conv, &s.bob, t));
    for res in futures::future::join_all(sends).await {
        res.expect(201);
    }
    let (mut answered, mut notices) = (0, 0);
    for _ in 0..n {
        let seen = answer_on(&mut bob, &s.agent_user).await;
        if seen.end["content"] == ORG_NOTICE {
            notices += 1;
        } else {
            assert_eq!(seen.end["status"], "complete", "{}", seen.end);
            answered += 1;
        }
    }
    let calls = h.llm.requests().len();
    assert_eq!(answered, calls);
    assert!(
        calls <= 10,
        "{calls} calls of 100 tokens against a budget of 1000"
    );
    assert!(notices >= n - 10);
    let state = app.get(&budget, &s.alice.token).await.expect(200).body;
    assert_eq!(state["reserved"], 0, "{state}");
    let used = state["used"].as_i64().unwrap();
    assert_eq!(used, 100 * calls as i64);
    assert!(used <= 1000);
}

async fn each_user_may_call_an_agent_a_few_times_a_minute(h: Agented) {
    let app = &h.app;
    let s = scene(&h, json!({})).await;
    let (mut bob, _) = Ws::identify(app, &s.bob.token).await;
    for _ in 0..2 {
        app.says(&s.conv, &s.bob, "@Helper hi").await;
        assert_eq!(
            answer_on(&mut bob, &s.agent_user).await.end["content"],
            "Hello there"
        );
    }
    app.says(&s.conv, &s.bob, "@Helper hi").await;
    let seen = answer_on(&mut bob, &s.agent_user).await;
    assert_eq!(
        seen.end["content"],
        "I can't answer now: you have asked me too often in the last minute. Try again shortly."
    );
    assert_eq!(h.llm.requests().len(), 2);
    // Another user has their own allowance.
    app.says(&s.conv, &s.alice, "@Helper hi").await;
    assert_eq!(
        answer_on(&mut bob, &s.agent_user).await.end["content"],
        "Hello there"
    );
    // A minute later Bob may again.
    app.clock.advance(chrono::Duration::seconds(61));
    app.says(&s.conv, &s.bob, "@Helper hi").await;
    assert_eq!(
        answer_on(&mut bob, &s.agent_user).await.end["content"],
        "Hello there"
    );
    assert_eq!(h.llm.requests().len(), 4);
}

/// The tokens the org's agents hold now.
pub(super) async fn reserved(app: &TestApp, budget: &str, owner: &User) -> i64 {
    let state = app.get(budget, &owner.token).await.expect(200).body;
    state["reserved"].as_i64().unwrap()
}

/// Makes answers slow (half a second a piece) and has bob ask in `s`'s conversation: answers
/// his socket once that answer has started — it holds the node's one model slot.
async fn slot_taken(h: &Agented, s: &super::answers::Scene) -> Ws {
    h.llm.by_default(Script::Stream {
        chunks: vec!["a slow", " answer"],
        delay: Duration::from_millis(500),
        usage: (60, 40),
    });
    let (mut bob, _) = Ws::identify(&h.app, &s.bob.token).await;
    h.app.says(&s.conv, &s.bob, "@Helper first").await;
    loop {
        let e = bob.event().await;
        let d = &e["d"];
        if e["t"] == "MESSAGE_CREATE" && d["author"]["id"] == s.agent_user.as_str() {
            assert_eq!(d["conversation_id"], s.conv.as_str());
            return bob;
        }
    }
}

/// AGENT-4: tokens held for an answer that cannot start — its conversation deleted while it
/// waited for a model slot — are given back, not kept for the month.
async fn an_answer_that_cannot_start_gives_its_tokens_back(h: Agented) {
    let app = &h.app;
    let s = scene(&h, json!({"max_output_tokens": 100})).await;
    let other = app
        .group(&s.org, &s.alice, &[&s.bob], json!("private"))
        .await;
    app.add_participant(&other, &s.alice, &s.agent_user).await;
    let budget = org_path(&s.org, "/agent-budget");
    let reserved = || reserved(app, &budget, &s.alice);
    let mut bob = slot_taken(&h, &s).await;
    app.says(&other, &s.bob, "@Helper second").await;
    // Both hold their tokens (at least their 100 output tokens each): the first answers, the
    // second waits for the slot. Its conversation goes meanwhile.
    crate::widget::eventually("both reservations", || async { reserved().await >= 200 }).await;
    app.delete(&format!("/api/v1/conversations/{other}"), &s.alice.token)
        .await
        .expect(204);
    let first = answer_on(&mut bob, &s.agent_user).await;
    assert_eq!(first.end["content"], "a slow answer");
    crate::widget::eventually("the tokens given back", || async { reserved().await == 0 }).await;
    let state = app.get(&budget, &s.alice.token).await.expect(200).body;
    assert_eq!(state["used"], 100, "only the answer given counts: {state}");
    assert_eq!(h.llm.requests().len(), 1);
}

/// AGENT-2, MSG-2, DATA-6: a question deleted while it waited for a model slot is never sent
/// to the model (its tokens come back, no answer is posted), and one edited meanwhile is sent
/// as it reads now. Before, the context read when the question came was sent as it was.
async fn a_question_changed_while_it_waits_is_read_again(h: Agented) {
    let app = &h.app;
    let s = scene(&h, json!({"max_output_tokens": 100})).await;
    let mut others = Vec::new();
    for _ in 0..2 {
        let c = app
            .group(&s.org, &s.alice, &[&s.bob], json!("private"))
            .await;
        app.add_participant(&c, &s.alice, &s.agent_user).await;
        others.push(c);
    }
    let budget = org_path(&s.org, "/agent-budget");
    let reserved = || reserved(app, &budget, &s.alice);
    slot_taken(&h, &s).await;
    let secret = app
        .says(&others[0], &s.bob, "@Helper the vault code is 7781")
        .await
        .id();
    let edited = app
        .says(&others[1], &s.bob, "@Helper what was said before")
        .await
        .id();
    crate::widget::eventually("three reservations", || async { reserved().await >= 300 }).await;
    app.delete(&format!("/api/v1/messages/{secret}"), &s.bob.token)
        .await
        .expect(204);
    app.patch(
        &format!("/api/v1/messages/{edited}"),
        &s.bob.token,
        json!({"content": "@Helper what it says now"}),
    )
    .await
    .expect(200);
    crate::widget::eventually("the answers done", || async { reserved().await == 0 }).await;
    let sent: Vec<String> = h
        .llm
        .requests()
        .iter()
        .map(|r| r.body.to_string())
        .collect();
    assert!(sent.iter().all(|b| !b.contains("7781")), "{sent:?}");
    assert!(
        sent.iter().all(|b| !b.contains("what was said before")),
        "{sent:?}"
    );
    assert!(
        sent.iter().any(|b| b.contains("what it says now")),
        "{sent:?}"
    );
    // No answer to the deleted question.
    let answers = app
        .items(&conv_path(&others[0], "/messages"), &s.bob.token)
        .await;
    assert!(
        answers
            .iter()
            .all(|m| m["author"]["id"] != s.agent_user.as_str()),
        "{answers:?}"
    );
}

/// DATA-3, AGENT-1 (R6 under concurrency): an answer waiting for the node's one model slot
/// while an admin moves the agent to another provider with a new key is sent to the new
/// provider with the new key — the old provider never receives it. Before, the waiting answer
/// took the endpoint (and model, limits) of the copy read when the question came, and the key
/// of a fresh read made when its slot came: the new key went to the old provider.
async fn a_key_stored_while_an_answer_waits_goes_only_with_its_endpoint(t: TwoProviders) {
    const NEW_KEY: &str = "sk-test-9876543210-NEWKEYFORTHEOTHER";
    let TwoProviders { h, other } = &t;
    let app = &h.app;
    let s = scene(h, json!({"max_output_tokens": 100})).await;
    let budget = org_path(&s.org, "/agent-budget");
    let reserved = || reserved(app, &budget, &s.alice);
    // A slow first answer (about 4 s) holds the slot.
    h.llm.answer(Script::Stream {
        chunks: vec!["slow "; 8],
        delay: Duration::from_millis(500),
        usage: (60, 40),
    });
    let (mut bob, _) = Ws::identify(app, &s.bob.token).await;
    app.says(&s.conv, &s.bob, "@Helper first").await;
    loop {
        let e = bob.event().await;
        if e["t"] == "MESSAGE_CREATE" && e["d"]["author"]["id"] == s.agent_user.as_str() {
            break;
        }
    }
    // The second answer holds its tokens and waits for the slot; the agent moves meanwhile.
    app.says(&s.conv, &s.bob, "@Helper second").await;
    crate::widget::eventually("both reservations", || async { reserved().await >= 200 }).await;
    let one = format!("{}/{}", agents(&s.org), s.agent["id"].as_str().unwrap());
    let moved = json!({"endpoint": other.url(), "api_key": NEW_KEY});
    app.patch(&one, &s.alice.token, moved).await.expect(200);
    assert!(
        h.llm.requests().len() == 1 && other.requests().is_empty(),
        "the second answer was still waiting when the agent moved"
    );
    crate::widget::eventually("the answers done", || async { reserved().await == 0 }).await;
    let keys = |llm: &crate::llm::FakeLlm| -> Vec<Option<String>> {
        llm.requests()
            .into_iter()
            .map(|r| r.authorization)
            .collect()
    };
    assert_eq!(
        keys(&h.llm),
        vec![Some(format!("Bearer {KEY}"))],
        "the old provider got the first question, with the old key, and nothing else"
    );
    assert_eq!(keys(other), vec![Some(format!("Bearer {NEW_KEY}"))]);
}
