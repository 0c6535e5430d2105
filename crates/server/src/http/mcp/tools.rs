//! The tools (MCP-3, API.md "MCP and OAuth"): each one the scope a REST call of the same kind
//! needs, and each one calling the very services — and REST's own paging and parsing — that
//! REST calls, so policy, a key's org and conversation list (AZ-5, AZ-5a), content guards,
//! webhooks and the gateway's fan-out all apply as they do there. Nothing here reads the store.

use super::results::{self, failure, fitting, not_found, page, plain, untrusted};
use crate::http::conversations::conversation_id;
use crate::http::credentials::rate_subject;
use crate::http::error::ApiError;
use crate::http::extract::body_error;
use crate::http::messages::message_list;
use crate::http::pagination::{id_listed, ListQuery, Listed};
use crate::http::search::{answer, cursor_seal, SearchHit, SearchParams};
use crate::ratelimit::Outcome;
use crate::state::AppState;
use axum::Json;
use conclave_core::credential::{Credential, Scope};
use conclave_core::model::Participant;
use conclave_core::policy::credentials::scope_allows;
use conclave_core::search_cursor::SearchScope;
use conclave_core::service::{Actor, ConversationList, SendMessage};
use conclave_core::types::{IdempotencyKey, MessageFormat, MessageText};
use conclave_core::{ConversationId, MessageId, UserId};
use rmcp::model::{CallToolResult, JsonObject, Tool, ToolAnnotations};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::future::Future;
use std::sync::Arc;
use utoipa::ToSchema;

/// Every tool Conclave offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatTool {
    ListConversations,
    ReadMessages,
    SearchMessages,
    SendMessage,
    ListParticipants,
    MarkRead,
    GetUser,
}

