//! An AI agent's answer as it is written (AGENT-3): a message opened empty with status
//! `streaming`, grown by deltas and ended once.
//!
//! Deltas are coalesced: at most one `MESSAGE_STREAM` `{conversation_id, message_id, index,
//! delta}` per message every [`STREAM_EVENT_INTERVAL`] (`index` counts the events from 0), and
//! the text so far is written at most every [`STREAM_PERSIST_INTERVAL`] so REST shows it. Every
//! write is one conditional UPDATE `… WHERE status = 'streaming'` (`MessageStore::change_stream`):
//! a stop (`POST /messages/{m}/stop`) or a deletion on any node makes the stream's next write
//! find the message ended, and of a stop and the stream's own end exactly one wins. A stop on
//! this node is seen at once (the node's open streams), without waiting for that write.
//!
//! Times come from the services' `Clock`, so tests decide when an interval has passed.

use super::{Actor, Result, Services};
use crate::error::ServiceError;
use crate::event::Event;
use crate::ids::*;
use crate::model::*;
use crate::policy;
use crate::store::StreamChange;
use crate::types::{MessageFormat, MessageStatus};
use chrono::{DateTime, Duration, Utc};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// At most one `MESSAGE_STREAM` event per message in this interval.
pub const STREAM_EVENT_INTERVAL: Duration = Duration::milliseconds(50);
/// The text so far is written to the store at most this often.
pub const STREAM_PERSIST_INTERVAL: Duration = Duration::milliseconds(250);
/// The longest answer kept, in bytes of UTF-8; a delta past it is refused (422
/// `answer_too_long`) and the stream should be closed.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// `status_reason` of an answer stopped by a participant.
pub const STOPPED_BY_USER: &str = "stopped_by_user";
/// `status_reason` of an answer its writer ended with [`StreamEnd::Stopped`].
pub const STOPPED: &str = "stopped";
/// `status_reason` of an answer left streaming by a node that stopped mid-way.
pub const INTERRUPTED: &str = "interrupted";

/// An answer being written by `author` (an agent's bot user) in a conversation.
pub struct AnswerStream {
    /// The message as it was opened (status `streaming`, empty content).
    pub message: Message,
    /// The index of the next `MESSAGE_STREAM` event.
    next_index: u64,
    /// All the text received.
    text: String,
    /// How many bytes of `text` went out in events (the rest is pending).
    emitted: usize,
    /// How many bytes of `text` are stored.
    persisted: usize,
    last_event: Option<DateTime<Utc>>,
    last_persist: DateTime<Utc>,
    /// Set by a stop on this node, or once a write found the message ended.
    stopped: Arc<AtomicBool>,
    /// The node's open streams, which this one leaves when dropped (closed or not).
    open: Arc<OpenStreams>,
}

impl Drop for AnswerStream {
    fn drop(&mut self) {
        self.open.close(self.message.id);
    }
}

/// Content stays out of logs: `Debug` shows the message id and the counts.
impl std::fmt::Debug for AnswerStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnswerStream")
            .field("message_id", &self.message.id)
            .field("next_index", &self.next_index)
            .field("bytes", &self.text.len())
            .field("emitted", &self.emitted)
            .field("persisted", &self.persisted)
            .field("stopped", &self.is_stopped())
            .finish_non_exhaustive()
    }
}

impl AnswerStream {
    /// The text received so far (what the answer would be if it ended now).
    #[must_use]
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether the stream knows it was stopped (or its message deleted).
    #[must_use]
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// WEB-4: takes the handoff marker lines out of the answer (`crate::widget`), answering
    /// whether there was one. What is left goes out whole with the end (no further delta); an
    /// answer that was only the marker becomes a short line saying a person will answer.
    pub fn take_handoff_marker(&mut self) -> bool {
        let Some(mut kept) = crate::widget::strip_handoff(&self.text) else {
            return false;
        };
        if kept.trim().is_empty() {
            kept = super::widget::HANDOFF_ONLY_ANSWER.to_owned();
        }
        self.text = kept;
        self.emitted = self.text.len();
        self.persisted = 0;
        true
    }
}

