//! Sending (with attachments), listing, editing and deleting messages.

use super::{Actor, Result, Services};
use crate::audit::AuditEntry;
use crate::error::ServiceError;
use crate::event::{Audience, Data, Event};
use crate::files::AttachmentIds;
use crate::ids::*;
use crate::model::*;
use crate::policy::{self, ConversationAction};
use crate::sanitize;
use crate::store::{Inserted, Page, ReadMarker, StoreError};
use crate::types::*;
use chrono::Duration;
use sha2::{Digest, Sha256};

/// How long an idempotency key is remembered.
pub const IDEMPOTENCY_WINDOW: Duration = Duration::hours(24);

/// A parsed send request.
#[derive(Debug, Clone)]
pub struct SendMessage {
    pub content: MessageText,
    pub format: MessageFormat,
    pub reply_to: Option<MessageId>,
    /// Files to attach: the sender's own uploads to this conversation, not attached yet.
    pub attachments: AttachmentIds,
    pub idempotency_key: Option<IdempotencyKey>,
}

impl SendMessage {
    /// Plain `content` with nothing else: no reply, files or idempotency key (what the
    /// server's own bots send).
    #[must_use]
    pub fn text(content: MessageText) -> Self {
        Self {
            content,
            format: MessageFormat::Text,
            reply_to: None,
            attachments: AttachmentIds::default(),
            idempotency_key: None,
        }
    }
}

/// A sent message, and whether it was created now (`false`: an idempotent replay).
pub struct Sent {
    pub message: Message,
    pub created: bool,
    /// `message` as JSON, serialized once: the REST answer is these bytes, and a new message's
    /// `MESSAGE_CREATE` carries the same.
    pub json: Data,
}

/// The stored form of submitted content: text as is, HTML sanitized (422 if nothing is left).
fn stored_content(text: &MessageText, format: MessageFormat) -> Result<String> {
    match format {
        MessageFormat::Text => Ok(text.as_str().to_owned()),
        MessageFormat::Html => {
            let cleaned = sanitize::clean_html(text.as_str());
            if sanitize::html_is_blank(&cleaned) {
                return Err(ServiceError::invalid(
                    "content",
                    "empty_after_sanitizing",
                    "nothing is left after removing disallowed HTML",
                ));
            }
            Ok(cleaned)
        }
    }
}

fn fingerprint(req: &SendMessage) -> String {
    let mut h = Sha256::new();
    h.update(req.format.as_str().as_bytes());
    h.update([0]);
    h.update(req.content.as_str().as_bytes());
    h.update([0]);
    if let Some(r) = req.reply_to {
        h.update(r.0.as_bytes());
    }
    // Without attachments the fingerprint is what it was before they existed, so keys stored
    // then still replay. The same files in another order are the same request.
    if !req.attachments.as_slice().is_empty() {
        let mut files = req.attachments.as_slice().to_vec();
        files.sort_unstable();
        h.update(b"\0attachments");
        for f in files {
            h.update(f.0.as_bytes());
        }
    }
    crate::audit::hex(&h.finalize())
}

/// 422 on `field`, naming a message that is not one of the conversation's.
fn unknown_message(field: &str) -> ServiceError {
    ServiceError::invalid(
        field,
        "unknown_message",
        "no such message in this conversation",
    )
}

impl Services {
    /// The audit row of a write that is otherwise not an audit event (DATA-4), when policy
    /// records it (`writes_audited`): under impersonation, with both identities (AUTH-12),
    /// and over MCP, with the agent's credential (MCP-3) — message sends, edits, deletions and
    /// read-marker moves. The row for `event` on `message` of conversation `conv` in `org`, for
    /// the store to write in the transaction of the change (none otherwise).
    pub(super) fn audited_write_rows(
        &self,
        actor: &Actor,
        event: &str,
        org: OrgId,
        conv: ConversationId,
        message: MessageId,
    ) -> Vec<AuditEntry> {
        let surface = actor.meta.surface;
        if !policy::credentials::writes_audited(actor.session.impersonator.is_some(), surface) {
            return Vec::new();
        }
        vec![self
            .audit(actor, event)
            .org(org)
            .resource("message", message)
            .detail(serde_json::json!({ "conversation_id": conv, "via": surface.as_str() }))]
    }

