//! Bots and API keys: their rows, secret lookups by keyed hash (current or previous secret, one
//! indexed query), and atomic rotation. Lists (scopes, conversation ids, IP blocks) are JSON
//! arrays of strings, the same text in both backends.

use super::*;

/// A list as the JSON array of strings the list columns hold.
fn json_text<T: std::fmt::Display>(list: &[T]) -> StoreResult<String> {
    let items: Vec<String> = list.iter().map(ToString::to_string).collect();
    serde_json::to_string(&items).map_err(|e| StoreError::Backend(format!("encoding a list: {e}")))
}

/// A nullable list column, each item read back through `parse`.
fn json_list<T>(row: &Row, col: &str, parse: fn(&str) -> Option<T>) -> StoreResult<Option<Vec<T>>> {
    let bad = |why: String| StoreError::Backend(format!("column {col}: {why}"));
    let Some(text) = get::<Option<String>>(row, col)? else {
        return Ok(None);
    };
    let items: Vec<String> = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    items
        .iter()
        .map(|i| parse(i).ok_or_else(|| bad(format!("unknown value {i:?}"))))
        .collect::<StoreResult<Vec<T>>>()
        .map(Some)
}

fn conversation_id(raw: &str) -> Option<ConversationId> {
    uuid::Uuid::try_parse(raw).ok().map(ConversationId)
}

fn scope(raw: &str) -> Option<conclave_core::credential::Scope> {
    conclave_core::credential::Scope::parse(raw).ok()
}

fn cidr(raw: &str) -> Option<conclave_core::credential::Cidr> {
    conclave_core::credential::Cidr::parse(raw).ok()
}

fn secret_ids(row: &Row) -> StoreResult<SecretIds> {
    Ok(SecretIds {
        current: SessionId(get(row, "token_id")?),
        hint: get(row, "token_hint")?,
        previous: get::<Option<uuid::Uuid>>(row, "previous_token_id")?.map(SessionId),
    })
}

/// Which secret matched, from the `is_current` column of a lookup by hash.
fn slot(row: &Row) -> StoreResult<SecretSlot> {
    Ok(if get::<bool>(row, "is_current")? {
        SecretSlot::Current
    } else {
        SecretSlot::Previous
    })
}

const BOT_COLS: &str = "id, org_id, user_id, name, conversation_ids, created_by, \
     created_at, token_id, token_hint, previous_token_id, previous_expires_at";

fn bot_from_row(row: &Row) -> StoreResult<Bot> {
    Ok(from_columns!(row, Bot {
        name, created_at;
        id: BotId(get(row, "id")?),
        org_id: OrgId(get(row, "org_id")?),
        user_id: UserId(get(row, "user_id")?),
        conversation_ids: json_list(row, "conversation_ids", conversation_id)?,
        created_by: get::<Option<uuid::Uuid>>(row, "created_by")?.map(UserId),
        previous_token_expires_at: get(row, "previous_expires_at")?,
        secrets: secret_ids(row)?,
    }))
}

const API_KEY_COLS: &str = "id, user_id, org_id, name, scopes, conversation_ids, \
     expires_at, allowed_ips, tier, last_used_at, last_used_ip, created_at, token_id, \
     token_hint, previous_token_id, previous_expires_at";

fn api_key_from_row(row: &Row) -> StoreResult<ApiKey> {
    Ok(from_columns!(row, ApiKey {
        name, expires_at, last_used_at, last_used_ip, created_at;
        id: ApiKeyId(get(row, "id")?),
        user_id: UserId(get(row, "user_id")?),
        org_id: OrgId(get(row, "org_id")?),
        scopes: json_list(row, "scopes", scope)?.unwrap_or_default(),
        conversation_ids: json_list(row, "conversation_ids", conversation_id)?,
        allowed_ips: json_list(row, "allowed_ips", cidr)?,
        tier: tag(row, "tier", KeyTier::parse)?,
        previous_key_expires_at: get(row, "previous_expires_at")?,
        secrets: secret_ids(row)?,
    }))
}

