//! AGENT-3: an agent's answer as a streaming message, driven through the node's services (the
//! runner that calls them from a model lives elsewhere): deltas to the conversation's readers
//! in order and coalesced, the text so far over REST, stops from REST (once, by those who may
//! send), edits refused while streaming, and RESUME replaying missed deltas.

mod lifecycle;
mod stop;

use crate::bots::{make_bot, Made};
use crate::helpers::*;
use crate::ws::Ws;
use conclave_core::ids::ConversationId;
use conclave_core::model::Message;
use conclave_core::service::{AnswerStream, Flow, StreamEnd};
use serde_json::{json, Value};

/// Acme: Alice owns it; Bob (member) and Vic (viewer) are in the conversation with the agent's
/// bot; Carol is a member outside it; Dave was in it and is removed; Mallory is of another org.
/// `lounge` is a conversation Alice shares with Carol and Dave, `evil_conv` Mallory's own (for
/// barriers).
pub(crate) struct Room {
    pub alice: User,
    pub bob: User,
    pub vic: User,
    pub carol: User,
    pub dave: User,
    pub mallory: User,
    pub org: String,
    pub conv: String,
    pub lounge: String,
    /// Mallory's conversation in her org.
    pub evil_conv: String,
    pub bot: Made,
}

pub(crate) async fn room(app: &TestApp) -> Room {
    let crate::fixtures::Team(alice, [bob, vic, carol, dave], org) = app
        .team(
            "alice",
            "Acme",
            [
                ("bob", "member"),
                ("vic", "viewer"),
                ("carol", "member"),
                ("dave", "member"),
            ],
        )
        .await;
    let (mallory, evil) = app.mallory().await;
    let evil_conv = app.group(&evil, &mallory, &[], json!("private")).await;
    let bot = make_bot(app, &org, &alice, json!({"name": "helper"})).await;
    let conv = app
        .group(&org, &alice, &[&bob, &vic, &dave], json!("private"))
        .await;
    app.add_participant(&conv, &alice, &bot.user_id).await;
    let lounge = app
        .group(&org, &alice, &[&carol, &dave], json!("private"))
        .await;
    Room {
        alice,
        bob,
        vic,
        carol,
        dave,
        mallory,
        org,
        conv,
        lounge,
        evil_conv,
        bot,
    }
}

fn uuid(s: &str) -> uuid::Uuid {
    uuid::Uuid::parse_str(s).expect("a uuid")
}

impl Room {
    /// The agent's bot opens an answer in the room's conversation.
    pub async fn open(&self, app: &TestApp) -> AnswerStream {
        self.open_as_bot(app).await.expect("the stream opens")
    }

    /// The agent's bot, acting as itself, tries to open an answer in the room's conversation.
    pub async fn open_as_bot(
        &self,
        app: &TestApp,
    ) -> Result<AnswerStream, conclave_core::ServiceError> {
        let bot = app
            .services
            .authenticate_bot(&self.bot.token, None)
            .await
            .expect("the bot's token");
        app.services
            .open_stream(&bot, ConversationId(uuid(&self.conv)), None)
            .await
    }
}

/// Appends `delta` to `stream` (the services' clock moved by `after_ms` first).
pub(crate) async fn delta(
    app: &TestApp,
    stream: &mut AnswerStream,
    after_ms: i64,
    text: &str,
) -> Flow {
    app.clock.advance(chrono::Duration::milliseconds(after_ms));
    app.services
        .stream_delta(stream, text)
        .await
        .expect("the delta is taken")
}

/// Ends `stream` as `end` says; answers the message as it ended (or as a stop left it).
pub(crate) async fn close(app: &TestApp, stream: AnswerStream, end: StreamEnd) -> Message {
    app.services
        .close_stream(stream, end)
        .await
        .expect("the stream closes")
}

/// The message `id` as `who` reads it over REST (from the conversation's list).
pub(crate) async fn listed(app: &TestApp, conv: &str, who: &User, id: &str) -> Value {
    app.items(&conv_path(conv, "/messages?limit=100"), &who.token)
        .await
        .into_iter()
        .find(|m| m["id"] == id)
        .expect("the message is listed")
}

/// `ws` gets `MESSAGE_STREAM` for message `id` with this index and delta.
pub(crate) async fn expect_delta(ws: &mut Ws, id: &str, index: u64, text: &str) {
    let d = ws.expect("MESSAGE_STREAM").await;
    assert_eq!(d["message_id"], id, "{d}");
    assert_eq!(
        (d["index"].as_u64(), d["delta"].as_str()),
        (Some(index), Some(text)),
        "{d}"
    );
    assert!(d["conversation_id"].is_string(), "{d}");
}
