//! Faults under load: a master killed (its replica promoted), slots resharded, the whole
//! cluster down. Requests go through the layer on the store and on a mirror while
//! revocations are written; no revoked token may ever be let in, and no request may be
//! answered with a 5xx other than 503.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::StatusCode;
use tower_jwt_revoke::store::{DEFAULT_STALENESS_BOUND, MirrorStore, RedisStore, RevocationStore};
use tower_jwt_revoke::{FailurePolicy, RevocationLayer, Revoker};

use super::scenarios::*;
use super::support::cluster::RedisCluster;
use super::{assert_no_crossslot, support, synced_mirror};

const USERS: usize = 48;

/// Requests and revocations running until stopped, and what they met.
struct Load {
    stop: Arc<AtomicBool>,
    /// Tokens revoked while the load ran (the revocation was recorded).
    recorded: Arc<Mutex<Vec<String>>>,
    tasks: Vec<tokio::task::JoinHandle<Vec<(bool, StatusCode)>>>,
}

impl Load {
    /// Checks `valid` and `revoked` tokens through the store and the mirror, and revokes
    /// fresh tokens, over and over.
    fn start(store: &RedisStore, mirror: &MirrorStore, valid: &[String], revoked: &[String]) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let recorded = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        let paths = [
            RevocationLayer::new(verifier(), store.clone()),
            RevocationLayer::new(verifier(), mirror.clone()),
        ];
        for (worker, layer) in paths.into_iter().cycle().take(4).enumerate() {
            let service = protected(layer);
            let tokens: Vec<(bool, String)> = valid
                .iter()
                .map(|token| (false, token.clone()))
                .chain(revoked.iter().map(|token| (true, token.clone())))
                .collect();
            let stop = Arc::clone(&stop);
            tasks.push(tokio::spawn(async move {
                let mut seen = Vec::new();
                for (is_revoked, token) in tokens.iter().cycle().skip(worker * 7) {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    seen.push((*is_revoked, status_with(&service, token).await));
                    // A check the mirror answers at once never yields: let the writer run.
                    tokio::task::yield_now().await;
                }
                seen
            }));
        }
        let (revoker, service) = (
            Revoker::new(verifier(), store.clone()),
            protected(RevocationLayer::new(verifier(), store.clone())),
        );
        let (stop_writer, recorded_writer) = (Arc::clone(&stop), Arc::clone(&recorded));
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            for n in 0.. {
                if stop_writer.load(Ordering::Relaxed) {
                    break;
                }
                let token = token_for(&format!("writer-{}", n % USERS));
                if revoker.revoke_token(&token).await.is_ok() {
                    // Recorded: the store refuses it from now on (or cannot answer).
                    seen.push((true, status_with(&service, &token).await));
                    recorded_writer.lock().unwrap().push(token);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            seen
        }));
        Self {
            stop,
            recorded,
            tasks,
        }
    }

    /// Stops, and checks everything met: revoked tokens never let in, valid ones let in
    /// or refused with 503 (Redis could not answer), nothing else. Returns the statuses.
    async fn finish(self) -> (Vec<String>, Vec<StatusCode>) {
        self.stop.store(true, Ordering::Relaxed);
        let mut statuses = Vec::new();
        for task in self.tasks {
            for (is_revoked, status) in task.await.unwrap() {
                let allowed: &[StatusCode] = if is_revoked {
                    &[StatusCode::UNAUTHORIZED, StatusCode::SERVICE_UNAVAILABLE]
                } else {
                    &[StatusCode::OK, StatusCode::SERVICE_UNAVAILABLE]
                };
                assert!(
                    allowed.contains(&status),
                    "revoked: {is_revoked}, answered {status}"
                );
                statuses.push(status);
            }
        }
        (self.recorded.lock().unwrap().clone(), statuses)
    }
}

/// Tokens of `USERS` users spread over every bucket: one valid each, and one revoked
/// (recorded and replicated before anything fails).
async fn tokens(cluster: &RedisCluster, store: &RedisStore) -> (Vec<String>, Vec<String>) {
    let revoker = Revoker::new(verifier(), store.clone());
    let valid: Vec<String> = (0..USERS).map(|n| token_for(&format!("user-{n}"))).collect();
    let revoked: Vec<String> = (0..USERS).map(|n| token_for(&format!("user-{n}"))).collect();
    for token in &revoked {
        revoker.revoke_token(token).await.unwrap();
    }
    tokio::task::block_in_place(|| cluster.wait_for_replication());
    (valid, revoked)
}

