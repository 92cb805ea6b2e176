//! The in-memory table at scale (the store behind `InMemoryStore` and `MirrorStore`):
//! bytes per live revocation, load rate, check cost against two bare `HashMap`
//! lookups, and the longest pause a sweep of expired entries causes a concurrent check.
//!
//! ```text
//! cargo bench --bench footprint              # 1M and 10M entries
//! FOOTPRINT_SIZES=100000 cargo bench --bench footprint
//! ```
//!
//! Not a criterion bench: memory is read from `/proc/self/statm` (resident set, Linux),
//! so each size runs once in a fresh store, and the figures print as one table.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tower_jwt_revoke::RevocationKey;
use tower_jwt_revoke::store::{InMemoryStore, RevocationQuery, RevocationStore};

const CHECKS: u32 = 2_000_000;

/// Resident memory in bytes (Linux; 0 elsewhere).
fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|statm| statm.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn key(n: u64) -> RevocationKey {
    RevocationKey::token(Some("footprint"), &n.to_string())
}

/// Nanoseconds per call of `check`, over [`CHECKS`] calls on keys cycling through `keys`.
fn per_check(keys: &[RevocationKey], mut check: impl FnMut(&RevocationKey) -> bool) -> f64 {
    let start = Instant::now();
    let mut hits = 0u32;
    for n in 0..CHECKS {
        hits += u32::from(check(black_box(&keys[n as usize % keys.len()])));
    }
    black_box(hits);
    start.elapsed().as_nanos() as f64 / f64::from(CHECKS)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let sizes: Vec<u64> = std::env::var("FOOTPRINT_SIZES")
        .ok()
        .map(|sizes| {
            sizes
                .split(',')
                .filter_map(|size| size.trim().parse().ok())
                .collect()
        })
        .unwrap_or_else(|| vec![1_000_000, 10_000_000]);
    println!(
        "| live revocations | bytes/entry (RSS) | load | check (live token + subject) | 2 bare HashMap gets | ratio | longest check during a full sweep |"
    );
    println!("|---|---|---|---|---|---|---|");
    for size in sizes {
        // Keys are derived before measuring: hashing is not the store's cost.
        let keys: Vec<RevocationKey> = (0..size).map(key).collect();
        let probes: Vec<RevocationKey> = (0..4096).map(|n| key(u64::MAX - n)).collect();

        let before = resident_bytes();
        let store = InMemoryStore::with_sweep_interval(Duration::from_secs(3600));
        let started = Instant::now();
        runtime.block_on(async {
            for key in &keys {
                store
                    .revoke_token(key, Duration::from_secs(3600))
                    .await
                    .expect("revoke");
            }
        });
        let load = started.elapsed();
        let per_entry = resident_bytes().saturating_sub(before) as f64 / size as f64;

        let subject = RevocationKey::subject(Some("footprint"), "alice");
        let check_ns = per_check(&probes, |token| {
            let query = RevocationQuery {
                token: *token,
                subject: Some(subject),
                session: None,
                issued_at: Some(1),
            };
            store
                .lookup_immediate(&query)
                .is_some_and(|lookup| lookup.token_revoked)
        });

        // The baseline: full keys in std's map, as a hand-written check would hold them.
        let map: HashMap<RevocationKey, u64> = keys.iter().map(|key| (*key, 0)).collect();
        let map_ns = per_check(&probes, |token| {
            map.contains_key(token) | map.contains_key(&subject)
        });
        drop(map);

        // Every entry expires; a checker thread measures its slowest check while one
        // sweep reclaims them all.
        let expiring = InMemoryStore::with_sweep_interval(Duration::from_secs(3600));
        runtime.block_on(async {
            for key in &keys {
                expiring
                    .revoke_token(key, Duration::from_millis(1))
                    .await
                    .expect("revoke");
            }
        });
        std::thread::sleep(Duration::from_millis(100));
        let sweeping = Arc::new(AtomicBool::new(true));
        let checker = {
            let (expiring, sweeping, probe) = (expiring.clone(), Arc::clone(&sweeping), probes[0]);
            std::thread::spawn(move || {
                let query = RevocationQuery {
                    token: probe,
                    subject: None,
                    session: None,
                    issued_at: Some(1),
                };
                let mut longest = Duration::ZERO;
                while sweeping.load(Ordering::Relaxed) {
                    let start = Instant::now();
                    black_box(expiring.lookup_immediate(&query));
                    longest = longest.max(start.elapsed());
                }
                longest
            })
        };
        std::thread::sleep(Duration::from_millis(20));
        let sweep_started = Instant::now();
        expiring.purge_expired();
        let sweep = sweep_started.elapsed();
        sweeping.store(false, Ordering::Relaxed);
        let longest_check = checker.join().expect("checker");
        assert!(expiring.is_empty(), "the sweep reclaimed everything");

        println!(
            "| {size} | {per_entry:.1} | {load:.2?} ({rate:.1}M/s) | {check_ns:.0} ns | {map_ns:.0} ns | {ratio:.2}× | {longest_check:.2?} (whole sweep {sweep:.2?}) |",
            rate = size as f64 / load.as_secs_f64() / 1e6,
            ratio = check_ns / map_ns,
        );
        drop(store);
    }
}