    pub async fn send_message(
        &self,
        actor: &Actor,
        conv: ConversationId,
        mut req: SendMessage,
    ) -> Result<Sent> {
        let (conversation, _) = self
            .conversation_access(actor, conv, ConversationAction::SendMessages)
            .await?;
        let content = stored_content(&req.content, req.format)?;
        // RATE-6: before anything is stored; a block answers 422 and nothing is written.
        let flagged = self
            .screen_post(conversation.org_id, &content, req.format)
            .await?;
        if let Some(reply) = req.reply_to {
            self.message_of(conv, reply)
                .await?
                .ok_or_else(|| unknown_message("reply_to"))?;
        }
        let now = self.clock.now();
        // Only a request with a key is ever compared with another.
        let idempotency = req.idempotency_key.take().map(|k| (k, fingerprint(&req)));
        let new = NewMessage {
            id: MessageId::new(),
            conversation_id: conv,
            author_id: actor.user.id,
            content,
            format: req.format,
            reply_to: req.reply_to,
            created_at: now,
            attachments: req.attachments.into_vec(),
            idempotency,
            idempotency_since: now - IDEMPOTENCY_WINDOW,
            status: MessageStatus::Complete,
        };
        let audit =
            self.audited_write_rows(actor, "message.sent", conversation.org_id, conv, new.id);
        // The store asks again, in its transaction, whether the author still writes there (a
        // removal, demotion or archival while the guards ran); if not, the policy's answer now
        // says why.
        let inserted = match self.store.insert_message(&new, &audit).await {
            Err(StoreError::NotFound) => {
                self.conversation_access(actor, conv, ConversationAction::SendMessages)
                    .await?;
                return Err(ServiceError::NotFound("conversation"));
            }
            inserted => inserted?,
        };
        match inserted {
            Inserted::Created(message) => {
                let json = Data::of(&message);
                // With its org, so the webhook worker need not read the conversation to
                // find it.
                self.emit(
                    Event::with_data("MESSAGE_CREATE", Audience::Conversation(conv), json.clone())
                        .in_org(conversation.org_id),
                );
                self.queue_flags(conversation.org_id, &message, &flagged)
                    .await;
                Ok(Sent {
                    message,
                    created: true,
                    json,
                })
            }
            Inserted::Replayed(message, original)
                if new
                    .idempotency
                    .as_ref()
                    .is_some_and(|(_, print)| *print == original) =>
            {
                Ok(Sent {
                    json: Data::of(&message),
                    message,
                    created: false,
                })
            }
            Inserted::Replayed(..) => Err(ServiceError::conflict(
                "idempotency_conflict",
                "this idempotency key was used with different content",
            )),
            // Another user's file, another conversation's, one already attached or none at
            // all: one answer, so nothing is learnt about files the caller cannot see.
            Inserted::AttachmentsRefused => Err(ServiceError::invalid(
                "attachment_ids",
                "attachment_unavailable",
                "each attachment must be a file you uploaded to this conversation that no \
                 message carries yet",
            )),
        }
    }

    pub async fn list_messages(
        &self,
        actor: &Actor,
        conv: ConversationId,
        page: Page<i64>,
    ) -> Result<Vec<Message>> {
        self.conversation_access(actor, conv, ConversationAction::Read)
            .await?;
        Ok(self.store.messages(conv, page).await?)
    }

    /// A message of a conversation the caller can read; used to turn a message-id cursor into a seq.
    pub async fn message_in(
        &self,
        actor: &Actor,
        conv: ConversationId,
        id: MessageId,
    ) -> Result<Message> {
        self.conversation_access(actor, conv, ConversationAction::Read)
            .await?;
        self.message_of(conv, id)
            .await?
            .ok_or(ServiceError::NotFound("message"))
    }

    /// Tells the conversation about a committed change to `message` and hands it back.
    pub(super) fn announce_message(&self, kind: &str, message: Message) -> Message {
        self.emit(Event::conversation(kind, message.conversation_id, &message));
        message
    }

