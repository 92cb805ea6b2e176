//! The replicas under test: mirrors over `RedisStore`s, each with the revocations it was
//! seen refusing (a mirror must never accept one of those again), and the load that
//! revokes and checks through them while the faults happen.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tower_jwt_revoke::store::{MirrorStore, RedisStore, RevocationStore};

use super::checker::{Kind, Violation};
use super::model::{Binding, Model, Origin, SCOPES, Verdict, verdict};
use super::rng::Rng;

/// One mirrored replica.
pub struct Replica {
    pub name: String,
    pub mirror: MirrorStore,
    /// Ids of the binding revocations it was seen refusing.
    refused: Mutex<HashSet<u64>>,
}

impl Replica {
    pub fn start(name: String, store: RedisStore) -> Arc<Self> {
        Arc::new(Self {
            name,
            mirror: MirrorStore::start(store),
            refused: Mutex::default(),
        })
    }
}

/// The replicas, slot by slot (a restarted mirror takes its predecessor's slot).
pub struct Fleet {
    pub slots: Mutex<Vec<Arc<Replica>>>,
    restarts: AtomicUsize,
}

impl Fleet {
    pub fn new(replicas: Vec<Arc<Replica>>) -> Self {
        Self {
            slots: Mutex::new(replicas),
            restarts: AtomicUsize::new(0),
        }
    }

    pub fn get(&self, slot: usize) -> Arc<Replica> {
        Arc::clone(&self.slots.lock().unwrap()[slot])
    }

    pub fn all(&self) -> Vec<Arc<Replica>> {
        self.slots.lock().unwrap().clone()
    }

    pub fn len(&self) -> usize {
        self.slots.lock().unwrap().len()
    }

    /// Drops the mirror in `slot` and starts another in its place; answers its name.
    pub fn restart(&self, slot: usize, store: RedisStore) -> String {
        let generation = self.restarts.fetch_add(1, Ordering::Relaxed) + 1;
        let replica = Replica::start(format!("mirror-{slot}.{generation}"), store);
        let name = replica.name.clone();
        self.slots.lock().unwrap()[slot] = replica;
        name
    }
}

/// Where the run is, for the load's violations.
#[derive(Default)]
pub struct Phase {
    pub round: AtomicUsize,
    pub fault: Mutex<String>,
}

/// What the load did.
#[derive(Default)]
pub struct LoadStats {
    pub revocations: AtomicU64,
    pub acknowledged: AtomicU64,
    pub write_failures: AtomicU64,
    pub checks: AtomicU64,
    pub check_failures: AtomicU64,
    pub violations: Mutex<Vec<Violation>>,
}

/// Revocations and checks running beside the faults, until `stop`.
pub struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    pub stats: Arc<LoadStats>,
}

impl Load {
    pub fn start(
        fleet: &Arc<Fleet>,
        model: &Arc<Model>,
        acknowledging: Option<RedisStore>,
        phase: &Arc<Phase>,
        seed: u64,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(LoadStats::default());
        let mut tasks = Vec::new();
        let (f, m, p, s, halt) = (
            Arc::clone(fleet),
            Arc::clone(model),
            Arc::clone(phase),
            Arc::clone(&stats),
            Arc::clone(&stop),
        );
        tasks.push(tokio::spawn(async move {
            // The load's own generator: its choices depend on timing anyway.
            let mut rng = Rng::for_topology(seed, "load-writer");
            while !halt.load(Ordering::Relaxed) {
                tokio::time::sleep(rng.millis(40, 120)).await;
                write_one(&f, &m, acknowledging.as_ref(), &p, &s, &mut rng).await;
            }
        }));
        for slot in 0..fleet.len() {
            let (f, m, p, s, halt) = (
                Arc::clone(fleet),
                Arc::clone(model),
                Arc::clone(phase),
                Arc::clone(&stats),
                Arc::clone(&stop),
            );
            tasks.push(tokio::spawn(async move {
                let mut rng = Rng::for_topology(seed ^ slot as u64, "load-checker");
                while !halt.load(Ordering::Relaxed) {
                    check_one(&f.get(slot), &m, &p, &s, &mut rng).await;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }));
        }
        Self { stop, tasks, stats }
    }

    pub async fn stop(self) -> Arc<LoadStats> {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.expect("a load task");
        }
        self.stats
    }
}

