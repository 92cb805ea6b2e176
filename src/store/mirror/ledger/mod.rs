//! The mirror's ledger: every live record it knows, in full — kind, bucket, hash, value
//! and expiry — so that when Redis loses data the mirror can write back what it lost.
//!
//! The local copy the checks read cannot: it keeps 64 bits of each key and no kind or
//! bucket, to stay small. The ledger is kept only while write-back is on
//! ([`MirrorStoreBuilder::write_back`](super::MirrorStoreBuilder::write_back)); it costs
//! about 70 bytes per live revocation (`packed.rs` says how).
//!
//! It follows what the mirror applies: a load, a feed event (a `del` event removes the
//! marker: an unrevoke is never written back), so what it writes back is what Redis held
//! as far as the mirror last knew. Expired records are never written back: each keeps
//! its absolute expiry, and is dropped once past it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod packed;

use self::packed::{Record, Records};
use crate::store::key::RevocationKey;
use crate::store::redis::Kind;

/// A record to write back: where, what, and for how long still.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Live {
    pub(super) bucket: u32,
    pub(super) kind: Kind,
    pub(super) hash: RevocationKey,
    /// The watermark, for a subject or global record; `None` for a marker.
    pub(super) mark: Option<u64>,
    pub(super) ttl: Duration,
}

/// Every live record the mirror knows, by bucket.
#[derive(Debug, Default)]
pub(super) struct Ledger {
    records: Mutex<Records>,
    /// When expired records were last dropped (Unix ms).
    purged_ms: AtomicU64,
}

/// How often a ledger drops its expired records, at most.
const PURGE_EVERY_MS: u64 = 30_000;

/// How many records a purge or a partial clear looks at per hold of the lock: tens of
/// microseconds.
const SLICE: usize = 4096;

pub(super) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
}

impl Ledger {
    fn lock(&self) -> MutexGuard<'_, Records> {
        // Every critical section leaves the records and their table consistent.
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Notes a record of `bucket`, as the writes do: a marker keeps its latest expiry, a
    /// watermark its highest value (and latest expiry).
    pub(super) fn record(&self, bucket: u32, kind: Kind, hash: RevocationKey, value: u64, expires_ms: u64) {
        self.noting().record(bucket, kind, hash, value, expires_ms);
    }

