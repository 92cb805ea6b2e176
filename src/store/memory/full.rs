//! What a store of full records (a mirror with write-back on) tells its ledger: every
//! live record with its kind and bucket, read a slice at a time.
//!
//! A slice is read under the shard's read lock and the lock let go before the next:
//! a write waiting on it (and the checks queued behind that write) waits microseconds,
//! not the time a whole shard takes. Slices walk each shard from its last record to its
//! first: records only ever move from the end into a hole (a removal), so a record
//! that moves between two slices lands where the walk has still to go, or was seen
//! already. Every record present all along is seen, some twice.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::records::{Records, key_of};
use super::table::{NEVER, Shard, Table};
use super::tag::{Buckets, Tag};
use super::{InMemoryStore, unpack};
use crate::store::key::RevocationKey;

/// Records a slice reads under one hold of a shard's lock: a few microseconds.
const SLICE: usize = 512;

/// A live record, as the ledger writes it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LiveRecord {
    /// The kind's code (see [`Tag::new`]).
    pub(crate) kind: u8,
    pub(crate) buckets: Buckets,
    pub(crate) hash: RevocationKey,
    /// `1` for a marker, else the watermark.
    pub(crate) value: u64,
    /// What it has left, rounded up to the table's sixteenth of a second.
    pub(crate) ttl: Duration,
}

/// The longest TTL handed back: what 32 bits of sixteenths of a second hold, past
/// which the table keeps a record for ever.
const LONGEST: Duration = Duration::from_secs(u32::MAX as u64 / 16);

impl InMemoryStore {
    /// Every live tagged record whose buckets `wanted` accepts. Empty unless the store
    /// keeps full records.
    pub(crate) fn live_records(&self, wanted: impl Fn(Buckets) -> bool) -> Vec<LiveRecord> {
        let (shared, now) = (&self.shared, Instant::now());
        let table = &shared.table;
        let now_ticks = table.tick(now);
        let ttl = |expires: u32| {
            if expires == NEVER {
                return Some(LONGEST);
            }
            (expires > now_ticks)
                .then(|| table.left(expires, now))
                .flatten()
                .map(|left| left.min(LONGEST))
        };
        let mut live = Vec::new();
        let mut keep = |tag: Tag, hash: &[u8; 32], value: u64, expires: u32| {
            if let (Some(buckets), Some(ttl)) = (tag.buckets(), ttl(expires))
                && wanted(buckets)
            {
                live.push(LiveRecord {
                    kind: tag.kind(),
                    buckets,
                    hash: RevocationKey::from_bytes(*hash),
                    value,
                    ttl,
                });
            }
        };
        for index in 0..table.shard_count() {
            let full = walk(
                table,
                index,
                |shard| shard.markers.records(),
                |hash, expires, tag| {
                    keep(tag, hash, 1, expires);
                },
            ) && walk(
                table,
                index,
                |shard| shard.subjects.records(),
                |hash, mark, tag| {
                    keep(tag, hash, u64::from(mark.issued_until), mark.expires);
                },
            );
            if !full {
                return Vec::new();
            }
        }
        let (issued_until, expires) = unpack(shared.global.load(Ordering::Acquire));
        if expires != 0 {
            let tag = Tag::from_bits(shared.global_tag.load(Ordering::Acquire));
            keep(tag, &[0; 32], u64::from(issued_until), expires);
        }
        live
    }
}

/// Calls `each` with every record of one map (`records` picks it) of shard `index`, a
/// slice at a time from its end; false when the shard keeps short keys.
fn walk<V: Copy>(
    table: &Table,
    index: usize,
    records: impl Fn(&Shard) -> Option<&Records<V>>,
    mut each: impl FnMut(&[u8; 32], V, Tag),
) -> bool {
    let mut end = usize::MAX;
    while end > 0 {
        let shard = table.read(index);
        let Some(records) = records(&shard) else {
            return false;
        };
        end = end.min(records.len());
        let start = end.saturating_sub(SLICE);
        // The shard's index is the byte records leave out (see `records.rs`).
        let shard = index as u8;
        records.for_each_in(start..end, |stored, value, tag| {
            each(&key_of(stored, shard), value, tag);
        });
        end = start;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u32) -> RevocationKey {
        RevocationKey::token(None, &n.to_string())
    }

    #[tokio::test]
    async fn every_live_tagged_record_is_read_back_with_its_kind_bucket_and_time_left() {
        let store = InMemoryStore::with_full_records();
        let writes = store.writes();
        let minute = Duration::from_secs(60);
        // Several slices in some shards.
        let n = 300_000;
        for i in 0..n {
            writes.mark_as(Tag::new(0, i % 4), &key(i), minute);
        }
        let subject = RevocationKey::subject(None, "s");
        writes.raise_subject_as(Tag::new(2, 1), &subject, 100, minute);
        writes.raise_subject_as(Tag::new(2, 1), &subject, 90, minute * 2);
        writes.raise_global_as(Tag::new(3, 0), 50, minute);
        writes.raise_global_as(Tag::new(3, 1), 40, minute);
        // Untagged (the mirror's own write) and expired records are not written back.
        writes.mark(&key(n), minute);
        writes.mark_as(Tag::new(0, 1), &key(n + 1), Duration::from_millis(1));
        std::thread::sleep(Duration::from_millis(70));

        let all = store.live_records(|_| true);
        assert_eq!(all.len(), n as usize + 2);
        let of_bucket_one = store.live_records(|buckets| {
            buckets != Buckets::One(0) && buckets != Buckets::One(2) && buckets != Buckets::One(3)
        });
        assert_eq!(of_bucket_one.len(), (n / 4) as usize + 2);
        let watermark = all.iter().find(|live| live.hash == subject).unwrap();
        assert_eq!((watermark.kind, watermark.value), (2, 100));
        assert_eq!(watermark.buckets, Buckets::One(1));
        assert!(watermark.ttl > minute + Duration::from_secs(45));
        let global = all.iter().find(|live| live.kind == 3).unwrap();
        assert_eq!((global.value, global.buckets), (50, Buckets::Every));
        let marker = all.iter().find(|live| live.hash == key(5)).unwrap();
        assert_eq!(
            (marker.kind, marker.value, marker.buckets),
            (0, 1, Buckets::One(1))
        );
        assert!(marker.ttl > Duration::from_secs(45) && marker.ttl <= minute + Duration::from_millis(63));

        // What is written back is refused too.
        assert!(store.lookup_now(&query(key(5))).token_revoked);
    }

    fn query(token: RevocationKey) -> crate::store::RevocationQuery {
        crate::store::RevocationQuery {
            token,
            subject: None,
            session: None,
            issued_at: Some(1),
        }
    }
}