    /// Message `id` when it belongs to `conv`.
    pub(super) async fn message_of(
        &self,
        conv: ConversationId,
        id: MessageId,
    ) -> Result<Option<Message>> {
        match self.store.message(id).await {
            Ok(m) => Ok(Some(m).filter(|m| m.conversation_id == conv)),
            Err(StoreError::NotFound) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Loads a message with its conversation's org and the caller's access to the conversation
    /// (404 when not readable).
    pub(super) async fn message_for(
        &self,
        actor: &Actor,
        id: MessageId,
    ) -> Result<(Message, OrgId, crate::policy::ConversationAccess)> {
        let msg = self
            .store
            .message(id)
            .await
            .map_err(ServiceError::missing("message"))?;
        let conv = self.conversation_facts(msg.conversation_id).await?;
        let access = self.access(actor, &conv).await?;
        if !policy::conversation_allows(&access, ConversationAction::See) {
            return Err(ServiceError::NotFound("message"));
        }
        Ok((msg, conv.org_id, access))
    }

    pub async fn edit_message(
        &self,
        actor: &Actor,
        id: MessageId,
        text: MessageText,
        format: MessageFormat,
    ) -> Result<Message> {
        let (msg, org, access) = self.message_for(actor, id).await?;
        if !policy::may_edit_message(&access, msg.author.id == actor.user.id) {
            return Err(Self::denied(&access));
        }
        if msg.deleted_at.is_some() {
            return Err(ServiceError::conflict(
                "message_deleted",
                "a deleted message cannot be edited",
            ));
        }
        if msg.status == MessageStatus::Streaming {
            return Err(ServiceError::conflict(
                "message_streaming",
                "an answer cannot be edited while it is being written",
            ));
        }
        let content = stored_content(&text, format)?;
        let flagged = self.screen_post(org, &content, format).await?;
        let audit = self.audited_write_rows(actor, "message.edited", org, msg.conversation_id, id);
        let edited = self
            .store
            .edit_message(
                &crate::store::MessageEdit {
                    id,
                    content: &content,
                    format,
                    at: self.clock.now(),
                },
                &audit,
            )
            .await
            .map_err(ServiceError::missing("message"))?;
        let edited = self.announce_message("MESSAGE_UPDATE", edited);
        self.queue_flags(org, &edited, &flagged).await;
        Ok(edited)
    }

    pub async fn delete_message(&self, actor: &Actor, id: MessageId) -> Result<Message> {
        let (msg, org, access) = self.message_for(actor, id).await?;
        if !policy::may_delete_message(&access, msg.author.id == actor.user.id) {
            return Err(Self::denied(&access));
        }
        let own = msg.author.id == actor.user.id;
        if !policy::impersonation_may_delete_message(actor.session.impersonator.is_some(), own) {
            // An impersonated session deletes only the user's own messages (AUTH-12).
            self.audit_denied(
                actor,
                "impersonation.denied",
                "impersonation_forbidden",
                None,
                Some(("message", id.to_string())),
            )
            .await;
            return Err(ServiceError::forbidden(
                "impersonation_forbidden",
                "an impersonated session cannot do this",
            ));
        }
        if msg.deleted_at.is_some() {
            return Ok(msg);
        }
        // An author deleting their own message is not an audit event (unless impersonated); a
        // moderator's is.
        let audit = if own {
            self.audited_write_rows(actor, "message.deleted", org, msg.conversation_id, id)
        } else {
            vec![self
                .audit(actor, "message.moderated")
                .org(org)
                .resource("message", id)
                .detail(serde_json::json!({
                    "conversation_id": msg.conversation_id,
                    "author_id": msg.author.id,
                }))]
        };
        let (deleted, freed) = self
            .store
            .delete_message(id, self.clock.now(), &audit)
            .await?;
        // An agent's answer still streaming on this node sends nothing more of what was
        // deleted (another node's stream finds the deletion at its next save).
        // An agent's answer still streaming on this node sends nothing more of what was
        // deleted (another node's stream finds the deletion at its next save).
        // An agent's answer still streaming on this node sends nothing more of what was
        // deleted (another node's stream finds the deletion at its next save).
        self.open_streams.stop(id);
        let deleted = self.announce_message("MESSAGE_DELETE", deleted);
        self.free(freed).await;
        Ok(deleted)
    }

    /// A page of the message's earlier versions (newest first unless `page` reads after a
    /// cursor); at most the newest `KEPT_VERSIONS` are kept.
    pub async fn message_history(
        &self,
        actor: &Actor,
        id: MessageId,
        page: Page<MessageVersionId>,
    ) -> Result<Vec<MessageVersion>> {
        let (_, _, access) = self.message_for(actor, id).await?;
        if !policy::conversation_allows(&access, ConversationAction::Read) {
            return Err(Self::denied(&access));
        }
        Ok(self.store.message_history(id, page).await?)
    }

    /// Forgets the idempotency keys older than [`IDEMPOTENCY_WINDOW`] (MSG-2: kept 24 h), which
    /// a send only forgets when the same key comes again; answers how many went. Run by the
    /// retention job.
    pub async fn forget_idempotency_keys(&self) -> Result<u64> {
        let before = self.clock.now() - IDEMPOTENCY_WINDOW;
        Ok(self.store.prune_idempotency_keys(before).await?)
    }

    /// Tells the other participants the caller is typing (writers only).
    pub async fn typing(&self, actor: &Actor, conv: ConversationId) -> Result<()> {
        self.conversation_access(actor, conv, ConversationAction::SendMessages)
            .await?;
        let d = serde_json::json!({"conversation_id": conv, "user_id": actor.user.id, "at": self.clock.now()});
        self.emit(Event::conversation("TYPING_START", conv, d));
        Ok(())
    }

    /// Moves the caller's read marker to `message` (a message of this conversation); the
    /// caller's own sessions are told.
    pub async fn set_read_marker(
        &self,
        actor: &Actor,
        conv: ConversationId,
        message: MessageId,
    ) -> Result<()> {
        let (conversation, _) = self
            .conversation_access(actor, conv, ConversationAction::Read)
            .await?;
        self.message_of(conv, message)
            .await?
            .ok_or_else(|| unknown_message("message_id"))?;
        let audit = self.audited_write_rows(
            actor,
            "read_marker.moved",
            conversation.org_id,
            conv,
            message,
        );
        let marker = ReadMarker {
            conv,
            user: actor.user.id,
            message,
        };
        self.store.set_read_marker(marker, &audit).await?;
        let d = serde_json::json!({"conversation_id": conv, "user_id": actor.user.id, "message_id": message});
        self.emit(Event::reader("READ_MARKER_UPDATE", actor.user.id, conv, d));
        Ok(())
    }
}