    /// Notes many records under one hold of the lock, as of one reading of the clock
    /// (a load's page).
    pub(super) fn noting(&self) -> Noting<'_> {
        Noting {
            records: self.lock(),
            now_ms: now_ms(),
        }
    }

    /// Forgets a marker removed on purpose (an unrevoke: a `del` event).
    pub(super) fn forget(&self, bucket: u32, kind: Kind, hash: RevocationKey) {
        self.lock().remove(bucket, kind, &hash);
    }

    /// The live records of `buckets` (all of them when `None`).
    pub(super) fn live(&self, buckets: Option<&[u32]>) -> Vec<Live> {
        let now = now_ms();
        self.lock()
            .iter()
            .filter(|record| record.expires_ms > now)
            .filter(|record| buckets.is_none_or(|buckets| buckets.contains(&record.bucket)))
            .map(|record| Live {
                bucket: record.bucket,
                kind: record.kind,
                hash: record.hash,
                mark: matches!(record.kind, Kind::Subject | Kind::Global).then_some(record.value),
                ttl: Duration::from_millis(record.expires_ms - now),
            })
            .collect()
    }

    /// Forgets every record of `buckets` (all of them when `None`), before a load fills
    /// them again from Redis.
    pub(super) async fn clear(&self, buckets: Option<&[u32]>) {
        match buckets {
            None => self.lock().clear(),
            Some(buckets) => self.drop_sliced(|record| buckets.contains(&record.bucket)).await,
        }
    }

    /// Drops the expired records (bounded memory on a quiet mirror).
    pub(super) async fn purge(&self) {
        let now = now_ms();
        self.purged_ms.store(now, Ordering::Relaxed);
        self.drop_sliced(|record| record.expires_ms <= now).await;
    }

    /// Drops the records `drop` picks, [`SLICE`] records a hold of the lock, letting
    /// other tasks run between slices: at ten million records, a purge in one go held
    /// the mirror's follower for 0.3 s.
    async fn drop_sliced(&self, drop: impl Fn(&Record) -> bool) {
        let mut from = 0;
        loop {
            // The guard goes before the yield.
            let next = self.lock().drop_slice(from, SLICE, &drop);
            let Some(next) = next else { break };
            from = next;
            tokio::task::yield_now().await;
        }
    }

    /// [`purge`](Self::purge), unless it ran lately.
    pub(super) async fn purge_if_due(&self) {
        if now_ms().saturating_sub(self.purged_ms.load(Ordering::Relaxed)) >= PURGE_EVERY_MS {
            self.purge().await;
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// Records being noted: see [`Ledger::noting`].
pub(super) struct Noting<'a> {
    records: MutexGuard<'a, Records>,
    now_ms: u64,
}

impl Noting<'_> {
    /// [`Ledger::record`].
    pub(super) fn record(
        &mut self,
        bucket: u32,
        kind: Kind,
        hash: RevocationKey,
        value: u64,
        expires_ms: u64,
    ) {
        if expires_ms > self.now_ms {
            self.records.upsert(Record {
                hash,
                value,
                expires_ms,
                bucket,
                kind,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn keeps_the_longest_marker_and_the_highest_watermark_and_forgets_unrevoked() {
        let ledger = Ledger::default();
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
        let watermark = live.iter().find(|l| l.kind == Kind::Subject).unwrap();
        assert_eq!(watermark.mark, Some(100));
        assert!(watermark.ttl > Duration::from_secs(50));
        assert_eq!(ledger.live(Some(&[5])).len(), 1);
        ledger.forget(3, Kind::Token, token);
        assert_eq!(ledger.live(Some(&[3])), Vec::new());
    }

    #[test]
    fn a_record_moved_by_a_removal_is_still_found() {
        let ledger = Ledger::default();
        let later = now_ms() + 60_000;
        let tokens: Vec<RevocationKey> = (0..100)
            .map(|n| RevocationKey::token(None, &n.to_string()))
            .collect();
        for token in &tokens {
            ledger.record(1, Kind::Token, *token, 1, later);
        }
        // Removing the first moves the last into its place.
        ledger.forget(1, Kind::Token, tokens[0]);
        ledger.record(1, Kind::Token, tokens[99], 1, later + 1000);
        assert_eq!(ledger.len(), 99, "the moved record was found, not added again");
        let moved = ledger
            .live(None)
            .into_iter()
            .find(|live| live.hash == tokens[99])
            .unwrap();
        assert!(moved.ttl > Duration::from_secs(60), "and its expiry extended");
        // The same hash in another bucket or of another kind is another record.
        ledger.record(2, Kind::Token, tokens[1], 1, later);
        ledger.record(1, Kind::Session, tokens[1], 1, later);
        assert_eq!(ledger.len(), 101);
        for token in &tokens[1..] {
            ledger.forget(1, Kind::Token, *token);
        }
        let left: Vec<(u32, Kind)> = ledger
            .live(None)
            .iter()
            .map(|live| (live.bucket, live.kind))
            .collect();
        assert_eq!(left.len(), 2);
        assert!(left.contains(&(2, Kind::Token)) && left.contains(&(1, Kind::Session)));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_purge_lets_other_tasks_run_between_slices_and_keeps_every_live_record_found() {
        let ledger = Ledger::default();
        let (now, n) = (now_ms(), 3 * SLICE);
        let token = |i: usize| RevocationKey::token(None, &i.to_string());
        {
            let mut noting = ledger.noting();
            for i in 0..n {
                let expires_ms = if i % 2 == 0 { now + 20 } else { now + 60_000 };
                noting.record(0, Kind::Token, token(i), 1, expires_ms);
            }
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
        let others = Arc::new(AtomicU64::new(0));
        let ticker = tokio::spawn({
            let others = others.clone();
            async move {
                loop {
                    others.fetch_add(1, Ordering::Relaxed);
                    tokio::task::yield_now().await;
                }
            }
        });
        ledger.purge().await;
        ticker.abort();
        // One thread: the ticker ran only where the purge let go of it.
        assert!(others.load(Ordering::Relaxed) >= 2, "the purge never yielded");
        assert_eq!(ledger.len(), n / 2);
        for i in (1..n).step_by(2) {
            ledger.record(0, Kind::Token, token(i), 1, now + 60_000);
        }
        assert_eq!(ledger.len(), n / 2, "each live record is found where it moved");
    }

    #[tokio::test]
    async fn clearing_buckets_forgets_only_theirs() {
        let ledger = Ledger::default();
        let later = now_ms() + 60_000;
        let token = |i: usize| RevocationKey::token(None, &i.to_string());
        // More than a slice, spread over three buckets.
        let n = SLICE + 500;
        for i in 0..n {
            ledger.record((i % 3) as u32, Kind::Token, token(i), 1, later);
        }
        ledger.clear(Some(&[1])).await;
        let left = ledger.live(None);
        assert!(left.iter().all(|live| live.bucket != 1));
        assert_eq!(left.len(), n - (0..n).filter(|i| i % 3 == 1).count());
        for i in (0..n).filter(|i| i % 3 != 1) {
            ledger.record((i % 3) as u32, Kind::Token, token(i), 1, later);
        }
        assert_eq!(
            ledger.len(),
            left.len(),
            "every record kept is found where it moved"
        );
        ledger.clear(None).await;
        assert_eq!(ledger.len(), 0);
    }

    #[tokio::test]
    async fn never_holds_an_expired_record() {
        let ledger = Ledger::default();
        let token = RevocationKey::token(None, "old");
        ledger.record(0, Kind::Token, token, 1, now_ms().saturating_sub(1));
        assert_eq!(ledger.len(), 0);
        ledger.record(0, Kind::Token, token, 1, now_ms() + 30);
        std::thread::sleep(Duration::from_millis(60));
        assert!(ledger.live(None).is_empty());
        ledger.purge().await;
        assert_eq!(ledger.len(), 0);
    }
}
