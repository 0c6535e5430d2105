//! One agent's answer to one message (AGENT-3, AGENT-4): read what the agent may see, check the
//! limits, call the model and stream its answer into a message.
//!
//! In order: the context, read as the agent (`prepare_agent_call`: nothing when it may not
//! read the conversation); the per-user invocation limit (GCRA, keyed by user and agent,
//! shared through Redis in a cluster); the token budgets — the agent's and the org's this
//! month, one atomic reservation of an estimate (the prompt's size plus `max_output_tokens`)
//! settled with the provider's usage after; a slot of this node's `agent_slots`. Over a limit
//! the model is not called: the agent posts a short notice (a complete message) instead. Then
//! `open_stream` → `stream_chat` through the agent SSRF guard (the endpoint is checked again
//! here) → `stream_delta` per delta, dropping the provider stream when the answer is stopped →
//! `close_stream` complete, failed with a short reason, or stopped. Every call is logged for
//! the usage report (latency, tokens, failure); no message content is ever logged.

use crate::agents::provider::{
    stream_chat, ChatEvent, ChatMessage, ChatRequest, ProviderLimits, Role, Usage,
};
use crate::ratelimit::{Layer, Outcome, Quota};
use crate::state::AppState;
use conclave_core::guards::{Screening, Subject};
use conclave_core::service::agent_runs::{AgentTask, ContextLine, ContextRole, Prepared};
use conclave_core::service::{AnswerStream, Flow, StreamEnd};
use conclave_core::store::agents::{Agent, BudgetRefusal};
use conclave_core::{GuardId, OrgId};
use std::time::{Duration, Instant};

pub const ORG_BUDGET_NOTICE: &str =
    "I can't answer now: this organization's monthly AI token budget is used up.";
pub const AGENT_BUDGET_NOTICE: &str = "I can't answer now: my monthly AI token budget is used up.";
pub const RATE_NOTICE: &str =
    "I can't answer now: you have asked me too often in the last minute. Try again shortly.";
pub const BUSY_NOTICE: &str =
    "I can't answer now: too many answers are in progress. Try again shortly.";
pub const BLOCKED_NOTICE: &str =
    "I can't show my answer: this organization's content guards do not allow it.";

/// Notices about the invocation limit, per user and agent, at most this many a minute (so a
/// user cannot make an agent post notices without end).
const RATE_NOTICES_PER_MINUTE: u64 = 1;

