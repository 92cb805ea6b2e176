//! A revocation storm: revocations written through another replica at a steady rate
//! while a mirror serves checks. What it costs the checks (their p99, quiet against
//! during the storm) and how long each revocation takes to reach the mirror.
//!
//! ```text
//! cargo bench --bench storm                         # 20k revocations/s for 3 s
//! STORM_RATE=5000 STORM_SECS=5 cargo bench --bench storm
//! ```
//!
//! - The writer is a `RedisStore` on the mirror's prefix (another replica's), revoking
//!   fresh tokens in a burst every millisecond (`STORM_RATE / 1000` of them, at once
//!   on its multiplexed connection), for `STORM_SECS` seconds.
//! - A checker thread calls the mirror's `lookup_immediate` (what the layer calls for a
//!   mirror in sync) on live tokens without pause, timing each call; it runs for as
//!   long with no storm first (the quiet figure), then during it.
//! - A watcher thread takes each revocation as its call starts and polls the mirror
//!   until the mirror refuses it: its propagation time (a revocation is timed when the
//!   ones before it have arrived, so a figure errs long, never short).
//!
//! Not a criterion bench: each phase runs once and prints one line. Needs a
//! `redis-server` (started privately, see tests/support); without one it says why and
//! does nothing.

#[path = "../tests/support/mod.rs"]
mod support;

mod common;

use std::collections::VecDeque;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::env_number;
use futures_util::future::join_all;
use tower_jwt_revoke::RevocationKey;
use tower_jwt_revoke::store::{MirrorStore, RevocationQuery, RevocationStore};

fn query(token: RevocationKey) -> RevocationQuery {
    RevocationQuery {
        token,
        subject: Some(RevocationKey::subject(Some(common::ISSUER), "alice")),
        session: None,
        issued_at: Some(common::now_secs()),
    }
}

/// Times `lookup_immediate` on `mirror` in a loop on a thread of its own until `stop`.
fn checker(mirror: MirrorStore, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<Duration>> {
    std::thread::spawn(move || {
        let live: Vec<RevocationQuery> = (0..1024)
            .map(|n| query(RevocationKey::token(Some("storm-live"), &n.to_string())))
            .collect();
        let mut took = Vec::with_capacity(1 << 22);
        let mut n = 0usize;
        while !stop.load(Ordering::Relaxed) {
            let start = Instant::now();
            let lookup = mirror.lookup_immediate(&live[n % live.len()]);
            took.push(start.elapsed());
            assert!(lookup.is_some(), "the mirror stopped serving locally");
            black_box(lookup);
            n += 1;
        }
        took
    })
}

/// Polls `mirror` for each revocation `started` sends, in order; returns their times.
fn watcher(
    mirror: MirrorStore,
    started: mpsc::Receiver<(RevocationKey, Instant)>,
) -> std::thread::JoinHandle<Vec<Duration>> {
    std::thread::spawn(move || {
        let mut pending: VecDeque<(RevocationKey, Instant)> = VecDeque::new();
        let mut times = Vec::new();
        let mut open = true;
        while open || !pending.is_empty() {
            loop {
                match started.try_recv() {
                    Ok(next) => pending.push_back(next),
                    Err(mpsc::TryRecvError::Empty) => break,
                    Err(mpsc::TryRecvError::Disconnected) => {
                        open = false;
                        break;
                    }
                }
            }
            while let Some((token, at)) = pending.front() {
                let refused = mirror
                    .lookup_immediate(&query(*token))
                    .is_some_and(|lookup| lookup.token_revoked);
                if !refused {
                    assert!(at.elapsed() < Duration::from_secs(10), "not propagated in 10 s");
                    break;
                }
                times.push(at.elapsed());
                pending.pop_front();
            }
            std::thread::sleep(Duration::from_micros(20));
        }
        times
    })
}

fn quantile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort_unstable();
    samples
        .get(((samples.len().saturating_sub(1)) as f64 * q).round() as usize)
        .copied()
        .unwrap_or_default()
}

fn checks(samples: &mut [Duration]) -> String {
    format!(
        "{} checks, p50 {:?}, p99 {:?}, p99.9 {:?}, max {:?}",
        samples.len(),
        quantile(samples, 0.5),
        quantile(samples, 0.99),
        quantile(samples, 0.999),
        quantile(samples, 1.0)
    )
}

fn main() {
    let rate = env_number("STORM_RATE", 20_000).max(1000);
    let secs = env_number("STORM_SECS", 3).max(1);
    let Some(server) = support::RedisServer::start() else {
        eprintln!("storm: no Redis, so the storm bench is skipped");
        return;
    };
    let runtime = common::runtime();
    let _entered = runtime.enter();
    let prefix = support::unique_prefix();
    let writer = common::redis_store(server.url(), &prefix);
    let mirror = MirrorStore::start(common::redis_store(server.url(), &prefix));
    runtime
        .block_on(mirror.wait_until_synced(Duration::from_secs(10)))
        .expect("mirror in sync");
    let phase = Duration::from_secs(secs);

    // Quiet: checks alone.
    let stop = Arc::new(AtomicBool::new(false));
    let quiet = checker(mirror.clone(), Arc::clone(&stop));
    std::thread::sleep(phase);
    stop.store(true, Ordering::Relaxed);
    let mut quiet = quiet.join().expect("checker");

    // The storm: bursts every millisecond through the writer, checks and the watcher
    // running meanwhile.
    let stop = Arc::new(AtomicBool::new(false));
    let storm_checks = checker(mirror.clone(), Arc::clone(&stop));
    let (started, receiver) = mpsc::channel();
    let watch = watcher(mirror.clone(), receiver);
    let per_burst = rate / 1000;
    let (written, took) = runtime.block_on(async {
        let begin = Instant::now();
        let mut ticks = tokio::time::interval(Duration::from_millis(1));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut written = 0u64;
        while begin.elapsed() < phase {
            ticks.tick().await;
            let burst: Vec<RevocationKey> = (0..per_burst)
                .map(|n| RevocationKey::token(Some("storm"), &(written + n).to_string()))
                .collect();
            let now = Instant::now();
            for token in &burst {
                started.send((*token, now)).expect("watcher");
            }
            let writes = burst
                .iter()
                .map(|token| writer.revoke_token_of(token, None, Duration::from_secs(600)));
            for outcome in join_all(writes).await {
                outcome.expect("revoke");
            }
            written += per_burst;
        }
        (written, begin.elapsed())
    });
    drop(started);
    let mut propagation = watch.join().expect("watcher");
    stop.store(true, Ordering::Relaxed);
    let mut storm = storm_checks.join().expect("checker");

    println!(
        "storm: {written} revocations in {:.2} s ({:.0}/s, asked {rate}/s) through another replica",
        took.as_secs_f64(),
        written as f64 / took.as_secs_f64()
    );
    let (quiet_p99, storm_p99) = (quantile(&mut quiet, 0.99), quantile(&mut storm, 0.99));
    println!("storm: quiet mirror check: {}", checks(&mut quiet));
    println!("storm: mirror check during the storm: {}", checks(&mut storm));
    println!(
        "storm: check p99 during / quiet: {:.2}×",
        storm_p99.as_secs_f64() / quiet_p99.as_secs_f64().max(1e-9)
    );
    println!(
        "storm: propagation to the mirror ({} revocations): p50 {:?}, p99 {:?}, max {:?}",
        propagation.len(),
        quantile(&mut propagation, 0.5),
        quantile(&mut propagation, 0.99),
        quantile(&mut propagation, 1.0)
    );
}
