//! Helpers every query uses: error mapping, timestamp normalisation, column decoding, keyset
//! paging and the row → record mappings.

use super::*;

/// Any database failure: a missing row or a dangling reference is `NotFound`, the rest is
/// text for the logs.
pub(super) fn db(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        // Every connection stayed taken for the pool's whole acquire timeout: overload (503,
        // retry), not a failure of the server (500).
        sqlx::Error::PoolTimedOut => StoreError::Busy,
        sqlx::Error::Database(d) if d.kind() == sqlx::error::ErrorKind::ForeignKeyViolation => {
            StoreError::NotFound
        }
        _ => StoreError::Backend(e.to_string()),
    }
}

/// Like [`db`], but a unique violation means `conflict` (the caller knows which
/// constraint its statement can break).
pub(super) fn unique(conflict: Conflict) -> impl Fn(sqlx::Error) -> StoreError {
    move |e| match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict(conflict),
        _ => db(e),
    }
}

pub(super) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// PostgreSQL keeps microseconds; every stored time is cut to that so both backends
/// store, compare and return the same instants.
pub(super) fn ts(t: DateTime<Utc>) -> DateTime<Utc> {
    chrono::SubsecRound::trunc_subsecs(t, 6)
}

pub(super) fn get<'r, T>(row: &'r Row, col: &str) -> StoreResult<T>
where
    T: sqlx::Decode<'r, Db> + sqlx::Type<Db>,
{
    sqlx::Row::try_get(row, col).map_err(|e| StoreError::Backend(format!("column {col}: {e}")))
}

/// A stored closed-enum value read back through its own parser.
pub(super) fn tag<T>(
    row: &Row,
    col: &str,
    parse: fn(&str) -> Result<T, Rejection>,
) -> StoreResult<T> {
    let raw: String = get(row, col)?;
    parse(&raw).map_err(|_| StoreError::Backend(format!("column {col}: unknown value {raw:?}")))
}

pub(super) fn limit(l: Limit) -> i64 {
    i64::from(l.get())
}

/// Where and how a keyset page reads `col`: an extra condition on the last bind
/// parameter `$n` (when there is a key), the sort direction and the key.
pub(super) struct Keyset<K> {
    pub(super) cond: String,
    pub(super) order: &'static str,
    pub(super) key: Option<K>,
}

pub(super) fn keyset<K>(cursor: Cursor<K>, col: &str, n: usize) -> Keyset<K> {
    match cursor {
        Cursor::Latest => Keyset {
            cond: String::new(),
            order: "DESC",
            key: None,
        },
        Cursor::Before(k) => Keyset {
            cond: format!("AND {col} < ${n}"),
            order: "DESC",
            key: Some(k),
        },
        Cursor::After(k) => Keyset {
            cond: format!("AND {col} > ${n}"),
            order: "ASC",
            key: Some(k),
        },
    }
}

impl<K> Keyset<K> {
    /// Binds the key (as `value` makes it), when there is one, as the last parameter of `query`.
    pub(super) fn bind_key<'q, V>(self, query: Query<'q>, value: fn(K) -> V) -> Query<'q>
    where
        V: sqlx::Encode<'q, Db> + sqlx::Type<Db> + Send + 'q,
    {
        match self.key {
            Some(key) => query.bind(value(key)),
            None => query,
        }
    }
}

/// `$from, $from+1, …` for `count` values of an `IN (…)` list.
pub(super) fn placeholders(from: usize, count: usize) -> String {
    (from..from + count)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every row, decoded, of the statement `select` makes around an `IN` list (`$1, $2, …`) of
/// `keys`; no statement at all when there are no keys.
pub(super) async fn select_in<'c, K: Key, T>(
    on: impl Executor<'c>,
    keys: impl ExactSizeIterator<Item = K>,
    select: impl FnOnce(&str) -> String,
    from_row: FromRow<T>,
) -> StoreResult<Vec<T>> {
    if keys.len() == 0 {
        return Ok(Vec::new());
    }
    let sql = select(&placeholders(1, keys.len()));
    let mut query = sqlx::query(&sql);
    for key in keys {
        query = key.bind_to(query);
    }
    query.all(on, from_row).await
}

/// A `$ty` (a struct's name or path) read from `$row`: each field before the `;` from the
/// column of its own name (so the two cannot drift apart), each after it as given (an id type
/// around its column, a tag to parse, a column of another name, a nested read).
macro_rules! from_columns {
    (
        $row:ident,
        $($ty:ident)::+ { $($col:ident),* $(,)? ; $($field:ident: $value:expr),* $(,)? }
    ) => {
        $($ty)::+ {
            $($col: get($row, stringify!($col))?,)*
            $($field: $value,)*
        }
    };
}
pub(super) use from_columns;

