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
use conclave_core::service::agent_runs::{AgentTask, ContextLine, ContextRole, Prepared};
use conclave_core::service::{AnswerStream, Flow, StreamEnd};
use conclave_core::store::agents::BudgetRefusal;
use std::time::{Duration, Instant};

pub const ORG_BUDGET_NOTICE: &str =
    "I can't answer now: this organization's monthly AI token budget is used up.";
pub const AGENT_BUDGET_NOTICE: &str = "I can't answer now: my monthly AI token budget is used up.";
pub const RATE_NOTICE: &str =
    "I can't answer now: you have asked me too often in the last minute. Try again shortly.";
pub const BUSY_NOTICE: &str =
    "I can't answer now: too many answers are in progress. Try again shortly.";

/// Notices about the invocation limit, per user and agent, at most this many a minute (so a
/// user cannot make an agent post notices without end).
const RATE_NOTICES_PER_MINUTE: u64 = 1;

/// Tokens a prompt is estimated at: a character count over three (most tokenizers average
/// about four characters a token in English; three leaves room) plus a few per message.
fn prompt_estimate(context: &[ContextLine]) -> i64 {
    let chars: usize = context.iter().map(|l| l.content.chars().count() + 12).sum();
    i64::try_from(chars.div_ceil(3)).unwrap_or(i64::MAX)
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
        api_key,
        context,
    } = prepared;
    let agent = &task.agent;
    let conv = task.message.conversation_id;
    let asker = task.message.author.id;
    let notice = |text: &'static str| {
        let actor = &actor;
        async move {
            (services.post_agent_notice(actor, conv, task.message.id, text)).await?;
            Ok::<(), conclave_core::ServiceError>(())
        }
    };
    let key = format!("agent:{}:user:{asker}", agent.id);
    if !within(state, "the agent invocation limit", key.clone(), per_minute).await {
        let notices = format!("{key}:notice");
        if within(state, "agent notices", notices, RATE_NOTICES_PER_MINUTE).await {
            return notice(RATE_NOTICE).await;
        }
        return Ok(());
    }
    let estimate = prompt_estimate(&context) + i64::from(agent.max_output_tokens);
    let reservation = match services.reserve_agent_tokens(agent, estimate).await? {
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
    let prompt_chars: usize = context.iter().map(|l| l.content.chars().count()).sum();
    let endpoint = url::Url::parse(&agent.endpoint)
        .map_err(|_| conclave_core::ServiceError::Internal("a stored endpoint is no URL".into()))?;
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
    let mut stream = services
        .open_stream(agent.user_id, conv, Some(task.message.id))
        .await?;
    let (end, usage) = stream_answer(state, &request, limits, &mut stream).await;
    let failed = matches!(end, StreamEnd::Failed(_));
    let latency_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    // Without the provider's usage, the text is counted as the prompt was estimated.
    let tokens = match usage {
        Some(u) => (
            i64::try_from(u.prompt_tokens).unwrap_or(i64::MAX),
            i64::try_from(u.completion_tokens).unwrap_or(i64::MAX),
        ),
        None => (
            i64::try_from(prompt_chars.div_ceil(3)).unwrap_or(i64::MAX),
            i64::try_from(stream.text().chars().count().div_ceil(3)).unwrap_or(i64::MAX),
        ),
    };
    // Counted before the answer's end is announced: whoever sees the end sees the usage.
    let settled = services
        .settle_agent_tokens(&reservation, tokens.0.saturating_add(tokens.1))
        .await;
    let recorded = (services.record_agent_call(agent.id, latency_ms, tokens, failed)).await;
    services.close_stream(stream, end).await?;
    settled.and(recorded)
}

/// Streams the model's answer into `stream`: how it ended and the usage the provider reported.
async fn stream_answer(
    state: &AppState,
    request: &ChatRequest,
    limits: ProviderLimits,
    stream: &mut AnswerStream,
) -> (StreamEnd, Option<Usage>) {
    let services = &state.services;
    let mut usage = None;
    let reading = async {
        let mut chat = match stream_chat(&state.agent_outbound, request, limits).await {
            Ok(chat) => chat,
            Err(e) => return StreamEnd::Failed(e.reason().to_owned()),
        };
        loop {
            match chat.next().await {
                Some(Ok(ChatEvent::Delta(delta))) => {
                    match services.stream_delta(stream, &delta).await {
                        Ok(Flow::Continue) => {}
                        // Dropping `chat` closes the provider's connection.
                        Ok(Flow::Stopped) => return StreamEnd::Stopped,
                        Err(_) => return StreamEnd::Failed("too_long".to_owned()),
                    }
                }
                Some(Ok(ChatEvent::Usage(u))) => usage = Some(u),
                Some(Err(e)) => return StreamEnd::Failed(e.reason().to_owned()),
                None => return StreamEnd::Complete,
            }
        }
    };
    // The provider client bounds the answer too; this bounds the whole task.
    let bound = limits.max_answer + Duration::from_secs(1);
    let end = match tokio::time::timeout(bound, reading).await {
        Ok(end) => end,
        Err(_) => StreamEnd::Failed("timeout".to_owned()),
    };
    (end, usage)
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
        assert_eq!(prompt_estimate(&[line("abc")]), 5);
        assert!(prompt_estimate(&[line(&"x".repeat(3000))]) >= 1000);
    }
}
