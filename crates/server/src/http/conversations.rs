//! `/orgs/{org}/conversations` and `/conversations/*`: conversations and participants.

use super::error::{ApiResult, ErrorBody};
use super::extract::{ApiJson, ApiQuery, Caller, PathParams};
use super::pagination::{id_listed, List, ListQuery};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use conclave_core::model::{Conversation, Participant};
use conclave_core::service::ConversationView;
use conclave_core::service::NewConversation;
use conclave_core::store::ConversationPatch;
use conclave_core::types::{ConversationKind, ConversationRole, Name, Visibility};
use conclave_core::UserId;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    use super::credentials::{declare, RouteAccess};
    use conclave_core::credential::Scope;
    declare(
        OpenApiRouter::new()
            .routes(routes!(create_conversation))
            .routes(routes!(my_conversations))
            .routes(routes!(available_conversations))
            .routes(routes!(
                get_conversation,
                update_conversation,
                delete_conversation
            ))
            .routes(routes!(join_conversation))
            .routes(routes!(leave_conversation))
            .routes(routes!(list_participants, add_participant))
            .routes(routes!(remove_participant)),
        RouteAccess::scoped(Scope::ConversationsRead, Scope::ConversationsAdmin),
    )
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateConversation {
    kind: ConversationKind,
    name: Option<Name>,
    /// Default `private`.
    visibility: Option<Visibility>,
    /// The others; the creator is always a participant (owner).
    #[serde(default)]
    participant_ids: Vec<UserId>,
}

/// Create a conversation. A direct conversation for a pair that has one returns it with 200.
#[utoipa::path(post, path = "/orgs/{org}/conversations", tag = "conversations", params(("org" = String, Path, format = Uuid)), request_body = CreateConversation,
    responses((status = 201, body = Conversation), (status = 200, body = Conversation, description = "the existing direct conversation"),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_conversation(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
    ApiJson(body): ApiJson<CreateConversation>,
) -> ApiResult<(StatusCode, Json<Conversation>)> {
    let new = NewConversation {
        kind: body.kind,
        name: body.name,
        visibility: body.visibility.unwrap_or(Visibility::PRIVATE),
        participant_ids: body.participant_ids,
    };
    let (conv, created) = state
        .services
        .create_conversation(&caller.actor, p.id("org")?, new)
        .await?;
    Ok((
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        Json(conv),
    ))
}

/// The id a conversation list is paged by.
fn conversation_id(c: &ConversationView) -> uuid::Uuid {
    c.conversation.id.0
}

/// Conversations I take part in, newest first.
#[utoipa::path(get, path = "/conversations", tag = "conversations", params(ListQuery),
    responses((status = 200, body = List<ConversationView>), (status = 401, body = ErrorBody)))]
async fn my_conversations(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<List<ConversationView>>> {
    id_listed(&q, conversation_id, |page| {
        state.services.my_conversations(&caller.actor, page)
    })
    .await
}

/// Conversations I may join (org-wide, or for a team of mine).
#[utoipa::path(get, path = "/conversations/available", tag = "conversations", params(ListQuery),
    responses((status = 200, body = List<ConversationView>), (status = 401, body = ErrorBody)))]
async fn available_conversations(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<List<ConversationView>>> {
    id_listed(&q, conversation_id, |page| {
        state.services.available_conversations(&caller.actor, page)
    })
    .await
}

/// A conversation I can see.
#[utoipa::path(get, path = "/conversations/{c}", tag = "conversations", params(("c" = String, Path, format = Uuid)),
    responses((status = 200, body = ConversationView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_conversation(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
) -> ApiResult<Json<ConversationView>> {
    Ok(Json(
        state
            .services
            .get_conversation(&caller.actor, p.id("c")?)
            .await?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateConversation {
    name: Option<Name>,
    archived: Option<bool>,
    visibility: Option<Visibility>,
}

/// Rename, archive or change visibility (conversation owners/moderators, org admins).
#[utoipa::path(patch, path = "/conversations/{c}", tag = "conversations", params(("c" = String, Path, format = Uuid)), request_body = UpdateConversation,
    responses((status = 200, body = Conversation), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_conversation(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
    ApiJson(body): ApiJson<UpdateConversation>,
) -> ApiResult<Json<Conversation>> {
    let patch = ConversationPatch {
        name: body.name,
        archived: body.archived,
        visibility: body.visibility,
    };
    Ok(Json(
        state
            .services
            .update_conversation(&caller.actor, p.id("c")?, patch)
            .await?,
    ))
}

/// Delete a conversation and its messages (its owner, org admins).
#[utoipa::path(delete, path = "/conversations/{c}", tag = "conversations", params(("c" = String, Path, format = Uuid)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_conversation(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
) -> ApiResult<StatusCode> {
    state
        .services
        .delete_conversation(&caller.actor, p.id("c")?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Join a conversation whose visibility covers me.
#[utoipa::path(post, path = "/conversations/{c}/join", tag = "conversations", params(("c" = String, Path, format = Uuid)),
    responses((status = 200, body = Participant), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn join_conversation(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
) -> ApiResult<Json<Participant>> {
    Ok(Json(
        state
            .services
            .join_conversation(&caller.actor, p.id("c")?)
            .await?,
    ))
}

/// Leave a conversation (not as its last owner while others remain).
#[utoipa::path(post, path = "/conversations/{c}/leave", tag = "conversations", params(("c" = String, Path, format = Uuid)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn leave_conversation(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
) -> ApiResult<StatusCode> {
    state
        .services
        .leave_conversation(&caller.actor, p.id("c")?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Participants (participants only).
#[utoipa::path(get, path = "/conversations/{c}/participants", tag = "conversations", params(("c" = String, Path, format = Uuid), ListQuery),
    responses((status = 200, body = List<Participant>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_participants(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<List<Participant>>> {
    let c = p.id("c")?;
    id_listed(
        &q,
        |x: &Participant| x.user.id.0,
        |page| state.services.participants(&caller.actor, c, page),
    )
    .await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddParticipant {
    user_id: UserId,
    /// Default `member`.
    role: Option<ConversationRole>,
}

/// Add an org member to a group conversation.
#[utoipa::path(post, path = "/conversations/{c}/participants", tag = "conversations", params(("c" = String, Path, format = Uuid)), request_body = AddParticipant,
    responses((status = 201, body = Participant), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn add_participant(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
    ApiJson(body): ApiJson<AddParticipant>,
) -> ApiResult<(StatusCode, Json<Participant>)> {
    let added = state
        .services
        .add_participant(
            &caller.actor,
            p.id("c")?,
            body.user_id,
            body.role.unwrap_or(ConversationRole::Member),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(added)))
}

/// Remove a participant (or leave, with your own id).
#[utoipa::path(delete, path = "/conversations/{c}/participants/{user}", tag = "conversations",
    params(("c" = String, Path, format = Uuid), ("user" = String, Path, format = Uuid)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn remove_participant(
    State(state): State<AppState>,
    caller: Caller,
    p: PathParams,
) -> ApiResult<StatusCode> {
    state
        .services
        .remove_participant(&caller.actor, p.id("c")?, p.id("user")?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
