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

/// Grace window off (the default): of two refreshes racing with one token, exactly one
/// wins, and the other is a reuse.
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
        assert!(
            outcomes
                .iter()
                .any(|outcome| matches!(outcome, Err(SessionError::Reused))),
            "trial {trial}: {outcomes:?}"
        );
    }
}

/// With a grace window, the loser of each race gets the winner's successor: both
/// succeed, with the same refresh token, and the family goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_grace_window_two_concurrent_refreshes_both_succeed() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let redis = server.store(&unique_prefix());
    let mirror = MirrorStore::start(redis.clone());
    mirror.wait_until_synced(Duration::from_secs(10)).await.unwrap();
    let (one, _) = replica(redis);
    let (two, _) = replica(mirror);
    let one = one.with_grace_window(Duration::from_secs(30));
    let two = two.with_grace_window(Duration::from_secs(30));
    for trial in 0..200 {
        let pair = one.sign_in("alice").await.unwrap();
        let race =
            |sessions: Sessions, token: String| tokio::spawn(async move { sessions.refresh(&token).await });
        let first = race(one.clone(), pair.refresh_token().to_owned());
        let second = race(two.clone(), pair.refresh_token().to_owned());
        let (first, second) = (first.await.unwrap().unwrap(), second.await.unwrap().unwrap());
        assert_eq!(first.refresh_token(), second.refresh_token(), "trial {trial}");
        let next = two.refresh(first.refresh_token()).await.unwrap();
        one.refresh(next.refresh_token()).await.unwrap();
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
    let sessions = sessions
        .with_family_lifetime(lifetime)
        .with_grace_window(Duration::from_secs(10));
    let claims = serde_json::json!({ "email": "alice@example.com" });
    let first = sessions
        .sign_in_with_claims("alice-the-subject", &claims)
        .await
        .unwrap();
    let pair = sessions.refresh(first.refresh_token()).await.unwrap();
    let session = verifier()
        .verify(pair.access().token())
        .unwrap()
        .session_id()
        .unwrap()
        .to_owned();

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
    let mut everything: Vec<u8> = keys.join(" ").into_bytes();
    for key in &keys {
        let kind: String = redis::cmd("TYPE")
            .arg(key)
            .query_async(&mut connection)
            .await
            .unwrap();
        let values: Vec<Vec<u8>> = match kind.as_str() {
            "hash" => connection.hgetall::<_, Vec<Vec<u8>>>(key).await.unwrap(),
            "set" => connection.smembers(key).await.unwrap(),
            other => panic!("{key}: unexpected {other}"),
        };
        for value in values {
            everything.push(b' ');
            everything.extend_from_slice(&value);
        }
        let ttl: i64 = connection.pttl(key).await.unwrap();
        assert!(
            ttl > 3_590_000 && ttl <= 3_600_000,
            "{key}: PTTL {ttl}, the family's lifetime"
        );
    }
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let mut raw: Vec<Vec<u8>> = vec![
        b"alice-the-subject".to_vec(),
        b"alice@example.com".to_vec(),
        session.clone().into_bytes(),
        base64_decode(&session),
    ];
    for token in [first.refresh_token(), pair.refresh_token()] {
        let decoded = base64_decode(&token[4..]);
        let (handle, secret) = decoded.split_at(16);
        raw.extend([
            token.as_bytes().to_vec(),
            token.as_bytes()[4..].to_vec(),
            handle.to_vec(),
            secret.to_vec(),
            hex(handle).into_bytes(),
            hex(secret).into_bytes(),
        ]);
    }
    for raw in raw {
        assert!(
            !everything.windows(raw.len()).any(|window| window == raw),
            "{} stored raw",
            String::from_utf8_lossy(&raw)
        );
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .unwrap()
}

#[tokio::test]
async fn idle_timeout_and_absolute_lifetime_end_a_family_at_their_second() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = server.store(&unique_prefix());
    let mut connection = server.client().get_multiplexed_async_connection().await.unwrap();
    let family = RevocationKey::session(Some("app"), "s");
    let subject = RevocationKey::subject(Some("app"), "alice");
    let key = store.refresh_family_key(&family);
    let hash = |n: u8| RefreshHash::from_bytes([n; 32]);
    let start = |token: u8, now: u64| {
        NewFamily::new(
            family,
            subject,
            hash(token),
            b"sealed".to_vec(),
            now,
            now + 100,
            Duration::from_secs(30),
        )
    };
    let rotate = |presented: u8, now: u64| {
        let rotation =
            tower_jwt_revoke::refresh::Rotation::new(family, hash(presented), hash(presented + 1), now);
        let store = store.clone();
        async move { RefreshStore::rotate(&store, &rotation).await.unwrap() }
    };
    use tower_jwt_revoke::refresh::RotationOutcome::*;
    let rotated = Rotated {
        sealed: b"sealed".to_vec(),
    };
    // Redis keeps the family until it ends, not past it: the idle timeout from the
    // last use, or the absolute end when that comes first (seconds as the test says).
    let mut ttl_is = async |secs: i64, why: &str| {
        let ttl: i64 = connection.pttl(&key).await.unwrap();
        assert!(
            ttl > secs * 1000 - 5_000 && ttl <= secs * 1000,
            "{why}: PTTL {ttl}, expected {secs} s"
        );
    };
    store.start_family(&start(0, 1000)).await.unwrap();
    ttl_is(30, "idle timeout from the sign-in").await;
    assert_eq!(rotate(0, 1029).await, rotated, "the last second before idle");
    ttl_is(30, "idle timeout from the refresh").await;
    assert_eq!(rotate(1, 1058).await, rotated, "idle counts from the last use");
    assert_eq!(rotate(2, 1087).await, rotated);
    ttl_is(13, "the absolute end comes first").await;
    assert_eq!(rotate(3, 1099).await, rotated, "the last second of its lifetime");
    ttl_is(1, "one second left").await;
    assert_eq!(rotate(4, 1100).await, Expired, "absolute lifetime");
    assert_eq!(rotate(4, 1100).await, Unknown, "and nothing kept");
    store.start_family(&start(10, 2000)).await.unwrap();
    assert_eq!(rotate(10, 2030).await, Expired, "idle timeout");
    let exists: bool = connection.exists(&key).await.unwrap();
    assert!(!exists, "nothing kept past it");
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

/// Log out everywhere, then sign in again in the same second, on Redis: the new
/// session's token works (the sign-in waits out the watermark's second).
#[tokio::test]
async fn a_sign_in_in_the_same_second_as_log_out_everywhere_gets_a_token_that_works() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (sessions, store) = replica(server.store(&unique_prefix()));
    for _ in 0..2 {
        let before = sessions.sign_in("alice").await.unwrap();
        let token = verifier().verify(before.access().token()).unwrap();
        sessions.log_out_everywhere(&token).await.unwrap();
        let after = sessions.sign_in("alice").await.unwrap();
        assert!(!accepted(&store, before.access().token()).await);
        assert!(
            accepted(&store, after.access().token()).await,
            "signed in after the logout"
        );
        let renewed = sessions.refresh(after.refresh_token()).await.unwrap();
        assert!(accepted(&store, renewed.access().token()).await);
    }
}
