//! The model-provider client (`conclave_server::agents::provider`) against the fake provider
//! for every script, through the agents' SSRF guard; and the fake itself against the official
//! `openai` Python client, so the fake speaks what real clients read.

use crate::llm::{FakeLlm, Script, PROVIDER_TEXT};
use conclave_server::agents::provider::{
    complete_chat, stream_chat, ChatEvent, ChatMessage, ChatRequest, ChatStream, ProviderError,
    ProviderLimits, Role, Usage,
};
use conclave_server::config::{Config, RuntimeConfig};
use conclave_server::outbound::{AddressClass, OutboundError, OutboundGuard, Refusal};
use secrecy::SecretString;
use std::time::{Duration, Instant};

/// The agents' guard as the server builds it, letting through the fake's address and port.
fn agent_guard(llm: &FakeLlm) -> OutboundGuard {
    let config = Config {
        agent_allow_cidrs: vec!["127.0.0.1/32".parse().unwrap()],
        agent_allow_ports: vec![llm.port],
        ..Config::default()
    };
    let runtime = RuntimeConfig::try_from(config).unwrap();
    OutboundGuard::new(runtime.agents.outbound).unwrap()
}

fn request(llm: &FakeLlm, key: Option<&str>) -> ChatRequest {
    ChatRequest {
        endpoint: url::Url::parse(&llm.url()).unwrap(),
        api_key: key.map(SecretString::from),
        model: "fake-model".into(),
        messages: vec![
            ChatMessage {
                role: Role::System,
                content: "Be brief.".into(),
                name: None,
            },
            ChatMessage {
                role: Role::User,
                content: "Hi".into(),
                name: Some("alice".into()),
            },
        ],
        temperature: Some(0.25),
        max_tokens: Some(64),
    }
}

const LIMITS: ProviderLimits = ProviderLimits {
    request_timeout: Duration::from_secs(10),
    max_answer: Duration::from_secs(20),
    max_response_bytes: 1024 * 1024,
};

/// Every event of `stream` until its end or first error.
async fn drain(stream: &mut ChatStream) -> (Vec<ChatEvent>, Option<ProviderError>) {
    let mut events = Vec::new();
    while let Some(next) = stream.next().await {
        match next {
            Ok(e) => events.push(e),
            Err(e) => return (events, Some(e)),
        }
    }
    (events, None)
}

fn delta(s: &str) -> ChatEvent {
    ChatEvent::Delta(s.into())
}

#[tokio::test]
async fn a_streamed_answer_arrives_delta_by_delta_with_its_usage() {
    let llm = FakeLlm::start().await;
    let guard = agent_guard(&llm);
    llm.answer(Script::Stream {
        chunks: vec!["Hel", "lo", " wörld 👋"],
        delay: Duration::from_millis(20),
        usage: (12, 4),
    });
    let mut stream = stream_chat(&guard, &request(&llm, Some("sk-test")), LIMITS)
        .await
        .unwrap();
    let (events, error) = drain(&mut stream).await;
    assert_eq!(error, None);
    let usage = ChatEvent::Usage(Usage {
        prompt_tokens: 12,
        completion_tokens: 4,
    });
    assert_eq!(
        events,
        [delta("Hel"), delta("lo"), delta(" wörld 👋"), usage]
    );
    assert_eq!(stream.text(), "Hello wörld 👋");
    assert!(stream.next().await.is_none(), "nothing after [DONE]");
    // Exactly the Chat Completions body, and the key as a bearer token.
    let seen = llm.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].body,
        serde_json::json!({
            "model": "fake-model",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi", "name": "alice"},
            ],
            "stream": true,
            "stream_options": {"include_usage": true},
            "temperature": 0.25,
            "max_tokens": 64,
        })
    );
    assert_eq!(seen[0].authorization.as_deref(), Some("Bearer sk-test"));
    // Without a key, no Authorization header at all.
    let mut stream = stream_chat(&guard, &request(&llm, None), LIMITS)
        .await
        .unwrap();
    drain(&mut stream).await;
    assert_eq!(llm.requests()[1].authorization, None);
}

