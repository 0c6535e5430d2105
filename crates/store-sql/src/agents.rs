//! AI agents: their configuration and sealed keys, the monthly token budgets and the call log
//! (see `conclave_core::store::agents` for the rules). A reservation is one transaction of two
//! conditional UPDATEs, agent row first, then the org's: on PostgreSQL a concurrent reservation
//! of the same row waits for the row lock and re-checks the condition on the committed value;
//! SQLite has one writer.

use super::credentials::insert_bot;
use super::*;
use conclave_core::store::agents::*;
use uuid::Uuid;

const AGENT_COLS: &str = "a.id, a.org_id, a.bot_id, a.user_id, a.name, a.endpoint, a.model, \
     a.system_prompt, a.temperature, a.max_output_tokens, a.context_messages, \
     a.monthly_token_budget, a.created_by, a.created_at, a.updated_at, \
     (SELECT k.hint FROM agent_keys k WHERE k.agent_id = a.id) AS api_key_hint";

const AGENTS: Records<Agent> = Records::new("agents a", AGENT_COLS, agent_from_row);

fn agent_from_row(row: &Row) -> StoreResult<Agent> {
    Ok(from_columns!(row, Agent {
        id, name, endpoint, model, system_prompt, temperature, max_output_tokens,
        context_messages, monthly_token_budget, created_at, updated_at, api_key_hint;
        org_id: OrgId(get(row, "org_id")?),
        bot_id: BotId(get(row, "bot_id")?),
        user_id: UserId(get(row, "user_id")?),
        created_by: get::<Option<Uuid>>(row, "created_by")?.map(UserId),
    }))
}

/// An agent with its key's columns (`key_hint`, the sealed parts, `key_created_at`) of a
/// `LEFT JOIN agent_keys k`: no key when the join found none.
fn agent_with_key_from_row(row: &Row) -> StoreResult<(Agent, Option<AgentKeyRecord>)> {
    let agent = agent_from_row(row)?;
    let key = match get::<Option<String>>(row, "key_hint")? {
        Some(hint) => Some(AgentKeyRecord {
            hint,
            sealed: sealed_from_row(row)?,
            created_at: get(row, "key_created_at")?,
        }),
        None => None,
    };
    Ok((agent, key))
}

/// Under the agent's row lock: `Conflict::AgentChanged` unless its endpoint and whether it has
/// a key are still what the change was decided on (DATA-3). A key is only ever written by a
/// transaction that updates the agent's row first (`update_agent`), so on PostgreSQL a key
/// stored meanwhile has committed before the lock is granted, and the next statement — a new
/// snapshot — sees it; SQLite has one writer.
async fn still_decided_on(conn: &mut Conn, id: Uuid, decided: &KeyDecidedOn) -> StoreResult<()> {
    let lock = format!(
        "SELECT endpoint FROM agents WHERE id = $1{}",
        postgres_only(" FOR UPDATE")
    );
    let endpoint: String = sqlx::query(&lock)
        .bind(id)
        .opt(&mut *conn, |r| get(r, "endpoint"))
        .await?
        .ok_or(StoreError::NotFound)?;
    let has_key = sqlx::query("SELECT agent_id FROM agent_keys WHERE agent_id = $1")
        .bind(id)
        .opt(&mut *conn, |r| get::<Uuid>(r, "agent_id"))
        .await?
        .is_some();
    if endpoint == decided.endpoint && has_key == decided.has_key {
        Ok(())
    } else {
        Err(StoreError::Conflict(Conflict::AgentChanged))
    }
}

fn key_from_row(row: &Row) -> StoreResult<AgentKeyRecord> {
    Ok(from_columns!(row, AgentKeyRecord {
        hint, created_at;
        sealed: sealed_from_row(row)?,
    }))
}

