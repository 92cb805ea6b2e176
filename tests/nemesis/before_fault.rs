//! The revocations made right before a fault: a handful, of every scope, each waited
//! for until another mirror refuses it (it is then applied: binding), and, half the
//! time, a token revoked and unrevoked, waited for until every mirror accepts it again.

use std::time::{Duration, Instant};

use tower_jwt_revoke::RevocationKey;
use tower_jwt_revoke::store::{RedisStore, RevocationStore};

use super::fleet::Fleet;
use super::model::{Binding, Model, Origin, Plan, SCOPES, Scope};
use super::rng::Rng;

/// How long a revocation made right before a fault may take to reach another mirror.
const APPLY_WITHIN: Duration = Duration::from_secs(3);

/// Makes them through `fleet`: one of each scope and one more token, each through a
/// random mirror; answers each one's scope and how long until another mirror refused it,
/// and how many were unrevoked. Where only some buckets are at risk, the subjects are
/// picked in them.
pub async fn revoke(
    fleet: &Fleet,
    model: &Model,
    rng: &mut Rng,
    round: usize,
    at_risk: Option<&[u32]>,
    store: &RedisStore,
) -> (Vec<(Scope, Option<Duration>)>, usize) {
    // No bucket at risk (a master serving none of them): any subject will do.
    let at_risk = at_risk.filter(|buckets| !buckets.is_empty());
    // Which names land where depends on the prefix (random): the search draws nothing
    // from `rng`, so that the rest of the schedule replays from the seed.
    let subject = |rng: &mut Rng| {
        let tag = rng.next_u64();
        let buckets = at_risk?;
        (0..100_000).find_map(|n| {
            let name = format!("at-risk-{round}-{tag}-{n}");
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
            && applied_elsewhere(fleet, slot, &plan, Instant::now())
                .await
                .is_some()
            && writer
                .mirror
                .redis()
                .unrevoke_token(&plan.token().unwrap())
                .await
                .is_ok()
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
