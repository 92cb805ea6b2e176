//! The runner: rounds of (revocations that another mirror refuses, a fault at once,
//! the recovery check), the load beside them, the final check through stores started
//! after the last fault, and the report.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tower_jwt_revoke::store::{MirrorStore, RedisStore};

use super::before_fault;
use super::checker::{After, Named, Recovery, Violation, grouped, recover};
use super::faults::{Fault, Schedule};
use super::fleet::{Fleet, Load, Phase, Replica, named};
use super::model::Model;
use super::rng::Rng;
use super::topology::{Topology, wait_until};

/// How the run is sized and judged.
#[derive(Debug, Clone)]
pub struct Settings {
    pub seed: u64,
    /// Rounds per topology; `None`: one per fault kind.
    pub rounds: Option<usize>,
    /// Or rounds until this much time has passed.
    pub soak: Option<Duration>,
    /// How long after Redis answers again every store must agree with the model.
    pub window: Duration,
    pub mirrors: usize,
}

/// How long the checker keeps asking after the window, to tell late from lost.
const DEADLINE: Duration = Duration::from_secs(8);
/// Older revocations re-checked after each fault, besides the round's own.
const OLDER_SAMPLE: usize = 150;

/// What a run did and found.
#[derive(Default)]
pub struct Report {
    pub topology: &'static str,
    pub seed: u64,
    pub rounds: usize,
    pub faults: BTreeMap<Fault, usize>,
    pub before_fault: usize,
    /// Of which on a cold deployment (their buckets' first revocations).
    pub cold: usize,
    pub unrevoked: usize,
    pub load_revocations: u64,
    pub acknowledged: u64,
    pub checked_at_end: usize,
    pub load_checks: u64,
    pub load_check_failures: u64,
    /// Per fault: Redis answering again after the fault, and every store agreeing after.
    pub answering: Vec<(Fault, Duration)>,
    pub converged: Vec<(Fault, Option<Duration>)>,
    /// How long the revocations made before a fault took to reach another mirror.
    pub applied_after: Vec<Duration>,
    pub violations: Vec<Violation>,
}

fn millis(durations: impl Iterator<Item = Duration>) -> String {
    let mut all: Vec<u128> = durations.map(|d| d.as_millis()).collect();
    if all.is_empty() {
        return "-".into();
    }
    all.sort_unstable();
    format!("median {} max {} ms", all[all.len() / 2], all[all.len() - 1])
}

impl Report {
    pub fn summary(&self) -> String {
        let faults: Vec<String> = self.faults.iter().map(|(f, n)| format!("{f}={n}")).collect();
        let mut recovery = Vec::new();
        for fault in self.faults.keys() {
            let converged = self.converged.iter().filter(|(f, _)| f == fault);
            let never = converged.clone().filter(|(_, d)| d.is_none()).count();
            recovery.push(format!(
                "{fault}: answering {}, agreeing {}{}",
                millis(self.answering.iter().filter(|(f, _)| f == fault).map(|(_, d)| *d)),
                millis(converged.filter_map(|(_, d)| *d)),
                if never > 0 {
                    format!(" ({never} never)")
                } else {
                    String::new()
                },
            ));
        }
        format!(
            "nemesis seed={} topology={} rounds={} faults[{}] revocations: before faults {} \
             ({} on cold deployments; another mirror refused them after {}), by the load {} ({} acknowledged), \
             {} checked at the end; unrevoked {}; checks during the run {} ({} store errors); \
             violations={}\n  recovery: {}",
            self.seed,
            self.topology,
            self.rounds,
            faults.join(" "),
            self.before_fault,
            self.cold,
            millis(self.applied_after.iter().copied()),
            self.load_revocations,
            self.acknowledged,
            self.checked_at_end,
            self.unrevoked,
            self.load_checks,
            self.load_check_failures,
            self.violations.len(),
            recovery.join("; "),
        )
    }
}

/// One deployment of services sharing a blocklist: its prefix, its mirrors, what it
/// revoked.
struct Deployment {
    label: &'static str,
    prefix: String,
    fleet: Arc<Fleet>,
    model: Arc<Model>,
}

