//! One process of the fleet: some `MirrorStore`s, each with its own `RedisStore` (its
//! own connections), as that many replicas would run them. Driven over stdin/stdout by
//! the coordinator (`main.rs`):
//!
//! - out, once every mirror serves locally: `ready <mirrors> <load ms, max> <load ms,
//!   median> <RSS bytes per mirror>`;
//! - in `p <id>`: a probe revocation about to be written (`probe_key(id)`): a token of
//!   that key is watched on every mirror (`VerifiedToken::revoked`, which the mirror
//!   wakes as it applies the revocation: no polling, no resolution limit);
//! - in `report`: out `probe <id> <mirrors that refused it> <last refusal, Unix ns>` for
//!   every probe since the last report, `checks <n> <p50 ns> <p99 ns> <max ns>` (the
//!   first worker only: checks on its first mirror, timed one by one), `health <bucket
//!   reloads> <data losses seen> <records written back>` (all its mirrors, so far),
//!   then `end`;
//! - in `quit` (or stdin closed): exits.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use tower_jwt_revoke::store::{MirrorStore, RedisStore, RevocationQuery, RevocationStore};
use tower_jwt_revoke::{JwtVerifier, Refusal, RevocationKey, RevocationLayer, VerificationKey};

/// The environment variable that makes this binary a worker: `target<TAB>prefix<TAB>
/// mirrors<TAB>expected entries<TAB>first worker (0/1)`, the target being `single=<url>`
/// or `cluster=<seed>,<seed>,...`.
pub const WORKER_ENV: &str = "TOWER_JWT_REVOKE_BENCH_FLEET_WORKER";

/// The issuer of the probes' tokens.
const PROBE_ISSUER: &str = "fleet-probe";

/// The key of probe `id`: its token's.
pub fn probe_key(id: u64) -> RevocationKey {
    RevocationKey::token(Some(PROBE_ISSUER), &id.to_string())
}

pub fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_nanos() as u64
}

/// A store on `target` under `prefix`.
pub fn store(target: &str, prefix: &str) -> RedisStore {
    let builder = match target.split_once('=') {
        Some(("single", url)) => RedisStore::builder().url(url),
        Some(("cluster", seeds)) => RedisStore::builder().cluster_nodes(seeds.split(',')),
        _ => panic!("unknown target {target}"),
    };
    builder.prefix(prefix).build().expect("redis store")
}

fn query(token: RevocationKey) -> RevocationQuery {
    RevocationQuery {
        token,
        subject: None,
        session: None,
        issued_at: None,
    }
}

/// A probe being watched: how many mirrors refused it, and when the last one did.
#[derive(Default)]
struct Probe {
    count: usize,
    last_ns: u64,
}

const PROBE_SECRET: &[u8] = b"fleet-bench-probe-secret-0123456789abcdef";

/// A layer per mirror, only to watch the probes' tokens through that mirror.
fn probe_layers(fleet: &[MirrorStore]) -> Vec<RevocationLayer> {
    let verifier = JwtVerifier::builder()
        .key(VerificationKey::hmac(Algorithm::HS256, PROBE_SECRET).expect("key"))
        .issuer(PROBE_ISSUER)
        .build()
        .expect("verifier");
    fleet
        .iter()
        .map(|mirror| RevocationLayer::new(verifier.clone(), mirror.clone()))
        .collect()
}

/// Watches probe `id`'s token on every mirror: each refusal is counted as the mirror
/// applies it.
fn watch_probe(layers: &[RevocationLayer], probes: &Arc<Mutex<BTreeMap<u64, Probe>>>, id: u64) {
    probes.lock().unwrap().insert(id, Probe::default());
    let now = unix_ns() / 1_000_000_000;
    let claims = serde_json::json!({
        "iss": PROBE_ISSUER, "jti": id.to_string(), "iat": now, "exp": now + 3600,
    });
    let jwt = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(PROBE_SECRET),
    )
    .expect("probe token");
    let token = layers[0].verifier().verify(&jwt).expect("probe token verifies");
    for layer in layers {
        let revoked = layer.watched(token.clone()).revoked();
        let probes = Arc::clone(probes);
        tokio::spawn(async move {
            if let Refusal::Revoked(_) = revoked.await {
                let at = unix_ns();
                if let Some(probe) = probes.lock().unwrap().get_mut(&id) {
                    probe.count += 1;
                    probe.last_ns = probe.last_ns.max(at);
                }
            }
        });
    }
}

