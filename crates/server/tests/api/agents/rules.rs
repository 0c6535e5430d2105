//! AGENT-2, when an agent answers: every message in a direct conversation with it; in a group
//! an `@name` mention or a reply to one of its messages; never a bot's or its own message, a
//! deleted one, or in a conversation it has left; and a deleted agent never again. Decided by
//! the node's services (`agent_tasks`), then proven end to end once.

use super::answers::{answer_on, scene};
use super::*;
use crate::ws::Ws;
use conclave_core::agent::Trigger;
use conclave_core::{ConversationId, MessageId};

crate::both_backends!(
    with crate::agents::agented;
    agents_answer_mentions_replies_and_direct_messages_only,
    an_agent_that_may_not_post_is_not_asked,
);

fn ids(conv: &str, msg: &str) -> (ConversationId, MessageId) {
    (
        ConversationId(uuid::Uuid::parse_str(conv).unwrap()),
        MessageId(uuid::Uuid::parse_str(msg).unwrap()),
    )
}

impl Agented {
    /// Why the agents answer message `msg` of `conv` (one entry per answering agent).
    async fn triggers(&self, conv: &str, msg: &str) -> Vec<Trigger> {
        let (c, m) = ids(conv, msg);
        let tasks = self.app.services.agent_tasks(c, m).await.unwrap();
        tasks.into_iter().map(|t| t.trigger).collect()
    }
}

async fn agents_answer_mentions_replies_and_direct_messages_only(h: Agented) {
    let app = &h.app;
    let s = scene(&h, json!({})).await;
    let (mut bob, _) = Ws::identify(app, &s.bob.token).await;
    let said = |text: &'static str| app.says(&s.conv, &s.bob, text);
    // Plain messages and near misses do not call it; a mention does, in any case.
    for text in [
        "hello all",
        "helper?",
        "me@helper.org",
        "@helpers",
        "@Helper-2",
    ] {
        let id = said(text).await.id();
        assert!(h.triggers(&s.conv, &id).await.is_empty(), "{text}");
    }
    let id = said("hey @HELPER, a question").await.id();
    assert_eq!(h.triggers(&s.conv, &id).await, [Trigger::Mention]);
    let answer = answer_on(&mut bob, &s.agent_user).await.end;
    assert_eq!(answer["reply_to"], id.as_str());

    // A reply to its message calls it; a reply to someone else's does not.
    let asked = said("@Helper first").await.id();
    let answer = answer_on(&mut bob, &s.agent_user).await.end;
    assert_eq!(answer["reply_to"], asked.as_str());
    let answer_id = answer["id"].as_str().unwrap();
    let replies = |by: &User, text: &str, to: &str| {
        let body = json!({"content": text, "reply_to": to});
        let (path, token) = (conv_path(&s.conv, "/messages"), by.token.clone());
        async move { app.post(&path, &token, body).await.expect(201).id() }
    };
    let reply = replies(&s.bob, "and then?", answer_id).await;
    assert_eq!(h.triggers(&s.conv, &reply).await, [Trigger::Reply]);
    let to_bob = replies(&s.alice, "no", &reply).await;
    assert!(h.triggers(&s.conv, &to_bob).await.is_empty());
    // Its own message never calls it.
    assert!(h.triggers(&s.conv, answer_id).await.is_empty());

    // A bot's message never does, mention or not.
    let bot = crate::bots::make_bot(app, &s.org, &s.alice, json!({"name": "b"})).await;
    app.add_participant(&s.conv, &s.alice, &bot.user_id).await;
    let from_bot = app
        .as_bot(
            reqwest::Method::POST,
            &conv_path(&s.conv, "/messages"),
            &bot.token,
            Some(json!({"content": "@Helper loop with me"})),
        )
        .await
        .expect(201)
        .id();
    assert!(h.triggers(&s.conv, &from_bot).await.is_empty());

    // A deleted message does not.
    let gone = said("@Helper never mind").await.id();
    app.delete(&format!("/api/v1/messages/{gone}"), &s.bob.token)
        .await
        .expect(204);
    assert!(h.triggers(&s.conv, &gone).await.is_empty());

    // In a direct conversation with it, every message does.
    let direct = app
        .post(
            &org_path(&s.org, "/conversations"),
            &s.bob.token,
            json!({"kind": "direct", "participant_ids": [s.agent_user]}),
        )
        .await
        .expect(201)
        .id();
    let plain = app.says(&direct, &s.bob, "just text").await.id();
    assert_eq!(h.triggers(&direct, &plain).await, [Trigger::Direct]);

    // Removed from the group, it answers nothing there any more.
    let out = conv_path(&s.conv, &format!("/participants/{}", s.agent_user));
    app.delete(&out, &s.alice.token).await.expect(204);
    let id = said("@Helper are you there?").await.id();
    assert!(h.triggers(&s.conv, &id).await.is_empty());

    // Deleted, it answers nothing anywhere; its messages stay.
    let one = format!("{}/{}", agents(&s.org), s.agent["id"].as_str().unwrap());
    app.delete(&one, &s.alice.token).await.expect(204);
    let id = app.says(&direct, &s.bob, "hello?").await.id();
    assert!(h.triggers(&direct, &id).await.is_empty());
    let kept = app
        .get(
            &format!("/api/v1/messages/{answer_id}/history"),
            &s.bob.token,
        )
        .await;
    assert_ne!(kept.status.as_u16(), 404, "{}", kept.body);
}

