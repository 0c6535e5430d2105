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

mod flags;
mod screening;

use super::{of_org, Actor, Result, Services};
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

/// A field given that the guard's kind does not have.
fn not_of_kind(field: &str, kind: GuardKind) -> ServiceError {
    ServiceError::invalid(
        field,
        "not_for_this_kind",
        format!("a {} guard has no `{field}`", kind.as_str()),
    )
}

/// The text a post is screened on: HTML reduced to what a reader sees — its visible text, then
/// each link's target on a line of its own (where a link leads is posted as much as its label).
#[must_use]
pub fn screened_text(content: &str, format: MessageFormat) -> std::borrow::Cow<'_, str> {
    match format {
        MessageFormat::Text => std::borrow::Cow::Borrowed(content),
        MessageFormat::Html => {
            let mut text = crate::sanitize::html_text(content);
            for link in crate::sanitize::html_links(content) {
                text.push('\n');
                text.push_str(&link);
            }
            std::borrow::Cow::Owned(text)
        }
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

impl Services {
    /// Sets the checks that reach other services (the server's, through its SSRF guard).
    #[must_use]
    pub fn with_remote_screen(mut self, remote: Arc<dyn RemoteScreen>) -> Self {
        self.remote = remote;
        self
    }

    /// Guard `id` of `org` (404 for another org's), once `actor` may manage the org's guards.
    async fn org_guard(&self, actor: &Actor, org: OrgId, id: GuardId) -> Result<Guard> {
        self.require_org_settings(actor, org, OrgAction::ManageGuards, true)
            .await?;
        of_org(self.store.guard(id).await, org, |g| g.org_id, "guard")
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
        self.require_org_settings(actor, org, OrgAction::ManageGuards, true)
            .await?;
        let rules = new.rules.validated()?;
        self.check_guard_agent(org, &rules).await?;
        if new.api_key.is_some() && rules.kind() != GuardKind::ModerationEndpoint {
            return Err(not_of_kind("api_key", rules.kind()));
        }
        // The cap (MAX_GUARDS_PER_ORG) is the store's to enforce, atomically.
        let existing = self.store.guards(org).await?;
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
        self.require_org_settings(actor, org, OrgAction::ManageGuards, false)
            .await?;
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
        if let GuardRules::ModerationEndpoint { url, .. } = &guard.rules {
            super::agents::key_stays_with_its_origin(
                "url",
                url,
                patch.url.as_deref(),
                guard.has_api_key,
                patch.api_key.is_some(),
            )?;
        }
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
            .map_err(ServiceError::missing("guard"))?;
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
            .map_err(ServiceError::missing("guard"))?;
        self.guards_changed(org);
        Ok(())
    }
}
