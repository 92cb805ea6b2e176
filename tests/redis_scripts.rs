//! The Redis store's Lua scripts, run as they are on a real redis-server (see
//! tests/support): writes never shorten a record or lower a watermark, and running one
//! twice (what the store does when a connection died under a write) leaves the same
//! record and two events numbered one after the other; and each keeps the bucket's
//! index (what a mirror loads) at one member per record, with the record's expiry; the
//! first write creates the bucket's epoch marker; and a write-back never brings back a
//! marker lifted on purpose, while a fresh revocation does.

mod support;

use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;

const FEED: &str = include_str!("../src/store/redis/write/scripts/feed.lua");
const MARK: &str = include_str!("../src/store/redis/write/scripts/mark.lua");
const RAISE: &str = include_str!("../src/store/redis/write/scripts/raise.lua");
const WRITE_BACK: &str = include_str!("../src/store/redis/write/scripts/write_back.lua");
const UNMARK: &str = include_str!("../src/store/redis/admin/unmark.lua");

const HASH: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

struct Keys {
    code: &'static str,
    record: String,
    feed: String,
    seq: String,
    index: String,
    epoch: String,
    lifted: String,
}

fn keys(prefix: &str, code: &'static str) -> Keys {
    Keys {
        code,
        record: format!("{prefix}:{code}:{HASH}"),
        feed: format!("{prefix}:feed"),
        seq: format!("{prefix}:feed:seq"),
        index: format!("{prefix}:index"),
        epoch: format!("{prefix}:epoch"),
        lifted: format!("{prefix}:lifted:{code}:{HASH}"),
    }
}

async fn mark(connection: &mut MultiplexedConnection, keys: &Keys, ttl_ms: u64) {
    assert_eq!(run_mark(connection, keys, ttl_ms, "").await, 1);
}

/// `mark.lua` after `guard` (empty for a revocation, `write_back.lua` for a write-back):
/// what it answered.
async fn run_mark(connection: &mut MultiplexedConnection, keys: &Keys, ttl_ms: u64, guard: &str) -> i64 {
    let script = redis::Script::new(&format!("{FEED}{guard}{MARK}"));
    script
        .key(&keys.record)
        .key(&keys.feed)
        .key(&keys.seq)
        .key(&keys.index)
        .key(&keys.epoch)
        .key(&keys.lifted)
        .arg(1000)
        .arg(ttl_ms)
        .arg(keys.code)
        .arg(HASH)
        .invoke_async(connection)
        .await
        .unwrap()
}

async fn unmark(connection: &mut MultiplexedConnection, keys: &Keys) -> i64 {
    redis::Script::new(&format!("{FEED}{UNMARK}"))
        .key(&keys.record)
        .key(&keys.feed)
        .key(&keys.seq)
        .key(&keys.index)
        .key(&keys.epoch)
        .key(&keys.lifted)
        .arg(1000)
        .arg(keys.code)
        .arg(HASH)
        .invoke_async(connection)
        .await
        .unwrap()
}

async fn raise(connection: &mut MultiplexedConnection, keys: &Keys, mark: u64, ttl_ms: u64) {
    let script = redis::Script::new(&format!("{FEED}{RAISE}"));
    let done: i64 = script
        .key(&keys.record)
        .key(&keys.feed)
        .key(&keys.seq)
        .key(&keys.index)
        .key(&keys.epoch)
        .arg(1000)
        .arg(mark)
        .arg(ttl_ms)
        .arg("s")
        .arg(HASH)
        .invoke_async(connection)
        .await
        .unwrap();
    assert_eq!(done, 1);
}

/// The index's members with their scores, and how far the score of each is from the
/// record's own expiry (`PEXPIRETIME`), in milliseconds.
async fn index(connection: &mut MultiplexedConnection, keys: &Keys) -> Vec<(String, i64)> {
    let members: Vec<(String, i64)> = connection.zrange_withscores(&keys.index, 0, -1).await.unwrap();
    let expires: i64 = redis::cmd("PEXPIRETIME")
        .arg(&keys.record)
        .query_async(connection)
        .await
        .unwrap();
    members
        .into_iter()
        .map(|(member, score)| (member, (score - expires).abs()))
        .collect()
}

