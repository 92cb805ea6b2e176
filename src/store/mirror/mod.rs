//! [`MirrorStore`]: every revocation in local memory, kept in step with Redis.
//!
//! In this folder, by concern: `load/` (the first load, and reloading buckets that lost
//! their place), `follow/` (the background task following the change feeds, their
//! events, the wake-up channel), `write_back.rs` and `ledger/` (writing back what
//! Redis lost, and the full records that takes), `health.rs` (what the mirror reports).
//! May use: the Redis store (through its root re-exports) and the in-memory store (the
//! local copy). Used by: applications, as a [`RevocationStore`](super::RevocationStore).

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ::redis::Script;

use super::StoreError;
use super::memory::InMemoryStore;
use super::redis::{Kind, RedisStore, Targets};
use crate::store::key::RevocationKey;

mod checks_and_writes;
mod follow;
mod health;
mod ledger;
mod load;
mod refresh;
mod write_back;

pub use self::follow::DEFAULT_READ_COALESCING;
use self::follow::{FOLLOW_BLOCK, follow};
pub use self::health::MirrorHealth;
use self::ledger::Ledger;
use self::write_back::Pending;

/// How old the mirror's last word from Redis may be before checks go to Redis
/// directly, unless configured.
pub const DEFAULT_STALENESS_BOUND: Duration = Duration::from_secs(2);

/// `last_contact_ns` before the first complete read.
const NEVER: u64 = u64::MAX;

/// How many keys one `SCAN` step, and events one `XREAD`, bring at most.
const BATCH: usize = 1000;

/// A [`RedisStore`] with a local copy of every live revocation: checks are answered
/// from memory, with no network round trip, while the copy is in sync.
///
/// The revocation set is small (only tokens revoked within their lifetime), so each
/// replica can hold all of it. The mirror loads it at start (`SCAN` of the prefix on
/// every master, each step's records read by one script per bucket with their
/// remaining TTLs), then follows the change feeds every
/// [`RedisStore`] write appends to (one per bucket), each from the position noted
/// *before* the load, so nothing written meanwhile is missed. Events are idempotent and
/// numbered per feed; a gap in one feed (trimmed while the mirror was away) reloads that
/// bucket alone, adding what it holds to the copy.
///
/// The feeds keep a few minutes of events
/// ([`RedisStoreBuilder::feed_retention`](crate::store::RedisStoreBuilder::feed_retention)):
/// a mirror away for longer reloads the buckets it missed when it comes back. Under a
/// steady write rate a mirror configured to
/// ([`read_coalescing`](MirrorStoreBuilder::read_coalescing)) reads the feeds in
/// batches, at most once per interval, so that a fleet of mirrors costs Redis one read
/// per mirror per interval, not one per revocation.
///
/// On a single server one connection waits on every feed at once (`XREAD BLOCK`). On a
/// cluster, where one `XREAD` may only name streams of one slot, the mirror reads every
/// feed on a short tick (250 ms) over the cluster's connection, and in between reads a
/// bucket's feed as soon as a write announces it on the `{prefix}:wake` channel (one
/// pub/sub subscription on any node). No connection blocks, and there is none per
/// bucket.
/// A load on a cluster that overlaps a slot migration (a key may move from a master not
/// yet scanned to one already scanned) is done again once the slots stay put; checks go
/// to Redis meanwhile.
///
/// It never answers from a stale copy: during start-up and reloads, and whenever its
/// last word from Redis is older than the staleness bound (Redis down, network cut),
/// checks go to Redis directly, and so follow the layer's failure policy when Redis
/// does not answer. Revocations it already knows keep being refused all the while.
/// Writes go to Redis and are applied locally at once. State changes are logged
/// through `tracing`; [`health`](Self::health) serves a readiness probe.
///
/// A lifted revocation ([`RedisStore::unrevoke_token`]) is forgotten when its `del`
/// event is read. A reload only ever adds, so a `del` event lost in a gap (trimmed
/// away while the mirror was behind) leaves the mirror refusing that token until its
/// record would have expired: the safe side, but not what Redis answers. Writers from
/// other languages must write a record and its event atomically (as the crate's
/// scripts do): a reload that sees an event's sequence number must also see its record.
///
/// Memory: 44–47 bytes per live revocation with write-back on (the local copy keeps
/// each record in full, once, for the checks and for writing back), 34 without.
/// 1M revocations load from Redis in under a second on a 2-core machine (see
/// BENCHMARKS.md).
///
/// Cheap to clone. The background task that follows the feed stops when the last
/// clone is dropped.
///
/// ```no_run
/// # async fn run() -> Result<(), tower_jwt_revoke::store::StoreError> {
/// use std::time::Duration;
/// use tower_jwt_revoke::store::{MirrorStore, RedisStore};
///
/// let mirror = MirrorStore::builder(RedisStore::from_url("redis://127.0.0.1:6379")?)
///     .staleness_bound(Duration::from_secs(2))
///     .start();
/// mirror.wait_until_synced(Duration::from_secs(10)).await?; // before taking traffic
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct MirrorStore {
    shared: Arc<Shared>,
}

