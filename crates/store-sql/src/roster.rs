//! The two membership tables, `org_members` and `participants`: the same columns (the org or
//! conversation, the user, a role, `joined_at`) under another scope, so one set of statements
//! serves both — adding, reading a role, the owner checks, paging and removal.

use super::*;

/// A role a membership table stores, read back through its own parser.
pub(super) trait Role: Copy + PartialEq {
    fn parse(raw: &str) -> Result<Self, Rejection>;
    fn as_str(self) -> &'static str;
}

impl Role for OrgRole {
    fn parse(raw: &str) -> Result<Self, Rejection> {
        Self::parse(raw)
    }
    fn as_str(self) -> &'static str {
        Self::as_str(self)
    }
}

impl Role for ConversationRole {
    fn parse(raw: &str) -> Result<Self, Rejection> {
        Self::parse(raw)
    }
    fn as_str(self) -> &'static str {
        Self::as_str(self)
    }
}

/// A membership table: its name, the column naming its scope, the statement that takes the
/// scope's row lock, the conflict a second membership breaks and how a membership (`E`, with
/// its user's summary) is read from a row of [`Roster::select`].
pub(super) struct Roster<R, E> {
    table: &'static str,
    scope: &'static str,
    lock: &'static str,
    taken: Conflict,
    from_row: FromRow<E>,
    role: std::marker::PhantomData<R>,
}

/// Org members, by `org_id`.
pub(super) const ORG_MEMBERS: Roster<OrgRole, Member> = Roster {
    table: "org_members",
    scope: "org_id",
    lock: "UPDATE orgs SET name = name WHERE id = $1",
    taken: Conflict::AlreadyMember,
    from_row: member_from_row,
    role: std::marker::PhantomData,
};

/// Conversation participants, by `conversation_id`.
pub(super) const PARTICIPANTS: Roster<ConversationRole, Participant> = Roster {
    table: "participants",
    scope: "conversation_id",
    lock: "UPDATE conversations SET last_seq = last_seq WHERE id = $1",
    taken: Conflict::AlreadyParticipant,
    from_row: participant_from_row,
    role: std::marker::PhantomData,
};

/// Who else is in a scope, apart from one user.
pub(super) struct Others {
    /// Anyone at all.
    pub(super) any: bool,
    /// An owner.
    pub(super) owner: bool,
}

impl<R: Role, E> Roster<R, E> {
    /// Takes the scope's row lock (PostgreSQL) inside `conn`'s transaction, so owner-count
    /// checks of concurrent transactions on one org or conversation run one after the other
    /// (SQLite serialises writes by its single writer connection anyway); `NotFound` when the
    /// org or conversation does not exist.
    pub(super) async fn lock(&self, conn: &mut Conn, scope: uuid::Uuid) -> StoreResult<()> {
        sqlx::query(self.lock).bind(scope).change(&mut *conn).await
    }

