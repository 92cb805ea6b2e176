//! The operator's API (what the command-line tool is built on) on a cluster: a scan
//! visits every master, counts are of revocations (a session's copies in every bucket
//! count once), an unrevoke reaches every bucket and every mirror, and a backup
//! restores each copy into its own bucket.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use http::StatusCode;
use tower_jwt_revoke::store::{Record, RecordKind, RedisStore};
use tower_jwt_revoke::{RevocationLayer, Revoker};

use super::scenarios::*;
use super::support::cluster::RedisCluster;
use super::{assert_no_crossslot, support, synced_mirror};

/// Every record of `store`, page by page.
async fn every_record(store: &RedisStore) -> Vec<Record> {
    let (mut records, mut cursor, mut pages) = (Vec::new(), 0, 0);
    loop {
        let page = store.scan_page(cursor, 10).await.expect("a scan page");
        records.extend(page.records);
        cursor = page.cursor;
        pages += 1;
        assert!(pages < 1000, "the scan ends");
        if cursor == 0 {
            return records;
        }
    }
}

/// The masters (by port) holding `records`.
fn masters_holding(cluster: &RedisCluster, store: &RedisStore, records: &[Record]) -> BTreeSet<u16> {
    records
        .iter()
        .map(|record| {
            let key = store.record_key(record);
            let slot: u16 = support::cluster::node_command(&cluster.nodes[0], &["CLUSTER", "KEYSLOT", &key])
                .parse()
                .unwrap();
            cluster.nodes[cluster.master_of(slot).unwrap()].port
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scans_counts_unrevokes_and_restores_cover_every_master() {
    let cluster = cluster_or_skip!();
    let prefix = support::unique_prefix();
    let store = cluster.store(&prefix);
    let revoker = Revoker::new(verifier(), store.clone());
    let mirror = synced_mirror(&cluster, &prefix).await;
    let buckets = u64::from(store.buckets());

    let alice = token_for("alice");
    let carol = mint(serde_json::json!({
        "sub": "carol", "sid": "s-carol", "jti": "c1", "iat": now(), "exp": now() + 600
    }));
    let bob = token_for("bob");
    revoker.revoke(&verifier().verify(&alice).unwrap()).await.unwrap();
    revoker.revoke_subject_for(None, "bob").await.unwrap();
    revoker.revoke_session_for(None, "s-carol").await.unwrap();

    // A scan finds every key on every master: one token, one watermark, and the
    // session in every bucket.
    let records = every_record(&store).await;
    let distinct: HashSet<_> = records.iter().map(|r| (r.kind, r.hash)).collect();
    assert_eq!(records.len() as u64, 2 + buckets, "{records:?}");
    assert_eq!(distinct.len(), 3);
    assert_eq!(
        masters_holding(&cluster, &store, &records).len(),
        3,
        "the session's copies are on all three masters, and the scan found them all"
    );
    for record in &records {
        let bucket = record.bucket.expect("a v2 record names its bucket");
        assert!(store.record_key(record).starts_with(&store.bucket_tag(bucket)));
    }

    let stats = store.stats().await.unwrap();
    assert_eq!(
        (stats.tokens, stats.subjects, stats.sessions, stats.all),
        (1, 1, 1, false)
    );
    assert_eq!((stats.keys, stats.feed_last_seq), (2 + buckets, 2 + buckets));
    assert!(stats.memory_bytes.unwrap() > 0 && stats.server_memory_bytes.unwrap() > 0);

    // Unrevoke the session: gone from every bucket, and from the mirror.
    let layer = RevocationLayer::new(verifier(), mirror.clone());
    assert_eq!(probe_status(&layer, &carol).await, StatusCode::UNAUTHORIZED);
    let session = verifier().verify(&carol).unwrap().session_key().unwrap();
    assert!(store.unrevoke_session(&session).await.unwrap());
    assert!(
        !store.unrevoke_session(&session).await.unwrap(),
        "nothing left to lift"
    );
    assert_eq!(every_record(&store).await.len(), 2);
    let direct = RevocationLayer::new(verifier(), store.clone());
    assert_eq!(probe_status(&direct, &carol).await, StatusCode::OK);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while probe_status(&layer, &carol).await != StatusCode::OK {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the mirror forgets the session"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A backup restores every copy into its own bucket, under another prefix.
    revoker.revoke_session_for(None, "s-carol").await.unwrap();
    let backup = every_record(&store).await;
    let other = cluster.store(&support::unique_prefix());
    for record in &backup {
        assert!(other.restore(record).await.unwrap());
    }
    let restored = every_record(&other).await;
    let key_set = |store: &RedisStore, records: &[Record]| -> BTreeSet<String> {
        records
            .iter()
            .map(|r| store.record_key(r).replacen(store.prefix(), "", 1))
            .collect()
    };
    assert_eq!(key_set(&other, &restored), key_set(&store, &backup));
    assert_eq!(
        other.stats().await.unwrap().feed_last_seq,
        backup.len() as u64,
        "one write per copy, no more"
    );
    let on_restored = RevocationLayer::new(verifier(), other.clone());
    assert_eq!(probe_status(&on_restored, &alice).await, StatusCode::UNAUTHORIZED);
    assert_eq!(probe_status(&on_restored, &carol).await, StatusCode::UNAUTHORIZED);
    assert_eq!(probe_status(&on_restored, &bob).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        probe_status(&on_restored, &token_for("dave")).await,
        StatusCode::OK,
        "nothing else refused"
    );
    assert!(
        backup
            .iter()
            .any(|r| r.kind == RecordKind::Subject && r.buckets == Some(store.buckets()))
    );
    assert!(other.in_use().await.unwrap());
    assert!(!cluster.store(&support::unique_prefix()).in_use().await.unwrap());
    drop(mirror);
    assert_no_crossslot(&cluster);
}

async fn probe_status(layer: &RevocationLayer, token: &str) -> StatusCode {
    status_with(&protected(layer.clone()), token).await
}
