//! The mirror store against a real redis-server (see tests/support).

mod support;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::AsyncCommands;
use tower_jwt_revoke::RevocationKey;
use tower_jwt_revoke::store::MirrorStore;
use tower_jwt_revoke::store::{Lookup, RedisStore, RevocationQuery, RevocationStore, StoreError};

/// What the tests allow for a revocation to reach another replica's mirror.
const PROPAGATION_BOUND: Duration = Duration::from_secs(2);

fn query(token: RevocationKey) -> RevocationQuery {
    RevocationQuery {
        token,
        subject: None,
        session: None,
        issued_at: Some(now_secs()),
    }
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn token(n: usize) -> RevocationKey {
    RevocationKey::token(Some("mirror-test"), &n.to_string())
}

/// A token-revocation event as the README's schema has another writer append it to a
/// bucket's feed, expiring in a minute.
fn feed_event(feed: &str, seq: u64, hash: &str) -> redis::Cmd {
    let expires_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64 + 60_000;
    let mut xadd = redis::cmd("XADD");
    xadd.arg(feed).arg("*").arg("seq").arg(seq).arg("kind").arg("t");
    xadd.arg("hash")
        .arg(hash)
        .arg("value")
        .arg("1")
        .arg("expires_ms")
        .arg(expires_ms);
    xadd
}

/// A token marker in `bucket` expiring in a minute, written by another writer.
async fn marked_by_another_writer(
    redis: &mut redis::aio::MultiplexedConnection,
    store: &tower_jwt_revoke::store::RedisStore,
    bucket: u32,
    token: RevocationKey,
) {
    let expires_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64 + 60_000;
    support::mark_as_another_writer(redis, store, bucket, &token, expires_ms).await;
}

async fn synced(mirror: &MirrorStore) {
    mirror
        .wait_until_synced(Duration::from_secs(10))
        .await
        .expect("mirror in sync");
}

/// Polls until `mirror` says `token` is revoked, answering locally.
async fn until_refused(mirror: &MirrorStore, token: RevocationKey, bound: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if mirror
            .lookup(&query(token))
            .await
            .map(|l| l.token_revoked)
            .unwrap_or(false)
        {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < bound,
            "not refused within {bound:?}: {:?}",
            mirror.health()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_revocation_through_one_replica_reaches_the_other_mirror() {
    let server = redis_or_skip!();
    let prefix = support::unique_prefix();
    let replica_a = MirrorStore::start(server.store(&prefix));
    let replica_b = MirrorStore::start(server.store(&prefix));
    synced(&replica_a).await;
    synced(&replica_b).await;

    replica_a
        .revoke_token(&token(1), Duration::from_secs(60))
        .await
        .unwrap();
    // The writer sees its own write at once.
    assert!(replica_a.lookup(&query(token(1))).await.unwrap().token_revoked);
    until_refused(&replica_b, token(1), PROPAGATION_BOUND).await;

    let subject = RevocationKey::subject(None, "alice");
    replica_b
        .raise_subject_watermark(&subject, now_secs(), Duration::from_secs(60))
        .await
        .unwrap();
    let deadline = Instant::now() + PROPAGATION_BOUND;
    let probe = RevocationQuery {
        subject: Some(subject),
        ..query(token(2))
    };
    while replica_a
        .lookup(&probe)
        .await
        .unwrap()
        .subject_watermark
        .is_none()
    {
        assert!(Instant::now() < deadline, "watermark not propagated");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let health = replica_a.health();
    assert!(health.serving_locally && health.in_sync, "{health:?}");
}

#[tokio::test]
async fn checks_in_sync_make_no_round_trip() {
    let server = redis_or_skip!(private);
    let mirror = MirrorStore::start(server.store(&support::unique_prefix()));
    synced(&mirror).await;
    mirror
        .revoke_token(&token(7), Duration::from_secs(60))
        .await
        .unwrap();

    let mut admin = server.client().get_multiplexed_async_connection().await.unwrap();
    let () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut admin)
        .await
        .unwrap();
    for n in 0..200 {
        let lookup = mirror.lookup(&query(token(n))).await.unwrap();
        assert_eq!(lookup.token_revoked, n == 7);
        // The layer's synchronous path gives the same answer.
        assert_eq!(mirror.lookup_immediate(&query(token(n))), Some(lookup));
    }
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(!stats.contains("cmdstat_mget"), "a check went to Redis: {stats}");
}

#[tokio::test]
async fn a_write_by_another_writer_following_the_schema_is_picked_up() {
    let server = redis_or_skip!();
    let prefix = support::unique_prefix();
    let mirror = MirrorStore::start(server.store(&prefix));
    synced(&mirror).await;

    // Another service, in another language, writes a revocation by the README's schema:
    // a token without a subject lives in the bucket of its own hash.
    let hash = token(42).to_string();
    let bucket = u32::from_str_radix(&hash[..8], 16).unwrap() % 16;
    let tag = format!("{{{prefix}:b{bucket}}}");
    let key = format!("{tag}:t:{hash}");
    let mut redis = server.client().get_multiplexed_async_connection().await.unwrap();
    let seq: u64 = redis.incr(format!("{tag}:feed:seq"), 1).await.unwrap();
    let () = redis::pipe()
        .atomic()
        .cmd("SET")
        .arg(&key)
        .arg("1")
        .arg("EX")
        .arg(60)
        .ignore()
        .add_command(feed_event(&format!("{tag}:feed"), seq, &hash))
        .ignore()
        .query_async(&mut redis)
        .await
        .unwrap();
    until_refused(&mirror, token(42), PROPAGATION_BOUND).await;
}

#[tokio::test]
async fn a_gap_in_the_feed_triggers_a_reload_that_misses_nothing() {
    let server = redis_or_skip!();
    let prefix = support::unique_prefix();
    let mirror = MirrorStore::start(server.store(&prefix));
    synced(&mirror).await;
    let loads = mirror.health().loads;

    // Events 1..=5 are "trimmed away": their keys exist, the feed only has event 6.
    let writer = server.store(&prefix);
    for n in 100..105 {
        writer
            .revoke_token_of(&token(n), None, Duration::from_secs(60))
            .await
            .unwrap();
    }
    // The mirror may already have read them; force a gap it cannot have read, in the
    // feed of token(200)'s bucket.
    let mut redis = server.client().get_multiplexed_async_connection().await.unwrap();
    let bucket = writer.bucket_of(&token(200));
    let seq: u64 = redis.incr(writer.feed_seq_key(bucket), 5).await.unwrap();
    let hash = token(200).to_string();
    // In the same bucket, so that reloading that bucket alone finds it.
    marked_by_another_writer(&mut redis, &writer, bucket, token(199)).await;
    // The record before its event, as the store's scripts write them (atomically): a
    // reload that sees the event's sequence also sees the record.
    marked_by_another_writer(&mut redis, &writer, bucket, token(200)).await;
    let () = feed_event(&writer.feed_key(bucket), seq, &hash)
        .query_async(&mut redis)
        .await
        .unwrap();

    // token(199) was never announced in the feed: only a reload can find it.
    // (While the mirror reloads, checks go to Redis, which knows it: wait for the
    // reload itself.)
    let deadline = Instant::now() + Duration::from_secs(5);
    while mirror.health().loads == loads {
        assert!(Instant::now() < deadline, "no reload: {:?}", mirror.health());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    synced(&mirror).await;
    until_refused(&mirror, token(199), Duration::from_secs(5)).await;
    assert!(mirror.health().loads > loads, "{:?}", mirror.health());
    assert!(
        mirror.health().bucket_reloads >= 1,
        "only the bucket with the gap: {:?}",
        mirror.health()
    );
    for n in (100..105).chain([200]) {
        until_refused(&mirror, token(n), PROPAGATION_BOUND).await;
    }
}

#[tokio::test]
async fn an_outage_keeps_known_refusals_and_recovers_without_a_restart() {
    let mut server = redis_or_skip!(private, aof);
    let prefix = support::unique_prefix();
    let mirror = MirrorStore::builder(server.store(&prefix))
        .staleness_bound(Duration::from_millis(600))
        .start();
    synced(&mirror).await;
    mirror
        .revoke_token(&token(1), Duration::from_secs(120))
        .await
        .unwrap();

    server.kill();
    tokio::time::sleep(Duration::from_millis(900)).await; // past the staleness bound
    assert!(!mirror.health().serving_locally, "{:?}", mirror.health());
    assert_eq!(
        mirror.lookup_immediate(&query(token(1))),
        None,
        "a stale mirror must not answer alone"
    );
    // What it knew stays refused...
    let known = tokio::time::timeout(Duration::from_secs(3), mirror.lookup(&query(token(1))))
        .await
        .unwrap();
    assert!(known.unwrap().token_revoked);
    // ...while a check it cannot answer alone fails, and the layer's policy decides.
    let unknown: Result<Lookup, StoreError> =
        tokio::time::timeout(Duration::from_secs(3), mirror.lookup(&query(token(2))))
            .await
            .unwrap();
    assert!(unknown.is_err(), "a stale mirror answered alone: {unknown:?}");

    server.restart();
    // Written while the mirror is (most likely) still reconnecting: it resumes the feed.
    let writer = server.store(&prefix);
    writer
        .revoke_token(&token(3), Duration::from_secs(120))
        .await
        .unwrap();
    synced(&mirror).await;
    until_refused(&mirror, token(3), PROPAGATION_BOUND).await;
    assert!(
        mirror.lookup(&query(token(1))).await.unwrap().token_revoked,
        "AOF kept it"
    );

    // Many written and the feed trimmed short while the mirror is away: it reloads.
    server.kill();
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.restart();
    let trimming = RedisStore::builder()
        .url(server.url())
        .prefix(&prefix)
        .feed_max_len(10)
        .build()
        .unwrap();
    for n in 1000..1100 {
        trimming
            .revoke_token_of(&token(n), None, Duration::from_secs(120))
            .await
            .unwrap();
    }
    let mut redis = server.client().get_multiplexed_async_connection().await.unwrap();
    for bucket in 0..trimming.buckets() {
        let _: u64 = redis::cmd("XTRIM")
            .arg(trimming.feed_key(bucket))
            .arg("MAXLEN")
            .arg(1)
            .query_async(&mut redis)
            .await
            .unwrap();
    }
    synced(&mirror).await;
    for n in 1000..1100 {
        until_refused(&mirror, token(n), Duration::from_secs(5)).await;
    }
}

#[tokio::test]
async fn starting_amid_many_revocations_and_ongoing_writes_misses_none() {
    let server = redis_or_skip!();
    let prefix = support::unique_prefix();
    let writer = server.store(&prefix);
    const EXISTING: usize = 10_000;
    const DURING: usize = 2_000;

    let mut tasks = Vec::new();
    for worker in 0..16 {
        let writer = writer.clone();
        tasks.push(tokio::spawn(async move {
            for n in (worker..EXISTING).step_by(16) {
                writer
                    .revoke_token_of(&token(n), None, Duration::from_secs(300))
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }

    let ongoing = {
        let writer = writer.clone();
        tokio::spawn(async move {
            for n in EXISTING..EXISTING + DURING {
                writer
                    .revoke_token_of(&token(n), None, Duration::from_secs(300))
                    .await
                    .unwrap();
            }
        })
    };
    let mirror = MirrorStore::start(server.store(&prefix));
    ongoing.await.unwrap();
    synced(&mirror).await;
    // Let the mirror catch up with the tail of the feed.
    let deadline = Instant::now() + PROPAGATION_BOUND;
    while mirror.health().entries < EXISTING + DURING && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(mirror.health().serving_locally);
    let missing: Vec<usize> = {
        let mut missing = Vec::new();
        for n in 0..EXISTING + DURING {
            if !mirror.lookup(&query(token(n))).await.unwrap().token_revoked {
                missing.push(n);
            }
        }
        missing
    };
    assert!(
        missing.is_empty(),
        "{} revocations missing, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
}

use axum::body::Body;
use http::{Request, StatusCode, header};
use tower::ServiceExt;
use tower_jwt_revoke::jsonwebtoken::{self, Algorithm};
use tower_jwt_revoke::{JwtVerifier, RevocationLayer, Revoker, VerificationKey};

/// Issue #9: while the mirror answers checks, its store's shared write connection sits
/// idle and goes stale when Redis restarts. The first revocation after the restart must
/// still be recorded (on a fresh connection), and checks must go on being answered.
#[tokio::test]
async fn the_first_revocation_after_a_redis_restart_succeeds_through_the_mirror() {
    let mut server = redis_or_skip!(private, aof);
    let prefix = support::unique_prefix();
    let mirror = MirrorStore::start(server.store(&prefix));
    synced(&mirror).await;
    let revoker = Revoker::new(restart_verifier(), mirror.clone());
    let service = guarded(mirror.clone());
    let before = restart_token();
    revoker.revoke_token(&before).await.unwrap();

    server.kill();
    server.restart();
    synced(&mirror).await;
    let logout = restart_token();
    let recorded = revoker.revoke_token(&logout).await;
    assert!(
        recorded.is_ok(),
        "the first revocation after a restart failed: {recorded:?}"
    );
    for (token, expected) in [
        (&logout, StatusCode::UNAUTHORIZED),
        (&before, StatusCode::UNAUTHORIZED),
        (&restart_token(), StatusCode::OK),
    ] {
        assert_eq!(status(&service, token).await, expected);
    }
    // Another replica learns it from the restarted server, through its own mirror.
    let other = guarded(MirrorStore::start(server.store(&prefix)));
    let deadline = Instant::now() + Duration::from_secs(10);
    while status(&other, &logout).await != StatusCode::UNAUTHORIZED {
        assert!(Instant::now() < deadline, "another replica never refused it");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

const RESTART_SECRET: &[u8] = b"mirror-restart-test-secret-0123456789";

fn restart_verifier() -> JwtVerifier {
    JwtVerifier::builder()
        .key(VerificationKey::hmac(Algorithm::HS256, RESTART_SECRET).unwrap())
        .build()
        .unwrap()
}

fn restart_token() -> String {
    tower_jwt_revoke::install_crypto_provider();
    let now = now_secs();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::HS256),
        &serde_json::json!({ "sub": "ivan", "jti": uuid::Uuid::new_v4().to_string(), "iat": now, "exp": now + 600 }),
        &jsonwebtoken::EncodingKey::from_secret(RESTART_SECRET),
    )
    .unwrap()
}

/// A service answering 200 behind the layer on `mirror`.
fn guarded(
    mirror: MirrorStore,
) -> impl tower::Service<Request<Body>, Response = http::Response<Body>, Error = std::convert::Infallible> + Clone
{
    tower::ServiceBuilder::new()
        .layer(RevocationLayer::new(restart_verifier(), mirror))
        .service_fn(|_request: Request<Body>| async { Ok(http::Response::new(Body::from("ok"))) })
}

async fn status<S>(service: &S, token: &str) -> StatusCode
where
    S: tower::Service<Request<Body>, Response = http::Response<Body>, Error = std::convert::Infallible>
        + Clone,
{
    let request = Request::get("/")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), service.clone().oneshot(request))
        .await
        .expect("no request may hang beyond the timeouts")
        .unwrap()
        .status()
}

/// What a write repeated after a dead connection leaves in the feed (the same record
/// twice, numbered one after the other) is applied without a reload and changes
/// nothing the second time.
#[tokio::test]
async fn a_repeated_write_is_applied_twice_harmlessly_without_a_reload() {
    let server = redis_or_skip!();
    let prefix = support::unique_prefix();
    let mirror = MirrorStore::start(server.store(&prefix));
    synced(&mirror).await;
    let before = mirror.health();

    let writer = server.store(&prefix);
    let subject = RevocationKey::subject(None, "judy");
    let mark = now_secs();
    for _ in 0..2 {
        writer
            .revoke_token_of(&token(77), None, Duration::from_secs(60))
            .await
            .unwrap();
        writer
            .raise_subject_watermark(&subject, mark, Duration::from_secs(60))
            .await
            .unwrap();
    }
    let deadline = Instant::now() + PROPAGATION_BOUND;
    while mirror.health().applied_seq < before.applied_seq + 4 {
        assert!(
            Instant::now() < deadline,
            "events not applied: {:?}",
            mirror.health()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let after = mirror.health();
    assert_eq!(after.loads, before.loads, "a repeated event was taken for a gap");
    assert!(after.serving_locally, "{after:?}");
    let probe = RevocationQuery {
        subject: Some(subject),
        issued_at: Some(mark),
        ..query(token(77))
    };
    let lookup = mirror.lookup_immediate(&probe).expect("answered locally");
    assert!(lookup.token_revoked);
    assert_eq!(lookup.subject_watermark, Some(mark));
}
