//! The embeddable support widget (WEB-4, AGENT-6).
//!
//! **Keys** are managed by org owners and admins (`OrgAction::ManageWidgetKeys`, scope
//! `org:admin`; AZ-5a refuses a conversation-limited credential). A key is publishable; its
//! identity secret is shown once, sealed at rest (`SealedColumn::WidgetIdentitySecret`) and
//! opened only to check a visitor's signature. Each key has two bot accounts of its org that
//! no credential opens (like an agent's): visitors' messages are written as its *visitor* bot
//! (`visitor-…`), notices as its *system* bot (`widget-…`).
//!
//! **Visitors** never hold a Conclave credential: a visitor session (`Visitor`, from
//! `Services::identify_visitor`) lets them act only through these functions, each of which
//! reaches nothing but the visitor's own widget conversation. A send goes through
//! `send_message` as the key's visitor bot, with a credential limited to that one
//! conversation, so guards, fan-out and webhooks apply as to any message.
//!
//! **Conversations** are org group conversations visible to the key's team, with the visitor
//! bot (owner), the system bot and the key's agent as participants, and a
//! `widget_conversations` row holding the status: `bot` while the agent answers, `open` after
//! a handoff, `resolved`. Every status change is one conditional UPDATE, audited
//! (`widget.handoff` for each handoff, AGENT-6; `widget.status_changed` otherwise) and
//! announced as `CONVERSATION_UPDATE` with `source` and `status`.

mod inbox;
mod keys;
mod visitors;

use super::{ClientMeta, Result};
use crate::error::ServiceError;
use crate::ids::*;
use crate::keyring::SecretRef;
use crate::model::{Conversation, Message, UserSummary};
use crate::secretbox::SealedColumn;
use crate::store::widget::*;
use crate::types::*;
use crate::widget::*;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

/// What a visitor bot's username starts with: such an author's messages are a visitor's.
pub const VISITOR_USERNAME_PREFIX: &str = "visitor-";
/// What a widget key's system bot's username starts with.
pub const WIDGET_USERNAME_PREFIX: &str = "widget-";
/// The notice posted when a conversation is handed to people.
pub const HANDOFF_NOTICE: &str =
    "This conversation was handed to the support team. Someone will answer here soon.";
/// What an agent's answer that was only a handoff marker becomes.
pub const HANDOFF_ONLY_ANSWER: &str = "Let me connect you with a person from our team.";
/// The field of the visitor bot's `CONVERSATION_CREATE` that names the visitor (see
/// `visitor_conversation`).
pub const WIDGET_VISITOR_FIELD: &str = "widget_visitor_id";
/// Messages a visitor's history holds at most (the newest).
pub const HISTORY_MAX: usize = 200;

fn secret_ref(key: Uuid) -> SecretRef {
    SecretRef {
        column: SealedColumn::WidgetIdentitySecret,
        row: key,
    }
}

/// A key's settings at creation, parsed at the edge.
#[derive(Debug)]
pub struct NewWidgetKeySettings {
    pub name: DisplayName,
    pub allowed_origins: Vec<WidgetOrigin>,
    pub team_id: TeamId,
    pub agent_id: Option<Uuid>,
    pub identity: IdentityMode,
    pub prechat_form: bool,
}

/// A change to a key; `None` leaves a field, `agent_id: Some(None)` removes the agent.
#[derive(Debug, Default)]
pub struct WidgetKeyChanges {
    pub name: Option<DisplayName>,
    pub allowed_origins: Option<Vec<WidgetOrigin>>,
    pub team_id: Option<TeamId>,
    pub agent_id: Option<Option<Uuid>>,
    pub identity: Option<IdentityMode>,
    pub prechat_form: Option<bool>,
}

/// A key just made, with its identity secret (shown this once).
pub struct CreatedWidgetKey {
    pub key: WidgetKey,
    pub identity_secret: SecretString,
}

/// A visitor, as `Services::identify_visitor` found them: the live key, the session whose
/// secret was shown, and the person.
#[derive(Debug, Clone)]
pub struct Visitor {
    pub key: WidgetKey,
    pub session: WidgetSession,
    pub visitor: WidgetVisitor,
    pub meta: ClientMeta,
}

/// The host's signed-in user with its signature (HMAC-SHA256 of `user.user_id`, hex).
#[derive(Debug, Clone)]
pub struct SignedIdentity {
    pub user: HostUser,
    pub hash: String,
}