#[tokio::test]
async fn the_key_goes_to_the_endpoint_only_not_where_it_redirects() {
    let llm = FakeLlm::start().await;
    let elsewhere = FakeLlm::start().await;
    let config = Config {
        agent_allow_cidrs: vec!["127.0.0.1/32".parse().unwrap()],
        agent_allow_ports: vec![llm.port, elsewhere.port],
        ..Config::default()
    };
    let guard =
        OutboundGuard::new(RuntimeConfig::try_from(config).unwrap().agents.outbound).unwrap();
    llm.answer(Script::Redirect {
        location: format!("{}/chat/completions", elsewhere.url()),
    });
    let mut stream = stream_chat(&guard, &request(&llm, Some("sk-only-here")), LIMITS)
        .await
        .unwrap();
    assert_eq!(drain(&mut stream).await.1, None);
    assert_eq!(stream.text(), "Hello there");
    let first = llm.requests();
    assert_eq!(
        first[0].authorization.as_deref(),
        Some("Bearer sk-only-here")
    );
    let second = elsewhere.requests();
    assert_eq!(second.len(), 1, "the redirect was followed");
    assert_eq!(
        second[0].authorization, None,
        "the key stayed with the endpoint"
    );
}

#[tokio::test]
async fn a_plain_answer_is_read_whole() {
    let llm = FakeLlm::start().await;
    let guard = agent_guard(&llm);
    llm.by_default(Script::says(&["al", "low"]));
    for _ in 0..2 {
        let answer = complete_chat(&guard, &request(&llm, Some("k")), LIMITS).await;
        assert_eq!(answer.unwrap().0, "allow");
    }
    let (text, usage) = complete_chat(&guard, &request(&llm, Some("k")), LIMITS)
        .await
        .unwrap();
    assert_eq!(text, "allow");
    assert_eq!(
        usage,
        Some(Usage {
            prompt_tokens: 7,
            completion_tokens: 3
        })
    );
    let body = &llm.requests()[0].body;
    assert_eq!(body["stream"], false);
    assert!(body.get("stream_options").is_none(), "{body}");
}

#[tokio::test]
async fn errors_and_garbage_say_nothing_the_provider_said() {
    let llm = FakeLlm::start().await;
    let guard = agent_guard(&llm);
    for status in [400, 401, 429, 500, 503] {
        llm.answer(Script::Error { status });
        let e = stream_chat(&guard, &request(&llm, Some("k")), LIMITS)
            .await
            .unwrap_err();
        assert_eq!(e, ProviderError::Http { status });
        assert!(!format!("{e} {e:?}").contains(PROVIDER_TEXT));
        llm.answer(Script::Error { status });
        let e = complete_chat(&guard, &request(&llm, Some("k")), LIMITS)
            .await
            .unwrap_err();
        assert_eq!(e, ProviderError::Http { status });
    }
    llm.answer(Script::Garbage);
    let mut stream = stream_chat(&guard, &request(&llm, None), LIMITS)
        .await
        .unwrap();
    assert_eq!(
        drain(&mut stream).await,
        (vec![], Some(ProviderError::Malformed))
    );
    assert!(stream.next().await.is_none(), "nothing after an error");
    llm.answer(Script::Garbage);
    let e = complete_chat(&guard, &request(&llm, None), LIMITS)
        .await
        .unwrap_err();
    assert_eq!(e, ProviderError::Malformed);
}

#[tokio::test]
async fn a_stream_cut_before_done_is_malformed_and_keeps_its_text() {
    let llm = FakeLlm::start().await;
    let guard = agent_guard(&llm);
    llm.answer(Script::BrokenMidStream);
    let mut stream = stream_chat(&guard, &request(&llm, None), LIMITS)
        .await
        .unwrap();
    let (events, error) = drain(&mut stream).await;
    assert_eq!(events, [delta("Hel"), delta("lo")]);
    assert_eq!(error, Some(ProviderError::Malformed));
    assert_eq!(stream.text(), "Hello");
    assert!(stream.next().await.is_none());
}