/// What the writer of a stream should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// The answer was stopped or deleted: stop calling the model, then `close_stream`.
    Stopped,
}

/// How an answer ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEnd {
    Complete,
    /// A short reason (`provider_error`, `timeout`, `budget_exhausted`…; `[a-z0-9_]{1,64}`,
    /// anything else is stored as `error`), never provider text.
    Failed(String),
    Stopped,
}

/// `reason` when it is a short code (`[a-z0-9_]{1,64}`), else `error`: whatever a writer
/// passes, no provider text reaches the message.
fn short_reason(reason: &str) -> &str {
    let code = !reason.is_empty()
        && reason.len() <= 64
        && reason
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if code {
        reason
    } else {
        "error"
    }
}

/// The streams open on this node, so a stop here reaches its stream at once. A stream leaves
/// it when it is dropped.
#[derive(Debug, Default)]
pub(crate) struct OpenStreams(Mutex<HashMap<MessageId, Arc<AtomicBool>>>);

impl OpenStreams {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<MessageId, Arc<AtomicBool>>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn open(&self, id: MessageId) -> Arc<AtomicBool> {
        self.map().entry(id).or_default().clone()
    }

    fn contains(&self, id: MessageId) -> bool {
        self.map().contains_key(&id)
    }

    fn close(&self, id: MessageId) {
        self.map().remove(&id);
    }

    pub(super) fn stop(&self, id: MessageId) {
        if let Some(flag) = self.map().get(&id) {
            flag.store(true, Ordering::Release);
        }
    }
}

impl Services {
    /// Stores a message by `author` (an agent's bot acting as itself) with status streaming
    /// and empty content, replying to `reply_to` (a message of `conv`); emits MESSAGE_CREATE
    /// like any message. The author must be allowed to send there now, as any sender is (AZ-2:
    /// a Viewer, or a bot in an archived conversation, is refused with 403/404).
    pub async fn open_stream(
        &self,
        author: &Actor,
        conv: ConversationId,
        reply_to: Option<MessageId>,
    ) -> Result<AnswerStream> {
        self.conversation_access(author, conv, policy::ConversationAction::SendMessages)
            .await?;
        let author = author.user.id;
        if let Some(reply) = reply_to {
            // An answer to a question deleted meanwhile is not started (MSG-2).
            let asked = self.message_of(conv, reply).await?;
            if asked.is_none_or(|m| m.deleted_at.is_some()) {
                return Err(ServiceError::invalid(
                    "reply_to",
                    "unknown_message",
                    "no such message in this conversation",
                ));
            }
        }
        let now = self.clock.now();
        let new = NewMessage {
            id: MessageId::new(),
            conversation_id: conv,
            author_id: author,
            content: String::new(),
            format: MessageFormat::Text,
            reply_to,
            created_at: now,
            attachments: Vec::new(),
            idempotency: None,
            idempotency_since: now,
            status: MessageStatus::Streaming,
        };
        let message = match self.store.insert_message(&new, &[]).await? {
            crate::store::Inserted::Created(message) => message,
            _ => return Err(ServiceError::Internal("a stream was not stored".into())),
        };
        let stopped = self.open_streams.open(message.id);
        self.emit(Event::conversation("MESSAGE_CREATE", conv, &message));
        Ok(AnswerStream {
            message,
            next_index: 0,
            text: String::new(),
            emitted: 0,
            persisted: 0,
            last_event: None,
            last_persist: now,
            stopped,
            open: self.open_streams.clone(),
        })
    }

