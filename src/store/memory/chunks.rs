//! A `Vec` that grows a fixed-size chunk at a time, for a mirror's full records.
//!
//! A `Vec` of records doubles: each growth copies the records into a block twice the
//! size and frees the old one, and at a shard's sizes (tens to hundreds of kilobytes)
//! those blocks are left in the allocator's heap, resident, in sizes nothing else
//! asks for. Chunks of one size are freed and reused whole, and a shard holds at most
//! one chunk partly filled.

use std::ops::{Index, IndexMut, Range};

/// Items a chunk holds: 9.5 KiB of 38-byte records.
const CHUNK: usize = 256;

pub(super) struct Chunks<T> {
    chunks: Vec<Vec<T>>,
    len: usize,
}

impl<T> Default for Chunks<T> {
    fn default() -> Self {
        Self {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Chunks<T> {
    pub(super) fn len(&self) -> usize {
        self.len
    }
}

impl<T: Copy> Chunks<T> {
    pub(super) fn get(&self, i: usize) -> Option<&T> {
        self.chunks.get(i / CHUNK)?.get(i % CHUNK)
    }

    pub(super) fn push(&mut self, item: T) {
        if self.len.is_multiple_of(CHUNK) {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        if let Some(last) = self.chunks.last_mut() {
            last.push(item);
            self.len += 1;
        }
    }

    fn pop(&mut self) -> Option<T> {
        let last = self.chunks.last_mut()?;
        let item = last.pop()?;
        if last.is_empty() {
            self.chunks.pop();
        }
        self.len -= 1;
        Some(item)
    }

    /// Removes the item at `i`, the last one moving into its place.
    pub(super) fn swap_remove(&mut self, i: usize) {
        if let Some(last) = self.pop()
            && i < self.len
        {
            self[i] = last;
        }
    }

    /// The items among `range` (positions), in order.
    pub(super) fn range(&self, range: Range<usize>) -> impl Iterator<Item = &T> {
        let end = range.end.min(self.len);
        (range.start..end).filter_map(|i| self.get(i))
    }
}

impl<T> Index<usize> for Chunks<T> {
    type Output = T;

    fn index(&self, i: usize) -> &T {
        &self.chunks[i / CHUNK][i % CHUNK]
    }
}

impl<T> IndexMut<usize> for Chunks<T> {
    fn index_mut(&mut self, i: usize) -> &mut T {
        &mut self.chunks[i / CHUNK][i % CHUNK]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removals_move_the_last_item_and_free_an_emptied_chunk() {
        let mut chunks = Chunks::default();
        for i in 0..CHUNK * 2 + 1 {
            chunks.push(i);
        }
        assert_eq!(chunks.chunks.len(), 3);
        chunks.swap_remove(0);
        assert_eq!((chunks[0], chunks.len()), (CHUNK * 2, CHUNK * 2));
        assert_eq!(chunks.chunks.len(), 2, "the emptied chunk is freed");
        chunks.swap_remove(CHUNK * 2 - 1);
        assert_eq!(chunks.len(), CHUNK * 2 - 1);
        assert_eq!(chunks.get(CHUNK * 2 - 1), None);
        let items: Vec<usize> = chunks.range(CHUNK - 1..CHUNK + 1).copied().collect();
        assert_eq!(items, [CHUNK - 1, CHUNK]);
    }
}
