//! The ledger's tests: what it writes back, from the mirror's copy of full records.

use super::*;
use crate::store::RevocationQuery;

fn ledger() -> Ledger {
    Ledger::new(InMemoryStore::with_full_records(), 8)
}

fn token(i: usize) -> RevocationKey {
    RevocationKey::token(None, &i.to_string())
}

fn refused(ledger: &Ledger, token: RevocationKey) -> bool {
    let query = RevocationQuery {
        token,
        subject: None,
        session: None,
        issued_at: Some(1),
    };
    ledger.local.lookup_now(&query).token_revoked
}

#[test]
fn keeps_the_longest_marker_and_the_highest_watermark_and_forgets_unrevoked() {
    let ledger = ledger();
    let token = RevocationKey::token(None, "t");
    let subject = RevocationKey::subject(None, "s");
    let later = now_ms() + 60_000;
    ledger.record(3, Kind::Token, token, 1, later);
    ledger.record(3, Kind::Token, token, 1, later - 30_000);
    ledger.record(5, Kind::Subject, subject, 100, later - 30_000);
    ledger.record(5, Kind::Subject, subject, 90, later);
    let live = ledger.live(None);
    assert_eq!(live.len(), 2);
    let marker = live.iter().find(|l| l.kind == Kind::Token).unwrap();
    assert!(marker.ttl > Duration::from_secs(50) && marker.mark.is_none());
    assert_eq!(marker.bucket, 3);
    let watermark = live.iter().find(|l| l.kind == Kind::Subject).unwrap();
    assert_eq!((watermark.mark, watermark.bucket), (Some(100), 5));
    assert!(watermark.ttl > Duration::from_secs(50));
    assert_eq!(ledger.live(Some(&[5])).len(), 1);
    assert!(
        refused(&ledger, token),
        "what the ledger holds, the checks refuse"
    );
    ledger.forget(3, Kind::Token, token);
    assert_eq!(ledger.live(Some(&[3])), Vec::new());
    assert!(!refused(&ledger, token));
}

#[test]
fn a_record_of_several_buckets_is_written_back_into_each_bucket_asked_for() {
    let ledger = ledger();
    let later = now_ms() + 60_000;
    let session = RevocationKey::session(None, "x");
    for bucket in 0..8 {
        ledger.record(bucket, Kind::Session, session, 1, later);
    }
    ledger.record(2, Kind::Global, RevocationKey::ZERO, 70, later);
    ledger.record(4, Kind::Global, RevocationKey::ZERO, 80, later);
    let lost = ledger.live(Some(&[1, 6]));
    let sessions: Vec<u32> = lost
        .iter()
        .filter(|live| live.kind == Kind::Session)
        .map(|live| live.bucket)
        .collect();
    assert_eq!(sessions, [1, 6]);
    let globals: Vec<(u32, Option<u64>)> = lost
        .iter()
        .filter(|live| live.kind == Kind::Global)
        .map(|live| (live.bucket, live.mark))
        .collect();
    assert_eq!(globals, [(1, Some(80)), (6, Some(80))]);
    assert_eq!(ledger.live(None).len(), 16, "every bucket, for each");
}

#[test]
fn a_record_the_mirror_applied_without_its_bucket_is_refused_but_not_written_back() {
    let ledger = ledger();
    // The mirror's own write: before its event comes back, no bucket is known.
    ledger.local.writes().mark(&token(1), Duration::from_secs(60));
    assert!(refused(&ledger, token(1)));
    assert!(ledger.live(None).is_empty());
    // Its event names the bucket.
    ledger.record(2, Kind::Token, token(1), 1, now_ms() + 60_000);
    assert_eq!(ledger.live(None).len(), 1);
    assert_eq!(ledger.live(None)[0].bucket, 2);
}

#[tokio::test]
async fn never_writes_back_an_expired_record() {
    let ledger = ledger();
    ledger.record(0, Kind::Token, token(0), 1, now_ms().saturating_sub(1));
    assert!(ledger.live(None).is_empty());
    ledger.record(0, Kind::Token, token(0), 1, now_ms() + 30);
    std::thread::sleep(Duration::from_millis(120));
    assert!(ledger.live(None).is_empty());
    ledger.purge_if_due().await;
}
