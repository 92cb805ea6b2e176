//! Full records, for a mirror with write-back on: one structure that answers its checks
//! and keeps what it would write back into Redis.
//!
//! A record is packed into 37 bytes (a marker; a subject's watermark 41): its 32-byte
//! key but for the byte that is its shard's index, its value, and its [`Tag`] (kind
//! and bucket). Records sit in [`Chunks`], found through a `hashbrown::HashTable` of
//! their positions: 2 bytes a slot while a shard holds fewer than 65,536 records (16
//! million in all), 4 beyond; with one control byte a slot, 3 to 7 bytes a record for
//! the index. A removal moves the last record into the hole.
//!
//! A check that finds nothing (the common case) reads only the control bytes, as in
//! the short-key table; one that finds a slot reads the record and compares all 32
//! bytes, so full records never collide.

use std::ops::Range;

use super::chunks::Chunks;
use super::positions::Index;
use super::tag::Tag;
use crate::store::key::RevocationKey;

/// One record; `packed(1)` so that a 4-byte value does not pad it to 40 bytes. Its
/// fields are only ever copied, never borrowed.
#[repr(C, packed(1))]
pub(super) struct Record<V> {
    pub(super) key: Stored,
    pub(super) value: V,
    pub(super) tag: Tag,
}

/// A key as a record keeps it: all but its byte 8, which is the index of the shard
/// that holds it (`Table::shard_of`).
pub(super) type Stored = [u8; 31];

fn stored(key: &[u8; 32]) -> Stored {
    let mut stored = [0; 31];
    stored[..8].copy_from_slice(&key[..8]);
    stored[8..].copy_from_slice(&key[9..]);
    stored
}

fn matches(stored: &Stored, key: &[u8; 32]) -> bool {
    stored[..8] == key[..8] && stored[8..] == key[9..]
}

/// The whole key of a record kept by shard `shard`.
pub(super) fn key_of(stored: &Stored, shard: u8) -> [u8; 32] {
    let mut key = [0; 32];
    key[..8].copy_from_slice(&stored[..8]);
    key[8] = shard;
    key[9..].copy_from_slice(&stored[8..]);
    key
}

impl<V: Copy> Clone for Record<V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<V: Copy> Copy for Record<V> {}

/// The table's hash of a key: its first 64 bits (SHA-256 output already), as the
/// short-key table has it.
fn hash_of(bytes: &[u8]) -> u64 {
    u64::from_le_bytes([
        bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
    ])
}

/// Full records and their index.
pub(super) struct Records<V> {
    records: Chunks<Record<V>>,
    at: Index,
}

impl<V> Default for Records<V> {
    fn default() -> Self {
        Self {
            records: Chunks::default(),
            at: Index::default(),
        }
    }
}

impl<V> std::fmt::Debug for Records<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No key in logs: only how many.
        f.debug_struct("Records")
            .field("len", &self.records.len())
            .finish_non_exhaustive()
    }
}

impl<V: Copy> Records<V> {
    fn position(&self, key: &RevocationKey) -> Option<usize> {
        let bytes = key.as_bytes();
        let records = &self.records;
        self.at.find(hash_of(bytes), |i| matches(&records[i].key, bytes))
    }

    pub(super) fn get(&self, key: &RevocationKey) -> Option<V> {
        self.position(key).map(|i| self.records[i].value)
    }

    /// Inserts a record, or folds `value` into the one there and merges the tags.
    pub(super) fn upsert(&mut self, key: &RevocationKey, value: V, tag: Tag, fold: impl FnOnce(&mut V, V)) {
        if let Some(i) = self.position(key) {
            let record = &mut self.records[i];
            let mut held = record.value;
            fold(&mut held, value);
            record.value = held;
            record.tag = { record.tag }.merge(tag);
            return;
        }
        let position = self.records.len();
        // Past 4 billion records in one shard the table stops growing: only ever
        // reached with a trillion revocations.
        if u32::try_from(position).is_err() {
            return;
        }
        let key = key.as_bytes();
        self.records.push(Record {
            key: stored(key),
            value,
            tag: Tag::NONE.merge(tag),
        });
        let records = &self.records;
        self.at
            .insert(hash_of(key), position, |i| hash_of(&records[i].key));
    }

    /// Removes the record under `key`; returns whether there was one.
    pub(super) fn remove(&mut self, key: &RevocationKey) -> bool {
        let Some(i) = self.position(key) else {
            return false;
        };
        self.remove_at(i);
        true
    }

    /// Removes the record at `i`: the last record moves into its place.
    fn remove_at(&mut self, i: usize) {
        self.at.remove(hash_of(&self.records[i].key), i);
        let last = self.records.len() - 1;
        self.records.swap_remove(i);
        if i != last {
            self.at.repoint(hash_of(&self.records[i].key), last, i);
        }
    }

    pub(super) fn len(&self) -> usize {
        self.records.len()
    }

    /// Keeps the records whose value `keep` accepts (it may change it).
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&mut V) -> bool) {
        let mut i = 0;
        while i < self.records.len() {
            let mut value = self.records[i].value;
            if keep(&mut value) {
                self.records[i].value = value;
                i += 1;
            } else {
                // The last record moves into `i`: it is looked at next.
                self.remove_at(i);
            }
        }
    }

    /// Drops the records among `slots` (positions) whose value `keep` refuses, from
    /// the last to the first: the record that moves into a hole is one looked at
    /// already (or one added since).
    pub(super) fn retain_slots(&mut self, slots: Range<usize>, keep: impl Fn(&V) -> bool) {
        for i in slots.rev() {
            if let Some(record) = self.records.get(i)
                && !keep(&{ record.value })
            {
                self.remove_at(i);
            }
        }
    }

    /// Calls `each` with every record among `slots` (positions).
    pub(super) fn for_each_in(&self, slots: Range<usize>, mut each: impl FnMut(&Stored, V, Tag)) {
        for record in self.records.range(slots) {
            each(&record.key, record.value, record.tag);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u32) -> RevocationKey {
        RevocationKey::token(None, &n.to_string())
    }

    #[test]
    fn a_record_is_packed_into_37_bytes_and_gives_its_key_back() {
        assert_eq!(std::mem::size_of::<Record<u32>>(), 37);
        assert_eq!(std::mem::size_of::<Record<[u32; 2]>>(), 41);
        let key = *RevocationKey::token(None, "k").as_bytes();
        assert!(matches(&stored(&key), &key));
        assert_eq!(key_of(&stored(&key), key[8]), key);
    }

    #[test]
    fn records_moved_by_removals_and_past_65536_in_a_shard_are_still_found() {
        let mut records = Records::default();
        let n = 70_000;
        for i in 0..n {
            records.upsert(&key(i), i, Tag::NONE, |held, new| *held = (*held).max(new));
        }
        assert!(records.at.is_wide());
        // Every third removed: the last records move into their holes.
        for i in (0..n).step_by(3) {
            assert!(records.remove(&key(i)));
            assert!(!records.remove(&key(i)));
        }
        for i in 0..n {
            assert_eq!(records.get(&key(i)), (i % 3 != 0).then_some(i), "{i}");
        }
        records.retain(|value| *value % 2 == 0);
        records.retain_slots(0..records.len() + 5, |value| *value % 4 == 0);
        for i in 0..n {
            let kept = i % 3 != 0 && i % 4 == 0;
            assert_eq!(records.get(&key(i)), kept.then_some(i), "{i}");
        }
        assert_eq!(records.len(), (0..n).filter(|i| i % 3 != 0 && i % 4 == 0).count());
    }
}
