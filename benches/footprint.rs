//! The in-memory table at scale (the store behind `InMemoryStore` and `MirrorStore`):
//! bytes per live revocation, load rate, check cost against two bare `HashMap`
//! lookups, and the longest pause a sweep of expired entries causes a concurrent check.
//!
//! ```text
//! cargo bench --bench footprint              # 100k, 1M and 10M entries
//! FOOTPRINT_SIZES=100000 FOOTPRINT_ROUNDS=9 cargo bench --bench footprint
//! ```
//!
//! Not a criterion bench: memory is read from `/proc/self/statm` (resident set, Linux),
//! so each size runs once in a fresh store, and the figures print as one table.
//!
//! The machine is shared, so timings are taken to resist noise: the check and its
//! baseline run in alternating rounds and each keeps its fastest round (a round is only
//! ever slowed by other work, never sped up). A sweep's pause is shown next to the
//! longest check of a control run of the same length in which another thread spins
//! instead of sweeping: what the control shows is the machine's own scheduling noise.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tower_jwt_revoke::RevocationKey;
use tower_jwt_revoke::store::{InMemoryStore, RevocationQuery, RevocationStore};

const CHECKS: u32 = 2_000_000;
/// A check slower than this counts as a pause (the sweep target).
const PAUSE: Duration = Duration::from_millis(1);

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

/// The fastest of `rounds` alternating rounds of `ours` and `theirs`, in ns per call.
fn compare(
    rounds: u32,
    keys: &[RevocationKey],
    mut ours: impl FnMut(&RevocationKey) -> bool,
    mut theirs: impl FnMut(&RevocationKey) -> bool,
) -> (f64, f64) {
    let (mut best_ours, mut best_theirs) = (f64::MAX, f64::MAX);
    for _ in 0..rounds {
        best_ours = best_ours.min(per_check(keys, &mut ours));
        best_theirs = best_theirs.min(per_check(keys, &mut theirs));
    }
    (best_ours, best_theirs)
}

/// The longest check, and how many took over [`PAUSE`], on a thread cycling through
/// `probes` (keys in every shard) while `busy` runs on this one.
fn longest_check_during(
    store: &InMemoryStore,
    probes: &[RevocationKey],
    busy: impl FnOnce(),
) -> (Duration, u32) {
    let running = Arc::new(AtomicBool::new(true));
    let checker = {
        let (store, running, probes) = (store.clone(), Arc::clone(&running), probes.to_vec());
        std::thread::spawn(move || {
            let (mut longest, mut pauses, mut n) = (Duration::ZERO, 0u32, 0usize);
            while running.load(Ordering::Relaxed) {
                let query = RevocationQuery {
                    token: probes[n % probes.len()],
                    subject: None,
                    session: None,
                    issued_at: Some(1),
                };
                n += 1;
                let start = Instant::now();
                black_box(store.lookup_immediate(&query));
                let took = start.elapsed();
                longest = longest.max(took);
                pauses += u32::from(took > PAUSE);
            }
            (longest, pauses)
        })
    };
    std::thread::sleep(Duration::from_millis(20));
    busy();
    running.store(false, Ordering::Relaxed);
    checker.join().expect("checker")
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
        .unwrap_or_else(|| vec![100_000, 1_000_000, 10_000_000]);
    let rounds: u32 = std::env::var("FOOTPRINT_ROUNDS")
        .ok()
        .and_then(|rounds| rounds.parse().ok())
        .unwrap_or(5);
    println!(
        "| live revocations | bytes/entry (RSS) | load | check (live token + subject) | 2 bare HashMap gets | ratio | longest check in each full sweep (checks over 1 ms, all rounds) | same, controls without a sweep |"
    );
    println!("|---|---|---|---|---|---|---|---|");
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
        // The baseline: full keys in std's map, as a hand-written check would hold them.
        let map: HashMap<RevocationKey, u64> = keys.iter().map(|key| (*key, 0)).collect();
        let (check_ns, map_ns) = compare(
            rounds,
            &probes,
            |token| {
                let query = RevocationQuery {
                    token: *token,
                    subject: Some(subject),
                    session: None,
                    issued_at: Some(1),
                };
                store
                    .lookup_immediate(&query)
                    .is_some_and(|lookup| lookup.token_revoked)
            },
            |token| map.contains_key(token) | map.contains_key(black_box(&subject)),
        );
        drop(map);

        // Every entry expires; a checker thread measures its slowest check while one
        // sweep reclaims them all, then while this thread spins as long (the control).
        // Both are repeated: a pause the sweep causes shows in every round, the
        // machine's own ones come and go.
        let expiring = InMemoryStore::with_sweep_interval(Duration::from_secs(3600));
        let (mut sweeps, mut during, mut control) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds.clamp(1, 3) {
            runtime.block_on(async {
                for key in &keys {
                    expiring
                        .revoke_token(key, Duration::from_millis(1))
                        .await
                        .expect("revoke");
                }
            });
            std::thread::sleep(Duration::from_millis(100));
            let mut sweep = Duration::ZERO;
            during.push(longest_check_during(&expiring, &probes, || {
                let started = Instant::now();
                expiring.purge_expired();
                sweep = started.elapsed();
            }));
            assert!(expiring.is_empty(), "the sweep reclaimed everything");
            control.push(longest_check_during(&expiring, &probes, || {
                let started = Instant::now();
                while started.elapsed() < sweep {
                    std::hint::spin_loop();
                }
            }));
            sweeps.push(sweep);
        }
        let show = |rounds: &[(Duration, u32)]| {
            let longest: Vec<String> = rounds
                .iter()
                .map(|(longest, _)| format!("{longest:.2?}"))
                .collect();
            let pauses: u32 = rounds.iter().map(|(_, pauses)| pauses).sum();
            format!("{} ({pauses})", longest.join(", "))
        };
        let (longest_check, longest_control) = (show(&during), show(&control));
        let sweep = sweeps.iter().max().copied().unwrap_or_default();

        println!(
            "| {size} | {per_entry:.1} | {load:.2?} ({rate:.1}M/s) | {check_ns:.0} ns | {map_ns:.0} ns | {ratio:.2}× | {longest_check}; whole sweep ≤ {sweep:.2?} | {longest_control} |",
            rate = size as f64 / load.as_secs_f64() / 1e6,
            ratio = check_ns / map_ns,
        );
        drop(store);
    }
}
