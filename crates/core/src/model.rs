//! The records services work with and the store persists. Where a record is shown to clients
//! as it is, it derives `Serialize` + `ToSchema` with exactly the REST shape; secrets (password
//! hashes, token hashes) never live in these structs.

use crate::credential::{Cidr, Credential, Scope};
use crate::ids::*;
use crate::types::*;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

pub use crate::types::MessageStatus;

/// An account, as its owner and server admins see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub display_name: Option<String>,
    pub email: Option<String>,
    /// The server knows the account owns `email`: a server admin created the account with it
    /// (or marked it), or a provider that created the account said it verified it. Only such
    /// an email may link an outside identity to the account (`link_existing`).
    pub email_verified: bool,
    pub kind: UserKind,
    pub server_admin: bool,
    pub disabled: bool,
    /// A server admin requires this user to turn on two-factor authentication: until they do,
    /// their session reaches only their account and the 2FA setup routes.
    pub require_2fa: bool,
    pub created_at: DateTime<Utc>,
}

impl User {
    #[must_use]
    pub fn summary(&self) -> UserSummary {
        UserSummary {
            id: self.id,
            username: self.username.clone(),
            display_name: self.display_name.clone(),
            kind: self.kind,
        }
    }
}

/// How other people see an account: a message's author, a member, a participant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct UserSummary {
    pub id: UserId,
    pub username: String,
    pub display_name: Option<String>,
    pub kind: UserKind,
}

/// What creating an account needs.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub id: UserId,
    pub username: Username,
    pub display_name: Option<DisplayName>,
    pub email: Option<Email>,
    /// See [`User::email_verified`]; false without an email.
    pub email_verified: bool,
    /// PHC string of the Argon2id hash; `None` for accounts that cannot log in with a password.
    pub password_hash: Option<String>,
    pub kind: UserKind,
    pub server_admin: bool,
    pub created_at: DateTime<Utc>,
}

/// A signed-in device. The token itself is never stored; see `token`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Session {
    pub id: SessionId,
    pub user_id: UserId,
    /// The User-Agent it signed in with, truncated.
    pub device: Option<String>,
    pub ip: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    /// Absolute expiry; the idle expiry is `last_seen_at` + the configured idle time.
    pub expires_at: DateTime<Utc>,
    /// Whether it lives in the browser cookie (and so needs the CSRF token).
    pub cookie: bool,
    /// The server admin acting as this user through it (AUTH-12), when it is an impersonation.
    pub impersonator: Option<UserId>,
}

/// An organization (tenant).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Org {
    pub id: OrgId,
    pub name: String,
    pub require_2fa: bool,
    pub message_retention_days: Option<i32>,
    pub audit_retention_days: Option<i32>,
    pub erasure: ErasurePolicy,
    pub created_at: DateTime<Utc>,
}

/// A user's membership in an org.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Member {
    pub org_id: OrgId,
    pub user: UserSummary,
    pub role: OrgRole,
    pub joined_at: DateTime<Utc>,
}

/// An org invite; the code is shown once at creation and stored only as a keyed hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Invite {
    pub id: InviteId,
    pub org_id: OrgId,
    pub role: OrgRole,
    pub max_uses: Option<i32>,
    pub uses: i32,
    pub expires_at: Option<DateTime<Utc>>,
    /// The one user who may take it (AZ-7), by username as lowercased; `None` for a code
    /// anyone holding it may use.
    pub username: Option<String>,
    pub created_by: UserId,
    pub created_at: DateTime<Utc>,
}

/// An invite naming the caller, as they see it in their pending invites (AZ-7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PendingInvite {
    pub id: InviteId,
    pub org_id: OrgId,
    pub org_name: String,
    pub role: OrgRole,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A named group of org members, used for conversation visibility.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Team {
    pub id: TeamId,
    pub org_id: OrgId,
    pub name: String,
    pub member_ids: Vec<UserId>,
    pub created_at: DateTime<Utc>,
}

/// A conversation as the REST API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Conversation {
    pub id: ConversationId,
    pub org_id: OrgId,
    pub kind: ConversationKind,
    pub name: Option<String>,
    pub visibility: Visibility,
    pub archived: bool,
    pub created_by: UserId,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The `seq` of the newest message (0 when empty).
    pub last_seq: i64,
    /// For direct conversations: the sorted pair, so one pair has one conversation per org.
    #[serde(skip)]
    pub direct_key: Option<String>,
}

/// A participant of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Participant {
    pub conversation_id: ConversationId,
    pub user: UserSummary,
    pub role: ConversationRole,
    pub joined_at: DateTime<Utc>,
}

/// A message; a deleted one keeps its place with `content: null` and `deleted_at` set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Message {
    pub id: MessageId,
    pub conversation_id: ConversationId,
    pub seq: i64,
    pub author: UserSummary,
    pub content: Option<String>,
    pub format: MessageFormat,
    pub created_at: DateTime<Utc>,
    pub edited_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub reply_to: Option<MessageId>,
    /// Files attached (ordered by id, so by upload); empty once the message is deleted.
    pub attachments: Vec<crate::files::FileInfo>,
    /// `complete` unless an agent's answer is still streaming or ended early (AGENT-3).
    pub status: MessageStatus,
    /// Why a `failed` or `stopped` message ended (`provider_error`, `timeout`, `stopped`…);
    /// null otherwise.
    pub status_reason: Option<String>,
}

