//! A stand-in identity provider for the JWKS tests: a loopback HTTP server (hyper 1)
//! serving JSON documents the test swaps at run time, counting the requests for each
//! path, able to go down (every connection closed without an answer) and come back.
//! Stopped when dropped.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// The provider's answer for one path.
#[derive(Clone)]
struct Document {
    body: Bytes,
    cache_control: Option<String>,
}

#[derive(Default)]
struct Shared {
    documents: Mutex<HashMap<String, Document>>,
    hits: Mutex<HashMap<String, usize>>,
    down: AtomicBool,
}

/// A running provider on `127.0.0.1`, on a port of its own.
pub struct Provider {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

/// Why a request got no answer: the provider is down. Hyper closes the connection.
#[derive(Debug)]
struct Down;

impl std::fmt::Display for Down {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the provider is down")
    }
}

impl std::error::Error for Down {}

impl Provider {
    /// Starts a provider serving nothing yet (404 for every path).
    ///
    /// Also sends the library's logs to the test output, filtered by `RUST_LOG`
    /// (`RUST_LOG=tower_jwt_revoke=debug cargo test --test jwks -- --nocapture`).
    pub async fn start() -> Self {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .try_init();
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared::default());
        let task = tokio::spawn(accept(listener, Arc::clone(&shared)));
        Self { addr, shared, task }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Serves `document` at `path` from now on, without `Cache-Control`.
    pub fn serve(&self, path: &str, document: &Value) {
        self.serve_with(path, document, None);
    }

    /// Serves `document` at `path` from now on, with this `Cache-Control`.
    pub fn serve_with(&self, path: &str, document: &Value, cache_control: Option<&str>) {
        self.serve_raw(path, document.to_string().into_bytes(), cache_control);
    }

    /// Serves these bytes at `path` from now on (malformed documents).
    pub fn serve_raw(&self, path: &str, body: Vec<u8>, cache_control: Option<&str>) {
        let document = Document {
            body: Bytes::from(body),
            cache_control: cache_control.map(str::to_owned),
        };
        self.shared
            .documents
            .lock()
            .unwrap()
            .insert(path.to_owned(), document);
    }

    /// How many requests asked for `path` so far (answered or not).
    pub fn hits(&self, path: &str) -> usize {
        self.shared.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    /// Takes the provider down (`true`: connections are closed unanswered) or up.
    pub fn set_down(&self, down: bool) {
        self.shared.down.store(down, Ordering::SeqCst);
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        // Dropping the accept loop drops its JoinSet, which aborts every connection.
        self.task.abort();
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = Arc::clone(&shared);
        connections.spawn(async move {
            let service = service_fn(move |request| {
                let answer = shared.answer(&request);
                async move { answer }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        while connections.try_join_next().is_some() {}
    }
}

impl Shared {
    fn answer(&self, request: &Request<Incoming>) -> Result<Response<Full<Bytes>>, Down> {
        let path = request.uri().path().to_owned();
        *self.hits.lock().unwrap().entry(path.clone()).or_default() += 1;
        if self.down.load(Ordering::SeqCst) {
            return Err(Down);
        }
        let document = self.documents.lock().unwrap().get(&path).cloned();
        let mut response = Response::builder();
        let body = match document {
            Some(document) => {
                response = response.header(CONTENT_TYPE, "application/json");
                if let Some(cache_control) = document.cache_control {
                    response = response.header(CACHE_CONTROL, cache_control);
                }
                document.body
            }
            None => {
                response = response.status(StatusCode::NOT_FOUND);
                Bytes::from_static(b"not found")
            }
        };
        Ok(response.body(Full::new(body)).expect("a valid response"))
    }
}
