//! Messages: send, list (cursor pagination both ways), edit with history, delete as tombstone.

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{ApiJson, ApiQuery, Caller, PathParams};
use super::pagination::{
    message_page, seq_list, List, ListQuery, MessageListQuery, MessagePosition,
};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use conclave_core::model::{Message, MessageVersion};
use conclave_core::service::SendMessage;
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
            .routes(routes!(typing))
            .routes(routes!(read_marker)),
        RouteAccess::scoped(Scope::MessagesRead, Scope::MessagesWrite),
    )
}

/// Tell the other participants I am typing (delivered over the gateway as TYPING_START).
#[utoipa::path(post, path = "/conversations/{c}/typing", tag = "messages", params(("c" = String, Path, format = Uuid)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn typing(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
) -> ApiResult<StatusCode> {
    state.services.typing(&caller.actor, p.id("c")?).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadMarkerBody {
    message_id: MessageId,
}

/// Move my read marker; my other sessions get READ_MARKER_UPDATE.
#[utoipa::path(put, path = "/conversations/{c}/read-marker", tag = "messages", params(("c" = String, Path, format = Uuid)), request_body = ReadMarkerBody,
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn read_marker(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
    ApiJson(body): ApiJson<ReadMarkerBody>,
) -> ApiResult<StatusCode> {
    state
        .services
        .set_read_marker(&caller.actor, p.id("c")?, body.message_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendBody {
    /// 1–4000 characters.
    content: MessageText,
    /// Default `text`.
    format: Option<MessageFormat>,
    reply_to: Option<MessageId>,
    /// Refused until uploads exist: empty or left out.
    #[schema(max_items = 0)]
    attachment_ids: Option<Vec<String>>,
    /// A retry with the same key returns the original message.
    idempotency_key: Option<IdempotencyKey>,
}

/// Send a message. A retry with the same idempotency key returns the original with 200.
#[utoipa::path(post, path = "/conversations/{c}/messages", tag = "messages", params(("c" = String, Path, format = Uuid)), request_body = SendBody,
    responses((status = 201, body = Message), (status = 200, body = Message, description = "an idempotent replay"),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn send_message(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
    ApiJson(body): ApiJson<SendBody>,
) -> ApiResult<(StatusCode, Json<Message>)> {
    let conv: ConversationId = p.id("c")?;
    if body.attachment_ids.as_ref().is_some_and(|a| !a.is_empty()) {
        return Err(ApiError::invalid(
            "attachments_unavailable",
            "file attachments are not available on this server yet",
            "/attachment_ids",
        ));
    }
    let req = SendMessage {
        content: body.content,
        format: body.format.unwrap_or(MessageFormat::Text),
        reply_to: body.reply_to,
        idempotency_key: body.idempotency_key,
    };
    let sent = state
        .services
        .send_message(&caller.actor, conv, req)
        .await?;
    Ok((
        if sent.created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        Json(sent.message),
    ))
}

/// Messages, newest first; `after` pages towards newer ones (oldest first).
#[utoipa::path(get, path = "/conversations/{c}/messages", tag = "messages", params(("c" = String, Path, format = Uuid), MessageListQuery),
    responses((status = 200, body = List<Message>), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list_messages(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<List<Message>>> {
    let conv: ConversationId = p.id("c")?;
    let (position, limit) = message_page(&q)?;
    let resolve = |pos: MessagePosition, field: &'static str| {
        let state = state.clone();
        let actor = caller.actor.clone();
        async move {
            match pos {
                MessagePosition::Seq(s) => Ok(s),
                MessagePosition::Message(id) => state
                    .services
                    .message_in(&actor, conv, MessageId(id))
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
        }
    };
    let cursor = match position {
        Cursor::Latest => Cursor::Latest,
        Cursor::Before(p) => Cursor::Before(resolve(p, "before").await?),
        Cursor::After(p) => Cursor::After(resolve(p, "after").await?),
    };
    let items = state
        .services
        .list_messages(&caller.actor, conv, Page { cursor, limit })
        .await?;
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
    responses((status = 200, body = Message), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn edit_message(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
    ApiJson(body): ApiJson<EditBody>,
) -> ApiResult<Json<Message>> {
    let id: MessageId = p.id("m")?;
    let format = body.format.unwrap_or(MessageFormat::Text);
    Ok(Json(
        state
            .services
            .edit_message(&caller.actor, id, body.content, format)
            .await?,
    ))
}

/// Delete a message: it keeps its place as a tombstone (`content: null`).
#[utoipa::path(delete, path = "/messages/{m}", tag = "messages", params(("m" = String, Path, format = Uuid)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_message(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
) -> ApiResult<StatusCode> {
    state
        .services
        .delete_message(&caller.actor, p.id("m")?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Earlier versions of an edited message, oldest first (participants only).
#[utoipa::path(get, path = "/messages/{m}/history", tag = "messages", params(("m" = String, Path, format = Uuid)),
    responses((status = 200, body = List<MessageVersion>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn message_history(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
) -> ApiResult<Json<List<MessageVersion>>> {
    Ok(Json(List::all(
        state
            .services
            .message_history(&caller.actor, p.id("m")?)
            .await?,
    )))
}
