//! Streaming AI agents as background load (issue 14: "many agents streaming at once must not slow
//! ordinary message delivery"). The bench serves an OpenAI-compatible Chat Completions endpoint
//! of its own on loopback — every answer is `tokens` chunks, one every `interval`, then a
//! `usage` chunk and `[DONE]`, as the protocol sends them — creates one agent per stream whose
//! endpoint is that server, and keeps every agent answering: a driver asks its agent a question
//! in their direct conversation, waits until the model has sent the whole answer, and asks again.
//! The model server counts the tokens it streamed, so the window can report tokens per second
//! and server CPU per token.

use crate::api::{Api, World};
use crate::cli::AgentLoad;
use crate::gateway::Shared;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

/// What the model server and the drivers share.
struct Model {
    tokens: usize,
    interval: Duration,
    /// Chunks with content sent, over all answers.
    streamed: AtomicU64,
    /// Answers streamed to the end (`[DONE]` sent).
    answers: AtomicU64,
    /// One per agent: woken when an answer of that agent has been sent to the end.
    done: Vec<Notify>,
}

fn chunk(delta: &Value, finish: Option<&str>, usage: Option<Value>) -> Bytes {
    let mut v = json!({
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "bench",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    });
    if let Some(u) = usage {
        v["choices"] = json!([]);
        v["usage"] = u;
    }
    Bytes::from(format!("data: {v}\n\n"))
}

/// `POST /a/{agent}/v1/chat/completions`: one streamed answer of `tokens` chunks.
async fn complete(State(model): State<Arc<Model>>, Path(agent): Path<usize>) -> Response {
    let total = model.tokens;
    let stream = futures::stream::unfold(0usize, move |k| {
        let model = model.clone();
        async move {
            let bytes = match k {
                0 => chunk(&json!({"role": "assistant", "content": ""}), None, None),
                k if k <= total => {
                    tokio::time::sleep(model.interval).await;
                    model.streamed.fetch_add(1, Ordering::Relaxed);
                    chunk(&json!({"content": format!("w{k} ")}), None, None)
                }
                k if k == total + 1 => chunk(&json!({}), Some("stop"), None),
                k if k == total + 2 => chunk(
                    &json!({}),
                    None,
                    Some(json!({"prompt_tokens": 20, "completion_tokens": total,
                                "total_tokens": total + 20})),
                ),
                k if k == total + 3 => {
                    model.answers.fetch_add(1, Ordering::Relaxed);
                    if let Some(n) = model.done.get(agent) {
                        n.notify_one();
                    }
                    Bytes::from_static(b"data: [DONE]\n\n")
                }
                _ => return None,
            };
            Some((Ok::<_, std::convert::Infallible>(bytes), k + 1))
        }
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(stream))
        .unwrap_or_default()
}

/// The agents kept streaming, until dropped.
pub struct Streaming {
    model: Arc<Model>,
    stop: watch::Sender<bool>,
    drivers: JoinSet<()>,
    pub agents: usize,
}

impl Streaming {
    /// Tokens the model has streamed so far.
    pub fn tokens(&self) -> u64 {
        self.model.streamed.load(Ordering::Relaxed)
    }

    /// Answers streamed to the end so far.
    pub fn answers(&self) -> u64 {
        self.model.answers.load(Ordering::Relaxed)
    }

    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        while self.drivers.join_next().await.is_some() {}
    }
}

/// Starts the model server on `127.0.0.1:<model_port>`, creates `a.streaming_agents` agents in
/// the world's org (driven by the first users of the world, one direct conversation each) and
/// starts their drivers. The server must allow the endpoint
/// (`CONCLAVE_AGENT_ALLOW_CIDRS=127.0.0.1/32 CONCLAVE_AGENT_ALLOW_PORTS=<model_port>`, as
/// scripts/bench.sh sets) and stream that many answers at once (`agent_max_concurrent`).
pub async fn start(
    api: &Api,
    world: &World,
    a: &AgentLoad,
    shared: &Arc<Shared>,
) -> Result<Streaming, String> {
    let n = a.streaming_agents;
    let model = Arc::new(Model {
        tokens: a.agent_tokens.max(1),
        interval: Duration::from_millis(a.agent_token_interval_ms),
        streamed: AtomicU64::new(0),
        answers: AtomicU64::new(0),
        done: (0..n).map(|_| Notify::new()).collect(),
    });
    let addr = SocketAddr::from(([127, 0, 0, 1], a.model_port));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("model server: cannot listen on {addr}: {e}"))?;
    let app = Router::new()
        .route("/a/{agent}/v1/chat/completions", post(complete))
        .with_state(model.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let (stop, stopped) = watch::channel(false);
    let mut drivers = JoinSet::new();
    for i in 0..n {
        let driver = &world.users[i % world.users.len()];
        let bot = api
            .create_agent(
                &world.owner_token,
                &world.org,
                &format!("bench agent {i}"),
                &format!("http://{addr}/a/{i}/v1"),
                model.tokens,
            )
            .await?;
        let conv = api.create_direct(&driver.token, &world.org, &bot).await?;
        let (api, token, model, shared, mut stopped) = (
            api.clone(),
            driver.token.clone(),
            model.clone(),
            shared.clone(),
            stopped.clone(),
        );
        drivers.spawn(async move {
            // Long enough for a whole answer on a loaded server; a lost answer is counted and
            // the driver asks again.
            let patience = model.interval * u32::try_from(model.tokens).unwrap_or(u32::MAX)
                + Duration::from_secs(20);
            let mut k = 0u64;
            while !*stopped.borrow() {
                k += 1;
                if !api
                    .send_message(&token, &conv, &format!("question {k}"), &shared.errors)
                    .await
                {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
                tokio::select! {
                    () = model.done[i].notified() => {}
                    () = tokio::time::sleep(patience) => shared.errors.add("agent: no answer in time"),
                    _ = stopped.changed() => break,
                }
                // The answer is complete at the model; the server persists its end right after.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
    }
    eprintln!(
        "  agents: {n} agents streaming {} tokens every {} ms each, model at http://{addr}",
        model.tokens, a.agent_token_interval_ms
    );
    Ok(Streaming {
        model,
        stop,
        drivers,
        agents: n,
    })
}
