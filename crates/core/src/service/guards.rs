//! Content guards (RATE-6, AGENT-5): managing an org's guards (owners and admins, and keys with
//! `org:admin`), screening what is posted, and the review queue of flagged messages.
//!
//! Screening reads the org's guards compiled from the cache (`cache::Guards`, invalidated on
//! every node by `Control::Stale` for the org when a guard changes), so a send in an org
//! without guards costs one cache hit and no query. The guards run in position order; the
//! first that blocks ends it, flags accumulate. Remote checks (moderation endpoints, guard agents) go
//! through the injected [`RemoteScreen`]; a check that fails or times out counts an error and
//! then lets the text through (`fail: open`) or blocks it (`fail: closed`). Every decision is
//! counted with one atomic increment per guard.

use super::{Actor, Result, ServerAdmin, Services};
use crate::cache::Guards as GuardsKind;
use crate::error::ServiceError;
use crate::event::Cached;
use crate::guards::*;
use crate::ids::*;
use crate::keyring::SecretRef;
use crate::model::Message;
use crate::policy::OrgAction;
use crate::secretbox::SealedColumn;
use crate::store::guards::*;
use crate::store::StoreError;
use crate::types::{MessageFormat, Name};
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;

/// A guard as its managers create it.
#[derive(Debug)]
pub struct NewGuard {
    pub name: Option<Name>,
    pub mode: GuardMode,
    pub rules: GuardRules,
    /// A moderation endpoint's API key (sealed, never shown again).
    pub api_key: Option<SecretString>,
    pub position: Option<i32>,
    pub enabled: bool,
}

/// What a manager may change; the settings only within the guard's kind.
#[derive(Debug, Default)]
pub struct GuardPatch {
    pub name: Option<Name>,
    pub mode: Option<GuardMode>,
    pub position: Option<i32>,
    pub enabled: Option<bool>,
    pub terms: Option<Vec<String>>,
    pub patterns: Option<Vec<String>>,
    /// Checked by the SSRF guard before this call.
    pub url: Option<String>,
    pub timeout_ms: Option<u64>,
    pub fail: Option<FailMode>,
    /// A guard agent's agent (one of the org's).
    pub agent_id: Option<uuid::Uuid>,
    /// `Some(None)` removes the key.
    pub api_key: Option<Option<SecretString>>,
}

/// A flag with the message as REST shows it (`None` when it is gone).
#[derive(Debug, Clone)]
pub struct FlagItem {
    pub flag: Flag,
    pub message: Option<Message>,
}

/// What a guard agent's call adds to the text's tokens in a reservation: the instruction, the
/// delimiters and the one-word answer.
const AGENT_GUARD_PROMPT_TOKENS: i64 = 100;

/// The position range a guard may take.
pub const POSITION_RANGE: std::ops::RangeInclusive<i32> = 0..=10_000;

fn key_ref(id: GuardId) -> SecretRef {
    SecretRef {
        column: SealedColumn::GuardApiKey,
        row: id.0,
    }
}

impl From<RuleError> for ServiceError {
    fn from(e: RuleError) -> Self {
        Self::invalid(e.field, e.code, e.message)
    }
}

/// 422 `content_blocked` naming the guard, for a blocked post.
#[must_use]
pub fn blocked_error(name: &str) -> ServiceError {
    ServiceError::invalid(
        "content",
        "content_blocked",
        format!("the content guard \"{name}\" does not allow this content"),
    )
}

fn guard_missing(e: StoreError) -> ServiceError {
    match e {
        StoreError::NotFound => ServiceError::NotFound("guard"),
        other => other.into(),
    }
}

/// A field given that the guard's kind does not have.
fn not_of_kind(field: &str, kind: GuardKind) -> ServiceError {
    ServiceError::invalid(
        field,
        "not_for_this_kind",
        format!("a {} guard has no `{field}`", kind.as_str()),
    )
}

