//! [`InMemoryStore`]: revocations in this process's memory, 12 bytes each (see
//! `table.rs` for the layout and what truncating keys costs).
//!
//! In this folder: the store as a `RevocationStore` (`checks_and_writes.rs`), the sharded
//! table (`table.rs`, `map.rs`), its writes (`write.rs`),
//! forgetting a lifted marker (`forget.rs`), the tags a mirror's records carry (`tag.rs`)
//! and full records for a mirror with write-back on (`full_records/`). May use: the keys
//! and what a check asks. Used by: applications, and the mirror (its local copy).

mod checks_and_writes;
#[cfg(feature = "redis")]
mod forget;
#[cfg(feature = "redis")]
mod full_records;
mod map;
mod table;
mod tag;
mod write;

#[cfg(feature = "redis")]
pub(crate) use self::tag::{Buckets, Tag};
#[cfg(feature = "redis")]
pub(crate) use self::write::Writes;

use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

#[cfg(any(feature = "redis", test))]
use self::table::NEVER;
use self::table::{Sweep, Table};
#[cfg(not(feature = "redis"))]
use self::tag::Tag;
use super::{Lookup, RevocationQuery, Watchers};
use crate::store::key::RevocationKey;

/// How often the background sweeper reclaims expired entries, unless configured.
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(10);
/// How often the store's own clock, which checks read, is advanced: an entry may be
/// honoured this much past its expiry (it only ever refuses more).
const CLOCK_PERIOD: Duration = Duration::from_millis(250);

/// Revocations kept in this process's memory.
///
/// For a single process and for tests: replicas do not see each other's revocations
/// (use `RedisStore`, feature `redis`, for that). Cheap to clone; clones share the
/// same entries.
///
/// Entries expire by themselves. Expired entries are reclaimed by a background task
/// (started on the first write, inside the Tokio runtime; it stops when the last clone
/// of the store is dropped), a slice of one of 256 shards at a time, so memory stays
/// bounded by the live revocations and no reclaim holds up a check for more than a few
/// microseconds.
///
/// A live revocation takes 15 to 30 bytes. Keys are kept as their first 64 bits: two
/// keys sharing them collide, which can only ever *refuse* a good token (with ten
/// million live revocations, about once in 2 × 10¹² checks), never accept a revoked
/// one. Expiries are kept to the next sixteenth of a second, rounded up.
#[derive(Clone, Debug)]
pub struct InMemoryStore {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    table: Table,
    /// The global watermark and its expiry, packed `issued_until << 32 | expires`, so a
    /// check reads it without a lock. Zero: none.
    global: AtomicU64,
    /// The global watermark's [`Tag`] bits (full records only).
    global_tag: AtomicU16,
    /// Whether the table keeps full records (a mirror with write-back on).
    full_records: bool,
    sweep_interval: Duration,
    /// The background ticker and sweeper, restarted by a write when the runtime it
    /// ran on is gone.
    sweeper: parking_lot::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Open streams waiting for their tokens' revocation, woken by the writes.
    watchers: Watchers,
}

