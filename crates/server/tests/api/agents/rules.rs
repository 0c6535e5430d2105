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
