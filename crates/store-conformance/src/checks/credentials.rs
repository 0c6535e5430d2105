//! Bots and API keys: creation, lookups by the hash of the current or previous secret, atomic
//! rotation, revocation and last use.

use super::*;
use conclave_core::credential::{Cidr, Scope};

fn hash(n: u8) -> [u8; 32] {
    [n; 32]
}

fn secrets(hint: &str) -> SecretIds {
    SecretIds {
        current: SessionId::new(),
        hint: hint.to_owned(),
        previous: None,
    }
}

fn rotation(n: u8, keep_previous_until: Option<DateTime<Utc>>) -> Rotation {
    Rotation {
        secret: NewSecret {
            id: SessionId::new(),
            hash: hash(n),
            hint: format!("h{n:03}"),
        },
        keep_previous_until,
    }
}

/// The slot of the bot secret hashed as `hash(n)`, when a bot has it.
async fn bot_slot(store: &dyn Store, n: u8) -> Option<SecretSlot> {
    let found = store.bot_by_token_hash(&hash(n)).await.unwrap();
    found.map(|(_, slot)| slot)
}

/// The slot of the API key secret hashed as `hash(n)`, when a key has it.
async fn key_slot(store: &dyn Store, n: u8) -> Option<SecretSlot> {
    let found = store.api_key_by_token_hash(&hash(n)).await.unwrap();
    found.map(|(_, slot)| slot)
}

/// A credential whose secret rotates with a grace period, as made (with the secret
/// `hash(1)`), for the rotation check both kinds share.
enum Rotating {
    Bot(Bot),
    ApiKey(ApiKey),
}

/// A credential's secrets and the end of its previous secret's grace period.
#[derive(Debug)]
struct SecretState {
    secrets: SecretIds,
    previous_expires_at: Option<DateTime<Utc>>,
}

impl From<Bot> for SecretState {
    fn from(bot: Bot) -> Self {
        Self {
            secrets: bot.secrets,
            previous_expires_at: bot.previous_token_expires_at,
        }
    }
}

impl From<ApiKey> for SecretState {
    fn from(key: ApiKey) -> Self {
        Self {
            secrets: key.secrets,
            previous_expires_at: key.previous_key_expires_at,
        }
    }
}

/// Both states of a rotation's answer.
fn states<T: Into<SecretState>>((before, after): (T, T)) -> (SecretState, SecretState) {
    (before.into(), after.into())
}

impl Rotating {
    /// The credential's id and the secrets it was made with.
    fn made(&self) -> (uuid::Uuid, &SecretIds) {
        match self {
            Self::Bot(bot) => (bot.id.0, &bot.secrets),
            Self::ApiKey(key) => (key.id.0, &key.secrets),
        }
    }

    /// Rotates the credential with this id to `r`: its state before and after.
    async fn rotate(
        &self,
        store: &dyn Store,
        id: uuid::Uuid,
        r: &Rotation,
    ) -> StoreResult<(SecretState, SecretState)> {
        match self {
            Self::Bot(_) => store.rotate_bot_token(BotId(id), r, &[]).await.map(states),
            Self::ApiKey(_) => store.rotate_api_key(ApiKeyId(id), r, &[]).await.map(states),
        }
    }

    /// The credential of this kind holding the secret hashed as `hash(n)` (its id) and which
    /// slot matched.
    async fn holder(&self, store: &dyn Store, n: u8) -> Option<(uuid::Uuid, SecretSlot)> {
        match self {
            Self::Bot(_) => (store.bot_by_token_hash(&hash(n)).await.unwrap())
                .map(|(bot, slot)| (bot.id.0, slot)),
            Self::ApiKey(_) => (store.api_key_by_token_hash(&hash(n)).await.unwrap())
                .map(|(key, slot)| (key.id.0, slot)),
        }
    }

    /// The credential as stored now equals the one made but for its secrets.
    async fn assert_only_the_secret_changed(&self, store: &dyn Store) {
        match self {
            Self::Bot(made) => {
                let mut now = store.bot(made.id).await.unwrap();
                now.secrets = made.secrets.clone();
                assert_eq!(now, *made, "only the token changes");
            }
            Self::ApiKey(made) => {
                let mut now = store.api_key(made.id).await.unwrap();
                now.secrets = made.secrets.clone();
                assert_eq!(now, *made, "only the secret changes");
            }
        }
    }