fn violation(
    phase: &Phase,
    kind: Kind,
    scope: Option<super::model::Scope>,
    store: &str,
    detail: String,
) -> Violation {
    Violation {
        kind,
        round: Some(phase.round.load(Ordering::Relaxed)),
        fault: phase.fault.lock().unwrap().clone(),
        scope,
        store: store.to_owned(),
        detail,
    }
}

/// One revocation through a random mirror (or the acknowledging store): binding once
/// the mirror refuses it (or the replica confirmed it).
async fn write_one(
    fleet: &Fleet,
    model: &Model,
    acknowledging: Option<&RedisStore>,
    phase: &Phase,
    stats: &LoadStats,
    rng: &mut Rng,
) {
    let plan = model.plan(*rng.pick(&SCOPES), rng, None);
    let round = phase.round.load(Ordering::Relaxed);
    if let Some(store) = acknowledging.filter(|_| rng.chance(0.3)) {
        let made = Instant::now();
        match plan.write(store).await {
            Ok(()) => {
                stats.acknowledged.fetch_add(1, Ordering::Relaxed);
                model.bind(
                    &plan,
                    made,
                    round,
                    Origin::Load,
                    Binding::Acknowledged,
                    "acknowledging store",
                );
            }
            Err(_) => {
                stats.write_failures.fetch_add(1, Ordering::Relaxed);
            }
        }
        return;
    }
    let replica = fleet.get(rng.below(fleet.len()));
    let made = Instant::now();
    if plan.write(&replica.mirror).await.is_err() {
        stats.write_failures.fetch_add(1, Ordering::Relaxed);
        return;
    }
    stats.revocations.fetch_add(1, Ordering::Relaxed);
    match verdict(&replica.mirror, &plan.query).await {
        Verdict::Refused => model.bind(&plan, made, round, Origin::Load, Binding::Applied, &replica.name),
        Verdict::Accepted => {
            let found = violation(
                phase,
                Kind::MirrorForgot,
                Some(plan.scope),
                &replica.name,
                "accepted right after its own revocation returned Ok".into(),
            );
            stats.violations.lock().unwrap().push(found);
        }
        Verdict::Failed(_) => {}
    }
}

/// One check through `replica`: a binding revocation it refused before must stay refused;
/// a token never revoked is never refused.
async fn check_one(replica: &Replica, model: &Model, phase: &Phase, stats: &LoadStats, rng: &mut Rng) {
    let entry = if rng.chance(0.75) {
        let bound = model.binding.lock().unwrap();
        (!bound.is_empty()).then(|| bound[rng.below(bound.len())].clone())
    } else {
        None
    };
    stats.checks.fetch_add(1, Ordering::Relaxed);
    let Some(entry) = entry else {
        let (query, label) = {
            let accepted = model.accepted.lock().unwrap();
            accepted[rng.below(accepted.len())].clone()
        };
        match verdict(&replica.mirror, &query).await {
            Verdict::Refused => {
                let found = violation(phase, Kind::WronglyRefused, None, &replica.name, label);
                stats.violations.lock().unwrap().push(found);
            }
            Verdict::Failed(_) => {
                stats.check_failures.fetch_add(1, Ordering::Relaxed);
            }
            Verdict::Accepted => {}
        }
        return;
    };
    if entry.expires < Instant::now() + Duration::from_secs(2) {
        return;
    }
    match verdict(&replica.mirror, &entry.query).await {
        Verdict::Refused => {
            replica.refused.lock().unwrap().insert(entry.id);
        }
        Verdict::Accepted => {
            let seen = replica.refused.lock().unwrap().contains(&entry.id);
            let own = entry.through == replica.name;
            if seen || own {
                let why = if seen {
                    "refused it before"
                } else {
                    "it was revoked through it"
                };
                let found = violation(
                    phase,
                    Kind::MirrorForgot,
                    Some(entry.scope),
                    &replica.name,
                    format!(
                        "accepted though {why}; made in round {} ({:?}) {:?} ago",
                        entry.round,
                        entry.origin,
                        entry.made.elapsed()
                    ),
                );
                stats.violations.lock().unwrap().push(found);
            }
        }
        Verdict::Failed(_) => {
            stats.check_failures.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A store the checker asks: a replica's mirror.
pub fn named(replica: &Replica) -> super::checker::Named {
    (
        replica.name.clone(),
        Arc::new(replica.mirror.clone()) as Arc<dyn RevocationStore>,
    )
}