    /// Appends `delta`. At most one MESSAGE_STREAM event per [`STREAM_EVENT_INTERVAL`], and the
    /// text so far written at most every [`STREAM_PERSIST_INTERVAL`]; `Flow::Stopped` once the
    /// message is found stopped or deleted (on any node). Past [`MAX_ANSWER_BYTES`] the delta
    /// is refused with 422 `answer_too_long` (close the stream then).
    pub async fn stream_delta(&self, stream: &mut AnswerStream, delta: &str) -> Result<Flow> {
        if stream.is_stopped() {
            return Ok(Flow::Stopped);
        }
        if stream.text.len() + delta.len() > MAX_ANSWER_BYTES {
            return Err(ServiceError::invalid(
                "delta",
                "answer_too_long",
                "the answer is longer than the server keeps",
            ));
        }
        stream.text.push_str(delta);
        let now = self.clock.now();
        if now - stream.last_persist >= STREAM_PERSIST_INTERVAL
            && stream.persisted < stream.text.len()
        {
            stream.last_persist = now;
            if !self.persist(stream).await? {
                return Ok(Flow::Stopped);
            }
        }
        if stream
            .last_event
            .is_none_or(|last| now - last >= STREAM_EVENT_INTERVAL)
        {
            self.emit_pending(stream, now);
        }
        Ok(Flow::Continue)
    }

    /// For a writer holding its text back (an answer screened whole before anyone sees it,
    /// AGENT-5), asked at every event of its model: `Flow::Stopped` once the answer was stopped
    /// or deleted — on this node at once, on another found by the same conditional write a
    /// delta makes, at most every [`STREAM_PERSIST_INTERVAL`] — so the writer stops calling the
    /// model and never has a stopped answer screened.
    pub async fn stream_check(&self, stream: &mut AnswerStream) -> Result<Flow> {
        if stream.is_stopped() {
            return Ok(Flow::Stopped);
        }
        let now = self.clock.now();
        if now - stream.last_persist >= STREAM_PERSIST_INTERVAL {
            stream.last_persist = now;
            if !self.persist(stream).await? {
                return Ok(Flow::Stopped);
            }
        }
        Ok(Flow::Continue)
    }

    /// Sends the pending deltas now, whatever the interval (for a writer whose model paused).
    pub async fn stream_flush(&self, stream: &mut AnswerStream) -> Result<Flow> {
        if stream.is_stopped() {
            return Ok(Flow::Stopped);
        }
        self.emit_pending(stream, self.clock.now());
        Ok(Flow::Continue)
    }

    /// Flushes pending deltas, then ends the stream with one conditional UPDATE (only if still
    /// streaming) setting content, status and status_reason, and emits MESSAGE_UPDATE with the
    /// REST object. Returns the final message, or the stopped one as stored if someone stopped
    /// (or deleted) it first.
    pub async fn close_stream(&self, mut stream: AnswerStream, end: StreamEnd) -> Result<Message> {
        let id = stream.message.id;
        if !stream.is_stopped() {
            self.emit_pending(&mut stream, self.clock.now());
            let (status, reason) = match &end {
                StreamEnd::Complete => (MessageStatus::Complete, None),
                StreamEnd::Failed(reason) => (MessageStatus::Failed, Some(short_reason(reason))),
                StreamEnd::Stopped => (MessageStatus::Stopped, Some(STOPPED)),
            };
            let change = StreamChange {
                id,
                content: Some(stream.text.as_str()),
                status,
                reason,
            };
            if self.store.change_stream(&change, &[]).await? {
                let message = self.store.message(id).await?;
                return Ok(self.announce_message("MESSAGE_UPDATE", message));
            }
        }
        Ok(self.store.message(id).await?)
    }

