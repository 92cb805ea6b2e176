//! A mirror's load (one script per bucket and `SCAN` step) against a real redis-server
//! and a real Redis Cluster (see tests/support): every kind of record, written by every
//! path, is found with its value and TTL.

#[macro_use]
mod support;

#[path = "mirror_load/records.rs"]
mod records;

use tower_jwt_revoke::store::MirrorStore;

#[tokio::test]
async fn a_load_finds_every_record_written_by_every_path() {
    let server = redis_or_skip!();
    let prefix = support::unique_prefix();
    let store = server.store(&prefix);
    let mut redis = server.client().get_multiplexed_async_connection().await.unwrap();
    let written = records::write(&store, &mut redis).await;
    let mirror = MirrorStore::start(server.store(&prefix));
    records::check(&mirror, &written).await;
}

#[tokio::test]
async fn a_load_on_a_cluster_finds_every_record_written_by_every_path() {
    let cluster = cluster_or_skip!();
    let prefix = support::unique_prefix();
    let store = cluster.store(&prefix);
    let mut redis = redis::cluster::ClusterClient::new(cluster.seeds())
        .unwrap()
        .get_async_connection()
        .await
        .unwrap();
    let written = records::write(&store, &mut redis).await;
    let mirror = MirrorStore::start(cluster.store(&prefix));
    records::check(&mirror, &written).await;
    assert!(
        cluster.crossslot_errors().is_empty(),
        "{:?}",
        cluster.crossslot_errors()
    );
}
