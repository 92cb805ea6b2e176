//! The Redis store's Lua scripts, run as they are on a real redis-server (see
//! tests/support): writes never shorten a record or lower a watermark, and running one
//! twice (what the store does when a connection died under a write) leaves the same
//! record and two events numbered one after the other.

mod support;

use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;

const FEED: &str = include_str!("../src/store/redis/scripts/feed.lua");
const MARK: &str = include_str!("../src/store/redis/scripts/mark.lua");
const RAISE: &str = include_str!("../src/store/redis/scripts/raise.lua");

const HASH: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

struct Keys {
    record: String,
    feed: String,
    seq: String,
}

fn keys(prefix: &str, code: &str) -> Keys {
    Keys {
        record: format!("{prefix}:{code}:{HASH}"),
        feed: format!("{prefix}:feed"),
        seq: format!("{prefix}:feed:seq"),
    }
}

async fn mark(connection: &mut MultiplexedConnection, keys: &Keys, ttl_ms: u64) {
    let script = redis::Script::new(&format!("{FEED}{MARK}"));
    let done: i64 = script
        .key(&keys.record)
        .key(&keys.feed)
        .key(&keys.seq)
        .arg(1000)
        .arg(ttl_ms)
        .arg("t")
        .arg(HASH)
        .invoke_async(connection)
        .await
        .unwrap();
    assert_eq!(done, 1);
}

async fn raise(connection: &mut MultiplexedConnection, keys: &Keys, mark: u64, ttl_ms: u64) {
    let script = redis::Script::new(&format!("{FEED}{RAISE}"));
    let done: i64 = script
        .key(&keys.record)
        .key(&keys.feed)
        .key(&keys.seq)
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