    /// Rotates the credential three times: with a grace period the replaced secret stays as
    /// the previous one; a second rotation drops the oldest secret at once, whatever its
    /// grace; without a grace period the replaced secret goes with it. Nothing but the secret
    /// changes; an unknown id is not found.
    async fn rotation_keeps_the_previous_secret_when_told(&self, store: &dyn Store) {
        let (id, made) = self.made();
        let r = rotation(2, Some(at(60)));
        let (before, after) = self.rotate(store, id, &r).await.unwrap();
        assert_eq!(before.previous_expires_at, None);
        assert_eq!(before.secrets, *made);
        assert_eq!(after.secrets.current, r.secret.id);
        assert_eq!(after.secrets.hint, "h002");
        assert_eq!(after.secrets.previous, Some(before.secrets.current));
        assert_eq!(after.previous_expires_at, Some(at(60)));
        assert_eq!(
            self.holder(store, 1).await,
            Some((id, SecretSlot::Previous))
        );
        assert_eq!(self.holder(store, 2).await, Some((id, SecretSlot::Current)));

        let (_, again) = self
            .rotate(store, id, &rotation(3, Some(at(120))))
            .await
            .unwrap();
        assert_eq!(self.holder(store, 1).await, None);
        assert_eq!(again.secrets.previous, Some(r.secret.id));
        assert_eq!(again.previous_expires_at, Some(at(120)));
        assert_eq!(
            self.holder(store, 2).await,
            Some((id, SecretSlot::Previous))
        );

        let (_, last) = self.rotate(store, id, &rotation(4, None)).await.unwrap();
        assert_eq!(last.secrets.previous, None);
        assert_eq!(last.previous_expires_at, None);
        assert_eq!(self.holder(store, 2).await, None);
        assert_eq!(self.holder(store, 3).await, None);
        assert_eq!(self.holder(store, 4).await, Some((id, SecretSlot::Current)));
        self.assert_only_the_secret_changed(store).await;
        let unknown = uuid::Uuid::now_v7();
        assert_not_found(self.rotate(store, unknown, &rotation(5, None)).await);
    }
}

fn bot_user(name: &str) -> NewUser {
    NewUser {
        password_hash: None,
        kind: UserKind::Bot,
        ..new_user(name)
    }
}

fn new_bot(org: OrgId, user: &NewUser, creator: UserId, convs: Option<Vec<ConversationId>>) -> Bot {
    Bot {
        id: BotId::new(),
        org_id: org,
        user_id: user.id,
        name: "Deploy bot".to_owned(),
        conversation_ids: convs,
        created_by: Some(creator),
        created_at: at(5),
        previous_token_expires_at: None,
        secrets: secrets("b001"),
    }
}

/// Creates `bot` with its `account` and first token hash `token_hash`, with no audit row.
async fn create_bot(
    store: &dyn Store,
    account: &NewUser,
    bot: &Bot,
    token_hash: &[u8],
) -> StoreResult<Member> {
    let new = NewBot {
        bot,
        account,
        token_hash,
    };
    store.create_bot(&new, &[]).await
}

fn new_key(user: UserId, org: OrgId) -> ApiKey {
    ApiKey {
        id: ApiKeyId::new(),
        user_id: user,
        org_id: org,
        name: "ci".to_owned(),
        scopes: vec![Scope::MessagesRead, Scope::OrgRead],
        conversation_ids: None,
        expires_at: Some(at(1000)),
        allowed_ips: Some(vec![
            Cidr::parse("10.0.0.0/8").unwrap(),
            Cidr::parse("2001:db8::/32").unwrap(),
        ]),
        tier: KeyTier::Pro,
        last_used_at: None,
        last_used_ip: None,
        created_at: at(5),
        previous_key_expires_at: None,
        secrets: secrets("k001"),
    }
}

async fn bots_are_accounts_of_their_org(store: Arc<dyn Store>) {
    let (alice, org) = owned_org(&*store, "alice", "acme").await;
    let conv = make_group(&*store, org.id, alice.id, &[], Visibility::ORG).await;
    let user = bot_user("bot-0001");
    let bot = new_bot(org.id, &user, alice.id, Some(vec![conv.id]));
    let member = create_bot(&*store, &user, &bot, &hash(1)).await.unwrap();
    assert_eq!(
        member,
        store.member(org.id, user.id).await.unwrap(),
        "creating a bot answers its membership"
    );

    let account = store.user(user.id).await.unwrap();
    assert_eq!(account.kind, UserKind::Bot);
    assert_eq!(
        store.password_hash(user.id).await.unwrap(),
        None,
        "a bot has no password"
    );
    assert_eq!(
        store.membership(org.id, user.id).await.unwrap(),
        Some(OrgRole::Member)
    );
    assert_eq!(store.bot(bot.id).await.unwrap(), bot);
    assert_eq!(store.bots(org.id).await.unwrap(), vec![bot.clone()]);
    assert_eq!(
        store.bot_by_token_hash(&hash(1)).await.unwrap(),
        Some((bot.clone(), SecretSlot::Current))
    );
    assert_eq!(bot_slot(&*store, 2).await, None);
    assert_not_found(store.bot(BotId::new()).await);

    // All or nothing: a taken username leaves no bot, account or membership behind.
    let clash = bot_user("bot-0001");
    let second = new_bot(org.id, &clash, alice.id, None);
    assert_conflict(
        create_bot(&*store, &clash, &second, &hash(3)).await,
        Conflict::UsernameTaken,
    );
    assert_eq!(store.bots(org.id).await.unwrap().len(), 1);
    assert_eq!(bot_slot(&*store, 3).await, None);
    assert_eq!(store.membership(org.id, clash.id).await.unwrap(), None);

    // Bots go with their org.
    store.delete_org(org.id, &[]).await.unwrap();
    assert_eq!(bot_slot(&*store, 1).await, None);
    assert_not_found(store.bot(bot.id).await);
}
check!(bots_are_accounts_of_their_org);