    /// POST /messages/{m}/stop: a participant who may read and send in the conversation stops
    /// a streaming message with one conditional UPDATE (status `stopped` where it is
    /// `streaming`) and MESSAGE_UPDATE; 409 `not_streaming` when it is not streaming (any
    /// more), 404 when the caller cannot see it.
    pub async fn stop_message(&self, actor: &Actor, id: MessageId) -> Result<Message> {
        let (msg, _, access) = self.message_for(actor, id).await?;
        if !policy::may_stop_stream(&access) {
            return Err(Self::denied(&access));
        }
        let not_streaming = || {
            ServiceError::conflict(
                "not_streaming",
                "this message is not a streaming answer any more",
            )
        };
        if msg.status != MessageStatus::Streaming || msg.deleted_at.is_some() {
            return Err(not_streaming());
        }
        let change = StreamChange {
            id,
            content: None,
            status: MessageStatus::Stopped,
            reason: Some(STOPPED_BY_USER),
        };
        if !self.store.change_stream(&change, &[]).await? {
            return Err(not_streaming());
        }
        self.open_streams.stop(id);
        let stopped = self.store.message(id).await?;
        Ok(self.announce_message("MESSAGE_UPDATE", stopped))
    }

    /// Ends, as failed (`interrupted`), the answers still streaming that were opened more
    /// than `older_than` ago and are not open on this node — their node stopped mid-way — with
    /// the same conditional UPDATE and a MESSAGE_UPDATE each; answers how many. `older_than`
    /// must exceed the longest an answer may take, so no live stream is ended.
    pub async fn fail_abandoned_streams(&self, older_than: Duration) -> Result<usize> {
        const BATCH: u32 = 100;
        let before = self.clock.now() - older_than;
        let mut failed = 0;
        loop {
            let found = self.store.abandoned_streams(before, BATCH).await?;
            let full = found.len() == BATCH as usize;
            let mut ended = 0;
            for id in found {
                if self.open_streams.contains(id) {
                    continue;
                }
                let change = StreamChange {
                    id,
                    content: None,
                    status: MessageStatus::Failed,
                    reason: Some(INTERRUPTED),
                };
                if self.store.change_stream(&change, &[]).await? {
                    let message = self.store.message(id).await?;
                    self.announce_message("MESSAGE_UPDATE", message);
                    ended += 1;
                }
            }
            failed += ended;
            if !full || ended == 0 {
                return Ok(failed);
            }
        }
    }

    /// Writes the text so far; `false` (and the stream marked stopped) when the message is not
    /// streaming any more.
    async fn persist(&self, stream: &mut AnswerStream) -> Result<bool> {
        let change = StreamChange {
            id: stream.message.id,
            content: Some(stream.text.as_str()),
            status: MessageStatus::Streaming,
            reason: None,
        };
        if self.store.change_stream(&change, &[]).await? {
            stream.persisted = stream.text.len();
            Ok(true)
        } else {
            stream.stopped.store(true, Ordering::Release);
            Ok(false)
        }
    }

    /// One MESSAGE_STREAM with the text not sent yet, if any.
    fn emit_pending(&self, stream: &mut AnswerStream, now: DateTime<Utc>) {
        if stream.emitted == stream.text.len() {
            return;
        }
        let delta = &stream.text[stream.emitted..];
        let d = serde_json::json!({
            "conversation_id": stream.message.conversation_id,
            "message_id": stream.message.id,
            "index": stream.next_index,
            "delta": delta,
        });
        self.emit(Event::conversation(
            "MESSAGE_STREAM",
            stream.message.conversation_id,
            d,
        ));
        stream.next_index += 1;
        stream.emitted = stream.text.len();
        stream.last_event = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::short_reason;

    #[test]
    fn a_failure_reason_is_a_short_code_or_error() {
        for ok in ["timeout", "provider_error", "budget_exhausted", "http_503"] {
            assert_eq!(short_reason(ok), ok);
        }
        let long = "x".repeat(65);
        for bad in [
            "",
            "Provider said: rate limited",
            "a-b",
            "naïve",
            "x\ny",
            long.as_str(),
        ] {
            assert_eq!(short_reason(bad), "error", "{bad:?}");
        }
    }
}