/// AZ-2 for agents: an agent made a Viewer, or in an archived conversation, is still mentioned
/// but never asked (no model call, no tokens held), and could not open an answer there.
async fn an_agent_that_may_not_post_is_not_asked(h: Agented) {
    let app = &h.app;
    let s = scene(&h, json!({})).await;
    let other = make_agent(&h, &s.org, &s.alice, "Other", json!({}));
    let other_user = other.await["user_id"].as_str().unwrap().to_owned();
    app.add_participant(&s.conv, &s.alice, &other_user).await;
    // Whether each agent mentioned by `msg` would be asked now, by agent user, sorted.
    let asked = |msg: String| {
        let conv = s.conv.clone();
        async move {
            let (c, m) = ids(&conv, &msg);
            let mut found = Vec::new();
            for task in app.services.agent_tasks(c, m).await.unwrap() {
                let prepared = app.services.prepare_agent_call(&task).await.unwrap();
                found.push((task.agent.user_id.0.to_string(), prepared.is_some()));
            }
            found.sort();
            found
        }
    };
    let expect = |helper: bool, other: bool| {
        let mut want = vec![(s.agent_user.clone(), helper), (other_user.clone(), other)];
        want.sort();
        want
    };
    let member = org_path(&s.org, &format!("/members/{}", s.agent_user));
    app.patch(&member, &s.alice.token, json!({"role": "viewer"}))
        .await
        .expect(200);
    let (mut bob, _) = Ws::identify(app, &s.bob.token).await;
    let both = app.says(&s.conv, &s.bob, "@Helper @Other hi").await.id();
    // Other answers; Helper, a Viewer, is mentioned but not asked: one model call, no tokens
    // held once the answer is told.
    let answer = answer_on(&mut bob, &other_user).await.end;
    assert_eq!(answer["reply_to"], both.as_str());
    assert_eq!(asked(both).await, expect(false, true));
    assert_eq!(h.llm.requests().len(), 1);
    let budget = app
        .get(&org_path(&s.org, "/agent-budget"), &s.alice.token)
        .await
        .expect(200)
        .body;
    assert_eq!(budget["reserved"], 0, "{budget}");
    // An archived conversation: mentioned before the archive, neither is asked after it.
    app.patch(&member, &s.alice.token, json!({"role": "member"}))
        .await
        .expect(200);
    let before = app.says(&s.conv, &s.alice, "@Helper @Other bye").await.id();
    assert_eq!(asked(before.clone()).await, expect(true, true));
    app.update_conversation(&s.conv, &s.alice, json!({"archived": true}))
        .await
        .expect(200);
    assert_eq!(
        asked(before).await,
        expect(false, false),
        "not in an archive"
    );
}
