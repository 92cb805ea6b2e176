//! One shard's map from keys to expiries or watermarks: short keys (an
//! [`InMemoryStore`](super::InMemoryStore)), or full records (a mirror with write-back
//! on; see `records.rs`).
//!
//! Short keys sit in hashbrown's `HashTable`: the layout std's `HashMap` has (one
//! control byte a slot, the entries packed beside), plus access by slot index. That is
//! what lets the sweeper reclaim a shard a slice of slots at a time, letting go of the
//! shard's lock between slices, where a `retain` would hold it over the whole shard
//! (600 µs a shard at ten million entries, long enough for a waiting check to give up
//! its core).

use std::ops::Range;

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;

#[cfg(feature = "redis")]
use super::records::Records;
use super::table::ShortKey;
use super::tag::Tag;
use crate::store::key::RevocationKey;

#[derive(Debug)]
pub(super) enum Map<V> {
    Short(HashTable<(ShortKey, V)>),
    #[cfg(feature = "redis")]
    Full(Records<V>),
}

impl<V> Default for Map<V> {
    fn default() -> Self {
        Self::Short(HashTable::new())
    }
}

impl<V: Copy> Map<V> {
    /// An empty map of full records.
    #[cfg(feature = "redis")]
    pub(super) fn full() -> Self {
        Self::Full(Records::default())
    }

    pub(super) fn get(&self, key: &RevocationKey) -> Option<V> {
        match self {
            Self::Short(table) => {
                let key = ShortKey::of(key);
                table
                    .find(key.hash(), |(stored, _)| *stored == key)
                    .map(|(_, value)| *value)
            }
            #[cfg(feature = "redis")]
            Self::Full(records) => records.get(key),
        }
    }

    /// Inserts `value` under `key`, or folds it into the value already there. Full
    /// records keep `tag` too (merged, see [`Tag::merge`]); short keys drop it.
    pub(super) fn upsert(&mut self, key: &RevocationKey, value: V, tag: Tag, fold: impl FnOnce(&mut V, V)) {
        match self {
            Self::Short(table) => {
                let key = ShortKey::of(key);
                match table.entry(
                    key.hash(),
                    |(stored, _)| *stored == key,
                    |(stored, _)| stored.hash(),
                ) {
                    Entry::Occupied(mut entry) => fold(&mut entry.get_mut().1, value),
                    Entry::Vacant(entry) => {
                        entry.insert((key, value));
                    }
                }
            }
            #[cfg(feature = "redis")]
            Self::Full(records) => records.upsert(key, value, tag, fold),
        }
        let _ = tag;
    }

    /// Removes the entry under `key`; returns whether there was one.
    #[cfg(feature = "redis")]
    pub(super) fn remove(&mut self, key: &RevocationKey) -> bool {
        match self {
            Self::Short(table) => {
                let key = ShortKey::of(key);
                table
                    .find_entry(key.hash(), |(stored, _)| *stored == key)
                    .map(|entry| entry.remove())
                    .is_ok()
            }
            Self::Full(records) => records.remove(key),
        }
    }

    pub(super) fn len(&self) -> usize {
        match self {
            Self::Short(table) => table.len(),
            #[cfg(feature = "redis")]
            Self::Full(records) => records.len(),
        }
    }

    /// How many slots the map has: the range [`Map::retain_slots`] walks (for full
    /// records, their positions).
    pub(super) fn slots(&self) -> usize {
        match self {
            Self::Short(table) => table.num_buckets(),
            #[cfg(feature = "redis")]
            Self::Full(records) => records.len(),
        }
    }

    /// Keeps the entries whose value `keep` accepts (it may change it).
    #[cfg(feature = "redis")]
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&mut V) -> bool) {
        match self {
            Self::Short(table) => table.retain(|(_, value)| keep(value)),
            Self::Full(records) => records.retain(keep),
        }
    }

    /// Drops the entries in `slots` whose value `keep` refuses.
    pub(super) fn retain_slots(&mut self, slots: Range<usize>, keep: impl Fn(&V) -> bool) {
        match self {
            Self::Short(table) => {
                for slot in slots {
                    if let Ok(entry) = table.get_bucket_entry(slot)
                        && !keep(&entry.get().1)
                    {
                        entry.remove();
                    }
                }
            }
            #[cfg(feature = "redis")]
            Self::Full(records) => records.retain_slots(slots, keep),
        }
    }

    /// The full records, for a mirror's ledger; `None` for short keys.
    #[cfg(feature = "redis")]
    pub(super) fn records(&self) -> Option<&Records<V>> {
        match self {
            Self::Short(_) => None,
            Self::Full(records) => Some(records),
        }
    }
}
