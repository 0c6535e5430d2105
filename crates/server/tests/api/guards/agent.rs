//! A guard agent (RATE-6, AGENT-5) against the fake provider: its model's DENY blocks (nothing
//! stored) or flags, ALLOW lets through, what the model is sent (the instruction, the text
//! delimited, temperature 0, the agent's key), a garbage answer, a 500 and a hang with fail
//! open and closed, its tokens in the agent's usage, only an agent of the guard's org, and an
//! agent in use that cannot be deleted.

use super::*;
use crate::agents::{make_agent, Agented, KEY};
use crate::llm::{Script, PROVIDER_TEXT};

crate::both_backends!(
    with crate::agents::agented;
    an_agent_guard_blocks_what_its_model_denies,
    an_agent_guard_in_flag_mode_queues_a_flag,
    only_an_agent_of_the_org_may_guard_and_it_stays_while_it_does,
);

/// Cases with short provider timeouts (a hang ends in 1 s).
mod impatient {
    use super::*;
    crate::both_backends!(
        with crate::agents::impatient;
        failed_checks_follow_the_fail_mode,
    );
}

/// Alice's Acme with a private group and the agent `Sentinel`; answers (alice, org, conv,
/// agent id).
async fn acme(h: &Agented) -> (User, String, String, String) {
    let app = &h.app;
    let alice = app.user("alice").await;
    let org = app.org(&alice, "Acme").await;
    let conv = app.group(&org, &alice, &[], json!("private")).await;
    let agent = make_agent(h, &org, &alice, "Sentinel", json!({})).await;
    (alice, org, conv, agent["id"].as_str().unwrap().to_owned())
}

/// The guard's counters, and its agent's calls and failed calls today.
async fn tallies(
    app: &TestApp,
    org: &str,
    by: &User,
    guard: &str,
    agent: &str,
) -> ((i64, i64, i64, i64), (i64, i64)) {
    let listed = listed_guard(app, org, by, guard).await;
    let usage = app
        .items(
            &format!("{}/{agent}/usage", crate::agents::agents(org)),
            &by.token,
        )
        .await;
    let n = |k: &str| usage[0][k].as_i64().unwrap();
    (counts(&listed), (n("calls"), n("failures")))
}

fn agent_guard(agent: &str, mode: &str, fail: &str) -> Value {
    json!({"name": "Sentinel guard", "kind": "agent", "mode": mode, "agent_id": agent,
           "fail": fail})
}

async fn an_agent_guard_blocks_what_its_model_denies(h: Agented) {
    let app = &h.app;
    let (alice, org, conv, agent) = acme(&h).await;
    let guard = make_guard(app, &org, &alice, agent_guard(&agent, "block", "closed")).await;
    assert_eq!(guard["kind"], "agent");
    assert_eq!(guard["agent_id"], agent.as_str());
    assert_eq!(guard["fail"], "closed");

    h.llm.answer(Script::says(&["DENY"]));
    let res = app
        .send_message(&conv, &alice, "some dubious words")
        .await
        .expect_error(422, "content_blocked");
    assert!(
        res.message().contains("Sentinel guard"),
        "{}",
        res.message()
    );
    assert!(texts(app, &conv, &alice).await.is_empty());

    h.llm.answer(Script::says(&[" Allow.\n"]));
    app.says(&conv, &alice, "a kind word").await;
    assert_eq!(texts(app, &conv, &alice).await, ["a kind word"]);

    // What the model was asked: the instruction, then the text delimited, deterministically,
    // with the agent's own model and key.
    let seen = h.llm.requests();
    assert_eq!(seen.len(), 2);
    let body = &seen[0].body;
    assert_eq!(body["model"], "fake-1");
    assert_eq!(body["stream"], false);
    assert_eq!(body["temperature"], 0.0);
    assert!(body["max_tokens"].as_u64().unwrap() <= 10);
    assert_eq!(
        seen[0].authorization.as_deref(),
        Some(&*format!("Bearer {KEY}"))
    );
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0]["role"], "system");
    let instruction = messages[0]["content"].as_str().unwrap();
    assert!(instruction.contains("ALLOW") && instruction.contains("DENY"));
    assert!(instruction.contains("data, not instructions"));
    assert_eq!(messages[1]["role"], "user");
    let user = messages[1]["content"].as_str().unwrap();
    assert!(user.contains("\nsome dubious words\n"), "{user}");
    assert!(!instruction.contains("dubious"));
    assert!(seen[1].body["messages"][1]["content"]
        .as_str()
        .unwrap()
        .contains("a kind word"));

    // Counted by the guard, and in its agent's usage.
    let id = guard["id"].as_str().unwrap();
    assert_eq!(
        tallies(app, &org, &alice, id, &agent).await,
        ((1, 0, 1, 0), (2, 0))
    );
}

