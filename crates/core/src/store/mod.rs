//! The storage contract: one narrow trait per area (users, sessions, orgs, invites, teams,
//! conversations, messages, search, real time, 2FA and throttling, bots and keys, audit and retention,
//! health, privacy, the secrets key ring, files), and [`Store`], every area at once, which
//! `Services` holds as `Arc<dyn Store>`. Two backends (SQLite and PostgreSQL) implement the areas
//! and are held to the same conformance suite (`conclave-store-conformance`). Every multi-row
//! invariant (sequence numbers, last owner, invite use counts, idempotency) is enforced inside
//! the backend's transaction, never by read-then-write in a service; every mutating call takes
//! its audit rows and appends them in that same transaction.

pub mod agents;
mod audit;
mod conversations;
mod credentials;
mod files;
pub mod guards;
mod health;
mod invites;
pub mod keyring;
mod messages;
mod mfa;
pub mod oauth;
mod orgs;
mod privacy;
mod realtime;
mod search;
mod sessions;
pub mod sso;
mod teams;
mod users;
pub mod webhooks;
pub mod widget;

pub use agents::AgentStore;
pub use audit::{AuditStore, RetentionStore};
pub use conversations::{ConversationPatch, ConversationStore, ConversationUpdate, Joining};
pub use credentials::{CredentialStore, NewBot, NewSecret, Rotation, SecretSlot};
pub use files::FileStore;
pub use guards::GuardStore;
pub use health::{HealthAlert, HealthStore};
pub use invites::{InviteStore, InviteUse};
pub use keyring::SecretKeyStore;
pub use messages::{Inserted, MessageEdit, MessageStore, StreamChange, KEPT_VERSIONS};
pub use mfa::{LoginThrottleStore, MfaStore};
pub use oauth::OAuthStore;
pub use orgs::{DecidedOn, Membership, OrgPatch, OrgStore, Removed, Transfer};
pub use privacy::{ErasedAccount, Erasure, PrivacyStore};
pub use realtime::{ReadMarker, RealtimeStore};
pub use search::{SearchFrom, SearchHit, SearchRequest, SearchStore};
pub use sessions::{Seen, SessionStore, SessionsDeleted};
pub use sso::{IdentityKey, IdentityKind, LinkedIdentity, SsoStore};
pub use teams::TeamStore;
pub use users::{PasswordChange, PasswordReset, UserFlags, UserStore};
pub use webhooks::WebhookStore;
pub use widget::WidgetStore;

use crate::types::Limit;

/// Every area of the store at once: what a backend offers and what `Services` holds. A backend
/// implements it (an empty `impl`) once it implements every area trait; a service or fake that
/// needs one area names that trait instead.
pub trait Store:
    HealthStore
    + UserStore
    + SessionStore
    + OrgStore
    + InviteStore
    + TeamStore
    + ConversationStore
    + MessageStore
    + SearchStore
    + RealtimeStore
    + MfaStore
    + LoginThrottleStore
    + CredentialStore
    + AuditStore
    + RetentionStore
    + PrivacyStore
    + SecretKeyStore
    + WebhookStore
    + FileStore
    + AgentStore
    + GuardStore
    + SsoStore
    + WidgetStore
    + OAuthStore
{
}

/// A conflict the store detected atomically.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    UsernameTaken,
    AlreadyMember,
    AlreadyParticipant,
    LastOrgOwner,
    LastConversationOwner,
    TeamNameTaken,
    DirectExists,
    BootstrapUsed,
    InviteExhausted,
    /// The upload's lease expired before its file was recorded.
    UploadExpired,
    /// The outside identity is linked to an account already.
    IdentityTaken,
    /// A role a membership change was allowed on changed before it was made (`DecidedOn`).
    RolesChanged,
    /// The password a sign-in checked (or a rehash replaces) was changed meanwhile.
    PasswordChanged,
    /// An agent's endpoint or key changed after a change to it was checked (`KeyDecidedOn`).
    AgentChanged,
    /// The org holds the most of these it may: counted under the org's row lock in the
    /// creating transaction, so concurrent creations cannot pass the cap together.
    OrgCap(OrgCapped),
}

