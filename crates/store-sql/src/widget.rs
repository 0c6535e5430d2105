//! The support widget (see `conclave_core::store::widget` for the rules): widget keys with their
//! origins and sealed identity secret, visitors, sessions and widget conversations. A status
//! change is one conditional UPDATE, so two concurrent handoffs change the row once.

use super::conversations::insert_conversation;
use super::credentials::insert_bot;
use super::*;
use conclave_core::store::widget::*;
use conclave_core::widget::{IdentityMode, WidgetOrigin, WidgetStatus};
use uuid::Uuid;

const KEY_COLS: &str = "k.id, k.org_id, k.name, k.widget_key, k.team_id, k.agent_id, k.identity, \
     k.prechat_form, k.visitor_user_id, k.system_user_id, k.visitor_bot_id, k.system_bot_id, \
     k.created_by, k.created_at, k.updated_at, k.revoked_at";

const KEYS: Records<WidgetKey> = Records::new("widget_keys k", KEY_COLS, key_from_row);

fn key_from_row(row: &Row) -> StoreResult<WidgetKey> {
    Ok(from_columns!(row, WidgetKey {
        id, name, agent_id, prechat_form, created_at, updated_at, revoked_at;
        key: get(row, "widget_key")?,
        org_id: OrgId(get(row, "org_id")?),
        team_id: TeamId(get(row, "team_id")?),
        identity: tag(row, "identity", IdentityMode::parse)?,
        visitor_user_id: UserId(get(row, "visitor_user_id")?),
        system_user_id: UserId(get(row, "system_user_id")?),
        visitor_bot_id: BotId(get(row, "visitor_bot_id")?),
        system_bot_id: BotId(get(row, "system_bot_id")?),
        created_by: get::<Option<Uuid>>(row, "created_by")?.map(UserId),
        allowed_origins: Vec::new(),
    }))
}

fn origin_from_row(row: &Row) -> StoreResult<(Uuid, WidgetOrigin)> {
    let origin: String = get(row, "origin")?;
    let parsed = WidgetOrigin::parse(&origin)
        .map_err(|_| StoreError::Backend(format!("column origin: {origin:?}")))?;
    Ok((get(row, "key_id")?, parsed))
}

/// Fills each key's origins with one query.
async fn with_origins(s: &Backend, mut keys: Vec<WidgetKey>) -> StoreResult<Vec<WidgetKey>> {
    let select = |list: &str| {
        format!(
            "SELECT key_id, origin FROM widget_key_origins WHERE key_id IN ({list}) \
             ORDER BY origin"
        )
    };
    let ids = keys.iter().map(|k| k.id);
    let origins = select_in(s.reader(), ids, select, origin_from_row).await?;
    for k in &mut keys {
        k.allowed_origins = (origins.iter())
            .filter(|(id, _)| *id == k.id)
            .map(|(_, o)| o.clone())
            .collect();
    }
    Ok(keys)
}

async fn put_origins(conn: &mut Conn, key: Uuid, origins: &[WidgetOrigin]) -> StoreResult<()> {
    sqlx::query("DELETE FROM widget_key_origins WHERE key_id = $1")
        .bind(key)
        .run(&mut *conn)
        .await?;
    for o in origins {
        sqlx::query("INSERT INTO widget_key_origins (key_id, origin) VALUES ($1, $2)")
            .bind(key)
            .bind(o.as_str())
            .run(&mut *conn)
            .await?;
    }
    Ok(())
}

/// The live key `rest` picks by `key`, with its origins.
async fn one_key(s: &Backend, rest: &str, key: impl Key) -> StoreResult<Option<WidgetKey>> {
    let found = KEYS.opt(s.reader(), rest, key).await?;
    match found {
        Some(k) => Ok(with_origins(s, vec![k]).await?.pop()),
        None => Ok(None),
    }
}

/// The columns [`visitor_from_row`] reads, from `widget_visitors v`; named `v_*`, so they can
/// stand beside a session's or a widget conversation's own.
const VISITOR_COLS: &str = "v.id AS v_id, v.key_id AS v_key_id, v.external_id AS v_external_id, \
     v.name AS v_name, v.email AS v_email, v.created_at AS v_created_at";

