//! Open streams waiting for their tokens' revocation (`VerifiedToken::revoked`): what a
//! revocation costs with 0, 1k and 100k of them open (flat: a revocation finds its own
//! waiters by key, it does not look at the others), the memory each one takes, and a
//! unary response through the layer with the body option on and off.
//!
//! ```text
//! cargo bench --bench open_streams
//! cargo bench --bench open_streams --features tonic   # adds the gRPC unary rows
//! ```
//!
//! Ids: `revoke_other/{0,1000,100000}_waiters` (the in-memory store: one token
//! revocation of a token no stream holds), `unary/{http,grpc}/{ending_on,ending_off}`
//! (one request through the layer on the in-memory store, its body read to the end).
//! Before criterion runs, the bench prints the bytes each open waiter takes (a counting
//! allocator: the bytes still allocated after registering 100k waiters, over 100k) and
//! the time of 10k revocations with 1k and with 100k waiters open.

use std::alloc::{GlobalAlloc, Layout, System};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::task::{Context, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::Criterion;
use http::{Request, Response};
use http_body_util::BodyExt;
use tower::{Layer, ServiceExt};
use tower_jwt_revoke::jsonwebtoken::{self, Algorithm, EncodingKey, Header};
use tower_jwt_revoke::store::{InMemoryStore, RevocationStore};
use tower_jwt_revoke::{JwtVerifier, RevocationKey, RevocationLayer, Revoked, StreamEnding, VerificationKey};

mod common;

/// Counts the bytes allocated and not yet freed.
struct Counting;

static IN_USE: AtomicI64 = AtomicI64::new(0);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator, adding only relaxed counters.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        IN_USE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        IN_USE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        IN_USE.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const SECRET: &[u8] = b"open-streams-bench-secret-0123456789abcdef";

fn verifier() -> JwtVerifier {
    JwtVerifier::builder()
        .key(VerificationKey::hmac(Algorithm::HS256, SECRET).unwrap())
        .issuer("bench")
        .build()
        .unwrap()
}

/// A token of user `n`, in session `n`, valid for ten minutes.
fn token(n: usize) -> String {
    let now = common::now_secs();
    let claims = serde_json::json!({
        "sub": format!("user-{n}"), "sid": format!("session-{n}"), "jti": format!("token-{n}"),
        "iss": "bench", "iat": now, "exp": now + 600,
    });
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

/// `count` open waiters on `layer`'s store: futures made and polled once (registered).
fn open_waiters(layer: &RevocationLayer, count: usize) -> Vec<Pin<Box<Revoked>>> {
    let verifier = layer.verifier().clone();
    let tokens: Vec<_> = (0..count)
        .map(|n| layer.watched(verifier.verify(&token(n)).unwrap()))
        .collect();
    let mut context = Context::from_waker(Waker::noop());
    tokens
        .iter()
        .map(|token| {
            let mut revoked = Box::pin(token.revoked());
            assert!(revoked.as_mut().poll(&mut context).is_pending());
            revoked
        })
        .collect()
}

/// Bytes each open waiter takes: the future the stream holds and its entry in the
/// registry (the token itself, which the request carries anyway, left out).
fn bytes_per_waiter(runtime: &tokio::runtime::Runtime, count: usize) -> f64 {
    let _guard = runtime.enter();
    let store = InMemoryStore::new();
    let layer = RevocationLayer::new(verifier(), store.clone());
    let verifier = layer.verifier().clone();
    let tokens: Vec<_> = (0..count)
        .map(|n| layer.watched(verifier.verify(&token(n)).unwrap()))
        .collect();
    // A first waiter starts the sweeper, whose task is not per waiter.
    let warm = open_waiters(&layer, 1);
    let before = IN_USE.load(Ordering::Relaxed);
    let mut context = Context::from_waker(Waker::noop());
    let waiters: Vec<_> = tokens
        .iter()
        .map(|token| {
            let mut revoked = Box::pin(token.revoked());
            assert!(revoked.as_mut().poll(&mut context).is_pending());
            revoked
        })
        .collect();
    let after = IN_USE.load(Ordering::Relaxed);
    assert_eq!(store.watchers().unwrap().len(), count + 1);
    drop((waiters, warm));
    (after - before) as f64 / count as f64
}

/// The time of `revocations` token revocations of tokens no stream holds.
fn revocations_with(runtime: &tokio::runtime::Runtime, waiters: usize, revocations: u64) -> Duration {
    let _guard = runtime.enter();
    let store = InMemoryStore::new();
    let layer = RevocationLayer::new(verifier(), store.clone());
    let open = open_waiters(&layer, waiters);
    let started = Instant::now();
    runtime.block_on(async {
        for n in 0..revocations {
            let key = RevocationKey::token(Some("bench"), &format!("other-{n}"));
            store.revoke_token(&key, Duration::from_secs(600)).await.unwrap();
        }
    });
    let elapsed = started.elapsed();
    drop(open);
    elapsed
}

fn main() {
    tower_jwt_revoke::install_crypto_provider();
    let runtime = common::runtime();
    let mut criterion: Criterion = common::criterion();

    let per_waiter = bytes_per_waiter(&runtime, 100_000);
    println!("open_streams: {per_waiter:.0} bytes per open waiter (100k registered)");
    for waiters in [1_000, 100_000] {
        let took = revocations_with(&runtime, waiters, 10_000);
        println!(
            "open_streams: 10k revocations of other tokens with {waiters} waiters open: {took:?} ({:.2} µs each)",
            took.as_secs_f64() * 1e6 / 10_000.0
        );
    }

    let mut group = criterion.benchmark_group("revoke_other");
    for waiters in [0, 1_000, 100_000] {
        let _guard = runtime.enter();
        let store = InMemoryStore::new();
        let layer = RevocationLayer::new(verifier(), store.clone());
        let open = open_waiters(&layer, waiters);
        let mut n = 0u64;
        group.bench_function(format!("{waiters}_waiters"), |b| {
            b.to_async(&runtime).iter(|| {
                n += 1;
                let key = RevocationKey::token(Some("bench"), &n.to_string());
                let store = store.clone();
                async move { store.revoke_token(&key, Duration::from_secs(600)).await.unwrap() }
            })
        });
        drop(open);
    }
    group.finish();

    let token = token(0);
    let mut group = criterion.benchmark_group("unary/http");
    for (name, ending) in [
        ("ending_on", StreamEnding::GrpcAndHttp),
        ("ending_off", StreamEnding::Off),
    ] {
        let layer = RevocationLayer::new(verifier(), InMemoryStore::new()).with_stream_ending(ending);
        let service = layer.layer(tower::service_fn(|_: Request<String>| async {
            Ok::<_, Infallible>(Response::new(axum::body::Body::from(Bytes::from_static(
                b"{\"n\":1}",
            ))))
        }));
        group.bench_function(name, |b| {
            b.to_async(&runtime).iter(|| {
                let request = Request::get("/")
                    .header("authorization", format!("Bearer {token}"))
                    .body(String::new())
                    .unwrap();
                let service = service.clone();
                async move {
                    let body = service.oneshot(request).await.unwrap().into_body();
                    body.collect().await.unwrap().to_bytes()
                }
            })
        });
    }
    group.finish();

    #[cfg(feature = "tonic")]
    {
        let mut group = criterion.benchmark_group("unary/grpc");
        for (name, ending) in [
            ("ending_on", StreamEnding::Grpc),
            ("ending_off", StreamEnding::Off),
        ] {
            let layer = RevocationLayer::new(verifier(), InMemoryStore::new()).with_stream_ending(ending);
            let service = layer.layer(tower::service_fn(|_: Request<String>| async {
                let mut response = Response::new(tonic::body::Body::new(http_body_util::Full::new(
                    Bytes::from_static(b"\0\0\0\0\x02\x08\x01"),
                )));
                response
                    .headers_mut()
                    .insert("content-type", "application/grpc".parse().unwrap());
                Ok::<_, Infallible>(response)
            }));
            group.bench_function(name, |b| {
                b.to_async(&runtime).iter(|| {
                    let request = Request::post("/auth.v1.Session/Whoami")
                        .header("content-type", "application/grpc")
                        .header("authorization", format!("Bearer {token}"))
                        .body(String::new())
                        .unwrap();
                    let service = service.clone();
                    async move {
                        let body = service.oneshot(request).await.unwrap().into_body();
                        body.collect().await.unwrap().to_bytes()
                    }
                })
            });
        }
        group.finish();
    }
    criterion.final_summary();
}
