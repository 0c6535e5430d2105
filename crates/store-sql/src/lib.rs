//! The SQL both stores share. SQLite and PostgreSQL run the same statements (runtime queries with
//! `$n` placeholders, which SQLite accepts too); only the migrations and the connection setup
//! differ. [`impl_store!`] expands `conclave_core::store::Store` for a backend type.
//!
//! The backend crate must depend on `sqlx`, `async-trait`, `uuid`, `chrono`, `tracing`,
//! `serde_json` and `conclave-core`, and its store type must offer
//!
//! ```ignore
//! fn reader(&self) -> &sqlx::Pool<DB>; // any number of connections, for plain reads
//! fn writer(&self) -> &sqlx::Pool<DB>; // every write and every transaction
//! ```
//!
//! With the `conformance` feature, the `conformance` module holds the suite both backends must
//! pass and `conformance_tests!` turns it into one `#[tokio::test]` per check.
//!
//! Every time is stored cut to microseconds (PostgreSQL's precision), so both backends return
//! the same instants; SQLite keeps them as RFC 3339 text in UTC, which sorts and compares in
//! time order.

mod audit;
mod conversations;
mod credentials;
mod keyring;
mod messages;
mod mfa;
mod orgs;
mod privacy;
mod realtime;
mod rows;
mod users;

#[cfg(feature = "conformance")]
pub mod conformance;