/// The columns [`user_from_row`] reads, from `users u`.
pub(super) const USER_COLS: &str = "u.id, u.username, u.display_name, u.email, \
                         u.email_verified, u.kind, u.server_admin, u.disabled, u.require_2fa, \
                         u.created_at";

/// [`USER_COLS`] unqualified, for `RETURNING`.
pub(super) const USER_RETURNING: &str = "id, username, display_name, email, \
                              email_verified, kind, server_admin, disabled, require_2fa, created_at";

pub(super) const USERS: Records<User> = Records::new("users u", USER_COLS, user_from_row);

pub(super) fn user_from_row(row: &Row) -> StoreResult<User> {
    Ok(from_columns!(row, User {
        username, display_name, email, email_verified, server_admin, disabled, require_2fa,
        created_at;
        id: UserId(get(row, "id")?),
        kind: tag(row, "kind", UserKind::parse)?,
    }))
}

pub(super) fn summary_from_row(row: &Row) -> StoreResult<UserSummary> {
    Ok(UserSummary {
        id: UserId(get(row, "su_id")?),
        username: get(row, "su_username")?,
        display_name: get(row, "su_display_name")?,
        kind: tag(row, "su_kind", UserKind::parse)?,
    })
}

pub(super) const SESSION_COLS: &str =
    "id, user_id, device, ip, created_at, last_seen_at, expires_at, cookie, impersonator_id";

pub(super) const SESSIONS: Records<Session> =
    Records::new("sessions", SESSION_COLS, session_from_row);

pub(super) fn session_from_row(row: &Row) -> StoreResult<Session> {
    Ok(from_columns!(row, Session {
        device, ip, created_at, last_seen_at, expires_at, cookie;
        id: SessionId(get(row, "id")?),
        user_id: UserId(get(row, "user_id")?),
        impersonator: get::<Option<uuid::Uuid>>(row, "impersonator_id")?.map(UserId),
    }))
}

pub(super) const ORG_COLS: &str = "o.id, o.name, o.require_2fa, o.message_retention_days, \
                        o.audit_retention_days, o.erasure, o.created_at";

/// [`ORG_COLS`] unqualified, for `RETURNING`.
pub(super) const ORG_RETURNING: &str = "id, name, require_2fa, message_retention_days, \
                             audit_retention_days, erasure, created_at";

pub(super) const ORGS: Records<Org> = Records::new("orgs o", ORG_COLS, org_from_row);

pub(super) fn org_from_row(row: &Row) -> StoreResult<Org> {
    Ok(from_columns!(row, Org {
        name, require_2fa, message_retention_days, audit_retention_days, created_at;
        id: OrgId(get(row, "id")?),
        erasure: tag(row, "erasure", ErasurePolicy::parse)?,
    }))
}

pub(super) fn member_from_row(row: &Row) -> StoreResult<Member> {
    Ok(from_columns!(row, Member {
        joined_at;
        org_id: OrgId(get(row, "org_id")?),
        user: summary_from_row(row)?,
        role: tag(row, "role", OrgRole::parse)?,
    }))
}

pub(super) const INVITE_COLS: &str =
    "id, org_id, role, max_uses, uses, expires_at, invitee_key, created_by, created_at";

pub(super) const INVITES: Records<Invite> = Records::new("invites", INVITE_COLS, invite_from_row);

pub(super) fn invite_from_row(row: &Row) -> StoreResult<Invite> {
    Ok(from_columns!(row, Invite {
        max_uses, uses, expires_at, created_at;
        id: InviteId(get(row, "id")?),
        org_id: OrgId(get(row, "org_id")?),
        role: tag(row, "role", OrgRole::parse)?,
        username: get(row, "invitee_key")?,
        created_by: UserId(get(row, "created_by")?),
    }))
}

pub(super) const CONVERSATION_COLS: &str = "c.id, c.org_id, c.kind, c.name, c.visibility, \
     c.archived, c.created_by, c.created_at, c.updated_at, c.last_seq, c.direct_key";

