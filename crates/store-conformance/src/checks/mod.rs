//! The checks, one file per store area, and the fixtures they share. Each check is a private
//! `async fn name(store: Arc<dyn Store>)` on a fresh, empty database that panics on a
//! deviation, registered by `check!(name);` right after it.

mod agents;
mod audit;
mod audited;
mod conversations;
mod credentials;
mod files;
mod group_commit;
mod guards;
mod keyring;
mod messages;
mod mfa;
mod orgs;
mod realtime;
mod search;
mod streams;
mod users;
mod webhooks;

use crate::check;
use chrono::{DateTime, Duration, TimeZone, Utc};
use conclave_core::files::{
    FileInfo, FileName, FreedBlobs, QuotaRequest, Reservation, StoredFile, UploadLease,
};
use conclave_core::ids::*;
use conclave_core::mfa::RecoveryCodeRef;
use conclave_core::model::*;
use conclave_core::store::*;
use conclave_core::types::*;
use std::sync::Arc;

/// A sealed secret under key `key_id` whose nonce and ciphertext are `byte` repeated (the
/// store keeps them as opaque bytes).
pub(crate) fn sealed(key_id: i32, byte: u8) -> conclave_core::secretbox::Sealed {
    conclave_core::secretbox::Sealed {
        key_id,
        nonce: vec![byte; 12],
        ciphertext: vec![byte; 36],
    }
}

/// Makes two orgs, starts 100 creations in the first at once (`create(store, org, i)` for each
/// `i`) and asserts that exactly the org's cap of `what` succeed and every other is refused with
/// `Conflict::OrgCap(what)`; then a creation in the second org succeeds (its count is its own).
/// Answers the first org.
pub(crate) async fn assert_capped<F, Fut>(
    store: &Arc<dyn Store>,
    what: OrgCapped,
    create: F,
) -> OrgId
where
    F: Fn(Arc<dyn Store>, OrgId, usize) -> Fut,
    Fut: std::future::Future<Output = StoreResult<()>> + Send + 'static,
{
    let (_, org) = owned_org(&**store, "alice", "Acme").await;
    let (_, other) = owned_org(&**store, "bob", "Other").await;
    let tasks: Vec<_> = (0..100)
        .map(|i| tokio::spawn(create(store.clone(), org.id, i)))
        .collect();
    let mut made = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => made += 1,
            Err(StoreError::Conflict(Conflict::OrgCap(refused))) => assert_eq!(refused, what),
            Err(e) => panic!("a creation failed otherwise: {e}"),
        }
    }
    assert_eq!(made, what.most(), "exactly the cap's worth is created");
    create(store.clone(), other.id, 0)
        .await
        .expect("another org's cap is its own");
    org.id
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

/// Walks a keyset-paged list: for each case (cursor, limit, the keys expected in that order)
/// asserts the page `list` answers, its items read by `key`.
pub(crate) async fn assert_pages<K, T, Fut>(
    list: impl Fn(Page<K>) -> Fut,
    key: fn(&T) -> K,
    cases: &[(Cursor<K>, i64, Vec<K>)],
) where
    K: Copy + PartialEq + std::fmt::Debug,
    Fut: std::future::Future<Output = StoreResult<Vec<T>>>,
{
    for (cursor, limit, expected) in cases {
        let items = list(page(*cursor, *limit)).await.unwrap();
        let keys: Vec<K> = items.iter().map(key).collect();
        assert_eq!(&keys, expected, "{cursor:?}, limit {limit}");
    }
}

pub(crate) fn new_user(name: &str) -> NewUser {
    NewUser {
        id: UserId::new(),
        username: Username::parse(name).unwrap(),
        display_name: None,
        email: None,
        email_verified: false,
        password_hash: Some(format!("$argon2id$fake${name}")),
        kind: UserKind::User,
        server_admin: false,
        created_at: at(0),
    }
}

pub(crate) async fn make_user(store: &dyn Store, name: &str) -> User {
    store.create_user(&new_user(name), &[]).await.unwrap()
}

/// Makes one user per name, in order.
pub(crate) async fn make_users<const N: usize>(store: &dyn Store, names: [&str; N]) -> [User; N] {
    let mut users = Vec::with_capacity(N);
    for name in names {
        users.push(make_user(store, name).await);
    }
    users.try_into().expect("one user per name")
}

/// The user's TOTP enrolment, which must exist.
pub(crate) async fn enrolment(
    store: &dyn Store,
    user: UserId,
) -> conclave_core::mfa::TotpEnrolment {
    let enrolment = store.totp_enrolment(user).await.unwrap();
    enrolment.expect("an enrolment")
}

