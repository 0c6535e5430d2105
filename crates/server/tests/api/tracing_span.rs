//! CORE-4 on the real router: the request span wraps the handler, so what the store logs while
//! serving a request (sqlx's statement lines) carries that request's id.

use crate::helpers::{spawn_app, Backend};
use std::sync::{Arc, Mutex};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// An event's target and the `request_id` of the span it was emitted in, if any.
type Line = (String, Option<String>);

/// Every event logged on this thread while it is the default subscriber.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Line>>>);

/// A span's `request_id` field, kept in its extensions.
struct RequestId(String);

struct RequestIdField(Option<String>);

impl tracing::field::Visit for RequestIdField {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "request_id" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> tracing_subscriber::Layer<S> for Recorder {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: Context<'_, S>,
    ) {
        let mut field = RequestIdField(None);
        attrs.record(&mut field);
        if let (Some(value), Some(span)) = (field.0, ctx.span(id)) {
            span.extensions_mut().insert(RequestId(value));
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        let request_id = ctx.event_scope(event).and_then(|scope| {
            scope
                .from_root()
                .find_map(|span| span.extensions().get::<RequestId>().map(|r| r.0.clone()))
        });
        let target = event.metadata().target().to_owned();
        let mut lines = self.0.lock().unwrap_or_else(|e| e.into_inner());
        lines.push((target, request_id));
    }
}

/// The server runs on this test's thread (a current-thread runtime), so the thread's default
/// subscriber sees its lines; PostgreSQL logs its statements on the task that runs them.
#[tokio::test]
async fn store_lines_of_a_request_carry_its_id() {
    let recorder = Recorder::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(recorder.clone()));
    let Some(app) = spawn_app(Backend::Postgres).await else {
        return;
    };
    let alice = app.user("alice").await;
    // Other tests of this binary run on other threads without a subscriber; a callsite they
    // reach first may have cached "no interest" before this thread's subscriber was counted
    // (tracing caches interest per callsite, process-wide). Recompute it with ours in place.
    tracing::callsite::rebuild_interest_cache();
    let res = app
        .client
        .get(format!("{}/api/v1/users/@me", app.base))
        .bearer_auth(&alice.token)
        .header("x-request-id", "trace-me-1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-request-id"], "trace-me-1");
    let lines = recorder.0.lock().unwrap().clone();
    assert!(
        lines
            .iter()
            .any(|(target, id)| target.starts_with("sqlx") && id.as_deref() == Some("trace-me-1")),
        "a statement of the request is logged with its id: {:?}",
        lines
            .iter()
            .filter(|(_, id)| id.as_deref() == Some("trace-me-1"))
            .collect::<Vec<_>>()
    );
}