/// An earlier version of an edited message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct MessageVersion {
    pub id: MessageVersionId,
    pub message_id: MessageId,
    pub content: String,
    pub format: MessageFormat,
    /// When this version was written (the message's creation or an earlier edit).
    pub written_at: DateTime<Utc>,
    /// When the next edit replaced it.
    pub replaced_at: DateTime<Utc>,
}

/// A message about to be stored; `seq` is assigned by the store inside the insert transaction.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub id: MessageId,
    pub conversation_id: ConversationId,
    pub author_id: UserId,
    pub content: String,
    pub format: MessageFormat,
    pub reply_to: Option<MessageId>,
    pub created_at: DateTime<Utc>,
    /// Files the message claims: the author's own uploads to the conversation, not attached
    /// yet (all of them or the insert is refused).
    pub attachments: Vec<FileId>,
    /// Client idempotency key with a fingerprint of the request it was first used with.
    pub idempotency: Option<(IdempotencyKey, String)>,
    /// Keys older than this are forgotten.
    pub idempotency_since: DateTime<Utc>,
    /// `complete` for every send; `streaming` for an agent's answer opened empty (AGENT-3).
    pub status: MessageStatus,
}

/// Per-conversation state a gateway client needs at READY to catch up over REST.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ConversationState {
    pub id: ConversationId,
    /// The `seq` of the newest message.
    pub last_seq: i64,
    pub last_read_message_id: Option<MessageId>,
    /// Messages after the read marker (all of them when there is none).
    pub unread_count: i64,
}

/// What a gateway session leaves behind when its connection ends, so a RESUME on any node
/// within the window can replay exactly what it missed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewaySession {
    pub id: uuid::Uuid,
    pub user_id: UserId,
    /// The login session it was authenticated with; RESUME must present the same credential.
    pub auth_session_id: SessionId,
    /// The last `s` sent to the client.
    pub last_s: i64,
    /// The fan-out position of the last event the session had seen.
    pub position: i64,
    /// Which fan-out stream `position` belongs to (positions of another stream mean nothing).
    pub epoch: String,
    /// The conversations it was receiving events for at that moment.
    pub conversations: Vec<ConversationId>,
    pub saved_at: DateTime<Utc>,
}

/// Which secrets a bot or API key has, by id, and the non-secret tail of the current one (for
/// the masked form). A secret's id is the session id its gateway sockets go by, so revoking or
/// replacing it closes exactly those sockets (`Control::RevokeSession`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretIds {
    pub current: SessionId,
    /// Last four characters of the current secret (checksum, not randomness).
    pub hint: String,
    /// The secret replaced by the last rotation, while its grace period lasts.
    pub previous: Option<SessionId>,
}

impl SecretIds {
    /// A credential's first secret: nothing rotated out yet.
    #[must_use]
    pub fn first(current: SessionId, hint: String) -> Self {
        Self {
            current,
            hint,
            previous: None,
        }
    }
}

/// An API key as its owner sees it (AUTH-7). The key itself is shown once and stored only as
/// a keyed hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ApiKey {
    pub id: ApiKeyId,
    /// The owner: the key acts as this user, never beyond their current rights.
    pub user_id: UserId,
    /// The only org the key acts in.
    pub org_id: OrgId,
    pub name: String,
    pub scopes: Vec<Scope>,
    /// When set, the only conversations the key reaches.
    pub conversation_ids: Option<Vec<ConversationId>>,
    pub expires_at: Option<DateTime<Utc>>,
    /// When set, requests from other addresses get 403 `ip_not_allowed`.
    #[schema(value_type = Option<Vec<String>>)]
    pub allowed_ips: Option<Vec<Cidr>>,
    pub tier: KeyTier,
    /// Written at most once a minute.
    pub last_used_at: Option<DateTime<Utc>>,
    pub last_used_ip: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Until when the key replaced by the last rotation still works.
    pub previous_key_expires_at: Option<DateTime<Utc>>,
    #[serde(skip)]
    pub secrets: SecretIds,
}

impl ApiKey {
    /// What a request with this key may do, as the credential it authenticates with.
    #[must_use]
    pub fn into_credential(self) -> Credential {
        Credential::ApiKey {
            key: self.id,
            org: self.org_id,
            scopes: self.scopes,
            conversations: self.conversation_ids,
            tier: self.tier,
        }
    }
}

/// An org's bot (AUTH-6): an account of kind `bot`, a member of its org, with a token shown once
/// and stored only as a keyed hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Bot {
    pub id: BotId,
    pub org_id: OrgId,
    /// The bot's account: its messages show it with `kind: "bot"`.
    pub user_id: UserId,
    pub name: String,
    /// When set, the only conversations the bot acts in (it must also participate).
    pub conversation_ids: Option<Vec<ConversationId>>,
    /// Who created it (`null` once that account is gone).
    pub created_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
    /// Until when the token replaced by the last rotation still works.
    pub previous_token_expires_at: Option<DateTime<Utc>>,
    #[serde(skip)]
    pub secrets: SecretIds,
}

impl Bot {
    /// What a request with this bot's token may do, as the credential it authenticates with.
    #[must_use]
    pub fn into_credential(self) -> Credential {
        Credential::Bot {
            bot: self.id,
            org: self.org_id,
            conversations: self.conversation_ids,
        }
    }
}
