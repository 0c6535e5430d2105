//! A local webhook receiver: records every request (headers and raw body) and answers with the
//! statuses it was told to, then 200.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone)]
pub struct Received {
    /// Path and query, e.g. `/hook?n=3`.
    pub uri: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
}

#[derive(Default)]
struct Inner {
    got: Mutex<Vec<Received>>,
    /// Statuses to answer with, in order; 200 once empty (or `always` when set).
    script: Mutex<VecDeque<u16>>,
    always: Mutex<Option<u16>>,
}

#[derive(Clone)]
pub struct Receiver {
    pub port: u16,
    inner: Arc<Inner>,
}

async fn receive(
    State(inner): State<Arc<Inner>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    inner.got.lock().unwrap().push(Received {
        uri: uri.to_string(),
        headers: crate::helpers::header_pairs(&headers),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let next = inner.script.lock().unwrap().pop_front();
    let status = next.or(*inner.always.lock().unwrap()).unwrap_or(200);
    StatusCode::from_u16(status).unwrap()
}

impl Receiver {
    pub async fn start() -> Self {
        let inner = Arc::new(Inner::default());
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(inner.clone());
        let port = crate::helpers::serve_locally(app).await;
        Self { port, inner }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    /// The next answers, before 200s.
    pub fn answer(&self, statuses: &[u16]) {
        self.inner.script.lock().unwrap().extend(statuses);
    }

    /// Every answer from now on (`None`: 200).
    pub fn always(&self, status: Option<u16>) {
        *self.inner.always.lock().unwrap() = status;
    }

    pub fn received(&self) -> Vec<Received> {
        self.inner.got.lock().unwrap().clone()
    }
}
