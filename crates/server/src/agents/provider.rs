//! The model-provider client (AGENT-1, AGENT-3): OpenAI Chat Completions, the protocol OpenAI,
//! Ollama, vLLM, llama.cpp server and LiteLLM speak. Every call goes through the agents' own
//! SSRF guard (`AppState::agent_outbound`).
//!
//! Streaming: `POST {endpoint}/chat/completions` with `"stream": true` and
//! `"stream_options": {"include_usage": true}`; the answer is Server-Sent Events (`sse`), each
//! `data` a JSON chunk whose `choices[0].delta.content` is the next piece of text (absent or
//! null in the role-only first chunk), then a chunk with `usage` and no choices, then
//! `data: [DONE]`. A stream that ends before `[DONE]` is `Malformed`, the text so far kept
//! ([`ChatStream::text`]) for the caller to decide.
//!
//! What the provider says is never shown: a non-2xx answer is `Http { status }` (a little of
//! its body read and dropped), anything unreadable `Malformed`. The API key goes only in the
//! `Authorization` header of the request to the endpoint and never into `Debug`, a log or an
//! error.

use super::sse::EventReader;
use crate::outbound::{Limits, OutboundError, OutboundGuard, OutboundRequest, StreamingResponse};
use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::time::Duration;

/// Of an error answer, at most this much is read (and dropped).
const ERROR_BODY_BYTES: usize = 4 * 1024;

/// One call to a model.
#[derive(Clone)]
pub struct ChatRequest {
    /// The base URL, e.g. `https://api.openai.com/v1`; the client POSTs
    /// `{endpoint}/chat/completions` (its query, if any, kept).
    pub endpoint: url::Url,
    pub api_key: Option<SecretString>,
    pub model: String,
    pub messages: Vec<ChatMessage>,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
}

/// Content stays out of logs: `Debug` shows the endpoint, the model and how many messages.
impl std::fmt::Debug for ChatRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatRequest")
            .field("endpoint", &self.endpoint.as_str())
            .field("api_key", &self.api_key.as_ref().map(|_| "[REDACTED]"))
            .field("model", &self.model)
            .field("messages", &self.messages.len())
            .field("temperature", &self.temperature)
            .field("max_tokens", &self.max_tokens)
            .finish()
    }
}

/// Who wrote a message of the context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

/// One message of the context.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
    /// The participant's name (`^[a-zA-Z0-9_-]{1,64}$` for OpenAI), when the caller sets one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Content stays out of logs: `Debug` shows the role and the length.
impl std::fmt::Debug for ChatMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatMessage")
            .field("role", &self.role)
            .field("content_chars", &self.content.chars().count())
            .field("name", &self.name)
            .finish()
    }
}

/// Tokens the provider says a call used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// What a streamed answer yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatEvent {
    Delta(String),
    Usage(Usage),
}

/// Why a call failed. Never carries what the provider said.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The endpoint's URL is not allowed (the SSRF guard's rules and the agents' allowlist).
    #[error("the model endpoint is not allowed: {0}")]
    Refused(OutboundError),
    #[error("the model endpoint did not answer in time")]
    Timeout,
    #[error("the model endpoint answered HTTP {status}")]
    Http { status: u16 },
    #[error("the model endpoint's answer could not be read")]
    Malformed,
    #[error("the model endpoint's answer is too large")]
    TooLarge,
    #[error("the model endpoint could not be reached")]
    Transport,
}

impl ProviderError {
    /// A short reason for a failed answer's `status_reason` (AGENT-3).
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Refused(_) => "endpoint_refused",
            Self::Timeout => "timeout",
            Self::Http { .. } | Self::Malformed | Self::Transport => "provider_error",
            Self::TooLarge => "too_large",
        }
    }
}

impl From<OutboundError> for ProviderError {
    fn from(e: OutboundError) -> Self {
        match e {
            OutboundError::BadUrl(_) | OutboundError::Refused(_) => Self::Refused(e),
            OutboundError::Timeout(_) => Self::Timeout,
            OutboundError::TooLarge(_) => Self::TooLarge,
            OutboundError::Unresolvable
            | OutboundError::TooManyRedirects(_)
            | OutboundError::Transport(_) => Self::Transport,
        }
    }
}

/// How long a call may take and how much it may read.
#[derive(Debug, Clone, Copy)]
pub struct ProviderLimits {
    /// Until the response head (`CONCLAVE_AGENT_REQUEST_TIMEOUT_SECS`).
    pub request_timeout: Duration,
    /// The whole answer (`CONCLAVE_AGENT_MAX_ANSWER_SECS`).
    pub max_answer: Duration,
    /// The whole response body.
    pub max_response_bytes: usize,
}