impl Deployment {
    /// Starts `mirrors` mirrors on a new prefix, and waits until they are in sync.
    async fn start(topology: &dyn Topology, label: &'static str, mirrors: usize) -> Self {
        let prefix = crate::support::unique_prefix();
        let fleet = Arc::new(Fleet::new(
            (0..mirrors)
                .map(|slot| {
                    let store = topology.builder(&prefix).build().expect("a store");
                    Replica::start(format!("{label} mirror-{slot}"), store)
                })
                .collect(),
        ));
        for replica in fleet.all() {
            replica
                .mirror
                .wait_until_synced(Duration::from_secs(20))
                .await
                .expect("a mirror in sync at the start");
        }
        Self {
            label,
            prefix,
            fleet,
            model: Arc::new(Model::new(6)),
        }
    }

    fn store(&self, topology: &dyn Topology) -> RedisStore {
        topology.builder(&self.prefix).build().expect("a store")
    }

    /// Every store the checker asks after a fault: the running mirrors (and `more`),
    /// and a `RedisStore` and a `MirrorStore` started now.
    fn stores(&self, topology: &dyn Topology, more: Option<&RedisStore>) -> Vec<Named> {
        let mut stores: Vec<Named> = self.fleet.all().iter().map(|replica| named(replica)).collect();
        if let Some(store) = more {
            stores.push((
                format!("{} acknowledging store", self.label),
                Arc::new(store.clone()),
            ));
        }
        stores.push((
            format!("{} fresh RedisStore", self.label),
            Arc::new(self.store(topology)),
        ));
        let mirror = MirrorStore::start(self.store(topology));
        stores.push((format!("{} fresh MirrorStore", self.label), Arc::new(mirror)));
        stores
    }

    /// The recovery check after a fault, on the revocations of `round` and a sample of
    /// older ones.
    async fn recover(
        &self,
        stores: &[Named],
        settings: &Settings,
        (round, fault, fault_at): (usize, Fault, Instant),
        rng: &mut Rng,
    ) -> Recovery {
        let bound = self
            .model
            .live(Duration::from_secs(15), Some(round), OLDER_SAMPLE, rng);
        let accepted = self.model.accepted.lock().unwrap().clone();
        let deadline = settings.window + DEADLINE;
        let after = After {
            round: Some(round),
            fault: fault.name(),
            at: fault_at,
        };
        recover(stores, &bound, &accepted, (settings.window, deadline), after).await
    }
}