/// A user named `owner` and an org named `org` they own.
pub(crate) async fn owned_org(store: &dyn Store, owner: &str, org: &str) -> (User, Org) {
    let owner = make_user(store, owner).await;
    let org = make_org(store, org, owner.id).await;
    (owner, org)
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

/// Creates a team of `org` named `name` with `members`.
pub(crate) async fn make_team(
    store: &dyn Store,
    org: OrgId,
    name: &str,
    members: Vec<UserId>,
) -> Team {
    let team = Team {
        id: TeamId::new(),
        org_id: org,
        name: name.to_owned(),
        member_ids: members,
        created_at: at(1),
    };
    store.create_team(&team, &[]).await.unwrap();
    team
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

/// `user` joining `conv` as `role`, `secs` into the test.
pub(crate) fn joining(
    conv: ConversationId,
    user: UserId,
    role: ConversationRole,
    secs: i64,
) -> Joining {
    Joining {
        conv,
        user,
        role,
        at: at(secs),
    }
}

/// Adds `user` to `conv` as `role`, `secs` into the test; answers the participant.
pub(crate) async fn take_part(
    store: &dyn Store,
    conv: ConversationId,
    user: UserId,
    role: ConversationRole,
    secs: i64,
) -> Participant {
    store
        .add_participant(&joining(conv, user, role, secs), &[])
        .await
        .unwrap()
}

/// The ids of `convs`, in their order.
pub(crate) fn ids(convs: Vec<Conversation>) -> Vec<ConversationId> {
    convs.into_iter().map(|c| c.id).collect()
}

/// Asserts each user's role in each conversation; `None` for someone not in it.
pub(crate) async fn assert_participant_roles(
    store: &dyn Store,
    expected: &[(ConversationId, UserId, Option<ConversationRole>)],
) {
    for (conv, user, role) in expected {
        let got = store.participant_role(*conv, *user).await.unwrap();
        assert_eq!(got, *role, "role of {user:?} in {conv:?}");
    }
}

/// A plain-text edit of message `id` at `secs`.
pub(crate) fn text_edit(id: MessageId, content: &str, secs: i64) -> MessageEdit<'_> {
    MessageEdit {
        id,
        content,
        format: MessageFormat::Text,
        at: at(secs),
    }
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
        attachments: Vec::new(),
        idempotency: None,
        idempotency_since: at(0),
        status: MessageStatus::Complete,
    }
}

/// `user` in `org` as `role`.
pub(crate) fn membership(org: OrgId, user: UserId, role: OrgRole) -> Membership {
    Membership { org, user, role }
}

/// `user`'s recovery code with this lookup.
pub(crate) fn recovery(user: UserId, lookup: &str) -> RecoveryCodeRef<'_> {
    RecoveryCodeRef { user, lookup }
}

/// `org` handed from `from` to `to`.
pub(crate) fn transfer(org: OrgId, from: UserId, to: UserId) -> Transfer {
    Transfer { org, from, to }
}

/// Adds `user` to `org` as a plain member.
pub(crate) async fn join(store: &dyn Store, org: OrgId, user: UserId) {
    store
        .add_member(membership(org, user, OrgRole::Member), at(1), &[])
        .await
        .unwrap();
}

/// `n` new users (`racer0`…), each a plain member of `org`: the subjects of removal races.
pub(crate) async fn racers(store: &dyn Store, org: OrgId, n: usize) -> Vec<UserId> {
    let mut users = Vec::with_capacity(n);
    for i in 0..n {
        let user = make_user(store, &format!("racer{i}")).await;
        join(store, org, user.id).await;
        users.push(user.id);
    }
    users
}

/// Sets `org`'s erasure policy to `anonymise`.
pub(crate) async fn anonymising(store: &dyn Store, org: OrgId) {
    let patch = OrgPatch {
        erasure: Some(ErasurePolicy::Anonymise),
        ..OrgPatch::default()
    };
    store.update_org(org, &patch, &[]).await.unwrap();
}

/// Erases `user`, renamed `name`, `secs` into the test (unaudited); answers what it did.
pub(crate) async fn erase(store: &dyn Store, user: UserId, name: &str, secs: i64) -> ErasedAccount {
    let erasure = Erasure {
        user,
        anonymous_name: name,
        at: at(secs),
    };
    store.erase_user(&erasure, &[]).await.unwrap()
}

/// Stores a new message by `author` and answers it.
pub(crate) async fn post_message(
    store: &dyn Store,
    conv: ConversationId,
    author: UserId,
    content: &str,
) -> Message {
    send(store, &new_message(conv, author, content)).await
}

/// Stores `msg` (unaudited), which must be accepted as a new message, and answers it.
pub(crate) async fn send(store: &dyn Store, msg: &NewMessage) -> Message {
    created(store.insert_message(msg, &[]).await.unwrap())
}

pub(crate) fn created(inserted: Inserted) -> Message {
    match inserted {
        Inserted::Created(m) => m,
        Inserted::Replayed(m, _) => panic!("expected a new message, got a replay of {:?}", m.id),
        Inserted::AttachmentsRefused => {
            panic!("expected a new message, its attachments were refused")
        }
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
