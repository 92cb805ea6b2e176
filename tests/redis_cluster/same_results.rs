//! Every scenario of the single-server suite, on the cluster, through `RedisStore` and
//! `MirrorStore`: the same results. And what is stored: TTLs that follow the token
//! lifetime, and nothing secret or personal on any node.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::StatusCode;
use redis::AsyncCommands;
use serde_json::json;
use tower_jwt_revoke::Revoker;
use tower_jwt_revoke::store::{MirrorStore, RedisStore, RevocationStore};

use super::scenarios::*;
use super::support::cluster::RedisCluster;
use super::{assert_no_crossslot, support, synced_mirror};

#[tokio::test]
async fn every_scenario_gives_the_same_results_through_the_store_and_the_mirror() {
    let cluster = cluster_or_skip!();
    let (direct, mirrored) = tokio::join!(
        scenarios(|| cluster.store(&support::unique_prefix())),
        scenarios(|| MirrorStore::start(cluster.store(&support::unique_prefix()))),
    );
    assert_eq!(direct, expected(), "RedisStore on the cluster");
    assert_eq!(mirrored, expected(), "MirrorStore on the cluster");

    seed_flow(&demo_app(cluster.store(&support::unique_prefix()))).await;
    let prefix = support::unique_prefix();
    seed_flow(&demo_app(synced_mirror(&cluster, &prefix).await)).await;
    assert_no_crossslot(&cluster);
}

/// The axum example on the cluster, as `REDIS_CLUSTER_NODES` (and `REVOCATION_MIRROR=1`)
/// configure it.
#[tokio::test]
async fn the_axum_example_runs_on_the_cluster_given_its_seed_nodes() {
    let cluster = cluster_or_skip!();
    for mirror in ["0", "1"] {
        let env = |name: &str| match name {
            "REDIS_CLUSTER_NODES" => Some(cluster.seeds_env()),
            "REVOCATION_MIRROR" => Some(mirror.to_owned()),
            _ => None,
        };
        let store = axum_logout::store_from_env(env).await.unwrap();
        assert_eq!(store.name(), if mirror == "1" { "mirror" } else { "redis" });
        seed_flow(&demo_app(store)).await;
    }
    let both = |name: &str| (name != "REVOCATION_MIRROR").then(|| cluster.seeds_env());
    assert!(
        axum_logout::store_from_env(both).await.is_err(),
        "REDIS_URL and REDIS_CLUSTER_NODES at once"
    );
    assert_no_crossslot(&cluster);
}