/// Rotates the secret of row `id` in `table` (`bots` or `api_keys`) inside `conn`'s
/// transaction: the current secret becomes the previous one (or is dropped), and an
/// older previous one always goes.
async fn rotate_secret(
    conn: &mut Conn,
    table: &str,
    id: uuid::Uuid,
    rotation: &Rotation,
) -> StoreResult<()> {
    let keep = rotation.keep_previous_until.map(ts);
    sqlx::query(&format!(
        "UPDATE {table} SET \
         previous_token_id = CASE WHEN $2 IS NULL THEN NULL ELSE token_id END, \
         previous_token_hash = CASE WHEN $2 IS NULL THEN NULL ELSE token_hash END, \
         previous_expires_at = $2, \
         token_id = $3, token_hash = $4, token_hint = $5 WHERE id = $1"
    ))
    .bind(id)
    .bind(keep)
    .bind(rotation.secret.id.0)
    .bind(&rotation.secret.hash[..])
    .bind(rotation.secret.hint.as_str())
    .change(&mut *conn)
    .await
}

/// Where a credential lives: its table (as [`Records::from`]), its columns and how a row of
/// them decodes.
struct CredentialTable<T>(Records<T>);

const BOTS: CredentialTable<Bot> = CredentialTable(Records::new("bots", BOT_COLS, bot_from_row));

const API_KEYS: CredentialTable<ApiKey> =
    CredentialTable(Records::new("api_keys", API_KEY_COLS, api_key_from_row));

impl<T> CredentialTable<T> {
    /// The credential with row id `id`.
    async fn by_id(&self, s: &Backend, id: uuid::Uuid) -> StoreResult<T> {
        self.0.one(s.reader(), "WHERE id = $1", id).await
    }

    /// The credentials whose `owner` column is `value`, oldest first.
    async fn owned_by(&self, s: &Backend, owner: &str, value: uuid::Uuid) -> StoreResult<Vec<T>> {
        let rest = format!("WHERE {owner} = $1 ORDER BY id");
        self.0.all(s.reader(), &rest, value).await
    }

    /// The credential whose current or previous secret has this hash, and which one it was.
    async fn by_token_hash(
        &self,
        s: &Backend,
        token_hash: &[u8],
    ) -> StoreResult<Option<(T, SecretSlot)>> {
        let Records { cols, from, .. } = self.0;
        let sql = format!(
            "SELECT {cols}, token_hash = $1 AS is_current FROM {from} \
             WHERE token_hash = $1 OR previous_token_hash = $1"
        );
        let row = sqlx::query(&sql)
            .bind(token_hash)
            .fetch_optional(s.reader())
            .await
            .map_err(db)?;
        row.map(|r| Ok(((self.0.from_row)(&r)?, slot(&r)?)))
            .transpose()
    }

    /// Locks one credential row, rotates its secret and answers the credential before and
    /// after, in one transaction (concurrent rotations of the same row run in turn).
    async fn rotate(
        &self,
        s: &Backend,
        id: uuid::Uuid,
        rotation: &Rotation,
        audit: &[AuditEntry],
    ) -> StoreResult<(T, T)> {
        let table = self.0.from;
        let mut tx = s.writer().begin().await.map_err(db)?;
        // Takes the row lock first (PostgreSQL).
        sqlx::query(&format!("UPDATE {table} SET name = name WHERE id = $1"))
            .bind(id)
            .change(&mut *tx)
            .await?;
        let before = self.0.one(&mut *tx, "WHERE id = $1", id).await?;
        rotate_secret(&mut tx, table, id, rotation).await?;
        let after = self.0.one(&mut *tx, "WHERE id = $1", id).await?;
        commit_audited(tx, s, audit).await?;
        Ok((before, after))
    }
}