impl ProviderLimits {
    /// The configured times with a 4 MiB body cap.
    #[must_use]
    pub fn of(settings: &super::AgentSettings) -> Self {
        Self {
            request_timeout: settings.request_timeout,
            max_answer: settings.max_answer,
            max_response_bytes: 4 * 1024 * 1024,
        }
    }
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

/// The request body, exactly as Chat Completions takes it.
#[derive(Serialize)]
struct Body<'a> {
    model: &'a str,
    messages: &'a [ChatMessage],
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<ChunkChoice>,
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct ChunkChoice {
    delta: Option<Delta>,
}

#[derive(Deserialize)]
struct Delta {
    content: Option<String>,
}

#[derive(Deserialize)]
struct Completion {
    choices: Vec<CompletionChoice>,
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct CompletionChoice {
    message: CompletionMessage,
}

#[derive(Deserialize)]
struct CompletionMessage {
    content: Option<String>,
}

/// `{endpoint}/chat/completions`, the endpoint's query kept.
fn completions_url(endpoint: &url::Url) -> url::Url {
    let mut url = endpoint.clone();
    let path = format!("{}/chat/completions", endpoint.path().trim_end_matches('/'));
    url.set_path(&path);
    url
}

/// Sends `req` (streamed or not) and answers the response once its head has come: a 2xx one,
/// or `Http { status }` with a little of the body read and dropped.
async fn send(
    guard: &OutboundGuard,
    req: &ChatRequest,
    limits: ProviderLimits,
    stream: bool,
) -> Result<StreamingResponse, ProviderError> {
    let deadline = tokio::time::Instant::now() + limits.max_answer;
    let body = Body {
        model: &req.model,
        messages: &req.messages,
        stream,
        stream_options: stream.then_some(StreamOptions {
            include_usage: true,
        }),
        temperature: req.temperature,
        max_tokens: req.max_tokens,
    };
    let body = serde_json::to_vec(&body).map_err(|_| ProviderError::Malformed)?;
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(key) = &req.api_key {
        let mut value = HeaderValue::try_from(format!("Bearer {}", key.expose_secret()))
            .map_err(|_| ProviderError::Refused(OutboundError::BadUrl("the API key")))?;
        value.set_sensitive(true);
        headers.insert(AUTHORIZATION, value);
    }
    let mut outbound = OutboundRequest::post(
        completions_url(&req.endpoint).as_str(),
        headers,
        Bytes::from(body),
    );
    outbound.limits = Limits {
        timeout: limits.request_timeout,
        max_response_bytes: limits.max_response_bytes,
    };
    let mut response = guard.open(outbound, deadline).await?;
    if !response.status.is_success() {
        let status = response.status.as_u16();
        let mut read = 0;
        while read < ERROR_BODY_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => read += chunk.len(),
                _ => break,
            }
        }
        return Err(ProviderError::Http { status });
    }
    Ok(response)
}

/// Starts a streamed answer.
pub async fn stream_chat(
    guard: &OutboundGuard,
    req: &ChatRequest,
    limits: ProviderLimits,
) -> Result<ChatStream, ProviderError> {
    let response = send(guard, req, limits, true).await?;
    Ok(ChatStream {
        response,
        reader: EventReader::default(),
        queue: VecDeque::new(),
        text: String::new(),
        state: State::Reading,
    })
}

/// Non-streaming, for a guard agent's allow/deny answer: the text and the usage.
pub async fn complete_chat(
    guard: &OutboundGuard,
    req: &ChatRequest,
    limits: ProviderLimits,
) -> Result<(String, Option<Usage>), ProviderError> {
    let mut response = send(guard, req, limits, false).await?;
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        body.extend_from_slice(&chunk);
    }
    let completion: Completion =
        serde_json::from_slice(&body).map_err(|_| ProviderError::Malformed)?;
    let first = completion
        .choices
        .into_iter()
        .next()
        .ok_or(ProviderError::Malformed)?;
    let text = untrusted_text(first.message.content.unwrap_or_default());
    Ok((text, completion.usage))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Reading,
    /// `[DONE]` came: what is queued is the rest.
    Done,
    /// An error was answered: nothing more.
    Failed,
}

/// A streamed answer, read with [`ChatStream::next`].
pub struct ChatStream {
    response: StreamingResponse,
    reader: EventReader,
    queue: VecDeque<ChatEvent>,
    /// Every delta so far, joined.
    text: String,
    state: State,
}

/// Content stays out of logs: `Debug` shows the state and how much text came.
impl std::fmt::Debug for ChatStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatStream")
            .field("state", &self.state)
            .field("text_bytes", &self.text.len())
            .field("queued", &self.queue.len())
            .finish_non_exhaustive()
    }
}