/// The most tokens a prompt can take (AGENT-4: what is held must bound what is spent): a
/// byte-level tokenizer never makes more tokens than the text has UTF-8 bytes — a character
/// count would undercount CJK text or emoji, which take one to three tokens a character — plus
/// a few per message for its role and separators.
fn prompt_estimate(context: &[ContextLine]) -> i64 {
    let bytes: usize = context.iter().map(|l| l.content.len() + 8).sum();
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

fn chat_messages(context: Vec<ContextLine>) -> Vec<ChatMessage> {
    context
        .into_iter()
        .map(|l| ChatMessage {
            role: match l.role {
                ContextRole::System => Role::System,
                ContextRole::User => Role::User,
                ContextRole::Assistant => Role::Assistant,
            },
            content: l.content,
            name: l.name,
        })
        .collect()
}

/// Charges one invocation of `agent` by `user`: `false` when over `per_minute`.
async fn within(state: &AppState, what: &'static str, key: String, per_minute: u64) -> bool {
    let Some(quota) = Quota::new(per_minute, Duration::from_secs(60), per_minute) else {
        return true;
    };
    let layer = Layer { what, key, quota };
    matches!(state.limiter.check(&[layer]).await, Outcome::Allowed(_))
}

/// Answers `task`; every failure ends here, logged without content.
pub async fn answer(state: &AppState, task: AgentTask, per_minute: u64) {
    let agent = task.agent.id;
    if let Err(e) = run(state, task, per_minute).await {
        tracing::warn!(%agent, error = %e, "an agent's answer failed");
    }
}

async fn run(
    state: &AppState,
    task: AgentTask,
    per_minute: u64,
) -> Result<(), conclave_core::ServiceError> {
    let services = &state.services;
    let Some(prepared) = services.prepare_agent_call(&task).await? else {
        return Ok(());
    };
    let Prepared {
        actor,
        context,
        agent: read,
        ..
    } = prepared;
    let conv = task.message.conversation_id;
    let asker = task.message.author.id;
    let notice = |text: &'static str| {
        let actor = &actor;
        async move {
            (services.post_agent_notice(actor, conv, task.message.id, text)).await?;
            Ok::<(), conclave_core::ServiceError>(())
        }
    };
    // AGENT-4 counts per person. Every visitor of a widget key writes as the key's one visitor
    // account, so there a visitor is their conversation (one per visitor session, WEB-4): one
    // visitor cannot use up everyone else's allowance.
    let key = if task.widget {
        format!("agent:{}:visitor:{conv}", task.agent.id)
    } else {
        format!("agent:{}:user:{asker}", task.agent.id)
    };
    if !within(state, "the agent invocation limit", key.clone(), per_minute).await {
        let notices = format!("{key}:notice");
        if within(state, "agent notices", notices, RATE_NOTICES_PER_MINUTE).await {
            return notice(RATE_NOTICE).await;
        }
        return Ok(());
    }
    let estimate = |agent: &Agent, context: &[ContextLine]| {
        prompt_estimate(context).saturating_add(i64::from(agent.max_output_tokens))
    };
    let held = estimate(&read, &context);
    let mut reservation = match services.reserve_agent_tokens(&read, held).await? {
        Ok(r) => r,
        Err(BudgetRefusal::Org) => return notice(ORG_BUDGET_NOTICE).await,
        Err(BudgetRefusal::Agent) => return notice(AGENT_BUDGET_NOTICE).await,
    };
    let limits = ProviderLimits::of(&state.agents);
    let slot = tokio::time::timeout(
        limits.request_timeout,
        state.agent_slots.clone().acquire_owned(),
    )
    .await;
    let Ok(Ok(_slot)) = slot else {
        services.settle_agent_tokens(&reservation, 0).await?;
        return notice(BUSY_NOTICE).await;
    };
    // Read again now that the call goes out: what was deleted, edited or taken out of the
    // agent's reach while it waited for its slot is not sent to the model (AGENT-2, MSG-2) —
    // a question deleted meanwhile asks nothing, and its tokens are given back.
    let again = match services.prepare_agent_call(&task).await {
        Ok(again) => again,
        Err(e) => {
            services.settle_agent_tokens(&reservation, 0).await?;
            return Err(e);
        }
    };
    // DATA-3: the call is built from this read alone — the endpoint, model and limits with
    // the key read with them. The agent read when the message came (or before the wait) may
    // be older than a key stored since, and a key goes only where it was given for.
    let Some(Prepared {
        agent,
        api_key,
        context,
        ..
    }) = again
    else {
        return services.settle_agent_tokens(&reservation, 0).await;
    };
    let Ok(endpoint) = url::Url::parse(&agent.endpoint) else {
        services.settle_agent_tokens(&reservation, 0).await?;
        let e = conclave_core::ServiceError::Internal("a stored endpoint is no URL".into());
        return Err(e);
    };
    // Grown meanwhile (an edit, a larger `max_output_tokens`): held again for what it may take
    // now.
    if estimate(&agent, &context) > held {
        services.settle_agent_tokens(&reservation, 0).await?;
        reservation = match services
            .reserve_agent_tokens(&agent, estimate(&agent, &context))
            .await?
        {
            Ok(r) => r,
            Err(BudgetRefusal::Org) => return notice(ORG_BUDGET_NOTICE).await,
            Err(BudgetRefusal::Agent) => return notice(AGENT_BUDGET_NOTICE).await,
        };
    }
    let prompt_estimate = prompt_estimate(&context);
    // Within 0–2: exact enough as an f32.
    #[allow(clippy::cast_possible_truncation)]
    let temperature = agent.temperature.map(|t| t as f32);
    let request = ChatRequest {
        endpoint,
        api_key,
        model: agent.model.clone(),
        messages: chat_messages(context),
        temperature,
        max_tokens: u32::try_from(agent.max_output_tokens).ok(),
    };
    let started = Instant::now();
    // Whatever stops the answer before it starts gives the held tokens back (AGENT-4): the
    // conversation or the question deleted meanwhile, the agent made a Viewer, an archive.
    let mut stream = match services
        .open_stream(&actor, conv, Some(task.message.id))
        .await
    {
        Ok(stream) => stream,
        Err(e) => {
            services.settle_agent_tokens(&reservation, 0).await?;
            return match e {
                conclave_core::ServiceError::NotFound(_)
                | conclave_core::ServiceError::Forbidden { .. }
                | conclave_core::ServiceError::Invalid { .. } => Ok(()),
                other => Err(other),
            };
        }
    };
    let answered = stream_answer(state, (agent.org_id, &request), limits, &mut stream).await;
    let Answered {
        end,
        usage,
        blocked,
        flags,
    } = answered;
    let failed = matches!(end, StreamEnd::Failed(_));
    let latency_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    // Without the provider's usage, the text is counted as the prompt was estimated.
    let tokens = match usage {
        Some(u) => (
            i64::try_from(u.prompt_tokens).unwrap_or(i64::MAX),
            i64::try_from(u.completion_tokens).unwrap_or(i64::MAX),
        ),
        // Without the provider's usage, as much as the text could have taken (a token a
        // byte at most), never less: a budget is never spent past unawares.
        None => (
            prompt_estimate,
            i64::try_from(stream.text().len()).unwrap_or(i64::MAX),
        ),
    };
    // Counted before the answer's end is announced: whoever sees the end sees the usage.
    let settled = services
        .settle_agent_tokens(&reservation, tokens.0.saturating_add(tokens.1))
        .await;
    let recorded = (services.record_agent_call(agent.id, latency_ms, tokens, failed)).await;
    // WEB-4: an answer ending with the handoff marker hands the widget conversation to people.
    let handoff = task.widget && matches!(end, StreamEnd::Complete) && stream.take_handoff_marker();
    let closed = services.close_stream(stream, end).await?;
    if blocked {
        notice(BLOCKED_NOTICE).await?;
    }
    if handoff {
        services.widget_agent_handoff(&actor, conv).await?;
    }
    (services.flag_message(agent.org_id, &closed, &flags)).await?;
    settled.and(recorded)
}

