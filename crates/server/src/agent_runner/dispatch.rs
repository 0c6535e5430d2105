//! Which messages reach the agents (AGENT-2): [`AgentTap`] sits in this node's event sink, in
//! front of the webhook tap, and hands each person's committed `MESSAGE_CREATE` — made on this
//! node, so a cluster answers once — to the dispatcher with a non-blocking channel send: the
//! message path pays a JSON field read and a `try_send`. The dispatcher task asks the services
//! which agents answer (from this node's cache; an org without agents costs one lookup) and
//! starts one runner task per answer.

use super::runner;
use crate::state::AppState;
use conclave_core::event::{Audience, Event, EventKind, EventSink};
use conclave_core::service::widget::VISITOR_USERNAME_PREFIX;
use conclave_core::types::UserKind;
use conclave_core::{ConversationId, MessageId};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Messages waiting for the dispatcher; past this the newest are dropped (and logged).
pub const QUEUE_CAPACITY: usize = 4096;

/// A message that may call an agent: its conversation and id.
pub type Trigger = (ConversationId, MessageId);

/// This node's event sink in front of `inner`: hands people's new messages to the dispatcher,
/// passes every event on.
pub struct AgentTap {
    inner: Arc<dyn EventSink>,
    queue: mpsc::Sender<Trigger>,
}

/// The tap in front of `inner`, and the receiving end the dispatcher drains.
#[must_use]
pub fn tap(inner: Arc<dyn EventSink>) -> (AgentTap, mpsc::Receiver<Trigger>) {
    let (queue, rx) = mpsc::channel(QUEUE_CAPACITY);
    (AgentTap { inner, queue }, rx)
}

/// The fields of a `MESSAGE_CREATE` payload the tap reads (the rest is skipped, not built).
#[derive(serde::Deserialize)]
struct Created<'a> {
    id: MessageId,
    #[serde(borrow)]
    author: Author<'a>,
}

#[derive(serde::Deserialize)]
struct Author<'a> {
    kind: UserKind,
    #[serde(default, borrow)]
    username: std::borrow::Cow<'a, str>,
}

/// The trigger an event carries: a person's new message (bots and agents never call agents),
/// or a support widget visitor's (written by the widget key's `visitor-…` bot, WEB-4; the
/// services answer it only in that key's conversations while they are `bot`).
fn trigger_of(event: &Event) -> Option<Trigger> {
    if event.kind != EventKind::MessageCreate {
        return None;
    }
    let Audience::Conversation(conv) = event.audience else {
        return None;
    };
    let created: Created<'_> = event.d.read()?;
    let person = match created.author.kind {
        UserKind::User => true,
        UserKind::Bot => created.author.username.starts_with(VISITOR_USERNAME_PREFIX),
    };
    person.then_some((conv, created.id))
}

impl EventSink for AgentTap {
    fn publish(&self, event: Event) {
        if let Some(trigger) = trigger_of(&event) {
            if self.queue.try_send(trigger).is_err() {
                tracing::error!("agent queue full: a message was not offered to agents");
            }
        }
        self.inner.publish(event);
    }
}

/// Runs until the channel closes: each message's answers, each in its own task;
/// `per_minute` is the per-user invocation limit of each agent.
pub async fn run(mut rx: mpsc::Receiver<Trigger>, state: AppState, per_minute: u64) {
    while let Some((conv, id)) = rx.recv().await {
        match state.services.agent_tasks(conv, id).await {
            Ok(tasks) => {
                for task in tasks {
                    let state = state.clone();
                    tokio::spawn(async move { runner::answer(&state, task, per_minute).await });
                }
            }
            Err(e) => tracing::warn!(error = %e, "finding the agents to answer a message failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_peoples_new_messages_are_triggers() {
        let conv = ConversationId::new();
        let id = MessageId::new();
        let msg = |kind: &str| json!({"id": id, "author": {"kind": kind}});
        let made = |t: &str, d| Event::conversation(t, conv, d);
        assert_eq!(
            trigger_of(&made("MESSAGE_CREATE", msg("user"))),
            Some((conv, id))
        );
        assert_eq!(trigger_of(&made("MESSAGE_CREATE", msg("bot"))), None);
        let visitor = json!({"id": id, "author": {"kind": "bot", "username": "visitor-0123"}});
        assert_eq!(
            trigger_of(&made("MESSAGE_CREATE", visitor)),
            Some((conv, id))
        );
        // A name with escapes is read as the text it stands for.
        let escaped = json!({"id": id, "author": {"kind": "bot", "username": "visitor-\"x"}});
        assert_eq!(
            trigger_of(&made("MESSAGE_CREATE", escaped)),
            Some((conv, id))
        );
        let system = json!({"id": id, "author": {"kind": "bot", "username": "widget-0123"}});
        assert_eq!(trigger_of(&made("MESSAGE_CREATE", system)), None);
        assert_eq!(trigger_of(&made("MESSAGE_UPDATE", msg("user"))), None);
        assert_eq!(trigger_of(&made("MESSAGE_CREATE", json!({}))), None);
    }
}