/// A conversation's visibility column; `teams` comes back with an empty list that
/// [`with_teams`] fills.
fn visibility_from_row(row: &Row) -> StoreResult<Visibility> {
    let visibility: String = get(row, "visibility")?;
    Ok(match visibility.as_str() {
        "private" => Visibility::PRIVATE,
        "org" => Visibility::ORG,
        "teams" => Visibility::Teams { teams: Vec::new() },
        other => {
            return Err(StoreError::Backend(format!(
                "column visibility: unknown value {other:?}"
            )))
        }
    })
}

/// A conversation row; a `teams` visibility comes back with an empty list that
/// [`with_teams`] fills.
pub(super) fn conversation_from_row(row: &Row) -> StoreResult<Conversation> {
    Ok(from_columns!(row, Conversation {
        name, archived, created_at, updated_at, last_seq, direct_key;
        id: ConversationId(get(row, "id")?),
        org_id: OrgId(get(row, "org_id")?),
        kind: tag(row, "kind", ConversationKind::parse)?,
        visibility: visibility_from_row(row)?,
        created_by: UserId(get(row, "created_by")?),
    }))
}

pub(super) fn participant_from_row(row: &Row) -> StoreResult<Participant> {
    Ok(from_columns!(row, Participant {
        joined_at;
        conversation_id: ConversationId(get(row, "conversation_id")?),
        user: summary_from_row(row)?,
        role: tag(row, "role", ConversationRole::parse)?,
    }))
}

/// The columns [`message_from_row`] reads, from `messages m JOIN users u`.
pub(super) const MESSAGE_COLS: &str = "m.id, m.conversation_id, m.seq, m.content, m.format, \
     m.reply_to, m.created_at, m.edited_at, m.deleted_at, m.status, m.status_reason, \
     u.id AS su_id, u.username AS su_username, u.display_name AS su_display_name, \
     u.kind AS su_kind";

/// Messages with their authors.
pub(super) const MESSAGES: Records<Message> = Records::new(
    "messages m JOIN users u ON u.id = m.author_id",
    MESSAGE_COLS,
    message_from_row,
);

pub(super) fn message_from_row(row: &Row) -> StoreResult<Message> {
    Ok(from_columns!(row, Message {
        seq, content, created_at, edited_at, deleted_at, status_reason;
        id: MessageId(get(row, "id")?),
        conversation_id: ConversationId(get(row, "conversation_id")?),
        author: summary_from_row(row)?,
        format: tag(row, "format", MessageFormat::parse)?,
        reply_to: get::<Option<uuid::Uuid>>(row, "reply_to")?.map(MessageId),
        attachments: Vec::new(),
        status: tag(row, "status", MessageStatus::parse)?,
    }))
}

pub(super) fn version_from_row(row: &Row) -> StoreResult<MessageVersion> {
    Ok(from_columns!(row, MessageVersion {
        content, written_at, replaced_at;
        id: MessageVersionId(get(row, "id")?),
        message_id: MessageId(get(row, "message_id")?),
        format: tag(row, "format", MessageFormat::parse)?,
    }))
}

/// Inserts the pair (`a`, `b`) into a link table, named with its two columns as
/// `"table (a_col, b_col)"`; a pair linked already is not an error.
pub(super) async fn link(
    conn: &mut Conn,
    table: &str,
    a: uuid::Uuid,
    b: uuid::Uuid,
) -> StoreResult<()> {
    let sql = format!("INSERT INTO {table} VALUES ($1, $2) ON CONFLICT DO NOTHING");
    sqlx::query(&sql).bind(a).bind(b).run(conn).await?;
    Ok(())
}

/// Deletes the one row of `table` that both keys (`(column, value)`) name, with the change's
/// audit rows; `NotFound` (and no audit row) when there is none.
pub(super) async fn delete_keyed(
    s: &Backend,
    table: &str,
    [(a_col, a), (b_col, b)]: [(&str, uuid::Uuid); 2],
    audit: &[AuditEntry],
) -> StoreResult<()> {
    let sql = format!("DELETE FROM {table} WHERE {a_col} = $1 AND {b_col} = $2");
    sqlx::query(&sql)
        .bind(a)
        .bind(b)
        .change_audited(s, audit)
        .await
}

/// Deletes the rows of `table` whose `col` is before `before` (expired sign-in challenges,
/// stale resume states, forgotten login counters); answers how many went.
pub(super) async fn prune_before(
    s: &Backend,
    table: &str,
    col: &str,
    before: DateTime<Utc>,
) -> StoreResult<u64> {
    sqlx::query(&format!("DELETE FROM {table} WHERE {col} < $1"))
        .bind(ts(before))
        .run(s.writer())
        .await
}