/// How an answer ended: the stream's end, the provider's usage, whether a content guard
/// blocked it (AGENT-5), and the guards that flagged it.
struct Answered {
    end: StreamEnd,
    usage: Option<Usage>,
    blocked: bool,
    flags: Vec<GuardId>,
}

/// A guard's verdict on text about to be shown: `Err` ends the answer (blocked, or the guards
/// could not be asked), flags accumulate in `flags`.
fn judged(
    screening: Result<Screening, conclave_core::ServiceError>,
    flags: &mut Vec<GuardId>,
) -> Result<(), StreamEnd> {
    match screening {
        Ok(Screening::Allow) => Ok(()),
        Ok(Screening::Flag(by)) => {
            flags.extend(by);
            Ok(())
        }
        Ok(Screening::Block { .. }) => Err(StreamEnd::Failed(CONTENT_BLOCKED.to_owned())),
        Err(_) => Err(StreamEnd::Failed("guard_error".to_owned())),
    }
}

/// What a delta's `stream_delta` means for the answer: `Some` ends it (dropping the provider
/// stream closes the provider's connection).
fn shown(flow: Result<Flow, conclave_core::ServiceError>) -> Option<StreamEnd> {
    match flow {
        Ok(Flow::Continue) => None,
        Ok(Flow::Stopped) => Some(StreamEnd::Stopped),
        Err(_) => Some(StreamEnd::Failed("too_long".to_owned())),
    }
}

