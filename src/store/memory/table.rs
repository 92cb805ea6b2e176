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
//! - **256 shards**: the sweeper reclaims expired entries one shard at a time, so no
//!   write lock is held over more than 1/256th of the table (about 40k entries at
//!   ten million: well under a millisecond), and checks on other shards go on.
//! - **Expiry rounded up** to the next sixteenth of a second: a revocation may outlive
//!   its TTL by up to 62.5 ms, never fall short of it. An expiry beyond what 32 bits
//!   hold (8.5 years after the epoch) is kept for ever rather than cut short.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use crate::key::{KeyHasher, RevocationKey};

/// Sixteenths of a second: the unit of stored expiries.
const TICKS_PER_SEC: u64 = 16;
const TICK_NANOS: u128 = 1_000_000_000 / TICKS_PER_SEC as u128;
/// An expiry that never comes (one too large for 32 bits).
pub(super) const NEVER: u32 = u32::MAX;
const SHARDS: usize = 256;

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
}

impl Hash for ShortKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // The bits are SHA-256 output already: pass them through.
        state.write_u64(u64::from(self.0[0]) | (u64::from(self.0[1]) << 32));
    }
}

type Map<V> = HashMap<ShortKey, V, BuildHasherDefault<KeyHasher>>;

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
    /// Drops every entry expired at `now` (in ticks).
    pub(super) fn purge(&mut self, now: u32) {
        self.markers.retain(|_, expires| *expires > now);
        self.subjects.retain(|_, mark| mark.expires > now);
    }
}

/// The shards, and the clock their expiries count from.
#[derive(Debug)]
pub(super) struct Table {
    pub(super) epoch: Instant,
    shards: Box<[RwLock<Shard>]>,
}

impl Table {
    pub(super) fn new(epoch: Instant) -> Self {
        Self {
            epoch,
            shards: (0..SHARDS).map(|_| RwLock::new(Shard::default())).collect(),
        }
    }

    /// The shard of a key: chosen by bits the map's own hash does not use, so every
    /// shard's buckets stay evenly spread.
    pub(super) fn shard_of(&self, key: &RevocationKey) -> usize {
        usize::from(key.as_bytes()[8]) % SHARDS
    }

    pub(super) fn read(&self, shard: usize) -> RwLockReadGuard<'_, Shard> {
        // A panic while holding the lock cannot leave a shard half-updated in a way
        // that loses a revocation (each write is one insert), so poisoning is ignored.
        self.shards[shard].read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn write(&self, shard: usize) -> RwLockWriteGuard<'_, Shard> {
        self.shards[shard].write().unwrap_or_else(PoisonError::into_inner)
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

    /// Moves every live entry of `other` in, its expiries re-counted from this epoch
    /// (rounded up, so none ends sooner). Entries already here stay.
    #[cfg(feature = "redis")]
    pub(super) fn absorb(&self, other: &Table, now: Instant) {
        let now_ticks = other.now_ticks(now);
        let shift = |expires: u32| {
            if expires == NEVER {
                return NEVER;
            }
            let at = other.epoch + Duration::from_nanos(u64::from(expires) * (TICK_NANOS as u64));
            self.expiry(at, Duration::ZERO)
        };
        for index in 0..self.shards.len() {
            let theirs = std::mem::take(&mut *other.write(index));
            let mut ours = self.write(index);
            for (key, expires) in theirs.markers.into_iter().filter(|(_, e)| *e > now_ticks) {
                let expires = shift(expires);
                let entry = ours.markers.entry(key).or_insert(expires);
                *entry = (*entry).max(expires);
            }
            for (key, mark) in theirs.subjects.into_iter().filter(|(_, m)| m.expires > now_ticks) {
                let shifted = Mark {
                    issued_until: mark.issued_until,
                    expires: shift(mark.expires),
                };
                let entry = ours.subjects.entry(key).or_insert(shifted);
                entry.issued_until = entry.issued_until.max(shifted.issued_until);
                entry.expires = entry.expires.max(shifted.expires);
            }
        }
    }

    /// Drops every entry of every shard.
    #[cfg(feature = "redis")]
    pub(super) fn clear(&self) {
        for index in 0..self.shards.len() {
            *self.write(index) = Shard::default();
        }
    }
}
