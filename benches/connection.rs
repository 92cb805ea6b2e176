//! Why `RedisStore` shares one multiplexed connection instead of checking a
//! connection out of the deadpool pool per request.
//!
//! ```text
//! cargo bench --bench connection
//! ```
//!
//! Both strategies answer the same check (one `MGET` of four keys) with 64 checks in
//! flight; criterion reports the time per check, so throughput is its inverse:
//! - `shared_multiplexed`: `RedisStore::lookup`, what the crate does;
//! - `pool_checkout_per_check`: `pool.get()` then `MGET`, with deadpool-redis's
//!   default pool; every checkout is verified with `UNWATCH` + `PING`, a second round
//!   trip, and at most `max_size` checks are in flight.
//!
//! Needs a `redis-server` (started privately, see tests/support) or `REDIS_URL`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use tower_jwt_revoke::RevocationKey;
use tower_jwt_revoke::deadpool_redis::{Config, Pool, Runtime};
use tower_jwt_revoke::store::{RedisStore, RevocationQuery, RevocationStore};

const IN_FLIGHT: u64 = 64;

fn query() -> RevocationQuery {
    RevocationQuery {
        token: RevocationKey::token(Some("bench"), "live"),
        subject: Some(RevocationKey::subject(Some("bench"), "alice")),
        session: Some(RevocationKey::session(Some("bench"), "s")),
        issued_at: Some(1),
    }
}

/// Runs `iters` checks, `IN_FLIGHT` at a time, and returns the wall time.
async fn concurrently<F, Fut>(iters: u64, check: Arc<F>) -> Duration
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let start = Instant::now();
    let tasks: Vec<_> = (0..IN_FLIGHT)
        .map(|worker| {
            let check = Arc::clone(&check);
            let share = iters / IN_FLIGHT + u64::from(worker < iters % IN_FLIGHT);
            tokio::spawn(async move {
                for _ in 0..share {
                    check().await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("check task");
    }
    start.elapsed()
}

fn connection_strategy(c: &mut Criterion) {
    let Some(server) = support::RedisServer::start() else {
        eprintln!("connection: skipped, no redis-server (see tests/support)");
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let prefix = support::unique_prefix();
    let store = RedisStore::builder()
        .url(server.url())
        .prefix(&prefix)
        .build()
        .expect("store");
    let pool: Pool = Config::from_url(server.url())
        .create_pool(Some(Runtime::Tokio1))
        .expect("pool");
    let keys: Vec<String> = {
        let q = query();
        let bucket = store.bucket_for(&q.token, q.subject.as_ref());
        vec![
            store.token_key(bucket, &q.token),
            store.global_key(bucket),
            store.session_key(bucket, &q.session.unwrap_or(q.token)),
            store.subject_key(&q.subject.unwrap_or(q.token)),
        ]
    };
    runtime.block_on(store.lookup(&query())).expect("redis reachable");

    let mut group = c.benchmark_group("connection");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    group.bench_function("shared_multiplexed", |b| {
        let store = store.clone();
        let check = Arc::new(move || {
            let store = store.clone();
            async move {
                store.lookup(&query()).await.expect("lookup");
            }
        });
        b.to_async(&runtime)
            .iter_custom(|iters| concurrently(iters, Arc::clone(&check)));
    });
    group.bench_function("pool_checkout_per_check", |b| {
        let pool = pool.clone();
        let keys = Arc::new(keys.clone());
        let check = Arc::new(move || {
            let pool = pool.clone();
            let keys = Arc::clone(&keys);
            async move {
                let mut connection = pool.get().await.expect("pooled connection");
                let _: Vec<Option<String>> = tower_jwt_revoke::redis::cmd("MGET")
                    .arg(&keys[..])
                    .query_async(&mut connection)
                    .await
                    .expect("MGET");
            }
        });
        b.to_async(&runtime)
            .iter_custom(|iters| concurrently(iters, Arc::clone(&check)));
    });
    group.finish();
}

criterion_group!(benches, connection_strategy);
criterion_main!(benches);
