//! The conformance suite: what every `Store` backend must do, written once against the trait.
//! Each check takes a store on a fresh, empty database and panics on a deviation;
//! [`conformance_tests!`](crate::conformance_tests) makes one test per check.

mod audit;
mod conversations;
mod credentials;
mod keyring;
mod messages;
mod mfa;
mod orgs;
mod realtime;
mod users;

pub use audit::*;
pub use conversations::*;
pub use credentials::*;
pub use keyring::*;
pub use messages::*;
pub use mfa::*;
pub use orgs::*;
pub use realtime::*;
pub use users::*;

use chrono::{DateTime, Duration, TimeZone, Utc};
use conclave_core::ids::*;
use conclave_core::model::*;
use conclave_core::store::*;
use conclave_core::types::*;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// The audit key the conformance stores chain with.
#[must_use]
pub fn test_audit_key() -> conclave_core::audit::AuditKey {
    conclave_core::audit::AuditKey::from_bytes([42; 32])
}

/// A store on a fresh database, and the work that throws the database away afterwards.
pub struct TestDb {
    pub store: Arc<dyn Store>,
    pub cleanup: Pin<Box<dyn Future<Output = ()> + Send>>,
}

/// Expands to one `#[tokio::test]` per conformance check. `$fresh` is an
/// `async fn() -> Option<TestDb>` (`None` skips the check, e.g. when no server is reachable).
/// The database is cleaned up even when the check fails.
#[macro_export]
macro_rules! conformance_tests {
    ($fresh:path) => {
        $crate::__conformance_tests!(
            $fresh;
            ping,
            users_create_and_read,
            usernames_are_unique_ignoring_case,
            bootstrap_is_claimed_once,
            any_server_admin_disarms_the_bootstrap,
            promotion_disarms_the_bootstrap,
            first_start_is_recorded_once,
            list_users_pages_by_id,
            sessions_lifecycle,
            users_share_org_only_through_a_common_org,
            times_are_kept_to_the_microsecond,
            org_create_update_delete,
            members_and_roles,
            remove_member_cleans_up_and_passes_ownership,
            transfer_org_swaps_roles,
            invites_are_redeemed_within_limits,
            named_invites_reach_only_their_invitee,
            teams_and_team_members,
            conversations_create_and_direct_pairs,
            conversations_for_user_pages,
            available_conversations_scope,
            update_and_delete_conversation,
            participants_page_and_add,
            remove_participant_keeps_an_owner,
            insert_message_sequences_concurrently,
            idempotent_inserts,
            idempotent_inserts_race,
            messages_page_by_seq,
            edit_keeps_history,
            delete_tombstones,
            read_markers_are_set_per_participant,
            conversation_states_count_unread,
            conversation_and_participant_ids,
            gateway_sessions_save_take_prune,
            gateway_session_is_taken_once_concurrently,
            bots_are_accounts_of_their_org,
            bot_rotation_keeps_the_previous_token_when_told,
            api_keys_lifecycle,
            api_key_rotation_and_org_removal,
            concurrent_rotations_keep_one_previous_secret,
            totp_enrolment_lifecycle,
            totp_steps_are_used_once,
            recovery_codes_are_used_once,
            org_standing_reflects_requirement_and_enrolment,
            mfa_challenges_expire_fail_and_are_taken_once,
            login_attempts_are_reserved_atomically,
            health_alerts_are_raised_and_cleared,
            anonymised_erasure_moves_messages_to_the_org_placeholder,
            audit_rows_are_written_with_their_change_only,
            audit_listing_filters_and_pages,
            concurrent_appends_keep_one_valid_chain,
            pruning_leaves_a_signed_checkpoint,
            message_retention_prunes_one_org,
            secret_keys_are_added_listed_and_retired,
            sealed_secrets_page_through_every_row_once,
            replacing_a_sealed_secret_is_compare_and_swap,
            retire_and_reseal_race_never_retires_a_key_in_use,
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    ($fresh:path; $($check:ident),+ $(,)?) => {$(
        #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $check() {
            let Some(db) = $fresh().await else { return };
            let $crate::conformance::TestDb { store, cleanup } = db;
            let outcome = ::tokio::spawn($crate::conformance::$check(store)).await;
            cleanup.await;
            if let Err(e) = outcome {
                match e.try_into_panic() {
                    Ok(panic) => ::std::panic::resume_unwind(panic),
                    Err(e) => panic!("check {} did not finish: {e}", stringify!($check)),
                }
            }
        }
    )+};
}

/// A fixed instant plus `secs`; the suite passes every time explicitly.
pub(crate) fn at(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap() + Duration::seconds(secs)
}

pub(crate) fn page<K>(cursor: Cursor<K>, limit: i64) -> Page<K> {
    Page {
        cursor,
        limit: Limit::parse(Some(limit)).unwrap(),
    }
}

pub(crate) fn new_user(name: &str) -> NewUser {
    NewUser {
        id: UserId::new(),
        username: Username::parse(name).unwrap(),
        display_name: None,
        email: None,
        password_hash: Some(format!("$argon2id$fake${name}")),
        kind: UserKind::User,
        server_admin: false,
        created_at: at(0),
    }
}

pub(crate) async fn make_user(store: &dyn Store, name: &str) -> User {
    store.create_user(&new_user(name), &[]).await.unwrap()
}

pub(crate) async fn make_org(store: &dyn Store, name: &str, owner: UserId) -> Org {
    let org = Org {
        id: OrgId::new(),
        name: name.to_owned(),
        require_2fa: false,
        message_retention_days: None,
        audit_retention_days: None,
        erasure: ErasurePolicy::Tombstone,
        created_at: at(0),
    };
    store.create_org(&org, owner, &[]).await.unwrap();
    org
}

pub(crate) fn group(org: OrgId, creator: UserId, visibility: Visibility) -> Conversation {
    Conversation {
        id: ConversationId::new(),
        org_id: org,
        kind: ConversationKind::Group,
        name: Some("general".to_owned()),
        visibility,
        archived: false,
        created_by: creator,
        created_at: at(10),
        updated_at: at(10),
        last_seq: 0,
        direct_key: None,
    }
}

/// Creates a group conversation with `owner` as owner and `members` as members.
pub(crate) async fn make_group(
    store: &dyn Store,
    org: OrgId,
    owner: UserId,
    members: &[UserId],
    visibility: Visibility,
) -> Conversation {
    let conv = group(org, owner, visibility);
    let mut participants = vec![(owner, ConversationRole::Owner)];
    participants.extend(members.iter().map(|m| (*m, ConversationRole::Member)));
    store
        .create_conversation(&conv, &participants, &[])
        .await
        .unwrap();
    conv
}

pub(crate) fn new_message(conv: ConversationId, author: UserId, content: &str) -> NewMessage {
    NewMessage {
        id: MessageId::new(),
        conversation_id: conv,
        author_id: author,
        content: content.to_owned(),
        format: MessageFormat::Text,
        reply_to: None,
        created_at: at(100),
        idempotency: None,
        idempotency_since: at(0),
    }
}

pub(crate) fn created(inserted: Inserted) -> Message {
    match inserted {
        Inserted::Created(m) => m,
        Inserted::Replayed(m, _) => panic!("expected a new message, got a replay of {:?}", m.id),
    }
}

#[track_caller]
pub(crate) fn assert_conflict<T: std::fmt::Debug>(result: StoreResult<T>, expected: Conflict) {
    match result {
        Err(StoreError::Conflict(c)) if c == expected => {}
        other => panic!("expected conflict {expected:?}, got {other:?}"),
    }
}

#[track_caller]
pub(crate) fn assert_not_found<T: std::fmt::Debug>(result: StoreResult<T>) {
    match result {
        Err(StoreError::NotFound) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
}
