//! The Redis store and its mirror on a real Redis Cluster: 3 masters and 3 replicas,
//! private `redis-server` processes started by tests/support/cluster.rs (gated like every
//! Redis test: skipped, saying why, without the binaries, unless
//! `TOWER_JWT_REVOKE_REQUIRE_REDIS=1`).
//!
//! - `same_results`: every scenario of the single-server suite, through `RedisStore` and
//!   `MirrorStore` on the cluster, with the same results; stored TTLs; nothing secret.
//! - `commands`: a check is one command on one node (`INFO commandstats` of every node),
//!   and no node ever sees a `CROSSSLOT`.
//! - `failover`: a master killed under load (its replica promoted), a whole-cluster
//!   outage, and slots resharded under load.
//! - `admin`: the operator's API (scan, stats, unrevoke, restore) over every master.
//! - `upgrade`: live v1 revocations stay refused through the upgrade to v2.

mod scenarios;
#[macro_use]
mod support;

#[path = "redis_cluster/admin.rs"]
mod admin;
#[path = "redis_cluster/commands.rs"]
mod commands;
#[path = "redis_cluster/failover.rs"]
mod failover;
#[path = "redis_cluster/same_results.rs"]
mod same_results;
#[path = "redis_cluster/upgrade.rs"]
mod upgrade;

use std::time::Duration;

use tower_jwt_revoke::store::MirrorStore;

use self::support::cluster::RedisCluster;

/// Fails the test if any node of `cluster` ever answered `CROSSSLOT`.
pub fn assert_no_crossslot(cluster: &RedisCluster) {
    let errors = cluster.crossslot_errors();
    assert!(errors.is_empty(), "CROSSSLOT seen: {errors:?}");
}

/// A mirror of the cluster under `prefix`, in sync.
pub async fn synced_mirror(cluster: &RedisCluster, prefix: &str) -> MirrorStore {
    let mirror = MirrorStore::start(cluster.store(prefix));
    mirror
        .wait_until_synced(Duration::from_secs(10))
        .await
        .expect("the mirror gets in sync with the cluster");
    mirror
}
