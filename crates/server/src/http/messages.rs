//! Messages: send (with attachments), list (cursor pagination both ways), edit with history,
//! delete as tombstone.

use super::error::{
    created_or_found, json, no_content, Answer, ApiError, CreatedText, ErrorBody, JsonText,
    NoContent,
};
use super::extract::{ApiJson, ApiQuery, Caller};
use super::pagination::{
    id_listed, message_page, seq_list, List, ListQuery, Listed, MessageListQuery, MessagePosition,
    Paging,
};
use crate::state::AppState;
use axum::Json;
use conclave_core::files::AttachmentIds;
use conclave_core::model::{Message, MessageVersion};
use conclave_core::service::{Actor, SendMessage, Services};
use conclave_core::store::{Cursor, Page};
use conclave_core::types::{IdempotencyKey, MessageFormat, MessageText};
use conclave_core::{ConversationId, MessageId};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    use super::credentials::{declare, RouteAccess};
    use conclave_core::credential::Scope;
    declare(
        OpenApiRouter::new()
            .routes(routes!(send_message, list_messages))
            .routes(routes!(edit_message, delete_message))
            .routes(routes!(message_history))
            .routes(routes!(stop_message))
            .routes(routes!(typing)),
        RouteAccess::scoped(Scope::MessagesRead, Scope::MessagesWrite),
    )
    // Marking what one has read is reading (as MCP's `mark_read`, API.md): `messages:read`.
    .merge(declare(
        OpenApiRouter::new().routes(routes!(read_marker)),
        RouteAccess::always(Scope::MessagesRead),
    ))
}

/// Tell the other participants I am typing (delivered over the gateway as TYPING_START).
#[utoipa::path(post, path = "/conversations/{c}/typing", tag = "messages", params(("c" = String, Path, format = Uuid)), responses((status = 204)))]
async fn typing(me: Caller<ConversationId>) -> NoContent {
    no_content(me.services().typing(&me.actor, me.at)).await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadMarkerBody {
    message_id: MessageId,
}

/// Move my read marker; my other sessions get READ_MARKER_UPDATE.
#[utoipa::path(put, path = "/conversations/{c}/read-marker", tag = "messages", params(("c" = String, Path, format = Uuid)), request_body = ReadMarkerBody,
    responses((status = 204)))]
async fn read_marker(
    me: Caller<ConversationId>,
    ApiJson(body): ApiJson<ReadMarkerBody>,
) -> NoContent {
    let at = body.message_id;
    no_content(me.services().set_read_marker(&me.actor, me.at, at)).await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendBody {
    /// 1–4000 characters.
    content: MessageText,
    /// Default `text`.
    format: Option<MessageFormat>,
    reply_to: Option<MessageId>,
    /// Files to attach (their ids from `POST /files`).
    attachment_ids: Option<AttachmentIds>,
    /// A retry with the same key returns the original message.
    idempotency_key: Option<IdempotencyKey>,
}

/// Send a message, with files you uploaded to this conversation attached. A retry with the
/// same idempotency key returns the original with 200.
#[utoipa::path(post, path = "/conversations/{c}/messages", tag = "messages", params(("c" = String, Path, format = Uuid)), request_body = SendBody,
    responses((status = 201, body = Message), (status = 200, body = Message, description = "an idempotent replay"), (status = 409, body = ErrorBody)))]
async fn send_message(me: Caller<ConversationId>, ApiJson(body): ApiJson<SendBody>) -> CreatedText {
    let req = SendMessage {
        content: body.content,
        format: body.format.unwrap_or(MessageFormat::Text),
        reply_to: body.reply_to,
        attachments: body.attachment_ids.unwrap_or_default(),
        idempotency_key: body.idempotency_key,
    };
    let sent = me.services().send_message(&me.actor, me.at, req).await?;
    if sent.created {
        // Committed and published: answered once the hub keeps up (`gateway::pace`).
        me.state().gateway.pace.settle().await;
    }
    created_or_found(sent.created, JsonText(sent.json))
}

