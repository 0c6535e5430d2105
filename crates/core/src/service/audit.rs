//! Reading and verifying the audit log, and the retention job (DATA-4, DATA-5).

use super::{Actor, Result, ServerAdmin, Services};
use crate::audit::{
    chain_of, hex, AuditActor, AuditEntry, AuditFilter, AuditRow, ChainReport, ChainVerifier,
    Problem, PruneOutcome, AUDIT_ALERT, CHAIN_MISMATCH,
};
use crate::error::ServiceError;
use crate::ids::{ApiKeyId, OrgId, UserId};
use crate::policy::OrgAction;
use crate::store::Page;
use crate::types::ActorType;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use std::collections::HashMap;
use utoipa::ToSchema;
use uuid::Uuid;

/// How many rows verification reads at a time.
const VERIFY_BATCH: i64 = 1000;

/// The security events a user sees about their own account (DATA-6).
pub const SECURITY_EVENTS: &[&str] = &[
    "auth.login",
    "auth.logout",
    "auth.second_factor",
    "password.changed",
    "password.reset",
    "session.revoked",
    "sessions.revoked_others",
    "totp.setup_started",
    "totp.enabled",
    "totp.disabled",
    "recovery_codes.regenerated",
    "recovery_code.used",
    "impersonation.started",
    "admin.user_updated",
    "user.exported",
];

/// Who did an event about a user's account, as that user is shown it (DATA-6): never another
/// person's IP address or user agent, and an administrator's action as an administrator's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShownActor {
    /// `you` (the user, or an API key of theirs), `administrator` (a server admin, an
    /// impersonation or the management token), `another_user`, `system` or `someone` (a
    /// sign-in attempt by whoever typed the name, a bot).
    pub kind: &'static str,
    /// The other person's username, when there is one.
    pub username: Option<String>,
}

/// An audit event about a user's account, as they see it: the row (with the IP address and
/// user agent kept only when they acted themselves) and who did it.
#[derive(Debug, Clone)]
pub struct AccountEvent {
    pub row: AuditRow,
    pub by: ShownActor,
}

/// The result of verifying every chain.
// `audit verify` prints it; `GET /admin/audit/verify` answers it. `checked` counts the rows
// of every chain.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = VerifyView)]
pub struct VerifyReport {
    pub ok: bool,
    pub checked: u64,
    /// The first row found altered, inserted or out of place; null when none can be named
    /// (a truncated tail shows as `problem: head_mismatch`).
    pub first_bad: Option<uuid::Uuid>,
    /// `altered`, `broken_link`, `gap`, `bad_checkpoint`, `head_mismatch` or
    /// `expected_head_missing`.
    #[schema(value_type = Option<String>)]
    pub problem: Option<Problem>,
    #[schema(value_type = Vec<Object>)]
    pub chains: Vec<ChainReport>,
}

/// Who acted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AuditActorView {
    /// The user, bot or API key; null for the management token and the system.
    pub id: Option<Uuid>,
    /// `user`, `bot`, `api_key`, `management`, `system` or `anonymous`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The server admin behind an impersonated session (AUTH-12).
    pub impersonator: Option<Uuid>,
}

/// What it was done to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AuditResourceView {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub id: Option<String>,
}

/// One audit event. Every key is present; null where not applicable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AuditEvent {
    pub id: Uuid,
    pub at: DateTime<Utc>,
    pub event: String,
    pub actor: AuditActorView,
    pub resource: AuditResourceView,
    pub org_id: Option<Uuid>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    /// `success` or `failure`.
    pub outcome: String,
    /// Non-secret details (roles, names of changed settings, counts).
    #[schema(value_type = Option<Object>)]
    pub detail: Option<serde_json::Value>,
    /// The chain (`server` or the org id) and the row's number in it.
    pub chain: String,
    pub seq: i64,
    /// The row's chain hash (hex): record it elsewhere to check later with `--expect-head`.
    pub hash: String,
    /// In your security events and export only: who acted, as you are shown it (another
    /// person's IP address and user agent are left out there). Null in the audit listings.
    pub by: Option<ShownActorView>,
}

/// Who acted on your account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ShownActorView {
    /// `you`, `administrator`, `another_user`, `system` or `someone`.
    pub kind: String,
    /// The other person's username (an administrator's too), when there is one.
    pub username: Option<String>,
}

