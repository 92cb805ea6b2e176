//! What the cluster sees (`INFO commandstats` of every node): a check of a token is one
//! `MGET` on one node, the master of the token's bucket; a token revocation is one
//! script on one node, a session revocation one per bucket; never a `CROSSSLOT`.

use std::collections::BTreeMap;

use http::StatusCode;
use serde_json::json;
use tower_jwt_revoke::store::{RedisStore, RevocationStore};
use tower_jwt_revoke::{RevocationKey, RevocationLayer, Revoker};

use super::scenarios::*;
use super::support::cluster::{RedisCluster, node_command};
use super::{assert_no_crossslot, support};

/// Commands that are not the store's: the test's own, and the cluster's housekeeping.
fn housekeeping(name: &str) -> bool {
    name == "info"
        || name == "ping"
        || name == "replconf"
        || name.starts_with("config")
        || name.starts_with("cluster")
}

/// The store's commands since the last reset, per node (by port), nodes with none left out.
fn store_commands(cluster: &RedisCluster) -> BTreeMap<u16, BTreeMap<String, u64>> {
    cluster
        .command_calls()
        .into_iter()
        .map(|(port, calls)| {
            (
                port,
                calls
                    .into_iter()
                    .filter(|(name, _)| !housekeeping(name))
                    .collect(),
            )
        })
        .filter(|(_, calls): &(u16, BTreeMap<String, u64>)| !calls.is_empty())
        .collect()
}

/// A store without its background watch for data loss (which reads every bucket's epoch
/// marker twice a second): the commands counted are those of the requests alone.
fn quiet_store(cluster: &RedisCluster) -> RedisStore {
    cluster
        .builder(&support::unique_prefix())
        .detect_data_loss(false)
        .build()
        .unwrap()
}

/// The port of the master serving `bucket` of `store`.
fn master_port(cluster: &RedisCluster, store: &RedisStore, bucket: u32) -> u16 {
    let slot: u16 = node_command(
        &cluster.nodes[0],
        &["CLUSTER", "KEYSLOT", &store.bucket_tag(bucket)],
    )
    .parse()
    .unwrap();
    cluster.nodes[cluster.master_of(slot).expect("a master serves the slot")].port
}

#[tokio::test]
async fn a_check_is_one_command_on_one_node() {
    let cluster = cluster_or_skip!();
    let store = quiet_store(&cluster);
    let service = protected(RevocationLayer::new(verifier(), store.clone()));
    let verifier = verifier();
    let with_sub = token_for("frank");
    let without_sub = mint(json!({ "jti": "no-sub", "sid": "s-9", "iat": now(), "exp": now() + 600 }));
    for token in [&with_sub, &without_sub] {
        // The first request connects (HELLO, CLUSTER SLOTS...); count after it.
        assert_eq!(status_with(&service, token).await, StatusCode::OK);
        cluster.reset_stats();
        const REQUESTS: u64 = 25;
        for _ in 0..REQUESTS {
            assert_eq!(status_with(&service, token).await, StatusCode::OK);
        }
        let verified = verifier.verify(token).unwrap();
        let bucket = store.bucket_for(&verified.revocation_key(), verified.subject_key().as_ref());
        let expected = BTreeMap::from([(
            master_port(&cluster, &store, bucket),
            BTreeMap::from([("mget".to_owned(), REQUESTS)]),
        )]);
        assert_eq!(
            store_commands(&cluster),
            expected,
            "one MGET per check, on the bucket's master"
        );
    }
    assert_no_crossslot(&cluster);
}

#[tokio::test]
async fn a_revocation_is_one_script_on_one_node_and_a_session_one_per_bucket() {
    let cluster = cluster_or_skip!();
    let store = quiet_store(&cluster);
    let revoker = Revoker::new(verifier(), store.clone());
    let first = verifier().verify(&token_for("grace")).unwrap();
    revoker.revoke(&first).await.unwrap(); // loads the script on the masters

    let token = verifier().verify(&token_for("grace")).unwrap();
    let bucket = store.bucket_of(&token.subject_key().unwrap());
    cluster.reset_stats();
    revoker.revoke(&token).await.unwrap();
    let masters = store_commands(&cluster)
        .into_iter()
        .filter(|(_, calls)| calls.contains_key("evalsha"))
        .map(|(port, calls)| (port, calls["evalsha"]))
        .collect::<Vec<_>>();
    assert_eq!(
        masters,
        vec![(master_port(&cluster, &store, bucket), 1)],
        "one script, on the subject's bucket's master"
    );

    store
        .revoke_session(
            &RevocationKey::session(None, "sid-7"),
            std::time::Duration::from_secs(60),
        )
        .await
        .unwrap();
    let scripts: u64 = store_commands(&cluster)
        .values()
        .filter_map(|calls| calls.get("evalsha"))
        .sum();
    assert_eq!(
        scripts,
        1 + u64::from(store.buckets()),
        "a session: one script per bucket"
    );
    assert_no_crossslot(&cluster);
}
