//! The audit log (DATA-4): appending chained rows inside a caller's transaction, reading chains
//! for verification, listing with filters, and pruning behind a signed checkpoint (DATA-5).

use super::*;
use conclave_core::audit::{
    canonical, AuditEntry, AuditFilter, AuditRow, ChainHead, Checkpoint, GENESIS,
};

const AUDIT_COLS: &str = "id, chain, seq, at, event, actor_id, actor_type, \
     impersonator_id, resource_type, resource_id, org_id, ip, user_agent, request_id, \
     outcome, detail, prev_hash, hash";

/// Appends `entries` to their chains inside `conn`'s transaction. Each chain's head row
/// is taken with an update first, so on PostgreSQL concurrent appends to one chain wait
/// for each other (and a chain never forks); chains are taken in name order, so two
/// transactions never wait on each other's heads.
pub(super) async fn append_audit_in(
    conn: &mut Conn,
    s: &Backend,
    entries: &[AuditEntry],
) -> StoreResult<()> {
    let mut ordered: Vec<&AuditEntry> = entries.iter().collect();
    ordered.sort_by_key(|e| e.chain());
    for e in ordered {
        let mut e = e.clone();
        e.at = ts(e.at);
        let chain = e.chain();
        let (seq, prev): (i64, Vec<u8>) = sqlx::query(
            "INSERT INTO audit_heads (chain, seq, hash) VALUES ($1, 1, $2) \
             ON CONFLICT (chain) DO UPDATE SET seq = audit_heads.seq + 1 \
             RETURNING seq, hash",
        )
        .bind(&chain)
        .bind(&GENESIS[..])
        .one(&mut *conn, seq_and_hash)
        .await?;
        let detail = e.detail_text();
        let hash = s
            .audit_key()
            .link(&prev, &canonical(&chain, seq, &e, detail.as_deref()));
        sqlx::query(&format!(
            "INSERT INTO audit_log ({AUDIT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, \
             $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
        ))
        .bind(e.id)
        .bind(&chain)
        .bind(seq)
        .bind(e.at)
        .bind(&e.event)
        .bind(e.actor.id)
        .bind(e.actor.kind.as_str())
        .bind(e.actor.impersonator.map(|u| u.0))
        .bind(e.resource_type.as_deref())
        .bind(e.resource_id.as_deref())
        .bind(e.org.map(|o| o.0))
        .bind(e.ip.as_deref())
        .bind(e.user_agent.as_deref())
        .bind(e.request_id.as_deref())
        .bind(e.outcome.as_str())
        .bind(detail.as_deref())
        .bind(&prev[..])
        .bind(&hash[..])
        .run(&mut *conn)
        .await?;
        sqlx::query("UPDATE audit_heads SET hash = $2 WHERE chain = $1")
            .bind(&chain)
            .bind(&hash[..])
            .run(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Appends the audit rows and commits: the last step of every audited change.
pub(super) async fn commit_audited(
    mut tx: sqlx::Transaction<'_, Db>,
    s: &Backend,
    entries: &[AuditEntry],
) -> StoreResult<()> {
    append_audit_in(&mut tx, s, entries).await?;
    tx.commit().await.map_err(db)
}

/// A chain position from the `seq` and `hash` columns.
fn seq_and_hash(row: &Row) -> StoreResult<(i64, Vec<u8>)> {
    Ok((get(row, "seq")?, get(row, "hash")?))
}

fn checkpoint_from_row(row: &Row) -> StoreResult<Checkpoint> {
    Ok(from_columns!(row, Checkpoint { chain, seq, hash, signature, at; }))
}

/// A chain's checkpoint, if it has one.
async fn checkpoint<'c>(on: impl Executor<'c>, chain: &str) -> StoreResult<Option<Checkpoint>> {
    sqlx::query("SELECT chain, seq, hash, signature, at FROM audit_checkpoints WHERE chain = $1")
        .bind(chain)
        .opt(on, checkpoint_from_row)
        .await
}

/// An audit row as [`stored_audit_row`] reads it — or, when one of its columns cannot be read
/// as the server writes it (an actor type or outcome it never writes, a time it cannot parse,
/// a value of another type: only a writer at the database makes such a row), the row under its
/// id, chain and `seq` marked unreadable — event `unreadable`, its link kept, no hash — so
/// verification finds it altered where it stands (no MAC is empty) and pruning refuses it, instead of the read
/// failing and taking the retention job and `verify` down with it (DATA-4, DATA-5).
fn audit_from_row(row: &Row) -> StoreResult<AuditRow> {
    match stored_audit_row(row) {
        Ok(r) => Ok(r),
        Err(_) => {
            let mut entry = AuditEntry::new(
                "unreadable",
                conclave_core::audit::AuditActor::system(),
                DateTime::<Utc>::UNIX_EPOCH,
            );
            entry.id = get(row, "id")?;
            Ok(AuditRow {
                chain: get(row, "chain")?,
                seq: get(row, "seq")?,
                entry,
                detail_text: None,
                prev_hash: get(row, "prev_hash").unwrap_or_default(),
                hash: Vec::new(),
            })
        }
    }
}

/// An audit row, every column read as the server writes it.
fn stored_audit_row(row: &Row) -> StoreResult<AuditRow> {
    let detail: Option<String> = get(row, "detail")?;
    let actor_id: Option<uuid::Uuid> = get(row, "actor_id")?;
    let impersonator: Option<uuid::Uuid> = get(row, "impersonator_id")?;
    let org: Option<uuid::Uuid> = get(row, "org_id")?;
    Ok(AuditRow {
        chain: get(row, "chain")?,
        seq: get(row, "seq")?,
        entry: AuditEntry {
            id: get(row, "id")?,
            at: get(row, "at")?,
            event: get(row, "event")?,
            actor: conclave_core::audit::AuditActor {
                id: actor_id,
                kind: tag(row, "actor_type", ActorType::parse)?,
                impersonator: impersonator.map(UserId),
            },
            resource_type: get(row, "resource_type")?,
            resource_id: get(row, "resource_id")?,
            org: org.map(OrgId),
            ip: get(row, "ip")?,
            user_agent: get(row, "user_agent")?,
            request_id: get(row, "request_id")?,
            outcome: tag(row, "outcome", Outcome::parse)?,
            // The detail is read back as text; a row altered into invalid JSON still
            // verifies as altered rather than failing to load.
            detail: detail.as_deref().and_then(|d| serde_json::from_str(d).ok()),
        },
        detail_text: detail,
        prev_hash: get(row, "prev_hash")?,
        hash: get(row, "hash")?,
    })
}

/// Verifies, inside the pruning transaction, the chain's rows from its checkpoint (or
/// genesis) through `through + 1`: every MAC, every number, every link, and that no row
/// sits at or below the checkpoint. `Some(Refused)` names the first problem.
async fn verify_prunable(
    conn: &mut Conn,
    s: &Backend,
    chain: &str,
    through: i64,
) -> StoreResult<Option<conclave_core::audit::PruneOutcome>> {
    use conclave_core::audit::{ChainVerifier, Problem, PruneOutcome};
    const BATCH: i64 = 1000;
    let cp = checkpoint(&mut *conn, chain).await?;
    let key = s.audit_key();
    let refused = |v: ChainVerifier<'_>| {
        let r = v.finish(None);
        PruneOutcome::Refused {
            first_bad: r.first_bad,
            first_bad_seq: r.first_bad_seq,
            problem: r.problem.unwrap_or(Problem::Gap),
        }
    };
    let mut v = ChainVerifier::new(key, chain, cp.as_ref());
    if v.failed() {
        return Ok(Some(refused(v)));
    }
    // A row numbered before the first expected one (at or below the checkpoint, or below 1 in
    // a chain never pruned) is out of place.
    let first_expected = cp.as_ref().map_or(1, |cp| cp.seq + 1);
    let stray = sqlx::query(&format!(
        "SELECT {AUDIT_COLS} FROM audit_log WHERE chain = $1 AND seq < $2 ORDER BY seq LIMIT 1"
    ))
    .bind(chain)
    .bind(first_expected)
    .opt(&mut *conn, audit_from_row)
    .await?;
    if let Some(row) = stray {
        return Ok(Some(PruneOutcome::Refused {
            first_bad: Some(row.entry.id),
            first_bad_seq: Some(row.seq),
            problem: Problem::Gap,
        }));
    }
    while !v.failed() && v.next_seq() <= through + 1 {
        let rows = sqlx::query(&format!(
            "SELECT {AUDIT_COLS} FROM audit_log WHERE chain = $1 AND seq >= $2 \
             AND seq <= $3 ORDER BY seq LIMIT $4"
        ))
        .bind(chain)
        .bind(v.next_seq())
        .bind(through + 1)
        .bind(BATCH)
        .all(&mut *conn, audit_from_row)
        .await?;
        for row in &rows {
            v.feed(row);
        }
        if (rows.len() as i64) < BATCH {
            break;
        }
    }
    // A row missing at the end (the one after the cut, say) is a gap too.
    if v.failed() || v.next_seq() != through + 2 {
        return Ok(Some(refused(v)));
    }
    Ok(None)
}

#[async_trait]
impl AuditStore for Backend {
    async fn append_audit(&self, entries: &[AuditEntry]) -> StoreResult<()> {
        let tx = self.writer().begin().await.map_err(db)?;
        commit_audited(tx, self, entries).await
    }

    async fn audit_heads(&self) -> StoreResult<Vec<ChainHead>> {
        sqlx::query("SELECT chain, seq, hash FROM audit_heads ORDER BY chain")
            .all(self.reader(), |r| {
                let (seq, hash) = seq_and_hash(r)?;
                Ok(ChainHead {
                    chain: get(r, "chain")?,
                    seq,
                    hash,
                })
            })
            .await
    }

    async fn audit_chain_names(&self) -> StoreResult<Vec<String>> {
        sqlx::query(
            "SELECT chain FROM audit_heads UNION SELECT chain FROM audit_log \
             UNION SELECT chain FROM audit_checkpoints ORDER BY chain",
        )
        .all(self.reader(), |r| get(r, "chain"))
        .await
    }

    async fn audit_rows(
        &self,
        chain: &str,
        from_seq: i64,
        limit: i64,
    ) -> StoreResult<Vec<AuditRow>> {
        sqlx::query(&format!(
            "SELECT {AUDIT_COLS} FROM audit_log WHERE chain = $1 AND seq >= $2 \
             ORDER BY seq LIMIT $3"
        ))
        .bind(chain)
        .bind(from_seq)
        .bind(limit)
        .all(self.reader(), audit_from_row)
        .await
    }

    async fn audit_checkpoint(&self, chain: &str) -> StoreResult<Option<Checkpoint>> {
        checkpoint(self.reader(), chain).await
    }

    async fn list_audit(
        &self,
        filter: &AuditFilter,
        page: Page<uuid::Uuid>,
    ) -> StoreResult<Vec<AuditRow>> {
        let mut conds: Vec<String> = Vec::new();
        let mut n = 0usize;
        let next = |n: &mut usize| {
            *n += 1;
            *n
        };
        if filter.event.is_some() {
            conds.push(format!("event = ${}", next(&mut n)));
        }
        if filter.actor.is_some() {
            conds.push(format!("actor_id = ${}", next(&mut n)));
        }
        if filter.org.is_some() {
            conds.push(format!("org_id = ${}", next(&mut n)));
        }
        if filter.since.is_some() {
            conds.push(format!("at >= ${}", next(&mut n)));
        }
        if filter.until.is_some() {
            conds.push(format!("at < ${}", next(&mut n)));
        }
        if filter.resource.is_some() {
            let a = next(&mut n);
            let b = next(&mut n);
            conds.push(format!("resource_type = ${a} AND resource_id = ${b}"));
        }
        if let Some(events) = &filter.events {
            let from = n + 1;
            n += events.len();
            conds.push(format!("event IN ({})", placeholders(from, events.len())));
        }
        let ks = keyset(page.cursor, "id", n + 1);
        if ks.key.is_some() {
            n += 1;
        }
        let lim = next(&mut n);
        let sql = format!(
            "SELECT {AUDIT_COLS} FROM audit_log WHERE 1 = 1 {} {} ORDER BY id {} LIMIT ${lim}",
            conds
                .iter()
                .map(|c| format!("AND {c}"))
                .collect::<Vec<_>>()
                .join(" "),
            ks.cond,
            ks.order,
        );
        let mut q = sqlx::query(&sql);
        if let Some(v) = &filter.event {
            q = q.bind(v.as_str());
        }
        if let Some(v) = filter.actor {
            q = q.bind(v);
        }
        if let Some(v) = filter.org {
            q = q.bind(v.0);
        }
        if let Some(v) = filter.since {
            q = q.bind(ts(v));
        }
        if let Some(v) = filter.until {
            q = q.bind(ts(v));
        }
        if let Some((t, id)) = &filter.resource {
            q = q.bind(t.as_str()).bind(id.as_str());
        }
        if let Some(events) = &filter.events {
            for e in events {
                q = q.bind(e.as_str());
            }
        }
        if let Some(k) = ks.key {
            q = q.bind(k);
        }
        q.bind(limit(page.limit))
            .all(self.reader(), audit_from_row)
            .await
    }

    /// Deletes the chain's rows older than `before` (never the newest row, which the head
    /// names), leaves a signed checkpoint at the last one deleted and appends `entry` (with
    /// the count in its detail) — all in one transaction that holds the chain's head, so
    /// nodes pruning at once run one after the other and the second finds nothing to do.
    /// Before deleting, the rows due to go and the one after them are verified in that
    /// transaction (a row backdated to fall under the cutoff no longer matches its MAC);
    /// any mismatch leaves everything as it was.
    async fn prune_audit(
        &self,
        chain: &str,
        before: DateTime<Utc>,
        entry: &AuditEntry,
    ) -> StoreResult<conclave_core::audit::PruneOutcome> {
        use conclave_core::audit::PruneOutcome;
        let mut tx = self.writer().begin().await.map_err(db)?;
        let head =
            sqlx::query("UPDATE audit_heads SET seq = seq WHERE chain = $1 RETURNING seq, hash")
                .bind(chain)
                .opt(&mut *tx, seq_and_hash)
                .await?;
        let Some((head_seq, _)) = head else {
            return Ok(PruneOutcome::Pruned(0));
        };
        let last = sqlx::query(
            "SELECT seq, hash FROM audit_log WHERE chain = $1 AND at < $2 AND seq < $3 \
             ORDER BY seq DESC LIMIT 1",
        )
        .bind(chain)
        .bind(ts(before))
        .bind(head_seq)
        .opt(&mut *tx, seq_and_hash)
        .await?;
        let Some((seq, hash)) = last else {
            return Ok(PruneOutcome::Pruned(0));
        };
        if let Some(refused) = verify_prunable(&mut tx, self, chain, seq).await? {
            return Ok(refused);
        }
        let pruned = sqlx::query("DELETE FROM audit_log WHERE chain = $1 AND seq <= $2")
            .bind(chain)
            .bind(seq)
            .run(&mut *tx)
            .await?;
        let signature = self.audit_key().sign_checkpoint(chain, seq, &hash);
        sqlx::query(
            "INSERT INTO audit_checkpoints (chain, seq, hash, signature, at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (chain) DO UPDATE SET \
             seq = excluded.seq, hash = excluded.hash, signature = excluded.signature, \
             at = excluded.at",
        )
        .bind(chain)
        .bind(seq)
        .bind(&hash[..])
        .bind(&signature[..])
        .bind(ts(entry.at))
        .run(&mut *tx)
        .await?;
        let mut entry = entry.clone();
        entry.detail = Some(serde_json::json!({ "rows": pruned, "through_seq": seq }));
        commit_audited(tx, self, std::slice::from_ref(&entry)).await?;
        Ok(PruneOutcome::Pruned(pruned))
    }
}
