//! The storage contract. One trait, two backends (SQLite and PostgreSQL), both held to the same
//! conformance suite. Every multi-row invariant (sequence numbers, last owner, invite use counts,
//! idempotency) is enforced inside the backend's transaction, never by read-then-write in a service.

use crate::audit::{AuditEntry, AuditFilter, AuditRow, ChainHead, Checkpoint, PruneOutcome};
use crate::ids::*;
use crate::mfa::*;
use crate::model::*;
use crate::types::*;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

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

/// Result of an insert that carried an idempotency key.
#[derive(Debug, Clone)]
pub enum Inserted {
    Created(Message),
    /// The key was used before (within the window): the original message and the fingerprint
    /// of the request that created it.
    Replayed(Message, String),
}

/// Settings of an org that owners and admins may change.
#[derive(Debug, Clone, Default)]
pub struct OrgPatch {
    pub name: Option<Name>,
    pub require_2fa: Option<bool>,
    pub message_retention_days: Option<Option<i32>>,
    pub audit_retention_days: Option<Option<i32>>,
    pub erasure: Option<ErasurePolicy>,
}

/// Changes to a conversation.
#[derive(Debug, Clone, Default)]
pub struct ConversationPatch {
    pub name: Option<Name>,
    pub archived: Option<bool>,
    pub visibility: Option<Visibility>,
}

/// Which secret of a bot or API key a presented token matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretSlot {
    Current,
    /// The one replaced by the last rotation; valid only until its grace period ends.
    Previous,
}

/// A new secret for a bot or API key, as stored: its id, keyed hash and non-secret tail.
#[derive(Debug, Clone)]
pub struct NewSecret {
    pub id: SessionId,
    pub hash: [u8; 32],
    pub hint: String,
}

/// Replaces a bot's or key's secret. The current one becomes the previous one until
/// `keep_previous_until`, or is dropped at once when that is `None`; an older previous secret
/// is always dropped.
#[derive(Debug, Clone)]
pub struct Rotation {
    pub secret: NewSecret,
    pub keep_previous_until: Option<DateTime<Utc>>,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Cheap round trip for readiness checks.
    async fn ping(&self) -> StoreResult<()>;

    // --- users ---
    async fn create_user(&self, user: &NewUser, audit: &[AuditEntry]) -> StoreResult<User>;
    /// Creates the first server admin, once: the second call fails with `BootstrapUsed`.
    async fn claim_bootstrap(&self, user: &NewUser, audit: &[AuditEntry]) -> StoreResult<User>;
    /// Whether the bootstrap is over: it was claimed, or any server admin exists (creating or
    /// promoting a server admin also marks it claimed, so it never re-arms).
    async fn bootstrap_claimed(&self) -> StoreResult<bool>;
    /// Records `now` as the server's first start unless one is recorded; returns the recorded
    /// one (the preset bootstrap token expires 24 h after it, across restarts and nodes).
    async fn first_start(&self, now: DateTime<Utc>) -> StoreResult<DateTime<Utc>>;
    async fn user(&self, id: UserId) -> StoreResult<User>;
    /// Looks up by the case-folded username; returns the user and password hash.
    async fn user_by_username(&self, key: &str) -> StoreResult<Option<(User, Option<String>)>>;
    async fn password_hash(&self, id: UserId) -> StoreResult<Option<String>>;
    async fn set_password_hash(
        &self,
        id: UserId,
        phc: &str,
        audit: &[AuditEntry],
    ) -> StoreResult<()>;
    async fn set_display_name(
        &self,
        id: UserId,
        name: Option<&DisplayName>,
        audit: &[AuditEntry],
    ) -> StoreResult<User>;
    async fn set_user_flags(
        &self,
        id: UserId,
        disabled: Option<bool>,
        server_admin: Option<bool>,
        require_2fa: Option<bool>,
        audit: &[AuditEntry],
    ) -> StoreResult<User>;
    async fn list_users(&self, page: Page<UserId>) -> StoreResult<Vec<User>>;
    /// Whether two users are members of at least one common org.
    async fn users_share_org(&self, a: UserId, b: UserId) -> StoreResult<bool>;

