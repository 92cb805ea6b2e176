//! Data-loss detection: every bucket carries an epoch marker, `{prefix:bB}:epoch`, that
//! the store reads every [`LOSS_CHECK_INTERVAL`]; a marker that went missing or changed
//! means Redis lost that bucket's data (restarted without persistence, flushed, or a
//! replica that never had the marker promoted), and with it, revocations.
//!
//! A loss is only visible to a store that knew the marker before it. So markers exist
//! before the first revocation: a store *registers* the blocklist when its watch first
//! reaches Redis (the key layout, and every bucket's marker: `epoch.lua`, one atomic
//! script per bucket, so concurrent stores agree on one value), every write creates its
//! bucket's marker when missing in the same script (`scripts/feed.lua`), and the watch
//! creates again, at once, a marker it found missing. The value comes from the server's
//! clock; the marker has no TTL and nothing else writes it. A store that never saw a
//! bucket's marker (it started after the loss) adopts the one it finds: it has nothing
//! to compare.
//!
//! The epoch catches what is lost whole. A snapshot reloaded, or a replica promoted,
//! with only the *latest* writes missing keeps the epoch, but not the bucket's feed
//! counter: the same read returns it, and a counter lower than one seen before under
//! the same marker is a loss too (counters only ever grow). A
//! [`MirrorStore`](crate::store::MirrorStore) also notices it from its change feed (an
//! event numbered at or below one it applied).
//!
//! The watch has a connection of its own: a slow read (a loaded machine, a Redis busy
//! with a load) delays the watch and nothing else; it never drops, nor queues behind
//! it, the connection that checks and revocations share. Each tick reads every marker
//! and counter with plain `MGET`s (one on a server; one per bucket, all at once, on a
//! cluster); a script runs only where a marker is missing.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use ::redis::Script;
use futures_util::future::join_all;

use crate::observe::telemetry;
use crate::store::StoreError;
use crate::store::redis::RedisStore;
use crate::store::redis::connect::conn::Conn;
use crate::store::redis::read::scan::bounded;

/// How often a store reads the epoch markers: well within a mirror's default staleness
/// bound, so a loss is noticed before the copy would count as stale anyway.
pub const LOSS_CHECK_INTERVAL: Duration = Duration::from_millis(500);

const EPOCH: &str = include_str!("epoch.lua");

/// What a store noticed Redis lose, for health and dashboards
/// ([`RedisStore::data_loss`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DataLoss {
    /// How many times data loss was detected since the store started (each time one or
    /// more buckets at once).
    pub detected: u64,
    /// How long ago the last one was, if any.
    pub since_last: Option<Duration>,
    /// Revocations mirrors of this store wrote back into Redis since it started.
    pub written_back: u64,
}

/// The epoch markers a store knows, and what it noticed.
pub(crate) struct LossWatch {
    script: Script,
    known: Mutex<Vec<Known>>,
    detected: AtomicU64,
    written_back: AtomicU64,
    last: Mutex<Option<Instant>>,
    /// Buckets found lost and not yet taken by a mirror to write back.
    lost: Mutex<BTreeSet<u32>>,
    /// When each bucket's loss was last counted: the same loss is often seen twice, by
    /// the epoch watch and by a mirror's feed, a moment apart.
    counted: Mutex<Vec<Option<Instant>>>,
    /// The highest feed event each bucket's mirror applied: a counter found below it
    /// (under the same marker) is a loss even when this watch never read the counter
    /// that high (writes made, and lost, between two of its reads: a replica promoted
    /// without the latest writes, whose own marker it does have).
    applied: Vec<AtomicU64>,
}

/// Within this long of a bucket's counted loss, seeing it lost again is taken for the
/// same loss seen a second way: written back again (harmless), not counted again.
const SAME_LOSS: Duration = Duration::from_secs(2);