/// The text a post is screened on: HTML reduced to what a reader sees.
#[must_use]
pub fn screened_text(content: &str, format: MessageFormat) -> std::borrow::Cow<'_, str> {
    match format {
        MessageFormat::Text => std::borrow::Cow::Borrowed(content),
        MessageFormat::Html => std::borrow::Cow::Owned(crate::sanitize::html_text(content)),
    }
}

/// Applies `patch`'s settings to `rules` (fields of another kind are refused).
fn patched_rules(rules: GuardRules, patch: &mut GuardPatch) -> Result<GuardRules> {
    let kind = rules.kind();
    let foreign = |given: bool, field: &str| {
        if given {
            Err(not_of_kind(field, kind))
        } else {
            Ok(())
        }
    };
    let remote = matches!(rules, GuardRules::ModerationEndpoint { .. });
    let agent = matches!(rules, GuardRules::Agent { .. });
    foreign(
        !matches!(rules, GuardRules::Blocklist { .. }) && patch.terms.is_some(),
        "terms",
    )?;
    foreign(
        !matches!(rules, GuardRules::Regex { .. }) && patch.patterns.is_some(),
        "patterns",
    )?;
    foreign(!remote && patch.url.is_some(), "url")?;
    foreign(!remote && patch.timeout_ms.is_some(), "timeout_ms")?;
    foreign(!remote && patch.api_key.is_some(), "api_key")?;
    foreign(!remote && !agent && patch.fail.is_some(), "fail")?;
    foreign(!agent && patch.agent_id.is_some(), "agent_id")?;
    Ok(match rules {
        GuardRules::Blocklist { terms } => GuardRules::Blocklist {
            terms: patch.terms.take().unwrap_or(terms),
        },
        GuardRules::Regex { patterns } => GuardRules::Regex {
            patterns: patch.patterns.take().unwrap_or(patterns),
        },
        GuardRules::ModerationEndpoint {
            url,
            timeout_ms,
            fail,
        } => GuardRules::ModerationEndpoint {
            url: patch.url.take().unwrap_or(url),
            timeout_ms: patch.timeout_ms.unwrap_or(timeout_ms),
            fail: patch.fail.unwrap_or(fail),
        },
        GuardRules::Agent { agent_id, fail } => GuardRules::Agent {
            agent_id: patch.agent_id.unwrap_or(agent_id),
            fail: patch.fail.unwrap_or(fail),
        },
    })
}

fn check_position(position: i32) -> Result<i32> {
    if POSITION_RANGE.contains(&position) {
        Ok(position)
    } else {
        Err(ServiceError::invalid(
            "position",
            "invalid",
            format!(
                "between {} and {}",
                POSITION_RANGE.start(),
                POSITION_RANGE.end()
            ),
        ))
    }
}

/// Decisions counted on this node and not written yet: a send adds to them in memory (no write
/// of its own), [`Services::flush_guard_counts`] writes them — every second from the server's
/// job, before every read of the counters on this node, and at shutdown — as one
/// `n = n + k` per guard, so nothing is counted twice or lost between parallel sends.
#[derive(Default)]
pub(super) struct PendingCounts(std::sync::Mutex<std::collections::HashMap<GuardId, GuardCounts>>);

impl PendingCounts {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<GuardId, GuardCounts>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn add(&self, counts: &[(GuardId, GuardCounts)]) {
        if counts.is_empty() {
            return;
        }
        let mut pending = self.lock();
        for (id, c) in counts {
            pending.entry(*id).or_default().add(*c);
        }
    }

    fn take(&self) -> Vec<(GuardId, GuardCounts)> {
        self.lock().drain().collect()
    }
}

/// What screening counts and whether remote guards run.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// Every guard; every decision counted.
    All,
    /// Blocklists and regexes only; only a block is counted (an answer's text so far is
    /// screened many times, its final text once with `All`).
    Local,
}

impl Services {
    /// Sets the checks that reach other services (the server's, through its SSRF guard).
    #[must_use]
    pub fn with_remote_screen(mut self, remote: Arc<dyn RemoteScreen>) -> Self {
        self.remote = remote;
        self
    }