fn visitor_from_row(row: &Row) -> StoreResult<WidgetVisitor> {
    Ok(WidgetVisitor {
        id: get(row, "v_id")?,
        key_id: get(row, "v_key_id")?,
        external_id: get(row, "v_external_id")?,
        name: get(row, "v_name")?,
        email: get(row, "v_email")?,
        created_at: get(row, "v_created_at")?,
    })
}

fn session_and_visitor(row: &Row) -> StoreResult<(WidgetSession, WidgetVisitor)> {
    let session = from_columns!(row, WidgetSession {
        id, key_id, visitor_id, secret_hash, verified, created_at;
    });
    Ok((session, visitor_from_row(row)?))
}

const WC_COLS: &str = "w.conversation_id, w.org_id, w.key_id, w.visitor_id, w.team_id, \
     w.status, w.created_at, w.updated_at";

fn wc_from_row(row: &Row) -> StoreResult<WidgetConversation> {
    Ok(from_columns!(row, WidgetConversation {
        key_id, visitor_id, created_at, updated_at;
        conversation_id: ConversationId(get(row, "conversation_id")?),
        org_id: OrgId(get(row, "org_id")?),
        team_id: TeamId(get(row, "team_id")?),
        status: tag(row, "status", WidgetStatus::parse)?,
    }))
}

fn inbox_from_row(row: &Row) -> StoreResult<InboxItem> {
    Ok(InboxItem {
        conversation: wc_from_row(row)?,
        name: get(row, "conv_name")?,
        last_seq: get(row, "last_seq")?,
        visitor: visitor_from_row(row)?,
        source: "widget",
    })
}

