//! A local JWKS endpoint: serves the key set it was last given and counts its fetches.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Inner {
    body: Mutex<String>,
    fetches: AtomicUsize,
}

#[derive(Clone)]
pub struct JwksServer {
    pub port: u16,
    inner: Arc<Inner>,
}

impl JwksServer {
    pub async fn start(keys: serde_json::Value) -> Self {
        let inner = Arc::new(Inner::default());
        let state = inner.clone();
        let app = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || {
                let state = state.clone();
                async move {
                    state.fetches.fetch_add(1, Ordering::SeqCst);
                    let body = state.body.lock().unwrap().clone();
                    ([("content-type", "application/json")], body)
                }
            }),
        );
        let port = crate::helpers::serve_locally(app).await;
        let server = Self { port, inner };
        server.serve(keys);
        server
    }

    /// Serves `{"keys": keys}` from now on.
    pub fn serve(&self, keys: serde_json::Value) {
        *self.inner.body.lock().unwrap() = serde_json::json!({ "keys": keys }).to_string();
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/jwks.json", self.port)
    }

    pub fn fetches(&self) -> usize {
        self.inner.fetches.load(Ordering::SeqCst)
    }
}
