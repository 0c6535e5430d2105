//! A fake model provider: an in-process server on 127.0.0.1 speaking OpenAI Chat Completions
//! (`POST /v1/chat/completions`), streamed and not, checked against the official `openai`
//! Python client (`provider::the_official_openai_client_reads_the_fake`). Tests script each
//! answer — a stream of chunks, an error in OpenAI's shape, garbage, a hang, an endless
//! stream, a stream cut before `[DONE]`, a redirect — one per request from a queue, then a
//! default, and
//! read back every request body and `Authorization` header received, and how many streams
//! the client dropped before their end.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the fake answers one request.
#[derive(Debug, Clone)]
pub enum Script {
    /// Streamed: a role-only chunk, one chunk per piece (each after `delay`), a `stop`
    /// chunk, the usage chunk when `stream_options.include_usage` asks, `[DONE]`. Not
    /// streamed: one completion with the pieces joined and the usage.
    Stream {
        chunks: Vec<&'static str>,
        delay: Duration,
        usage: (u64, u64),
    },
    /// An error answer in OpenAI's shape `{"error": {"message", "type", "code"}}`.
    Error { status: u16 },
    /// 200 with a body that is not Chat Completions.
    Garbage,
    /// Never sends a response head.
    Hang,
    /// Sends deltas forever.
    Endless,
    /// Sends two deltas, then closes without `[DONE]`.
    BrokenMidStream,
    /// `307 Temporary Redirect` to `location` (the request is to be sent there again).
    Redirect { location: String },
}

impl Script {
    /// A quick stream of `chunks` using 7 prompt and 3 completion tokens.
    pub fn says(chunks: &[&'static str]) -> Script {
        Script::Stream {
            chunks: chunks.to_vec(),
            delay: Duration::ZERO,
            usage: (7, 3),
        }
    }
}

/// What the fake received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub body: Value,
    pub authorization: Option<String>,
    /// Path and query.
    pub uri: String,
    /// Every header, as text.
    pub headers: Vec<(String, String)>,
}

/// Text a test looks for where provider text must never appear.
pub const PROVIDER_TEXT: &str = "provider-only error text";

#[derive(Default)]
struct Inner {
    queue: Mutex<VecDeque<Script>>,
    default: Mutex<Option<Script>>,
    seen: Mutex<Vec<Seen>>,
    /// Scripted streams whose client went away before their last frame.
    cut_short: std::sync::atomic::AtomicUsize,
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub struct FakeLlm {
    pub port: u16,
    inner: Arc<Inner>,
}

impl FakeLlm {
    pub async fn start() -> FakeLlm {
        let inner = Arc::new(Inner::default());
        let router = Router::new()
            .route("/v1/chat/completions", post(completions))
            .with_state(inner.clone());
        let port = crate::helpers::serve_locally(router).await;
        FakeLlm { port, inner }
    }

    /// The base URL a client is configured with (`…/v1`).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// Answers the next request not scripted yet with `script`.
    pub fn answer(&self, script: Script) {
        locked(&self.inner.queue).push_back(script);
    }