#[tokio::test]
async fn no_head_in_time_and_no_end_in_time_are_timeouts() {
    let llm = FakeLlm::start().await;
    let guard = agent_guard(&llm);
    let quick = ProviderLimits {
        request_timeout: Duration::from_millis(300),
        ..LIMITS
    };
    let started = Instant::now();
    llm.answer(Script::Hang);
    let e = stream_chat(&guard, &request(&llm, None), quick)
        .await
        .unwrap_err();
    assert_eq!(e, ProviderError::Timeout);
    assert_eq!(e.reason(), "timeout");
    llm.answer(Script::Hang);
    let e = complete_chat(&guard, &request(&llm, None), quick)
        .await
        .unwrap_err();
    assert_eq!(e, ProviderError::Timeout);
    assert!(started.elapsed() < Duration::from_secs(5));
    // An answer that never ends is cut at the caller's maximum answer time.
    let short = ProviderLimits {
        max_answer: Duration::from_millis(400),
        ..LIMITS
    };
    llm.answer(Script::Endless);
    let started = Instant::now();
    let mut stream = stream_chat(&guard, &request(&llm, None), short)
        .await
        .unwrap();
    let (events, error) = drain(&mut stream).await;
    assert_eq!(error, Some(ProviderError::Timeout));
    assert!(!events.is_empty() && stream.text().starts_with("more "));
    assert!(started.elapsed() < Duration::from_secs(5));
    // And one past the byte cap is abandoned there.
    let small = ProviderLimits {
        max_response_bytes: 8 * 1024,
        ..LIMITS
    };
    llm.answer(Script::Endless);
    let mut stream = stream_chat(&guard, &request(&llm, None), small)
        .await
        .unwrap();
    assert_eq!(drain(&mut stream).await.1, Some(ProviderError::TooLarge));
}

#[tokio::test]
async fn a_private_endpoint_needs_the_agents_own_allowlist() {
    let llm = FakeLlm::start().await;
    // The server's default: nothing private.
    let closed = RuntimeConfig::try_from(Config {
        agent_allow_ports: vec![llm.port],
        ..Config::default()
    })
    .unwrap();
    // The webhook allowlist is for webhooks only.
    let webhooks_only = RuntimeConfig::try_from(Config {
        webhook_allow_cidrs: vec!["127.0.0.1/32".parse().unwrap()],
        webhook_allow_ports: vec![llm.port],
        agent_allow_ports: vec![llm.port],
        ..Config::default()
    })
    .unwrap();
    let loopback = ProviderError::Refused(OutboundError::Refused(Refusal::Address(
        AddressClass::Loopback,
    )));
    for runtime in [closed, webhooks_only] {
        let guard = OutboundGuard::new(runtime.agents.outbound).unwrap();
        let e = stream_chat(&guard, &request(&llm, Some("sk-secret")), LIMITS)
            .await
            .unwrap_err();
        assert_eq!(e, loopback);
        assert_eq!(e.reason(), "endpoint_refused");
        let e = complete_chat(&guard, &request(&llm, Some("sk-secret")), LIMITS)
            .await
            .unwrap_err();
        assert_eq!(e, loopback);
    }
    // Nor does the agents' allowlist open anything for webhooks.
    let agents_only = RuntimeConfig::try_from(Config {
        agent_allow_cidrs: vec!["127.0.0.1/32".parse().unwrap()],
        webhook_allow_ports: vec![llm.port],
        agent_allow_ports: vec![llm.port],
        ..Config::default()
    })
    .unwrap();
    let webhook_guard = OutboundGuard::new(agents_only.outbound).unwrap();
    assert!(webhook_guard.check(&llm.url()).await.is_err());
    assert!(
        llm.requests().is_empty(),
        "nothing refused reached the endpoint, key and all"
    );
}

#[tokio::test]
async fn the_official_openai_client_reads_the_fake() {
    let Some(_) = crate::python::python("openai", "import openai", "") else {
        return;
    };
    let llm = FakeLlm::start().await;
    llm.answer(Script::says(&["Hello", " there"]));
    llm.answer(Script::says(&["Hello", " there"]));
    llm.answer(Script::Error { status: 401 });
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/openai-check.py");
    let url = llm.url();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .args([script, &url, "sk-openai-check"])
            .output()
            .expect("python3 runs")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "openai-check.py failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
    let seen = llm.requests();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[0].body["stream"], true);
    assert_eq!(seen[0].body["stream_options"]["include_usage"], true);
    for s in &seen {
        assert_eq!(s.authorization.as_deref(), Some("Bearer sk-openai-check"));
    }
}
