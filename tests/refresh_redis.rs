//! Refresh-token rotation with reuse detection on Redis (one server): through
//! `RedisStore`, and through a `MirrorStore` on another replica of the app sharing the
//! same Redis. Real `redis-server` processes (skipped, saying why, without one, unless
//! `TOWER_JWT_REVOKE_REQUIRE_REDIS=1`).

#[macro_use]
mod support;

use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands;
use tower_jwt_revoke::jsonwebtoken::Algorithm;
use tower_jwt_revoke::refresh::{
    NewFamily, RefreshHash, RefreshRefusal, RefreshStore, SessionError, Sessions,
};
use tower_jwt_revoke::store::{MirrorStore, RevocationQuery, RevocationStore};
use tower_jwt_revoke::{JwtVerifier, RevocationKey, Revoker, SigningKey, TokenIssuer, VerificationKey};

use support::{RedisServer, unique_prefix};

const SECRET: &[u8] = b"a long random secret of 32 bytes";

fn verifier() -> JwtVerifier {
    JwtVerifier::builder()
        .key(VerificationKey::hmac(Algorithm::HS256, SECRET).unwrap())
        .issuer("app")
        .build()
        .unwrap()
}

/// One replica of the app: its sessions, over `revocations` and `families`.
fn replica<S>(store: S) -> (Sessions, Arc<dyn RevocationStore>)
where
    S: RevocationStore + RefreshStore + Clone,
{
    let verifier = verifier();
    let issuer = TokenIssuer::builder(&verifier)
        .signing_key(SigningKey::hmac(Algorithm::HS256, SECRET).unwrap())
        .build()
        .unwrap();
    let revocations: Arc<dyn RevocationStore> = Arc::new(store.clone());
    let revoker = Revoker::new(verifier, Arc::clone(&revocations));
    (Sessions::new(issuer, revoker, store), revocations)
}

async fn accepted(store: &Arc<dyn RevocationStore>, token: &str) -> bool {
    let Ok(verified) = verifier().verify(token) else {
        return false;
    };
    let query = RevocationQuery::for_token(&verified);
    store
        .lookup(&query)
        .await
        .unwrap()
        .revoked_by(verified.issued_at())
        .is_none()
}

/// A refresh on one replica, the reuse of a copy on the other: the session ends
/// everywhere, another session of the same user does not.
async fn reuse_across(one: (Sessions, Arc<dyn RevocationStore>), two: (Sessions, Arc<dyn RevocationStore>)) {
    let (one, one_store) = one;
    let (two, two_store) = two;
    let first = one.sign_in("alice").await.unwrap();
    let other = one.sign_in("alice").await.unwrap();
    let copy = first.refresh_token().to_owned();
    let current = one.refresh(first.refresh_token()).await.unwrap();
    assert!(matches!(two.refresh(&copy).await, Err(SessionError::Reused)));
    for store in [&one_store, &two_store] {
        // The mirror learns of the session revocation through its feed.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while accepted(store, current.access().token()).await && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            !accepted(store, current.access().token()).await,
            "the session is revoked"
        );
        assert!(
            accepted(store, other.access().token()).await,
            "another session is untouched"
        );
    }
    let refused = two.refresh(current.refresh_token()).await;
    assert!(
        matches!(refused, Err(SessionError::Refused(RefreshRefusal::Ended))),
        "{refused:?}"
    );
    two.refresh(other.refresh_token()).await.unwrap();
}

#[tokio::test]
async fn a_reused_copy_ends_its_session_on_both_replicas() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let redis = server.store(&unique_prefix());
    let mirror = MirrorStore::start(redis.clone());
    mirror.wait_until_synced(Duration::from_secs(10)).await.unwrap();
    reuse_across(replica(redis.clone()), replica(mirror.clone())).await;
    reuse_across(replica(mirror), replica(redis)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_concurrent_refreshes_with_one_token_exactly_one_wins() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (sessions, _) = replica(server.store(&unique_prefix()));
    for trial in 0..1000 {
        let pair = sessions.sign_in("alice").await.unwrap();
        let race =
            |sessions: Sessions, token: String| tokio::spawn(async move { sessions.refresh(&token).await });
        let first = race(sessions.clone(), pair.refresh_token().to_owned());
        let second = race(sessions.clone(), pair.refresh_token().to_owned());
        let outcomes = [first.await.unwrap(), second.await.unwrap()];
        let winners = outcomes.iter().filter(|outcome| outcome.is_ok()).count();
        assert_eq!(winners, 1, "trial {trial}: {outcomes:?}");
    }
}