/// After the fault: every valid token let in again, every revoked one (before or
/// during) refused, directly and by the mirror back in sync. The store answers at once
/// (503 while a node is still unreachable); the mirror within its staleness bound, the
/// time a revocation made elsewhere may take to reach it (a wake-up lost while its
/// subscription moved to another node is made up by the next tick).
async fn all_answered_again(store: &RedisStore, mirror: &MirrorStore, valid: &[String], revoked: &[String]) {
    mirror
        .wait_until_synced(Duration::from_secs(15))
        .await
        .expect("the mirror back in sync");
    for (path, layer) in [
        ("store", RevocationLayer::new(verifier(), store.clone())),
        ("mirror", RevocationLayer::new(verifier(), mirror.clone())),
    ] {
        let service = protected(layer);
        for (tokens, expected) in [(valid, StatusCode::OK), (revoked, StatusCode::UNAUTHORIZED)] {
            for token in tokens {
                let unavailable_until = Instant::now() + Duration::from_secs(10);
                let propagated_by = Instant::now() + DEFAULT_STALENESS_BOUND;
                let mut status = status_with(&service, token).await;
                while status != expected
                    && (status == StatusCode::SERVICE_UNAVAILABLE && Instant::now() < unavailable_until
                        || path == "mirror" && Instant::now() < propagated_by)
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    status = status_with(&service, token).await;
                }
                assert_eq!(status, expected, "through the {path}");
            }
        }
    }
}