impl From<AccountEvent> for AuditEvent {
    fn from(e: AccountEvent) -> Self {
        Self {
            by: Some(ShownActorView {
                kind: e.by.kind.to_owned(),
                username: e.by.username,
            }),
            ..Self::from(e.row)
        }
    }
}

impl From<AuditRow> for AuditEvent {
    fn from(r: AuditRow) -> Self {
        let e = r.entry;
        Self {
            id: e.id,
            at: e.at,
            event: e.event,
            actor: AuditActorView {
                id: e.actor.id,
                kind: e.actor.kind.as_str().to_owned(),
                impersonator: e.actor.impersonator.map(|u| u.0),
            },
            resource: AuditResourceView {
                kind: e.resource_type,
                id: e.resource_id,
            },
            org_id: e.org.map(|o| o.0),
            ip: e.ip,
            user_agent: e.user_agent,
            request_id: e.request_id,
            outcome: e.outcome.as_str().to_owned(),
            detail: e.detail,
            chain: r.chain,
            seq: r.seq,
            hash: hex(&r.hash),
            by: None,
        }
    }
}

/// What one run of the retention job did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RetentionReport {
    pub messages_deleted: u64,
    /// Files removed with those messages, and uploads older than the retention that no
    /// message claimed.
    pub files_deleted: u64,
    pub audit_rows_deleted: u64,
    /// Chains whose pruning was refused because their rows did not verify.
    pub audit_prunes_refused: u64,
}

impl Services {
    /// Verifies every chain from its checkpoint (or genesis) to its recorded head. With
    /// `expect_head` (a row hash recorded elsewhere, hex), also requires that row to still be
    /// in a chain, which shows a tail cut off together with its head record. A clean report
    /// clears the `audit` health alert a refused pruning raised before this verification began
    /// (DATA-5): an admin has looked, and the chains hold.
    pub async fn verify_audit(&self, expect_head: Option<&str>) -> Result<VerifyReport> {
        let started = self.clock.now();
        let report = self.verify_chains(expect_head).await?;
        if report.ok && self.store.clear_alert(AUDIT_ALERT, started).await? {
            tracing::warn!("the audit chains verify again: the audit alert is cleared");
        }
        Ok(report)
    }

    async fn verify_chains(&self, expect_head: Option<&str>) -> Result<VerifyReport> {
        let expected = match expect_head {
            Some(text) => Some(
                crate::audit::unhex(text.trim())
                    .filter(|b| b.len() == 32)
                    .ok_or_else(|| {
                        ServiceError::invalid(
                            "expect_head",
                            "invalid_format",
                            "the expected head is the 64-character hex hash of a row",
                        )
                    })?,
            ),
            None => None,
        };
        let key = self.keys.audit_key();
        let heads = self.store.audit_heads().await?;
        let mut chains = Vec::new();
        for chain in self.store.audit_chain_names().await? {
            let checkpoint = self.store.audit_checkpoint(&chain).await?;
            let mut v = ChainVerifier::new(&key, &chain, checkpoint.as_ref());
            if let Some(e) = &expected {
                v = v.expecting_head(e.clone());
            }
            while !v.failed() {
                let rows = self
                    .store
                    .audit_rows(&chain, v.next_seq(), VERIFY_BATCH)
                    .await?;
                // A row numbered below the expected one (a duplicate kept under another id is
                // impossible: `seq` is unique) cannot appear; more rows than expected show up
                // as a gap or a broken link in `feed`.
                for r in &rows {
                    v.feed(r);
                }
                if (rows.len() as i64) < VERIFY_BATCH {
                    break;
                }
            }
            // Rows below the checkpoint that survived pruning, or rows filed before the first
            // expected number (below 1 in a chain never pruned: a row numbered 0 or less is
            // never read by the walk above), are out of place too.
            if !v.failed() {
                let first = self.store.audit_rows(&chain, i64::MIN, 1).await?;
                let first_expected = checkpoint.as_ref().map_or(1, |cp| cp.seq + 1);
                if let Some(r) = first.first() {
                    if r.seq < first_expected {
                        let start = ChainVerifier::new(&key, &chain, checkpoint.as_ref());
                        let mut report = start.finish(None);
                        report.ok = false;
                        report.first_bad = Some(r.entry.id);
                        report.first_bad_seq = Some(r.seq);
                        report.problem = Some(Problem::Gap);
                        chains.push(report);
                        continue;
                    }
                }
            }
            let head = heads.iter().find(|h| h.chain == chain);
            chains.push(v.finish(head));
        }
        let checked = chains.iter().map(|c| c.checked).sum();
        let bad = chains.iter().find(|c| !c.ok);
        let mut problem = bad.and_then(|c| c.problem);
        let first_bad = bad.and_then(|c| c.first_bad);
        if problem.is_none() && expected.is_some() && !chains.iter().any(|c| c.expected_found) {
            problem = Some(Problem::ExpectedHeadMissing);
        }
        Ok(VerifyReport {
            ok: problem.is_none(),
            checked,
            first_bad,
            problem,
            chains,
        })
    }

