//! Data-loss detection: every bucket carries an epoch marker, `{prefix:bB}:epoch`, that
//! the store reads every [`LOSS_CHECK_INTERVAL`]; a marker that went missing or changed
//! means Redis lost that bucket's data (restarted without persistence, flushed, or a
//! replica that never had the marker promoted), and with it, revocations.
//!
//! The marker is created by whichever store finds it missing first in a bucket that
//! holds anything (`epoch.lua`: one atomic script per bucket, so concurrent stores agree
//! on one value), from the server's clock. It has no TTL and nothing else writes it. A
//! store that never saw a bucket's marker (it started after the loss) adopts the one it
//! finds: it has nothing to compare.
//!
//! The epoch catches what is lost whole. A snapshot reloaded, or a replica promoted,
//! with only the *latest* writes missing keeps the epoch, but not the bucket's feed
//! counter: the same script reads it, and a counter lower than one seen before under the
//! same marker is a loss too (counters only ever grow). A
//! [`MirrorStore`](crate::store::MirrorStore) also notices it from its change feed (an
//! event numbered at or below one it applied).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use ::redis::Script;
use futures_util::future::join_all;

use super::command::Budget;
use super::{RedisStore, Shared};
use crate::telemetry;

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
pub(super) struct LossWatch {
    script: Script,
    known: Mutex<Vec<Known>>,
    detected: AtomicU64,
    written_back: AtomicU64,
    last: Mutex<Option<Instant>>,
    /// Buckets found lost and not yet taken by a mirror to write back.
    lost: Mutex<BTreeSet<u32>>,
}

impl LossWatch {
    pub(super) fn new(buckets: u32) -> Self {
        Self {
            script: Script::new(EPOCH),
            known: Mutex::new(vec![Known::default(); usize::try_from(buckets).unwrap_or(1)]),
            detected: AtomicU64::new(0),
            written_back: AtomicU64::new(0),
            last: Mutex::new(None),
            lost: Mutex::new(BTreeSet::new()),
        }
    }

    pub(super) fn report(&self) -> DataLoss {
        DataLoss {
            detected: self.detected.load(Ordering::Acquire),
            since_last: lock(&self.last).map(|at| at.elapsed()),
            written_back: self.written_back.load(Ordering::Acquire),
        }
    }

    /// Compares what Redis answered for `bucket` (`epoch` `None`: no marker, the bucket
    /// holds nothing; `seq`: its feed counter) with what was known; answers whether
    /// that is a loss: the marker went missing or changed, or the counter went
    /// backwards under the same marker (counters only ever grow).
    fn compare(&self, bucket: u32, epoch: Option<String>, seq: u64) -> bool {
        let mut known = lock(&self.known);
        let Some(slot) = known.get_mut(usize::try_from(bucket).unwrap_or(usize::MAX)) else {
            return false;
        };
        let lost = slot.epoch.is_some() && (slot.epoch != epoch || seq < slot.seq);
        slot.seq = if lost { seq } else { slot.seq.max(seq) };
        slot.epoch = epoch;
        lost
    }

    /// Notes a loss of `buckets`, found by the store or by a mirror's feed.
    pub(super) fn lost(&self, buckets: &[u32], store: &'static str, prefix: &str, why: &'static str) {
        if buckets.is_empty() {
            return;
        }
        lock(&self.lost).extend(buckets.iter().copied());
        *lock(&self.last) = Some(Instant::now());
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
    pub(super) fn watch_in_background(&self) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(watch(Arc::downgrade(&self.shared), self.shared.detect_data_loss));
        }
    }

    /// What this store noticed Redis lose since it started (see the `Durability`
    /// section of the README).
    pub fn data_loss(&self) -> DataLoss {
        self.shared.loss.report()
    }

    /// The buckets found lost since the last call, for a mirror to write back.
    pub(crate) fn take_lost_buckets(&self) -> Vec<u32> {
        std::mem::take(&mut *lock(&self.shared.loss.lost))
            .into_iter()
            .collect()
    }

    /// Gives back buckets a mirror took but could not write back yet.
    pub(crate) fn retry_lost(&self, buckets: &[u32]) {
        lock(&self.shared.loss.lost).extend(buckets.iter().copied());
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

    /// Reads (creating where missing) every bucket's epoch marker, and notes a loss
    /// where one changed.
    async fn check_epochs(&self) -> Result<(), crate::store::StoreError> {
        let schema = self.schema();
        let watch = &self.shared.loss;
        let reads = (0..schema.buckets()).map(|bucket| {
            let mut invocation = watch.script.prepare_invoke();
            invocation.key(schema.epoch(bucket)).key(schema.feed_seq(bucket));
            async move {
                let invocation = &invocation;
                let (epoch, seq): (Option<String>, Option<u64>) = self
                    .run(
                        "Redis epoch check failed",
                        Budget::Check,
                        bucket,
                        |mut connection| async move { invocation.invoke_async(&mut connection).await },
                    )
                    .await?;
                Ok::<_, crate::store::StoreError>((bucket, epoch, seq.unwrap_or(0)))
            }
        });
        let mut lost = Vec::new();
        let mut failed = None;
        for read in join_all(reads).await {
            match read {
                Ok((bucket, epoch, seq)) => {
                    if watch.compare(bucket, epoch, seq) {
                        lost.push(bucket);
                    }
                }
                Err(error) => failed = Some(error),
            }
        }
        self.note_loss(
            &lost,
            "redis",
            "an epoch marker went missing or changed, or a feed counter went backwards",
        );
        failed.map_or(Ok(()), Err)
    }
}

/// The store's background watch, while a clone of it lives: the persistence check once
/// (tried again until Redis answers it), then the epoch markers every
/// [`LOSS_CHECK_INTERVAL`].
pub(super) async fn watch(shared: Weak<Shared>, detect_loss: bool) {
    let mut persistence_checked = false;
    let mut backoff = LOSS_CHECK_INTERVAL;
    loop {
        let Some(strong) = shared.upgrade() else { return };
        let store = RedisStore { shared: strong };
        let mut failed = false;
        if !persistence_checked {
            match store.check_persistence().await {
                Ok(()) => persistence_checked = true,
                Err(error) => {
                    tracing::debug!(%error, "could not read Redis's persistence settings yet");
                    failed = true;
                }
            }
        }
        if detect_loss && let Err(error) = store.check_epochs().await {
            tracing::debug!(%error, "could not read the epoch markers");
            failed = true;
        }
        if !detect_loss && persistence_checked {
            return;
        }
        drop(store);
        let wait = if failed {
            // Capped low: a Redis back from a restart must be checked soon after.
            backoff = (backoff * 2).min(Duration::from_secs(1));
            backoff
        } else {
            backoff = LOSS_CHECK_INTERVAL;
            LOSS_CHECK_INTERVAL
        };
        tokio::time::sleep(wait).await;
    }
}