#[tokio::test]
async fn a_revocation_through_one_replica_is_honoured_by_another_on_the_cluster() {
    let cluster = cluster_or_skip!();
    let prefix = support::unique_prefix();
    // Direct: two routers with their own stores (own cluster connections), like two pods.
    let (replica_a, replica_b) = (demo_app(cluster.store(&prefix)), demo_app(cluster.store(&prefix)));
    logout_on_one_replica_is_refused_by_another(&replica_a, &replica_b, "carol").await;

    // Mirrored: the other replica refuses it within the propagation bound.
    let mirrored_a = demo_app(synced_mirror(&cluster, &prefix).await);
    let mirrored_b = demo_app(synced_mirror(&cluster, &prefix).await);
    let token = login(&mirrored_a, "dora").await;
    assert_eq!(
        call(&mirrored_a, "POST", "/logout-all", Some(&token), None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    let deadline = Instant::now() + Duration::from_secs(2);
    while call(&mirrored_b, "GET", "/me", Some(&token), None).await.0 != StatusCode::UNAUTHORIZED {
        assert!(Instant::now() < deadline, "the other mirror never refused it");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_no_crossslot(&cluster);
}

/// A connection to the cluster for the test's own reads.
async fn cluster_connection(cluster: &RedisCluster) -> redis::cluster_async::ClusterConnection {
    redis::cluster::ClusterClient::new(cluster.seeds())
        .unwrap()
        .get_async_connection()
        .await
        .unwrap()
}

#[tokio::test]
async fn stored_ttls_follow_the_token_lifetime_on_the_cluster() {
    let cluster = cluster_or_skip!();
    let store = cluster.store(&support::unique_prefix());
    let verifier = verifier();
    let revoker = Revoker::new(verifier.clone(), store.clone());
    let mut redis = cluster_connection(&cluster).await;

    let exp = now() + 100;
    let raw = mint(json!({ "sub": "dave", "sid": "dave-1", "jti": "ttl-1", "iat": now(), "exp": exp }));
    let token = verifier.verify(&raw).unwrap();
    revoker.revoke(&token).await.unwrap();
    let key = token.revocation_key();
    let bucket = store.bucket_for(&key, token.subject_key().as_ref());
    // Revoked for its subject: the token's hash bound to the subject's.
    let record = key.for_subject(&token.subject_key().unwrap());
    let pttl: i64 = redis.pttl(store.token_key(bucket, &record)).await.unwrap();
    let expected_ms = ((exp + LEEWAY + 1) as i64) * 1000
        - SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
    assert!(
        (pttl - expected_ms).abs() <= 1000,
        "PTTL {pttl} ms, expected {expected_ms} ms ±1 s"
    );

    // Accepted only thanks to leeway: expires from the store about two seconds on.
    let short = verifier
        .verify(&mint(json!({ "jti": "ttl-2", "exp": now() - LEEWAY + 1 })))
        .unwrap();
    revoker.revoke(&short).await.unwrap();
    let short_key = store.token_key(store.bucket_of(&short.revocation_key()), &short.revocation_key());
    let ttl: i64 = redis.ttl(&short_key).await.unwrap();
    assert!((1..=3).contains(&ttl), "TTL {ttl}");
    tokio::time::sleep(Duration::from_secs(ttl as u64) + Duration::from_millis(1100)).await;
    assert!(
        !redis.exists::<_, bool>(&short_key).await.unwrap(),
        "outlived its TTL"
    );

    // Watermarks: the longest token lifetime plus leeway. Session markers, in every
    // bucket: one leeway more (a session's token may come from an issuer clock ahead).
    revoker.revoke_subject_of(&token).await.unwrap();
    revoker.revoke_session_of(&token).await.unwrap();
    let watermark = (MAX_LIFETIME.as_secs() + LEEWAY + 1) as i64;
    let session = watermark + LEEWAY as i64;
    let mut keys = vec![(store.subject_key(&token.subject_key().unwrap()), watermark)];
    keys.extend((0..store.buckets()).map(|b| (store.session_key(b, &token.session_key().unwrap()), session)));
    for (key, configured) in keys {
        let ttl: i64 = redis.ttl(&key).await.unwrap();
        assert!(
            (configured - 1..=configured).contains(&ttl),
            "{key}: TTL {ttl}, configured {configured}"
        );
    }
    assert_no_crossslot(&cluster);
}

#[tokio::test]
async fn nothing_secret_or_personal_is_stored_on_any_node() {
    let cluster = cluster_or_skip!();
    let prefix = support::unique_prefix();
    let store = cluster.store(&prefix);
    let revoker = Revoker::new(verifier(), store.clone());
    let subject = "erin@example.com";
    let raw = mint(
        json!({ "sub": subject, "sid": "session-erin-42", "jti": "jti-erin-7", "iat": now(), "exp": now() + 600 }),
    );
    let no_jti = mint(json!({ "sub": subject, "iat": now(), "exp": now() + 600 }));
    let token = verifier().verify(&raw).unwrap();
    revoker.revoke(&token).await.unwrap();
    revoker.revoke_token(&no_jti).await.unwrap();
    revoker.revoke_subject_of(&token).await.unwrap();
    revoker.revoke_session_of(&token).await.unwrap();
    revoker.revoke_all().await.unwrap();

    let (keys, events) = every_key_and_event(&cluster, &store).await;
    let n = store.buckets() as usize;
    // And the buckets' epoch markers (data-loss detection), as the store's watch sees
    // them written: not counted, but looked at below like every key.
    assert_eq!(
        keys.iter().filter(|(key, _)| !key.ends_with(":epoch")).count(),
        3 + 5 * n + 1,
        "tokens, subject, N sessions, N globals, N feeds, N counters, N indexes, the layout (and epoch markers, not counted)"
    );
    assert_eq!(events, 3 + 2 * n, "one event per record written");
    let signature = raw.rsplit('.').next().unwrap();
    let forbidden = [
        &raw,
        &no_jti,
        signature,
        subject,
        "erin",
        "session-erin-42",
        "jti-erin-7",
    ];
    for (key, value) in keys {
        assert!(
            key.starts_with(&format!("{{{prefix}:b")),
            "{key} has no bucket tag"
        );
        for secret in forbidden {
            assert!(
                !key.contains(secret) && !value.contains(secret),
                "{key} = {value} leaks {secret:?}"
            );
        }
    }
    assert_no_crossslot(&cluster);
}

/// Every key of `store`'s prefix on every master, with its value (a feed: all its
/// fields), checking each has a TTL but the feeds and their counters; and the number of
/// feed events.
async fn every_key_and_event(cluster: &RedisCluster, store: &RedisStore) -> (Vec<(String, String)>, usize) {
    let (mut keys, mut events) = (Vec::new(), 0);
    for (index, _) in cluster.masters() {
        let mut node = cluster.nodes[index]
            .client()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let mut cursor = 0u64;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("*{}*", store.prefix()))
                .query_async(&mut node)
                .await
                .unwrap();
            for key in batch {
                let value = if key.ends_with(":feed") {
                    let entries: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
                        .arg(&key)
                        .arg("-")
                        .arg("+")
                        .query_async(&mut node)
                        .await
                        .unwrap();
                    events += entries.len();
                    entries
                        .into_iter()
                        .flat_map(|(_, fields)| fields)
                        .collect::<Vec<_>>()
                        .join(" ")
                } else if key.ends_with(":index") {
                    // The bucket's index: every member (kind, hash, value).
                    let members: Vec<String> = node.zrange(&key, 0, -1).await.unwrap();
                    members.join(" ")
                } else {
                    // The feed counters, the layout and the epoch markers have no TTL.
                    if !key.ends_with(":feed:seq") && key != store.layout_key() && !key.ends_with(":epoch") {
                        let ttl: i64 = node.ttl(&key).await.unwrap();
                        assert!(ttl > 0, "{key} has no TTL");
                    }
                    node.get(&key).await.unwrap()
                };
                keys.push((key, value));
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
    }
    (keys, events)
}