/// Creates the bot's account, its membership (role member) and the `bots` row inside `tx`;
/// answers the membership.
pub(super) async fn insert_bot(tx: &mut Conn, new: &NewBot<'_>) -> StoreResult<Member> {
    let NewBot {
        bot,
        account,
        token_hash,
    } = *new;
    insert_user(&mut *tx, account).await?;
    ORG_MEMBERS
        .insert(
            &mut *tx,
            bot.org_id.0,
            bot.user_id,
            OrgRole::Member,
            bot.created_at,
        )
        .await?;
    sqlx::query(
        "INSERT INTO bots (id, org_id, user_id, name, conversation_ids, created_by, \
         created_at, token_id, token_hash, token_hint) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(bot.id.0)
    .bind(bot.org_id.0)
    .bind(bot.user_id.0)
    .bind(bot.name.as_str())
    .bind(bot.conversation_ids.as_deref().map(json_text).transpose()?)
    .bind(bot.created_by.map(|u| u.0))
    .bind(ts(bot.created_at))
    .bind(bot.secrets.current.0)
    .bind(token_hash)
    .bind(bot.secrets.hint.as_str())
    .run(&mut *tx)
    .await?;
    ORG_MEMBERS.entry(&mut *tx, bot.org_id.0, bot.user_id).await
}

#[async_trait]
impl CredentialStore for Backend {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn create_bot(&self, new: &NewBot<'_>, audit: &[AuditEntry]) -> StoreResult<Member> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        let member = insert_bot(&mut tx, new).await?;
        commit_audited(tx, self, audit).await?;
        Ok(member)
    }

    async fn bot(&self, id: BotId) -> StoreResult<Bot> {
        BOTS.by_id(self, id.0).await
    }

    async fn bots(&self, org: OrgId) -> StoreResult<Vec<Bot>> {
        BOTS.owned_by(self, "org_id", org.0).await
    }

    async fn bot_by_token_hash(&self, token_hash: &[u8]) -> StoreResult<Option<(Bot, SecretSlot)>> {
        BOTS.by_token_hash(self, token_hash).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn rotate_bot_token(
        &self,
        id: BotId,
        rotation: &Rotation,
        audit: &[AuditEntry],
    ) -> StoreResult<(Bot, Bot)> {
        BOTS.rotate(self, id.0, rotation, audit).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn create_api_key(
        &self,
        key: &ApiKey,
        token_hash: &[u8],
        audit: &[AuditEntry],
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO api_keys (id, user_id, org_id, name, scopes, conversation_ids, \
             expires_at, allowed_ips, tier, created_at, token_id, token_hash, token_hint) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(key.id.0)
        .bind(key.user_id.0)
        .bind(key.org_id.0)
        .bind(key.name.as_str())
        .bind(json_text(&key.scopes)?)
        .bind(key.conversation_ids.as_deref().map(json_text).transpose()?)
        .bind(key.expires_at.map(ts))
        .bind(key.allowed_ips.as_deref().map(json_text).transpose()?)
        .bind(key.tier.as_str())
        .bind(ts(key.created_at))
        .bind(key.secrets.current.0)
        .bind(token_hash)
        .bind(key.secrets.hint.as_str())
        .change_audited(self, audit)
        .await
    }

    async fn api_key(&self, id: ApiKeyId) -> StoreResult<ApiKey> {
        API_KEYS.by_id(self, id.0).await
    }

    async fn api_keys(&self, user: UserId) -> StoreResult<Vec<ApiKey>> {
        API_KEYS.owned_by(self, "user_id", user.0).await
    }

    async fn api_key_by_token_hash(
        &self,
        token_hash: &[u8],
    ) -> StoreResult<Option<(ApiKey, SecretSlot)>> {
        API_KEYS.by_token_hash(self, token_hash).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn rotate_api_key(
        &self,
        id: ApiKeyId,
        rotation: &Rotation,
        audit: &[AuditEntry],
    ) -> StoreResult<(ApiKey, ApiKey)> {
        API_KEYS.rotate(self, id.0, rotation, audit).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn delete_api_key(
        &self,
        user: UserId,
        id: ApiKeyId,
        audit: &[AuditEntry],
    ) -> StoreResult<ApiKey> {
        sqlx::query(&format!(
            "DELETE FROM api_keys WHERE id = $1 AND user_id = $2 RETURNING {API_KEY_COLS}"
        ))
        .bind(id.0)
        .bind(user.0)
        .one_audited(self, audit, api_key_from_row)
        .await
    }

    async fn touch_api_key(&self, id: ApiKeyId, seen: Seen<'_>) -> StoreResult<()> {
        let sql = "UPDATE api_keys SET last_used_at = $2, \
                   last_used_ip = COALESCE($3, last_used_ip) WHERE id = $1";
        touch(self, sql, id.0, seen).await
    }
}
