//! Redis losing data, against a real redis-server (see tests/support): the stores notice
//! (epoch markers, a change feed going backwards), say so in health, and mirrors write
//! back what they hold.

mod common;
mod support;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tower_jwt_revoke::RevocationKey;
use tower_jwt_revoke::store::{MirrorStore, RedisStore, RevocationQuery, RevocationStore};

/// The mirrors' staleness bound in these tests: a loss must be noticed within it.
const STALENESS_BOUND: Duration = Duration::from_secs(3);

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn token(n: usize) -> RevocationKey {
    RevocationKey::token(None, &format!("lost-{n}"))
}

fn subject(n: usize) -> RevocationKey {
    RevocationKey::subject(None, &format!("user-{n}"))
}

fn query(n: usize) -> RevocationQuery {
    RevocationQuery {
        token: token(n),
        subject: Some(subject(n)),
        session: Some(RevocationKey::session(None, "lost-session")),
        issued_at: Some(now()),
    }
}

/// What a replica refuses of the tokens the test revoked.
#[derive(Debug, PartialEq, Eq)]
struct Refused {
    tokens: Vec<usize>,
    session: bool,
    subject_watermark: bool,
    global_watermark: bool,
}

async fn refused(store: &impl RevocationStore) -> Option<Refused> {
    let mut tokens = Vec::new();
    let mut last = None;
    for n in 0..TOKENS + 2 {
        let mut ask = query(n);
        ask.session = None;
        let answer = store.lookup(&ask).await.ok()?;
        if answer.token_revoked {
            tokens.push(n);
        }
        last = Some(answer);
    }
    let session = store.lookup(&query(0)).await.ok()?.session_revoked;
    let watermarked = store.lookup(&query(WATERMARKED)).await.ok()?;
    Some(Refused {
        tokens,
        session,
        subject_watermark: watermarked.subject_watermark.is_some(),
        global_watermark: last.is_some_and(|answer| answer.global_watermark.is_some()),
    })
}

const TOKENS: usize = 20;
/// Revoked, then unrevoked through the crate (`unrevoke_token`).
const UNREVOKED: usize = TOKENS;
/// Revoked for a moment only: expired before Redis loses it.
const EXPIRED: usize = TOKENS + 1;
/// The subject whose tokens are revoked by a watermark.
const WATERMARKED: usize = 100;

/// Everything that should be refused, and nothing else.
fn expected() -> Refused {
    Refused {
        tokens: (0..TOKENS).collect(),
        session: true,
        subject_watermark: true,
        global_watermark: true,
    }
}

