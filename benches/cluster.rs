//! The Redis store on a Redis Cluster (3 masters, 3 replicas, started privately, see
//! tests/support/cluster) against the same store on one server, on the same machine:
//! what a check and a revocation cost, and how long a mirror takes to load revocations
//! spread over the cluster.
//!
//! ```text
//! cargo bench --bench cluster
//! CLUSTER_BENCH_LOAD=1000000 cargo bench --bench cluster -- cluster/load
//! ```
//!
//! Ids:
//! - `cluster/check/{single|cluster}`: `RevocationStore::lookup` of a live token with a
//!   subject, one at a time (one `MGET`, one round trip; on the cluster to the master of
//!   the subject's bucket).
//! - `cluster/check64/{single|cluster}`: the same with 64 checks in flight; throughput.
//! - `cluster/revoke/{single|cluster}`: `revoke_token_of` of distinct tokens with a
//!   subject (one script in one bucket), one at a time.
//! - `cluster/revoke_session/{single|cluster}`: `revoke_session` (one script in every
//!   bucket, 16 by default, all at once).
//! - `cluster/load`: `CLUSTER_BENCH_LOAD` token revocations (default 200,000) written
//!   with pipelined `SET` (one pipeline per bucket and batch), then a `MirrorStore`
//!   started on them; printed: the time until it serves checks locally, on the cluster
//!   and on one server.

#[path = "../tests/support/mod.rs"]
mod support;

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkGroup, Criterion, Throughput, measurement::WallTime};
use tower_jwt_revoke::RevocationKey;
use tower_jwt_revoke::store::{MirrorStore, RedisStore, RevocationStore};

use support::RedisServer;
use support::cluster::RedisCluster;

const TTL: Duration = Duration::from_secs(3600);
const IN_FLIGHT: u64 = 64;

/// Whether the load part runs (`true`) or the criterion part (`false`), by the filter
/// given on the command line: none runs both.
fn wanted(load: bool) -> bool {
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    filter.is_empty() || filter.iter().any(|f| f.contains("load") == load)
}

fn bench_store(
    group: &mut BenchmarkGroup<'_, WallTime>,
    runtime: &tokio::runtime::Runtime,
    name: &str,
    store: &RedisStore,
) {
    let query = common::live_query();
    runtime.block_on(store.lookup(&query)).expect("lookup");
    group.throughput(Throughput::Elements(1));
    group.bench_function(format!("check/{name}"), |b| {
        b.to_async(runtime).iter(|| store.lookup(&query));
    });
    group.bench_function(format!("check{IN_FLIGHT}/{name}"), |b| {
        b.to_async(runtime).iter_custom(|iters| {
            let store = store.clone();
            async move {
                let start = Instant::now();
                let mut tasks = tokio::task::JoinSet::new();
                for worker in 0..IN_FLIGHT {
                    let store = store.clone();
                    tasks.spawn(async move {
                        let query = common::live_query();
                        for _ in (worker..iters).step_by(IN_FLIGHT as usize) {
                            store.lookup(&query).await.expect("lookup");
                        }
                    });
                }
                while tasks.join_next().await.is_some() {}
                start.elapsed()
            }
        });
    });
    let round = AtomicU64::new(0);
    group.bench_function(format!("revoke/{name}"), |b| {
        b.to_async(runtime).iter_custom(|iters| {
            let round = round.fetch_add(1, Ordering::Relaxed);
            let store = store.clone();
            async move {
                let keys: Vec<(RevocationKey, RevocationKey)> = (0..iters)
                    .map(|n| {
                        let id = format!("{round}-{n}");
                        (RevocationKey::token(None, &id), RevocationKey::subject(None, &id))
                    })
                    .collect();
                let start = Instant::now();
                for (token, subject) in &keys {
                    store
                        .revoke_token_of(token, Some(subject), TTL)
                        .await
                        .expect("revoke");
                }
                start.elapsed()
            }
        });
    });
    group.bench_function(format!("revoke_session/{name}"), |b| {
        b.to_async(runtime).iter_custom(|iters| {
            let round = round.fetch_add(1, Ordering::Relaxed);
            let store = store.clone();
            async move {
                let start = Instant::now();
                for n in 0..iters {
                    let session = RevocationKey::session(None, &format!("{round}-{n}"));
                    store.revoke_session(&session, TTL).await.expect("revoke");
                }
                start.elapsed()
            }
        });
    });
}

/// Writes `count` token revocations (tokens without a subject) as another writer would,
/// all expiring `TTL` from now.
async fn write_revocations(
    store: &RedisStore,
    connection: &mut impl tower_jwt_revoke::redis::aio::ConnectionLike,
    count: u64,
) {
    let expires_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64
        + TTL.as_millis() as u64;
    common::write_through(store, connection, count, |_| expires_ms).await;
}

/// Starts a mirror on `store` and times it until it serves checks locally.
async fn time_load(store: RedisStore, expected: u64) -> Duration {
    let start = Instant::now();
    let mirror = MirrorStore::start(store);
    mirror
        .wait_until_synced(Duration::from_secs(600))
        .await
        .expect("mirror in sync");
    let took = start.elapsed();
    assert_eq!(mirror.health().entries as u64, expected, "{:?}", mirror.health());
    took
}

fn load(runtime: &tokio::runtime::Runtime, server: &RedisServer, cluster: &RedisCluster) {
    let count: u64 = std::env::var("CLUSTER_BENCH_LOAD")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    runtime.block_on(async {
        let prefix = support::unique_prefix();
        let on_cluster = cluster.store(&prefix);
        let client = tower_jwt_revoke::redis::cluster::ClusterClient::new(cluster.seeds()).expect("seeds");
        let mut connection = client.get_async_connection().await.expect("cluster connection");
        write_revocations(&on_cluster, &mut connection, count).await;
        let on_single = common::redis_store(server.url(), &prefix);
        let mut connection = common::connection(server.url()).await;
        write_revocations(&on_single, &mut connection, count).await;

        let cluster_took = time_load(cluster.store(&prefix), count).await;
        let single_took = time_load(common::redis_store(server.url(), &prefix), count).await;
        eprintln!(
            "cluster/load: {count} revocations: a mirror serves locally after {:.2} s on the cluster ({:.0}/s), {:.2} s on one server ({:.0}/s)",
            cluster_took.as_secs_f64(),
            count as f64 / cluster_took.as_secs_f64(),
            single_took.as_secs_f64(),
            count as f64 / single_took.as_secs_f64(),
        );
    });
}

fn main() {
    tower_jwt_revoke::install_crypto_provider();
    // First: criterion exits on arguments it does not take, and the servers below are
    // killed only when dropped.
    let mut criterion: Criterion = common::criterion();
    let (Some(server), Some(cluster)) = (RedisServer::start(), RedisCluster::start()) else {
        eprintln!("cluster: no redis-server or redis-cli (see tests/support), skipped");
        return;
    };
    let runtime = common::runtime();
    if wanted(false) {
        let mut group = criterion.benchmark_group("cluster");
        let single = common::redis_store(server.url(), &support::unique_prefix());
        bench_store(&mut group, &runtime, "single", &single);
        let on_cluster = cluster.store(&support::unique_prefix());
        bench_store(&mut group, &runtime, "cluster", &on_cluster);
        group.finish();
        criterion.final_summary();
    }
    if wanted(true) {
        load(&runtime, &server, &cluster);
    }
}