    /// A write transaction of `s` that holds the scope's lock ([`Self::lock`]) from the start.
    pub(super) async fn locked(
        &self,
        s: &Backend,
        scope: uuid::Uuid,
    ) -> StoreResult<sqlx::Transaction<'static, Db>> {
        let mut tx = s.writer().begin().await.map_err(db)?;
        self.lock(&mut tx, scope).await?;
        Ok(tx)
    }

    pub(super) async fn insert(
        &self,
        conn: &mut Conn,
        scope: uuid::Uuid,
        user: UserId,
        role: R,
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        let sql = format!(
            "INSERT INTO {} ({}, user_id, role, joined_at) VALUES ($1, $2, $3, $4)",
            self.table, self.scope
        );
        sqlx::query(&sql)
            .bind(scope)
            .bind(user.0)
            .bind(role.as_str())
            .bind(ts(at))
            .execute(&mut *conn)
            .await
            .map_err(unique(self.taken))?;
        Ok(())
    }

    /// The user's role in the scope; `None` when they are not in it.
    pub(super) async fn role<'c>(
        &self,
        on: impl Executor<'c>,
        scope: uuid::Uuid,
        user: UserId,
    ) -> StoreResult<Option<R>> {
        let sql = format!(
            "SELECT role FROM {} WHERE {} = $1 AND user_id = $2",
            self.table, self.scope
        );
        let role = |row: &Row| tag(row, "role", R::parse);
        sqlx::query(&sql)
            .bind(scope)
            .bind(user.0)
            .opt(on, role)
            .await
    }

    /// [`Self::role`] for someone who must be in the scope: `NotFound` otherwise.
    pub(super) async fn role_of(
        &self,
        conn: &mut Conn,
        scope: uuid::Uuid,
        user: UserId,
    ) -> StoreResult<R> {
        self.role(&mut *conn, scope, user)
            .await?
            .ok_or(StoreError::NotFound)
    }

    pub(super) async fn set_role(
        &self,
        conn: &mut Conn,
        scope: uuid::Uuid,
        user: UserId,
        role: R,
    ) -> StoreResult<()> {
        let sql = format!(
            "UPDATE {} SET role = $3 WHERE {} = $1 AND user_id = $2",
            self.table, self.scope
        );
        let query = sqlx::query(&sql).bind(scope).bind(user.0);
        query.bind(role.as_str()).change(&mut *conn).await
    }

    /// Whether anyone, and whether an owner, other than `user` is in the scope.
    pub(super) async fn others(
        &self,
        conn: &mut Conn,
        scope: uuid::Uuid,
        user: UserId,
    ) -> StoreResult<Others> {
        let (t, s) = (self.table, self.scope);
        let sql = format!(
            "SELECT EXISTS (SELECT 1 FROM {t} WHERE {s} = $1 AND user_id <> $2) AS any_other, \
             EXISTS (SELECT 1 FROM {t} WHERE {s} = $1 AND user_id <> $2 AND role = 'owner') \
             AS other_owner"
        );
        let others = |row: &Row| {
            Ok(Others {
                any: get(row, "any_other")?,
                owner: get(row, "other_owner")?,
            })
        };
        sqlx::query(&sql)
            .bind(scope)
            .bind(user.0)
            .one(&mut *conn, others)
            .await
    }

    /// Takes `user` out of the scope; answers whether they were in it.
    pub(super) async fn remove(
        &self,
        conn: &mut Conn,
        scope: uuid::Uuid,
        user: UserId,
    ) -> StoreResult<bool> {
        let sql = format!(
            "DELETE FROM {} WHERE {} = $1 AND user_id = $2",
            self.table, self.scope
        );
        Ok(sqlx::query(&sql)
            .bind(scope)
            .bind(user.0)
            .run(&mut *conn)
            .await?
            > 0)
    }

    /// The memberships with their users' summaries (`su_*`), as `r`, and `cond` on them.
    fn select(&self, cond: &str) -> String {
        format!(
            "SELECT r.{s}, r.role, r.joined_at, u.id AS su_id, u.username AS su_username, \
             u.display_name AS su_display_name, u.kind AS su_kind \
             FROM {t} r JOIN users u ON u.id = r.user_id WHERE r.{s} = $1 {cond}",
            s = self.scope,
            t = self.table
        )
    }

    /// Adds `user` to the scope with `role` from `at`, with `audit`, in one transaction, and
    /// answers the new membership.
    pub(super) async fn join(
        &self,
        s: &Backend,
        scope: uuid::Uuid,
        user: UserId,
        role: R,
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> StoreResult<E> {
        let tx = s.writer().begin().await.map_err(db)?;
        self.join_in(tx, s, scope, user, (role, at), audit).await
    }

    /// [`Self::join`] in `tx`, which it commits.
    pub(super) async fn join_in(
        &self,
        mut tx: sqlx::Transaction<'static, Db>,
        s: &Backend,
        scope: uuid::Uuid,
        user: UserId,
        (role, at): (R, DateTime<Utc>),
        audit: &[AuditEntry],
    ) -> StoreResult<E> {
        self.insert(&mut tx, scope, user, role, at).await?;
        let entry = self.entry(&mut *tx, scope, user).await?;
        commit_audited(tx, s, audit).await?;
        Ok(entry)
    }

    /// One membership with its user's summary; `NotFound` when there is none.
    pub(super) async fn entry<'c>(
        &self,
        on: impl Executor<'c>,
        scope: uuid::Uuid,
        user: UserId,
    ) -> StoreResult<E> {
        let sql = self.select("AND r.user_id = $2");
        sqlx::query(&sql)
            .bind(scope)
            .bind(user.0)
            .one(on, self.from_row)
            .await
    }

    /// A keyset page of the scope's memberships, by user id.
    pub(super) async fn page(
        &self,
        pool: &sqlx::Pool<Db>,
        scope: uuid::Uuid,
        page: Page<UserId>,
    ) -> StoreResult<Vec<E>> {
        let k = keyset(page.cursor, "r.user_id", 3);
        let sql = format!(
            "{} ORDER BY r.user_id {} LIMIT $2",
            self.select(&k.cond),
            k.order
        );
        let query = sqlx::query(&sql).bind(scope).bind(limit(page.limit));
        k.bind_key(query, |key| key.0)
            .all(pool, self.from_row)
            .await
    }
}