#[async_trait]
impl WidgetStore for Backend {
    #[tracing::instrument(level = "debug", skip_all, fields(id = %new.key.id))]
    async fn create_widget_key(
        &self,
        new: &NewWidgetKey<'_>,
        audit: &[AuditEntry],
    ) -> StoreResult<[Member; 2]> {
        let k = new.key;
        let mut tx = self.writer().begin().await.map_err(db)?;
        orgs::within_cap(&mut tx, k.org_id, OrgCapped::WidgetKeys).await?;
        let visitor = insert_bot(&mut tx, &new.visitor_bot).await?;
        let system = insert_bot(&mut tx, &new.system_bot).await?;
        sqlx::query(
            "INSERT INTO widget_keys (id, org_id, name, widget_key, team_id, agent_id, identity, \
             prechat_form, visitor_user_id, system_user_id, visitor_bot_id, system_bot_id, \
             created_by, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(k.id)
        .bind(k.org_id.0)
        .bind(k.name.as_str())
        .bind(k.key.as_str())
        .bind(k.team_id.0)
        .bind(k.agent_id)
        .bind(k.identity.as_str())
        .bind(k.prechat_form)
        .bind(k.visitor_user_id.0)
        .bind(k.system_user_id.0)
        .bind(k.visitor_bot_id.0)
        .bind(k.system_bot_id.0)
        .bind(k.created_by.map(|u| u.0))
        .bind(ts(k.created_at))
        .bind(ts(k.updated_at))
        .run(&mut *tx)
        .await?;
        put_origins(&mut tx, k.id, &k.allowed_origins).await?;
        let insert = sqlx::query(
            "INSERT INTO widget_key_secrets (key_id, secret_key_id, secret_nonce, \
             secret_ciphertext, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(k.id);
        bind_sealed(insert, &new.secret.sealed)
            .bind(ts(new.secret.created_at))
            .run(&mut *tx)
            .await?;
        commit_audited(tx, self, audit).await?;
        Ok([visitor, system])
    }

    async fn widget_keys(&self, org: OrgId) -> StoreResult<Vec<WidgetKey>> {
        let rest = "WHERE k.org_id = $1 AND k.revoked_at IS NULL ORDER BY k.id";
        let keys = KEYS.all(self.reader(), rest, org.0).await?;
        with_origins(self, keys).await
    }

    async fn widget_key(&self, id: Uuid) -> StoreResult<WidgetKey> {
        let rest = "WHERE k.id = $1 AND k.revoked_at IS NULL";
        one_key(self, rest, id).await?.ok_or(StoreError::NotFound)
    }

    async fn widget_key_by_value(&self, key: &str) -> StoreResult<Option<WidgetKey>> {
        one_key(
            self,
            "WHERE k.widget_key = $1 AND k.revoked_at IS NULL",
            key,
        )
        .await
    }

    async fn widget_origin_known(&self, origin: &str) -> StoreResult<bool> {
        let n = sqlx::query(
            "SELECT k.id FROM widget_key_origins o JOIN widget_keys k ON k.id = o.key_id \
             WHERE o.origin = $1 AND k.revoked_at IS NULL LIMIT 1",
        )
        .bind(origin)
        .all(self.reader(), |r| get::<Uuid>(r, "id"))
        .await?;
        Ok(!n.is_empty())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(%id))]
    async fn update_widget_key(
        &self,
        id: Uuid,
        patch: &WidgetKeyPatch,
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> StoreResult<WidgetKey> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        sqlx::query(
            "UPDATE widget_keys SET \
             name = COALESCE($2, name), team_id = COALESCE($3, team_id), \
             agent_id = CASE WHEN $4 THEN $5 ELSE agent_id END, \
             identity = COALESCE($6, identity), prechat_form = COALESCE($7, prechat_form), \
             updated_at = $8 WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .bind(patch.name.as_deref())
        .bind(patch.team_id.map(|t| t.0))
        .bind(patch.agent_id.is_some())
        .bind(patch.agent_id.flatten())
        .bind(patch.identity.map(IdentityMode::as_str))
        .bind(patch.prechat_form)
        .bind(ts(at))
        .change(&mut *tx)
        .await?;
        if let Some(origins) = &patch.allowed_origins {
            put_origins(&mut tx, id, origins).await?;
        }
        commit_audited(tx, self, audit).await?;
        self.widget_key(id).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(%id))]
    async fn revoke_widget_key(
        &self,
        id: Uuid,
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE widget_keys SET revoked_at = $2, updated_at = $2 \
             WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .bind(ts(at))
        .change_audited(self, audit)
        .await
    }

    async fn widget_key_secret(&self, id: Uuid) -> StoreResult<Option<WidgetSecretRecord>> {
        sqlx::query(
            "SELECT secret_key_id, secret_nonce, secret_ciphertext, created_at \
             FROM widget_key_secrets WHERE key_id = $1",
        )
        .bind(id)
        .opt(self.reader(), |row| {
            Ok(WidgetSecretRecord {
                sealed: sealed_from_row(row)?,
                created_at: get(row, "created_at")?,
            })
        })
        .await
    }

    async fn widget_bot_users(&self, org: OrgId) -> StoreResult<Vec<UserId>> {
        let pairs = sqlx::query(
            "SELECT visitor_user_id, system_user_id FROM widget_keys WHERE org_id = $1",
        )
        .bind(org.0)
        .all(self.reader(), |r| {
            Ok((
                UserId(get(r, "visitor_user_id")?),
                UserId(get(r, "system_user_id")?),
            ))
        })
        .await?;
        Ok(pairs.into_iter().flat_map(|(a, b)| [a, b]).collect())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn create_widget_session(
        &self,
        session: &WidgetSession,
        visitor: &VisitorFor,
    ) -> StoreResult<WidgetVisitor> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        let stored = match visitor {
            VisitorFor::Anonymous(v) => {
                sqlx::query(
                    "INSERT INTO widget_visitors (id, key_id, external_id, name, email, \
                     created_at) VALUES ($1, $2, NULL, $3, $4, $5)",
                )
                .bind(v.id)
                .bind(v.key_id)
                .bind(v.name.as_deref())
                .bind(v.email.as_deref())
                .bind(ts(v.created_at))
                .run(&mut *tx)
                .await?;
                v.clone()
            }
            VisitorFor::Verified(v) => {
                // One statement: a concurrent first session of the same user finds the row.
                sqlx::query(
                    "INSERT INTO widget_visitors (id, key_id, external_id, name, email, \
                     created_at) VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (key_id, external_id) DO UPDATE SET \
                     name = COALESCE(excluded.name, widget_visitors.name), \
                     email = COALESCE(excluded.email, widget_visitors.email)",
                )
                .bind(v.id)
                .bind(v.key_id)
                .bind(v.external_id.as_deref())
                .bind(v.name.as_deref())
                .bind(v.email.as_deref())
                .bind(ts(v.created_at))
                .run(&mut *tx)
                .await?;
                sqlx::query(&format!(
                    "SELECT {VISITOR_COLS} FROM widget_visitors v \
                     WHERE v.key_id = $1 AND v.external_id = $2"
                ))
                .bind(v.key_id)
                .bind(v.external_id.as_deref())
                .one(&mut *tx, visitor_from_row)
                .await?
            }
        };
        sqlx::query(
            "INSERT INTO widget_sessions (id, key_id, visitor_id, secret_hash, verified, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(session.id.as_str())
        .bind(session.key_id)
        .bind(stored.id)
        .bind(session.secret_hash.as_slice())
        .bind(session.verified)
        .bind(ts(session.created_at))
        .run(&mut *tx)
        .await?;
        tx.commit().await.map_err(db)?;
        Ok(stored)
    }

    async fn widget_session(
        &self,
        key: Uuid,
        id: &str,
    ) -> StoreResult<Option<(WidgetSession, WidgetVisitor)>> {
        sqlx::query(&format!(
            "SELECT s.id, s.key_id, s.visitor_id, s.secret_hash, s.verified, s.created_at, \
             {VISITOR_COLS} \
             FROM widget_sessions s JOIN widget_visitors v ON v.id = s.visitor_id \
             WHERE s.key_id = $1 AND s.id = $2"
        ))
        .bind(key)
        .bind(id)
        .opt(self.reader(), session_and_visitor)
        .await
    }

    async fn latest_widget_conversation(
        &self,
        visitor: Uuid,
    ) -> StoreResult<Option<WidgetConversation>> {
        sqlx::query(&format!(
            "SELECT {WC_COLS} FROM widget_conversations w WHERE w.visitor_id = $1 \
             ORDER BY w.created_at DESC, w.conversation_id DESC LIMIT 1"
        ))
        .bind(visitor)
        .opt(self.reader(), wc_from_row)
        .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(id = %conv.id.0))]
    async fn create_widget_conversation(
        &self,
        conv: &Conversation,
        participants: &[(UserId, ConversationRole)],
        w: &WidgetConversation,
        audit: &[AuditEntry],
    ) -> StoreResult<Option<WidgetConversation>> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        // The visitor's row orders their first sends; the latest conversation is read after.
        let lock = format!(
            "SELECT id FROM widget_visitors WHERE id = $1{}",
            postgres_only(" FOR UPDATE")
        );
        sqlx::query(&lock).bind(w.visitor_id).run(&mut *tx).await?;
        let latest = sqlx::query(&format!(
            "SELECT {WC_COLS} FROM widget_conversations w WHERE w.visitor_id = $1 \
             ORDER BY w.created_at DESC, w.conversation_id DESC LIMIT 1"
        ))
        .bind(w.visitor_id)
        .opt(&mut *tx, wc_from_row)
        .await?;
        if let Some(open) = latest.filter(|l| l.status != WidgetStatus::Resolved) {
            return Ok(Some(open));
        }
        insert_conversation(&mut tx, conv, participants).await?;
        sqlx::query(
            "INSERT INTO widget_conversations (conversation_id, org_id, key_id, visitor_id, \
             team_id, status, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(w.conversation_id.0)
        .bind(w.org_id.0)
        .bind(w.key_id)
        .bind(w.visitor_id)
        .bind(w.team_id.0)
        .bind(w.status.as_str())
        .bind(ts(w.created_at))
        .bind(ts(w.updated_at))
        .run(&mut *tx)
        .await?;
        commit_audited(tx, self, audit).await?;
        Ok(None)
    }

    async fn widget_conversation(
        &self,
        conv: ConversationId,
    ) -> StoreResult<Option<WidgetConversation>> {
        sqlx::query(&format!(
            "SELECT {WC_COLS} FROM widget_conversations w WHERE w.conversation_id = $1"
        ))
        .bind(conv.0)
        .opt(self.reader(), wc_from_row)
        .await
    }

    async fn widget_conversations(
        &self,
        convs: &[ConversationId],
    ) -> StoreResult<Vec<WidgetConversation>> {
        let select = |list: &str| {
            format!(
                "SELECT {WC_COLS} FROM widget_conversations w WHERE w.conversation_id IN ({list})"
            )
        };
        let ids = convs.iter().map(|c| c.0);
        select_in(self.reader(), ids, select, wc_from_row).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(conv = %conv.0))]
    async fn set_widget_status(
        &self,
        conv: ConversationId,
        from: &[WidgetStatus],
        to: WidgetStatus,
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> StoreResult<Option<WidgetConversation>> {
        let sql = format!(
            "UPDATE widget_conversations SET status = $2, updated_at = $3 \
             WHERE conversation_id = $1 AND status IN ({}) \
             RETURNING conversation_id, org_id, key_id, visitor_id, team_id, status, \
             created_at, updated_at",
            placeholders(4, from.len())
        );
        let mut query = sqlx::query(&sql)
            .bind(conv.0)
            .bind(to.as_str())
            .bind(ts(at));
        for f in from {
            query = query.bind(f.as_str());
        }
        let mut tx = self.writer().begin().await.map_err(db)?;
        let changed = query.opt(&mut *tx, wc_from_row).await?;
        if changed.is_some() {
            commit_audited(tx, self, audit).await?;
        }
        Ok(changed)
    }

    async fn widget_inbox_audience(&self, org: OrgId, team: TeamId) -> StoreResult<Vec<UserId>> {
        sqlx::query(
            "SELECT t.user_id AS user_id FROM team_members t \
             JOIN org_members m ON m.org_id = $1 AND m.user_id = t.user_id \
             WHERE t.team_id = $2 AND m.role <> 'viewer' \
             UNION SELECT user_id FROM org_members \
             WHERE org_id = $1 AND role IN ('owner', 'admin')",
        )
        .bind(org.0)
        .bind(team.0)
        .all(self.reader(), |r| Ok(UserId(get(r, "user_id")?)))
        .await
    }

    async fn widget_inbox(&self, q: &InboxQuery) -> StoreResult<Vec<InboxItem>> {
        let mut conds = vec!["1 = 1".to_owned()];
        let mut n = 0;
        let mut next = || {
            n += 1;
            n
        };
        if q.org.is_some() {
            conds.push(format!("w.org_id = ${}", next()));
        }
        if q.status.is_some() {
            conds.push(format!("w.status = ${}", next()));
        }
        if q.before.is_some() {
            conds.push(format!("w.conversation_id < ${}", next()));
        }
        if let Some(teams) = &q.teams {
            if teams.is_empty() {
                return Ok(Vec::new());
            }
            let from = next();
            for _ in 1..teams.len() {
                next();
            }
            conds.push(format!(
                "w.team_id IN ({})",
                placeholders(from, teams.len())
            ));
        }
        let lim = next();
        let sql = format!(
            "SELECT {WC_COLS}, c.name AS conv_name, c.last_seq, {VISITOR_COLS} \
             FROM widget_conversations w \
             JOIN conversations c ON c.id = w.conversation_id \
             JOIN widget_visitors v ON v.id = w.visitor_id \
             WHERE {} ORDER BY w.conversation_id DESC LIMIT ${lim}",
            conds.join(" AND ")
        );
        let mut query = sqlx::query(&sql);
        if let Some(org) = q.org {
            query = query.bind(org.0);
        }
        if let Some(status) = q.status {
            query = query.bind(status.as_str());
        }
        if let Some(before) = q.before {
            query = query.bind(before.0);
        }
        for t in q.teams.iter().flatten() {
            query = query.bind(t.0);
        }
        query
            .bind(i64::from(q.limit))
            .all(self.reader(), inbox_from_row)
            .await
    }
}
