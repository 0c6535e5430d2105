//! `/orgs/{org}/conversations` and `/conversations/*`: conversations and participants.

use super::error::{
    created_by, created_or_found, json, no_content, Answer, Created, ErrorBody, NoContent,
};
use super::extract::{ApiJson, ApiQuery, Caller};
use super::pagination::{id_listed, List, ListQuery, Listed, Paging};
use crate::state::AppState;
use conclave_core::model::{Conversation, Participant};
use conclave_core::service::NewConversation;
use conclave_core::service::{ConversationList, ConversationView, SourcedConversation};
use conclave_core::store::ConversationPatch;
use conclave_core::types::{ConversationKind, ConversationRole, Name, Visibility};
use conclave_core::widget::WidgetStatus;
use conclave_core::{ConversationId, OrgId, UserId};
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
    responses((status = 201, body = Conversation), (status = 200, body = Conversation, description = "the existing direct conversation")))]
async fn create_conversation(
    me: Caller<OrgId>,
    ApiJson(body): ApiJson<CreateConversation>,
) -> Created<Conversation> {
    let new = NewConversation {
        kind: body.kind,
        name: body.name,
        visibility: body.visibility.unwrap_or(Visibility::PRIVATE),
        participant_ids: body.participant_ids,
    };
    let (conv, fresh) = me
        .services()
        .create_conversation(&me.actor, me.at, new)
        .await?;
    created_or_found(fresh, axum::Json(conv))
}

/// The id a conversation list is paged by.
pub fn conversation_id(c: &ConversationView) -> uuid::Uuid {
    c.conversation.id.0
}

/// Conversations I take part in, newest first.
#[utoipa::path(get, path = "/conversations", tag = "conversations", params(ListQuery),
    responses((status = 200, body = List<ConversationView>)))]
async fn my_conversations(me: Caller, ApiQuery(q): Paging) -> Listed<ConversationView> {
    conversation_list(&me, &q, ConversationList::Mine).await
}

/// Conversations I may join (org-wide, or for a team of mine).
#[utoipa::path(get, path = "/conversations/available", tag = "conversations", params(ListQuery),
    responses((status = 200, body = List<ConversationView>)))]
async fn available_conversations(me: Caller, ApiQuery(q): Paging) -> Listed<ConversationView> {
    conversation_list(&me, &q, ConversationList::Available).await
}

/// A page of the `which` list, by conversation id.
async fn conversation_list(
    me: &Caller,
    q: &ListQuery,
    which: ConversationList,
) -> Listed<ConversationView> {
    let fetch = |page| me.services().conversation_list(&me.actor, which, page);
    id_listed(q, conversation_id, fetch).await
}

/// A conversation I can see.
#[utoipa::path(get, path = "/conversations/{c}", tag = "conversations", params(("c" = String, Path, format = Uuid)), responses((status = 200, body = ConversationView)))]
async fn get_conversation(me: Caller<ConversationId>) -> Answer<ConversationView> {
    json(me.services().get_conversation(&me.actor, me.at)).await
}

/// The body of `PATCH /conversations/{c}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateConversation {
    name: Option<Name>,
    archived: Option<bool>,
    visibility: Option<Visibility>,
    /// A support widget conversation's status (WEB-4): `open` (takes it from the AI agent) or
    /// `resolved`; the key's support team and org admins only.
    status: Option<WidgetStatus>,
}

/// Rename, archive or change visibility (conversation owners/moderators, org admins); open or
/// resolve a support widget conversation (its support team, org admins). Answers the
/// conversation with its `source` and `status`.
#[utoipa::path(patch, path = "/conversations/{c}", tag = "conversations", params(("c" = String, Path, format = Uuid)), request_body = UpdateConversation,
    responses((status = 200, body = SourcedConversation)))]
async fn update_conversation(
    me: Caller<ConversationId>,
    ApiJson(body): ApiJson<UpdateConversation>,
) -> Answer<SourcedConversation> {
    let patch = ConversationPatch {
        name: body.name,
        archived: body.archived,
        visibility: body.visibility,
    };
    let settings = patch.name.is_some() || patch.archived.is_some() || patch.visibility.is_some();
    let Some(status) = body.status else {
        let conv = (me.services())
            .update_conversation(&me.actor, me.at, patch)
            .await?;
        let widget = me.services().widget_conversation_of(me.at).await?;
        return Ok(axum::Json(SourcedConversation::new(conv, widget.as_ref())));
    };
    // Two changes with their own permissions and audit rows: one at a time, so neither is
    // applied when the other is refused.
    if settings {
        return Err(super::error::ApiError::invalid(
            "not_combinable",
            "change `status` on its own, without other fields",
            "/status",
        ));
    }
    let (w, conv) = (me.services())
        .set_widget_status(&me.actor, me.at, status)
        .await?;
    Ok(axum::Json(SourcedConversation::new(conv, Some(&w))))
}

/// Delete a conversation and its messages (its owner, org admins).
#[utoipa::path(delete, path = "/conversations/{c}", tag = "conversations", params(("c" = String, Path, format = Uuid)), responses((status = 204)))]
async fn delete_conversation(me: Caller<ConversationId>) -> NoContent {
    no_content(me.services().delete_conversation(&me.actor, me.at)).await
}

/// Join a conversation whose visibility covers me.
#[utoipa::path(post, path = "/conversations/{c}/join", tag = "conversations", params(("c" = String, Path, format = Uuid)),
    responses((status = 200, body = Participant), (status = 409, body = ErrorBody)))]
async fn join_conversation(me: Caller<ConversationId>) -> Answer<Participant> {
    json(me.services().join_conversation(&me.actor, me.at)).await
}

/// Leave a conversation (not as its last owner while others remain).
#[utoipa::path(post, path = "/conversations/{c}/leave", tag = "conversations", params(("c" = String, Path, format = Uuid)),
    responses((status = 204), (status = 409, body = ErrorBody)))]
async fn leave_conversation(me: Caller<ConversationId>) -> NoContent {
    no_content(me.services().leave_conversation(&me.actor, me.at)).await
}

/// Participants (participants only).
#[utoipa::path(get, path = "/conversations/{c}/participants", tag = "conversations", params(("c" = String, Path, format = Uuid), ListQuery),
    responses((status = 200, body = List<Participant>)))]
async fn list_participants(me: Caller<ConversationId>, ApiQuery(q): Paging) -> Listed<Participant> {
    let participants = |page| me.services().participants(&me.actor, me.at, page);
    id_listed(&q, |x: &Participant| x.user.id.0, participants).await
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
    responses((status = 201, body = Participant), (status = 409, body = ErrorBody)))]
async fn add_participant(
    me: Caller<ConversationId>,
    ApiJson(body): ApiJson<AddParticipant>,
) -> Created<Participant> {
    let role = body.role.unwrap_or(ConversationRole::Member);
    created_by(
        me.services()
            .add_participant(&me.actor, me.at, body.user_id, role),
    )
    .await
}

/// Remove a participant (or leave, with your own id).
#[utoipa::path(delete, path = "/conversations/{c}/participants/{user}", tag = "conversations",
    params(("c" = String, Path, format = Uuid), ("user" = String, Path, format = Uuid)), responses((status = 204), (status = 409, body = ErrorBody)))]
async fn remove_participant(me: Caller<(ConversationId, UserId)>) -> NoContent {
    let (c, user) = me.at;
    no_content(me.services().remove_participant(&me.actor, c, user)).await
}