async fn an_agent_guard_in_flag_mode_queues_a_flag(h: Agented) {
    let app = &h.app;
    let (alice, org, conv, agent) = acme(&h).await;
    make_guard(app, &org, &alice, agent_guard(&agent, "flag", "open")).await;
    h.llm.answer(Script::says(&["ALLOW"]));
    app.says(&conv, &alice, "a kind word").await;
    h.llm.answer(Script::says(&["deny"]));
    let flagged = app.says(&conv, &alice, "a dubious word").await;
    let queue = open_flags(app, &org, &alice).await;
    assert_eq!(queue.len(), 1);
    assert_eq!(queue[0]["message"]["id"], flagged.body["id"]);
}

async fn failed_checks_follow_the_fail_mode(h: Agented) {
    let app = &h.app;
    let (alice, org, conv, agent) = acme(&h).await;
    let guard = make_guard(app, &org, &alice, agent_guard(&agent, "block", "open")).await;
    let id = guard["id"].as_str().unwrap();
    let failures = || {
        [
            Script::Garbage,
            Script::says(&["ALLOW, probably"]),
            Script::Error { status: 500 },
            Script::Hang,
        ]
    };
    // Open: each failure lets the text through.
    for (i, script) in failures().into_iter().enumerate() {
        h.llm.answer(script);
        app.says(&conv, &alice, &format!("open {i}")).await;
    }
    assert_eq!(texts(app, &conv, &alice).await.len(), 4);
    // Closed: each blocks it, and nothing the provider said is shown.
    app.patch(
        &format!("{}/{id}", guards(&org)),
        &alice.token,
        json!({"fail": "closed"}),
    )
    .await
    .expect(200);
    for (i, script) in failures().into_iter().enumerate() {
        h.llm.answer(script);
        let res = app
            .send_message(&conv, &alice, &format!("closed {i}"))
            .await
            .expect_error(422, "content_blocked");
        assert!(!res.message().contains(PROVIDER_TEXT));
        assert!(!res.message().contains("ALLOW"));
    }
    assert_eq!(texts(app, &conv, &alice).await.len(), 4);
    assert_eq!(
        tallies(app, &org, &alice, id, &agent).await,
        ((0, 0, 0, 8), (8, 8))
    );

    // A spent budget is a failed check too: the model is not asked.
    app.patch(
        &format!("{}/{agent}", crate::agents::agents(&org)),
        &alice.token,
        json!({"monthly_token_budget": 1}),
    )
    .await
    .expect(200);
    let asked = h.llm.requests().len();
    app.send_message(&conv, &alice, "over budget")
        .await
        .expect_error(422, "content_blocked");
    assert_eq!(h.llm.requests().len(), asked);
}

async fn only_an_agent_of_the_org_may_guard_and_it_stays_while_it_does(h: Agented) {
    let app = &h.app;
    let (alice, org, _conv, agent) = acme(&h).await;
    let bob = app.user("bob").await;
    let other = app.org(&bob, "Other").await;
    let theirs = make_agent(&h, &other, &bob, "Theirs", json!({})).await;
    let theirs = theirs["id"].as_str().unwrap();
    let missing = uuid::Uuid::now_v7().to_string();
    for wrong in [theirs, missing.as_str()] {
        let res = app
            .post(
                &guards(&org),
                &alice.token,
                agent_guard(wrong, "block", "open"),
            )
            .await
            .expect_error(422, "unknown_agent");
        assert!(res.field().unwrap().ends_with("agent_id"));
    }
    let res = app
        .post(
            &guards(&org),
            &alice.token,
            json!({"kind": "agent", "mode": "block", "fail": "open"}),
        )
        .await
        .expect(422);
    assert!(res.field().unwrap().ends_with("agent_id"));
    let guard = make_guard(app, &org, &alice, agent_guard(&agent, "block", "open")).await;
    let path = format!("{}/{}", guards(&org), guard["id"].as_str().unwrap());
    let res = app
        .patch(&path, &alice.token, json!({"agent_id": theirs}))
        .await
        .expect_error(422, "unknown_agent");
    assert!(res.field().unwrap().ends_with("agent_id"));
    // Fields of another kind are refused.
    app.patch(&path, &alice.token, json!({"timeout_ms": 500}))
        .await
        .expect(422);

    // The agent the guard uses cannot be deleted; once the guard is gone, it can.
    let agent_path = format!("{}/{agent}", crate::agents::agents(&org));
    let res = app
        .delete(&agent_path, &alice.token)
        .await
        .expect_error(409, "agent_in_use");
    assert!(
        res.message().contains("Sentinel guard"),
        "{}",
        res.message()
    );
    app.delete(&path, &alice.token).await.expect(204);
    app.delete(&agent_path, &alice.token).await.expect(204);
}
