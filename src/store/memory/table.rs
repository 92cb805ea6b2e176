//! The compact table behind [`InMemoryStore`](super::InMemoryStore): revocations as
//! 12-byte entries in 256 independently locked shards.
//!
//! Why this shape:
//! - **12 bytes an entry**: the first 64 bits of the SHA-256 key and a 32-bit expiry in
//!   sixteenths of a second since the table's epoch. With hashbrown's control byte and
//!   its load factor (between 7/16 and 7/8 after growth), a live revocation costs 15 to
//!   30 bytes, against about 160 for full keys with `Instant`s and an expiry heap.
//! - **Truncated keys only ever refuse**: two keys that share their first 64 bits
//!   collide, and the table then says "revoked" for both. So a collision can refuse a
//!   good token, never accept a revoked one. With `n` live revocations, a check meets a
//!   false refusal with probability about `n / 2^64`: 5 × 10⁻¹³ at ten million.
//! - **256 shards, swept a slice at a time**: the sweeper reclaims expired entries one
//!   shard at a time, and within a shard [`SWEEP_SLOTS`] slots at a time, letting go
//!   of the shard's write lock between slices. A check that meets the sweeper waits a
//!   few microseconds at most, short enough that its thread spins rather than parks
//!   (a parked thread on a busy machine may wait milliseconds for a core again).
//! - **Expiry rounded up** to the next sixteenth of a second: a revocation may outlive
//!   its TTL by up to 62.5 ms, never fall short of it. An expiry beyond what 32 bits
//!   hold (8.5 years after the epoch) is kept for ever rather than cut short.

use std::sync::atomic::{AtomicU32, Ordering};

use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use super::map::Map;
use crate::store::key::RevocationKey;

/// Sixteenths of a second: the unit of stored expiries.
const TICKS_PER_SEC: u64 = 16;
const TICK_NANOS: u128 = 1_000_000_000 / TICKS_PER_SEC as u128;
/// An expiry that never comes (one too large for 32 bits).
pub(super) const NEVER: u32 = u32::MAX;
const SHARDS: usize = 256;
// A shard is chosen by a key's byte 8, which full records leave out (`records.rs`).
const _: () = assert!(SHARDS == 256);
/// Slots a sweep walks per hold of a shard's write lock: under a microsecond of work,
/// within the time a waiting check spins before it yields its core (parking_lot spins
/// for about a microsecond, then yields, then parks).
pub(super) const SWEEP_SLOTS: usize = 32;

/// The first 64 bits of a key, as two `u32`s so that an entry aligns to 4 bytes and
/// packs into 12.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ShortKey([u32; 2]);

impl ShortKey {
    pub(super) fn of(key: &RevocationKey) -> Self {
        let bytes = key.as_bytes();
        let word = |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        Self([word(0), word(4)])
    }

    /// The map's hash: the bits are SHA-256 output already, so they pass through.
    pub(super) fn hash(&self) -> u64 {
        u64::from(self.0[0]) | (u64::from(self.0[1]) << 32)
    }
}

/// A subject's watermark: issued-until in Unix seconds (32 bits hold them until 2106),
/// and its expiry.
#[derive(Debug, Clone, Copy)]
pub(super) struct Mark {
    pub(super) issued_until: u32,
    pub(super) expires: u32,
}

#[derive(Debug, Default)]
pub(super) struct Shard {
    /// Token and session markers: their keys come from separate hash domains, so one
    /// map serves both.
    pub(super) markers: Map<u32>,
    pub(super) subjects: Map<Mark>,
}

impl Shard {
    /// A shard of full records (a mirror with write-back on).
    #[cfg(feature = "redis")]
    pub(super) fn full() -> Self {
        Self {
            markers: Map::full(),
            subjects: Map::full(),
        }
    }

    /// Drops the entries expired at `now` (in ticks) among the `SWEEP_SLOTS` slots
    /// ending at `at`: a sweep walks the markers, then the subjects, each from its last
    /// slot to its first. Returns where the next slice ends, or `None` when this one
    /// reached the first subject slot.
    ///
    /// From the end, because a full record's removal moves the last record into the
    /// hole: one the walk has seen already. Between slices a short-key map may grow and
    /// move its entries: the slices that follow then skip some slots or visit some
    /// twice. An entry skipped stays until the next sweep; it is expired, so checks
    /// ignore it meanwhile.
    pub(super) fn purge_slice(&mut self, at: Sweep, now: u32) -> Option<Sweep> {
        match at {
            Sweep::Markers(end) => {
                let end = end.min(self.markers.slots());
                let start = end.saturating_sub(SWEEP_SLOTS);
                self.markers.retain_slots(start..end, |expires| *expires > now);
                Some(if start > 0 {
                    Sweep::Markers(start)
                } else {
                    Sweep::Subjects(usize::MAX)
                })
            }
            Sweep::Subjects(end) => {
                let end = end.min(self.subjects.slots());
                let start = end.saturating_sub(SWEEP_SLOTS);
                self.subjects.retain_slots(start..end, |mark| mark.expires > now);
                (start > 0).then_some(Sweep::Subjects(start))
            }
        }
    }
}

/// Where a sweep of one shard stands: the map it walks and where its next slice ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Sweep {
    Markers(usize),
    Subjects(usize),
}

impl Sweep {
    /// A sweep's first slice: the markers' last slots.
    pub(super) const START: Sweep = Sweep::Markers(usize::MAX);
}

/// A shard on cache lines of its own (two: CPUs fetch lines in adjacent pairs), so a
/// write to one shard's lock and map header does not take its neighbours' lines from
/// the cores checking them.
#[derive(Debug)]
#[repr(align(128))]
struct Padded(RwLock<Shard>);