struct Shared {
    redis: RedisStore,
    /// Replaced in place on a reload, so checks never take a second lock.
    local: InMemoryStore,
    synced: AtomicBool,
    /// Nanoseconds from `epoch` to the last complete read of the feed, or [`NEVER`].
    last_contact_ns: AtomicU64,
    epoch: Instant,
    staleness_bound_ns: u64,
    read_coalescing: Duration,
    progress: Mutex<Progress>,
    position_script: Script,
    /// Every live record in full, for writing back what Redis loses; `None` with
    /// write-back off.
    ledger: Option<Arc<Ledger>>,
    /// Lost buckets waiting for the write-back task.
    pending: Arc<Pending>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Progress {
    applied_seq: u64,
    loads: u64,
    bucket_reloads: u64,
    written_back: u64,
}

/// Builds a [`MirrorStore`]; see [`MirrorStore::builder`].
#[derive(Debug)]
#[must_use]
pub struct MirrorStoreBuilder {
    redis: RedisStore,
    staleness_bound: Duration,
    write_back: bool,
    read_coalescing: Duration,
}

impl MirrorStoreBuilder {
    /// How old the last word from Redis may be before checks go to Redis directly
    /// (default [`DEFAULT_STALENESS_BOUND`]). It bounds how late a revocation made on
    /// another replica can be seen here.
    pub fn staleness_bound(mut self, bound: Duration) -> Self {
        self.staleness_bound = bound.max(FOLLOW_BLOCK * 2);
        self
    }

    /// How long the mirror waits, after a read of the feeds that brought events, before
    /// it reads them again (default [`DEFAULT_READ_COALESCING`]: zero, not at all).
    /// Under a steady write rate each read then brings the events of that long a time
    /// at once, rather than every mirror reading every revocation by itself: with tens
    /// to hundreds of mirrors on one Redis, those reads are most of what Redis does
    /// (see the README's fleet sizing; a few milliseconds is enough). An event after a
    /// quiet spell is still read at once.
    ///
    /// What it costs: up to the interval more before a revocation made elsewhere is
    /// refused here, and as much longer during which a revocation lives only in Redis
    /// (no mirror has applied it yet, so none can write it back if Redis loses it).
    pub fn read_coalescing(mut self, interval: Duration) -> Self {
        self.read_coalescing = interval.min(FOLLOW_BLOCK);
        self
    }

    /// Whether the mirror writes back into Redis the revocations Redis lost (on by
    /// default). When the store notices Redis lost a bucket's data (see
    /// [`RedisStore::data_loss`]), the mirror writes every live record it holds for that
    /// bucket back, with the time it has left: never one removed on purpose (an
    /// unrevoke), nor one that expired meanwhile. Writes only raise a TTL or a watermark,
    /// so several mirrors writing back the same records converge. Its local copy keeps
    /// each record in full for that (12 to 20 bytes per live revocation more); turn it
    /// off to save them where Redis is persistent and failovers are acknowledged.
    pub fn write_back(mut self, on: bool) -> Self {
        self.write_back = on;
        self
    }

