//! A fleet on one blocklist: N replicas, each with its own `MirrorStore` (its own
//! connections), on one `redis-server` and on a 3-master cluster, under a steady write
//! rate and a storm; and what Redis's memory does under a steady rate.
//!
//! ```text
//! cargo bench --bench fleet                                  # quick: N = 1, 10, 50
//! FLEET_MIRRORS=1,10,50,200 FLEET_LIVE=1000000 cargo bench --bench fleet -- fleet/mirrors
//! FLEET_MEMORY_SECS=600 cargo bench --bench fleet -- fleet/memory
//! ```
//!
//! - `fleet/mirrors`: for each target (`FLEET_TARGETS`, default `single,cluster`) a live
//!   set of `FLEET_LIVE` token revocations (default 100,000; written pipelined, as
//!   another writer would, with their index members), then for each N of
//!   `FLEET_MIRRORS` (default `1,10,50`): N mirrors over `FLEET_PROCESSES` worker
//!   processes (default 4; this binary, re-run), started 8 at a time per process. Then:
//!   `FLEET_STEADY_SECS` (default 5) at `FLEET_RATE` revocations/s (default 1,000;
//!   every 10th a probe), the same again while one more mirror starts cold in a process
//!   of its own (its time to serve locally), and `FLEET_STORM_SECS` (default 2) at
//!   `FLEET_STORM_RATE` (default 20,000; every 200th a probe). Propagation of a probe:
//!   from just before its write to its refusal by the *last* mirror (each mirror polled
//!   locally every millisecond: a 1 ms resolution). Redis CPU (`INFO cpu`, user + sys,
//!   summed over the masters) and bytes out (`INFO stats` `total_net_output_bytes`) per
//!   revocation; each mirror's RSS; the time of a local check on one mirror meanwhile.
//!   `FLEET_COALESCE_MS` sets the mirrors' `read_coalescing` (default: the crate's, off).
//!   `FLEET_COMMANDSTATS=1` prints what Redis ran in each phase.
//! - `fleet/memory`: Redis `used_memory` per live revocation and per feed event
//!   (`FLEET_MEMORY_LIVE`, default 100,000, written through the store's scripts), then
//!   `FLEET_MEMORY_SECS` (default 60) at 1,000 revocations/s of 5-second tokens with
//!   the default feed retention: `used_memory`, keys and feed lengths every 5 s.
//!
//! Needs `redis-server` (and `redis-cli` for the cluster; see tests/support); without
//! them it says why and does nothing. Every server it starts is stopped at the end.

#[path = "../../tests/support/mod.rs"]
mod support;

#[path = "../common/mod.rs"]
mod common;

mod drive;
mod memory;
mod process;
mod worker;

fn main() {
    if let Ok(job) = std::env::var(worker::WORKER_ENV) {
        worker::run(&job);
        return;
    }
    let wanted = common::wanted();
    if wanted("fleet/mirrors") {
        drive::run();
    }
    if wanted("fleet/memory") {
        memory::run();
    }
}

/// A field of an `INFO` reply.
fn info_field(info: &str, field: &str) -> Option<f64> {
    info.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().parse().ok())
}

/// `INFO section` of one URL, waiting as long as a busy server takes.
async fn info(url: &str, section: &str) -> String {
    for _ in 0..20 {
        let client = tower_jwt_revoke::redis::Client::open(url).expect("redis url");
        let config = tower_jwt_revoke::redis::AsyncConnectionConfig::new()
            .set_response_timeout(Some(std::time::Duration::from_secs(10)));
        let Ok(mut connection) = client.get_multiplexed_async_connection_with_config(&config).await else {
            continue;
        };
        if let Ok(info) = tower_jwt_revoke::redis::cmd("INFO")
            .arg(section)
            .query_async::<String>(&mut connection)
            .await
        {
            return info;
        }
    }
    panic!("INFO {section} of {url}: no answer")
}

/// `INFO` of every URL, summed for `field`.
async fn info_sum(urls: &[String], section: &str, field: &str) -> f64 {
    let mut sum = 0.0;
    for url in urls {
        sum += info_field(&info(url, section).await, field).unwrap_or(0.0);
    }
    sum
}

/// `INFO commandstats` of every URL, summed: command -> (calls, µs).
async fn command_stats(urls: &[String]) -> std::collections::BTreeMap<String, (f64, f64)> {
    let mut stats = std::collections::BTreeMap::new();
    for url in urls {
        let info = info(url, "commandstats").await;
        for line in info.lines() {
            let Some((name, rest)) = line.strip_prefix("cmdstat_").and_then(|l| l.split_once(':')) else {
                continue;
            };
            let field = |key: &str| {
                rest.split(',')
                    .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(0.0)
            };
            let entry = stats.entry(name.to_owned()).or_insert((0.0, 0.0));
            entry.0 += field("calls");
            entry.1 += field("usec");
        }
    }
    stats
}