/// Records a use of a session or key: `sql` sets row `$1`'s last use to `$2` and its address to
/// `$3` when that is known. A row deleted meanwhile simply stays gone: nothing to touch, no
/// error.
pub(super) async fn touch(
    s: &Backend,
    sql: &str,
    id: uuid::Uuid,
    seen: Seen<'_>,
) -> StoreResult<()> {
    sqlx::query(sql)
        .bind(id)
        .bind(ts(seen.at))
        .bind(seen.ip)
        .run(s.writer())
        .await?;
    Ok(())
}

/// What a statement runs on: the backend's pool, a connection or a transaction.
pub(super) trait Executor<'c>: sqlx::Executor<'c, Database = Db> {}

impl<'c, E: sqlx::Executor<'c, Database = Db>> Executor<'c> for E {}

/// A sealed secret from its `secret_key_id`, `secret_nonce` and `secret_ciphertext` columns
/// (as every sealed column is stored, DATA-3).
pub(super) fn sealed_from_row(row: &Row) -> StoreResult<conclave_core::secretbox::Sealed> {
    Ok(conclave_core::secretbox::Sealed {
        key_id: get(row, "secret_key_id")?,
        nonce: get(row, "secret_nonce")?,
        ciphertext: get(row, "secret_ciphertext")?,
    })
}

/// Binds a sealed secret's key id, nonce and ciphertext, in that order.
pub(super) fn bind_sealed<'q>(
    query: Query<'q>,
    sealed: &'q conclave_core::secretbox::Sealed,
) -> Query<'q> {
    query
        .bind(sealed.key_id)
        .bind(sealed.nonce.as_slice())
        .bind(sealed.ciphertext.as_slice())
}

/// How a `*_from_row` function decodes one result row.
pub(super) type FromRow<T> = fn(&Row) -> StoreResult<T>;

/// Where the records of `T` are read from: the columns `from_row` decodes and the table they
/// come from (with the alias the columns name it by). Each read gives the rest of its
/// statement — a join, the `WHERE` on its key `$1`, the order.
pub(super) struct Records<T> {
    pub(super) cols: &'static str,
    pub(super) from: &'static str,
    pub(super) from_row: FromRow<T>,
}

impl<T> Records<T> {
    /// The records of `from`: `cols` read by `from_row`.
    pub(super) const fn new(from: &'static str, cols: &'static str, from_row: FromRow<T>) -> Self {
        Self {
            cols,
            from,
            from_row,
        }
    }

    /// `SELECT` the columns `FROM` the table, then `rest`.
    pub(super) fn select(&self, rest: &str) -> String {
        format!("SELECT {} FROM {} {rest}", self.cols, self.from)
    }

    /// The one record that `rest` picks by `key`; `NotFound` when there is none.
    pub(super) async fn one<'c>(
        &self,
        on: impl Executor<'c>,
        rest: &str,
        key: impl Key,
    ) -> StoreResult<T> {
        let found = self.opt(on, rest, key).await?;
        found.ok_or(StoreError::NotFound)
    }

    /// The record that `rest` picks by `key`, if there is one.
    pub(super) async fn opt<'c>(
        &self,
        on: impl Executor<'c>,
        rest: &str,
        key: impl Key,
    ) -> StoreResult<Option<T>> {
        let sql = self.select(rest);
        key.bind_to(sqlx::query(&sql)).opt(on, self.from_row).await
    }

    /// Every record that `rest` picks by `key`.
    pub(super) async fn all<'c>(
        &self,
        on: impl Executor<'c>,
        rest: &str,
        key: impl Key,
    ) -> StoreResult<Vec<T>> {
        let sql = self.select(rest);
        key.bind_to(sqlx::query(&sql)).all(on, self.from_row).await
    }
}

/// What a [`Records`] read binds as its `$1`: a row id, a token's hash, a key's text.
pub(super) trait Key: Send {
    fn bind_to<'q>(self, query: Query<'q>) -> Query<'q>
    where
        Self: 'q;
}

impl Key for uuid::Uuid {
    fn bind_to<'q>(self, query: Query<'q>) -> Query<'q>
    where
        Self: 'q,
    {
        query.bind(self)
    }
}

/// A borrowed value (a token's hash, a key's text), bound for as long as the statement runs.
impl<V> Key for &V
where
    V: ?Sized + Sync,
    for<'q> &'q V: sqlx::Encode<'q, Db> + sqlx::Type<Db>,
{
    fn bind_to<'q>(self, query: Query<'q>) -> Query<'q>
    where
        Self: 'q,
    {
        let value: &'q V = self;
        query.bind(value)
    }
}