/// The shards, and the clock their expiries count from.
#[derive(Debug)]
pub(super) struct Table {
    pub(super) epoch: Instant,
    shards: Box<[Padded]>,
    /// How many subject watermarks each shard holds, readable without its lock: most
    /// shards hold none, and a check then skips the lock (half of a check's cost).
    /// Written under the shard's write lock, after the map changed.
    subject_counts: Box<[AtomicU32]>,
    /// The clock checks read, in ticks: advanced by every write and by the sweeper's
    /// ticker, so a check never pays for reading the system clock. It may lag; a
    /// lagging clock keeps entries a little longer, which only ever refuses more
    /// (and only tokens that no verifier would accept by then).
    clock: AtomicU32,
}

impl Table {
    pub(super) fn new(epoch: Instant) -> Self {
        Self::with_shards(epoch, Shard::default)
    }

    /// A table of full records (see `records.rs`).
    #[cfg(feature = "redis")]
    pub(super) fn with_full_records(epoch: Instant) -> Self {
        Self::with_shards(epoch, Shard::full)
    }

    fn with_shards(epoch: Instant, shard: impl Fn() -> Shard) -> Self {
        Self {
            epoch,
            shards: (0..SHARDS).map(|_| Padded(RwLock::new(shard()))).collect(),
            subject_counts: (0..SHARDS).map(|_| AtomicU32::new(0)).collect(),
            clock: AtomicU32::new(0),
        }
    }

    /// Advances the checks' clock to `now` (it never goes back).
    ///
    /// Read first, written only when a tick has passed: a mirror's check ticks on
    /// every call, and an unconditional `fetch_max` would take the clock's cache line
    /// away from every other core each time (under a storm of writes, a check's p99
    /// went with it).
    pub(super) fn tick(&self, now: Instant) -> u32 {
        let ticks = self.now_ticks(now);
        let clock = self.clock.load(Ordering::Relaxed);
        if ticks <= clock {
            return clock;
        }
        self.clock.fetch_max(ticks, Ordering::Relaxed).max(ticks)
    }

    /// The checks' clock, in ticks.
    pub(super) fn clock(&self) -> u32 {
        self.clock.load(Ordering::Relaxed)
    }

    /// The shard of a key: chosen by bits the map's own hash does not use, so every
    /// shard's buckets stay evenly spread.
    pub(super) fn shard_of(&self, key: &RevocationKey) -> usize {
        usize::from(key.as_bytes()[8]) % SHARDS
    }

    pub(super) fn read(&self, shard: usize) -> RwLockReadGuard<'_, Shard> {
        self.shards[shard].0.read()
    }

    pub(super) fn write(&self, shard: usize) -> RwLockWriteGuard<'_, Shard> {
        self.shards[shard].0.write()
    }

    /// Whether `shard` may hold a subject watermark (false: none, no lock needed).
    pub(super) fn may_hold_subjects(&self, shard: usize) -> bool {
        self.subject_counts[shard].load(Ordering::Acquire) != 0
    }

    /// Publishes how many subject watermarks `shard` holds now; called with its write
    /// lock held, after a change.
    pub(super) fn count_subjects(&self, index: usize, shard: &Shard) {
        let count = u32::try_from(shard.subjects.len()).unwrap_or(u32::MAX);
        self.subject_counts[index].store(count, Ordering::Release);
    }

    pub(super) fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// `now`, in whole ticks since the epoch, rounded down: an entry is live while its
    /// expiry is greater.
    pub(super) fn now_ticks(&self, now: Instant) -> u32 {
        let ticks = now.saturating_duration_since(self.epoch).as_nanos() / TICK_NANOS;
        u32::try_from(ticks).unwrap_or(NEVER - 1)
    }

    /// The expiry of something living `ttl` from `now`, rounded up to a whole tick.
    pub(super) fn expiry(&self, now: Instant, ttl: Duration) -> u32 {
        let at = now.saturating_duration_since(self.epoch).as_nanos() + ttl.as_nanos();
        u32::try_from(at.div_ceil(TICK_NANOS)).unwrap_or(NEVER)
    }

    /// How long an entry expiring at `expires` has left after `now`.
    pub(super) fn left(&self, expires: u32, now: Instant) -> Option<Duration> {
        if expires == NEVER {
            return Some(Duration::MAX);
        }
        let until = self.epoch + Duration::from_nanos(u64::from(expires) * (TICK_NANOS as u64));
        until.checked_duration_since(now).filter(|left| !left.is_zero())
    }

    /// Replaces every shard's entries with `other`'s live ones, their expiries
    /// re-counted from this epoch (rounded up, so none ends sooner). Each shard is
    /// swapped whole under its write lock: a concurrent check sees the old entries or
    /// the new, never an empty shard.
    #[cfg(feature = "redis")]
    pub(super) fn replace_from(&self, other: &Table, now: Instant) {
        let now_ticks = other.now_ticks(now);
        let shift = |expires: u32| {
            if expires == NEVER {
                return NEVER;
            }
            let at = other.epoch + Duration::from_nanos(u64::from(expires) * (TICK_NANOS as u64));
            self.expiry(at, Duration::ZERO)
        };
        for index in 0..self.shards.len() {
            let mut theirs = std::mem::take(&mut *other.write(index));
            theirs.markers.retain(|expires| {
                let live = *expires > now_ticks;
                *expires = shift(*expires);
                live
            });
            theirs.subjects.retain(|mark| {
                let live = mark.expires > now_ticks;
                mark.expires = shift(mark.expires);
                live
            });
            let mut ours = self.write(index);
            *ours = theirs;
            self.count_subjects(index, &ours);
        }
    }
}