/// Runs the nemesis against `topology`.
pub async fn run(mut topology: impl Topology, settings: Settings) -> Report {
    let name = topology.name();
    let seed = settings.seed;
    let mut rng = Rng::for_topology(seed, name);
    eprintln!("nemesis {name}: seed {seed} (TOWER_JWT_REVOKE_NEMESIS_SEED={seed} reproduces the schedule)");
    // The warm deployment lives through the run, under load; a cold one is started for
    // some rounds, and the revocations made on it right before the fault are the first
    // its buckets ever hold (the first logouts of a new deployment).
    let warm = Deployment::start(&topology, "warm", settings.mirrors).await;
    let phase = Arc::new(Phase::default());
    let acknowledging = topology.acknowledging(&warm.prefix);
    let load = Load::start(&warm.fleet, &warm.model, acknowledging.clone(), &phase, seed);
    let mut report = Report {
        topology: name,
        seed,
        ..Report::default()
    };
    let mut schedule = Schedule::new(topology.faults());
    let rounds = settings.rounds.unwrap_or(topology.faults().len());
    let started = Instant::now();
    for round in 0.. {
        let done = match settings.soak {
            Some(soak) => started.elapsed() >= soak,
            None => round >= rounds,
        };
        if done {
            break;
        }
        let fault = schedule.next(&mut rng);
        phase.round.store(round, Ordering::Relaxed);
        *phase.fault.lock().unwrap() = fault.name().to_owned();
        let cold = if rng.chance(0.5) {
            Some(Deployment::start(&topology, "cold", 2).await)
        } else {
            None
        };
        tokio::task::block_in_place(|| topology.prepare(fault, &mut rng));

        // A handful of revocations, each refused by another mirror; then the fault at once.
        let mut made = 0;
        for deployment in std::iter::once(&warm).chain(&cold) {
            let store = deployment.fleet.get(0).mirror.redis().clone();
            let at_risk = topology.at_risk(&store);
            let (revoked, unrevoked) = before_fault::revoke(
                &deployment.fleet,
                &deployment.model,
                &mut rng,
                round,
                at_risk.as_deref(),
                &store,
            )
            .await;
            made += revoked.len();
            if deployment.label == "cold" {
                report.cold += revoked.len();
            }
            report
                .applied_after
                .extend(revoked.iter().filter_map(|(_, after)| *after));
            report.unrevoked += unrevoked;
        }
        report.before_fault += made;
        let fault_at = Instant::now();
        let what = if fault == Fault::MirrorRestart {
            let slot = rng.below(warm.fleet.len());
            let name = warm.fleet.restart(slot, warm.store(&topology));
            format!("mirror in slot {slot} dropped; {name} started")
        } else {
            tokio::task::block_in_place(|| topology.inject(fault, &mut rng))
        };
        // From the end of the injection (a failover's included) until every master answers.
        let answering =
            tokio::task::block_in_place(|| wait_until(Duration::from_secs(30), || topology.answers()))
                .unwrap_or_else(|| {
                    panic!("seed {seed} {name} round {round} {fault}: Redis did not answer within 30 s")
                });

        let warm_stores = warm.stores(&topology, acknowledging.as_ref());
        let cold_stores = cold.as_ref().map(|cold| cold.stores(&topology, None));
        // The samples depend on how much the load wrote (timing): drawn from generators
        // of their own, so that the schedule replays from the seed.
        let mut warm_rng = Rng::for_topology(rng.next_u64(), "warm");
        let mut cold_rng = Rng::for_topology(rng.next_u64(), "cold");
        let (recovery, cold_recovery) = tokio::join!(
            warm.recover(&warm_stores, &settings, (round, fault, fault_at), &mut warm_rng),
            async {
                match (&cold, &cold_stores) {
                    (Some(cold), Some(stores)) => Some(
                        cold.recover(stores, &settings, (round, fault, fault_at), &mut cold_rng)
                            .await,
                    ),
                    _ => None,
                }
            }
        );
        let mut converged = recovery.converged;
        let mut violations = recovery.violations;
        if let Some(cold) = cold_recovery {
            converged = converged.zip(cold.converged).map(|(a, b)| a.max(b));
            violations.extend(cold.violations);
        }
        eprintln!(
            "nemesis {name} seed {seed} round {round} {fault}: {what}; {made} revoked right before{}; \
             Redis answering {answering:?} after; stores agreeing {converged:?} after that; {} violations",
            cold.as_ref().map_or(String::new(), |cold| format!(
                " (on warm and cold, prefix {})",
                cold.prefix
            )),
            violations.len(),
        );
        for line in grouped(&violations) {
            eprintln!("nemesis VIOLATION seed={seed} topology={name} {line}");
        }
        *report.faults.entry(fault).or_default() += 1;
        report.answering.push((fault, answering));
        report.converged.push((fault, converged));
        report.violations.extend(violations);
        report.rounds += 1;
        drop((warm_stores, cold_stores, cold));
        tokio::task::block_in_place(|| topology.heal());
    }

    let stats = load.stop().await;
    report.load_revocations = stats.revocations.load(Ordering::Relaxed);
    report.acknowledged = stats.acknowledged.load(Ordering::Relaxed);
    report.load_checks = stats.checks.load(Ordering::Relaxed);
    report.load_check_failures = stats.check_failures.load(Ordering::Relaxed);
    let seen = stats.violations.lock().unwrap().clone();
    for line in grouped(&seen) {
        eprintln!("nemesis VIOLATION seed={seed} topology={name} (seen by the load) {line}");
    }
    report.violations.extend(seen);

    // At the end: stores started after the last fault, every binding revocation of the
    // warm deployment (a cold one is gone with its round).
    let fresh_mirror = MirrorStore::start(warm.store(&topology));
    let _ = fresh_mirror.wait_until_synced(Duration::from_secs(20)).await;
    let mut stores: Vec<Named> = vec![
        (
            "fresh RedisStore at the end".into(),
            Arc::new(warm.store(&topology)),
        ),
        ("fresh MirrorStore at the end".into(), Arc::new(fresh_mirror)),
    ];
    stores.extend(warm.fleet.all().iter().map(|replica| named(replica)));
    let bound = warm.model.live(Duration::from_secs(15), None, 0, &mut rng);
    report.checked_at_end = bound.len();
    let accepted = warm.model.accepted.lock().unwrap().clone();
    let after = After {
        round: None,
        fault: "none (end)",
        at: Instant::now(),
    };
    let window = (settings.window, settings.window);
    let end = recover(&stores, &bound, &accepted, window, after).await;
    for line in grouped(&end.violations) {
        eprintln!("nemesis VIOLATION seed={seed} topology={name} {line}");
    }
    report.violations.extend(end.violations);
    eprintln!("{}", report.summary());
    report
}
