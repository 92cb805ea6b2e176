//! The ledger's records, packed: each in a `Vec` (56 bytes), found through a
//! `hashbrown::HashTable` of their positions (4 bytes a slot), a removal moving the last
//! record into the hole. A `BTreeMap` of the same records took about 90 bytes a record
//! and, at a million records, 380 ns an insert (some forty comparisons of 32-byte keys
//! down the tree): most of a mirror's load.

use hashbrown::HashTable;

use crate::store::key::RevocationKey;
use crate::store::redis::Kind;

/// One record as Redis holds it: where, its value (`1` for a marker, else the
/// watermark) and its expiry in Unix milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Record {
    pub(super) hash: RevocationKey,
    pub(super) value: u64,
    pub(super) expires_ms: u64,
    pub(super) bucket: u32,
    pub(super) kind: Kind,
}

impl Record {
    fn is(&self, bucket: u32, kind: Kind, hash: &RevocationKey) -> bool {
        self.hash == *hash && self.bucket == bucket && self.kind == kind
    }
}

/// Where a record sits in the table: bits of its hash, which is SHA-256 output already,
/// and its kind. Records sharing a hash (the global watermark's, all zeros, is in every
/// bucket) share a slot hash and are told apart by [`Record::is`].
fn slot_hash(kind: Kind, hash: &RevocationKey) -> u64 {
    let bytes = hash.as_bytes();
    let word = u64::from_le_bytes([
        bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15],
    ]);
    word ^ u64::from(kind.code().as_bytes()[0])
}

/// The records, packed, and the table that finds one by its key.
#[derive(Debug, Default)]
pub(super) struct Records {
    records: Vec<Record>,
    /// Positions in `records`.
    at: HashTable<u32>,
}

impl Records {
    /// A marker keeps its latest expiry, a watermark its highest value (and latest
    /// expiry).
    pub(super) fn upsert(&mut self, record: Record) {
        let Self { records, at } = self;
        let hash = slot_hash(record.kind, &record.hash);
        let found = at.find(hash, |&i| {
            records[i as usize].is(record.bucket, record.kind, &record.hash)
        });
        if let Some(&i) = found {
            let held = &mut records[i as usize];
            held.value = held.value.max(record.value);
            held.expires_ms = held.expires_ms.max(record.expires_ms);
            return;
        }
        // Past 4 billion records the ledger stops growing (write-back is then partial;
        // the mirror itself is unaffected).
        let Ok(i) = u32::try_from(records.len()) else {
            return;
        };
        records.push(record);
        at.insert_unique(hash, i, |&i| {
            let record = &records[i as usize];
            slot_hash(record.kind, &record.hash)
        });
    }

    pub(super) fn remove(&mut self, bucket: u32, kind: Kind, hash: &RevocationKey) {
        let Self { records, at } = self;
        if let Ok(found) = at.find_entry(slot_hash(kind, hash), |&i| {
            records[i as usize].is(bucket, kind, hash)
        }) {
            let (i, _) = found.remove();
            self.fill(i as usize);
        }
    }

    /// Removes the record at `i`, whose position is out of the table already: the last
    /// record moves into its place.
    fn fill(&mut self, i: usize) {
        let Self { records, at } = self;
        let last = records.len() - 1;
        records.swap_remove(i);
        if i != last {
            let moved = &records[i];
            if let Some(position) = at.find_mut(slot_hash(moved.kind, &moved.hash), |&j| j as usize == last) {
                *position = i as u32;
            }
        }
    }

    /// Drops the records `drop` picks among `count` from position `from`; returns
    /// where the next slice starts, or `None` at the end.
    pub(super) fn drop_slice(
        &mut self,
        from: usize,
        count: usize,
        drop: impl Fn(&Record) -> bool,
    ) -> Option<usize> {
        let mut i = from;
        for _ in 0..count {
            let record = *self.records.get(i)?;
            if !drop(&record) {
                i += 1;
                continue;
            }
            let slot = self
                .at
                .find_entry(slot_hash(record.kind, &record.hash), |&j| j as usize == i);
            if let Ok(slot) = slot {
                slot.remove();
            }
            // The last record moves into `i`: it is looked at next.
            self.fill(i);
        }
        (i < self.records.len()).then_some(i)
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &Record> {
        self.records.iter()
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.records.len()
    }

    pub(super) fn clear(&mut self) {
        self.records.clear();
        self.at.clear();
    }
}