/// A statement of the backend with its bound arguments.
pub(super) type Query<'q> = sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments<'q>>;

/// How every statement of the store runs: on a pool or a connection (`on`), with its errors
/// mapped by [`db`] and its rows decoded by a `*_from_row` function.
pub(super) trait Run: Sized {
    /// Runs the statement; answers how many rows it changed.
    async fn run<'c>(self, on: impl Executor<'c>) -> StoreResult<u64>;

    /// Runs a statement that must change a row: `NotFound` when it changes none.
    async fn change<'c>(self, on: impl Executor<'c>) -> StoreResult<()>;

    /// The statement's one row, decoded; `NotFound` when there is none.
    async fn one<'c, T>(self, on: impl Executor<'c>, from_row: FromRow<T>) -> StoreResult<T>;

    /// The statement's row, decoded, if there is one.
    async fn opt<'c, T>(
        self,
        on: impl Executor<'c>,
        from_row: FromRow<T>,
    ) -> StoreResult<Option<T>>;

    /// Every row of the statement, decoded.
    async fn all<'c, T>(self, on: impl Executor<'c>, from_row: FromRow<T>) -> StoreResult<Vec<T>>;

    /// In one transaction of `s`: runs the statement and, when it changed a row, appends
    /// `audit` and commits (no change, no audit row); answers how many rows it changed.
    async fn run_audited(self, s: &Backend, audit: &[AuditEntry]) -> StoreResult<u64>;

    /// [`Run::run_audited`] for a statement that must change a row: `NotFound` (and no audit
    /// row) when it changes none.
    async fn change_audited(self, s: &Backend, audit: &[AuditEntry]) -> StoreResult<()>;

    /// In one transaction of `s`: the statement's one row, decoded (`NotFound` when there is
    /// none), with `audit` appended.
    async fn one_audited<T>(
        self,
        s: &Backend,
        audit: &[AuditEntry],
        from_row: FromRow<T>,
    ) -> StoreResult<T>;
}

impl Run for Query<'_> {
    async fn run<'c>(self, on: impl Executor<'c>) -> StoreResult<u64> {
        Ok(self.execute(on).await.map_err(db)?.rows_affected())
    }

    async fn change<'c>(self, on: impl Executor<'c>) -> StoreResult<()> {
        match self.run(on).await? {
            0 => Err(StoreError::NotFound),
            _ => Ok(()),
        }
    }

    async fn one<'c, T>(self, on: impl Executor<'c>, from_row: FromRow<T>) -> StoreResult<T> {
        from_row(&self.fetch_one(on).await.map_err(db)?)
    }

    async fn opt<'c, T>(
        self,
        on: impl Executor<'c>,
        from_row: FromRow<T>,
    ) -> StoreResult<Option<T>> {
        let row = self.fetch_optional(on).await.map_err(db)?;
        row.as_ref().map(from_row).transpose()
    }

    async fn all<'c, T>(self, on: impl Executor<'c>, from_row: FromRow<T>) -> StoreResult<Vec<T>> {
        let rows = self.fetch_all(on).await.map_err(db)?;
        rows.iter().map(from_row).collect()
    }

    async fn run_audited(self, s: &Backend, audit: &[AuditEntry]) -> StoreResult<u64> {
        let mut tx = s.writer().begin().await.map_err(db)?;
        let changed = self.run(&mut *tx).await?;
        if changed > 0 {
            commit_audited(tx, s, audit).await?;
        }
        Ok(changed)
    }

    async fn change_audited(self, s: &Backend, audit: &[AuditEntry]) -> StoreResult<()> {
        match self.run_audited(s, audit).await? {
            0 => Err(StoreError::NotFound),
            _ => Ok(()),
        }
    }

    async fn one_audited<T>(
        self,
        s: &Backend,
        audit: &[AuditEntry],
        from_row: FromRow<T>,
    ) -> StoreResult<T> {
        let mut tx = s.writer().begin().await.map_err(db)?;
        let row = self.one(&mut *tx, from_row).await?;
        commit_audited(tx, s, audit).await?;
        Ok(row)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_timeout_is_overload_not_a_failure() {
        assert!(matches!(db(sqlx::Error::PoolTimedOut), StoreError::Busy));
        assert!(matches!(
            db(sqlx::Error::PoolClosed),
            StoreError::Backend(_)
        ));
    }
}
