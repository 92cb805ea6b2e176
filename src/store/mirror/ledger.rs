//! The mirror's ledger: every live record it knows, in full — kind, bucket, hash, value
//! and expiry — so that when Redis loses data the mirror can write back what it lost.
//!
//! The local copy the checks read cannot: it keeps 64 bits of each key and no kind or
//! bucket, to stay small. The ledger is kept only while write-back is on
//! ([`MirrorStoreBuilder::write_back`](super::MirrorStoreBuilder::write_back)); it costs
//! about 100 bytes per live revocation.
//!
//! It follows what the mirror applies: a load, a feed event (a `del` event removes the
//! marker: an unrevoke is never written back), so what it writes back is what Redis held
//! as far as the mirror last knew. Expired records are never written back: each keeps
//! its absolute expiry, and is dropped once past it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::key::RevocationKey;
use crate::store::redis::Kind;

/// One record as Redis holds it: its value (`1` for a marker, else the watermark) and
/// its expiry in Unix milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Held {
    value: u64,
    expires_ms: u64,
}

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

type Key = (u8, u32, RevocationKey);

/// Every live record the mirror knows, by bucket.
#[derive(Debug, Default)]
pub(super) struct Ledger {
    records: Mutex<BTreeMap<Key, Held>>,
    /// When expired records were last dropped (Unix ms).
    purged_ms: AtomicU64,
}

/// How often a ledger drops its expired records, at most.
const PURGE_EVERY_MS: u64 = 30_000;

fn code(kind: Kind) -> u8 {
    match kind {
        Kind::Token => 0,
        Kind::Session => 1,
        Kind::Subject => 2,
        Kind::Global => 3,
    }
}

fn kind(code: u8) -> Kind {
    match code {
        0 => Kind::Token,
        1 => Kind::Session,
        2 => Kind::Subject,
        _ => Kind::Global,
    }
}

pub(super) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
}

impl Ledger {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<Key, Held>> {
        // Every critical section inserts, removes or reads whole entries.
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Notes a record of `bucket`, as the writes do: a marker keeps its latest expiry, a
    /// watermark its highest value (and latest expiry).
    pub(super) fn record(&self, bucket: u32, kind: Kind, hash: RevocationKey, value: u64, expires_ms: u64) {
        if expires_ms <= now_ms() {
            return;
        }
        let mut records = self.lock();
        let held = records
            .entry((code(kind), bucket, hash))
            .or_insert(Held { value, expires_ms });
        held.value = held.value.max(value);
        held.expires_ms = held.expires_ms.max(expires_ms);
    }

    /// Forgets a marker removed on purpose (an unrevoke: a `del` event).
    pub(super) fn forget(&self, bucket: u32, kind: Kind, hash: RevocationKey) {
        self.lock().remove(&(code(kind), bucket, hash));
    }

    /// The live records of `buckets` (all of them when `None`), dropping the expired.
    pub(super) fn live(&self, buckets: Option<&[u32]>) -> Vec<Live> {
        let now = now_ms();
        let mut records = self.lock();
        records.retain(|_, held| held.expires_ms > now);
        records
            .iter()
            .filter(|((_, bucket, _), _)| buckets.is_none_or(|buckets| buckets.contains(bucket)))
            .map(|(&(code, bucket, hash), held)| {
                let kind = kind(code);
                Live {
                    bucket,
                    kind,
                    hash,
                    mark: matches!(kind, Kind::Subject | Kind::Global).then_some(held.value),
                    ttl: Duration::from_millis(held.expires_ms - now),
                }
            })
            .collect()
    }

    /// Forgets every record of `buckets` (all of them when `None`), before a load fills
    /// them again from Redis.
    pub(super) fn clear(&self, buckets: Option<&[u32]>) {
        self.lock()
            .retain(|(_, bucket, _), _| buckets.is_some_and(|buckets| !buckets.contains(bucket)));
    }

    /// Drops the expired records (bounded memory on a quiet mirror).
    pub(super) fn purge(&self) {
        let now = now_ms();
        self.purged_ms.store(now, Ordering::Relaxed);
        self.lock().retain(|_, held| held.expires_ms > now);
    }

    /// [`purge`](Self::purge), unless it ran lately.
    pub(super) fn purge_if_due(&self) {
        if now_ms().saturating_sub(self.purged_ms.load(Ordering::Relaxed)) >= PURGE_EVERY_MS {
            self.purge();
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
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
    fn never_holds_an_expired_record() {
        let ledger = Ledger::default();
        let token = RevocationKey::token(None, "old");
        ledger.record(0, Kind::Token, token, 1, now_ms().saturating_sub(1));
        assert_eq!(ledger.len(), 0);
        ledger.record(0, Kind::Token, token, 1, now_ms() + 30);
        std::thread::sleep(Duration::from_millis(60));
        assert!(ledger.live(None).is_empty());
        ledger.purge();
        assert_eq!(ledger.len(), 0);
    }
}