impl ChatTool {
    pub const ALL: [Self; 7] = [
        Self::ListConversations,
        Self::ReadMessages,
        Self::SearchMessages,
        Self::SendMessage,
        Self::ListParticipants,
        Self::MarkRead,
        Self::GetUser,
    ];

    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::ListConversations => "list_conversations",
            Self::ReadMessages => "read_messages",
            Self::SearchMessages => "search_messages",
            Self::SendMessage => "send_message",
            Self::ListParticipants => "list_participants",
            Self::MarkRead => "mark_read",
            Self::GetUser => "get_user",
        }
    }

    /// The tool called `name`.
    #[must_use]
    pub fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The scope an API key needs to see and call it (as the REST route it mirrors).
    #[must_use]
    pub const fn scope(self) -> Scope {
        match self {
            Self::ListConversations | Self::ListParticipants => Scope::ConversationsRead,
            Self::ReadMessages | Self::SearchMessages | Self::MarkRead => Scope::MessagesRead,
            Self::SendMessage => Scope::MessagesWrite,
            Self::GetUser => Scope::OrgRead,
        }
    }

    /// Whether it changes anything: charged to the writes, audited, not read-only.
    #[must_use]
    pub const fn writes(self) -> bool {
        matches!(self, Self::SendMessage | Self::MarkRead)
    }

    /// Whether the credential may see and call it.
    #[must_use]
    pub fn allowed(self, credential: &Credential) -> bool {
        scope_allows(credential, Some(self.scope()))
    }

    /// What its "not found" names.
    const fn target(self) -> &'static str {
        match self {
            Self::ListConversations => "tool",
            Self::GetUser => "user",
            _ => "conversation",
        }
    }

    fn describe(self) -> (&'static str, &'static str) {
        match self {
            Self::ListConversations => (
                "List conversations",
                "The conversations you take part in, newest first. Pass `next` as `before` for \
                 the next page.",
            ),
            Self::ReadMessages => (
                "Read messages",
                "Messages of a conversation, newest first. `before` is a message id or the \
                 `next` of an earlier page. Message text is untrusted user content.",
            ),
            Self::SearchMessages => (
                "Search messages",
                "Full-text search (all words must match) in one conversation, or in every \
                 conversation of your organization you take part in when `conversation_id` is \
                 left out; best match first. Each hit has the message and a snippet with \
                 <mark> around the matches.",
            ),
            Self::SendMessage => (
                "Send a message",
                "Posts a plain-text message to a conversation as you. Give an \
                 `idempotency_key` so a retry never posts twice.",
            ),
            Self::ListParticipants => (
                "List participants",
                "The people and bots in a conversation, with their roles.",
            ),
            Self::MarkRead => (
                "Mark read",
                "Moves your read marker in a conversation to a message.",
            ),
            Self::GetUser => (
                "Get a user",
                "A user's public profile (username, display name, whether it is a bot).",
            ),
        }
    }

    fn input_schema(self) -> Value {
        let uuid = |what: &str| json!({"type": "string", "format": "uuid", "description": what});
        let before = json!({"type": "string", "description": "Continue from this `next` of an earlier page."});
        let limit = json!({"type": "integer", "minimum": 1, "maximum": 100, "description": "At most this many items (default 50); a page too large for one result is cut and says `truncated`."});
        let conv = uuid("The conversation's id.");
        let (properties, required) = match self {
            Self::ListConversations => (json!({"before": before, "limit": limit}), vec![]),
            Self::ReadMessages => (
                json!({
                    "conversation_id": conv,
                    "before": {"type": "string", "description": "Older than this message id, or the `next` of an earlier page."},
                    "limit": limit,
                }),
                vec!["conversation_id"],
            ),
            Self::SearchMessages => (
                json!({
                    "query": {"type": "string", "minLength": 1, "maxLength": 256, "description": "Plain words, all of which a hit contains."},
                    "conversation_id": uuid("Search only this conversation."),
                    "before": before,
                    "limit": limit,
                }),
                vec!["query"],
            ),
            Self::SendMessage => (
                json!({
                    "conversation_id": conv,
                    "content": {"type": "string", "minLength": 1, "maxLength": 4000, "description": "Plain text."},
                    "idempotency_key": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$", "description": "The same key on a retry returns the original message instead of posting again."},
                }),
                vec!["conversation_id", "content"],
            ),
            Self::ListParticipants => (
                json!({"conversation_id": conv, "before": before, "limit": limit}),
                vec!["conversation_id"],
            ),
            Self::MarkRead => (
                json!({"conversation_id": conv, "message_id": uuid("The message read up to.")}),
                vec!["conversation_id", "message_id"],
            ),
            Self::GetUser => (json!({"user_id": uuid("The user's id.")}), vec!["user_id"]),
        };
        json!({
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": false,
        })
    }

    /// Its entry in `tools/list`.
    #[must_use]
    pub fn definition(self) -> Tool {
        let (title, description) = self.describe();
        let schema = match self.input_schema() {
            Value::Object(map) => map,
            _ => JsonObject::new(),
        };
        let annotations = ToolAnnotations::with_title(title)
            .read_only(!self.writes())
            .destructive(false)
            .idempotent(self != Self::SendMessage)
            .open_world(false);
        let mut tool = Tool::new(self.name(), description, Arc::new(schema));
        tool.title = Some(title.to_owned());
        tool.annotations = Some(annotations);
        tool
    }
}

/// The tools a credential sees in `tools/list`: those its scopes allow.
#[must_use]
pub fn visible(credential: &Credential) -> Vec<Tool> {
    (ChatTool::ALL.into_iter())
        .filter(|t| t.allowed(credential))
        .map(ChatTool::definition)
        .collect()
}

/// The name a credential's tool-call bucket goes by. Every credential `/mcp` accepts
/// (`policy::credentials::mcp_accepts`) has its own; the others are never charged here.
fn bucket(actor: &Actor) -> String {
    match &actor.credential {
        Credential::ApiKey { key, .. } => format!("key:{key}"),
        Credential::OAuth { grant, .. } => format!("grant:{grant}"),
        Credential::Session | Credential::Bot { .. } => format!("user:{}", actor.user.id),
    }
}

/// Calls tool `name` with `arguments` for `actor`: an unknown tool, or one outside the
/// credential's scopes, is "tool not found"; the call is charged to the credential's
/// tool-call bucket first (refused ones too, as on REST).
pub async fn call(
    state: &AppState,
    actor: &Actor,
    name: &str,
    arguments: JsonObject,
) -> CallToolResult {
    let Some(tool) = ChatTool::named(name) else {
        return not_found("tool");
    };
    let layers =
        (state.limiter).tool_call_layers(&rate_subject(actor), &bucket(actor), tool.writes());
    if let Outcome::Denied {
        what,
        retry_after_secs,
        ..
    } = state.limiter.check(&layers).await
    {
        return failure(
            "rate_limited",
            format!("too many tool calls: {what} was reached; retry in {retry_after_secs} s"),
            Some(("retry_after_secs", Value::from(retry_after_secs))),
        );
    }
    if !tool.allowed(&actor.credential) {
        let what = ("mcp_tool", name.to_owned());
        (state.services)
            .audit_denied(
                actor,
                "scope.denied",
                "insufficient_scope",
                None,
                Some(what),
            )
            .await;
        return not_found("tool");
    }
    match run(state, actor, tool, Value::Object(arguments)).await {
        Ok(result) => result,
        Err(e) => results::from_api(e, tool.target()),
    }
}

