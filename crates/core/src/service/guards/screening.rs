//! Screening: the org's guards compiled (cached), run in order on a text, remote checks asked
//! through the injected `RemoteScreen`, and what a post's screening answers.

use super::{blocked_error, key_ref, screened_text};
use crate::cache::Guards as GuardsKind;
use crate::error::ServiceError;
use crate::guards::*;
use crate::ids::*;
use crate::service::{Result, Services};
use crate::store::guards::*;
use crate::types::MessageFormat;
use std::sync::Arc;

/// What a guard agent's call adds to the text's tokens in a reservation: the instruction, the
/// delimiters with their nonce (named twice in the instruction too) and the one-word answer.
const AGENT_GUARD_PROMPT_TOKENS: i64 = 200;

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
    /// The org's enabled guards, compiled: from the cache when it holds them.
    pub(super) async fn org_guards(&self, org: OrgId) -> Result<Arc<OrgGuards>> {
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
                    Some(sealed) => Some(
                        self.open_sealed_text(key_ref(g.id).binding(), &sealed)
                            .await?,
                    ),
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
        let folded = if guards.has_local() {
            crate::guards::fold(text)
        } else {
            std::borrow::Cow::Borrowed(text)
        };
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
                _ => (
                    Ok(g.local_objects(text, &folded) == Some(true)),
                    FailMode::Open,
                ),
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
        // The agent and its key from one read (DATA-3): never a key with another endpoint.
        let (agent, api_key) = match self.agent_for_call(agent_id).await {
            Ok(Some((a, key))) if a.org_id == org => (a, key),
            Ok(_) => return Err(fail("the guard's agent is gone")),
            Err(_) => return Err(fail("the guard's agent or its key could not be read")),
        };
        // At most a token a UTF-8 byte (AGENT-4: what is held bounds what is spent; a
        // character count would undercount CJK text and emoji).
        let estimate = i64::try_from(text.len())
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
    pub(in crate::service) async fn screen_post(
        &self,
        org: OrgId,
        content: &str,
        format: MessageFormat,
    ) -> Result<Vec<GuardId>> {
        // Without guards the text to screen (for HTML: a parse of the message) is not made.
        if self.org_guards(org).await?.is_empty() {
            return Ok(Vec::new());
        }
        match self
            .screen(org, Subject::Message, &screened_text(content, format))
            .await?
        {
            Screening::Allow => Ok(Vec::new()),
            Screening::Flag(guards) => Ok(guards),
            Screening::Block { name, .. } => Err(blocked_error(&name)),
        }
    }
}