/// The feed's events as (seq, kind, hash, value) in order.
async fn events(connection: &mut MultiplexedConnection, keys: &Keys) -> Vec<(u64, String, String, String)> {
    let entries: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
        .arg(&keys.feed)
        .arg("-")
        .arg("+")
        .query_async(connection)
        .await
        .unwrap();
    entries
        .into_iter()
        .map(|(_, fields)| {
            let field = |name: &str| {
                fields
                    .chunks_exact(2)
                    .find(|pair| pair[0] == name)
                    .map(|pair| pair[1].clone())
                    .unwrap()
            };
            (
                field("seq").parse().unwrap(),
                field("kind"),
                field("hash"),
                field("value"),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_marker_is_never_shortened_and_a_repeated_mark_only_adds_an_event() {
    let server = redis_or_skip!();
    let mut connection = server.client().get_multiplexed_async_connection().await.unwrap();
    let keys = keys(&support::unique_prefix(), "t");

    mark(&mut connection, &keys, 60_000).await;
    mark(&mut connection, &keys, 5_000).await;
    let pttl: i64 = connection.pttl(&keys.record).await.unwrap();
    assert!(pttl > 55_000, "a shorter mark shortened the record: {pttl} ms");

    mark(&mut connection, &keys, 120_000).await;
    let pttl: i64 = connection.pttl(&keys.record).await.unwrap();
    assert!(
        pttl > 115_000,
        "a longer mark did not lengthen the record: {pttl} ms"
    );

    // The same write again, as after a connection died before its answer came.
    mark(&mut connection, &keys, 120_000).await;
    let pttl: i64 = connection.pttl(&keys.record).await.unwrap();
    assert!(pttl > 115_000, "{pttl} ms");
    let value: String = connection.get(&keys.record).await.unwrap();
    assert_eq!(value, "1");

    let indexed = index(&mut connection, &keys).await;
    assert_eq!(indexed.len(), 1, "one member per record: {indexed:?}");
    assert_eq!(indexed[0].0, format!("t:{HASH}"));
    assert!(indexed[0].1 <= 2, "the score is the record's expiry: {indexed:?}");

    let seen = events(&mut connection, &keys).await;
    let numbers: Vec<u64> = seen.iter().map(|event| event.0).collect();
    assert_eq!(
        numbers,
        [1, 2, 3, 4],
        "one event per write, numbered without gaps"
    );
    assert_eq!(
        (&seen[2].1, &seen[2].2, &seen[2].3),
        (&seen[3].1, &seen[3].2, &seen[3].3),
        "a repeated write repeats its event"
    );
}

#[tokio::test]
async fn a_watermark_never_goes_down_nor_its_lifetime_shorter() {
    let server = redis_or_skip!();
    let mut connection = server.client().get_multiplexed_async_connection().await.unwrap();
    let keys = keys(&support::unique_prefix(), "s");

    raise(&mut connection, &keys, 1_700_000_100, 60_000).await;
    raise(&mut connection, &keys, 1_700_000_050, 5_000).await;
    let value: String = connection.get(&keys.record).await.unwrap();
    assert_eq!(value, "1700000100", "a lower mark lowered the watermark");
    let pttl: i64 = connection.pttl(&keys.record).await.unwrap();
    assert!(
        pttl > 55_000,
        "a shorter lifetime shortened the watermark: {pttl} ms"
    );

    raise(&mut connection, &keys, 1_700_000_200, 5_000).await;
    raise(&mut connection, &keys, 1_700_000_200, 5_000).await;
    let value: String = connection.get(&keys.record).await.unwrap();
    assert_eq!(value, "1700000200");
    let pttl: i64 = connection.pttl(&keys.record).await.unwrap();
    assert!(pttl > 50_000, "{pttl} ms");

    let indexed = index(&mut connection, &keys).await;
    assert_eq!(
        indexed.len(),
        1,
        "the raised mark replaced the old one: {indexed:?}"
    );
    assert_eq!(indexed[0].0, format!("s:{HASH}:1700000200"));
    assert!(
        indexed[0].1 <= 2,
        "the score is the watermark's expiry: {indexed:?}"
    );

    let seen = events(&mut connection, &keys).await;
    let values: Vec<(u64, &str)> = seen.iter().map(|event| (event.0, event.3.as_str())).collect();
    // Each event carries the watermark after its write, so a lower raise announces
    // the higher mark that stayed.
    assert_eq!(
        values,
        [
            (1, "1700000100"),
            (2, "1700000100"),
            (3, "1700000200"),
            (4, "1700000200")
        ]
    );
}

#[tokio::test]
async fn a_write_drops_the_expired_members_of_the_index() {
    let server = redis_or_skip!();
    let mut connection = server.client().get_multiplexed_async_connection().await.unwrap();
    let prefix = support::unique_prefix();
    let (short, long) = (keys(&prefix, "t"), keys(&prefix, "x"));
    mark(&mut connection, &short, 50).await;
    tokio::time::sleep(std::time::Duration::from_millis(120)).await;
    mark(&mut connection, &long, 60_000).await;
    let members: Vec<String> = connection.zrange(&long.index, 0, -1).await.unwrap();
    assert_eq!(
        members,
        [format!("x:{HASH}")],
        "the expired marker's member is gone"
    );
}

#[tokio::test]
async fn the_first_write_creates_the_epoch_marker_and_later_ones_keep_it() {
    let server = redis_or_skip!();
    let mut connection = server.client().get_multiplexed_async_connection().await.unwrap();
    let keys = keys(&support::unique_prefix(), "t");

    let before: Option<String> = connection.get(&keys.epoch).await.unwrap();
    assert_eq!(before, None);
    mark(&mut connection, &keys, 60_000).await;
    let first: Option<String> = connection.get(&keys.epoch).await.unwrap();
    assert!(
        first.is_some(),
        "the bucket's first write left it without an epoch marker"
    );
    let pttl: i64 = connection.pttl(&keys.epoch).await.unwrap();
    assert_eq!(pttl, -1, "an epoch marker has no TTL");
    raise(&mut connection, &keys, 1_700_000_000, 60_000).await;
    let later: Option<String> = connection.get(&keys.epoch).await.unwrap();
    assert_eq!(later, first, "a later write changed the epoch marker");
}

#[tokio::test]
async fn a_write_back_never_undoes_an_unrevoke_but_a_fresh_revocation_does() {
    let server = redis_or_skip!();
    let mut connection = server.client().get_multiplexed_async_connection().await.unwrap();
    let keys = keys(&support::unique_prefix(), "t");

    mark(&mut connection, &keys, 60_000).await;
    assert_eq!(unmark(&mut connection, &keys).await, 1);
    let tombstone: i64 = connection.pttl(&keys.lifted).await.unwrap();
    assert!(
        (55_000..=60_000).contains(&tombstone),
        "the tombstone lasts what the marker had left: {tombstone} ms"
    );
    let events_before = events(&mut connection, &keys).await.len();

    // A mirror that had not read the `del` event writes the marker back.
    assert_eq!(run_mark(&mut connection, &keys, 60_000, WRITE_BACK).await, 0);
    let exists: bool = connection.exists(&keys.record).await.unwrap();
    assert!(!exists, "a write-back brought back a lifted revocation");
    assert_eq!(
        events(&mut connection, &keys).await.len(),
        events_before,
        "a skipped write-back announced something"
    );

    // Revoked again, on purpose: the tombstone goes, and a write-back goes through.
    mark(&mut connection, &keys, 60_000).await;
    let tombstone: bool = connection.exists(&keys.lifted).await.unwrap();
    assert!(!tombstone, "a fresh revocation left the tombstone");
    assert_eq!(run_mark(&mut connection, &keys, 90_000, WRITE_BACK).await, 1);
    let pttl: i64 = connection.pttl(&keys.record).await.unwrap();
    assert!(pttl > 85_000, "{pttl} ms");
}
