//! The runner: rounds of (revocations that another mirror refuses, a fault at once,
//! the recovery check), the load beside them, the final check through stores started
//! after the last fault, and the report.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tower_jwt_revoke::RevocationKey;
use tower_jwt_revoke::store::{MirrorStore, RedisStore, RevocationStore};

use super::checker::{Named, Violation, recover};
use super::faults::{Fault, Schedule};
use super::fleet::{Fleet, Load, Phase, Replica, named};
use super::model::{Binding, Model, Origin, Plan, SCOPES, Scope};
use super::rng::Rng;
use super::topology::Topology;

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
/// How long a revocation made right before a fault may take to reach another mirror.
const APPLY_WITHIN: Duration = Duration::from_secs(3);
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
                if never > 0 { format!(" ({never} never)") } else { String::new() },
            ));
        }
        format!(
            "nemesis seed={} topology={} rounds={} faults[{}] revocations: before faults {} \
             (another mirror refused them after {}), by the load {} ({} acknowledged), \
             {} checked at the end; unrevoked {}; checks during the run {} ({} store errors); \
             violations={}\n  recovery: {}",
            self.seed,
            self.topology,
            self.rounds,
            faults.join(" "),
            self.before_fault,
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

/// Runs the nemesis against `topology`.
pub async fn run(mut topology: impl Topology, settings: Settings) -> Report {
    let name = topology.name();
    let seed = settings.seed;
    let mut rng = Rng::for_topology(seed, name);
    eprintln!("nemesis {name}: seed {seed} (TOWER_JWT_REVOKE_NEMESIS_SEED={seed} reproduces the schedule)");
    let prefix = crate::support::unique_prefix();
    let build = |topology: &dyn Topology| topology.builder(&prefix).build().expect("a store");
    let fleet = Arc::new(Fleet::new(
        (0..settings.mirrors)
            .map(|slot| Replica::start(format!("mirror-{slot}"), build(&topology)))
            .collect(),
    ));
    for replica in fleet.all() {
        replica
            .mirror
            .wait_until_synced(Duration::from_secs(20))
            .await
            .expect("a mirror in sync at the start");
    }
    let model = Arc::new(Model::new(6));
    let phase = Arc::new(Phase::default());
    let acknowledging = topology.acknowledging(&prefix);
    let load = Load::start(&fleet, &model, acknowledging.clone(), &phase, seed);
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
        let any = fleet.get(0).mirror.redis().clone();
        let at_risk = tokio::task::block_in_place(|| topology.prepare(fault, &mut rng, &any));

        // A handful of revocations, each refused by another mirror; then the fault at once.
        let (made, unrevoked) = revoke_before_fault(&fleet, &model, &mut rng, round, at_risk.as_deref(), &any).await;
        report.before_fault += made.len();
        report.applied_after.extend(made.iter().filter_map(|(_, after)| *after));
        report.unrevoked += unrevoked;
        let what = if fault == Fault::MirrorRestart {
            let slot = rng.below(fleet.len());
            let name = fleet.restart(slot, build(&topology));
            format!("mirror in slot {slot} dropped; {name} started")
        } else {
            tokio::task::block_in_place(|| topology.inject(fault, &mut rng))
        };
        // From the end of the injection (a failover's included) until every master answers.
        let answering = tokio::task::block_in_place(|| {
            super::topology::wait_until(Duration::from_secs(30), || topology.answers())
        })
        .expect("Redis answers again within 30 s");

        // Stores started after the fault, and the running mirrors.
        let mut stores: Vec<Named> = fleet.all().iter().map(|replica| named(replica)).collect();
        if let Some(store) = &acknowledging {
            stores.push(("acknowledging store".into(), Arc::new(store.clone())));
        }
        stores.push(("fresh RedisStore".into(), Arc::new(build(&topology))));
        stores.push(("fresh MirrorStore".into(), Arc::new(MirrorStore::start(build(&topology)))));
        let bound = model.live(Duration::from_secs(15), Some(round), OLDER_SAMPLE, &mut rng);
        let accepted = model.accepted.lock().unwrap().clone();
        let recovery = recover(
            &stores,
            &bound,
            &accepted,
            settings.window,
            settings.window + DEADLINE,
            Some(round),
            fault.name(),
        )
        .await;
        eprintln!(
            "nemesis {name} seed {seed} round {round} {fault}: {what}; {} revoked right before; \
             Redis answering {answering:?} after; stores agreeing {:?} after that; {} violations",
            made.len(),
            recovery.converged,
            recovery.violations.len(),
        );
        for violation in &recovery.violations {
            eprintln!("nemesis VIOLATION seed={seed} topology={name} {violation}");
        }
        *report.faults.entry(fault).or_default() += 1;
        report.answering.push((fault, answering));
        report.converged.push((fault, recovery.converged));
        report.violations.extend(recovery.violations);
        report.rounds += 1;
        drop(stores);
        tokio::task::block_in_place(|| topology.heal());
    }

    let stats = load.stop().await;
    report.load_revocations = stats.revocations.load(Ordering::Relaxed);
    report.acknowledged = stats.acknowledged.load(Ordering::Relaxed);
    report.load_checks = stats.checks.load(Ordering::Relaxed);
    report.load_check_failures = stats.check_failures.load(Ordering::Relaxed);
    for violation in stats.violations.lock().unwrap().iter() {
        eprintln!("nemesis VIOLATION seed={seed} topology={name} (seen by the load) {violation}");
        report.violations.push(violation.clone());
    }

    // At the end: stores started after the last fault, every binding revocation.
    let fresh_mirror = MirrorStore::start(build(&topology));
    let _ = fresh_mirror.wait_until_synced(Duration::from_secs(20)).await;
    let mut stores: Vec<Named> = vec![
        ("fresh RedisStore at the end".into(), Arc::new(build(&topology))),
        ("fresh MirrorStore at the end".into(), Arc::new(fresh_mirror)),
    ];
    stores.extend(fleet.all().iter().map(|replica| named(replica)));
    let bound = model.live(Duration::from_secs(15), None, 0, &mut rng);
    report.checked_at_end = bound.len();
    let accepted = model.accepted.lock().unwrap().clone();
    let end = recover(&stores, &bound, &accepted, settings.window, settings.window, None, "none (end)").await;
    for violation in &end.violations {
        eprintln!("nemesis VIOLATION seed={seed} topology={name} {violation}");
    }
    report.violations.extend(end.violations);
    eprintln!("{}", report.summary());
    report
}