    /// Starts the mirror: loads in the background and follows the feed. Must be
    /// called inside a Tokio runtime. Until the first load completes, checks go to
    /// Redis.
    pub fn start(self) -> MirrorStore {
        // With write-back on, the copy keeps full records, and the ledger reads them.
        let local = if self.write_back {
            InMemoryStore::with_full_records()
        } else {
            InMemoryStore::new()
        };
        let ledger = self
            .write_back
            .then(|| Arc::new(Ledger::new(local.clone(), self.redis.buckets())));
        let shared = Arc::new(Shared {
            redis: self.redis,
            local,
            synced: AtomicBool::new(false),
            last_contact_ns: AtomicU64::new(NEVER),
            epoch: Instant::now(),
            staleness_bound_ns: u64::try_from(self.staleness_bound.as_nanos()).unwrap_or(u64::MAX),
            read_coalescing: self.read_coalescing,
            progress: Mutex::new(Progress::default()),
            position_script: Script::new(load::POSITION),
            ledger,
            pending: Arc::default(),
        });
        tokio::spawn(follow(Arc::downgrade(&shared)));
        if shared.ledger.is_some() {
            tokio::spawn(write_back::write_back(
                Arc::downgrade(&shared),
                Arc::clone(&shared.pending),
            ));
        }
        MirrorStore { shared }
    }
}

impl fmt::Debug for MirrorStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MirrorStore")
            .field("redis", &self.shared.redis)
            .field("health", &self.health())
            .finish()
    }
}

impl MirrorStore {
    /// Starts building a mirror of `redis`.
    pub fn builder(redis: RedisStore) -> MirrorStoreBuilder {
        MirrorStoreBuilder {
            redis,
            staleness_bound: DEFAULT_STALENESS_BOUND,
            write_back: true,
            read_coalescing: DEFAULT_READ_COALESCING,
        }
    }

    /// A mirror of `redis` with the default staleness bound, started.
    pub fn start(redis: RedisStore) -> Self {
        Self::builder(redis).start()
    }

    /// The Redis store behind the mirror.
    pub fn redis(&self) -> &RedisStore {
        &self.shared.redis
    }

    /// Waits until checks are answered locally, or fails after `timeout`.
    pub async fn wait_until_synced(&self, timeout: Duration) -> Result<(), StoreError> {
        // `None`: a timeout too long to add up (`Duration::MAX`) is no deadline.
        let deadline = Instant::now().checked_add(timeout);
        while !self.shared.fresh() {
            if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                return Err(StoreError::msg("the mirror did not get in sync in time"));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }
}

impl Shared {
    fn local(&self) -> &InMemoryStore {
        &self.local
    }

    /// Nanoseconds from `epoch` to `at`.
    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    fn since_contact(&self) -> Option<Duration> {
        match self.last_contact_ns.load(Ordering::Acquire) {
            NEVER => None,
            at => Some(Duration::from_nanos(
                self.nanos(Instant::now()).saturating_sub(at),
            )),
        }
    }

    fn touch_at(&self, at: Instant) {
        self.last_contact_ns.store(self.nanos(at), Ordering::Release);
    }

    /// Whether the local copy may answer: loaded, following, and recently in touch.
    fn fresh(&self) -> bool {
        self.fresh_at(Instant::now())
    }

    fn fresh_at(&self, now: Instant) -> bool {
        let last = self.last_contact_ns.load(Ordering::Acquire);
        self.synced.load(Ordering::Acquire)
            && last != NEVER
            && self.nanos(now).saturating_sub(last) <= self.staleness_bound_ns
    }

    /// Notes a write this mirror made in its ledger at once, as its feed event would
    /// later: a loss before the event is read must not leave it out of the write-back.
    fn note_own(&self, targets: Targets, kind: Kind, hash: &RevocationKey, value: u64, ttl: Duration) {
        let Some(ledger) = &self.ledger else { return };
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let expires_ms = ledger::now_ms().saturating_add(ttl_ms);
        let buckets = match targets {
            Targets::One(bucket) => bucket..bucket + 1,
            Targets::Every => 0..self.redis.buckets(),
        };
        let mut noting = ledger.noting();
        for bucket in buckets {
            noting.record(bucket, kind, *hash, value, expires_ms);
        }
    }

    fn set_synced(&self, synced: bool) {
        if self.synced.swap(synced, Ordering::AcqRel) != synced {
            if synced {
                tracing::info!(prefix = %self.redis.prefix(), entries = self.local().len(), "revocation mirror in sync");
            } else {
                tracing::warn!(prefix = %self.redis.prefix(), "revocation mirror out of sync; checks go to Redis");
            }
        }
    }
}
