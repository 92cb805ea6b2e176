//! `fleet/mirrors`: the coordinator. Starts the target, writes the live set, starts the
//! worker processes, writes at the steady rate and in a storm, and prints the table.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tower_jwt_revoke::RevocationKey;
use tower_jwt_revoke::redis::aio::ConnectionLike;
use tower_jwt_revoke::store::{RedisStore, RevocationStore};

use super::common::env_number;
use super::process::{Worker, collect};
use super::support::RedisServer;
use super::support::cluster::RedisCluster;
use super::worker::{probe_key, store, unix_ns};
use super::{command_stats, common, info_sum};

/// How long the revocations written by the bench live: past its end.
const WRITE_TTL: Duration = Duration::from_secs(300);

/// What one phase measured.
struct Phase {
    /// Revocations Redis applied per second.
    rate: f64,
    /// Writes the writer saw fail (its command timeout: Redis applied them later).
    failed: u64,
    /// Propagation to every mirror, ms: p50, p99, max; probes that did not reach all.
    propagation: Option<(f64, f64, f64)>,
    missed: usize,
    cpu_us_per_rev: f64,
    cpu_share: f64,
    bytes_out_per_rev: f64,
    /// Local check, ns: p50, p99, max.
    checks: Option<(u64, u64, u64)>,
}

