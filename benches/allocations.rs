//! Heap allocations per check, counted by a global allocator: the store's check alone
//! (`lookup_immediate` for the in-memory store and a mirror in sync, `lookup` for Redis),
//! and a whole request through the layer for reference.
//!
//! ```text
//! cargo bench --bench allocations
//! ```
//!
//! The Redis and mirror rows need a `redis-server` (started privately, see
//! tests/support); without one they are skipped, saying why.

#[path = "../tests/support/mod.rs"]
mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::{Request, Response};
use tower::{Layer, Service, ServiceExt};
use tower_jwt_revoke::jsonwebtoken::{self, Algorithm, EncodingKey, Header};
use tower_jwt_revoke::store::{InMemoryStore, MirrorStore, RevocationQuery, RevocationStore};
use tower_jwt_revoke::{JwtVerifier, RevocationKey, RevocationLayer, VerificationKey};

/// Counts every allocation (and reallocation) the process makes.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator, adding only a relaxed counter.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const ROUNDS: u64 = 10_000;

/// Allocations per call of `work`, averaged over [`ROUNDS`] calls after a warm-up.
fn per_call(mut work: impl FnMut()) -> f64 {
    for _ in 0..100 {
        work();
    }
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..ROUNDS {
        work();
    }
    (ALLOCATIONS.load(Ordering::Relaxed) - before) as f64 / ROUNDS as f64
}

fn query() -> RevocationQuery {
    RevocationQuery {
        token: RevocationKey::token(Some("bench"), "live"),
        subject: Some(RevocationKey::subject(Some("bench"), "alice")),
        session: Some(RevocationKey::session(Some("bench"), "s1")),
        issued_at: Some(1),
    }
}

fn main() {
    tower_jwt_revoke::install_crypto_provider();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let query = query();
    println!("| path | allocations per call |");
    println!("|---|---|");

    let memory = InMemoryStore::new();
    runtime.block_on(async {
        for n in 0..10_000u32 {
            let key = RevocationKey::token(Some("bench"), &n.to_string());
            memory
                .revoke_token(&key, Duration::from_secs(600))
                .await
                .expect("revoke");
        }
    });
    let memory_check = per_call(|| {
        std::hint::black_box(memory.lookup_immediate(&query));
    });
    println!("| check, in-memory store (`lookup_immediate`) | {memory_check} |");

    // A whole request through the layer, for reference: verification and the request
    // extensions allocate, whatever the store.
    let secret = b"allocations-bench-secret-0123456789";
    let verifier = JwtVerifier::builder()
        .key(VerificationKey::hmac(Algorithm::HS256, secret).expect("key"))
        .build()
        .expect("verifier");
    let now = jsonwebtoken::get_current_timestamp();
    let claims = serde_json::json!({ "sub": "alice", "jti": "j", "iat": now, "exp": now + 600 });
    let token =
        jsonwebtoken::encode(&Header::default(), &claims, &EncodingKey::from_secret(secret)).expect("sign");
    let bearer = format!("Bearer {token}");
    let layer = RevocationLayer::new(verifier, memory.clone());
    let mut service = layer.layer(tower::service_fn(|_: Request<()>| async {
        Ok::<_, Infallible>(Response::new(()))
    }));
    let request_cost = per_call(|| {
        let request = Request::get("/")
            .header("authorization", &bearer)
            .body(())
            .expect("request");
        let response = runtime
            .block_on(async { service.ready().await.expect("ready").call(request).await })
            .expect("response");
        assert_eq!(response.status(), 200);
    });
    println!(
        "| request through the layer, in-memory store (verify, extensions, response) | {request_cost} |"
    );

    let Some(server) = support::RedisServer::start() else {
        eprintln!("allocations: no Redis, so the redis and mirror rows are skipped");
        return;
    };
    let redis = server.store(&support::unique_prefix());
    runtime.block_on(async { redis.lookup(&query).await.expect("redis lookup") });
    let redis_check = per_call(|| {
        runtime.block_on(async { std::hint::black_box(redis.lookup(&query).await.expect("lookup")) });
    });
    println!("| check, Redis store (`lookup`: command, future, reply) | {redis_check} |");

    let mirror = {
        let _runtime = runtime.enter();
        MirrorStore::start(redis.clone())
    };
    runtime
        .block_on(mirror.wait_until_synced(Duration::from_secs(10)))
        .expect("mirror in sync");
    let mirror_check = per_call(|| {
        std::hint::black_box(mirror.lookup_immediate(&query).expect("in sync"));
    });
    println!("| check, mirror in sync (`lookup_immediate`) | {mirror_check} |");
}
