//! One shard's map from short keys to expiries or watermarks.
//!
//! On hashbrown's `HashTable`: the layout std's `HashMap` has (one control byte a
//! slot, the entries packed beside), plus access by slot index. That is what lets the
//! sweeper reclaim a shard a slice of slots at a time, letting go of the shard's lock
//! between slices, where a `retain` would hold it over the whole shard (600 µs a shard
//! at ten million entries, long enough for a waiting check to give up its core).

use std::ops::Range;

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;

use super::table::ShortKey;

#[derive(Debug)]
pub(super) struct Map<V> {
    table: HashTable<(ShortKey, V)>,
}

impl<V> Default for Map<V> {
    fn default() -> Self {
        Self {
            table: HashTable::new(),
        }
    }
}

impl<V: Copy> Map<V> {
    pub(super) fn get(&self, key: &ShortKey) -> Option<&V> {
        self.table
            .find(key.hash(), |(stored, _)| stored == key)
            .map(|(_, value)| value)
    }

    /// Inserts `value` under `key`, or folds it into the value already there.
    pub(super) fn upsert(&mut self, key: ShortKey, value: V, fold: impl FnOnce(&mut V, V)) {
        match self.table.entry(
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

    /// Removes the entry under `key`; returns whether there was one.
    #[cfg(feature = "redis")]
    pub(super) fn remove(&mut self, key: &ShortKey) -> bool {
        self.table
            .find_entry(key.hash(), |(stored, _)| stored == key)
            .map(|entry| entry.remove())
            .is_ok()
    }

    pub(super) fn len(&self) -> usize {
        self.table.len()
    }

    /// How many slots the map has: the range [`Map::retain_slots`] walks.
    pub(super) fn slots(&self) -> usize {
        self.table.num_buckets()
    }

    /// Keeps the entries in every slot whose value `keep` accepts (it may change it).
    #[cfg(feature = "redis")]
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&mut V) -> bool) {
        self.table.retain(|(_, value)| keep(value));
    }

    /// Drops the entries in `slots` whose value `keep` refuses.
    pub(super) fn retain_slots(&mut self, slots: Range<usize>, keep: impl Fn(&V) -> bool) {
        for slot in slots {
            if let Ok(entry) = self.table.get_bucket_entry(slot)
                && !keep(&entry.get().1)
            {
                entry.remove();
            }
        }
    }
}