    async fn require_guards(&self, actor: &Actor, org: OrgId, write: bool) -> Result<()> {
        if write {
            Self::require_not_impersonated(actor)?;
        }
        self.require_org(actor, org, OrgAction::ManageGuards)
            .await?;
        Self::require_unlisted(actor)
    }

    /// Guard `id` of `org` (404 for another org's), once `actor` may manage the org's guards.
    async fn org_guard(&self, actor: &Actor, org: OrgId, id: GuardId) -> Result<Guard> {
        self.require_guards(actor, org, true).await?;
        match self.store.guard(id).await {
            Ok(g) if g.org_id == org => Ok(g),
            Ok(_) => Err(ServiceError::NotFound("guard")),
            Err(e) => Err(guard_missing(e)),
        }
    }

    async fn seal_api_key(
        &self,
        id: GuardId,
        key: &SecretString,
    ) -> Result<crate::secretbox::Sealed> {
        self.seal_secret(key_ref(id).binding(), key.expose_secret().as_bytes())
            .await
    }

    /// Every node forgets the org's compiled guards.
    fn guards_changed(&self, org: OrgId) {
        self.stale(vec![Cached::Org(org)]);
    }

    fn guard_audit(&self, actor: &Actor, event: &str, guard: &Guard) -> crate::audit::AuditEntry {
        self.audit(actor, event)
            .resource("guard", guard.id)
            .org(guard.org_id)
            .detail(serde_json::json!({
                "name": guard.name,
                "kind": guard.rules.kind().as_str(),
                "mode": guard.mode.as_str(),
                "enabled": guard.enabled,
                "position": guard.position,
            }))
    }