/// How a master fails.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// Killed: the kernel resets its connections, and clients see errors at once.
    Killed,
    /// Frozen (SIGSTOP): its connections stay open and silent, as in a hang or a
    /// network partition; clients must notice by themselves, then find the promoted
    /// replica.
    Frozen,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_failover_lets_no_revoked_token_in_and_answers_only_503() {
    failover_under_load(Fault::Killed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_master_failed_over_is_left_behind_and_answers_only_503() {
    failover_under_load(Fault::Frozen).await;
}

async fn failover_under_load(fault: Fault) {
    let mut cluster = cluster_or_skip!();
    let prefix = support::unique_prefix();
    let store = cluster.store(&prefix);
    let mirror = synced_mirror(&cluster, &prefix).await;
    let (valid, mut revoked) = tokens(&cluster, &store).await;

    let load = Load::start(&store, &mirror, &valid, &revoked);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (victim, _) = cluster.masters()[0].clone();
    match fault {
        Fault::Killed => cluster.kill(victim),
        Fault::Frozen => cluster.freeze(victim),
    }
    let failed_at = Instant::now();
    if let Fault::Frozen = fault {
        // Readiness notices a master that answers nothing, before the failover.
        let health = store.health().await;
        assert!(!health.ready && health.reachable == Some(false), "{health:?}");
    }
    let promoted = tokio::task::block_in_place(|| cluster.wait_until_ok(Duration::from_secs(30)));
    assert!(promoted, "the replica was never promoted");
    let promoted_in = failed_at.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (recorded, statuses) = load.finish().await;
    let unavailable = statuses
        .iter()
        .filter(|s| **s == StatusCode::SERVICE_UNAVAILABLE)
        .count();
    eprintln!(
        "failover ({fault:?}): promoted in {promoted_in:?}; {} requests, {unavailable} answered 503; {} revocations recorded meanwhile",
        statuses.len(),
        recorded.len()
    );

    revoked.extend(recorded);
    all_answered_again(&store, &mirror, &valid, &revoked).await;
    let ready_by = Instant::now() + Duration::from_secs(10);
    while !store.health().await.ready {
        assert!(Instant::now() < ready_by, "ready again after the failover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "failover ({fault:?}): afterwards, a revocation reaches the mirror within {:?} in every bucket",
        slowest_propagation(&store, &mirror).await
    );
    assert_no_crossslot(&cluster);
}

/// How long a revocation in each bucket takes to reach `mirror`, the slowest of them.
async fn slowest_propagation(store: &RedisStore, mirror: &MirrorStore) -> Duration {
    let revoker = Revoker::new(verifier(), store.clone());
    let mut covered = std::collections::BTreeSet::new();
    let mut slowest = Duration::ZERO;
    for n in 0.. {
        let token = verifier().verify(&token_for(&format!("probe-{n}"))).unwrap();
        if !covered.insert(store.bucket_of(&token.subject_key().unwrap())) {
            continue;
        }
        let query = tower_jwt_revoke::store::RevocationQuery::for_token(&token);
        let start = Instant::now();
        revoker.revoke(&token).await.unwrap();
        while !mirror
            .lookup_immediate(&query)
            .is_some_and(|lookup| lookup.token_revoked)
        {
            assert!(
                start.elapsed() < DEFAULT_STALENESS_BOUND,
                "not propagated within the bound"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        slowest = slowest.max(start.elapsed());
        if covered.len() == store.buckets() as usize {
            break;
        }
    }
    slowest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slots_resharded_under_load_let_no_revoked_token_in() {
    let cluster = cluster_or_skip!();
    let prefix = support::unique_prefix();
    let store = cluster.store(&prefix);
    let mirror = synced_mirror(&cluster, &prefix).await;
    let (valid, mut revoked) = tokens(&cluster, &store).await;

    let load = Load::start(&store, &mirror, &valid, &revoked);
    // A mirror that loads while slots move: it must not miss a key that moved from a
    // master it had not scanned yet to one it had.
    let late = MirrorStore::start(cluster.store(&prefix));
    let masters: Vec<usize> = cluster.masters().into_iter().map(|(index, _)| index).collect();
    // A third of the slots from one master to another, then back: every bucket on them
    // moves while requests and revocations run.
    let cluster = Arc::new(cluster);
    for (from, to) in [(masters[0], masters[1]), (masters[1], masters[0])] {
        let moving = Arc::clone(&cluster);
        let moved = tokio::task::spawn_blocking(move || moving.reshard(from, to, 3000))
            .await
            .unwrap();
        assert_eq!(moved, Ok(()), "redis-cli --cluster reshard failed");
    }
    assert!(tokio::task::block_in_place(
        || cluster.wait_until_ok(Duration::from_secs(10))
    ));
    let (recorded, statuses) = load.finish().await;
    let unavailable = statuses
        .iter()
        .filter(|s| **s == StatusCode::SERVICE_UNAVAILABLE)
        .count();
    eprintln!(
        "resharding: {} requests, {unavailable} answered 503; {} revocations recorded meanwhile",
        statuses.len(),
        recorded.len()
    );

    revoked.extend(recorded);
    all_answered_again(&store, &mirror, &valid, &revoked).await;
    all_answered_again(&store, &late, &valid, &revoked).await;
    eprintln!(
        "resharding: afterwards, a revocation reaches the mirror within {:?} in every bucket",
        slowest_propagation(&store, &mirror).await
    );
    assert_no_crossslot(&cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_cluster_outage_fails_closed_or_open_and_recovers_without_a_restart() {
    let Some(mut cluster) = RedisCluster::start_with(true) else {
        return;
    };
    let store = cluster.store(&support::unique_prefix());
    let closed = protected(
        RevocationLayer::new(verifier(), store.clone()).with_check_timeout(Duration::from_millis(500)),
    );
    let open = protected(
        RevocationLayer::new(verifier(), store.clone())
            .with_check_timeout(Duration::from_millis(500))
            .with_failure_policy(FailurePolicy::FailOpen),
    );
    let (revoked, valid) = (token_for("grace"), token_for("grace"));
    Revoker::new(verifier(), store.clone())
        .revoke_token(&revoked)
        .await
        .unwrap();
    assert_eq!(status_with(&closed, &revoked).await, StatusCode::UNAUTHORIZED);
    assert_eq!(status_with(&closed, &valid).await, StatusCode::OK);

    for index in 0..cluster.nodes.len() {
        cluster.kill(index);
    }
    outage_fails_closed_or_open(&closed, &open, &valid, &revoked).await;

    tokio::task::block_in_place(|| {
        for index in 0..cluster.nodes.len() {
            cluster.restart(index);
        }
        assert!(
            cluster.wait_until_ok(Duration::from_secs(30)),
            "the cluster did not come back"
        );
    });
    // Recovery comes by itself, without a restart of the store; how fast is printed,
    // not asserted (the bound only keeps a stuck store from hanging the suite: under
    // CI's load, with the other clusters' tests running beside it, it once took over
    // 10 s).
    let back = Instant::now();
    while status_with(&closed, &valid).await != StatusCode::OK {
        assert!(
            back.elapsed() < Duration::from_secs(45),
            "not answered again within 45 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "outage: answered again {:?} after the cluster was whole",
        back.elapsed()
    );
    assert_eq!(
        status_with(&closed, &revoked).await,
        StatusCode::UNAUTHORIZED,
        "AOF kept it"
    );
    assert_no_crossslot(&cluster);
}
