//! The Redis store against a real redis-server (see tests/support).

mod support;

mod scenarios;

#[path = "redis_store/layout.rs"]
mod layout;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::StatusCode;
use redis::AsyncCommands;
use serde_json::json;
use tower_jwt_revoke::store::{InMemoryStore, MirrorStore, RedisStore, RevocationQuery, RevocationStore};
use tower_jwt_revoke::{FailurePolicy, RevocationLayer, Revoker};

use self::scenarios::*;

#[tokio::test]
async fn seed_scenario_and_log_out_everywhere_through_axum() {
    let server = redis_or_skip!();
    seed_flow(&demo_app(server.store(&support::unique_prefix()))).await;
}

#[tokio::test]
async fn a_revocation_through_one_replica_is_honoured_by_another() {
    let server = redis_or_skip!();
    let prefix = support::unique_prefix();
    // Two routers with their own stores (own pools and connections), like two pods.
    let replica_a = demo_app(server.store(&prefix));
    let replica_b = demo_app(server.store(&prefix));

    logout_on_one_replica_is_refused_by_another(&replica_a, &replica_b, "carol").await;
}

/// Where the store keeps a token's revocation: in the bucket its checks read.
fn token_key(store: &RedisStore, token: &tower_jwt_revoke::VerifiedToken) -> String {
    let key = token.revocation_key();
    // Revoked for its subject, when it has one: the token's hash bound to the subject's.
    let record = token
        .subject_key()
        .map_or(key, |subject| key.for_subject(&subject));
    store.token_key(store.bucket_for(&key, token.subject_key().as_ref()), &record)
}

#[tokio::test]
async fn stored_ttls_match_the_token_lifetime_and_lapse() {
    let server = redis_or_skip!();
    let store = server.store(&support::unique_prefix());
    let verifier = verifier();
    let revoker = Revoker::new(verifier.clone(), store.clone());
    let mut redis = server.client().get_multiplexed_async_connection().await.unwrap();

    let exp = now() + 100;
    let raw = mint(json!({ "sub": "dave", "jti": "ttl-1", "iat": now(), "exp": exp }));
    let token = verifier.verify(&raw).unwrap();
    revoker.revoke(&token).await.unwrap();
    let pttl: i64 = redis.pttl(token_key(&store, &token)).await.unwrap();
    let expected_ms = ((exp + LEEWAY + 1) as i64) * 1000
        - SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
    assert!(
        (pttl - expected_ms).abs() <= 1000,
        "PTTL {pttl} ms, expected {expected_ms} ms ±1 s"
    );

    // Accepted only thanks to leeway: expires from the store about two seconds on.
    let short = mint(json!({ "jti": "ttl-2", "exp": now() - LEEWAY + 1 }));
    let short_token = verifier.verify(&short).unwrap();
    revoker.revoke(&short_token).await.unwrap();
    let key = token_key(&store, &short_token);
    let ttl: i64 = redis.ttl(&key).await.unwrap();
    assert!((1..=3).contains(&ttl), "TTL {ttl}");
    tokio::time::sleep(Duration::from_secs(ttl as u64) + Duration::from_millis(1100)).await;
    let exists: bool = redis.exists(&key).await.unwrap();
    assert!(!exists, "the revocation outlived its TTL");

    revoker.revoke_subject_of(&token).await.unwrap();
    let ttl: i64 = redis
        .ttl(store.subject_key(&token.subject_key().unwrap()))
        .await
        .unwrap();
    let configured = (MAX_LIFETIME.as_secs() + LEEWAY + 1) as i64;
    assert!(
        (configured - 1..=configured).contains(&ttl),
        "watermark TTL {ttl}, configured {configured}"
    );
}