#[tokio::test]
async fn nothing_raw_is_stored_and_everything_dies_with_the_family() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let prefix = unique_prefix();
    let redis = server.store(&prefix);
    let (sessions, _) = replica(redis.clone());
    let lifetime = Duration::from_secs(3600);
    let sessions = sessions.with_family_lifetime(lifetime);
    let pair = sessions.sign_in("alice-the-subject").await.unwrap();
    let pair = sessions.refresh(pair.refresh_token()).await.unwrap();
    let session = verifier()
        .verify(pair.access().token())
        .unwrap()
        .session_id()
        .unwrap()
        .to_owned();
    let secret = pair.refresh_token().rsplit('.').next().unwrap().to_owned();

    let mut connection = server.client().get_multiplexed_async_connection().await.unwrap();
    let mut keys: Vec<String> = Vec::new();
    let mut scan: redis::AsyncIter<String> = connection
        .scan_match(format!("{{{prefix}:b*}}:r*"))
        .await
        .unwrap();
    while let Some(key) = scan.next_item().await {
        keys.push(key.unwrap());
    }
    drop(scan);
    assert_eq!(
        keys.len(),
        3,
        "family, consumed tokens, the subject's families: {keys:?}"
    );
    let mut everything = keys.join(" ");
    for key in &keys {
        let kind: String = redis::cmd("TYPE")
            .arg(key)
            .query_async(&mut connection)
            .await
            .unwrap();
        let values: Vec<String> = match kind.as_str() {
            "hash" => connection.hgetall::<_, Vec<String>>(key).await.unwrap(),
            "set" => connection.smembers(key).await.unwrap(),
            other => panic!("{key}: unexpected {other}"),
        };
        everything.push_str(&values.join(" "));
        let ttl: i64 = connection.pttl(key).await.unwrap();
        assert!(
            ttl > 3_590_000 && ttl <= 3_600_000,
            "{key}: PTTL {ttl}, the family's lifetime"
        );
    }
    for raw in [
        "alice-the-subject",
        session.as_str(),
        secret.as_str(),
        pair.refresh_token(),
    ] {
        assert!(!everything.contains(raw), "{raw} stored raw: {everything}");
    }
}

#[tokio::test]
async fn idle_timeout_and_absolute_lifetime_end_a_family_at_their_second() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = server.store(&unique_prefix());
    let family = RevocationKey::session(Some("app"), "s");
    let subject = RevocationKey::subject(Some("app"), "alice");
    let hash = |n: u8| RefreshHash::from_bytes([n; 32]);
    let start = |token: u8, now: u64| {
        NewFamily::new(
            family,
            subject,
            hash(token),
            now,
            now + 100,
            Duration::from_secs(30),
        )
    };
    let rotate = |presented: u8, now: u64| {
        let rotation = tower_jwt_revoke::refresh::Rotation::new(
            family,
            subject,
            hash(presented),
            hash(presented + 1),
            now,
        );
        let store = store.clone();
        async move { RefreshStore::rotate(&store, &rotation).await.unwrap() }
    };
    use tower_jwt_revoke::refresh::RotationOutcome::*;
    store.start_family(&start(0, 1000)).await.unwrap();
    assert_eq!(rotate(0, 1029).await, Rotated, "the last second before idle");
    assert_eq!(rotate(1, 1058).await, Rotated, "idle counts from the last use");
    assert_eq!(rotate(2, 1087).await, Rotated);
    assert_eq!(rotate(3, 1099).await, Rotated, "the last second of its lifetime");
    assert_eq!(rotate(4, 1100).await, Expired, "absolute lifetime");
    assert_eq!(rotate(4, 1100).await, Unknown, "and nothing kept");
    store.start_family(&start(10, 2000)).await.unwrap();
    assert_eq!(rotate(10, 2030).await, Expired, "idle timeout");
}

/// The same on a Redis Cluster (3 masters, 3 replicas): every operation in one slot
/// (no `CROSSSLOT` anywhere), a reuse across replicas of the app, 1,000 races.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_every_operation_stays_in_one_slot() {
    let Some(cluster) = support::cluster::RedisCluster::start() else {
        return;
    };
    let prefix = unique_prefix();
    let redis = cluster.store(&prefix);
    let mirror = MirrorStore::start(redis.clone());
    mirror.wait_until_synced(Duration::from_secs(10)).await.unwrap();
    reuse_across(replica(redis.clone()), replica(mirror.clone())).await;
    let (sessions, _) = replica(redis.clone());
    for trial in 0..1000 {
        let pair = sessions.sign_in(&format!("user-{}", trial % 50)).await.unwrap();
        let race =
            |sessions: Sessions, token: String| tokio::spawn(async move { sessions.refresh(&token).await });
        let first = race(sessions.clone(), pair.refresh_token().to_owned());
        let second = race(sessions.clone(), pair.refresh_token().to_owned());
        let outcomes = [first.await.unwrap(), second.await.unwrap()];
        assert_eq!(
            outcomes.iter().filter(|o| o.is_ok()).count(),
            1,
            "trial {trial}: {outcomes:?}"
        );
    }
    // Log out everywhere across many families of one subject: one slot too.
    let pairs = [
        sessions.sign_in("carol").await.unwrap(),
        sessions.sign_in("carol").await.unwrap(),
    ];
    let token = verifier().verify(pairs[0].access().token()).unwrap();
    sessions.log_out_everywhere(&token).await.unwrap();
    for pair in &pairs {
        let refused = sessions.refresh(pair.refresh_token()).await;
        assert!(
            matches!(refused, Err(SessionError::Refused(RefreshRefusal::Ended))),
            "{refused:?}"
        );
    }
    let errors = cluster.crossslot_errors();
    assert!(errors.is_empty(), "CROSSSLOT seen: {errors:?}");
}
