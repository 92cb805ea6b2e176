//! The metrics a scripted sequence of requests and revocations leaves behind, read from
//! a real `metrics` recorder: exact counts, labels that name no token or subject.
#![cfg(feature = "metrics")]

mod common;

use std::collections::BTreeMap;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use metrics_util::{CompositeKey, MetricKind};
use tower::Layer;
use tower_jwt_revoke::store::InMemoryStore;
use tower_jwt_revoke::{FailurePolicy, RevocationLayer};

use common::broken_store::{BrokenStore, Failure};
use common::{bearer, claims, echo, mint, send};

/// `name{label=value,...}` → value, for the counters.
fn counters(recorder: &DebuggingRecorder) -> BTreeMap<String, u64> {
    let mut counters = BTreeMap::new();
    for (key, _, _, value) in recorder.snapshotter().snapshot().into_vec() {
        let (kind, key): (MetricKind, _) = CompositeKey::into_parts(key);
        if let (MetricKind::Counter, DebugValue::Counter(count)) = (kind, value) {
            let labels: Vec<String> = key
                .labels()
                .map(|label| format!("{}={}", label.key(), label.value()))
                .collect();
            counters.insert(format!("{}{{{}}}", key.name(), labels.join(",")), count);
        }
    }
    counters
}

#[test]
fn a_scripted_sequence_leaves_exact_counts() {
    let recorder = DebuggingRecorder::new();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // The recorder is this thread's; the current-thread runtime polls everything here.
    metrics::with_local_recorder(&recorder, || {
        runtime.block_on(async {
            let memory = RevocationLayer::new(common::verifier(0), InMemoryStore::new());
            let token = mint(&claims("alice"));
            send(memory.layer(echo()), bearer(&token)).await; // allowed
            memory.revoker().revoke_token(&token).await.unwrap(); // a revocation
            send(memory.layer(echo()), bearer(&token)).await; // revoked
            send(memory.layer(echo()), bearer("not-a-jwt")).await; // invalid

            let broken = BrokenStore::new(Failure::Error);
            let closed = RevocationLayer::new(common::verifier(0), broken.clone());
            send(closed.layer(echo()), bearer(&mint(&claims("bob")))).await; // 503
            let open = closed.with_failure_policy(FailurePolicy::FailOpen);
            send(open.layer(echo()), bearer(&mint(&claims("carol")))).await; // let through
        })
    });

    let expected: BTreeMap<String, u64> = [
        ("tower_jwt_revoke_checks_total{outcome=allowed,reason=none}", 1),
        (
            "tower_jwt_revoke_checks_total{outcome=refused,reason=revoked_token}",
            1,
        ),
        (
            "tower_jwt_revoke_checks_total{outcome=refused,reason=invalid_token}",
            1,
        ),
        (
            "tower_jwt_revoke_checks_total{outcome=refused,reason=store_unavailable}",
            1,
        ),
        (
            "tower_jwt_revoke_checks_total{outcome=failed_open,reason=store_unavailable}",
            1,
        ),
        ("tower_jwt_revoke_store_errors_total{store=custom,kind=error}", 2),
        (
            "tower_jwt_revoke_revocations_total{scope=token,result=recorded}",
            1,
        ),
    ]
    .into_iter()
    .map(|(name, count)| (name.to_owned(), count))
    .collect();
    let counters = counters(&recorder);
    assert_eq!(counters, expected);
    // No label value may carry a subject.
    assert!(
        counters
            .keys()
            .all(|key| !key.contains("alice") && !key.contains("bob"))
    );
}