async fn put_key(conn: &mut Conn, agent: Uuid, key: Option<&AgentKeyRecord>) -> StoreResult<()> {
    sqlx::query("DELETE FROM agent_keys WHERE agent_id = $1")
        .bind(agent)
        .run(&mut *conn)
        .await?;
    let Some(key) = key else {
        return Ok(());
    };
    let insert = sqlx::query(
        "INSERT INTO agent_keys (agent_id, hint, secret_key_id, secret_nonce, \
         secret_ciphertext, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(agent)
    .bind(key.hint.as_str());
    bind_sealed(insert, &key.sealed)
        .bind(ts(key.created_at))
        .run(&mut *conn)
        .await?;
    Ok(())
}

/// The month row of `scope` (an agent or an org), made if missing.
async fn month_row(s: &Backend, scope: Uuid, month: &str) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO agent_token_months (scope_id, month, used, reserved) VALUES ($1, $2, 0, 0) \
         ON CONFLICT (scope_id, month) DO NOTHING",
    )
    .bind(scope)
    .bind(month)
    .run(s.writer())
    .await?;
    Ok(())
}

/// Holds `tokens` on the month row of `scope` unless that passes `cap` (a scalar subquery on
/// `$1`, NULL for no cap); answers whether it did.
async fn hold(
    conn: &mut Conn,
    scope: Uuid,
    month: &str,
    tokens: i64,
    cap: &str,
) -> StoreResult<bool> {
    let sql = format!(
        "UPDATE agent_token_months SET reserved = reserved + $3 \
         WHERE scope_id = $1 AND month = $2 \
         AND (({cap}) IS NULL OR used + reserved + $3 <= ({cap}))"
    );
    let held = sqlx::query(&sql)
        .bind(scope)
        .bind(month)
        .bind(tokens)
        .run(&mut *conn)
        .await?;
    Ok(held == 1)
}

const AGENT_CAP: &str = "SELECT monthly_token_budget FROM agents WHERE id = $1";
const ORG_CAP: &str = "SELECT monthly_token_budget FROM agent_org_budgets WHERE org_id = $1";

/// One call row: its day as stored (`YYYY-MM-DD` text on both backends), latency, tokens in
/// and out, and whether it failed.
fn call_from_row(row: &Row) -> StoreResult<(String, i64, i64, i64, bool)> {
    Ok((
        get(row, "day")?,
        get(row, "latency_ms")?,
        get(row, "tokens_in")?,
        get(row, "tokens_out")?,
        get(row, "failed")?,
    ))
}

