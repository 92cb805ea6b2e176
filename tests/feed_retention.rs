//! The change feeds keep their events by age (`RedisStoreBuilder::feed_retention`), not
//! by count, against a real redis-server (see tests/support): under a steady write rate
//! a feed's length follows the window (or the bucket's longest-lived record, when that
//! is sooner), and a mirror away for longer than the window still ends up with every
//! revocation (it reloads the buckets it missed from their index).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tower_jwt_revoke::RevocationKey;
use tower_jwt_revoke::store::{MirrorStore, RedisStore, RevocationQuery, RevocationStore};

/// Entries per stream node (`stream-node-max-entries`, Redis's default): approximate
/// trimming (`~`) removes whole nodes, so up to this many entries older than the window
/// may stay.
const NODE: u64 = 100;

fn token(n: usize) -> RevocationKey {
    RevocationKey::token(Some("retention-test"), &n.to_string())
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// The feed's length, and how many of its entries are older than `ms` (their ids are
/// their times).
async fn feed_ages(
    redis: &mut redis::aio::MultiplexedConnection,
    feed: &str,
    older_than_ms: u64,
) -> (u64, u64) {
    let len: u64 = redis::cmd("XLEN").arg(feed).query_async(redis).await.unwrap();
    let old: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(feed)
        .arg("-")
        .arg(format!("({older_than_ms}"))
        .query_async(redis)
        .await
        .unwrap();
    (len, old.len() as u64)
}

/// Writes to one bucket for `run`, as fast as one writer goes (bounded to `rate` per
/// second); answers how many were written.
async fn write_for(store: &RedisStore, run: Duration, rate: u64, ttl: Duration, from: usize) -> usize {
    let started = Instant::now();
    let mut n = 0;
    while started.elapsed() < run {
        store.revoke_token_of(&token(from + n), None, ttl).await.unwrap();
        n += 1;
        let due = started + Duration::from_secs_f64(n as f64 / rate as f64);
        tokio::time::sleep_until(due.into()).await;
    }
    n
}

#[tokio::test]
async fn the_feed_keeps_the_window_not_every_event() {
    let server = redis_or_skip!();
    let prefix = support::unique_prefix();
    // One bucket: every write lands in the feed under test.
    let store = server
        .builder(&prefix)
        .buckets(1)
        .feed_retention(Duration::from_secs(1))
        .build()
        .unwrap();
    let mut redis = server.client().get_multiplexed_async_connection().await.unwrap();
    // Long-lived records: the window, not the records, bounds the feed.
    let written = write_for(&store, Duration::from_secs(3), 400, Duration::from_secs(600), 0).await;
    let (len, old) = feed_ages(&mut redis, &store.feed_key(0), now_ms() - 1_000 - 250).await;
    assert!(written as u64 > 3 * NODE, "too few writes to tell ({written})");
    assert!(len < written as u64, "nothing trimmed: {len} of {written} kept");
    // The trim runs at each write: what is older than the window (with a margin for a
    // slow machine) is at most the one node the last trim had to keep.
    assert!(
        old <= NODE,
        "{old} events older than the window kept ({len} in all, {written} written)"
    );
}

#[tokio::test]
async fn the_feed_keeps_no_event_older_than_the_records_it_describes() {
    let server = redis_or_skip!();
    let prefix = support::unique_prefix();
    let store = server
        .builder(&prefix)
        .buckets(1)
        .feed_retention(Duration::from_secs(600))
        .build()
        .unwrap();
    let mut redis = server.client().get_multiplexed_async_connection().await.unwrap();
    // Records live one second: a reload reads no more than the feed would hold.
    let written = write_for(&store, Duration::from_secs(3), 400, Duration::from_secs(1), 0).await;
    let (len, old) = feed_ages(&mut redis, &store.feed_key(0), now_ms() - 1_000 - 250).await;
    assert!(len < written as u64, "nothing trimmed: {len} of {written} kept");
    assert!(
        old <= NODE,
        "{old} events older than every live record kept ({len} in all)"
    );
}

/// A TCP proxy to Redis that can be cut: while cut, it drops every connection through it
/// and refuses new ones (accepts and closes them at once).
struct Proxy {
    url: String,
    cut: Arc<AtomicBool>,
    severed: Arc<Notify>,
}

impl Proxy {
    async fn start(to: &str) -> Self {
        let target = to.trim_start_matches("redis://").trim_end_matches('/').to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("redis://{}/", listener.local_addr().unwrap());
        let cut = Arc::new(AtomicBool::new(false));
        let severed = Arc::new(Notify::new());
        let (cut_, severed_) = (Arc::clone(&cut), Arc::clone(&severed));
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if cut_.load(Ordering::Acquire) {
                    continue; // dropped: closed at once
                }
                let target = target.clone();
                let severed = Arc::clone(&severed_);
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = severed.notified() => {}
                    }
                });
            }
        });
        Self { url, cut, severed }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::Release);
        self.severed.notify_waiters();
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::Release);
    }
}

#[tokio::test]
async fn a_mirror_away_longer_than_the_window_reloads_and_misses_nothing() {
    let server = redis_or_skip!();
    let prefix = support::unique_prefix();
    let window = Duration::from_secs(1);
    let writer = server
        .builder(&prefix)
        .buckets(2)
        .feed_retention(window)
        .build()
        .unwrap();
    let proxy = Proxy::start(server.url()).await;
    let through_proxy = RedisStore::builder()
        .url(&proxy.url)
        .prefix(&prefix)
        .buckets(2)
        .feed_retention(window)
        .connect_timeout(Duration::from_millis(300))
        .command_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let mirror = MirrorStore::start(through_proxy);
    mirror.wait_until_synced(Duration::from_secs(10)).await.unwrap();
    for n in 0..50 {
        writer
            .revoke_token_of(&token(n), None, Duration::from_secs(600))
            .await
            .unwrap();
    }

    proxy.cut();
    let reloads_before = mirror.health().bucket_reloads;
    // Away for more than the window: the events of the first writes are trimmed by the
    // last ones (whole stream nodes, so more than a node's worth per bucket).
    let first = write_for(
        &writer,
        Duration::from_millis(300),
        2_000,
        Duration::from_secs(600),
        50,
    )
    .await;
    tokio::time::sleep(window + Duration::from_millis(500)).await;
    let last = write_for(
        &writer,
        Duration::from_millis(300),
        2_000,
        Duration::from_secs(600),
        50 + first,
    )
    .await;
    let total = 50 + first + last;
    let mut redis = server.client().get_multiplexed_async_connection().await.unwrap();
    let mut kept = 0;
    for bucket in 0..2 {
        kept += feed_ages(&mut redis, &writer.feed_key(bucket), 0).await.0;
    }
    assert!(
        kept < total as u64,
        "the feeds kept every event ({kept} of {total}): nothing to test"
    );
    proxy.restore();

    mirror.wait_until_synced(Duration::from_secs(20)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while mirror.health().entries < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        mirror.health().bucket_reloads > reloads_before,
        "the mirror did not reload: {:?}",
        mirror.health()
    );
    assert!(mirror.health().entries >= total, "{:?}", mirror.health());
    mirror.wait_until_synced(Duration::from_secs(20)).await.unwrap();
    for n in 0..total {
        let query = RevocationQuery {
            token: token(n),
            subject: None,
            session: None,
            issued_at: None,
        };
        assert!(
            mirror.lookup(&query).await.unwrap().token_revoked,
            "revocation {n} of {total} missed after the reconnect"
        );
    }
    assert!(mirror.health().serving_locally, "{:?}", mirror.health());
}