    /// Verification for a server admin (or the management token).
    pub async fn admin_verify_audit(
        &self,
        _admin: &ServerAdmin,
        expect_head: Option<&str>,
    ) -> Result<VerifyReport> {
        self.verify_audit(expect_head).await
    }

    /// The audit log across the server, newest first.
    pub async fn admin_audit_log(
        &self,
        _admin: &ServerAdmin,
        filter: AuditFilter,
        page: Page<uuid::Uuid>,
    ) -> Result<Vec<AuditRow>> {
        Ok(self.store.list_audit(&filter, page).await?)
    }

    /// One org's audit log, for its owners and admins.
    pub async fn org_audit(
        &self,
        actor: &Actor,
        org: OrgId,
        mut filter: AuditFilter,
        page: Page<uuid::Uuid>,
    ) -> Result<Vec<AuditRow>> {
        self.require_org(actor, org, OrgAction::ViewAudit).await?;
        filter.org = Some(org);
        Ok(self.store.list_audit(&filter, page).await?)
    }

    /// The security events about the caller's own account: sign-ins, sessions, 2FA changes,
    /// impersonations.
    pub async fn security_events(
        &self,
        actor: &Actor,
        page: Page<uuid::Uuid>,
    ) -> Result<Vec<AccountEvent>> {
        Self::require_session(actor)?;
        let filter = AuditFilter {
            resource: Some(("user".to_owned(), actor.user.id.0.to_string())),
            events: Some(SECURITY_EVENTS.iter().map(|e| (*e).to_owned()).collect()),
            ..AuditFilter::default()
        };
        let rows = self.store.list_audit(&filter, page).await?;
        self.shown_to(actor.user.id, rows).await
    }

    /// Audit rows as the user `me` is shown them (DATA-6): the IP address and user agent stay
    /// only on what they did themselves — through their own session or API key, not an
    /// impersonation — and every row says who acted, an administrator by their username.
    pub(super) async fn shown_to(
        &self,
        me: UserId,
        rows: Vec<AuditRow>,
    ) -> Result<Vec<AccountEvent>> {
        let mut names: HashMap<uuid::Uuid, (String, bool)> = HashMap::new();
        let mut out = Vec::with_capacity(rows.len());
        for mut row in rows {
            let a = &row.entry.actor;
            let by = if let Some(admin) = a.impersonator {
                let (name, _) = self.user_name(&mut names, admin.0).await?;
                ShownActor {
                    kind: "administrator",
                    username: name,
                }
            } else {
                match (a.kind, a.id) {
                    (ActorType::User, Some(id)) if id == me.0 => ShownActor {
                        kind: "you",
                        username: None,
                    },
                    (ActorType::ApiKey, Some(id))
                        if self
                            .store
                            .api_key(ApiKeyId(id))
                            .await
                            .is_ok_and(|k| k.user_id == me) =>
                    {
                        ShownActor {
                            kind: "you",
                            username: None,
                        }
                    }
                    (ActorType::User, Some(id)) => {
                        let (name, admin) = self.user_name(&mut names, id).await?;
                        ShownActor {
                            kind: if admin {
                                "administrator"
                            } else {
                                "another_user"
                            },
                            username: name,
                        }
                    }
                    (ActorType::Management, _) => ShownActor {
                        kind: "administrator",
                        username: None,
                    },
                    (ActorType::System, _) => ShownActor {
                        kind: "system",
                        username: None,
                    },
                    _ => ShownActor {
                        kind: "someone",
                        username: None,
                    },
                }
            };
            if by.kind != "you" {
                row.entry.ip = None;
                row.entry.user_agent = None;
            }
            out.push(AccountEvent { row, by });
        }
        Ok(out)
    }

