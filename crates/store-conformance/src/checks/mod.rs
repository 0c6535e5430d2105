//! The checks, one file per store area, and the fixtures they share. Each check is a private
//! `async fn name(store: Arc<dyn Store>)` on a fresh, empty database that panics on a
//! deviation, registered by `check!(name);` right after it.

mod audit;
mod audited;
mod conversations;
mod credentials;
mod keyring;
mod messages;
mod mfa;
mod orgs;
mod realtime;
mod users;

use crate::check;
use chrono::{DateTime, Duration, TimeZone, Utc};
use conclave_core::ids::*;
use conclave_core::model::*;
use conclave_core::store::*;
use conclave_core::types::*;
use std::sync::Arc;

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

/// Adds `user` to `org` as a plain member.
pub(crate) async fn join(store: &dyn Store, org: OrgId, user: UserId) {
    store
        .add_member(org, user, OrgRole::Member, at(1), &[])
        .await
        .unwrap();
}

/// Stores a new message by `author` and answers it.
pub(crate) async fn post_message(
    store: &dyn Store,
    conv: ConversationId,
    author: UserId,
    content: &str,
) -> Message {
    created(
        store
            .insert_message(&new_message(conv, author, content), &[])
            .await
            .unwrap(),
    )
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