pub fn run() {
    let targets = std::env::var("FLEET_TARGETS").unwrap_or_else(|_| "single,cluster".into());
    let live = env_number("FLEET_LIVE", 100_000);
    let sizes: Vec<usize> = std::env::var("FLEET_MIRRORS")
        .unwrap_or_else(|_| "1,10,50".into())
        .split(',')
        .map(|n| n.trim().parse().expect("FLEET_MIRRORS: numbers"))
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    println!(
        "| target | mirrors | phase | revocations/s (writer timeouts) | propagation p50 / p99 / max (ms) | probes missed | Redis CPU µs/revocation | Redis CPU (share of a core) | bytes out/revocation | local check p50 / p99 (ns) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut extra = Vec::new();
    for target in targets.split(',') {
        // Kept alive (and stopped at the end of the loop) by these bindings.
        let (server, cluster);
        let (address, masters): (String, Vec<String>) = match target {
            "single" => {
                let Some(started) = RedisServer::start_private(false) else {
                    continue;
                };
                server = started;
                (format!("single={}", server.url()), vec![server.url().to_owned()])
            }
            "cluster" => {
                let Some(started) = RedisCluster::start() else {
                    continue;
                };
                cluster = started;
                // The masters: a replica's commands (what it replicates) are not the
                // blocklist's cost.
                let mut masters = Vec::new();
                for node in &cluster.nodes {
                    let role = runtime.block_on(super::info(&node.url(), "replication"));
                    if role.lines().any(|line| line.trim() == "role:master") {
                        masters.push(node.url());
                    }
                }
                (format!("cluster={}", cluster.seeds_env()), masters)
            }
            other => panic!("unknown target {other}"),
        };
        let prefix = support_prefix();
        let writer = store(&address, &prefix);
        let took = runtime.block_on(fill(&writer, &address, live));
        extra.push(format!(
            "{target}: {live} live revocations written in {:.1} s",
            took.as_secs_f64()
        ));
        for &mirrors in &sizes {
            let (rows, notes) = runtime.block_on(fleet(&writer, &address, &prefix, &masters, mirrors, live));
            for (phase, measured) in rows {
                print_row(target, mirrors, phase, &measured);
            }
            extra.push(format!("{target}, {mirrors} mirrors: {notes}"));
        }
    }
    println!();
    for line in extra {
        println!("{line}");
    }
}

fn support_prefix() -> String {
    super::support::unique_prefix()
}

fn print_row(target: &str, mirrors: usize, phase: &str, m: &Phase) {
    let propagation = m.propagation.map_or("-".into(), |(p50, p99, max)| {
        format!("{p50:.1} / {p99:.1} / {max:.1}")
    });
    let checks = m
        .checks
        .map_or("-".into(), |(p50, p99, _)| format!("{p50} / {p99}"));
    println!(
        "| {target} | {mirrors} | {phase} | {:.0} ({}) | {propagation} | {} | {:.1} | {:.0} % | {:.0} | {checks} |",
        m.rate,
        m.failed,
        m.missed,
        m.cpu_us_per_rev,
        m.cpu_share * 100.0,
        m.bytes_out_per_rev,
    );
}

/// The live set: `live` token revocations written pipelined, as another writer would
/// (record and index member, no feed event), one pipeline per bucket and batch.
async fn fill(store: &RedisStore, address: &str, live: u64) -> Duration {
    let started = Instant::now();
    match address.split_once('=') {
        Some(("single", url)) => fill_on(store, &mut common::connection(url).await, live).await,
        Some(("cluster", seeds)) => {
            let client =
                tower_jwt_revoke::redis::cluster::ClusterClient::new(seeds.split(',').collect::<Vec<_>>())
                    .expect("seeds");
            let mut connection = client.get_async_connection().await.expect("cluster connection");
            fill_on(store, &mut connection, live).await;
        }
        _ => unreachable!(),
    }
    started.elapsed()
}

async fn fill_on(store: &RedisStore, connection: &mut impl ConnectionLike, live: u64) {
    // Expiries a millisecond apart over the second half hour, as revocations of tokens
    // issued at different times are (a load reads an index page by page, by expiry).
    let now_ms = unix_ns() / 1_000_000;
    common::write_through(store, connection, live, |n| now_ms + 1_800_000 + n % 1_800_000).await;
}

/// One fleet of `mirrors`: started, measured in each phase, stopped.
async fn fleet(
    writer: &RedisStore,
    address: &str,
    prefix: &str,
    masters: &[String],
    mirrors: usize,
    live: u64,
) -> (Vec<(&'static str, Phase)>, String) {
    let processes = (env_number("FLEET_PROCESSES", 4) as usize).clamp(1, mirrors);
    let started = Instant::now();
    let spawns: Vec<_> = (0..processes)
        .map(|at| {
            let count = mirrors / processes + usize::from(at < mirrors % processes);
            let (address, prefix) = (address.to_owned(), prefix.to_owned());
            tokio::task::spawn_blocking(move || Worker::start(&address, &prefix, count, live, at == 0))
        })
        .collect();
    let mut workers = Vec::new();
    for spawn in spawns {
        workers.push(spawn.await.expect("worker start"));
    }
    let fleet_ready = started.elapsed();
    let workers = Arc::new(Mutex::new(workers));
    let rate = env_number("FLEET_RATE", 1_000) as f64;
    let storm = env_number("FLEET_STORM_RATE", 20_000) as f64;
    let steady_for = Duration::from_secs(env_number("FLEET_STEADY_SECS", 5));
    let storm_for = Duration::from_secs(env_number("FLEET_STORM_SECS", 2));
    let probes = AtomicU64::new(0);
    let mut rows = Vec::new();

    let steady = phase(writer, &workers, masters, &probes, rate, steady_for, 10, mirrors).await;
    rows.push(("steady", steady));
    // One more replica starting cold, in a process of its own, while the fleet runs.
    let cold = {
        let (address, prefix) = (address.to_owned(), prefix.to_owned());
        tokio::task::spawn_blocking(move || {
            let worker = Worker::start(&address, &prefix, 1, live, false);
            worker.load_ms.0
        })
    };
    let during_cold = phase(writer, &workers, masters, &probes, rate, steady_for, 10, mirrors).await;
    let cold_ms = cold.await.expect("cold start");
    rows.push(("steady, one starting", during_cold));
    let stormy = phase(writer, &workers, masters, &probes, storm, storm_for, 200, mirrors).await;
    rows.push(("storm", stormy));

    let workers = Arc::try_unwrap(workers)
        .ok()
        .expect("phases done")
        .into_inner()
        .unwrap();
    let rss: u64 = workers
        .iter()
        .map(|w| w.rss_per_mirror * w.mirrors as u64)
        .sum::<u64>()
        / mirrors as u64;
    let load_max = workers.iter().map(|w| w.load_ms.0).max().unwrap_or(0);
    let notes = format!(
        "fleet serving locally {:.1} s after start (slowest mirror {load_max} ms from its start, 8 starting at once per process), {:.1} MiB RSS per mirror, a cold start beside the running fleet {cold_ms} ms",
        fleet_ready.as_secs_f64(),
        rss as f64 / (1024.0 * 1024.0),
    );
    drop(workers);
    (rows, notes)
}

/// Writes at `rate` for `run` (every `probe_every`th a probe), then collects the probes.
#[allow(clippy::too_many_arguments)]
async fn phase(
    writer: &RedisStore,
    workers: &Arc<Mutex<Vec<Worker>>>,
    masters: &[String],
    probes: &AtomicU64,
    rate: f64,
    run: Duration,
    probe_every: u64,
    mirrors: usize,
) -> Phase {
    let cpu = || async {
        info_sum(masters, "cpu", "used_cpu_sys").await + info_sum(masters, "cpu", "used_cpu_user").await
    };
    let (cpu_before, out_before) = (
        cpu().await,
        info_sum(masters, "stats", "total_net_output_bytes").await,
    );
    let commands_before = command_stats(masters).await;
    let in_flight = Arc::new(Semaphore::new(1024));
    let written = Arc::new(AtomicU64::new(0));
    let mut sent: HashMap<u64, u64> = HashMap::new();
    let started = Instant::now();
    let mut n: u64 = 0;
    while started.elapsed() < run {
        let due = started + Duration::from_secs_f64(n as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        let key = if n.is_multiple_of(probe_every) {
            let id = probes.fetch_add(1, Ordering::Relaxed);
            for worker in workers.lock().unwrap().iter_mut() {
                worker.send(&format!("p {id}"));
            }
            sent.insert(id, unix_ns());
            probe_key(id)
        } else {
            RevocationKey::token(Some("fleet-write"), &format!("{}-{n}", unix_ns()))
        };
        let permit = Arc::clone(&in_flight).acquire_owned().await.expect("semaphore");
        let (writer, written) = (writer.clone(), Arc::clone(&written));
        tokio::spawn(async move {
            if writer.revoke_token_of(&key, None, WRITE_TTL).await.is_ok() {
                written.fetch_add(1, Ordering::Relaxed);
            }
            drop(permit);
        });
        n += 1;
    }
    let _all = in_flight.acquire_many(1024).await.expect("semaphore");
    let wall = started.elapsed();
    let (cpu_after, out_after) = (
        cpu().await,
        info_sum(masters, "stats", "total_net_output_bytes").await,
    );
    let stats = command_stats(masters).await;
    // What Redis applied, counted by the feed events' `INCR` (the stores' loss watch
    // runs scripts too): a write whose answer came too late for the writer (its command
    // timeout) was applied all the same, and every mirror read it.
    let scripts: f64 = ["incr"]
        .iter()
        .map(|name| {
            let after = stats.get(*name).map_or(0.0, |s| s.0);
            after - commands_before.get(*name).map_or(0.0, |s| s.0)
        })
        .sum::<f64>()
        .max(1.0);
    let mut commands: Vec<String> = stats
        .into_iter()
        .map(|(name, (calls, usec))| {
            let (calls0, usec0) = commands_before.get(&name).copied().unwrap_or_default();
            (name, calls - calls0, usec - usec0)
        })
        .filter(|(_, calls, _)| *calls > 0.0)
        .map(|(name, calls, usec)| format!("{name} {calls:.0} calls {usec:.0} µs"))
        .collect();
    commands.sort();
    // Stragglers: a probe not everywhere by now counts as missed.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let failed = n.saturating_sub(written.load(Ordering::Relaxed));
    let (seen, checks) = collect(workers);
    let mut delays = Vec::new();
    let mut missed = 0;
    for (id, t0) in sent {
        match seen.get(&id) {
            Some(&(count, last)) if count == mirrors => delays.push(last.saturating_sub(t0) as f64 / 1e6),
            _ => missed += 1,
        }
    }
    delays.sort_by(f64::total_cmp);
    if std::env::var("FLEET_COMMANDSTATS").is_ok() {
        eprintln!(
            "commands in {:.1} s at {rate}/s, {mirrors} mirrors: {}",
            wall.as_secs_f64(),
            commands.join("; ")
        );
    }
    let at = |q: f64| delays[((delays.len() - 1) as f64 * q).round() as usize];
    Phase {
        rate: scripts / wall.as_secs_f64(),
        failed,
        propagation: (!delays.is_empty()).then(|| (at(0.5), at(0.99), at(1.0))),
        missed,
        cpu_us_per_rev: (cpu_after - cpu_before) * 1e6 / scripts,
        cpu_share: (cpu_after - cpu_before) / wall.as_secs_f64(),
        bytes_out_per_rev: (out_after - out_before) / scripts,
        checks,
    }
}