#[tokio::test]
async fn nothing_secret_or_personal_is_stored() {
    let server = redis_or_skip!();
    let prefix = support::unique_prefix();
    let store = server.store(&prefix);
    let verifier = verifier();
    let revoker = Revoker::new(verifier.clone(), store.clone());

    let subject = "erin@example.com";
    let raw = mint(
        json!({ "sub": subject, "sid": "session-erin-42", "jti": "jti-erin-7", "iat": now(), "exp": now() + 600 }),
    );
    let no_jti = mint(json!({ "sub": subject, "iat": now(), "exp": now() + 600 }));
    let token = verifier.verify(&raw).unwrap();
    revoker.revoke(&token).await.unwrap();
    revoker.revoke_token(&no_jti).await.unwrap();
    revoker.revoke_subject_of(&token).await.unwrap();
    revoker.revoke_session_of(&token).await.unwrap();
    revoker.revoke_all().await.unwrap();

    let mut redis = server.client().get_multiplexed_async_connection().await.unwrap();
    let mut keys = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("*{prefix}*"))
            .query_async(&mut redis)
            .await
            .unwrap();
        keys.extend(batch);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    // Both tokens (each in its subject's bucket) and the subject: one key each; the
    // session and the global watermark: a copy in every bucket; every bucket's feed and
    // counter and index (the copies touched them all); and the layout. And a bucket's epoch
    // marker, once the store's watch has seen the bucket written (data-loss detection):
    // not counted, but looked at below like every key.
    let n = store.buckets() as usize;
    assert_eq!(
        keys.iter().filter(|key| !key.ends_with(":epoch")).count(),
        3 + 2 * n + 3 * n + 1,
        "tokens, subject, sessions, globals, feeds, counters, indexes, layout: {keys:?}"
    );
    assert!(
        keys.iter().all(|key| key.starts_with(&format!("{{{prefix}:b"))),
        "every key carries its bucket's hash tag: {keys:?}"
    );
    let mut events = 0;
    let signature = raw.rsplit('.').next().unwrap();
    let forbidden = [
        raw.as_str(),
        no_jti.as_str(),
        signature,
        subject,
        "erin",
        "session-erin-42",
        "jti-erin-7",
    ];
    for key in keys {
        let value = if key.ends_with(":feed") {
            // The change feed: every field of every event.
            let entries: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
                .arg(&key)
                .arg("-")
                .arg("+")
                .query_async(&mut redis)
                .await
                .unwrap();
            events += entries.len();
            let fields = entries
                .into_iter()
                .flat_map(|(_, fields)| fields)
                .collect::<Vec<_>>();
            fields.join(" ")
        } else if key.ends_with(":index") {
            // The bucket's index: every member (kind, hash, value).
            let members: Vec<String> = redis.zrange(&key, 0, -1).await.unwrap();
            members.join(" ")
        } else {
            let value: String = redis.get(&key).await.unwrap();
            // The feeds' sequence counters (numbers), the layout (the bucket count) and
            // the epoch markers are the keys without a TTL.
            if !key.ends_with(":feed:seq") && key != store.layout_key() && !key.ends_with(":epoch") {
                let ttl: i64 = redis.ttl(&key).await.unwrap();
                assert!(ttl > 0, "{key} has no TTL");
            }
            value
        };
        for secret in forbidden {
            assert!(
                !key.contains(secret) && !value.contains(secret),
                "{key} = {value} leaks {secret:?}"
            );
        }
    }
    assert_eq!(events, 3 + 2 * n, "one event per record written");
}

#[tokio::test]
async fn one_read_command_per_checked_request() {
    let server = redis_or_skip!(private);
    // Without the store's background watch for data loss (the epoch markers, read twice
    // a second): the commands counted are those of the requests alone.
    let store = server
        .builder(&support::unique_prefix())
        .detect_data_loss(false)
        .build()
        .unwrap();
    let service = protected(RevocationLayer::new(verifier(), store));
    let token = token_for("frank");
    // The first request connects (HELLO, CLIENT SETINFO...); count after it.
    assert_eq!(status_with(&service, &token).await, StatusCode::OK);

    let mut admin = server.client().get_multiplexed_async_connection().await.unwrap();
    let () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut admin)
        .await
        .unwrap();
    const REQUESTS: u64 = 25;
    for _ in 0..REQUESTS {
        assert_eq!(status_with(&service, &token).await, StatusCode::OK);
    }
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut admin)
        .await
        .unwrap();
    let mut calls = std::collections::BTreeMap::new();
    for line in stats.lines().filter_map(|line| line.strip_prefix("cmdstat_")) {
        let (name, rest) = line.split_once(':').unwrap();
        let count: u64 = rest
            .split(',')
            .find_map(|kv| kv.strip_prefix("calls="))
            .unwrap()
            .parse()
            .unwrap();
        if name != "info" && !name.starts_with("config") {
            calls.insert(name.to_owned(), count);
        }
    }
    assert_eq!(calls.get("mget"), Some(&REQUESTS), "{calls:?}");
    assert_eq!(
        calls.values().sum::<u64>(),
        REQUESTS,
        "nothing but one MGET per request: {calls:?}"
    );
}

