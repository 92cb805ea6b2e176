//! The mirror's two costs that are not a check: how long a revocation takes to reach
//! another replica, and what loading a large revocation list takes.
//!
//! ```text
//! cargo bench --bench mirror                       # both
//! MIRROR_BENCH_SAMPLES=1000 MIRROR_BENCH_LOAD=100000 cargo bench --bench mirror
//! ```
//!
//! - **Propagation**: two `MirrorStore`s on one Redis and one prefix, as two replicas.
//!   Each sample revokes a fresh token through replica A and polls replica B (every
//!   ~20 µs, from another thread than B's feed follower) until B refuses it.
//!   Printed: p50/p99/max of "revoke called on A -> refused by B", and of the revoke
//!   call alone. `MIRROR_BENCH_SAMPLES` samples (default 200), `MIRROR_BENCH_GAP_MS`
//!   apart (default 5; 0 runs them back to back).
//! - **Load**: `MIRROR_BENCH_LOAD` token revocations (default 1,000,000) are written
//!   with pipelined `SET {prefix:bB}:t:{hex} 1 PXAT expiry` and `ZADD {prefix:bB}:index`
//!   (no Lua; expiries a millisecond apart from 30 minutes on), then a fresh
//!   process (this binary, re-run) starts a `MirrorStore` on them and
//!   reports the time until the load is done and until it serves checks locally, and
//!   its RSS growth (`VmRSS` from /proc/self/status) per entry. `MIRROR_BENCH_WRITE_BACK=0`
//!   starts the mirror without write-back (and so without its ledger).
//!
//! Needs a `redis-server` (started privately, see tests/support) or `REDIS_URL`;
//! without one it says why and does nothing.

#[path = "../tests/support/mod.rs"]
mod support;

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::env_number;
use tower_jwt_revoke::RevocationKey;
use tower_jwt_revoke::store::{MirrorStore, RevocationQuery, RevocationStore};

/// Set in the child process that measures a load: `url<TAB>prefix<TAB>expected entries`.
const CHILD_ENV: &str = "TOWER_JWT_REVOKE_BENCH_MIRROR_LOAD";

fn main() {
    if let Ok(job) = std::env::var(CHILD_ENV) {
        load_child(&job);
        return;
    }
    // `cargo bench -- <filter>`: run only when the filter names this bench's parts.
    let wanted = common::wanted();
    if !wanted("mirror/propagation") && !wanted("mirror/load") {
        return;
    }
    let Some(server) = support::RedisServer::start() else {
        eprintln!("mirror: no Redis, so the mirror benches are skipped");
        return;
    };
    let runtime = common::runtime();
    if wanted("mirror/propagation") {
        let samples = env_number("MIRROR_BENCH_SAMPLES", 200);
        let gap = Duration::from_millis(env_number("MIRROR_BENCH_GAP_MS", 5));
        runtime.block_on(propagation(server.url(), samples as usize, gap));
    }
    if wanted("mirror/load") {
        let entries = env_number("MIRROR_BENCH_LOAD", 1_000_000);
        load(&runtime, server.url(), entries);
    }
}

async fn propagation(url: &str, samples: usize, gap: Duration) {
    let prefix = support::unique_prefix();
    let replica_a = MirrorStore::start(common::redis_store(url, &prefix));
    let replica_b = MirrorStore::start(common::redis_store(url, &prefix));
    for replica in [&replica_a, &replica_b] {
        replica
            .wait_until_synced(Duration::from_secs(10))
            .await
            .expect("mirror in sync");
    }
    let mut refused = Vec::with_capacity(samples);
    let mut written = Vec::with_capacity(samples);
    for n in 0..samples + 10 {
        let token = RevocationKey::token(Some("bench-propagation"), &n.to_string());
        let query = RevocationQuery {
            token,
            subject: None,
            session: None,
            issued_at: Some(common::now_secs()),
        };
        let start = Instant::now();
        replica_a
            .revoke_token_of(&token, None, Duration::from_secs(60))
            .await
            .expect("revoke");
        let write = start.elapsed();
        loop {
            let lookup = replica_b.lookup(&query).await.expect("lookup");
            if lookup.token_revoked {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "not propagated in 5 s: {:?}",
                replica_b.health()
            );
            // Blocks this (the bench) thread only; B's follower runs on the worker.
            std::thread::sleep(Duration::from_micros(20));
        }
        let total = start.elapsed();
        assert!(replica_b.health().serving_locally, "{:?}", replica_b.health());
        if n >= 10 {
            // The first ten warm up connections and scripts.
            refused.push(total);
            written.push(write);
        }
        if !gap.is_zero() {
            tokio::time::sleep(gap).await;
        }
    }
    let setting = format!("{samples} samples, {} ms apart", gap.as_millis());
    println!(
        "mirror/propagation ({setting}): revoke on A -> refused by B: {}",
        summary(&mut refused)
    );
    println!(
        "mirror/propagation ({setting}): the revoke call on A alone:  {}",
        summary(&mut written)
    );
}