/// Whether an answer held back for screening is still wanted (`stream_check`): `Some` ends it
/// (dropping the provider stream closes the provider's connection).
fn wanted(flow: Result<Flow, conclave_core::ServiceError>) -> Option<StreamEnd> {
    match flow {
        Ok(Flow::Continue) => None,
        Ok(Flow::Stopped) => Some(StreamEnd::Stopped),
        Err(_) => Some(StreamEnd::Failed("store_error".to_owned())),
    }
}

/// The reason of an answer a content guard blocked.
const CONTENT_BLOCKED: &str = "content_blocked";

/// Streams the model's answer into `stream`, screened by the org's content guards (AGENT-5):
/// with only local guards (blocklists, regexes) the text so far is screened before each delta
/// goes out; when the org has a guard that asks another service, the whole answer is held and
/// screened once before anyone sees it — a stop or a deletion meanwhile, asked at every event,
/// drops the provider stream and the held text is never screened. A block ends the answer
/// (`content_blocked`).
async fn stream_answer(
    state: &AppState,
    (org, request): (OrgId, &ChatRequest),
    limits: ProviderLimits,
    stream: &mut AnswerStream,
) -> Answered {
    let services = &state.services;
    let mut usage = None;
    let mut flags = Vec::new();
    let reading = async {
        // Unknown (the guards could not be read): held and screened whole, the safe way.
        let whole = services.has_remote_guards(org).await.unwrap_or(true);
        let mut chat = match stream_chat(&state.agent_outbound, request, limits).await {
            Ok(chat) => chat,
            Err(e) => return StreamEnd::Failed(e.reason().to_owned()),
        };
        let mut held = String::new();
        loop {
            match chat.next().await {
                Some(Ok(ChatEvent::Delta(delta))) if whole => {
                    // Held back, so no `stream_delta` notices a stop: asked at every event, a
                    // stop or a deletion drops the provider's stream at once.
                    if let Some(end) = wanted(services.stream_check(stream).await) {
                        return end;
                    }
                    held.push_str(&delta);
                }
                Some(Ok(ChatEvent::Delta(delta))) => {
                    let so_far = format!("{}{delta}", stream.text());
                    let verdict = services.screen_local(org, Subject::AgentAnswer, &so_far);
                    if let Err(end) = judged(verdict.await, &mut flags) {
                        return end;
                    }
                    if let Some(end) = shown(services.stream_delta(stream, &delta).await) {
                        return end;
                    }
                }
                Some(Ok(ChatEvent::Usage(u))) => usage = Some(u),
                Some(Err(e)) => return StreamEnd::Failed(e.reason().to_owned()),
                None => {
                    if whole {
                        // A stopped or deleted answer is never sent to a guard.
                        if let Some(end) = wanted(services.stream_check(stream).await) {
                            return end;
                        }
                        let verdict = services.screen(org, Subject::AgentAnswer, &held);
                        if let Err(end) = judged(verdict.await, &mut flags) {
                            return end;
                        }
                        if !held.is_empty() {
                            if let Some(end) = shown(services.stream_delta(stream, &held).await) {
                                return end;
                            }
                        }
                    }
                    return StreamEnd::Complete;
                }
            }
        }
    };
    // The provider client bounds the answer too; this bounds the whole task.
    let bound = limits.max_answer + Duration::from_secs(1);
    let end = match tokio::time::timeout(bound, reading).await {
        Ok(end) => end,
        Err(_) => StreamEnd::Failed("timeout".to_owned()),
    };
    let blocked = end == StreamEnd::Failed(CONTENT_BLOCKED.to_owned());
    Answered {
        end,
        usage,
        blocked,
        flags,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_are_estimated_generously() {
        let line = |s: &str| ContextLine {
            role: ContextRole::User,
            name: None,
            content: s.to_owned(),
        };
        assert_eq!(prompt_estimate(&[]), 0);
        assert_eq!(prompt_estimate(&[line("abc")]), 3 + 8);
        assert!(prompt_estimate(&[line(&"x".repeat(3000))]) >= 1000);
        // CJK and emoji: one to three tokens a character, never more than their bytes.
        assert_eq!(prompt_estimate(&[line("漢字")]), 6 + 8);
        assert_eq!(prompt_estimate(&[line("👍")]), 4 + 8);
    }
}