/// The revocations made right before a fault: one of each scope and one more token, each
/// through a random mirror and waited for until another mirror refuses it; and, half
/// the time, a token revoked and unrevoked, waited for until every mirror accepts it.
/// Where only some buckets are at risk, the subjects are picked in them.
async fn revoke_before_fault(
    fleet: &Fleet,
    model: &Model,
    rng: &mut Rng,
    round: usize,
    at_risk: Option<&[u32]>,
    store: &RedisStore,
) -> (Vec<(Scope, Option<Duration>)>, usize) {
    let subject = |rng: &mut Rng| {
        let buckets = at_risk?;
        (0..).find_map(|n| {
            let name = format!("at-risk-{round}-{}-{n}", rng.next_u64());
            buckets
                .contains(&store.bucket_of(&RevocationKey::subject(None, &name)))
                .then_some(name)
        })
    };
    let mut plans = Vec::new();
    for scope in SCOPES.into_iter().chain([Scope::Token]) {
        let name = subject(rng);
        plans.push(model.plan(scope, rng, name));
    }
    let mut written = Vec::new();
    for plan in plans {
        let slot = rng.below(fleet.len());
        let replica = fleet.get(slot);
        let made = Instant::now();
        if plan.write(&replica.mirror).await.is_ok() {
            written.push((plan, slot, replica.name.clone(), made));
        }
    }
    let mut made = Vec::new();
    for (plan, slot, through, at) in written {
        let after = applied_elsewhere(fleet, slot, &plan, at).await;
        model.bind(&plan, at, round, Origin::BeforeFault, Binding::Applied, &through);
        made.push((plan.scope, after));
    }
    let mut unrevoked = 0;
    if rng.chance(0.5) {
        let name = subject(rng);
        let plan = model.plan(Scope::Token, rng, name);
        let slot = rng.below(fleet.len());
        let writer = fleet.get(slot);
        if plan.write(&writer.mirror).await.is_ok()
            && applied_elsewhere(fleet, slot, &plan, Instant::now()).await.is_some()
            && writer.mirror.redis().unrevoke_token(plan.token().unwrap()).await.is_ok()
        {
            let everywhere = wait(APPLY_WITHIN, || {
                fleet.all().iter().all(|replica| {
                    replica
                        .mirror
                        .lookup_immediate(&plan.query)
                        .is_some_and(|answer| answer.revoked_by(plan.query.issued_at).is_none())
                })
            })
            .await;
            if everywhere.is_some() {
                let label = format!("unrevoked right before round {round}'s fault");
                model.accepted.lock().unwrap().push((plan.query, label));
                unrevoked += 1;
            }
        }
    }
    (made, unrevoked)
}

/// How long until a mirror other than the one in `slot` refused `plan`'s query.
async fn applied_elsewhere(fleet: &Fleet, slot: usize, plan: &Plan, made: Instant) -> Option<Duration> {
    wait(APPLY_WITHIN, || {
        fleet.all().iter().enumerate().any(|(other, replica)| {
            other != slot
                && replica
                    .mirror
                    .lookup_immediate(&plan.query)
                    .is_some_and(|answer| answer.revoked_by(plan.query.issued_at).is_some())
        })
    })
    .await
    .map(|_| made.elapsed())
}

async fn wait(within: Duration, mut done: impl FnMut() -> bool) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < within {
        if done() {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}