    // --- sessions ---
    async fn create_session(
        &self,
        session: &Session,
        token_hash: &[u8],
        audit: &[AuditEntry],
    ) -> StoreResult<()>;
    async fn session_by_token_hash(&self, token_hash: &[u8]) -> StoreResult<Option<Session>>;
    async fn touch_session(
        &self,
        id: SessionId,
        at: DateTime<Utc>,
        ip: Option<&str>,
    ) -> StoreResult<()>;
    async fn list_sessions(&self, user: UserId) -> StoreResult<Vec<Session>>;
    /// Deletes one of the user's sessions; `NotFound` if it is not theirs.
    async fn delete_session(
        &self,
        user: UserId,
        id: SessionId,
        audit: &[AuditEntry],
    ) -> StoreResult<()>;
    /// Deletes all of the user's sessions but `keep`; returns how many went.
    async fn delete_sessions(
        &self,
        user: UserId,
        keep: Option<SessionId>,
        audit: &[AuditEntry],
    ) -> StoreResult<u64>;

    // --- orgs and members ---
    async fn create_org(&self, org: &Org, owner: UserId, audit: &[AuditEntry]) -> StoreResult<()>;
    async fn org(&self, id: OrgId) -> StoreResult<Org>;
    async fn orgs_for_user(&self, user: UserId) -> StoreResult<Vec<(Org, OrgRole)>>;
    async fn update_org(
        &self,
        id: OrgId,
        patch: &OrgPatch,
        audit: &[AuditEntry],
    ) -> StoreResult<Org>;
    async fn delete_org(&self, id: OrgId, audit: &[AuditEntry]) -> StoreResult<()>;
    async fn membership(&self, org: OrgId, user: UserId) -> StoreResult<Option<OrgRole>>;
    async fn members(&self, org: OrgId, page: Page<UserId>) -> StoreResult<Vec<Member>>;
    async fn member(&self, org: OrgId, user: UserId) -> StoreResult<Member>;
    async fn add_member(
        &self,
        org: OrgId,
        user: UserId,
        role: OrgRole,
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> StoreResult<()>;
    /// Fails with `LastOrgOwner` when it would leave the org without an owner.
    async fn set_member_role(
        &self,
        org: OrgId,
        user: UserId,
        role: OrgRole,
        audit: &[AuditEntry],
    ) -> StoreResult<()>;
    /// Removes the member, their team memberships and conversation participations in the org.
    /// Conversations they were the only owner of pass to their longest-standing participant.
    async fn remove_member(
        &self,
        org: OrgId,
        user: UserId,
        audit: &[AuditEntry],
    ) -> StoreResult<()>;
    /// `to` becomes owner and `from` admin, atomically.
    async fn transfer_org(
        &self,
        org: OrgId,
        from: UserId,
        to: UserId,
        audit: &[AuditEntry],
    ) -> StoreResult<()>;

    // --- invites ---
    async fn create_invite(
        &self,
        invite: &Invite,
        code_hash: &[u8],
        audit: &[AuditEntry],
    ) -> StoreResult<()>;
    /// Uses an invite for `user`: checks expiry and use count, adds the membership.
    async fn redeem_invite(
        &self,
        code_hash: &[u8],
        user: UserId,
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> StoreResult<Invite>;
    /// Checks an invite could be used now, without using it.
    async fn invite_by_code(&self, code_hash: &[u8]) -> StoreResult<Option<Invite>>;
    /// Every invite of an org, newest first.
    async fn org_invites(&self, org: OrgId) -> StoreResult<Vec<Invite>>;
    /// Deletes an invite of `org`; `NotFound` when `org` has no such invite.
    async fn revoke_invite(
        &self,
        org: OrgId,
        id: InviteId,
        audit: &[AuditEntry],
    ) -> StoreResult<()>;
    /// The usable invites naming `user` (by username) of orgs they are not in, newest first.
    async fn pending_invites(
        &self,
        user: UserId,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<PendingInvite>>;
    /// Takes invite `id` for `user` in one step: only when it names them and is usable now;
    /// adds the membership. `NotFound` otherwise, `AlreadyMember` when they are in the org.
    async fn accept_invite(
        &self,
        id: InviteId,
        user: UserId,
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> StoreResult<Invite>;

    // --- teams ---
    async fn create_team(&self, team: &Team, audit: &[AuditEntry]) -> StoreResult<()>;
    async fn teams(&self, org: OrgId) -> StoreResult<Vec<Team>>;
    async fn team(&self, id: TeamId) -> StoreResult<Team>;
    async fn add_team_member(
        &self,
        team: TeamId,
        user: UserId,
        audit: &[AuditEntry],
    ) -> StoreResult<()>;
    async fn remove_team_member(
        &self,
        team: TeamId,
        user: UserId,
        audit: &[AuditEntry],
    ) -> StoreResult<()>;
    async fn user_teams(&self, org: OrgId, user: UserId) -> StoreResult<Vec<TeamId>>;

    // --- conversations ---
    /// Creates the conversation with its participants; `DirectExists` for a known direct pair.
    async fn create_conversation(
        &self,
        conv: &Conversation,
        participants: &[(UserId, ConversationRole)],
        audit: &[AuditEntry],
    ) -> StoreResult<()>;
    async fn direct_conversation(&self, org: OrgId, key: &str)
        -> StoreResult<Option<Conversation>>;
    async fn conversation(&self, id: ConversationId) -> StoreResult<Conversation>;
    async fn conversations_for_user(
        &self,
        user: UserId,
        page: Page<ConversationId>,
    ) -> StoreResult<Vec<Conversation>>;
    /// Conversations in the user's orgs they do not participate in but may join.
    async fn available_conversations(
        &self,
        user: UserId,
        page: Page<ConversationId>,
    ) -> StoreResult<Vec<Conversation>>;
    async fn update_conversation(
        &self,
        id: ConversationId,
        patch: &ConversationPatch,
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> StoreResult<Conversation>;
    async fn delete_conversation(
        &self,
        id: ConversationId,
        audit: &[AuditEntry],
    ) -> StoreResult<()>;
    async fn participant_role(
        &self,
        conv: ConversationId,
        user: UserId,
    ) -> StoreResult<Option<ConversationRole>>;
    async fn participants(
        &self,
        conv: ConversationId,
        page: Page<UserId>,
    ) -> StoreResult<Vec<Participant>>;
    async fn add_participant(
        &self,
        conv: ConversationId,
        user: UserId,
        role: ConversationRole,
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> StoreResult<Participant>;
    /// Fails with `LastConversationOwner` when it would leave the conversation without an owner
    /// while others remain.
    async fn remove_participant(
        &self,
        conv: ConversationId,
        user: UserId,
        audit: &[AuditEntry],
    ) -> StoreResult<()>;

    // --- messages ---
    /// Assigns the next `seq` and stores the message in one transaction; with an idempotency
    /// key seen within the window, returns the original instead.
    async fn insert_message(&self, msg: &NewMessage) -> StoreResult<Inserted>;
    async fn message(&self, id: MessageId) -> StoreResult<Message>;
    /// Messages by `seq`: `Latest`/`Before` newest first, `After` oldest first.
    async fn messages(&self, conv: ConversationId, page: Page<i64>) -> StoreResult<Vec<Message>>;
    /// Keeps the current version in the history and replaces it.
    async fn edit_message(
        &self,
        id: MessageId,
        content: &str,
        format: MessageFormat,
        at: DateTime<Utc>,
    ) -> StoreResult<Message>;
    /// Tombstones the message: content gone, place kept.
    async fn delete_message(
        &self,
        id: MessageId,
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> StoreResult<Message>;
    async fn message_history(&self, id: MessageId) -> StoreResult<Vec<MessageVersion>>;

    // --- real time ---
    /// Sets the participant's read marker; `NotFound` when not a participant.
    async fn set_read_marker(
        &self,
        conv: ConversationId,
        user: UserId,
        message: MessageId,
    ) -> StoreResult<()>;
    /// For every conversation the user participates in: last seq, read marker, unread count.
    async fn conversation_states(&self, user: UserId) -> StoreResult<Vec<ConversationState>>;
    /// Ids of the conversations the user participates in, optionally only in one org.
    async fn user_conversation_ids(
        &self,
        user: UserId,
        org: Option<OrgId>,
    ) -> StoreResult<Vec<ConversationId>>;
    /// Ids of a conversation's participants.
    async fn participant_ids(&self, conv: ConversationId) -> StoreResult<Vec<UserId>>;
    /// Stores (or replaces) the resume state of a gateway session.
    async fn save_gateway_session(&self, session: &GatewaySession) -> StoreResult<()>;
    /// Removes and returns a saved gateway session (a resume uses it once).
    async fn take_gateway_session(&self, id: uuid::Uuid) -> StoreResult<Option<GatewaySession>>;
    /// Deletes saved gateway sessions older than `before`; returns how many.
    async fn prune_gateway_sessions(&self, before: DateTime<Utc>) -> StoreResult<u64>;

    // --- two-factor and login throttling ---
    /// Saves a TOTP secret that is not enabled yet, replacing an earlier pending one (and its
    /// last step). `false` when the user's 2FA is already on: nothing changes then.
    async fn save_pending_totp(
        &self,
        user: UserId,
        secret: &crate::secretbox::Sealed,
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> StoreResult<bool>;
    async fn totp_enrolment(&self, user: UserId) -> StoreResult<Option<TotpEnrolment>>;
    /// In one transaction: turns on the pending secret sealed with `nonce`, records `step` as
    /// used and replaces the user's recovery codes with `codes`. `false` (nothing changed) when
    /// no pending secret with that nonce exists (enabled meanwhile, or replaced by a new setup).
    async fn enable_totp(
        &self,
        user: UserId,
        nonce: &[u8],
        step: i64,
        codes: &[StoredRecoveryCode],
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> StoreResult<bool>;
    /// Records `step` as the user's last accepted TOTP step if it is later than the stored one,
    /// atomically; `false` means the step (or a later one) was used already: a replay.
    async fn use_totp_step(&self, user: UserId, step: i64) -> StoreResult<bool>;
    /// Removes the user's TOTP secret and recovery codes.
    async fn disable_totp(&self, user: UserId, audit: &[AuditEntry]) -> StoreResult<()>;
    async fn recovery_code(
        &self,
        user: UserId,
        lookup: &str,
    ) -> StoreResult<Option<StoredRecoveryCode>>;
    /// Marks an unused recovery code used, atomically; `false` when it was used already.
    async fn use_recovery_code(
        &self,
        user: UserId,
        lookup: &str,
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> StoreResult<bool>;
    /// Replaces all of the user's recovery codes while their 2FA is on; `false` (nothing
    /// changed) when it is not.
    async fn replace_recovery_codes(
        &self,
        user: UserId,
        codes: &[StoredRecoveryCode],
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> StoreResult<bool>;
    /// The user's role in the org with whether the org requires 2FA and the user has it on;
    /// `None` for non-members. One query, asked on every org-scoped request.
    async fn org_standing(&self, org: OrgId, user: UserId) -> StoreResult<Option<OrgStanding>>;
    async fn create_mfa_challenge(
        &self,
        challenge: &MfaChallenge,
        token_hash: &[u8],
    ) -> StoreResult<()>;
    async fn mfa_challenge(&self, token_hash: &[u8]) -> StoreResult<Option<MfaChallenge>>;
    /// Reserves one code check on the challenge, atomically: counts it against the challenge
    /// and answers the challenge when it is unexpired at `now` and had fewer than
    /// `max_failures` checks; `None` (nothing changed) otherwise. Of any number of concurrent
    /// reservations, at most `max_failures` get the challenge (AUTH-4).
    async fn reserve_mfa_attempt(
        &self,
        token_hash: &[u8],
        now: DateTime<Utc>,
        max_failures: i32,
    ) -> StoreResult<Option<MfaChallenge>>;
    /// Deletes and returns the challenge if it is unexpired at `now`: of two concurrent takes
    /// only one gets it. (A take follows a reservation that found the right code.)
    async fn take_mfa_challenge(
        &self,
        token_hash: &[u8],
        now: DateTime<Utc>,
    ) -> StoreResult<Option<MfaChallenge>>;
    /// Deletes challenges that expired before `before`; returns how many.
    async fn prune_mfa_challenges(&self, before: DateTime<Utc>) -> StoreResult<u64>;
    /// The failed-login counters that exist among `keys`.
    async fn login_failures(&self, keys: &[ThrottleKey]) -> StoreResult<Vec<ThrottleCount>>;
    /// Reserves an attempt on one counter in one conditional statement: when the gate lets it
    /// through at `at` (see [`ThrottleGate`]), counts it as a failure at `at` (a counter whose
    /// last failure is before `forget_before` restarts at 1; a new one starts at 1) and
    /// answers the reservation; `None` (nothing changed) when the counter refuses. Of any number
    /// of concurrent reservations on any number of nodes, only as many pass as the gate allows.
    async fn reserve_login_attempt(
        &self,
        gate: &ThrottleGate,
        at: DateTime<Utc>,
        forget_before: DateTime<Utc>,
    ) -> StoreResult<Option<ThrottleReservation>>;
    /// Gives a reserved attempt back: one failure (and one pending) less — a counter left with
    /// none goes — and,
    /// unless another failure was counted since, the previous last failure time again.
    async fn refund_login_attempt(&self, reservation: &ThrottleReservation) -> StoreResult<()>;
    /// A reserved attempt was checked and failed: it stays counted and is no longer pending.
    async fn settle_login_attempt(&self, reservation: &ThrottleReservation) -> StoreResult<()>;
    /// How many reserved attempts on these counters are not settled yet (checks in flight).
    async fn pending_login_attempts(&self, keys: &[ThrottleKey]) -> StoreResult<i64>;
    async fn clear_login_failures(&self, keys: &[ThrottleKey]) -> StoreResult<()>;
    /// Deletes counters whose last failure is before `before`; returns how many.
    async fn prune_login_failures(&self, before: DateTime<Utc>) -> StoreResult<u64>;

    // --- bots and API keys ---
    /// Creates the bot's account (`user`, kind bot), its membership (role member) in the bot's
    /// org and the bot with its first secret, in one transaction.
    async fn create_bot(
        &self,
        user: &NewUser,
        bot: &Bot,
        token_hash: &[u8],
        audit: &[AuditEntry],
    ) -> StoreResult<()>;
    async fn bot(&self, id: BotId) -> StoreResult<Bot>;
    /// An org's bots, oldest first.
    async fn bots(&self, org: OrgId) -> StoreResult<Vec<Bot>>;
    /// The bot whose current or previous token has this hash (expiry is the caller's to check).
    async fn bot_by_token_hash(&self, token_hash: &[u8]) -> StoreResult<Option<(Bot, SecretSlot)>>;
    /// Rotates the bot's token atomically; answers the bot before and after.
    async fn rotate_bot_token(
        &self,
        id: BotId,
        rotation: &Rotation,
        audit: &[AuditEntry],
    ) -> StoreResult<(Bot, Bot)>;
    async fn create_api_key(
        &self,
        key: &ApiKey,
        token_hash: &[u8],
        audit: &[AuditEntry],
    ) -> StoreResult<()>;
    async fn api_key(&self, id: ApiKeyId) -> StoreResult<ApiKey>;
    /// A user's API keys, oldest first.
    async fn api_keys(&self, user: UserId) -> StoreResult<Vec<ApiKey>>;
    /// The key whose current or previous secret has this hash (expiry is the caller's to check).
    async fn api_key_by_token_hash(
        &self,
        token_hash: &[u8],
    ) -> StoreResult<Option<(ApiKey, SecretSlot)>>;
    /// Rotates the key's secret atomically; answers the key before and after.
    async fn rotate_api_key(
        &self,
        id: ApiKeyId,
        rotation: &Rotation,
        audit: &[AuditEntry],
    ) -> StoreResult<(ApiKey, ApiKey)>;
    /// Deletes one of the user's keys and answers it; `NotFound` if it is not theirs.
    async fn delete_api_key(
        &self,
        user: UserId,
        id: ApiKeyId,
        audit: &[AuditEntry],
    ) -> StoreResult<ApiKey>;
    /// Records the last use; a key deleted meanwhile stays gone.
    async fn touch_api_key(
        &self,
        id: ApiKeyId,
        at: DateTime<Utc>,
        ip: Option<&str>,
    ) -> StoreResult<()>;

    // --- audit log and retention ---
    /// Appends audit rows on their own, for events that change nothing else (a failed
    /// sign-in of an unknown name, an export).
    async fn append_audit(&self, audit: &[AuditEntry]) -> StoreResult<()>;
    /// Every chain's head, by chain name.
    async fn audit_heads(&self) -> StoreResult<Vec<ChainHead>>;
    /// The names of every chain that has a head, rows or a checkpoint.
    async fn audit_chain_names(&self) -> StoreResult<Vec<String>>;
    /// A chain's rows from `from_seq` on, in `seq` order.
    async fn audit_rows(
        &self,
        chain: &str,
        from_seq: i64,
        limit: i64,
    ) -> StoreResult<Vec<AuditRow>>;
    async fn audit_checkpoint(&self, chain: &str) -> StoreResult<Option<Checkpoint>>;
    /// Rows matching `filter` by id (time order): newest first unless paging `After`.
    async fn list_audit(
        &self,
        filter: &AuditFilter,
        page: Page<uuid::Uuid>,
    ) -> StoreResult<Vec<AuditRow>>;
    /// Deletes the chain's rows older than `before` except its newest, leaves a signed
    /// checkpoint and appends `entry` — atomically; answers how many rows went. First, in the
    /// same transaction, the rows due to go (and the one after them) are verified against the
    /// chain — MAC with the audit key, numbering from the checkpoint (or genesis) on, links — and
    /// on any mismatch nothing changes and the answer is `Refused` (DATA-5).
    async fn prune_audit(
        &self,
        chain: &str,
        before: DateTime<Utc>,
        entry: &AuditEntry,
    ) -> StoreResult<PruneOutcome>;
    /// Raises (or renews) a health alert every node's readiness check reports, with `audit`
    /// in the same transaction.
    async fn raise_alert(
        &self,
        name: &str,
        status: &str,
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> StoreResult<()>;
    /// The raised alerts: (name, status), by name.
    async fn alerts(&self) -> StoreResult<Vec<(String, String)>>;
    /// Clears the alert if it was raised at or before `raised_by` (one raised later stays);
    /// `true` when one went.
    async fn clear_alert(&self, name: &str, raised_by: DateTime<Utc>) -> StoreResult<bool>;
    /// Deletes the org's messages created before `before` and, when any went, appends `entry`
    /// (with the count) in the same transaction; returns how many.
    async fn prune_messages(
        &self,
        org: OrgId,
        before: DateTime<Utc>,
        entry: &AuditEntry,
    ) -> StoreResult<u64>;
    /// Every org with a retention setting.
    async fn orgs_with_retention(&self) -> StoreResult<Vec<Org>>;
    // --- privacy (DATA-6) ---
    /// The user's own messages, by id (time order), after `after`.
    async fn messages_by_author(
        &self,
        user: UserId,
        after: Option<MessageId>,
        limit: i64,
    ) -> StoreResult<Vec<Message>>;
    /// Erases an account in one transaction: tombstones the user's messages in
    /// `tombstone_orgs`; elsewhere they keep their content but move to the org's placeholder
    /// author (one per org, created on first use: kind user, disabled, erased, no
    /// credentials), so the erased id leads to none of them; the account is renamed
    /// `anonymous_name`; removes every membership
    /// (and participation), deletes sessions, API keys, 2FA and resume state, and scrubs the
    /// profile (name, email, password; disabled). `LastOrgOwner` while the user is an org's
    /// only owner. Answers how many messages were tombstoned.
    async fn erase_user(
        &self,
        user: UserId,
        tombstone_orgs: &[OrgId],
        anonymous_name: &str,
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> StoreResult<u64>;

    // --- secrets at rest (DATA-3) ---
    /// Every key of the secrets key ring, by id.
    async fn secret_keys(&self) -> StoreResult<Vec<crate::keyring::SecretKeyRecord>>;
    /// Adds a key; `false` (nothing changed) when its id is taken already (a concurrent
    /// rotation).
    async fn add_secret_key(&self, key: &crate::keyring::SecretKeyRecord) -> StoreResult<bool>;
    /// How many stored secrets each key seals, by key id; keys sealing nothing are left out.
    async fn secret_key_usage(&self) -> StoreResult<Vec<(i32, u64)>>;
    /// Marks the key retired at `at`, atomically, unless it is the newest key not retired or a
    /// stored secret is sealed with it (answered as `Current` / `InUse`, nothing changed).
    /// `NotFound` when no key has this id.
    async fn retire_secret_key(
        &self,
        id: i32,
        at: DateTime<Utc>,
    ) -> StoreResult<crate::keyring::RetireOutcome>;
    /// Stored sealed secrets after `after` in (column, row id) order, at most `limit`: pages
    /// through every sealed secret of every sealed column.
    async fn sealed_secrets(
        &self,
        after: Option<&crate::keyring::SecretRef>,
        limit: i64,
    ) -> StoreResult<Vec<crate::keyring::StoredSecret>>;
    /// Replaces the sealed secret at `at` with `new` only while it still is `old` (same key id
    /// and nonce): `false`, nothing changed, when it was replaced or removed meanwhile.
    async fn replace_sealed_secret(
        &self,
        at: &crate::keyring::SecretRef,
        old: &crate::secretbox::Sealed,
        new: &crate::secretbox::Sealed,
    ) -> StoreResult<bool>;
}
