//! The store alone: `RevocationStore::lookup` per store at 0, 10k and 100k live
//! revocations, against a bare `HashMap<[u8; 32], u64>` lookup; and `revoke`
//! throughput per store.
//!
//! ```text
//! cargo bench --bench store
//! ```
//!
//! Ids:
//! - `lookup/{n}/{path}`: one check of a live (not revoked) token with a subject, while
//!   `n` other tokens are revoked. `hashmap` is one `HashMap::get` (std SipHash),
//!   `hashmap_x2` two of them (a check asks for the token and its subject);
//!   `memory`, `mirror` and `redis` are `RevocationStore::lookup`.
//! - `revoke/{store}/{sequential|concurrent64}`: `revoke_token_of` of distinct tokens
//!   (without a subject: one write, as the `Revoker` records a token),
//!   one at a time or with 64 in flight; throughput in revocations per second.
//!
//! The Redis and mirror paths need a `redis-server` (started privately, see
//! tests/support) or `REDIS_URL`; without one they are skipped, saying why.

#[path = "../tests/support/mod.rs"]
mod support;

mod common;

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkGroup, Criterion, Throughput, measurement::WallTime};
use tower_jwt_revoke::RevocationKey;
use tower_jwt_revoke::store::{InMemoryStore, MirrorStore, RevocationStore};

const SIZES: [u64; 3] = [0, 10_000, 100_000];
const REVOCATION_TTL: Duration = Duration::from_secs(3600);
const IN_FLIGHT: u64 = 64;

fn bench_lookup<S: RevocationStore>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    runtime: &tokio::runtime::Runtime,
    id: &str,
    store: &S,
) {
    let query = common::live_query();
    let answer = runtime.block_on(store.lookup(&query)).expect("lookup");
    assert!(
        answer.revoked_by(query.issued_at).is_none(),
        "{id}: the live token is refused"
    );
    group.bench_function(id, |b| {
        b.to_async(runtime).iter(|| store.lookup(black_box(&query)));
    });
}

fn bench_revoke<S: RevocationStore + Clone>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    runtime: &tokio::runtime::Runtime,
    name: &str,
    make_store: impl Fn() -> S,
) {
    let mut round = 0u64;
    group.bench_function(format!("{name}/sequential"), |b| {
        b.to_async(runtime).iter_custom(|iters| {
            round += 1;
            let store = make_store();
            // Distinct tokens, derived before the clock starts.
            let keys: Vec<RevocationKey> = (0..iters)
                .map(|n| RevocationKey::token(Some("bench-revoke"), &format!("{name}-{round}-{n}")))
                .collect();
            async move {
                let start = Instant::now();
                for key in &keys {
                    store
                        .revoke_token_of(key, None, REVOCATION_TTL)
                        .await
                        .expect("revoke");
                }
                start.elapsed()
            }
        });
    });
    group.bench_function(format!("{name}/concurrent{IN_FLIGHT}"), |b| {
        b.to_async(runtime).iter_custom(|iters| {
            round += 1;
            let store = make_store();
            let keys: Vec<RevocationKey> = (0..iters)
                .map(|n| RevocationKey::token(Some("bench-revoke"), &format!("{name}-{round}-{n}")))
                .collect();
            let keys = Arc::new(keys);
            async move {
                let start = Instant::now();
                let mut tasks = tokio::task::JoinSet::new();
                for worker in 0..IN_FLIGHT {
                    let (store, keys) = (store.clone(), Arc::clone(&keys));
                    tasks.spawn(async move {
                        for key in keys.iter().skip(worker as usize).step_by(IN_FLIGHT as usize) {
                            store
                                .revoke_token_of(key, None, REVOCATION_TTL)
                                .await
                                .expect("revoke");
                        }
                    });
                }
                while let Some(done) = tasks.join_next().await {
                    done.expect("revoking task");
                }
                start.elapsed()
            }
        });
    });
}

async fn memory_store(revoked: u64) -> InMemoryStore {
    let store = InMemoryStore::new();
    for n in 0..revoked {
        store
            .revoke_token(&common::filler_key(n), REVOCATION_TTL)
            .await
            .expect("revoke");
    }
    store
}

fn main() {
    tower_jwt_revoke::install_crypto_provider();
    let mut criterion: Criterion = common::criterion();
    let runtime = common::runtime();
    let server = support::RedisServer::start();
    if server.is_none() {
        eprintln!("store: no Redis, so the redis and mirror paths are skipped");
    }

    for revoked in SIZES {
        let mut group = criterion.benchmark_group(format!("lookup/{revoked}"));

        let query = common::live_query();
        let map: HashMap<[u8; 32], u64> = (0..revoked)
            .map(|n| (*common::filler_key(n).as_bytes(), n))
            .collect();
        let token = *query.token.as_bytes();
        let subject = *query.subject.expect("subject").as_bytes();
        group.bench_function("hashmap", |b| b.iter(|| map.get(black_box(&token)).copied()));
        group.bench_function("hashmap_x2", |b| {
            b.iter(|| {
                (
                    map.get(black_box(&token)).copied(),
                    map.get(black_box(&subject)).copied(),
                )
            })
        });
        drop(map);

        let memory = runtime.block_on(memory_store(revoked));
        assert_eq!(memory.len() as u64, revoked);
        bench_lookup(&mut group, &runtime, "memory", &memory);
        drop(memory);

        if let Some(server) = &server {
            let prefix = support::unique_prefix();
            runtime.block_on(common::write_revocations(
                server.url(),
                &prefix,
                revoked,
                REVOCATION_TTL.as_secs(),
            ));
            let mirror = runtime.block_on(async {
                let mirror = MirrorStore::start(common::redis_store(server.url(), &prefix));
                mirror
                    .wait_until_synced(Duration::from_secs(30))
                    .await
                    .expect("mirror in sync");
                mirror
            });
            assert_eq!(mirror.health().entries as u64, revoked, "{:?}", mirror.health());
            let before = runtime.block_on(common::mget_calls(server.url()));
            bench_lookup(&mut group, &runtime, "mirror", &mirror);
            let mgets = runtime.block_on(common::mget_calls(server.url())) - before;
            eprintln!(
                "lookup/{revoked}/mirror: {mgets} checks went to Redis; mirror {:?}",
                mirror.health()
            );
            drop(mirror);

            let redis = common::redis_store(server.url(), &prefix);
            bench_lookup(&mut group, &runtime, "redis", &redis);
        }
        group.finish();
    }

    let mut group = criterion.benchmark_group("revoke");
    group.throughput(Throughput::Elements(1));
    bench_revoke(&mut group, &runtime, "memory", InMemoryStore::new);
    if let Some(server) = &server {
        // One store (one connection) for every sample, as an application keeps it.
        let redis = common::redis_store(server.url(), &support::unique_prefix());
        bench_revoke(&mut group, &runtime, "redis", || redis.clone());
        let prefix = support::unique_prefix();
        let mirror = runtime.block_on(async {
            let mirror = MirrorStore::start(common::redis_store(server.url(), &prefix));
            mirror
                .wait_until_synced(Duration::from_secs(10))
                .await
                .expect("mirror in sync");
            mirror
        });
        bench_revoke(&mut group, &runtime, "mirror", || mirror.clone());
    }
    group.finish();
    criterion.final_summary();
}