async fn eventually(within: Duration, mut done: impl AsyncFnMut() -> bool) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < within {
        if done().await {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    None
}

fn mirror(server: &support::RedisServer, prefix: &str, write_back: bool) -> MirrorStore {
    MirrorStore::builder(server.store(prefix))
        .staleness_bound(STALENESS_BOUND)
        .write_back(write_back)
        .start()
}

/// Two mirrored replicas hold every kind of revocation; then Redis, without
/// persistence, restarts and forgets them all.
async fn two_mirrors_then_a_restart(
    server: &mut support::RedisServer,
    prefix: &str,
    write_back: bool,
) -> (MirrorStore, MirrorStore) {
    let (a, b) = (
        mirror(server, prefix, write_back),
        mirror(server, prefix, write_back),
    );
    a.wait_until_synced(Duration::from_secs(10)).await.unwrap();
    b.wait_until_synced(Duration::from_secs(10)).await.unwrap();
    revoke_everything(&a, &b).await;
    // Let the stores see the epoch markers (created with the first writes) before the loss.
    tokio::time::sleep(tower_jwt_revoke::store::LOSS_CHECK_INTERVAL * 3).await;
    server.kill();
    server.restart();
    (a, b)
}

/// Records every kind of revocation through the two mirrors, and one unrevoked and one
/// expired, then waits until both mirrors hold it all.
async fn revoke_everything(a: &MirrorStore, b: &MirrorStore) {
    let ttl = Duration::from_secs(600);
    for n in 0..TOKENS {
        let through = if n % 2 == 0 { a } else { b };
        through
            .revoke_token_of(&token(n), Some(&subject(n)), ttl)
            .await
            .unwrap();
    }
    b.revoke_session(&RevocationKey::session(None, "lost-session"), ttl)
        .await
        .unwrap();
    a.raise_subject_watermark(&subject(WATERMARKED), now(), ttl)
        .await
        .unwrap();
    // Long before any token of the test was issued: reported, refusing none of them.
    a.raise_global_watermark(now() - 3600, ttl).await.unwrap();
    a.revoke_token_of(&token(UNREVOKED), Some(&subject(UNREVOKED)), ttl)
        .await
        .unwrap();
    // Revoked for its subject: recorded under the token's hash bound to the subject's.
    let unrevoked = token(UNREVOKED).for_subject(&subject(UNREVOKED));
    assert!(a.redis().unrevoke_token(&unrevoked).await.unwrap());
    b.revoke_token_of(
        &token(EXPIRED),
        Some(&subject(EXPIRED)),
        Duration::from_millis(1500),
    )
    .await
    .unwrap();
    for mirror in [a, b] {
        let synced = eventually(Duration::from_secs(10), async || {
            let mut all = refused(mirror).await;
            if let Some(all) = &mut all {
                all.tokens.retain(|&n| n != EXPIRED);
            }
            all == Some(expected())
        })
        .await;
        assert!(synced.is_some(), "{:?}", refused(mirror).await);
    }
    // The short revocation expires (in Redis and in the mirrors) before the loss.
    tokio::time::sleep(Duration::from_millis(1600)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mirrors_notice_redis_restarted_empty_and_write_back_every_live_revocation() {
    let mut server = redis_or_skip!(private);
    let prefix = support::unique_prefix();
    let (a, b) = two_mirrors_then_a_restart(&mut server, &prefix, true).await;
    let noticed = eventually(STALENESS_BOUND, async || {
        a.health().data_losses > 0 && b.health().data_losses > 0
    })
    .await;
    let noticed = noticed.expect("both mirrors notice the loss within the staleness bound");
    let health = RevocationStore::health(&a).await;
    assert!(health.data_losses.is_some_and(|losses| losses > 0), "{health:?}");
    let json = serde_json::to_string(&health).unwrap();
    assert!(json.contains("\"data_losses\""), "{json}");

    // Written back: Redis itself refuses them again, as a replica that reads Redis
    // directly sees, and a mirror started after the restart.
    let direct = server.store(&prefix);
    let restored = eventually(Duration::from_secs(10), async || {
        refused(&direct).await == Some(expected())
    })
    .await;
    assert!(
        restored.is_some(),
        "every live revocation written back, and nothing else: {:?}",
        refused(&direct).await
    );
    // The key layout, lost with the rest, is recorded again by the write-back.
    let mut redis = server.client().get_multiplexed_async_connection().await.unwrap();
    let layout: Option<String> = redis::cmd("GET")
        .arg(direct.layout_key())
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(layout.as_deref(), Some("v2 buckets=16"));
    let c = mirror(&server, &prefix, true);
    c.wait_until_synced(Duration::from_secs(10)).await.unwrap();
    assert_eq!(
        refused(&c).await,
        Some(expected()),
        "a replica started after the loss"
    );
    // Each mirror wrote back what it held (the same records: they converged).
    let written = a.health().written_back + b.health().written_back;
    assert!(written >= 2 * (TOKENS as u64), "written back: {written}");
    for old in [&a, &b] {
        assert_eq!(refused(old).await, Some(expected()));
    }
    eprintln!(
        "loss noticed {noticed:?} after the restart; written back in {:?} more; {written} records written",
        restored.unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_write_back_a_mirror_notices_and_keeps_refusing_what_it_holds() {
    let mut server = redis_or_skip!(private);
    let prefix = support::unique_prefix();
    let (a, _b) = two_mirrors_then_a_restart(&mut server, &prefix, false).await;
    let noticed = eventually(STALENESS_BOUND, async || a.health().data_losses > 0).await;
    assert!(noticed.is_some(), "the loss is noticed without write-back too");
    // The mirror reloaded from Redis into its copy as it was: it still refuses all.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(refused(&a).await, Some(expected()));
    assert_eq!(a.health().written_back, 0);
    let direct = server.store(&prefix);
    let lost = refused(&direct).await.unwrap();
    assert!(lost.tokens.is_empty(), "nothing was written back: {lost:?}");
}

#[tokio::test]
async fn a_store_notices_a_flush_and_says_so_in_health() {
    let server = redis_or_skip!(private);
    let store: RedisStore = server.store(&support::unique_prefix());
    store
        .revoke_token_of(&token(0), Some(&subject(0)), Duration::from_secs(60))
        .await
        .unwrap();
    tokio::time::sleep(tower_jwt_revoke::store::LOSS_CHECK_INTERVAL * 3).await;
    assert_eq!(store.data_loss().detected, 0, "no loss yet");
    assert_eq!(store.health().await.data_losses, None);
    let _: () = redis::cmd("FLUSHALL")
        .query_async(&mut server.client().get_multiplexed_async_connection().await.unwrap())
        .await
        .unwrap();
    let noticed = eventually(Duration::from_secs(3), async || store.data_loss().detected > 0).await;
    assert!(noticed.is_some(), "the flush is noticed");
    assert_eq!(store.health().await.data_losses, Some(1));
    assert!(store.data_loss().since_last.is_some());
}

/// A replica promoted without the latest write keeps the epoch marker (it was
/// replicated long before), but its change feed is behind: the next event is numbered at
/// or below one the mirror applied. The mirror notices, and writes back what is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mirror_notices_a_feed_gone_backwards_and_writes_back_the_lost_write() {
    let server = redis_or_skip!(private);
    let prefix = support::unique_prefix();
    // The store's own watch would notice the counter going backwards first (see the
    // next test); without it, what is tested here is the mirror's feed.
    let a = MirrorStore::builder(server.builder(&prefix).detect_data_loss(false).build().unwrap())
        .staleness_bound(STALENESS_BOUND)
        .write_back(true)
        .start();
    a.wait_until_synced(Duration::from_secs(10)).await.unwrap();
    let ttl = Duration::from_secs(600);
    for n in 0..3 {
        a.revoke_token_of(&token(n), Some(&subject(7)), ttl)
            .await
            .unwrap();
    }
    let synced = eventually(Duration::from_secs(5), async || {
        (0..3).all(|n| {
            let mut ask = query(n);
            ask.subject = Some(subject(7));
            a.lookup_immediate(&ask)
                .is_some_and(|answer| answer.token_revoked)
        })
    })
    .await;
    assert!(synced.is_some());
    tokio::time::sleep(tower_jwt_revoke::store::LOSS_CHECK_INTERVAL * 3).await;

    // What a promoted replica that missed the last write holds: no record, no event, the
    // counter one lower; the epoch marker as it was.
    undo_last_write(&server, a.redis(), &token(2), &subject(7)).await;
    assert_eq!(a.health().data_losses, 0, "nothing noticed before the next write");
    // The next write to that bucket reuses the number the mirror applied last.
    let direct = server.store(&prefix);
    direct
        .revoke_token_of(&token(3), Some(&subject(7)), ttl)
        .await
        .unwrap();
    let noticed = eventually(STALENESS_BOUND, async || a.health().data_losses > 0).await;
    assert!(noticed.is_some(), "the feed going backwards is noticed");
    let mut lost = query(2);
    lost.subject = Some(subject(7));
    let restored = eventually(Duration::from_secs(5), async || {
        direct
            .lookup(&lost)
            .await
            .is_ok_and(|answer| answer.token_revoked)
    })
    .await;
    assert!(restored.is_some(), "the lost revocation is written back");
}

/// A snapshot reloaded (or a replica promoted) without the latest write keeps the epoch
/// marker, but its feed counter is lower than one the store saw: a store notices that
/// by itself, with no mirror and before any new write.
#[tokio::test]
async fn a_store_notices_a_feed_counter_gone_backwards_without_a_new_write() {
    let server = redis_or_skip!(private);
    let store: RedisStore = server.store(&support::unique_prefix());
    let ttl = Duration::from_secs(600);
    for n in 0..2 {
        store
            .revoke_token_of(&token(n), Some(&subject(3)), ttl)
            .await
            .unwrap();
    }
    tokio::time::sleep(tower_jwt_revoke::store::LOSS_CHECK_INTERVAL * 3).await;
    assert_eq!(store.data_loss().detected, 0, "no loss yet");

    // The last write undone, the marker kept.
    undo_last_write(&server, &store, &token(1), &subject(3)).await;
    let noticed = eventually(Duration::from_secs(3), async || store.data_loss().detected > 0).await;
    assert!(noticed.is_some(), "the counter going backwards is noticed");
    assert_eq!(store.data_loss().detected, 1, "once");
    assert_eq!(store.health().await.data_losses, Some(1));
}

/// What a promoted replica (or a reloaded snapshot) that missed the last write to the
/// bucket of `token` holds: no record, no event, the counter one lower; the epoch marker
/// as it was.
async fn undo_last_write(
    server: &support::RedisServer,
    store: &RedisStore,
    token: &RevocationKey,
    subject: &RevocationKey,
) {
    let bucket = store.bucket_for(token, Some(subject));
    let mut redis = server.client().get_multiplexed_async_connection().await.unwrap();
    let last: Vec<(String, Vec<String>)> = redis::cmd("XREVRANGE")
        .arg(store.feed_key(bucket))
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(&mut redis)
        .await
        .unwrap();
    let () = redis::pipe()
        .cmd("DEL")
        .arg(store.token_key(bucket, &token.for_subject(subject)))
        .ignore()
        .cmd("XDEL")
        .arg(store.feed_key(bucket))
        .arg(&last[0].0)
        .ignore()
        .cmd("DECR")
        .arg(store.feed_seq_key(bucket))
        .ignore()
        .query_async(&mut redis)
        .await
        .unwrap();
}

/// The revocations the README's durability promise is about: the bucket's first ones,
/// made a moment before Redis loses them, already applied by another replica's mirror.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revocations_made_just_before_a_loss_are_back_in_redis_within_a_second() {
    let mut server = redis_or_skip!(private);
    for fault in ["FLUSHALL", "restart without persistence"] {
        let prefix = support::unique_prefix();
        let (a, b) = (mirror(&server, &prefix, true), mirror(&server, &prefix, true));
        a.wait_until_synced(Duration::from_secs(10)).await.unwrap();
        b.wait_until_synced(Duration::from_secs(10)).await.unwrap();
        let six = 0..6;
        for n in six.clone() {
            a.revoke_token_of(&token(n), Some(&subject(n)), Duration::from_secs(600))
                .await
                .unwrap();
        }
        let applied = eventually(Duration::from_secs(5), async || {
            refused(&b)
                .await
                .is_some_and(|r| six.clone().all(|n| r.tokens.contains(&n)))
        })
        .await;
        assert!(applied.is_some(), "replica B never refused the logouts");
        tokio::time::sleep(Duration::from_millis(100)).await;
        if fault == "FLUSHALL" {
            let mut redis = server.client().get_multiplexed_async_connection().await.unwrap();
            let _: () = redis::cmd("FLUSHALL").query_async(&mut redis).await.unwrap();
        } else {
            server.kill();
            server.restart();
        }
        let lost_at = Instant::now();
        // A store started after the loss, without a mirror: it sees what Redis holds.
        let direct = server.store(&prefix);
        let back = eventually(Duration::from_secs(5), async || {
            refused(&direct)
                .await
                .is_some_and(|r| six.clone().all(|n| r.tokens.contains(&n)))
        })
        .await;
        let back =
            back.unwrap_or_else(|| panic!("{fault} 0.1 s after the logouts: not written back within 5 s"));
        eprintln!(
            "{fault}: the logouts were back in Redis {} ms after the loss",
            lost_at.elapsed().as_millis()
        );
        assert!(
            lost_at.elapsed() < Duration::from_secs(1),
            "{fault}: written back only after {back:?}"
        );
        for mirror in [&a, &b] {
            let r = refused(mirror).await.expect("the mirror answers");
            assert!(six.clone().all(|n| r.tokens.contains(&n)), "{fault}: {r:?}");
        }
    }
}

/// Background work never hurts requests: the loss watch's reads, stalled (here by a
/// `CLIENT PAUSE WRITE` while it must create a marker, as a loaded machine or a busy
/// Redis would) on an idle replica, cost no check an error and do not drop the
/// connection checks share (whose in-flight checks would fail with it): they go over a
/// connection of their own.
#[tokio::test]
async fn a_stalled_loss_watch_costs_no_check_a_failure() {
    let server = redis_or_skip!(private);
    let captured = common::captured::Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // The test's runtime runs on this one thread, the store's watch included.
    let _guard = tracing::subscriber::set_default(subscriber);
    let prefix = support::unique_prefix();
    let store = server.store(&prefix);
    store
        .revoke_token_of(&token(0), Some(&subject(0)), Duration::from_secs(600))
        .await
        .unwrap();
    let mut redis = server.client().get_multiplexed_async_connection().await.unwrap();
    // The watch finds a marker missing on its next read, and must write one: paused.
    let epoch = format!("{}:epoch", store.bucket_tag(store.bucket_of(&subject(0))));
    let _: () = redis::cmd("DEL")
        .arg(&epoch)
        .query_async(&mut redis)
        .await
        .unwrap();
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(2000)
        .arg("WRITE")
        .query_async(&mut redis)
        .await
        .unwrap();
    let started = Instant::now();
    let mut checks = 0;
    while started.elapsed() < Duration::from_millis(1800) {
        let answer = store.lookup(&query(0)).await;
        assert!(
            answer.as_ref().is_ok_and(|answer| answer.token_revoked),
            "check {checks}, {:?} into the stall: {answer:?}",
            started.elapsed()
        );
        checks += 1;
        // An idle replica: long enough between checks for the stall to be silence.
        tokio::time::sleep(Duration::from_millis(350)).await;
    }
    let _: () = redis::cmd("CLIENT")
        .arg("UNPAUSE")
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(checks >= 4, "{checks}");
    let said = captured.text();
    assert!(
        !said.contains("dropping the Redis connection"),
        "the stalled watch dropped the connection checks share: {said}"
    );
}

/// A promoted replica (or a reloaded snapshot) that missed a bucket's latest writes,
/// made and lost between two of the loss watch's reads, and no write since: the
/// counter never went backwards under the watch's eyes, but it is below what the
/// mirrors applied, which is a loss too; they write the revocation back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn latest_writes_lost_between_two_watch_reads_are_noticed_from_what_mirrors_applied() {
    let server = redis_or_skip!(private);
    let prefix = support::unique_prefix();
    let (a, b) = (mirror(&server, &prefix, true), mirror(&server, &prefix, true));
    a.wait_until_synced(Duration::from_secs(10)).await.unwrap();
    b.wait_until_synced(Duration::from_secs(10)).await.unwrap();
    // Every store has read its markers and counters at least once.
    tokio::time::sleep(tower_jwt_revoke::store::LOSS_CHECK_INTERVAL * 2).await;

    a.revoke_token_of(&token(0), Some(&subject(3)), Duration::from_secs(600))
        .await
        .unwrap();
    let logged_out = RevocationQuery {
        subject: Some(subject(3)),
        ..query(0)
    };
    let applied = eventually(Duration::from_secs(2), async || {
        b.lookup_immediate(&logged_out)
            .is_some_and(|answer| answer.token_revoked)
    })
    .await;
    assert!(applied.is_some(), "replica B never applied the logout");
    undo_last_write(&server, a.redis(), &token(0), &subject(3)).await;

    let direct = server.store(&prefix);
    let back = eventually(Duration::from_secs(3), async || {
        direct
            .lookup(&logged_out)
            .await
            .is_ok_and(|answer| answer.token_revoked)
    })
    .await;
    assert!(
        back.is_some(),
        "the lost logout was never written back: {:?} {:?}",
        a.health(),
        b.health()
    );
    assert!(a.health().data_losses + b.health().data_losses >= 1);
}
