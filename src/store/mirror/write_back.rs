//! Writing back what Redis lost: when the store finds a bucket's data gone (its epoch
//! marker changed, or its change feed went backwards), the mirror writes every live
//! record its ledger holds for that bucket back into Redis, then reloads the bucket.
//!
//! The writes are the store's own (`mark.lua`, `raise.lua`): they only ever lengthen a
//! marker's TTL or raise a watermark, and append their event to the feed like any
//! other write. So a record written back by several mirrors at once ends up as the
//! longest-lived of their copies, and every mirror (and every store started later,
//! which loads from Redis) sees it again. What a mirror never holds it never writes:
//! a record expired since (the ledger keeps absolute expiries), or removed on purpose
//! (a `del` event removed it from the ledger).

use std::sync::PoisonError;

use futures_util::future::join_all;

use super::Shared;
use super::feeds::Feeds;
use crate::store::StoreError;
use crate::store::redis::Targets;

/// How many records are written back at once.
const WRITE_BACK_BATCH: usize = 64;

impl Shared {
    /// Takes the buckets the store found lost, writes back what the ledger holds of
    /// them (with write-back on), and drops their feeds' cursors so that they are
    /// reloaded from Redis (adding to the local copy, never replacing it). On a failure
    /// the buckets are kept for the next step.
    pub(super) async fn recover(&self, feeds: &mut Feeds) -> Result<(), StoreError> {
        let lost = self.redis.take_lost_buckets();
        if lost.is_empty() {
            if let Some(ledger) = &self.ledger {
                ledger.purge_if_due().await;
            }
            return Ok(());
        }
        if let Some(ledger) = &self.ledger {
            let records = ledger.live(Some(&lost));
            let mut written = 0u64;
            for batch in records.chunks(WRITE_BACK_BATCH) {
                let writes = batch.iter().map(|record| {
                    self.redis.write(
                        Targets::One(record.bucket),
                        record.kind,
                        &record.hash,
                        record.mark,
                        record.ttl,
                        false,
                    )
                });
                for outcome in join_all(writes).await {
                    match outcome {
                        // Applied; a confirmation that did not come does not undo it.
                        Ok(()) => written += 1,
                        Err(error) if error.is_unacknowledged() => written += 1,
                        Err(error) => {
                            self.redis.retry_lost(&lost);
                            return Err(error);
                        }
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
                buckets = ?lost,
                written,
                "wrote back into Redis the revocations it lost"
            );
        }
        for bucket in lost {
            if let Some(at) = feeds.of_bucket(bucket) {
                feeds.cursors[at] = None;
            }
        }
        feeds.keep_copy = true;
        Ok(())
    }
}