async fn bot_rotation_keeps_the_previous_token_when_told(store: Arc<dyn Store>) {
    let (alice, org) = owned_org(&*store, "alice", "acme").await;
    let user = bot_user("bot-0002");
    let bot = new_bot(org.id, &user, alice.id, None);
    create_bot(&*store, &user, &bot, &hash(1)).await.unwrap();

    Rotating::Bot(bot)
        .rotation_keeps_the_previous_secret_when_told(&*store)
        .await;
}
check!(bot_rotation_keeps_the_previous_token_when_told);

async fn api_keys_lifecycle(store: Arc<dyn Store>) {
    let [alice, bob] = make_users(&*store, ["alice", "bob"]).await;
    let org = make_org(&*store, "acme", alice.id).await;
    let conv = make_group(&*store, org.id, alice.id, &[], Visibility::ORG).await;
    let mut key = new_key(alice.id, org.id);
    key.conversation_ids = Some(vec![conv.id]);
    store.create_api_key(&key, &hash(1), &[]).await.unwrap();
    let plain = ApiKey {
        scopes: vec![Scope::WebhooksAdmin],
        expires_at: None,
        allowed_ips: None,
        tier: KeyTier::Free,
        secrets: secrets("k002"),
        ..new_key(alice.id, org.id)
    };
    store.create_api_key(&plain, &hash(2), &[]).await.unwrap();

    assert_eq!(
        store.api_key(key.id).await.unwrap(),
        key,
        "every field round-trips"
    );
    assert_eq!(
        store.api_keys(alice.id).await.unwrap(),
        vec![key.clone(), plain.clone()]
    );
    assert!(store.api_keys(bob.id).await.unwrap().is_empty());
    assert_eq!(
        store.api_key_by_token_hash(&hash(2)).await.unwrap(),
        Some((plain.clone(), SecretSlot::Current))
    );

    store
        .touch_api_key(
            key.id,
            Seen {
                at: at(30),
                ip: Some("10.1.2.3"),
            },
        )
        .await
        .unwrap();
    store
        .touch_api_key(
            key.id,
            Seen {
                at: at(90),
                ip: None,
            },
        )
        .await
        .unwrap();
    let touched = store.api_key(key.id).await.unwrap();
    assert_eq!(touched.last_used_at, Some(at(90)));
    assert_eq!(
        touched.last_used_ip.as_deref(),
        Some("10.1.2.3"),
        "an unknown address keeps the last one"
    );

    // Only the owner deletes a key; the deleted key is answered and gone.
    assert_not_found(store.delete_api_key(bob.id, key.id, &[]).await);
    let gone = store.delete_api_key(alice.id, key.id, &[]).await.unwrap();
    assert_eq!(gone.id, key.id);
    assert_eq!(key_slot(&*store, 1).await, None);
    assert_not_found(store.api_key(key.id).await);
    assert_not_found(store.delete_api_key(alice.id, key.id, &[]).await);
    store
        .touch_api_key(
            key.id,
            Seen {
                at: at(100),
                ip: None,
            },
        )
        .await
        .expect("touching a deleted key is not an error");
}
check!(api_keys_lifecycle);

async fn api_key_rotation_and_org_removal(store: Arc<dyn Store>) {
    let (alice, org) = owned_org(&*store, "alice", "acme").await;
    let key = new_key(alice.id, org.id);
    store.create_api_key(&key, &hash(1), &[]).await.unwrap();

    Rotating::ApiKey(key)
        .rotation_keeps_the_previous_secret_when_told(&*store)
        .await;

    // Keys go with their org.
    store.delete_org(org.id, &[]).await.unwrap();
    assert!(store.api_keys(alice.id).await.unwrap().is_empty());
}
check!(api_key_rotation_and_org_removal);

async fn concurrent_rotations_keep_one_previous_secret(store: Arc<dyn Store>) {
    let (alice, org) = owned_org(&*store, "alice", "acme").await;
    let key = new_key(alice.id, org.id);
    store.create_api_key(&key, &hash(1), &[]).await.unwrap();
    let mut tasks = Vec::new();
    for n in 2..10u8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .rotate_api_key(key.id, &rotation(n, Some(at(600))), &[])
                .await
                .unwrap()
        }));
    }
    let mut seen_before = std::collections::HashSet::new();
    for t in tasks {
        let (before, after) = t.await.unwrap();
        assert_eq!(after.secrets.previous, Some(before.secrets.current));
        assert!(
            seen_before.insert(before.secrets.current),
            "each rotation replaced a different secret"
        );
    }
    let mut live = 0;
    for n in 1..10u8 {
        if store
            .api_key_by_token_hash(&hash(n))
            .await
            .unwrap()
            .is_some()
        {
            live += 1;
        }
    }
    assert_eq!(live, 2, "exactly the current and one previous secret work");
}
check!(concurrent_rotations_keep_one_previous_secret);
