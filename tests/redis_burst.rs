//! Bursts of simultaneous requests on the Redis store, with Redis healthy: none may be
//! refused (issue #9). A private redis-server per test (see tests/support).
//!
//! These assert an outcome, not a speed: every request of every burst is answered.
//! The store keeps its default command timeout (150 ms), which is what refused requests
//! in the issue: a fixed timer over the whole command counted the queue of the burst in
//! this process, and a connection that took long was dropped in the middle of a burst.
//!
//! Most tests set the layer's own timer long ([`LAYER_TIMEOUT`]), so that the store's
//! verdict is what is tested. [`bursts_with_the_default_check_timeout_refuse_nothing`]
//! keeps the layer's default too (200 ms): the layer leaves the timing of a lookup to
//! the store (`RevocationStore::lookup_within`), which times Redis's silence, so a
//! burst queued in this process is not an outage there either.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use http::{Request, StatusCode, header};
use serde_json::json;
use tower::ServiceExt;
use tower_jwt_revoke::jsonwebtoken::{self, Algorithm, EncodingKey, Header};
use tower_jwt_revoke::store::RedisStore;
use tower_jwt_revoke::{JwtVerifier, RevocationLayer, VerificationKey};

const SECRET: &[u8] = b"redis-burst-test-secret-0123456789";
const BURST: usize = 2_000;
const BURSTS: usize = 8;
/// Long enough that the store, not the layer, decides whether Redis answered.
const LAYER_TIMEOUT: Duration = Duration::from_secs(2);

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn verifier() -> JwtVerifier {
    JwtVerifier::builder()
        .key(VerificationKey::hmac(Algorithm::HS256, SECRET).unwrap())
        .build()
        .unwrap()
}

fn token(n: usize) -> String {
    tower_jwt_revoke::install_crypto_provider();
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({ "sub": format!("user-{}", n % 50), "jti": uuid::Uuid::new_v4().to_string(), "iat": now(), "exp": now() + 600 }),
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

/// The store as an application builds it: defaults everywhere but the prefix.
fn default_store(server: &support::RedisServer) -> RedisStore {
    RedisStore::builder()
        .url(server.url())
        .prefix(support::unique_prefix())
        .build()
        .unwrap()
}

/// What one burst met: how many answers of each status, and how long it took.
struct Burst {
    ok: usize,
    unavailable: usize,
    other: Vec<StatusCode>,
    took: Duration,
}

/// Fires `BURST` requests at once (released together by a barrier) and counts the
/// answers.
async fn burst<S>(service: &S, tokens: &Arc<Vec<String>>) -> Burst
where
    S: tower::Service<Request<Body>, Response = http::Response<Body>, Error = std::convert::Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    let start = Arc::new(tokio::sync::Barrier::new(BURST + 1));
    let tasks: Vec<_> = (0..BURST)
        .map(|n| {
            let service = service.clone();
            let tokens = Arc::clone(tokens);
            let start = Arc::clone(&start);
            tokio::spawn(async move {
                let request = Request::get("/")
                    .header(header::AUTHORIZATION, format!("Bearer {}", tokens[n]))
                    .body(Body::empty())
                    .unwrap();
                start.wait().await;
                service.oneshot(request).await.unwrap().status()
            })
        })
        .collect();
    let began = Instant::now();
    start.wait().await;
    let mut result = Burst {
        ok: 0,
        unavailable: 0,
        other: Vec::new(),
        took: Duration::ZERO,
    };
    for task in tasks {
        match task.await.unwrap() {
            StatusCode::OK => result.ok += 1,
            StatusCode::SERVICE_UNAVAILABLE => result.unavailable += 1,
            other => result.other.push(other),
        }
    }
    result.took = began.elapsed();
    result
}

fn protected(
    store: RedisStore,
    check_timeout: Option<Duration>,
) -> impl tower::Service<
    Request<Body>,
    Response = http::Response<Body>,
    Error = std::convert::Infallible,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    let layer = RevocationLayer::new(verifier(), store);
    let layer = match check_timeout {
        Some(timeout) => layer.with_check_timeout(timeout),
        None => layer,
    };
    tower::ServiceBuilder::new()
        .layer(layer)
        .service_fn(|_request: Request<Body>| async { Ok(http::Response::new(Body::from("ok"))) })
}

static ALONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs `BURSTS` bursts and asserts that none was refused. `fresh_store` builds a new
/// (not yet connected) store for every burst, so each one starts cold; `check_timeout`
/// is the layer's (its default when `None`).
async fn bursts_refuse_nothing(fresh_store: bool, check_timeout: Option<Duration>) {
    // One burst at a time: two at once on a 2-core machine measure the machine.
    let _alone = ALONE.lock().await;
    capture_warnings();
    let server = redis_or_skip!(private);
    let tokens = Arc::new((0..BURST).map(token).collect::<Vec<_>>());
    let shared = protected(default_store(&server), check_timeout);
    let mut report = Vec::new();
    let mut refused = 0;
    for round in 0..BURSTS {
        let service = if fresh_store {
            protected(default_store(&server), check_timeout)
        } else {
            shared.clone()
        };
        let outcome = burst(&service, &tokens).await;
        assert!(
            outcome.other.is_empty(),
            "burst {round}: unexpected answers {:?}",
            outcome.other
        );
        assert_eq!(outcome.ok + outcome.unavailable, BURST);
        refused += outcome.unavailable;
        report.push(format!(
            "burst {round}: {} ok, {} refused (503), {:?}; {}",
            outcome.ok,
            outcome.unavailable,
            outcome.took,
            warnings()
        ));
        // Let the runtime settle between bursts, as separate bursts of traffic would.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("{}", report.join("\n"));
    assert_eq!(
        refused,
        0,
        "requests refused while Redis was healthy:\n{}",
        report.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_on_one_store_refuse_nothing_while_redis_is_healthy() {
    bursts_refuse_nothing(false, Some(LAYER_TIMEOUT)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_on_a_cold_store_refuse_nothing_while_redis_is_healthy() {
    bursts_refuse_nothing(true, Some(LAYER_TIMEOUT)).await;
}

/// The exact setting: layer and store at their defaults.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_with_the_default_check_timeout_refuse_nothing() {
    bursts_refuse_nothing(false, None).await;
}

static WARNINGS: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

struct Capture;

impl std::io::Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        WARNINGS.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Collects the library's warnings, to say why a request was refused.
fn capture_warnings() {
    let _ = tracing_subscriber::fmt()
        .with_writer(|| Capture)
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .try_init();
}

/// The warnings since the last call, counted by message.
fn warnings() -> String {
    let text = String::from_utf8(std::mem::take(&mut *WARNINGS.lock().unwrap())).unwrap_or_default();
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for line in text.lines() {
        // Drop the timestamp and level; keep what was said.
        let what = line.split_once(": ").map_or(line, |(_, rest)| rest);
        *counts.entry(what.to_owned()).or_default() += 1;
    }
    if counts.is_empty() {
        return "no warnings".to_owned();
    }
    counts
        .into_iter()
        .map(|(what, n)| format!("{n} x {what}"))
        .collect::<Vec<_>>()
        .join("; ")
}