/// Messages, newest first; `after` pages towards newer ones (oldest first).
#[utoipa::path(get, path = "/conversations/{c}/messages", tag = "messages", params(("c" = String, Path, format = Uuid), MessageListQuery),
    responses((status = 200, body = List<Message>)))]
async fn list_messages(me: Caller<ConversationId>, ApiQuery(q): Paging) -> Listed<Message> {
    message_list(me.services(), &me.actor, me.at, &q).await
}

/// A page of a conversation's messages as `q` asks for it (a `before`/`after` message id or
/// cursor): the REST list, and MCP's `read_messages` (MCP-3).
pub async fn message_list(
    services: &Services,
    actor: &Actor,
    conv: ConversationId,
    q: &ListQuery,
) -> Listed<Message> {
    let (position, limit) = message_page(q)?;
    let resolve = |pos: MessagePosition, field: &'static str| async move {
        match pos {
            MessagePosition::Seq(s) => Ok(s),
            MessagePosition::Message(id) => services
                .message_in(actor, conv, MessageId(id))
                .await
                .map(|m| m.seq)
                .map_err(|e| match e {
                    conclave_core::ServiceError::NotFound(_) => ApiError::invalid(
                        "unknown_message",
                        format!("`{field}` names no message in this conversation"),
                        field,
                    ),
                    other => other.into(),
                }),
        }
    };
    let cursor = match position {
        Cursor::Latest => Cursor::Latest,
        Cursor::Before(p) => Cursor::Before(resolve(p, "before").await?),
        Cursor::After(p) => Cursor::After(resolve(p, "after").await?),
    };
    let page = Page { cursor, limit };
    let items = services.list_messages(actor, conv, page).await?;
    Ok(Json(seq_list(items, limit, |m| m.seq)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditBody {
    content: MessageText,
    format: Option<MessageFormat>,
}

/// Edit my message; the previous version goes to its history.
#[utoipa::path(patch, path = "/messages/{m}", tag = "messages", params(("m" = String, Path, format = Uuid)), request_body = EditBody,
    responses((status = 200, body = Message), (status = 409, body = ErrorBody)))]
async fn edit_message(me: Caller<MessageId>, ApiJson(body): ApiJson<EditBody>) -> Answer<Message> {
    let format = body.format.unwrap_or(MessageFormat::Text);
    json(
        me.services()
            .edit_message(&me.actor, me.at, body.content, format),
    )
    .await
}

/// Delete a message: it keeps its place as a tombstone (`content: null`).
#[utoipa::path(delete, path = "/messages/{m}", tag = "messages", params(("m" = String, Path, format = Uuid)), responses((status = 204)))]
async fn delete_message(me: Caller<MessageId>) -> NoContent {
    no_content(me.services().delete_message(&me.actor, me.at)).await
}

/// Earlier versions of an edited message, newest first; `after` pages towards newer ones
/// (oldest first). At most the newest 100 are kept (participants only).
#[utoipa::path(get, path = "/messages/{m}/history", tag = "messages", params(("m" = String, Path, format = Uuid), ListQuery),
    responses((status = 200, body = List<MessageVersion>)))]
async fn message_history(me: Caller<MessageId>, ApiQuery(q): Paging) -> Listed<MessageVersion> {
    let versions = |page| me.services().message_history(&me.actor, me.at, page);
    id_listed(&q, |v: &MessageVersion| v.id.0, versions).await
}

/// Stop an AI agent's answer while it streams (AGENT-3): it keeps the text written so far, with
/// status `stopped`; the conversation gets MESSAGE_UPDATE. Participants who may send.
#[utoipa::path(post, path = "/messages/{m}/stop", tag = "messages", params(("m" = String, Path, format = Uuid)),
    responses((status = 200, body = Message), (status = 409, body = ErrorBody, description = "`not_streaming`: the message is not streaming (any more)")))]
async fn stop_message(me: Caller<MessageId>) -> Answer<Message> {
    json(me.services().stop_message(&me.actor, me.at)).await
}