    /// A guard agent's agent must be one of `org`'s: 422 naming `agent_id` otherwise (the
    /// same for another org's agent and none).
    async fn check_guard_agent(&self, org: OrgId, rules: &GuardRules) -> Result<()> {
        let GuardRules::Agent { agent_id, .. } = rules else {
            return Ok(());
        };
        match self.store.agent(*agent_id).await {
            Ok(a) if a.org_id == org => Ok(()),
            Ok(_) | Err(StoreError::NotFound) => Err(ServiceError::invalid(
                "agent_id",
                "unknown_agent",
                "no agent of this organization has this id",
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// The org's guards that use agent `agent` (AGENT-5): an agent in use is not deleted.
    pub(super) async fn guards_using_agent(
        &self,
        org: OrgId,
        agent: uuid::Uuid,
    ) -> Result<Vec<Guard>> {
        let guards = self.store.guards(org).await?;
        Ok(guards
            .into_iter()
            .filter(|g| matches!(g.rules, GuardRules::Agent { agent_id, .. } if agent_id == agent))
            .collect())
    }

    /// Creates a guard of `org`; a moderation endpoint's URL has passed the SSRF guard.
    pub async fn create_guard(&self, actor: &Actor, org: OrgId, new: NewGuard) -> Result<Guard> {
        self.require_guards(actor, org, true).await?;
        let rules = new.rules.validated()?;
        self.check_guard_agent(org, &rules).await?;
        if new.api_key.is_some() && rules.kind() != GuardKind::ModerationEndpoint {
            return Err(not_of_kind("api_key", rules.kind()));
        }
        let existing = self.store.guards(org).await?;
        if existing.len() >= MAX_GUARDS_PER_ORG {
            return Err(ServiceError::conflict(
                "too_many_guards",
                "this organization has the most guards allowed",
            ));
        }
        let position = match new.position {
            Some(p) => check_position(p)?,
            None => existing
                .iter()
                .map(|g| g.position.saturating_add(1))
                .max()
                .unwrap_or(0)
                .min(*POSITION_RANGE.end()),
        };
        let now = self.clock.now();
        let id = GuardId::new();
        let sealed = match &new.api_key {
            Some(k) => Some(self.seal_api_key(id, k).await?),
            None => None,
        };
        let guard = Guard {
            id,
            org_id: org,
            name: new
                .name
                .map_or_else(|| rules.kind().as_str().to_owned(), Name::into_inner),
            mode: new.mode,
            rules,
            position,
            enabled: new.enabled,
            has_api_key: sealed.is_some(),
            counts: GuardCounts::default(),
            created_at: now,
            updated_at: now,
        };
        let audit = self.guard_audit(actor, "guard.created", &guard);
        self.store
            .create_guard(&guard, sealed.as_ref(), &[audit])
            .await?;
        if let (Some(sealed), Some(key)) = (sealed, &new.api_key) {
            self.settle_sealed(key_ref(id), sealed, key.expose_secret().as_bytes())
                .await?;
        }
        self.guards_changed(org);
        Ok(guard)
    }

    /// The org's guards in running order, with their counters (this node's decisions
    /// written first).
    pub async fn guards(&self, actor: &Actor, org: OrgId) -> Result<Vec<Guard>> {
        self.require_guards(actor, org, false).await?;
        self.flush_guard_counts().await?;
        Ok(self.store.guards(org).await?)
    }

    /// Writes the decisions this node counted since the last call; on failure they are kept
    /// for the next one.
    pub async fn flush_guard_counts(&self) -> Result<()> {
        let counts = self.guard_counts.take();
        if counts.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.store.count_guard_decisions(&counts).await {
            self.guard_counts.add(&counts);
            return Err(e.into());
        }
        Ok(())
    }

    pub async fn update_guard(
        &self,
        actor: &Actor,
        org: OrgId,
        id: GuardId,
        mut patch: GuardPatch,
    ) -> Result<Guard> {
        let mut guard = self.org_guard(actor, org, id).await?;
        let rules = patched_rules(guard.rules.clone(), &mut patch)?;
        guard.rules = rules.validated()?;
        self.check_guard_agent(org, &guard.rules).await?;
        if let Some(name) = patch.name.take() {
            guard.name = name.into_inner();
        }
        if let Some(mode) = patch.mode {
            guard.mode = mode;
        }
        if let Some(p) = patch.position {
            guard.position = check_position(p)?;
        }
        if let Some(e) = patch.enabled {
            guard.enabled = e;
        }
        guard.updated_at = self.clock.now();
        let (key, plain) = match patch.api_key.take() {
            None => (KeyChange::Keep, None),
            Some(None) => (KeyChange::Remove, None),
            Some(Some(k)) => (KeyChange::Set(self.seal_api_key(id, &k).await?), Some(k)),
        };
        let audit = self.guard_audit(actor, "guard.updated", &guard);
        let updated = self
            .store
            .update_guard(&guard, &key, &[audit])
            .await
            .map_err(guard_missing)?;
        if let (KeyChange::Set(sealed), Some(k)) = (key, plain) {
            self.settle_sealed(key_ref(id), sealed, k.expose_secret().as_bytes())
                .await?;
        }
        self.guards_changed(org);
        Ok(updated)
    }

    pub async fn delete_guard(&self, actor: &Actor, org: OrgId, id: GuardId) -> Result<()> {
        let guard = self.org_guard(actor, org, id).await?;
        let audit = self.guard_audit(actor, "guard.deleted", &guard);
        self.store
            .delete_guard(id, &[audit])
            .await
            .map_err(guard_missing)?;
        self.guards_changed(org);
        Ok(())
    }

    /// The org's enabled guards, compiled: from the cache when it holds them.
    async fn org_guards(&self, org: OrgId) -> Result<Arc<OrgGuards>> {
        let now = self.clock.now();
        if let Some(hit) = self.cache.get::<GuardsKind>(&org, now) {
            return Ok(hit);
        }
        let ticket = self.cache.ticket(now);
        let mut compiled = Vec::new();
        for g in self.store.guards(org).await? {
            if !g.enabled {
                continue;
            }
            let api_key = if g.has_api_key {
                match self.store.guard_api_key(g.id).await? {
                    Some(sealed) => {
                        let opened = self.open_sealed(key_ref(g.id).binding(), &sealed).await?;
                        let text =
                            String::from_utf8(opened.expose_secret().clone()).map_err(|_| {
                                ServiceError::Internal("a guard key is not text".into())
                            })?;
                        Some(SecretString::from(text))
                    }
                    None => None,
                }
            } else {
                None
            };
            compiled.push(CompiledGuard {
                id: g.id,
                check: compile(g.id, &g.rules, api_key).map_err(ServiceError::Internal)?,
                name: g.name,
                mode: g.mode,
            });
        }
        let guards = Arc::new(OrgGuards { guards: compiled });
        self.cache.put::<GuardsKind>(ticket, org, guards.clone());
        Ok(guards)
    }

    /// Runs every guard of `org` (remote ones included), in order, on `text`; every decision
    /// is counted.
    pub async fn screen(&self, org: OrgId, subject: Subject, text: &str) -> Result<Screening> {
        self.run_guards(org, subject, text, Reach::All).await
    }

    /// Runs only the in-process guards (blocklists, regexes): cheap enough for an answer's text
    /// so far. Only a block is counted.
    pub async fn screen_local(
        &self,
        org: OrgId,
        subject: Subject,
        text: &str,
    ) -> Result<Screening> {
        self.run_guards(org, subject, text, Reach::Local).await
    }

    /// Whether `org` has an enabled guard that asks another service.
    pub async fn has_remote_guards(&self, org: OrgId) -> Result<bool> {
        Ok(self.org_guards(org).await?.has_remote())
    }

    async fn run_guards(
        &self,
        org: OrgId,
        _subject: Subject,
        text: &str,
        reach: Reach,
    ) -> Result<Screening> {
        let guards = self.org_guards(org).await?;
        if guards.is_empty() {
            return Ok(Screening::Allow);
        }
        let mut counts: Vec<(GuardId, GuardCounts)> = Vec::new();
        let mut flagged = Vec::new();
        let mut verdict = None;
        for g in &guards.guards {
            let (objects, fail) = match &g.check {
                Check::Remote { guard, fail } => {
                    if reach == Reach::Local {
                        continue;
                    }
                    (self.ask_remote(guard, text).await.map(|a| a.objects), *fail)
                }
                Check::Agent { agent_id, fail } => {
                    if reach == Reach::Local {
                        continue;
                    }
                    (
                        self.ask_guard_agent(org, g.id, *agent_id, text).await,
                        *fail,
                    )
                }
                _ => (Ok(g.local_objects(text) == Some(true)), FailMode::Open),
            };
            let decision = match objects {
                Ok(false) => Decision::Allowed,
                Ok(true) if g.mode == GuardMode::Flag => {
                    flagged.push(g.id);
                    Decision::Flagged
                }
                Ok(true) => Decision::Blocked,
                Err(e) => {
                    tracing::warn!(guard = %g.id, error = %e, "a content guard's check failed");
                    Decision::Error
                }
            };
            let blocks = decision == Decision::Blocked
                || (decision == Decision::Error && fail == FailMode::Closed);
            if reach == Reach::All || decision == Decision::Blocked {
                counts.push((g.id, GuardCounts::one(decision)));
            }
            if blocks {
                verdict = Some(Screening::Block {
                    guard: g.id,
                    name: g.name.clone(),
                });
                break;
            }
        }
        self.guard_counts.add(&counts);
        Ok(verdict.unwrap_or(if flagged.is_empty() {
            Screening::Allow
        } else {
            Screening::Flag(flagged)
        }))
    }

    /// A remote check, within the guard's timeout whatever the checker does.
    async fn ask_remote(
        &self,
        guard: &RemoteGuard,
        text: &str,
    ) -> std::result::Result<RemoteAnswer, RemoteFailure> {
        let grace = guard.timeout + std::time::Duration::from_millis(250);
        match tokio::time::timeout(grace, self.remote.objects(guard, text)).await {
            Ok(answer) => answer,
            Err(_) => Err(RemoteFailure("no answer in time".into())),
        }
    }

    /// A guard agent's check (AGENT-5): the agent (still one of `org`'s) with its opened key,
    /// its tokens reserved against its and the org's budgets (a spent budget is a failed
    /// check), the call, then the tokens used settled and the call logged for its usage.
    async fn ask_guard_agent(
        &self,
        org: OrgId,
        guard: GuardId,
        agent_id: uuid::Uuid,
        text: &str,
    ) -> std::result::Result<bool, RemoteFailure> {
        let fail = |why: &str| RemoteFailure(why.to_owned());
        let agent = match self.store.agent(agent_id).await {
            Ok(a) if a.org_id == org => a,
            Ok(_) | Err(StoreError::NotFound) => return Err(fail("the guard's agent is gone")),
            Err(_) => return Err(fail("the guard's agent could not be read")),
        };
        let api_key = (self.open_agent_key(&agent).await)
            .map_err(|_| fail("the guard agent's key could not be opened"))?;
        let estimate = i64::try_from(text.chars().count().div_ceil(3))
            .unwrap_or(i64::MAX)
            .saturating_add(AGENT_GUARD_PROMPT_TOKENS);
        let reservation = match self.reserve_agent_tokens(&agent, estimate).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => return Err(fail("the guard agent's token budget is used up")),
            Err(_) => return Err(fail("the guard agent's budget could not be read")),
        };
        let remote = RemoteGuard {
            id: guard,
            target: RemoteTarget::Agent {
                endpoint: agent.endpoint.clone(),
                model: agent.model.clone(),
                api_key,
            },
            timeout: AGENT_GUARD_TIMEOUT,
        };
        let started = std::time::Instant::now();
        let answer = self.ask_remote(&remote, text).await;
        let latency_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let as_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        // Without the provider's count, the prompt is counted as estimated.
        let tokens = match &answer {
            Ok(RemoteAnswer {
                tokens: Some((i, o)),
                ..
            }) => (as_i64(*i), as_i64(*o)),
            _ => (estimate, 0),
        };
        let settled =
            (self.settle_agent_tokens(&reservation, tokens.0.saturating_add(tokens.1))).await;
        let recorded =
            (self.record_agent_call(agent.id, latency_ms, tokens, answer.is_err())).await;
        if let Err(e) = settled.and(recorded) {
            tracing::warn!(%guard, error = %e, "a guard agent's tokens could not be counted");
        }
        answer.map(|a| a.objects)
    }

    /// Screens a post's content (HTML on its text): a block is 422 `content_blocked` naming
    /// the guard; the guards that flagged it otherwise.
    pub(super) async fn screen_post(
        &self,
        org: OrgId,
        content: &str,
        format: MessageFormat,
    ) -> Result<Vec<GuardId>> {
        match self
            .screen(org, Subject::Message, &screened_text(content, format))
            .await?
        {
            Screening::Allow => Ok(Vec::new()),
            Screening::Flag(guards) => Ok(guards),
            Screening::Block { name, .. } => Err(blocked_error(&name)),
        }
    }

    /// Queues a delivered message for review by each of `guards` (an open flag of the same
    /// message by the same guard is not queued twice).
    pub async fn flag_message(
        &self,
        org: OrgId,
        message: &Message,
        guards: &[GuardId],
    ) -> Result<()> {
        if guards.is_empty() {
            return Ok(());
        }
        let known = self.org_guards(org).await?;
        let now = self.clock.now();
        let mut flags = Vec::with_capacity(guards.len());
        for id in guards {
            let name = match known.guards.iter().find(|g| g.id == *id) {
                Some(g) => g.name.clone(),
                None => self.store.guard(*id).await.map_err(guard_missing)?.name,
            };
            flags.push(NewFlag {
                id: FlagId::new(),
                org_id: org,
                guard_id: *id,
                guard_name: name,
                message_id: message.id,
                conversation_id: message.conversation_id,
                author_id: message.author.id,
                created_at: now,
            });
        }
        Ok(self.store.add_flags(&flags).await?)
    }

    /// [`Self::flag_message`] for a message just delivered: the message stands whatever
    /// happens here, so a failure to queue its flags is logged (never its content), not
    /// answered.
    pub(super) async fn queue_flags(&self, org: OrgId, message: &Message, guards: &[GuardId]) {
        if let Err(e) = self.flag_message(org, message, guards).await {
            tracing::error!(error = %e, message = %message.id, "a flagged message could not be queued for review");
        }
    }

    /// The org's review queue: open (or resolved) flags, newest first, each with its message.
    pub async fn flags(
        &self,
        actor: &Actor,
        org: OrgId,
        resolved: bool,
        before: Option<FlagId>,
        limit: i64,
    ) -> Result<Vec<FlagItem>> {
        self.require_guards(actor, org, false).await?;
        let flags = self.store.flags(org, resolved, before, limit).await?;
        let mut items = Vec::with_capacity(flags.len());
        for flag in flags {
            let message = match self.store.message(flag.message_id).await {
                Ok(m) => Some(m),
                Err(StoreError::NotFound) => None,
                Err(e) => return Err(e.into()),
            };
            items.push(FlagItem { flag, message });
        }
        Ok(items)
    }

    /// Closes a flag: `dismissed` keeps the message; `removed` deletes it as a moderator
    /// deletion does (tombstone, `MESSAGE_DELETE`, audit `message.moderated`) and closes the
    /// message's other open flags too. 409 `flag_resolved` when someone resolved it first.
    pub async fn resolve_flag(
        &self,
        actor: &Actor,
        org: OrgId,
        id: FlagId,
        resolution: Resolution,
    ) -> Result<FlagItem> {
        self.require_guards(actor, org, true).await?;
        let flag = match self.store.flag(id).await {
            Ok(f) if f.org_id == org => f,
            Ok(_) | Err(StoreError::NotFound) => return Err(ServiceError::NotFound("flag")),
            Err(e) => return Err(e.into()),
        };
        let audit = self
            .audit(actor, "flag.resolved")
            .resource("flag", id)
            .org(org)
            .detail(serde_json::json!({
                "resolution": resolution.as_str(),
                "message_id": flag.message_id,
                "conversation_id": flag.conversation_id,
                "guard_id": flag.guard_id,
            }));
        let resolved = self
            .store
            .resolve_flag(
                FlagResolution {
                    id,
                    by: actor.user.id,
                    resolution,
                    at: self.clock.now(),
                },
                &[audit],
            )
            .await?
            .ok_or_else(|| {
                ServiceError::conflict("flag_resolved", "this flag was resolved already")
            })?;
        let message = match resolution {
            Resolution::Dismissed => self.store.message(flag.message_id).await.ok(),
            Resolution::Removed => Some(self.remove_flagged(actor, &flag).await?),
        };
        Ok(FlagItem {
            flag: resolved,
            message,
        })
    }

    /// Deletes a flagged message as a moderator would.
    async fn remove_flagged(&self, actor: &Actor, flag: &Flag) -> Result<Message> {
        let audit = self
            .audit(actor, "message.moderated")
            .org(flag.org_id)
            .resource("message", flag.message_id)
            .detail(serde_json::json!({
                "conversation_id": flag.conversation_id,
                "author_id": flag.author_id,
                "flag_id": flag.id,
            }));
        let (deleted, freed) = self
            .store
            .delete_message(flag.message_id, self.clock.now(), &[audit])
            .await
            .map_err(ServiceError::missing("message"))?;
        self.emit(crate::event::Event::conversation(
            "MESSAGE_DELETE",
            deleted.conversation_id,
            &deleted,
        ));
        self.free(freed).await;
        Ok(deleted)
    }

    /// Totals over every guard of the server (`GET /admin/stats`).
    pub async fn guard_totals(&self, _admin: &ServerAdmin) -> Result<GuardTotals> {
        self.flush_guard_counts().await?;
        Ok(self.store.guard_totals().await?)
    }
}