impl LossWatch {
    pub(crate) fn new(buckets: u32) -> Self {
        Self {
            script: Script::new(EPOCH),
            known: Mutex::new(vec![Known::default(); usize::try_from(buckets).unwrap_or(1)]),
            detected: AtomicU64::new(0),
            written_back: AtomicU64::new(0),
            last: Mutex::new(None),
            lost: Mutex::new(BTreeSet::new()),
            counted: Mutex::new(vec![None; usize::try_from(buckets).unwrap_or(1)]),
            applied: (0..buckets).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub(crate) fn report(&self) -> DataLoss {
        DataLoss {
            detected: self.detected.load(Ordering::Acquire),
            since_last: lock(&self.last).map(|at| at.elapsed()),
            written_back: self.written_back.load(Ordering::Acquire),
        }
    }

    /// What each bucket's mirror has applied so far: taken *before* the counters are
    /// read, since a mirror that applies events written after the read (its feed reply
    /// can come first) would otherwise make a growing counter look like one that went
    /// backwards. Every mirror of a fleet would then write back all it holds.
    fn applied_now(&self) -> Vec<u64> {
        self.applied
            .iter()
            .map(|applied| applied.load(Ordering::Acquire))
            .collect()
    }

    /// Compares what Redis answered for `bucket` (`epoch` `None`: no marker, the bucket
    /// holds nothing; `seq`: its feed counter) with what was known, and with what its
    /// mirror had `applied` before the read; answers whether that is a loss: the marker
    /// went missing or changed, or the counter went backwards under the same marker
    /// (counters only ever grow).
    fn compare(&self, bucket: u32, epoch: Option<String>, seq: u64, applied_before: u64) -> bool {
        let mut known = lock(&self.known);
        let Some(slot) = known.get_mut(usize::try_from(bucket).unwrap_or(usize::MAX)) else {
            return false;
        };
        let applied = self.applied.get(usize::try_from(bucket).unwrap_or(usize::MAX));
        let floor = slot.seq.max(applied_before);
        let lost = slot.epoch.is_some() && (slot.epoch != epoch || seq < floor);
        slot.seq = if lost { seq } else { slot.seq.max(seq) };
        slot.epoch = epoch;
        if lost && let Some(applied) = applied {
            // The mirror reloads the bucket from where its counter stands now.
            applied.store(0, Ordering::Release);
        }
        lost
    }

    /// Notes that a mirror applied `bucket`'s events up to `seq`.
    fn applied(&self, bucket: u32, seq: u64) {
        if let Some(applied) = self.applied.get(usize::try_from(bucket).unwrap_or(usize::MAX)) {
            applied.fetch_max(seq, Ordering::AcqRel);
        }
    }

    /// Forgets what a mirror applied of `buckets`: it lost its place in them, and
    /// reloads them from where their counters stand now.
    fn reloading(&self, buckets: &[u32]) {
        for &bucket in buckets {
            if let Some(applied) = self.applied.get(usize::try_from(bucket).unwrap_or(usize::MAX)) {
                applied.store(0, Ordering::Release);
            }
        }
    }

    /// Notes a loss of `buckets`, found by the store or by a mirror's feed.
    pub(crate) fn lost(&self, buckets: &[u32], store: &'static str, prefix: &str, why: &'static str) {
        if buckets.is_empty() {
            return;
        }
        lock(&self.lost).extend(buckets.iter().copied());
        let now = Instant::now();
        let mut new = false;
        for &bucket in buckets {
            if let Some(counted) = lock(&self.counted).get_mut(usize::try_from(bucket).unwrap_or(usize::MAX))
            {
                new |= !counted.is_some_and(|at| now.saturating_duration_since(at) < SAME_LOSS);
                *counted = Some(now);
            }
        }
        if !new {
            tracing::debug!(%prefix, buckets = ?buckets, why, "the same data loss seen again");
            return;
        }
        *lock(&self.last) = Some(now);
        let detected = self.detected.fetch_add(1, Ordering::AcqRel) + 1;
        telemetry::data_loss(store);
        tracing::error!(
            %prefix,
            buckets = ?buckets,
            why,
            detected,
            "Redis lost revocations: tokens they refused may be let in again; mirrors that hold \
             a copy write it back"
        );
    }
}

/// What a store last saw of a bucket: its epoch marker, and the highest feed counter
/// under it.
#[derive(Debug, Clone, Default)]
struct Known {
    epoch: Option<String>,
    seq: u64,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section only reads or replaces plain values.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl RedisStore {
    /// Starts the store's watch (the persistence check, the epoch markers) when a Tokio
    /// runtime is there to run it; it ends with the last clone of the store.
    pub(crate) fn watch_in_background(&self) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(super::watch::watch(
                Arc::downgrade(&self.shared),
                self.shared.detect_data_loss,
            ));
        }
    }

    /// What this store noticed Redis lose since it started (see the `Durability`
    /// section of the README).
    pub fn data_loss(&self) -> DataLoss {
        self.shared.loss.report()
    }

    /// The buckets found lost since the last call, for a mirror to write back (and
    /// reload: what it applied of them no longer counts).
    pub(crate) fn take_lost_buckets(&self) -> Vec<u32> {
        let lost: Vec<u32> = std::mem::take(&mut *lock(&self.shared.loss.lost))
            .into_iter()
            .collect();
        self.shared.loss.reloading(&lost);
        lost
    }

    /// Notes that a mirror of this store applied `bucket`'s feed up to event `seq`, so
    /// that a counter found lower later is known for a loss.
    pub(crate) fn note_applied(&self, bucket: u32, seq: u64) {
        self.shared.loss.applied(bucket, seq);
    }

    /// Notes a loss a mirror found in the change feed (a sequence number that went
    /// backwards).
    pub(crate) fn report_loss(&self, buckets: &[u32], why: &'static str) {
        self.note_loss(buckets, "mirror", why);
    }

    /// Notes a loss of `buckets`; the key layout went with the data, so the next write
    /// records it again.
    fn note_loss(&self, buckets: &[u32], store: &'static str, why: &'static str) {
        if !buckets.is_empty() {
            self.shared.layout_recorded.store(false, Ordering::Relaxed);
        }
        self.shared.loss.lost(buckets, store, self.prefix(), why);
    }

    /// Counts revocations a mirror wrote back.
    pub(crate) fn count_written_back(&self, records: u64) {
        self.shared.loss.written_back.fetch_add(records, Ordering::AcqRel);
        telemetry::written_back(records);
    }

    /// Records the blocklist's key layout (unless recorded): with the epoch markers the
    /// first [`check_epochs`](Self::check_epochs) creates, what registers a blocklist.
    pub(super) async fn register(&self, connection: &mut Conn, timeout: Duration) -> Result<(), StoreError> {
        let set = self.shared.connection.layout().record();
        bounded(timeout, set.query_async::<Option<String>>(connection)).await?;
        self.shared.layout_recorded.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Reads every bucket's epoch marker and feed counter, creating the markers that are
    /// missing, and notes a loss where one changed.
    pub(super) async fn check_epochs(
        &self,
        connection: &mut Conn,
        timeout: Duration,
    ) -> Result<(), StoreError> {
        let schema = self.schema();
        let watch = &self.shared.loss;
        let applied = watch.applied_now();
        let mut found = super::watch::read_markers(connection, schema, timeout).await?;
        let missing: Vec<u32> = (0..schema.buckets())
            .filter(|&bucket| found[bucket as usize].0.is_none())
            .collect();
        if !missing.is_empty() {
            let creations = missing.iter().map(|&bucket| {
                let mut invocation = watch.script.prepare_invoke();
                invocation.key(schema.epoch(bucket)).key(schema.feed_seq(bucket));
                let mut connection = connection.clone();
                async move {
                    let (epoch, seq): (Option<String>, Option<u64>) =
                        bounded(timeout, invocation.invoke_async(&mut connection)).await?;
                    Ok::<_, StoreError>((bucket, epoch, seq.unwrap_or(0)))
                }
            });
            for created in join_all(creations).await {
                let (bucket, epoch, seq) = created?;
                found[bucket as usize] = (epoch, seq);
            }
            // The layout went with the markers (or was never recorded): again.
            self.register(connection, timeout).await?;
        }
        let lost: Vec<u32> = found
            .into_iter()
            .zip(0..)
            .filter_map(|((epoch, seq), bucket)| {
                let applied = applied.get(bucket as usize).copied().unwrap_or(0);
                watch.compare(bucket, epoch, seq, applied).then_some(bucket)
            })
            .collect();
        self.note_loss(
            &lost,
            "redis",
            "an epoch marker went missing or changed, or a feed counter went backwards",
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::LossWatch;

    fn marker() -> Option<String> {
        Some("epoch-1".to_owned())
    }

    /// A mirror that reads events written after the watch's read (its feed reply came
    /// first) must not make the counter the watch read look like one gone backwards: at
    /// 50 mirrors and more that false loss made every mirror write back all it held.
    #[test]
    fn events_applied_after_the_read_are_not_a_loss() {
        let watch = LossWatch::new(1);
        assert!(!watch.compare(0, marker(), 10, 0));
        let applied_before = watch.applied_now()[0];
        watch.applied(0, 15); // read by a mirror while the watch's reply was on its way
        assert!(!watch.compare(0, marker(), 12, applied_before));
    }

    #[test]
    fn a_counter_below_what_was_applied_before_the_read_is_a_loss() {
        let watch = LossWatch::new(1);
        assert!(!watch.compare(0, marker(), 10, 0));
        watch.applied(0, 15);
        let applied_before = watch.applied_now()[0];
        // A replica promoted without events 13 to 15, under the same marker.
        assert!(watch.compare(0, marker(), 12, applied_before));
    }

    #[test]
    fn a_marker_gone_or_changed_is_a_loss() {
        let watch = LossWatch::new(1);
        assert!(!watch.compare(0, marker(), 10, 0));
        assert!(watch.compare(0, None, 0, 0));
        assert!(
            !watch.compare(0, marker(), 1, 0),
            "a new marker is known from now on"
        );
        assert!(watch.compare(0, Some("epoch-2".to_owned()), 40, 0));
    }
}