pub fn run(job: &str) {
    let parts: Vec<&str> = job.split('\t').collect();
    let [target, prefix, mirrors, expected, first] = parts[..] else {
        panic!("bad worker job {job:?}")
    };
    let mirrors: usize = mirrors.parse().expect("mirrors");
    let expected: usize = expected.parse().expect("entries");
    let first = first == "1";
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let rss_before = super::common::proc_status_kib("VmRSS");
    let (fleet, mut loads) = runtime.block_on(start(target, prefix, mirrors, expected));
    let rss_after = super::common::proc_status_kib("VmRSS");
    loads.sort();
    let per_mirror = rss_after.saturating_sub(rss_before) * 1024 / mirrors as u64;
    println!(
        "ready {mirrors} {} {} {per_mirror}",
        loads.last().map_or(0, Duration::as_millis),
        loads[loads.len() / 2].as_millis()
    );
    std::io::stdout().flush().ok();

    let probes: Arc<Mutex<BTreeMap<u64, Probe>>> = Arc::default();
    let checks: Arc<Mutex<Vec<u64>>> = Arc::default();
    let layers = probe_layers(&fleet);
    if first {
        runtime.spawn(time_checks(
            fleet[0].clone(),
            Arc::clone(&checks),
            expected as u64,
        ));
    }
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let mut words = line.split_whitespace();
        match words.next() {
            Some("p") => {
                let id: u64 = words.next().and_then(|id| id.parse().ok()).expect("probe id");
                let _entered = runtime.enter();
                watch_probe(&layers, &probes, id);
            }
            Some("report") => {
                let mut out = std::io::stdout().lock();
                for (id, probe) in std::mem::take(&mut *probes.lock().unwrap()) {
                    writeln!(out, "probe {id} {} {}", probe.count, probe.last_ns).ok();
                }
                let mut samples = std::mem::take(&mut *checks.lock().unwrap());
                samples.sort_unstable();
                if !samples.is_empty() {
                    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
                    writeln!(
                        out,
                        "checks {} {} {} {}",
                        samples.len(),
                        at(0.5),
                        at(0.99),
                        at(1.0)
                    )
                    .ok();
                }
                let (reloads, losses, written_back) =
                    fleet.iter().map(MirrorStore::health).fold((0, 0, 0), |sum, h| {
                        (
                            sum.0 + h.bucket_reloads,
                            sum.1 + h.data_losses,
                            sum.2 + h.written_back,
                        )
                    });
                writeln!(out, "health {reloads} {losses} {written_back}").ok();
                writeln!(out, "end").ok();
                out.flush().ok();
            }
            _ => break,
        }
    }
    drop(fleet);
    runtime.shutdown_timeout(Duration::from_secs(1));
}

/// Starts the mirrors, a few at a time (as a fleet rolls out), and waits until every one
/// serves locally; answers each one's time from start to serving.
async fn start(
    target: &str,
    prefix: &str,
    mirrors: usize,
    expected: usize,
) -> (Vec<MirrorStore>, Vec<Duration>) {
    let mut fleet = Vec::new();
    let mut loads = Vec::new();
    for chunk in (0..mirrors).collect::<Vec<_>>().chunks(8) {
        let started = Instant::now();
        let batch: Vec<MirrorStore> = chunk
            .iter()
            .map(|_| {
                let mut mirror = MirrorStore::builder(store(target, prefix));
                if let Ok(ms) = std::env::var("FLEET_COALESCE_MS") {
                    mirror =
                        mirror.read_coalescing(Duration::from_millis(ms.parse().expect("FLEET_COALESCE_MS")));
                }
                mirror.start()
            })
            .collect();
        let mut pending: Vec<usize> = (0..batch.len()).collect();
        while !pending.is_empty() {
            pending.retain(|&at| {
                let health = batch[at].health();
                if health.serving_locally {
                    assert!(health.entries >= expected, "{health:?}");
                    loads.push(started.elapsed());
                }
                !health.serving_locally
            });
            assert!(
                started.elapsed() < Duration::from_secs(600),
                "mirrors not in sync"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        fleet.extend(batch);
    }
    (fleet, loads)
}

/// Every 10 ms, 500 local checks on `mirror` (half of revoked tokens of the live set,
/// half of tokens never revoked), each timed.
async fn time_checks(mirror: MirrorStore, samples: Arc<Mutex<Vec<u64>>>, live: u64) {
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut n: u64 = 0;
    loop {
        tick.tick().await;
        let mut batch = Vec::with_capacity(500);
        for _ in 0..500 {
            n += 1;
            let key = if n.is_multiple_of(2) {
                super::common::filler_key(n.wrapping_mul(7919) % live.max(1))
            } else {
                RevocationKey::token(Some("fleet-never"), &n.to_string())
            };
            let query = query(key);
            let started = Instant::now();
            let local = mirror.lookup_immediate(&query);
            let took = started.elapsed().as_nanos() as u64;
            // Only checks answered locally count (a mirror out of sync asks Redis).
            if local.is_some() {
                batch.push(took);
            }
        }
        samples.lock().unwrap().extend(batch);
    }
}