fn day_text(day: chrono::NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

#[async_trait]
impl AgentStore for Backend {
    #[tracing::instrument(level = "debug", skip_all, fields(id = %new.agent.id))]
    async fn create_agent(&self, new: &NewAgent<'_>, audit: &[AuditEntry]) -> StoreResult<Member> {
        let a = new.agent;
        let mut tx = self.writer().begin().await.map_err(db)?;
        orgs::within_cap(&mut tx, a.org_id, OrgCapped::Agents).await?;
        let member = insert_bot(&mut tx, &new.bot).await?;
        sqlx::query(
            "INSERT INTO agents (id, org_id, bot_id, user_id, name, endpoint, model, \
             system_prompt, temperature, max_output_tokens, context_messages, \
             monthly_token_budget, created_by, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(a.id)
        .bind(a.org_id.0)
        .bind(a.bot_id.0)
        .bind(a.user_id.0)
        .bind(a.name.as_str())
        .bind(a.endpoint.as_str())
        .bind(a.model.as_str())
        .bind(a.system_prompt.as_deref())
        .bind(a.temperature)
        .bind(a.max_output_tokens)
        .bind(a.context_messages)
        .bind(a.monthly_token_budget)
        .bind(a.created_by.map(|u| u.0))
        .bind(ts(a.created_at))
        .bind(ts(a.updated_at))
        .run(&mut *tx)
        .await?;
        put_key(&mut tx, a.id, new.api_key).await?;
        commit_audited(tx, self, audit).await?;
        Ok(member)
    }

    async fn agent(&self, id: Uuid) -> StoreResult<Agent> {
        AGENTS.one(self.reader(), "WHERE a.id = $1", id).await
    }

    async fn agent_with_key(&self, id: Uuid) -> StoreResult<(Agent, Option<AgentKeyRecord>)> {
        let sql = format!(
            "SELECT {AGENT_COLS}, k.hint AS key_hint, k.secret_key_id, k.secret_nonce, \
             k.secret_ciphertext, k.created_at AS key_created_at \
             FROM agents a LEFT JOIN agent_keys k ON k.agent_id = a.id WHERE a.id = $1"
        );
        sqlx::query(&sql)
            .bind(id)
            .opt(self.reader(), agent_with_key_from_row)
            .await?
            .ok_or(StoreError::NotFound)
    }

    async fn agents(&self, org: OrgId) -> StoreResult<Vec<Agent>> {
        let rest = "WHERE a.org_id = $1 ORDER BY a.id";
        AGENTS.all(self.reader(), rest, org.0).await
    }

    async fn agent_of_user(&self, user: UserId) -> StoreResult<Option<Agent>> {
        AGENTS
            .opt(self.reader(), "WHERE a.user_id = $1", user.0)
            .await
    }

    async fn agents_in_conversation(&self, conv: ConversationId) -> StoreResult<Vec<Agent>> {
        let rest = "JOIN participants p ON p.user_id = a.user_id AND p.conversation_id = $1 \
                    ORDER BY a.id";
        AGENTS.all(self.reader(), rest, conv.0).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(%id))]
    async fn update_agent(
        &self,
        id: Uuid,
        patch: &AgentPatch,
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> StoreResult<Agent> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        if let Some(decided) = &patch.decided_on {
            still_decided_on(&mut tx, id, decided).await?;
        }
        sqlx::query(
            "UPDATE agents SET name = COALESCE($2, name), endpoint = COALESCE($3, endpoint), \
             model = COALESCE($4, model), \
             system_prompt = CASE WHEN $5 THEN $6 ELSE system_prompt END, \
             temperature = CASE WHEN $7 THEN $8 ELSE temperature END, \
             max_output_tokens = COALESCE($9, max_output_tokens), \
             context_messages = COALESCE($10, context_messages), \
             monthly_token_budget = CASE WHEN $11 THEN $12 ELSE monthly_token_budget END, \
             updated_at = $13 WHERE id = $1",
        )
        .bind(id)
        .bind(patch.name.as_deref())
        .bind(patch.endpoint.as_deref())
        .bind(patch.model.as_deref())
        .bind(patch.system_prompt.is_some())
        .bind(patch.system_prompt.clone().flatten())
        .bind(patch.temperature.is_some())
        .bind(patch.temperature.flatten())
        .bind(patch.max_output_tokens)
        .bind(patch.context_messages)
        .bind(patch.monthly_token_budget.is_some())
        .bind(patch.monthly_token_budget.flatten())
        .bind(ts(at))
        .change(&mut *tx)
        .await?;
        if let Some(name) = &patch.name {
            sqlx::query(
                "UPDATE bots SET name = $2 WHERE id = (SELECT bot_id FROM agents WHERE id = $1)",
            )
            .bind(id)
            .bind(name.as_str())
            .run(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE users SET display_name = $2 \
                 WHERE id = (SELECT user_id FROM agents WHERE id = $1)",
            )
            .bind(id)
            .bind(name.as_str())
            .run(&mut *tx)
            .await?;
        }
        if let Some(key) = &patch.api_key {
            put_key(&mut tx, id, key.as_ref()).await?;
        }
        commit_audited(tx, self, audit).await?;
        self.agent(id).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(%id))]
    async fn delete_agent(&self, id: Uuid, audit: &[AuditEntry]) -> StoreResult<()> {
        let agent = self.agent(id).await?;
        let mut tx = self.writer().begin().await.map_err(db)?;
        sqlx::query("DELETE FROM agents WHERE id = $1")
            .bind(id)
            .change(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM agent_token_months WHERE scope_id = $1")
            .bind(id)
            .run(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM bots WHERE id = $1")
            .bind(agent.bot_id.0)
            .run(&mut *tx)
            .await?;
        sqlx::query("UPDATE users SET disabled = $2 WHERE id = $1")
            .bind(agent.user_id.0)
            .bind(true)
            .run(&mut *tx)
            .await?;
        commit_audited(tx, self, audit).await
    }

    async fn agent_key(&self, id: Uuid) -> StoreResult<Option<AgentKeyRecord>> {
        sqlx::query(
            "SELECT hint, secret_key_id, secret_nonce, secret_ciphertext, created_at \
             FROM agent_keys WHERE agent_id = $1",
        )
        .bind(id)
        .opt(self.reader(), key_from_row)
        .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(%org))]
    async fn set_org_token_budget(
        &self,
        org: OrgId,
        budget: Option<i64>,
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> StoreResult<()> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        match budget {
            Some(b) => {
                sqlx::query(
                    "INSERT INTO agent_org_budgets (org_id, monthly_token_budget, updated_at) \
                     VALUES ($1, $2, $3) ON CONFLICT (org_id) DO UPDATE \
                     SET monthly_token_budget = excluded.monthly_token_budget, \
                     updated_at = excluded.updated_at",
                )
                .bind(org.0)
                .bind(b)
                .bind(ts(at))
                .run(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM agent_org_budgets WHERE org_id = $1")
                    .bind(org.0)
                    .run(&mut *tx)
                    .await?;
            }
        }
        commit_audited(tx, self, audit).await
    }

    async fn org_budget_state(&self, org: OrgId, month: MonthKey) -> StoreResult<BudgetState> {
        let cap: Option<i64> = sqlx::query(ORG_CAP)
            .bind(org.0)
            .opt(self.reader(), |r| get(r, "monthly_token_budget"))
            .await?;
        let (used, reserved) = sqlx::query(
            "SELECT used, reserved FROM agent_token_months WHERE scope_id = $1 AND month = $2",
        )
        .bind(org.0)
        .bind(month.as_text())
        .opt(self.reader(), |r| {
            Ok((get(r, "used")?, get(r, "reserved")?))
        })
        .await?
        .unwrap_or((0, 0));
        Ok(BudgetState {
            monthly_token_budget: cap,
            used,
            reserved,
        })
    }

    #[tracing::instrument(level = "debug", skip_all, fields(agent = %r.agent, tokens = r.tokens))]
    async fn reserve_tokens(&self, r: &TokenReservation) -> StoreResult<Result<(), BudgetRefusal>> {
        let month = r.month.as_text();
        month_row(self, r.agent, &month).await?;
        month_row(self, r.org.0, &month).await?;
        let mut tx = self.writer().begin().await.map_err(db)?;
        if !hold(&mut tx, r.agent, &month, r.tokens, AGENT_CAP).await? {
            tx.rollback().await.map_err(db)?;
            return Ok(Err(BudgetRefusal::Agent));
        }
        if !hold(&mut tx, r.org.0, &month, r.tokens, ORG_CAP).await? {
            tx.rollback().await.map_err(db)?;
            return Ok(Err(BudgetRefusal::Org));
        }
        tx.commit().await.map_err(db)?;
        Ok(Ok(()))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(agent = %r.agent, used))]
    async fn settle_tokens(&self, r: &TokenReservation, used: i64) -> StoreResult<()> {
        let month = r.month.as_text();
        let mut tx = self.writer().begin().await.map_err(db)?;
        for scope in [r.agent, r.org.0] {
            sqlx::query(
                "UPDATE agent_token_months SET \
                 reserved = CASE WHEN reserved >= $3 THEN reserved - $3 ELSE 0 END, \
                 used = used + $4 WHERE scope_id = $1 AND month = $2",
            )
            .bind(scope)
            .bind(month.as_str())
            .bind(r.tokens)
            .bind(used.max(0))
            .run(&mut *tx)
            .await?;
        }
        tx.commit().await.map_err(db)
    }

    async fn record_agent_call(&self, call: &AgentCall) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO agent_calls (id, agent_id, day, latency_ms, tokens_in, tokens_out, \
             failed) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(call.id)
        .bind(call.agent)
        .bind(day_text(call.day))
        .bind(call.latency_ms)
        .bind(call.tokens_in)
        .bind(call.tokens_out)
        .bind(call.failed)
        .run(self.writer())
        .await?;
        Ok(())
    }

    async fn agent_usage(
        &self,
        agent: Uuid,
        since: chrono::NaiveDate,
        until: chrono::NaiveDate,
    ) -> StoreResult<Vec<UsageDay>> {
        let rows = sqlx::query(
            "SELECT day, latency_ms, tokens_in, tokens_out, failed FROM agent_calls \
             WHERE agent_id = $1 AND day >= $2 AND day <= $3",
        )
        .bind(agent)
        .bind(day_text(since))
        .bind(day_text(until))
        .all(self.reader(), call_from_row)
        .await?;
        let calls = rows
            .into_iter()
            .map(|(day, latency, tin, tout, failed)| {
                let day = chrono::NaiveDate::parse_from_str(&day, "%Y-%m-%d")
                    .map_err(|e| StoreError::Backend(format!("column day: {e}")))?;
                Ok((day, latency, tin, tout, failed))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(usage_days(calls))
    }
}