impl ChatStream {
    /// The next delta or the usage; `None` after `[DONE]` (or after an error). A stream that
    /// ends before `[DONE]` answers `Malformed` once, [`ChatStream::text`] keeping what came.
    pub async fn next(&mut self) -> Option<Result<ChatEvent, ProviderError>> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Some(Ok(event));
            }
            if self.state != State::Reading {
                return None;
            }
            let read = match self.response.chunk().await {
                Ok(Some(bytes)) => self.take(&bytes),
                Ok(None) => Err(ProviderError::Malformed),
                Err(e) => Err(e.into()),
            };
            if let Err(e) = read {
                self.state = State::Failed;
                return Some(Err(e));
            }
        }
    }

    /// The text of every delta so far.
    #[must_use]
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Reads the events `bytes` complete into the queue.
    fn take(&mut self, bytes: &[u8]) -> Result<(), ProviderError> {
        for data in self.reader.feed(bytes) {
            if self.state == State::Done {
                break;
            }
            if data == "[DONE]" {
                self.state = State::Done;
                continue;
            }
            let (content, usage) = read_chunk(&data)?;
            if let Some(content) = content {
                self.text.push_str(&content);
                self.queue.push_back(ChatEvent::Delta(content));
            }
            if let Some(usage) = usage {
                self.queue.push_back(ChatEvent::Usage(usage));
            }
        }
        Ok(())
    }
}

/// One streamed chunk's `data`: its text (none when absent or empty), made safe to store
/// ([`untrusted_text`]), and its usage.
fn read_chunk(data: &str) -> Result<(Option<String>, Option<Usage>), ProviderError> {
    let chunk: Chunk = serde_json::from_str(data).map_err(|_| ProviderError::Malformed)?;
    let content = chunk
        .choices
        .into_iter()
        .next()
        .and_then(|c| c.delta)
        .and_then(|d| d.content)
        .filter(|c| !c.is_empty())
        .map(untrusted_text);
    Ok((content, chunk.usage))
}

/// What a model endpoint wrote is untrusted input: a NUL (valid in JSON as `\u0000`) becomes
/// U+FFFD, as it can be neither stored (PostgreSQL's text cannot hold it) nor a message's
/// content (CORE-5). Everything else is kept as written.
fn untrusted_text(text: String) -> String {
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_is_the_base_plus_chat_completions() {
        for (base, want) in [
            (
                "https://api.openai.com/v1",
                "https://api.openai.com/v1/chat/completions",
            ),
            (
                "https://api.openai.com/v1/",
                "https://api.openai.com/v1/chat/completions",
            ),
            (
                "http://127.0.0.1:11434/v1?api-version=2024",
                "http://127.0.0.1:11434/v1/chat/completions?api-version=2024",
            ),
            (
                "https://llm.example",
                "https://llm.example/chat/completions",
            ),
        ] {
            let url = url::Url::parse(base).unwrap();
            assert_eq!(completions_url(&url).as_str(), want, "{base}");
        }
    }

    #[test]
    fn secrets_and_content_stay_out_of_debug() {
        let req = ChatRequest {
            endpoint: url::Url::parse("https://llm.example/v1").unwrap(),
            api_key: Some(SecretString::from("sk-very-secret")),
            model: "m".into(),
            messages: vec![ChatMessage {
                role: Role::User,
                content: "private words".into(),
                name: None,
            }],
            temperature: None,
            max_tokens: None,
        };
        let shown = format!("{req:?}");
        assert!(!shown.contains("sk-very-secret") && !shown.contains("private words"));
        assert!(shown.contains("[REDACTED]"));
        let e = ProviderError::Http { status: 401 };
        assert_eq!(e.to_string(), "the model endpoint answered HTTP 401");
        assert_eq!(e.reason(), "provider_error");
    }

    #[test]
    fn nul_in_a_streamed_delta_becomes_the_replacement_character() {
        let (content, usage) =
            read_chunk(r#"{"choices":[{"index":0,"delta":{"content":"a\u0000b\u0000"}}]}"#)
                .unwrap();
        assert_eq!(content.as_deref(), Some("a\u{FFFD}b\u{FFFD}"));
        assert_eq!(usage, None);
        // Other text, the role-only chunk and the usage chunk are read as before.
        let (content, _) =
            read_chunk(r#"{"choices":[{"delta":{"content":"tab\tand \u00e9"}}]}"#).unwrap();
        assert_eq!(content.as_deref(), Some("tab\tand \u{e9}"));
        let (content, _) =
            read_chunk(r#"{"choices":[{"delta":{"role":"assistant","content":""}}]}"#).unwrap();
        assert_eq!(content, None);
        let (content, usage) =
            read_chunk(r#"{"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3}}"#)
                .unwrap();
        assert_eq!(content, None);
        assert_eq!(
            usage,
            Some(Usage {
                prompt_tokens: 7,
                completion_tokens: 3
            })
        );
        assert_eq!(read_chunk("{not json"), Err(ProviderError::Malformed));
        assert_eq!(untrusted_text("\0".to_owned()), "\u{FFFD}");
    }

    #[test]
    fn the_body_is_what_chat_completions_takes() {
        let messages = [ChatMessage {
            role: Role::System,
            content: "be brief".into(),
            name: None,
        }];
        let body = Body {
            model: "gpt",
            messages: &messages,
            stream: true,
            stream_options: Some(StreamOptions {
                include_usage: true,
            }),
            temperature: Some(0.5),
            max_tokens: None,
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            serde_json::json!({
                "model": "gpt",
                "messages": [{"role": "system", "content": "be brief"}],
                "stream": true,
                "stream_options": {"include_usage": true},
                "temperature": 0.5,
            })
        );
    }
}