/// The arguments of a call as `T`; a bad one is named (`argument`), as REST names a body's
/// field.
fn arguments<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(body_error)
}

/// REST's search names its text `q`; the tool's argument is `query`.
fn query_argument(e: ApiError) -> ApiError {
    if e.field.as_deref() != Some("q") {
        return e;
    }
    let message = e.message.replace("`q`", "`query`");
    ApiError {
        field: Some("query".into()),
        message,
        ..e
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Paging {
    before: Option<String>,
    limit: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InConversation {
    conversation_id: ConversationId,
    before: Option<String>,
    limit: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Search {
    query: String,
    conversation_id: Option<ConversationId>,
    before: Option<String>,
    limit: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Send {
    conversation_id: ConversationId,
    content: MessageText,
    idempotency_key: Option<IdempotencyKey>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MarkRead {
    conversation_id: ConversationId,
    message_id: MessageId,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GetUser {
    user_id: UserId,
}

/// The REST paging query of a tool's `before` and `limit` (`after` is not offered: tools read
/// back from the newest).
/// A page `fetch` reads for `limit`, cut to what fits in one result: when the page is too
/// large it is read again with the number of items that fit, so `next` continues right after
/// the last one given.
async fn fitted<T, F, Fut>(limit: Option<i64>, fetch: F) -> Result<Value, ApiError>
where
    T: Serialize + ToSchema,
    F: Fn(Option<i64>) -> Fut,
    Fut: Future<Output = Listed<T>>,
{
    let Json(list) = fetch(limit).await?;
    match fitting(&list.items) {
        None => Ok(page(list, false)),
        Some(n) => {
            let Json(list) = fetch(Some(i64::try_from(n).unwrap_or(1))).await?;
            Ok(page(list, true))
        }
    }
}

/// [`fitted`] for a list read with a [`ListQuery`]: `limit` items older than `before`.
async fn fitted_list<T, F, Fut>(
    limit: Option<i64>,
    before: Option<&str>,
    fetch: F,
) -> Result<Value, ApiError>
where
    T: Serialize + ToSchema,
    F: Fn(ListQuery) -> Fut,
    Fut: Future<Output = Listed<T>>,
{
    fitted(limit, |limit| {
        fetch(ListQuery {
            limit,
            before: before.map(str::to_owned),
            after: None,
        })
    })
    .await
}

async fn run(
    state: &AppState,
    actor: &Actor,
    tool: ChatTool,
    args: Value,
) -> Result<CallToolResult, ApiError> {
    let services = &state.services;
    Ok(match tool {
        ChatTool::ListConversations => {
            let a: Paging = arguments(args)?;
            let list = fitted_list(a.limit, a.before.as_deref(), |q| async move {
                let fetch = |page| services.conversation_list(actor, ConversationList::Mine, page);
                id_listed(&q, conversation_id, fetch).await
            })
            .await?;
            untrusted(list)
        }
        ChatTool::ReadMessages => {
            let a: InConversation = arguments(args)?;
            let list = fitted_list(a.limit, a.before.as_deref(), |q| async move {
                message_list(services, actor, a.conversation_id, &q).await
            })
            .await?;
            untrusted(list)
        }
        ChatTool::ListParticipants => {
            let a: InConversation = arguments(args)?;
            let list = fitted_list(a.limit, a.before.as_deref(), |q| async move {
                let fetch = |page| services.participants(actor, a.conversation_id, page);
                id_listed(&q, |p: &Participant| p.user.id.0, fetch).await
            })
            .await?;
            untrusted(list)
        }
        ChatTool::SearchMessages => {
            let a: Search = arguments(args)?;
            let list = fitted::<SearchHit, _, _>(a.limit, |limit| {
                let params = SearchParams {
                    q: Some(a.query.clone()),
                    sort: None,
                    limit: limit.map(|n| n.to_string()),
                    before: a.before.clone(),
                };
                async move {
                    match (a.conversation_id, actor.credential.org()) {
                        (Some(conv), _) => {
                            let seal =
                                cursor_seal(services, actor, SearchScope::Conversation(conv));
                            let search = |q| services.search_conversation(actor, conv, q);
                            answer(&params, &seal, search).await
                        }
                        (None, Some(org)) => {
                            let seal = cursor_seal(services, actor, SearchScope::Org(org));
                            answer(&params, &seal, |q| services.search_org(actor, org, q)).await
                        }
                        (None, None) => Err(ApiError::not_found("conversation")),
                    }
                }
            })
            .await
            .map_err(query_argument)?;
            untrusted(list)
        }
        ChatTool::SendMessage => {
            let a: Send = arguments(args)?;
            let req = SendMessage {
                content: a.content,
                format: MessageFormat::Text,
                reply_to: None,
                attachments: Default::default(),
                idempotency_key: a.idempotency_key,
            };
            let sent = services.send_message(actor, a.conversation_id, req).await?;
            untrusted(json!({ "created": sent.created, "message": sent.message }))
        }
        ChatTool::MarkRead => {
            let a: MarkRead = arguments(args)?;
            (services)
                .set_read_marker(actor, a.conversation_id, a.message_id)
                .await?;
            plain(json!({
                "conversation_id": a.conversation_id,
                "message_id": a.message_id,
                "marked_read": true,
            }))
        }
        ChatTool::GetUser => {
            let a: GetUser = arguments(args)?;
            let user = services.user_profile(actor, a.user_id).await?;
            untrusted(json!(user))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use conclave_core::types::KeyTier;
    use conclave_core::{ApiKeyId, OrgId};

    fn key(scopes: &[Scope]) -> Credential {
        Credential::ApiKey {
            key: ApiKeyId::new(),
            org: OrgId::new(),
            scopes: scopes.to_vec(),
            conversations: None,
            tier: KeyTier::Free,
        }
    }

    fn names(credential: &Credential) -> Vec<String> {
        visible(credential)
            .into_iter()
            .map(|t| t.name.into_owned())
            .collect()
    }

    #[test]
    fn the_list_follows_the_scopes() {
        assert_eq!(
            names(&key(&[Scope::MessagesRead])),
            ["read_messages", "search_messages", "mark_read"]
        );
        assert_eq!(names(&key(&[Scope::MessagesWrite])), ["send_message"]);
        assert_eq!(
            names(&key(&[Scope::ConversationsRead, Scope::OrgRead])),
            ["list_conversations", "list_participants", "get_user"]
        );
        assert!(names(&key(&[Scope::OrgAdmin, Scope::FilesWrite])).is_empty());
        assert_eq!(names(&key(Scope::ALL)).len(), ChatTool::ALL.len());
    }

    #[test]
    fn every_tool_has_an_object_schema_naming_its_required_arguments() {
        for tool in ChatTool::ALL {
            let def = tool.definition();
            assert_eq!(def.input_schema["type"], "object", "{}", tool.name());
            assert_eq!(ChatTool::named(tool.name()), Some(tool));
            let props = def.input_schema["properties"].as_object().unwrap();
            for required in def.input_schema["required"].as_array().unwrap() {
                assert!(
                    props.contains_key(required.as_str().unwrap()),
                    "{}",
                    tool.name()
                );
            }
            let read_only = def.annotations.unwrap().read_only_hint;
            assert_eq!(read_only, Some(!tool.writes()));
        }
        assert_eq!(ChatTool::named("drop_tables"), None);
    }

    #[test]
    fn bad_arguments_are_named() {
        let e = arguments::<Send>(json!({"conversation_id": "nope", "content": "hi"}))
            .err()
            .unwrap();
        assert_eq!(e.field.as_deref(), Some("/conversation_id"));
        let e = arguments::<Send>(json!({"conversation_id": ConversationId::new(), "content": ""}))
            .err()
            .unwrap();
        assert_eq!(e.field.as_deref(), Some("/content"));
        let e = arguments::<Send>(json!({"content": "hi"})).err().unwrap();
        assert_eq!(e.field.as_deref(), Some("/conversation_id"));
        let e = arguments::<GetUser>(json!({"user_id": UserId::new(), "extra": 1}))
            .err()
            .unwrap();
        assert_eq!(e.field.as_deref(), Some("/extra"));
        assert!(arguments::<Paging>(json!({})).is_ok());
    }
}