/// What an org may hold only so many of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrgCapped {
    Webhooks,
    Agents,
    WidgetKeys,
    Guards,
}

impl OrgCapped {
    /// How many the org may hold at most.
    #[must_use]
    pub const fn most(self) -> usize {
        match self {
            Self::Webhooks => webhooks::MAX_WEBHOOKS_PER_ORG,
            Self::Agents => crate::agent::MAX_AGENTS_PER_ORG,
            Self::WidgetKeys => crate::widget::MAX_KEYS_PER_ORG,
            Self::Guards => crate::guards::MAX_GUARDS_PER_ORG,
        }
    }
}

impl Conflict {
    #[must_use]
    pub const fn code(self) -> &'static str {
        match self {
            Self::UsernameTaken => "username_taken",
            Self::AlreadyMember => "already_member",
            Self::AlreadyParticipant => "already_participant",
            Self::LastOrgOwner => "last_owner",
            Self::LastConversationOwner => "last_owner",
            Self::TeamNameTaken => "team_name_taken",
            Self::DirectExists => "direct_exists",
            Self::BootstrapUsed => "bootstrap_used",
            Self::InviteExhausted => "invite_invalid",
            Self::UploadExpired => "upload_expired",
            Self::IdentityTaken => "identity_taken",
            Self::RolesChanged => "roles_changed",
            Self::PasswordChanged => "password_changed",
            Self::AgentChanged => "agent_changed",
            Self::OrgCap(OrgCapped::Webhooks) => "too_many_webhooks",
            Self::OrgCap(OrgCapped::Agents) => "too_many_agents",
            Self::OrgCap(OrgCapped::WidgetKeys) => "too_many_widget_keys",
            Self::OrgCap(OrgCapped::Guards) => "too_many_guards",
        }
    }

    #[must_use]
    pub const fn message(self) -> &'static str {
        match self {
            Self::UsernameTaken => "that username is taken",
            Self::AlreadyMember => "the user is already a member of this organization",
            Self::AlreadyParticipant => "the user is already a participant",
            Self::LastOrgOwner => {
                "the last owner of an organization cannot leave, be removed or be demoted"
            }
            Self::LastConversationOwner => {
                "the last owner of a conversation cannot leave, be removed or be demoted"
            }
            Self::TeamNameTaken => "a team with that name exists",
            Self::DirectExists => "a direct conversation for this pair exists",
            Self::BootstrapUsed => "the bootstrap token was already used",
            Self::InviteExhausted => "the invite code is invalid, expired or used up",
            Self::UploadExpired => {
                "the upload stalled for too long and was dropped; upload it again"
            }
            Self::IdentityTaken => "that outside identity is linked to an account already",
            Self::PasswordChanged => "the password was changed meanwhile; sign in again",
            Self::AgentChanged => {
                "the agent's endpoint or API key changed while this was decided; read it again"
            }
            Self::RolesChanged => {
                "your role or the member's changed while this was decided; read them again"
            }
            Self::OrgCap(OrgCapped::Webhooks) => "this organization has the most webhooks allowed",
            Self::OrgCap(OrgCapped::Agents) => "this organization has the most agents allowed",
            Self::OrgCap(OrgCapped::WidgetKeys) => {
                "this organization has the most widget keys allowed"
            }
            Self::OrgCap(OrgCapped::Guards) => "this organization has the most guards allowed",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("conflict: {0:?}")]
    Conflict(Conflict),
    /// The database failed; the text is for logs only.
    #[error("backend: {0}")]
    Backend(String),
    /// No database connection came free in time: the server is overloaded, not broken, and
    /// the request may be retried.
    #[error("busy: no database connection came free in time")]
    Busy,
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Keyset position for lists: `Before(k)` returns keys below `k` newest first, `After(k)` keys
/// above `k` oldest first, `Latest` the newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor<K> {
    Latest,
    Before(K),
    After(K),
}

/// A bounded page request.
#[derive(Debug, Clone, Copy)]
pub struct Page<K> {
    pub cursor: Cursor<K>,
    pub limit: Limit,
}
