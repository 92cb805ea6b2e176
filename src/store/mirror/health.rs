//! What a mirror says of itself: [`MirrorHealth`], and the [`StoreHealth`] a
//! readiness probe serves.

use std::sync::PoisonError;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::MirrorStore;
use crate::store::{RevocationStore, StoreHealth};

/// The mirror's state, for readiness probes and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MirrorHealth {
    /// Loaded and following the feed (may still be stale: see `since_contact`).
    pub in_sync: bool,
    /// How long ago the feed was last read successfully.
    pub since_contact: Option<Duration>,
    /// Whether checks are answered locally right now.
    pub serving_locally: bool,
    /// Local entries (expired ones not yet reclaimed included).
    pub entries: usize,
    /// Events applied: the sum, over every change feed (one per bucket), of the
    /// sequence number of the last event applied.
    pub applied_seq: u64,
    /// How many loads happened: full ones (the first included) and reloads of one or
    /// more buckets whose feed had a gap.
    pub loads: u64,
    /// How many of those loads were of some buckets only.
    pub bucket_reloads: u64,
    /// How many times Redis was found to have lost revocations (by the store's epoch
    /// markers, or by a change feed going backwards).
    pub data_losses: u64,
    /// How many revocations this mirror wrote back into Redis after a loss.
    pub written_back: u64,
}

impl MirrorStore {
    /// The mirror's state.
    pub fn health(&self) -> MirrorHealth {
        let shared = &*self.shared;
        let progress = *shared.progress.lock().unwrap_or_else(PoisonError::into_inner);
        let loss = shared.redis.data_loss();
        MirrorHealth {
            in_sync: shared.synced.load(Ordering::Acquire),
            since_contact: shared.since_contact(),
            serving_locally: shared.fresh(),
            entries: shared.local().len(),
            applied_seq: progress.applied_seq,
            loads: progress.loads,
            bucket_reloads: progress.bucket_reloads,
            data_losses: loss.detected,
            written_back: progress.written_back,
        }
    }

    /// Ready while checks are answered from memory, or while Redis answers them.
    pub(super) async fn store_health(&self) -> StoreHealth {
        let mirror = MirrorStore::health(self);
        let redis = self.shared.redis.health().await;
        let ready = mirror.serving_locally || redis.ready;
        StoreHealth {
            store: "mirror",
            ready,
            reachable: redis.reachable,
            in_sync: Some(mirror.in_sync),
            lag_ms: mirror
                .since_contact
                .map(|since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX)),
            entries: Some(mirror.entries),
            detail: (!ready).then(|| redis.detail.unwrap_or_else(|| "the mirror is stale".into())),
            data_losses: redis.data_losses,
            written_back: (mirror.written_back > 0).then_some(mirror.written_back),
        }
    }
}
