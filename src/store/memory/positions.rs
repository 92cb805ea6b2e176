//! The index of a shard's full records (`records.rs`): their positions, found by
//! the first 64 bits of their key.
//!
//! Positions are kept in 2 bytes while a shard holds fewer than 65,536 records (16
//! million in all), 4 beyond, in a `hashbrown::HashTable` (one control byte a slot
//! more). Such a table doubles when it is 7/8 full, so it is between 44 % and 88 %
//! full, and with one table a shard the index cost 3 bytes a slot swings between
//! 3.4 and 6.9 bytes a record with the number of records (6.3 at a million). So each
//! shard's index is split into [`PARTS`] tables of unequal shares (weights a quarter
//! octave apart): they double at different sizes, and the index costs 4.3 to 5.5
//! bytes a record whatever the count (4.7 at a million, 5.0 at ten million).

use hashbrown::HashTable;

/// Tables an index is split into.
const PARTS: usize = 4;

/// Which part a hash goes to: its bits 40 to 47 (neither the bits a table picks a
/// slot by, the low ones, nor those it keeps in its control bytes, the top 7), below
/// each of these bounds in turn. Shares 19 %, 23 %, 27 %, 32 %: weights 2^(k/4).
const BOUNDS: [u8; PARTS - 1] = [48, 106, 175];

fn part(hash: u64) -> usize {
    let bits = (hash >> 40) as u8;
    BOUNDS.iter().filter(|bound| bits >= **bound).count()
}

/// A shard's index: [`PARTS`] tables of positions.
#[derive(Debug, Default)]
pub(super) struct Index {
    parts: [Positions; PARTS],
}

impl Index {
    /// The position under `hash` that `is` accepts.
    pub(super) fn find(&self, hash: u64, is: impl Fn(usize) -> bool) -> Option<usize> {
        self.parts[part(hash)].find(hash, is)
    }

    /// Notes `position` under `hash`; `rehash` gives the hash of the record at a
    /// position, for a growth.
    pub(super) fn insert(&mut self, hash: u64, position: usize, rehash: impl Fn(usize) -> u64) {
        self.parts[part(hash)].insert(hash, position, rehash);
    }

    /// Forgets `position`, noted under `hash`.
    pub(super) fn remove(&mut self, hash: u64, position: usize) {
        self.parts[part(hash)].remove(hash, position);
    }

    /// The record noted at `from` under `hash` is now at `to` (smaller).
    pub(super) fn repoint(&mut self, hash: u64, from: usize, to: usize) {
        self.parts[part(hash)].repoint(hash, from, to);
    }

    #[cfg(test)]
    pub(super) fn is_wide(&self) -> bool {
        self.parts.iter().any(|part| matches!(part, Positions::Wide(_)))
    }
}

/// Positions of records, as narrow as they fit.
#[derive(Debug)]
enum Positions {
    Narrow(HashTable<u16>),
    Wide(HashTable<u32>),
}

impl Positions {
    fn find(&self, hash: u64, is: impl Fn(usize) -> bool) -> Option<usize> {
        match self {
            Self::Narrow(at) => at.find(hash, |&i| is(usize::from(i))).map(|&i| usize::from(i)),
            Self::Wide(at) => at.find(hash, |&i| is(i as usize)).map(|&i| i as usize),
        }
    }

    /// [`Index::insert`]: a table of 2-byte positions is made one of 4 when a position
    /// needs it.
    fn insert(&mut self, hash: u64, position: usize, rehash: impl Fn(usize) -> u64) {
        if let Self::Narrow(at) = self
            && u16::try_from(position).is_err()
        {
            // Once per shard, at its 65,536th record: every position is noted again.
            let mut wide = HashTable::with_capacity(at.len() + 1);
            for &i in at.iter() {
                wide.insert_unique(rehash(usize::from(i)), u32::from(i), |&j| rehash(j as usize));
            }
            *self = Self::Wide(wide);
        }
        match self {
            Self::Narrow(at) => {
                // Fits: checked above.
                let position = position as u16;
                at.insert_unique(hash, position, |&i| rehash(usize::from(i)));
            }
            Self::Wide(at) => {
                // Positions stay below `u32::MAX`: see `Records::upsert`.
                let position = position as u32;
                at.insert_unique(hash, position, |&i| rehash(i as usize));
            }
        }
    }

    /// Forgets `position`, noted under `hash`.
    fn remove(&mut self, hash: u64, position: usize) {
        match self {
            Self::Narrow(at) => {
                if let Ok(entry) = at.find_entry(hash, |&i| usize::from(i) == position) {
                    entry.remove();
                }
            }
            Self::Wide(at) => {
                if let Ok(entry) = at.find_entry(hash, |&i| i as usize == position) {
                    entry.remove();
                }
            }
        }
    }

    /// The record noted at `from` under `hash` is now at `to` (smaller, so it fits).
    fn repoint(&mut self, hash: u64, from: usize, to: usize) {
        match self {
            Self::Narrow(at) => {
                if let Some(i) = at.find_mut(hash, |&i| usize::from(i) == from) {
                    *i = to as u16;
                }
            }
            Self::Wide(at) => {
                if let Some(i) = at.find_mut(hash, |&i| i as usize == from) {
                    *i = to as u32;
                }
            }
        }
    }
}

impl Default for Positions {
    fn default() -> Self {
        Self::Narrow(HashTable::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parts_take_their_shares() {
        let mut counts = [0usize; PARTS];
        for bits in 0..=255u64 {
            counts[part(bits << 40)] += 1;
        }
        assert_eq!(counts, [48, 58, 69, 81]);
        assert_eq!(part(0xFF << 40), PARTS - 1);
    }
}