    /// A user's username and whether they are a server admin (`None` for an account gone).
    async fn user_name(
        &self,
        cache: &mut HashMap<uuid::Uuid, (String, bool)>,
        id: uuid::Uuid,
    ) -> Result<(Option<String>, bool)> {
        if let Some((name, admin)) = cache.get(&id) {
            return Ok((Some(name.clone()), *admin));
        }
        match self.store.user(UserId(id)).await {
            Ok(u) => {
                let entry = (u.username.to_string(), u.server_admin);
                cache.insert(id, entry.clone());
                Ok((Some(entry.0), entry.1))
            }
            Err(crate::store::StoreError::NotFound) => Ok((None, false)),
            Err(e) => Err(e.into()),
        }
    }

    /// The alarm of DATA-5 when rows due to be pruned do not verify: an error log line, an
    /// `audit.prune_refused` row in the server chain and the `audit` health alert
    /// (`chain_mismatch`), which every node's readiness check reports until a verification
    /// comes back clean.
    async fn refuse_pruning(
        &self,
        chain: &str,
        first_bad: Option<uuid::Uuid>,
        first_bad_seq: Option<i64>,
        problem: Problem,
    ) -> Result<()> {
        tracing::error!(
            chain,
            ?first_bad,
            ?first_bad_seq,
            ?problem,
            "audit rows due for pruning do not verify against the chain: nothing pruned; \
             run `conclave audit verify`"
        );
        let entry = (self.system_audit("audit.prune_refused"))
            .failed()
            .detail(serde_json::json!({
                "chain": chain,
                "problem": problem,
                "first_bad": first_bad,
                "first_bad_seq": first_bad_seq,
            }));
        self.store
            .raise_alert(
                &crate::store::HealthAlert {
                    name: AUDIT_ALERT,
                    status: CHAIN_MISMATCH,
                    raised_at: self.clock.now(),
                },
                &[entry],
            )
            .await?;
        Ok(())
    }

    /// One pass of the retention job: for every org with a retention setting, deletes older
    /// messages and prunes its audit chain behind a signed checkpoint — after verifying the rows
    /// that go, refusing (and raising the alarm) when they do not. Safe on several nodes at
    /// once (each deletion is idempotent; pruning holds the chain's head). Logs every chain's
    /// signed head so a truncated tail can be shown later (`verify --expect-head`).
    pub async fn run_retention(&self) -> Result<RetentionReport> {
        let now = self.clock.now();
        let mut report = RetentionReport::default();
        for org in self.store.orgs_with_retention().await? {
            if let Some(days) = org.message_retention_days {
                let entry = AuditEntry::new("messages.pruned", AuditActor::system(), now)
                    .resource("org", org.id)
                    .org(org.id);
                let (deleted, freed) = self
                    .store
                    .prune_messages(org.id, now - Duration::days(i64::from(days)), &entry)
                    .await?;
                report.messages_deleted += deleted;
                report.files_deleted += freed.0.len() as u64;
                self.free(freed).await;
            }
            if let Some(days) = org.audit_retention_days {
                // A value set below today's floor (DATA-5) is kept as the floor.
                let days = days.max(i32::try_from(self.audit_retention_floor).unwrap_or(i32::MAX));
                let chain = chain_of(Some(org.id));
                let entry = AuditEntry::new("audit.pruned", AuditActor::system(), now)
                    .resource("org", org.id)
                    .org(org.id);
                match self
                    .store
                    .prune_audit(&chain, now - Duration::days(i64::from(days)), &entry)
                    .await?
                {
                    PruneOutcome::Pruned(n) => report.audit_rows_deleted += n,
                    PruneOutcome::Refused {
                        first_bad,
                        first_bad_seq,
                        problem,
                    } => {
                        report.audit_prunes_refused += 1;
                        self.refuse_pruning(&chain, first_bad, first_bad_seq, problem)
                            .await?;
                    }
                }
            }
        }
        let key = self.keys.audit_key();
        for head in self.store.audit_heads().await? {
            tracing::info!(
                chain = %head.chain,
                seq = head.seq,
                hash = %hex(&head.hash),
                signature = %hex(&key.sign_head(&head.chain, head.seq, &head.hash)),
                "audit chain head"
            );
        }
        Ok(report)
    }
}
