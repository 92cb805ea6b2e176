//! The in-memory store's own tests: expiry, watermarks, reloads, concurrency.

use super::table::Mark;
use super::*;
use crate::store::RevocationStore;

fn key(n: u8) -> RevocationKey {
    RevocationKey::token(None, &n.to_string())
}

#[tokio::test]
async fn expired_entries_are_reclaimed_by_the_sweeper_without_any_request() {
    let store = InMemoryStore::with_sweep_interval(Duration::from_millis(20));
    for n in 0..50 {
        store
            .revoke_token(&key(n), Duration::from_millis(30))
            .await
            .unwrap();
    }
    assert_eq!(store.len(), 50);
    // Nothing reads or writes the store while we wait: only the sweeper can act.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !store.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(store.is_empty(), "sweeper left {} expired entries", store.len());
}

#[test]
fn a_stored_expiry_is_never_shorter_than_its_ttl() {
    let table = Table::new(Instant::now() - Duration::from_millis(7));
    let now = Instant::now();
    for ttl_ms in [1, 62, 63, 999, 1000, 1001, 86_400_000] {
        let ttl = Duration::from_millis(ttl_ms);
        let left = table.left(table.expiry(now, ttl), now).unwrap();
        assert!(left >= ttl, "{ttl:?} stored as {left:?}");
        assert!(
            left < ttl + Duration::from_millis(63),
            "{ttl:?} stored as {left:?}"
        );
    }
    // Beyond what 32 bits hold: kept for ever rather than cut short.
    let far = table.expiry(now, Duration::from_secs(20 * 365 * 24 * 3600));
    assert_eq!(far, NEVER);
    assert_eq!(table.left(far, now), Some(Duration::MAX));
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn a_reload_keeps_every_live_entry_with_its_remaining_time() {
    let store = InMemoryStore::new();
    tokio::time::sleep(Duration::from_millis(30)).await;
    // Built later: its epoch differs, so expiries must be re-counted.
    let fresh = InMemoryStore::new();
    fresh
        .revoke_token(&key(1), Duration::from_secs(60))
        .await
        .unwrap();
    fresh
        .raise_global_watermark(500, Duration::from_secs(60))
        .await
        .unwrap();
    store
        .revoke_token(&key(2), Duration::from_secs(60))
        .await
        .unwrap();
    store.replace_with(fresh);
    let left = store.token_ttl(&key(1)).expect("kept");
    assert!(
        left > Duration::from_secs(59) && left <= Duration::from_secs(61),
        "{left:?}"
    );
    assert_eq!(store.token_ttl(&key(2)), None, "a reload replaces what was there");
    let query = RevocationQuery {
        token: key(3),
        subject: None,
        session: None,
        issued_at: Some(1),
    };
    assert_eq!(store.lookup_now(&query).global_watermark, Some(500));
}

#[test]
fn an_expired_revocation_is_not_kept_alive_by_a_stopped_clock() {
    let store = InMemoryStore::new();
    let key = key(7);
    // The first write starts the ticker on a runtime that then goes away.
    let first = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    first
        .block_on(store.revoke_token(&key, Duration::from_millis(100)))
        .unwrap();
    drop(first);
    let query = RevocationQuery {
        token: key,
        subject: None,
        session: None,
        issued_at: None,
    };
    assert!(store.lookup_now(&query).token_revoked);
    std::thread::sleep(Duration::from_millis(300));
    // No write and no ticker since: the store's own clock still says "then".
    assert!(
        !store.lookup_now(&query).token_revoked,
        "expired, yet still refused"
    );
}

#[tokio::test]
async fn a_later_shorter_revocation_does_not_shorten_a_longer_one() {
    let store = InMemoryStore::new();
    store
        .revoke_token(&key(1), Duration::from_secs(60))
        .await
        .unwrap();
    store
        .revoke_token(&key(1), Duration::from_millis(1))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    store.purge_expired();
    let ttl = store.token_ttl(&key(1)).expect("still revoked");
    assert!(ttl > Duration::from_secs(59), "ttl shrank to {ttl:?}");
}

#[tokio::test]
async fn watermarks_only_move_forward() {
    let store = InMemoryStore::new();
    let subject = RevocationKey::subject(None, "alice");
    store
        .raise_subject_watermark(&subject, 200, Duration::from_secs(60))
        .await
        .unwrap();
    store
        .raise_subject_watermark(&subject, 100, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(store.subject_watermark(&subject).map(|(mark, _)| mark), Some(200));
    store
        .raise_global_watermark(300, Duration::from_secs(60))
        .await
        .unwrap();
    store
        .raise_global_watermark(10, Duration::from_secs(60))
        .await
        .unwrap();
    let query = RevocationQuery {
        token: key(9),
        subject: Some(subject),
        session: None,
        issued_at: None,
    };
    let lookup = store.lookup(&query).await.unwrap();
    assert_eq!(lookup.subject_watermark, Some(200));
    assert_eq!(lookup.global_watermark, Some(300));
}

#[tokio::test]
async fn concurrent_revokes_and_checks_lose_nothing() {
    let store = InMemoryStore::new();
    let mut tasks = Vec::new();
    for worker in 0..8u8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..200u32 {
                let token = RevocationKey::token(None, &format!("{worker}-{n}"));
                store.revoke_token(&token, Duration::from_secs(60)).await.unwrap();
                let query = RevocationQuery {
                    token,
                    subject: None,
                    session: None,
                    issued_at: None,
                };
                assert!(store.lookup(&query).await.unwrap().token_revoked);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    for worker in 0..8u8 {
        for n in 0..200u32 {
            let token = RevocationKey::token(None, &format!("{worker}-{n}"));
            assert!(store.token_ttl(&token).is_some(), "lost {worker}-{n}");
        }
    }
}

#[test]
fn a_sweep_in_slices_reclaims_every_expired_entry_and_keeps_every_live_one() {
    sweep_in_slices(table::Shard::default());
    #[cfg(feature = "redis")]
    sweep_in_slices(table::Shard::full());
}

fn sweep_in_slices(mut shard: table::Shard) {
    // Enough entries that one shard spans many slices, markers and watermarks mixed.
    let (live, expired) = (5, 1);
    let keys: Vec<RevocationKey> = (0..4000u32)
        .map(|n| RevocationKey::token(None, &n.to_string()))
        .collect();
    for (n, key) in keys.iter().enumerate() {
        let expires = if n % 3 == 0 { expired } else { live };
        shard.markers.upsert(key, expires, Tag::NONE, |_, _| {});
        if n % 7 == 0 {
            let mark = Mark {
                issued_until: 1,
                expires,
            };
            shard.subjects.upsert(key, mark, Tag::NONE, |_, _| {});
        }
    }
    assert!(shard.markers.slots() > 4 * table::SWEEP_SLOTS);
    let (mut next, mut slices) = (Some(table::Sweep::START), 0);
    while let Some(from) = next {
        next = shard.purge_slice(from, expired);
        slices += 1;
    }
    assert!(slices > 4, "one slice did the whole shard");
    for (n, key) in keys.iter().enumerate() {
        assert_eq!(shard.markers.get(key).is_some(), n % 3 != 0, "marker {n}");
        let subject = n % 7 == 0 && n % 3 != 0;
        assert_eq!(shard.subjects.get(key).is_some(), subject, "watermark {n}");
    }
}
