//! Writing back what Redis lost: when the store finds a bucket's data gone (its epoch
//! marker changed, or its change feed went backwards), the mirror writes every live
//! record its ledger holds for that bucket back into Redis, while it goes on following
//! the feeds.
//!
//! The follower hands the lost buckets over (`recover`) and reloads them at once, adding
//! what Redis still holds to the copy (never forgetting what it no longer does). A task
//! of its own writes back: a snapshot of the ledger's records of those buckets, in
//! batches, on a connection of its own, without `WAIT` (see the Redis store's
//! `write_back.rs`). A batch that fails is tried again, on a new connection, from where
//! it stopped, until it is through; records that expire meanwhile are dropped. The
//! records come back to every mirror through the feeds, like any write.
//!
//! What a mirror never holds it never writes: a record expired since (the ledger keeps
//! absolute expiries), or removed on purpose (a `del` event removed it from the
//! ledger; a lifted marker it had not heard of yet is stopped by its tombstone).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::Shared;
use super::follow::feeds::Feeds;
use crate::store::redis::{Conn, Lost};

/// How many records are written back at once (one round trip).
const WRITE_BACK_BATCH: usize = 256;

/// How long the write-back task waits for work before it looks whether its mirror is
/// still there.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// The buckets waiting to be written back, and the bell the task waits on.
#[derive(Debug, Default)]
pub(super) struct Pending {
    buckets: Mutex<BTreeSet<u32>>,
    ring: Notify,
}

impl Pending {
    fn take(&self) -> Vec<u32> {
        std::mem::take(&mut *self.buckets.lock().unwrap_or_else(PoisonError::into_inner))
            .into_iter()
            .collect()
    }
}

impl Shared {
    /// Takes the buckets the store found lost: hands them to the write-back task (with
    /// write-back on) and drops their feeds' cursors, so that they are reloaded from
    /// Redis into the copy as it is (adding to it, never replacing it).
    pub(super) async fn recover(&self, feeds: &mut Feeds) {
        let lost = self.redis.take_lost_buckets();
        if lost.is_empty() {
            if let Some(ledger) = &self.ledger {
                ledger.purge_if_due().await;
            }
            return;
        }
        if self.ledger.is_some() {
            self.pending
                .buckets
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend(lost.iter().copied());
            self.pending.ring.notify_one();
        }
        for bucket in lost {
            if let Some(at) = feeds.of_bucket(bucket) {
                feeds.cursors[at] = None;
            }
        }
    }

    /// Writes back the records of `buckets` the ledger holds, batch by batch, until all
    /// are through or expired; answers how many were written.
    async fn write_back(&self, buckets: &[u32], connection: &mut Option<Conn>) -> u64 {
        let Some(ledger) = &self.ledger else { return 0 };
        let taken = Instant::now();
        let records = ledger.live(Some(buckets));
        let mut written = 0;
        let mut done = 0;
        let mut backoff = Duration::from_millis(50);
        while done < records.len() {
            let now = Instant::now();
            let elapsed = now.saturating_duration_since(taken);
            let batch: Vec<Lost> = records[done..(done + WRITE_BACK_BATCH).min(records.len())]
                .iter()
                .filter(|record| record.ttl > elapsed)
                .map(|record| Lost {
                    bucket: record.bucket,
                    kind: record.kind,
                    hash: record.hash,
                    mark: record.mark,
                    ttl: record.ttl - elapsed,
                })
                .collect();
            let attempt = async {
                let connection = match &mut *connection {
                    Some(connection) => connection,
                    slot => slot.insert(self.redis.dedicated_connection().await?),
                };
                self.redis.write_back(connection, &batch).await
            }
            .await;
            match attempt {
                Ok(count) => {
                    written += count;
                    done += WRITE_BACK_BATCH;
                    backoff = Duration::from_millis(50);
                }
                Err(error) => {
                    tracing::warn!(%error, retry_in = ?backoff, "writing back lost revocations failed; trying again");
                    *connection = None;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
        self.redis.count_written_back(written);
        self.progress
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .written_back += written;
        tracing::warn!(
            prefix = %self.redis.prefix(),
            buckets = ?buckets,
            written,
            "wrote back into Redis the revocations it lost"
        );
        written
    }
}

/// The write-back task of a mirror with write-back on: waits for lost buckets, writes
/// them back. Ends with the mirror.
pub(super) async fn write_back(shared: Weak<Shared>, pending: Arc<Pending>) {
    let mut connection: Option<Conn> = None;
    loop {
        let buckets = pending.take();
        if buckets.is_empty() {
            // The bell keeps a ring that came while the task was busy.
            let _ = tokio::time::timeout(IDLE_CHECK, pending.ring.notified()).await;
            if shared.strong_count() == 0 {
                return;
            }
            continue;
        }
        let Some(strong) = shared.upgrade() else { return };
        strong.write_back(&buckets, &mut connection).await;
    }
}