impl Default for InMemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl InMemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::with_sweep_interval(DEFAULT_SWEEP_INTERVAL)
    }

    /// An empty store whose background sweeper runs every `interval`.
    pub fn with_sweep_interval(interval: Duration) -> Self {
        Self::with_table(Table::new(Instant::now()), false, interval)
    }

    /// An empty store that keeps full records, each with its [`Tag`]: a mirror with
    /// write-back on, whose ledger reads them (`full.rs`).
    #[cfg(feature = "redis")]
    pub(crate) fn with_full_records() -> Self {
        Self::with_table(
            Table::with_full_records(Instant::now()),
            true,
            DEFAULT_SWEEP_INTERVAL,
        )
    }

    /// An empty store of the same layout as this one (a mirror's load).
    #[cfg(feature = "redis")]
    pub(crate) fn empty_like(&self) -> Self {
        if self.shared.full_records {
            Self::with_full_records()
        } else {
            Self::with_sweep_interval(self.shared.sweep_interval)
        }
    }

    fn with_table(table: Table, full_records: bool, interval: Duration) -> Self {
        crate::verify::crypto::install_crypto_provider();
        Self {
            shared: Arc::new(Shared {
                table,
                global: AtomicU64::new(0),
                global_tag: AtomicU16::new(Tag::NONE.bits()),
                full_records,
                sweep_interval: interval.max(Duration::from_millis(1)),
                sweeper: parking_lot::Mutex::new(None),
                watchers: Watchers::new(),
            }),
        }
    }

    /// How many entries are held, expired ones not yet reclaimed included.
    pub fn len(&self) -> usize {
        let table = &self.shared.table;
        let shards: usize = (0..table.shard_count())
            .map(|index| {
                let shard = table.read(index);
                shard.markers.len() + shard.subjects.len()
            })
            .sum();
        shards + usize::from(self.shared.global.load(Ordering::Acquire) != 0)
    }

    /// Whether the store holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reclaims every expired entry now.
    pub fn purge_expired(&self) {
        self.purge(Instant::now());
    }

    /// How much longer the token revocation under `token` lasts, if it is live.
    pub fn token_ttl(&self, token: &RevocationKey) -> Option<Duration> {
        self.marker_ttl(token)
    }

    /// How much longer the session revocation under `session` lasts, if it is live.
    pub fn session_ttl(&self, session: &RevocationKey) -> Option<Duration> {
        self.marker_ttl(session)
    }

    /// The subject's live watermark and how much longer it lasts.
    pub fn subject_watermark(&self, subject: &RevocationKey) -> Option<(u64, Duration)> {
        let table = &self.shared.table;
        let mark = table.read(table.shard_of(subject)).subjects.get(subject)?;
        Some((
            u64::from(mark.issued_until),
            table.left(mark.expires, Instant::now())?,
        ))
    }

    fn marker_ttl(&self, key: &RevocationKey) -> Option<Duration> {
        let table = &self.shared.table;
        let expires = table.read(table.shard_of(key)).markers.get(key)?;
        table.left(expires, Instant::now())
    }

    /// Answers a query without awaiting anything, on the store's own clock (see
    /// `Table::clock`): no system clock read per check.
    pub(crate) fn lookup_now(&self, query: &RevocationQuery) -> Lookup {
        let found = self.lookup_ticks(query, self.shared.table.clock());
        if found == Lookup::default() {
            return found;
        }
        // The store's clock may lag (its ticker stopped with a runtime, say): what it
        // finds is confirmed against the system clock, so a lagging clock never keeps
        // an expired revocation alive. Only hits pay for it.
        self.lookup_ticks(query, self.shared.table.tick(Instant::now()))
    }

    /// Answers a query as of `now` (a mirror's clock).
    #[cfg(feature = "redis")]
    pub(crate) fn lookup_at(&self, query: &RevocationQuery, now: Instant) -> Lookup {
        self.lookup_ticks(query, self.shared.table.tick(now))
    }

    /// Answers a query as of `now` in ticks: one read lock per key asked about, no
    /// allocation.
    fn lookup_ticks(&self, query: &RevocationQuery, now: u32) -> Lookup {
        let table = &self.shared.table;
        let marker = |key: &RevocationKey| {
            table
                .read(table.shard_of(key))
                .markers
                .get(key)
                .is_some_and(|expires| expires > now)
        };
        let subject_watermark = query.subject.as_ref().and_then(|subject| {
            let shard = table.shard_of(subject);
            if !table.may_hold_subjects(shard) {
                return None;
            }
            table
                .read(shard)
                .subjects
                .get(subject)
                .filter(|mark| mark.expires > now)
                .map(|mark| u64::from(mark.issued_until))
        });
        let (issued_until, expires) = unpack(self.shared.global.load(Ordering::Acquire));
        Lookup {
            token_revoked: marker(&query.token) || query.token_for_subject().is_some_and(|key| marker(&key)),
            session_revoked: query.session.as_ref().is_some_and(marker),
            subject_watermark,
            global_watermark: (expires > now).then_some(u64::from(issued_until)),
        }
    }

    /// Takes over every entry of `other`, dropping this store's own (a mirror's reload).
    #[cfg(feature = "redis")]
    pub(crate) fn replace_with(&self, other: InMemoryStore) {
        let table = &self.shared.table;
        table.tick(Instant::now());
        table.replace_from(&other.shared.table, Instant::now());
        // The global watermark's expiry counts from `other`'s epoch: re-count it.
        let (issued_until, expires) = unpack(other.shared.global.load(Ordering::Acquire));
        let global = if expires == 0 {
            0
        } else if expires == NEVER {
            pack(issued_until, NEVER)
        } else {
            let left = other.shared.table.left(expires, Instant::now());
            left.map_or(0, |left| pack(issued_until, table.expiry(Instant::now(), left)))
        };
        self.shared.global.store(global, Ordering::Release);
        let tag = other.shared.global_tag.load(Ordering::Acquire);
        self.shared.global_tag.store(tag, Ordering::Release);
        // Anything may have arrived with the new content.
        self.shared.watchers.touched_all();
    }

    fn purge(&self, now: Instant) {
        let now = self.shared.table.tick(now);
        for index in 0..self.shared.table.shard_count() {
            self.purge_shard(index, now);
        }
        self.purge_global(now);
    }

    /// [`InMemoryStore::purge`] on a runtime: it lets other tasks run between shards, so
    /// a sweep of a large table never holds up a worker thread for long (160 ms at ten
    /// million entries, where a shard takes under a millisecond).
    async fn purge_yielding(&self, now: Instant) {
        let now = self.shared.table.tick(now);
        for index in 0..self.shared.table.shard_count() {
            self.purge_shard(index, now);
            tokio::task::yield_now().await;
        }
        self.purge_global(now);
    }

    /// Reclaims one shard's expired entries, a slice at a time (see `Shard::purge_slice`).
    fn purge_shard(&self, index: usize, now: u32) {
        let table = &self.shared.table;
        let mut next = Some(Sweep::START);
        while let Some(from) = next {
            let mut shard = table.write(index);
            next = shard.purge_slice(from, now);
            table.count_subjects(index, &shard);
        }
    }

    fn purge_global(&self, now: u32) {
        let _ = self
            .shared
            .global
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |packed| {
                let (_, expires) = unpack(packed);
                (packed != 0 && expires <= now).then_some(0)
            });
    }

    fn start_sweeper(&self) {
        let mut sweeper = self.shared.sweeper.lock();
        if sweeper.as_ref().is_some_and(|task| !task.is_finished()) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // Outside a runtime: try again on the next write.
            return;
        };
        let weak: Weak<Shared> = Arc::downgrade(&self.shared);
        let interval = self.shared.sweep_interval;
        *sweeper = Some(runtime.spawn(async move {
            let mut last_sweep = Instant::now();
            loop {
                // Keeps the checks' clock within a tick period of the system clock.
                tokio::time::sleep(CLOCK_PERIOD.min(interval)).await;
                let Some(shared) = weak.upgrade() else { break };
                let now = Instant::now();
                shared.table.tick(now);
                if now.duration_since(last_sweep) >= interval {
                    InMemoryStore { shared }.purge_yielding(now).await;
                    last_sweep = now;
                }
            }
        }));
    }
}

/// Watermarks in 32 bits: Unix seconds fit until 2106; later ones are kept as the
/// largest value, which refuses more, never less.
fn seconds(issued_until: u64) -> u32 {
    u32::try_from(issued_until).unwrap_or(u32::MAX)
}

fn pack(issued_until: u32, expires: u32) -> u64 {
    (u64::from(issued_until) << 32) | u64::from(expires)
}

fn unpack(packed: u64) -> (u32, u32) {
    ((packed >> 32) as u32, packed as u32)
}

#[cfg(test)]
mod tests;