    /// Answers every request the queue does not with `script` (else a short stream).
    pub fn by_default(&self, script: Script) {
        *locked(&self.inner.default) = Some(script);
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<Seen> {
        locked(&self.inner.seen).clone()
    }

    /// How many scripted streams (`Stream`, `Garbage`) the client dropped before their end.
    pub fn cut_short(&self) -> usize {
        self.inner
            .cut_short
            .load(std::sync::atomic::Ordering::SeqCst)
    }
}

fn error(status: u16, message: &str, kind: &str, code: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({"error": {"message": message, "type": kind, "code": code}});
    (status, axum::Json(body)).into_response()
}

async fn completions(
    State(inner): State<Arc<Inner>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return error(
            400,
            "We could not parse the JSON body of your request.",
            "invalid_request_error",
            "invalid_json",
        );
    };
    locked(&inner.seen).push(Seen {
        body: body.clone(),
        authorization,
        uri: uri.to_string(),
        headers: crate::helpers::header_pairs(&headers),
    });
    if !body["model"].is_string() || !body["messages"].is_array() {
        return error(
            400,
            "'model' and 'messages' are required",
            "invalid_request_error",
            "missing_required_parameter",
        );
    }
    let script = locked(&inner.queue)
        .pop_front()
        .or_else(|| locked(&inner.default).clone())
        .unwrap_or_else(|| Script::says(&["Hello", " there"]));
    let model = body["model"].as_str().unwrap_or_default().to_owned();
    let streamed = body["stream"] == true;
    let include_usage = body["stream_options"]["include_usage"] == true;
    match script {
        Script::Error { status } => {
            let (kind, code) = match status {
                401 => ("invalid_request_error", "invalid_api_key"),
                429 => ("requests", "rate_limit_exceeded"),
                400..=499 => ("invalid_request_error", "bad_request"),
                _ => ("server_error", "server_error"),
            };
            error(status, PROVIDER_TEXT, kind, code)
        }
        Script::Hang => {
            std::future::pending::<()>().await;
            StatusCode::OK.into_response()
        }
        Script::Garbage if streamed => sse(
            vec![(Duration::ZERO, "data: {not json\n\n".into())],
            inner.clone(),
        ),
        Script::Garbage => (StatusCode::OK, "not json at all").into_response(),
        Script::Stream {
            chunks,
            delay,
            usage,
        } if streamed => {
            let mut frames = vec![(Duration::ZERO, data(&role_chunk(&model)))];
            frames.extend(
                chunks
                    .iter()
                    .map(|c| (delay, data(&content_chunk(&model, c)))),
            );
            frames.push((Duration::ZERO, data(&stop_chunk(&model))));
            if include_usage {
                frames.push((Duration::ZERO, data(&usage_chunk(&model, usage))));
            }
            frames.push((Duration::ZERO, "data: [DONE]\n\n".into()));
            sse(frames, inner.clone())
        }
        Script::Stream { chunks, usage, .. } => {
            axum::Json(completion(&model, &chunks.concat(), usage)).into_response()
        }
        Script::Endless => endless(model),
        Script::Redirect { location } => {
            (StatusCode::TEMPORARY_REDIRECT, [("location", location)]).into_response()
        }
        Script::BrokenMidStream => sse(
            vec![
                (Duration::ZERO, data(&role_chunk(&model))),
                (Duration::ZERO, data(&content_chunk(&model, "Hel"))),
                (Duration::ZERO, data(&content_chunk(&model, "lo"))),
            ],
            inner.clone(),
        ),
    }
}

fn data(v: &Value) -> String {
    format!("data: {v}\n\n")
}

fn chunk(model: &str, choices: Value, usage: Value) -> Value {
    json!({
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": model,
        "system_fingerprint": null,
        "choices": choices,
        "usage": usage,
    })
}

fn role_chunk(model: &str) -> Value {
    let choices = json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null}]);
    chunk(model, choices, Value::Null)
}

fn content_chunk(model: &str, text: &str) -> Value {
    let choices =
        json!([{"index": 0, "delta": {"content": text}, "logprobs": null, "finish_reason": null}]);
    chunk(model, choices, Value::Null)
}

fn stop_chunk(model: &str) -> Value {
    let choices = json!([{"index": 0, "delta": {}, "logprobs": null, "finish_reason": "stop"}]);
    chunk(model, choices, Value::Null)
}

fn usage_json((prompt, completion): (u64, u64)) -> Value {
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})
}

fn usage_chunk(model: &str, usage: (u64, u64)) -> Value {
    chunk(model, json!([]), usage_json(usage))
}

fn completion(model: &str, text: &str, usage: (u64, u64)) -> Value {
    json!({
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "system_fingerprint": null,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": text, "refusal": null},
            "logprobs": null,
            "finish_reason": "stop",
        }],
        "usage": usage_json(usage),
    })
}

/// A `text/event-stream` response sending each frame after its delay, then ending; counted
/// in `inner.cut_short` when the client goes away first.
fn sse(frames: Vec<(Duration, String)>, inner: Arc<Inner>) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    tokio::spawn(async move {
        for (delay, frame) in frames {
            tokio::time::sleep(delay).await;
            if tx.send(Bytes::from(frame)).await.is_err() {
                (inner.cut_short).fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                return;
            }
        }
    });
    stream_of(rx)
}

/// Deltas every 5 ms until the client goes away.
fn endless(model: String) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    tokio::spawn(async move {
        let mut frame = data(&role_chunk(&model));
        loop {
            if tx.send(Bytes::from(frame)).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
            frame = data(&content_chunk(&model, "more "));
        }
    });
    stream_of(rx)
}

fn stream_of(rx: tokio::sync::mpsc::Receiver<Bytes>) -> Response {
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::convert::Infallible>(b), rx))
    });
    (
        [
            ("content-type", "text/event-stream"),
            ("cache-control", "no-cache"),
        ],
        Body::from_stream(body),
    )
        .into_response()
}