#[tokio::test]
async fn an_outage_fails_closed_or_open_and_recovery_needs_no_restart() {
    let mut server = redis_or_skip!(private, aof);
    let prefix = support::unique_prefix();
    let store = server.store(&prefix);
    let verifier = verifier();
    let closed = protected(
        RevocationLayer::new(verifier.clone(), store.clone()).with_check_timeout(Duration::from_millis(500)),
    );
    let open = protected(
        RevocationLayer::new(verifier.clone(), store.clone())
            .with_check_timeout(Duration::from_millis(500))
            .with_failure_policy(FailurePolicy::FailOpen),
    );
    let revoked = token_for("grace");
    let valid = token_for("grace");
    Revoker::new(verifier.clone(), store.clone())
        .revoke_token(&revoked)
        .await
        .unwrap();
    assert_eq!(status_with(&closed, &revoked).await, StatusCode::UNAUTHORIZED);
    assert_eq!(status_with(&closed, &valid).await, StatusCode::OK);

    server.kill();
    outage_fails_closed_or_open(&closed, &open, &valid, &revoked).await;

    server.restart();
    let back = std::time::Instant::now();
    let mut recovered = false;
    while back.elapsed() < Duration::from_secs(1) {
        if status_with(&closed, &valid).await == StatusCode::OK {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        recovered,
        "requests did not succeed within a second of Redis coming back"
    );
    assert_eq!(
        status_with(&closed, &revoked).await,
        StatusCode::UNAUTHORIZED,
        "AOF kept the revocation"
    );
}

#[tokio::test]
async fn concurrent_revokes_and_checks_lose_nothing() {
    let server = redis_or_skip!();
    let store = server.store(&support::unique_prefix());
    let mut tasks = Vec::new();
    for worker in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut keys = Vec::new();
            for n in 0..40 {
                let key = tower_jwt_revoke::RevocationKey::token(None, &format!("{worker}-{n}"));
                store.revoke_token(&key, Duration::from_secs(60)).await.unwrap();
                let query = RevocationQuery {
                    token: key,
                    subject: None,
                    session: None,
                    issued_at: None,
                };
                assert!(store.lookup(&query).await.unwrap().token_revoked);
                keys.push(key);
            }
            keys
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    assert_eq!(all.len(), 640);
    for key in all {
        let query = RevocationQuery {
            token: key,
            subject: None,
            session: None,
            issued_at: None,
        };
        assert!(store.lookup(&query).await.unwrap().token_revoked, "lost {key}");
    }
}

/// What a probe token met: accepted, or refused for a reason.
#[tokio::test]
async fn redis_memory_and_mirror_stores_agree_on_every_scenario() {
    let server = redis_or_skip!();
    let url = server.url().to_owned();
    let memory = scenarios(InMemoryStore::new).await;
    let redis_store = || {
        RedisStore::builder()
            .url(url.clone())
            .prefix(support::unique_prefix())
            .build()
            .unwrap()
    };
    let redis = scenarios(redis_store).await;
    let mirror = scenarios(|| MirrorStore::start(redis_store())).await;

    assert_eq!(memory, expected(), "in-memory store");
    assert_eq!(redis, expected(), "Redis store");
    assert_eq!(mirror, expected(), "mirror");
}

/// Issue #9: after Redis restarts, the store's shared connection is stale. The first
/// revocation (a logout) and the first check must still go through, on a fresh
/// connection, instead of failing once and leaving the client with a 503.
#[tokio::test]
async fn the_first_revocation_and_the_first_check_after_a_redis_restart_succeed() {
    let mut server = redis_or_skip!(private, aof);
    let store = server.store(&support::unique_prefix());
    let verifier = verifier();
    let revoker = Revoker::new(verifier.clone(), store.clone());
    let service = protected(RevocationLayer::new(verifier.clone(), store.clone()));
    let before = token_for("ivan");
    revoker.revoke_token(&before).await.unwrap();
    assert_eq!(status_with(&service, &before).await, StatusCode::UNAUTHORIZED);

    // A revocation first.
    server.kill();
    server.restart();
    let logout = token_for("ivan");
    let recorded = revoker.revoke_token(&logout).await;
    assert!(
        recorded.is_ok(),
        "the first revocation after a restart failed: {recorded:?}"
    );
    assert_eq!(status_with(&service, &logout).await, StatusCode::UNAUTHORIZED);

    // A check first.
    server.kill();
    server.restart();
    let valid = token_for("ivan");
    assert_eq!(
        status_with(&service, &valid).await,
        StatusCode::OK,
        "the first check after a restart was not answered"
    );
    assert_eq!(
        status_with(&service, &before).await,
        StatusCode::UNAUTHORIZED,
        "AOF kept the revocation"
    );
    assert_eq!(status_with(&service, &logout).await, StatusCode::UNAUTHORIZED);
}