/// Implements `conclave_core::store::Store` for `$store` (an identifier in scope where the macro
/// is invoked) over the sqlx database `$db`.
///
/// ```ignore
/// conclave_store_sql::impl_store!(SqliteStore, sqlx::Sqlite);
/// ```
#[macro_export]
macro_rules! impl_store {
    ($store:ident, $db:ty) => {
        #[doc(hidden)]
        mod conclave_store_sql_impl {
            use ::chrono::{DateTime, Utc};
            use ::conclave_core::ids::*;
            use ::conclave_core::model::*;
            use ::conclave_core::store::*;
            use ::conclave_core::types::*;

            type Backend = super::$store;
            type Db = $db;
            type Conn = <$db as ::sqlx::Database>::Connection;
            type Row = <$db as ::sqlx::Database>::Row;

            $crate::__store_sql_rows!();
            $crate::__store_sql_users!();
            $crate::__store_sql_orgs!();
            $crate::__store_sql_conversations!();
            $crate::__store_sql_messages!();
            $crate::__store_sql_realtime!();
            $crate::__store_sql_credentials!();
            $crate::__store_sql_mfa!();
            $crate::__store_sql_audit!();
            $crate::__store_sql_privacy!();
            $crate::__store_sql_keyring!();

            // Each method calls the module function of the same name.
            #[::async_trait::async_trait]
            impl Store for Backend {
                async fn ping(&self) -> StoreResult<()> {
                    ping(self).await
                }

                async fn create_user(
                    &self,
                    user: &NewUser,
                    audit: &[AuditEntry],
                ) -> StoreResult<User> {
                    create_user(self, user, audit).await
                }

                async fn claim_bootstrap(
                    &self,
                    user: &NewUser,
                    audit: &[AuditEntry],
                ) -> StoreResult<User> {
                    claim_bootstrap(self, user, audit).await
                }

                async fn bootstrap_claimed(&self) -> StoreResult<bool> {
                    bootstrap_claimed(self).await
                }

                async fn first_start(&self, now: DateTime<Utc>) -> StoreResult<DateTime<Utc>> {
                    first_start(self, now).await
                }

                async fn user(&self, id: UserId) -> StoreResult<User> {
                    user(self, id).await
                }

                async fn user_by_username(
                    &self,
                    key: &str,
                ) -> StoreResult<Option<(User, Option<String>)>> {
                    user_by_username(self, key).await
                }

                async fn password_hash(&self, id: UserId) -> StoreResult<Option<String>> {
                    password_hash(self, id).await
                }

                async fn set_password_hash(
                    &self,
                    id: UserId,
                    phc: &str,
                    audit: &[AuditEntry],
                ) -> StoreResult<()> {
                    set_password_hash(self, id, phc, audit).await
                }

                async fn set_display_name(
                    &self,
                    id: UserId,
                    name: Option<&DisplayName>,
                    audit: &[AuditEntry],
                ) -> StoreResult<User> {
                    set_display_name(self, id, name, audit).await
                }

                async fn set_user_flags(
                    &self,
                    id: UserId,
                    disabled: Option<bool>,
                    server_admin: Option<bool>,
                    require_2fa: Option<bool>,
                    audit: &[AuditEntry],
                ) -> StoreResult<User> {
                    set_user_flags(self, id, disabled, server_admin, require_2fa, audit).await
                }

                async fn list_users(&self, page: Page<UserId>) -> StoreResult<Vec<User>> {
                    list_users(self, page).await
                }

                async fn users_share_org(&self, a: UserId, b: UserId) -> StoreResult<bool> {
                    users_share_org(self, a, b).await
                }

                async fn create_session(
                    &self,
                    session: &Session,
                    token_hash: &[u8],
                    audit: &[AuditEntry],
                ) -> StoreResult<()> {
                    create_session(self, session, token_hash, audit).await
                }

                async fn session_by_token_hash(
                    &self,
                    token_hash: &[u8],
                ) -> StoreResult<Option<Session>> {
                    session_by_token_hash(self, token_hash).await
                }

                async fn touch_session(
                    &self,
                    id: SessionId,
                    at: DateTime<Utc>,
                    ip: Option<&str>,
                ) -> StoreResult<()> {
                    touch_session(self, id, at, ip).await
                }

                async fn list_sessions(&self, user: UserId) -> StoreResult<Vec<Session>> {
                    list_sessions(self, user).await
                }

                async fn delete_session(
                    &self,
                    user: UserId,
                    id: SessionId,
                    audit: &[AuditEntry],
                ) -> StoreResult<()> {
                    delete_session(self, user, id, audit).await
                }

                async fn delete_sessions(
                    &self,
                    user: UserId,
                    keep: Option<SessionId>,
                    audit: &[AuditEntry],
                ) -> StoreResult<u64> {
                    delete_sessions(self, user, keep, audit).await
                }

                async fn create_org(
                    &self,
                    org: &Org,
                    owner: UserId,
                    audit: &[AuditEntry],
                ) -> StoreResult<()> {
                    create_org(self, org, owner, audit).await
                }

                async fn org(&self, id: OrgId) -> StoreResult<Org> {
                    org(self, id).await
                }

                async fn orgs_for_user(&self, user: UserId) -> StoreResult<Vec<(Org, OrgRole)>> {
                    orgs_for_user(self, user).await
                }

                async fn update_org(
                    &self,
                    id: OrgId,
                    patch: &OrgPatch,
                    audit: &[AuditEntry],
                ) -> StoreResult<Org> {
                    update_org(self, id, patch, audit).await
                }

                async fn delete_org(&self, id: OrgId, audit: &[AuditEntry]) -> StoreResult<()> {
                    delete_org(self, id, audit).await
                }

                async fn membership(
                    &self,
                    org: OrgId,
                    user: UserId,
                ) -> StoreResult<Option<OrgRole>> {
                    membership(self, org, user).await
                }

                async fn members(
                    &self,
                    org: OrgId,
                    page: Page<UserId>,
                ) -> StoreResult<Vec<Member>> {
                    members(self, org, page).await
                }

                async fn member(&self, org: OrgId, user: UserId) -> StoreResult<Member> {
                    member(self, org, user).await
                }

                async fn add_member(
                    &self,
                    org: OrgId,
                    user: UserId,
                    role: OrgRole,
                    at: DateTime<Utc>,
                    audit: &[AuditEntry],
                ) -> StoreResult<()> {
                    add_member(self, org, user, role, at, audit).await
                }

                async fn set_member_role(
                    &self,
                    org: OrgId,
                    user: UserId,
                    role: OrgRole,
                    audit: &[AuditEntry],
                ) -> StoreResult<()> {
                    set_member_role(self, org, user, role, audit).await
                }

                async fn remove_member(
                    &self,
                    org: OrgId,
                    user: UserId,
                    audit: &[AuditEntry],
                ) -> StoreResult<()> {
                    remove_member(self, org, user, audit).await
                }

                async fn transfer_org(
                    &self,
                    org: OrgId,
                    from: UserId,
                    to: UserId,
                    audit: &[AuditEntry],
                ) -> StoreResult<()> {
                    transfer_org(self, org, from, to, audit).await
                }

                async fn create_invite(
                    &self,
                    invite: &Invite,
                    code_hash: &[u8],
                    audit: &[AuditEntry],
                ) -> StoreResult<()> {
                    create_invite(self, invite, code_hash, audit).await
                }

                async fn redeem_invite(
                    &self,
                    code_hash: &[u8],
                    user: UserId,
                    at: DateTime<Utc>,
                    audit: &[AuditEntry],
                ) -> StoreResult<Invite> {
                    redeem_invite(self, code_hash, user, at, audit).await
                }

                async fn invite_by_code(&self, code_hash: &[u8]) -> StoreResult<Option<Invite>> {
                    invite_by_code(self, code_hash).await
                }

                async fn org_invites(&self, org: OrgId) -> StoreResult<Vec<Invite>> {
                    org_invites(self, org).await
                }

                async fn revoke_invite(
                    &self,
                    org: OrgId,
                    id: InviteId,
                    audit: &[AuditEntry],
                ) -> StoreResult<()> {
                    revoke_invite(self, org, id, audit).await
                }

                async fn pending_invites(
                    &self,
                    user: UserId,
                    now: DateTime<Utc>,
                ) -> StoreResult<Vec<PendingInvite>> {
                    pending_invites(self, user, now).await
                }

                async fn accept_invite(
                    &self,
                    id: InviteId,
                    user: UserId,
                    at: DateTime<Utc>,
                    audit: &[AuditEntry],
                ) -> StoreResult<Invite> {
                    accept_invite(self, id, user, at, audit).await
                }

                async fn create_team(&self, team: &Team, audit: &[AuditEntry]) -> StoreResult<()> {
                    create_team(self, team, audit).await
                }

                async fn teams(&self, org: OrgId) -> StoreResult<Vec<Team>> {
                    teams(self, org).await
                }

                async fn team(&self, id: TeamId) -> StoreResult<Team> {
                    team(self, id).await
                }

                async fn add_team_member(
                    &self,
                    team: TeamId,
                    user: UserId,
                    audit: &[AuditEntry],
                ) -> StoreResult<()> {
                    add_team_member(self, team, user, audit).await
                }

                async fn remove_team_member(
                    &self,
                    team: TeamId,
                    user: UserId,
                    audit: &[AuditEntry],
                ) -> StoreResult<()> {
                    remove_team_member(self, team, user, audit).await
                }

                async fn user_teams(&self, org: OrgId, user: UserId) -> StoreResult<Vec<TeamId>> {
                    user_teams(self, org, user).await
                }

                async fn create_conversation(
                    &self,
                    conv: &Conversation,
                    participants: &[(UserId, ConversationRole)],
                    audit: &[AuditEntry],
                ) -> StoreResult<()> {
                    create_conversation(self, conv, participants, audit).await
                }

                async fn direct_conversation(
                    &self,
                    org: OrgId,
                    key: &str,
                ) -> StoreResult<Option<Conversation>> {
                    direct_conversation(self, org, key).await
                }

                async fn conversation(&self, id: ConversationId) -> StoreResult<Conversation> {
                    conversation(self, id).await
                }

                async fn conversations_for_user(
                    &self,
                    user: UserId,
                    page: Page<ConversationId>,
                ) -> StoreResult<Vec<Conversation>> {
                    conversations_for_user(self, user, page).await
                }

                async fn available_conversations(
                    &self,
                    user: UserId,
                    page: Page<ConversationId>,
                ) -> StoreResult<Vec<Conversation>> {
                    available_conversations(self, user, page).await
                }

                async fn update_conversation(
                    &self,
                    id: ConversationId,
                    patch: &ConversationPatch,
                    at: DateTime<Utc>,
                    audit: &[AuditEntry],
                ) -> StoreResult<Conversation> {
                    update_conversation(self, id, patch, at, audit).await
                }

                async fn delete_conversation(
                    &self,
                    id: ConversationId,
                    audit: &[AuditEntry],
                ) -> StoreResult<()> {
                    delete_conversation(self, id, audit).await
                }

                async fn participant_role(
                    &self,
                    conv: ConversationId,
                    user: UserId,
                ) -> StoreResult<Option<ConversationRole>> {
                    participant_role(self, conv, user).await
                }

                async fn participants(
                    &self,
                    conv: ConversationId,
                    page: Page<UserId>,
                ) -> StoreResult<Vec<Participant>> {
                    participants(self, conv, page).await
                }

                async fn add_participant(
                    &self,
                    conv: ConversationId,
                    user: UserId,
                    role: ConversationRole,
                    at: DateTime<Utc>,
                    audit: &[AuditEntry],
                ) -> StoreResult<Participant> {
                    add_participant(self, conv, user, role, at, audit).await
                }

                async fn remove_participant(
                    &self,
                    conv: ConversationId,
                    user: UserId,
                    audit: &[AuditEntry],
                ) -> StoreResult<()> {
                    remove_participant(self, conv, user, audit).await
                }

                async fn insert_message(&self, msg: &NewMessage) -> StoreResult<Inserted> {
                    insert_message(self, msg).await
                }

                async fn message(&self, id: MessageId) -> StoreResult<Message> {
                    message(self, id).await
                }

                async fn messages(
                    &self,
                    conv: ConversationId,
                    page: Page<i64>,
                ) -> StoreResult<Vec<Message>> {
                    messages(self, conv, page).await
                }

                async fn edit_message(
                    &self,
                    id: MessageId,
                    content: &str,
                    format: MessageFormat,
                    at: DateTime<Utc>,
                ) -> StoreResult<Message> {
                    edit_message(self, id, content, format, at).await
                }

                async fn delete_message(
                    &self,
                    id: MessageId,
                    at: DateTime<Utc>,
                    audit: &[AuditEntry],
                ) -> StoreResult<Message> {
                    delete_message(self, id, at, audit).await
                }

                async fn message_history(&self, id: MessageId) -> StoreResult<Vec<MessageVersion>> {
                    message_history(self, id).await
                }

                async fn set_read_marker(
                    &self,
                    conv: ConversationId,
                    user: UserId,
                    message: MessageId,
                ) -> StoreResult<()> {
                    set_read_marker(self, conv, user, message).await
                }

                async fn conversation_states(
                    &self,
                    user: UserId,
                ) -> StoreResult<Vec<ConversationState>> {
                    conversation_states(self, user).await
                }

                async fn user_conversation_ids(
                    &self,
                    user: UserId,
                    org: Option<OrgId>,
                ) -> StoreResult<Vec<ConversationId>> {
                    user_conversation_ids(self, user, org).await
                }

                async fn participant_ids(&self, conv: ConversationId) -> StoreResult<Vec<UserId>> {
                    participant_ids(self, conv).await
                }

                async fn save_gateway_session(&self, session: &GatewaySession) -> StoreResult<()> {
                    save_gateway_session(self, session).await
                }

                async fn take_gateway_session(
                    &self,
                    id: ::uuid::Uuid,
                ) -> StoreResult<Option<GatewaySession>> {
                    take_gateway_session(self, id).await
                }

                async fn prune_gateway_sessions(&self, before: DateTime<Utc>) -> StoreResult<u64> {
                    prune_gateway_sessions(self, before).await
                }

                async fn save_pending_totp(
                    &self,
                    user: UserId,
                    secret: &::conclave_core::secretbox::Sealed,
                    at: DateTime<Utc>,
                    audit: &[AuditEntry],
                ) -> StoreResult<bool> {
                    save_pending_totp(self, user, secret, at, audit).await
                }

                async fn totp_enrolment(
                    &self,
                    user: UserId,
                ) -> StoreResult<Option<::conclave_core::mfa::TotpEnrolment>> {
                    totp_enrolment(self, user).await
                }

                async fn enable_totp(
                    &self,
                    user: UserId,
                    nonce: &[u8],
                    step: i64,
                    codes: &[::conclave_core::mfa::StoredRecoveryCode],
                    at: DateTime<Utc>,
                    audit: &[AuditEntry],
                ) -> StoreResult<bool> {
                    enable_totp(self, user, nonce, step, codes, at, audit).await
                }

                async fn use_totp_step(&self, user: UserId, step: i64) -> StoreResult<bool> {
                    use_totp_step(self, user, step).await
                }

                async fn disable_totp(
                    &self,
                    user: UserId,
                    audit: &[AuditEntry],
                ) -> StoreResult<()> {
                    disable_totp(self, user, audit).await
                }

                async fn recovery_code(
                    &self,
                    user: UserId,
                    lookup: &str,
                ) -> StoreResult<Option<::conclave_core::mfa::StoredRecoveryCode>> {
                    recovery_code(self, user, lookup).await
                }

                async fn use_recovery_code(
                    &self,
                    user: UserId,
                    lookup: &str,
                    at: DateTime<Utc>,
                    audit: &[AuditEntry],
                ) -> StoreResult<bool> {
                    use_recovery_code(self, user, lookup, at, audit).await
                }

                async fn replace_recovery_codes(
                    &self,
                    user: UserId,
                    codes: &[::conclave_core::mfa::StoredRecoveryCode],
                    at: DateTime<Utc>,
                    audit: &[AuditEntry],
                ) -> StoreResult<bool> {
                    replace_recovery_codes(self, user, codes, at, audit).await
                }

                async fn org_standing(
                    &self,
                    org: OrgId,
                    user: UserId,
                ) -> StoreResult<Option<::conclave_core::mfa::OrgStanding>> {
                    org_standing(self, org, user).await
                }

                async fn create_mfa_challenge(
                    &self,
                    challenge: &::conclave_core::mfa::MfaChallenge,
                    token_hash: &[u8],
                ) -> StoreResult<()> {
                    create_mfa_challenge(self, challenge, token_hash).await
                }

                async fn mfa_challenge(
                    &self,
                    token_hash: &[u8],
                ) -> StoreResult<Option<::conclave_core::mfa::MfaChallenge>> {
                    mfa_challenge(self, token_hash).await
                }

                async fn reserve_mfa_attempt(
                    &self,
                    token_hash: &[u8],
                    now: DateTime<Utc>,
                    max_failures: i32,
                ) -> StoreResult<Option<::conclave_core::mfa::MfaChallenge>> {
                    reserve_mfa_attempt(self, token_hash, now, max_failures).await
                }

                async fn take_mfa_challenge(
                    &self,
                    token_hash: &[u8],
                    now: DateTime<Utc>,
                ) -> StoreResult<Option<::conclave_core::mfa::MfaChallenge>> {
                    take_mfa_challenge(self, token_hash, now).await
                }

                async fn prune_mfa_challenges(&self, before: DateTime<Utc>) -> StoreResult<u64> {
                    prune_mfa_challenges(self, before).await
                }

                async fn login_failures(
                    &self,
                    keys: &[::conclave_core::mfa::ThrottleKey],
                ) -> StoreResult<Vec<::conclave_core::mfa::ThrottleCount>> {
                    login_failures(self, keys).await
                }

                async fn reserve_login_attempt(
                    &self,
                    gate: &::conclave_core::mfa::ThrottleGate,
                    at: DateTime<Utc>,
                    forget_before: DateTime<Utc>,
                ) -> StoreResult<Option<::conclave_core::mfa::ThrottleReservation>> {
                    reserve_login_attempt(self, gate, at, forget_before).await
                }

                async fn refund_login_attempt(
                    &self,
                    reservation: &::conclave_core::mfa::ThrottleReservation,
                ) -> StoreResult<()> {
                    refund_login_attempt(self, reservation).await
                }

                async fn settle_login_attempt(
                    &self,
                    reservation: &::conclave_core::mfa::ThrottleReservation,
                ) -> StoreResult<()> {
                    settle_login_attempt(self, reservation).await
                }

                async fn pending_login_attempts(
                    &self,
                    keys: &[::conclave_core::mfa::ThrottleKey],
                ) -> StoreResult<i64> {
                    pending_login_attempts(self, keys).await
                }

                async fn clear_login_failures(
                    &self,
                    keys: &[::conclave_core::mfa::ThrottleKey],
                ) -> StoreResult<()> {
                    clear_login_failures(self, keys).await
                }

                async fn prune_login_failures(&self, before: DateTime<Utc>) -> StoreResult<u64> {
                    prune_login_failures(self, before).await
                }

                async fn create_bot(
                    &self,
                    user: &NewUser,
                    bot: &Bot,
                    token_hash: &[u8],
                    audit: &[AuditEntry],
                ) -> StoreResult<()> {
                    create_bot(self, user, bot, token_hash, audit).await
                }

                async fn bot(&self, id: BotId) -> StoreResult<Bot> {
                    bot(self, id).await
                }

                async fn bots(&self, org: OrgId) -> StoreResult<Vec<Bot>> {
                    bots(self, org).await
                }

                async fn bot_by_token_hash(
                    &self,
                    token_hash: &[u8],
                ) -> StoreResult<Option<(Bot, SecretSlot)>> {
                    bot_by_token_hash(self, token_hash).await
                }

                async fn rotate_bot_token(
                    &self,
                    id: BotId,
                    rotation: &Rotation,
                    audit: &[AuditEntry],
                ) -> StoreResult<(Bot, Bot)> {
                    rotate_bot_token(self, id, rotation, audit).await
                }

                async fn create_api_key(
                    &self,
                    key: &ApiKey,
                    token_hash: &[u8],
                    audit: &[AuditEntry],
                ) -> StoreResult<()> {
                    create_api_key(self, key, token_hash, audit).await
                }

                async fn api_key(&self, id: ApiKeyId) -> StoreResult<ApiKey> {
                    api_key(self, id).await
                }

                async fn api_keys(&self, user: UserId) -> StoreResult<Vec<ApiKey>> {
                    api_keys(self, user).await
                }

                async fn api_key_by_token_hash(
                    &self,
                    token_hash: &[u8],
                ) -> StoreResult<Option<(ApiKey, SecretSlot)>> {
                    api_key_by_token_hash(self, token_hash).await
                }

                async fn rotate_api_key(
                    &self,
                    id: ApiKeyId,
                    rotation: &Rotation,
                    audit: &[AuditEntry],
                ) -> StoreResult<(ApiKey, ApiKey)> {
                    rotate_api_key(self, id, rotation, audit).await
                }

                async fn delete_api_key(
                    &self,
                    user: UserId,
                    id: ApiKeyId,
                    audit: &[AuditEntry],
                ) -> StoreResult<ApiKey> {
                    delete_api_key(self, user, id, audit).await
                }

                async fn touch_api_key(
                    &self,
                    id: ApiKeyId,
                    at: DateTime<Utc>,
                    ip: Option<&str>,
                ) -> StoreResult<()> {
                    touch_api_key(self, id, at, ip).await
                }

                async fn append_audit(&self, audit: &[AuditEntry]) -> StoreResult<()> {
                    append_audit(self, audit).await
                }

                async fn audit_heads(&self) -> StoreResult<Vec<ChainHead>> {
                    audit_heads(self).await
                }

                async fn audit_chain_names(&self) -> StoreResult<Vec<String>> {
                    audit_chain_names(self).await
                }

                async fn audit_rows(
                    &self,
                    chain: &str,
                    from_seq: i64,
                    limit: i64,
                ) -> StoreResult<Vec<AuditRow>> {
                    audit_rows(self, chain, from_seq, limit).await
                }

                async fn audit_checkpoint(&self, chain: &str) -> StoreResult<Option<Checkpoint>> {
                    audit_checkpoint(self, chain).await
                }

                async fn list_audit(
                    &self,
                    filter: &AuditFilter,
                    page: Page<::uuid::Uuid>,
                ) -> StoreResult<Vec<AuditRow>> {
                    list_audit(self, filter, page).await
                }

                async fn prune_audit(
                    &self,
                    chain: &str,
                    before: DateTime<Utc>,
                    entry: &AuditEntry,
                ) -> StoreResult<::conclave_core::audit::PruneOutcome> {
                    prune_audit(self, chain, before, entry).await
                }

                async fn raise_alert(
                    &self,
                    name: &str,
                    status: &str,
                    at: DateTime<Utc>,
                    audit: &[AuditEntry],
                ) -> StoreResult<()> {
                    raise_alert(self, name, status, at, audit).await
                }

                async fn alerts(&self) -> StoreResult<Vec<(String, String)>> {
                    alerts(self).await
                }

                async fn clear_alert(
                    &self,
                    name: &str,
                    raised_by: DateTime<Utc>,
                ) -> StoreResult<bool> {
                    clear_alert(self, name, raised_by).await
                }

                async fn prune_messages(
                    &self,
                    org: OrgId,
                    before: DateTime<Utc>,
                    entry: &AuditEntry,
                ) -> StoreResult<u64> {
                    prune_messages(self, org, before, entry).await
                }

                async fn orgs_with_retention(&self) -> StoreResult<Vec<Org>> {
                    orgs_with_retention(self).await
                }

                async fn messages_by_author(
                    &self,
                    user: UserId,
                    after: Option<MessageId>,
                    limit: i64,
                ) -> StoreResult<Vec<Message>> {
                    messages_by_author(self, user, after, limit).await
                }

                async fn erase_user(
                    &self,
                    user: UserId,
                    tombstone_orgs: &[OrgId],
                    anonymous_name: &str,
                    at: DateTime<Utc>,
                    audit: &[AuditEntry],
                ) -> StoreResult<u64> {
                    erase_user(self, user, tombstone_orgs, anonymous_name, at, audit).await
                }

                async fn secret_keys(
                    &self,
                ) -> StoreResult<Vec<::conclave_core::keyring::SecretKeyRecord>> {
                    secret_keys(self).await
                }

                async fn add_secret_key(
                    &self,
                    key: &::conclave_core::keyring::SecretKeyRecord,
                ) -> StoreResult<bool> {
                    add_secret_key(self, key).await
                }

                async fn secret_key_usage(&self) -> StoreResult<Vec<(i32, u64)>> {
                    secret_key_usage(self).await
                }

                async fn retire_secret_key(
                    &self,
                    id: i32,
                    at: DateTime<Utc>,
                ) -> StoreResult<::conclave_core::keyring::RetireOutcome> {
                    retire_secret_key(self, id, at).await
                }

                async fn sealed_secrets(
                    &self,
                    after: Option<&::conclave_core::keyring::SecretRef>,
                    limit: i64,
                ) -> StoreResult<Vec<::conclave_core::keyring::StoredSecret>> {
                    sealed_secrets(self, after, limit).await
                }

                async fn replace_sealed_secret(
                    &self,
                    at: &::conclave_core::keyring::SecretRef,
                    old: &::conclave_core::secretbox::Sealed,
                    new: &::conclave_core::secretbox::Sealed,
                ) -> StoreResult<bool> {
                    replace_sealed_secret(self, at, old, new).await
                }
            }
        }
    };
}