fn summary(samples: &mut [Duration]) -> String {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    format!(
        "p50 {:.0} µs, p90 {:.0} µs, p99 {:.0} µs, max {:.0} µs",
        micros(at(0.50)),
        micros(at(0.90)),
        micros(at(0.99)),
        micros(at(1.0))
    )
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

fn load(runtime: &tokio::runtime::Runtime, url: &str, entries: u64) {
    let prefix = support::unique_prefix();
    let start = Instant::now();
    runtime.block_on(common::write_revocations(url, &prefix, entries, 3600));
    let write = start.elapsed();
    println!(
        "mirror/load: wrote {entries} revocations with pipelined SET in {:.2} s ({:.0}/s)",
        write.as_secs_f64(),
        entries as f64 / write.as_secs_f64()
    );
    let output = Command::new(std::env::current_exe().expect("this bench's path"))
        .env(CHILD_ENV, format!("{url}\t{prefix}\t{entries}"))
        .output()
        .expect("run the load child");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "load child failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    print!("{stdout}");
}

/// In the child: start a mirror on `entries` revocations, report time and memory.
fn load_child(job: &str) {
    let mut parts = job.split('\t');
    let (url, prefix, expected) = (
        parts.next().expect("url"),
        parts.next().expect("prefix"),
        parts.next().and_then(|n| n.parse::<u64>().ok()).expect("entries"),
    );
    let runtime = common::runtime();
    let store = common::redis_store(url, prefix);
    let rss_before = common::proc_status_kib("VmRSS");
    let (loaded, synced, mirror) = runtime.block_on(async {
        let start = Instant::now();
        let write_back = std::env::var("MIRROR_BENCH_WRITE_BACK").map_or(true, |on| on != "0");
        let mirror = MirrorStore::builder(store).write_back(write_back).start();
        let mut loaded = None;
        while !mirror.health().serving_locally {
            if loaded.is_none() && mirror.health().loads > 0 {
                loaded = Some(start.elapsed());
            }
            assert!(
                start.elapsed() < Duration::from_secs(300),
                "{:?}",
                mirror.health()
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let synced = start.elapsed();
        (loaded.unwrap_or(synced), synced, mirror)
    });
    let rss_after = common::proc_status_kib("VmRSS");
    let peak = common::proc_status_kib("VmHWM");
    let entries = mirror.health().entries as u64;
    assert_eq!(entries, expected, "{:?}", mirror.health());
    let delta = rss_after.saturating_sub(rss_before);
    println!(
        "mirror/load: {entries} revocations loaded (the buckets' indexes) in {:.2} s, serving locally after {:.2} s",
        loaded.as_secs_f64(),
        synced.as_secs_f64()
    );
    println!(
        "mirror/load: RSS {:.1} MiB -> {:.1} MiB (+{:.1} MiB, {:.0} bytes per entry); peak RSS {:.1} MiB",
        rss_before as f64 / 1024.0,
        rss_after as f64 / 1024.0,
        delta as f64 / 1024.0,
        delta as f64 * 1024.0 / entries as f64,
        peak as f64 / 1024.0
    );
}
