//! `fleet/memory`: what Redis holds per live revocation and per feed event, and what its
//! memory does under a steady rate of short-lived revocations.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tower_jwt_revoke::RevocationKey;
use tower_jwt_revoke::store::{RedisStore, RedisStoreBuilder, RevocationStore};

use super::common::env_number;
use super::support::RedisServer;
use super::{common, info_sum};

pub fn run() {
    let Some(server) = RedisServer::start_private(false) else {
        eprintln!("fleet/memory: no redis-server, skipped");
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let url = [server.url().to_owned()];
        let live = env_number("FLEET_MEMORY_LIVE", 100_000);
        let (per_record, per_event) = per_revocation(&url, live).await;
        println!(
            "fleet/memory: {live} revocations through the store's scripts: {per_record:.0} bytes of used_memory per live revocation (record + index member), {per_event:.0} per feed event"
        );
        steady(&url, per_record).await;
    });
}

async fn used(url: &[String]) -> f64 {
    info_sum(url, "memory", "used_memory").await
}

/// The store `builder` makes, once it has registered its buckets (layout, epoch
/// markers) with a first revocation, so that they do not count as what is measured.
async fn registered(builder: RedisStoreBuilder) -> RedisStore {
    let store = builder.build().expect("store");
    store
        .revoke_token_of(
            &RevocationKey::token(None, "warm-up"),
            None,
            Duration::from_secs(1),
        )
        .await
        .expect("revoke");
    store
}

/// Writes `count` revocations at once-ish (256 in flight) through `store`.
async fn write(store: &RedisStore, count: u64, ttl: Duration, tag: &str) {
    let in_flight = Arc::new(Semaphore::new(256));
    for n in 0..count {
        let permit = Arc::clone(&in_flight).acquire_owned().await.expect("semaphore");
        let store = store.clone();
        let key = RevocationKey::token(Some("fleet-memory"), &format!("{tag}-{n}"));
        tokio::spawn(async move {
            store.revoke_token_of(&key, None, ttl).await.expect("revoke");
            drop(permit);
        });
    }
    let _all = in_flight.acquire_many(256).await.expect("semaphore");
}

/// Bytes of `used_memory` per live revocation and per feed event: `count` written with a
/// retention window long enough to keep every event, then the feeds emptied.
async fn per_revocation(url: &[String], count: u64) -> (f64, f64) {
    let prefix = super::support::unique_prefix();
    let store = registered(
        RedisStore::builder()
            .url(&url[0])
            .prefix(&prefix)
            .feed_retention(Duration::from_secs(3600))
            .feed_max_len(100_000_000),
    )
    .await;
    let before = used(url).await;
    write(&store, count, Duration::from_secs(3600), "live").await;
    let with_feed = used(url).await;
    let mut connection = common::connection(&url[0]).await;
    for bucket in 0..store.buckets() {
        let _: u64 = tower_jwt_revoke::redis::cmd("XTRIM")
            .arg(store.feed_key(bucket))
            .arg("MAXLEN")
            .arg(0)
            .query_async(&mut connection)
            .await
            .expect("XTRIM");
    }
    let records = used(url).await;
    let _: () = tower_jwt_revoke::redis::cmd("FLUSHDB")
        .query_async(&mut connection)
        .await
        .expect("FLUSHDB");
    (
        (records - before) / count as f64,
        (with_feed - records) / count as f64,
    )
}

/// `FLEET_MEMORY_RATE` (default 1,000) revocations/s of `FLEET_MEMORY_TTL_SECS` (default
/// 5) tokens for `FLEET_MEMORY_SECS`, the default retention: `used_memory` over time.
async fn steady(url: &[String], per_record: f64) {
    let rate = env_number("FLEET_MEMORY_RATE", 1_000) as f64;
    let ttl = Duration::from_secs(env_number("FLEET_MEMORY_TTL_SECS", 5));
    let run = Duration::from_secs(env_number("FLEET_MEMORY_SECS", 60));
    let prefix = super::support::unique_prefix();
    let store = registered(RedisStore::builder().url(&url[0]).prefix(&prefix)).await;
    let base = used(url).await;
    let mut connection = common::connection(&url[0]).await;
    let written = Arc::new(AtomicU64::new(0));
    let in_flight = Arc::new(Semaphore::new(256));
    let started = Instant::now();
    let mut next_report = Duration::from_secs(5);
    let mut n: u64 = 0;
    println!(
        "fleet/memory: {rate:.0} revocations/s, {} s tokens, default retention, for {} s",
        ttl.as_secs(),
        run.as_secs()
    );
    println!(
        "| seconds | keys | feed events | used_memory above the empty blocklist (MiB) | × the live records alone |"
    );
    println!("|---|---|---|---|---|");
    while started.elapsed() < run {
        let due = started + Duration::from_secs_f64(n as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        let permit = Arc::clone(&in_flight).acquire_owned().await.expect("semaphore");
        let (writer, written) = (store.clone(), Arc::clone(&written));
        let key = RevocationKey::token(Some("fleet-memory"), &format!("steady-{n}"));
        tokio::spawn(async move {
            if writer.revoke_token_of(&key, None, ttl).await.is_ok() {
                written.fetch_add(1, Ordering::Relaxed);
            }
            drop(permit);
        });
        n += 1;
        if started.elapsed() >= next_report {
            next_report += Duration::from_secs(5);
            let keys: u64 = tower_jwt_revoke::redis::cmd("DBSIZE")
                .query_async(&mut connection)
                .await
                .expect("DBSIZE");
            let mut events = 0;
            for bucket in 0..store.buckets() {
                let len: u64 = tower_jwt_revoke::redis::cmd("XLEN")
                    .arg(store.feed_key(bucket))
                    .query_async(&mut connection)
                    .await
                    .expect("XLEN");
                events += len;
            }
            let above = used(url).await - base;
            // Live records: what was written within one token lifetime.
            let live = rate * ttl.as_secs_f64();
            println!(
                "| {:.0} | {keys} | {events} | {:.1} | {:.1} |",
                started.elapsed().as_secs_f64(),
                above / (1024.0 * 1024.0),
                above / (live * per_record)
            );
        }
    }
    let _all = in_flight.acquire_many(256).await.expect("semaphore");
    println!(
        "fleet/memory: {} written in {:.0} s",
        written.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
}
