//! What the CLI does reaches the services: a layer on a `RedisStore` and one on a
//! `MirrorStore` refuse what it revokes, and let in again what it unrevokes; a backup
//! it exports restores, with the same TTLs, into an empty Redis.

#[path = "../../tests/support/mod.rs"]
mod support;

mod common;

use std::collections::HashMap;
use std::time::Duration;

use http::StatusCode;
use serde_json::Value;
use tower_jwt_revoke::store::{MirrorStore, RedisStore};

use self::common::{Cli, ISSUER, Replica, mint, now, token};
use self::support::unique_prefix;

/// How long a mirror may take to see a change: its staleness bound, doubled for a
/// loaded CI machine.
const MIRROR_BOUND: Duration = Duration::from_secs(4);

fn store(url: &str, prefix: &str) -> RedisStore {
    RedisStore::builder()
        .url(url)
        .prefix(prefix)
        .command_timeout(Duration::from_secs(1))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_revocations_reach_a_redis_replica_and_a_mirror_and_unrevoke_lets_back_in() {
    let server = redis_or_skip!();
    let prefix = unique_prefix();
    let cli = Cli::new(server.url(), &prefix);
    let direct = Replica::new(store(server.url(), &prefix));
    let mirror = MirrorStore::builder(store(server.url(), &prefix))
        .staleness_bound(Duration::from_secs(2))
        .start();
    mirror.wait_until_synced(Duration::from_secs(10)).await.unwrap();
    let mirrored = Replica::new(mirror.clone());

    let alice = token("alice", "s-alice", 0);
    let carol = token("carol", "s-carol", 0);
    for token in [&alice, &carol] {
        assert_eq!(direct.status(token).await, StatusCode::OK);
        assert_eq!(mirrored.status(token).await, StatusCode::OK);
    }

    // A token revoked by the CLI: refused at once through Redis, and by the mirror
    // within its bound, answering from memory.
    let ran = cli.run(&["revoke", "token", "--no-verify", "--new-prefix", &alice]);
    assert_eq!(ran.code, 0, "{ran:?}");
    assert_eq!(direct.status(&alice).await, StatusCode::UNAUTHORIZED);
    mirrored
        .until(&alice, StatusCode::UNAUTHORIZED, MIRROR_BOUND)
        .await;
    assert!(mirror.health().serving_locally, "{:?}", mirror.health());

    // Unrevoked: the `del` event makes the mirror forget it too.
    let ran = cli.run(&["--json", "unrevoke", "token", &alice]);
    assert_eq!(
        (ran.code, ran.json()["removed"].clone()),
        (0, Value::Bool(true)),
        "{ran:?}"
    );
    assert_eq!(direct.status(&alice).await, StatusCode::OK);
    mirrored.until(&alice, StatusCode::OK, MIRROR_BOUND).await;
    assert!(mirror.health().serving_locally, "{:?}", mirror.health());

    // A session, by its id, and back by its hash.
    let revoked = cli.json(&["revoke", "session", "s-carol", "--issuer", ISSUER], 0);
    assert_eq!(direct.status(&carol).await, StatusCode::UNAUTHORIZED);
    mirrored
        .until(&carol, StatusCode::UNAUTHORIZED, MIRROR_BOUND)
        .await;
    let hash = revoked["hash"].as_str().unwrap();
    assert_eq!(
        cli.json(&["unrevoke", "session", "--hash", hash], 0)["removed"],
        true
    );
    assert_eq!(direct.status(&carol).await, StatusCode::OK);
    mirrored.until(&carol, StatusCode::OK, MIRROR_BOUND).await;

    // A user logged out everywhere.
    cli.json(&["revoke", "subject", "carol", "--issuer", ISSUER], 0);
    assert_eq!(direct.status(&carol).await, StatusCode::UNAUTHORIZED);
    mirrored
        .until(&carol, StatusCode::UNAUTHORIZED, MIRROR_BOUND)
        .await;
    // Unrevoking its token does not lift the user's watermark, and says so.
    let lifted = cli.json(&["unrevoke", "token", &carol], 0);
    assert_eq!(
        (lifted["removed"].clone(), lifted["still_refused_by"].clone()),
        (Value::Bool(false), "subject".into())
    );
    assert_eq!(
        mirror.health().loads,
        1,
        "followed the feed, never reloaded: {:?}",
        mirror.health()
    );
}

/// Records by key, with what must survive a backup.
fn by_key(cli: &Cli) -> HashMap<String, (String, String, u64)> {
    cli.records()
        .into_iter()
        .map(|record| {
            let key = format!("{}:{}", record["kind"], record["hash"]);
            let value = record["value"].as_str().unwrap().to_owned();
            let ttl = record["ttl_ms"].as_u64().unwrap();
            (key, (record["kind"].to_string(), value, ttl))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_then_import_into_an_empty_redis_restores_every_live_revocation() {
    let source = redis_or_skip!();
    let target = redis_or_skip!(private);
    let from = Cli::new(source.url(), &unique_prefix());
    let into = Cli::new(target.url(), &unique_prefix());

    let alice = token("alice", "s-alice", 0);
    from.json(&["revoke", "token", "--no-verify", "--new-prefix", &alice], 0);
    from.json(&["revoke", "subject", "bob", "--issuer", ISSUER], 0);
    from.json(&["revoke", "session", "s-carol", "--issuer", ISSUER], 0);
    from.json(&["revoke", "all", "--yes", "--max-lifetime", "2h"], 0);
    // One that expires between the export and the import.
    let brief = mint(serde_json::json!({ "jti": "brief", "iat": now(), "exp": now() + 1 }));
    let ran = from.run_with(
        &["revoke", "token", "--no-verify", &brief],
        &[("JWT_LEEWAY", "0")],
        None,
    );
    assert_eq!(ran.code, 0, "{ran:?}");

    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("revoked.jsonl");
    let backup = backup.to_str().unwrap();
    // One line per key: the two tokens and the subject are in one bucket each, the
    // session and the global watermark in all 16.
    const COPIES: u64 = 1 + 1 + 1 + 16 + 16;
    assert_eq!(from.json(&["export", "--output", backup], 0)["exported"], COPIES);
    let lines = std::fs::read_to_string(backup).unwrap();
    assert_eq!(lines.lines().count() as u64, COPIES);
    for line in lines.lines() {
        let record: Value = serde_json::from_str(line).unwrap();
        for field in ["kind", "hash", "value", "ttl_ms", "bucket", "buckets"] {
            assert!(record.get(field).is_some(), "{field}: {line}");
        }
    }
    // Export to stdout says the same.
    let ran = from.run(&["export"]);
    assert_eq!(
        (ran.code, ran.stdout.lines().count() as u64),
        (0, COPIES),
        "{ran:?}"
    );

    tokio::time::sleep(Duration::from_millis(2200)).await;
    let imported = into.json(&["import", backup], 0);
    assert_eq!(
        (imported["restored"].clone(), imported["expired"].clone()),
        ((COPIES - 1).into(), 1.into())
    );

    let original = by_key(&from);
    let restored = by_key(&into);
    assert_eq!(original.len(), 4, "{original:?}");
    assert_eq!(restored.len(), 4, "{restored:?}");
    for (key, (kind, value, ttl)) in &original {
        let (restored_kind, restored_value, restored_ttl) = &restored[key];
        assert_eq!((kind, value), (restored_kind, restored_value), "{key}");
        assert!(
            ttl.abs_diff(*restored_ttl) <= 1000,
            "{key}: {ttl} ms vs {restored_ttl} ms"
        );
    }
    // Written through the store, each copy back to its own bucket, so the feeds
    // carried them (mirrors see imports): one event per key, none more.
    let stats = into.json(&["stats"], 0);
    assert_eq!(stats["feed_last_seq"], COPIES - 1);
    assert_eq!(stats["keys"], COPIES - 1);

    // Idempotent: importing again changes nothing (TTLs never grow, watermarks stay).
    into.run_with(&["import"], &[], Some(&lines));
    let again = by_key(&into);
    for (key, (_, value, ttl)) in &restored {
        assert_eq!(&again[key].1, value);
        assert!(
            again[key].2 <= *ttl + 50,
            "{key}: {} ms after {ttl} ms",
            again[key].2
        );
    }

    // A service on the restored Redis refuses what the original refused.
    let replica = Replica::new(store(target.url(), &into.prefix));
    assert_eq!(replica.status(&alice).await, StatusCode::UNAUTHORIZED);
}

/// The on-call's first commands on a live deployment where services run but nobody has
/// logged out yet: the services registered the blocklist when they connected, so the
/// tool finds it (a prefix no service ever used still exits 5).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_commands_work_as_soon_as_a_service_has_connected() {
    let server = redis_or_skip!();
    let prefix = unique_prefix();
    let cli = Cli::new(server.url(), &prefix);
    let service = store(server.url(), &prefix);
    // Registered when the service's watch first reaches Redis: at once.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !service.in_use().await.unwrap() {
        assert!(
            std::time::Instant::now() < deadline,
            "the service never registered the blocklist"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let checked = cli.json(&["check", &token("alice", "s-alice", 0)], 0);
    assert_eq!(checked["revoked"], false, "{checked}");
    let stats = cli.json(&["stats"], 0);
    assert_eq!(stats["tokens"], 0, "{stats}");
    let revoked = cli.json(&["revoke", "subject", "u-1", "--issuer", ISSUER], 0);
    assert_eq!(revoked["scope"], "subject", "{revoked}");
    drop(service);

    Cli::new(server.url(), &unique_prefix())
        .run(&["check", &token("alice", "s-alice", 0)])
        .assert_one_line_error(5);
}