/// The host's signed-in user, once its proof verified.
#[derive(Debug, Clone)]
pub struct HostUser {
    pub user_id: ExternalUserId,
    pub name: Option<DisplayName>,
    pub email: Option<Email>,
}

/// Checks a host's visitor token with the key's identity secret (its text's bytes) at the
/// services' time: the user it names, or why not (403 `identity_invalid`). The server supplies
/// it (its JWT library); core opens the secret only for it.
pub type TokenCheck<'a> = dyn Fn(&[u8], DateTime<Utc>) -> Result<HostUser> + Send + Sync + 'a;

/// How the host vouches for a signed-in visitor (WEB-4).
pub enum HostIdentity<'a> {
    /// `user_id` with its HMAC-SHA256.
    Signed(SignedIdentity),
    /// A short-lived token (a JWT), checked by the server's check.
    Token(&'a TokenCheck<'a>),
}

/// What a visitor typed into the pre-chat form.
#[derive(Debug, Clone, Default)]
pub struct VisitorProfile {
    pub name: Option<DisplayName>,
    pub email: Option<Email>,
}

/// A session begun or resumed.
pub struct StartedSession {
    pub session_id: String,
    /// The secret the visitor sends as `X-Widget-Visitor` (a resumed session's is the one it
    /// showed: the server keeps only its hash).
    pub visitor_secret: SecretString,
    pub conversation: Option<WidgetConversation>,
    pub visitor: WidgetVisitor,
}

/// Who a widget message is from, as the visitor sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WidgetRole {
    Visitor,
    Agent,
    Staff,
    System,
}

/// A message as the widget shows it: plain text only (HTML content reduced to its text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct WidgetMessage {
    pub id: MessageId,
    pub role: WidgetRole,
    pub author_name: String,
    pub content: String,
    pub status: MessageStatus,
    pub created_at: DateTime<Utc>,
}

/// What a widget message is made from: a stored message, or a message event's REST object.
pub struct MessageFacts<'a> {
    pub id: MessageId,
    pub author: &'a UserSummary,
    pub content: Option<&'a str>,
    pub format: MessageFormat,
    pub status: MessageStatus,
    pub created_at: DateTime<Utc>,
    pub deleted: bool,
}

impl<'a> From<&'a Message> for MessageFacts<'a> {
    fn from(m: &'a Message) -> Self {
        Self {
            id: m.id,
            author: &m.author,
            content: m.content.as_deref(),
            format: m.format,
            status: m.status,
            created_at: m.created_at,
            deleted: m.deleted_at.is_some(),
        }
    }
}

/// The widget's view of a message of `visitor`'s conversation; `None` for a deleted one.
#[must_use]
pub fn widget_message(
    key: &WidgetKey,
    visitor: &WidgetVisitor,
    m: &MessageFacts<'_>,
) -> Option<WidgetMessage> {
    if m.deleted {
        return None;
    }
    let author = m.author;
    let shown = || (author.display_name.clone()).unwrap_or_else(|| author.username.clone());
    let (role, author_name) = if author.id == key.visitor_user_id {
        let name = (visitor.name.clone()).unwrap_or_else(|| "You".to_owned());
        (WidgetRole::Visitor, name)
    } else if author.id == key.system_user_id {
        (WidgetRole::System, key.name.clone())
    } else if author.kind == UserKind::Bot
        && author
            .username
            .starts_with(super::bots::AGENT_USERNAME_PREFIX)
    {
        (WidgetRole::Agent, shown())
    } else {
        (WidgetRole::Staff, shown())
    };
    let raw = m.content.unwrap_or_default();
    let content = match m.format {
        MessageFormat::Text => raw.to_owned(),
        MessageFormat::Html => crate::sanitize::html_text(raw),
    };
    Some(WidgetMessage {
        id: m.id,
        role,
        author_name,
        content,
        status: m.status,
        created_at: m.created_at,
    })
}

/// The REST conversation object of `conv` with its `source` and `status` (WEB-4), for events.
#[must_use]
pub fn sourced(conv: &Conversation, w: Option<&WidgetConversation>) -> serde_json::Value {
    serde_json::to_value(super::views::SourcedConversation::new(conv.clone(), w))
        .unwrap_or_default()
}

/// Who handed a conversation to people.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandoffBy {
    Visitor,
    Agent,
}

/// A display name of at most 64 characters from `text`.
fn display_name(text: &str) -> Result<DisplayName> {
    let cut: String = text.chars().take(64).collect();
    DisplayName::parse(&cut).map_err(|r| ServiceError::Internal(format!("display name: {r}")))
}
