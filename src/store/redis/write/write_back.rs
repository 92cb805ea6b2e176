//! The writes a mirror makes to put back what Redis lost: the store's own scripts
//! (`mark.lua`, `raise.lua`), which only lengthen a marker's TTL or raise a watermark and
//! append their event to the feed, so several mirrors writing back the same records
//! converge and every mirror sees them again. A marker goes through `write_back.lua`
//! first: one lifted on purpose since (its tombstone is there) is skipped, so a mirror
//! that had not read the `del` event yet does not undo an unrevoke.
//!
//! They run on the mirror's own connection, all of a batch at once (one round trip),
//! without `WAIT` and without the shared connection's retries: a write-back is repeated
//! by its caller until it is through, and must never hold up a logout or a check.

use std::time::Duration;

use ::redis::Script;
use futures_util::future::join_all;

use crate::store::StoreError;
use crate::store::key::RevocationKey;
use crate::store::redis::RedisStore;
use crate::store::redis::connect::conn::Conn;
use crate::store::redis::read::scan::bounded;
use crate::store::redis::schema::Kind;
use crate::store::redis::write::{invocation, ttl_ms};

const FEED: &str = include_str!("scripts/feed.lua");
const GUARD: &str = include_str!("scripts/write_back.lua");
const MARK: &str = include_str!("scripts/mark.lua");

/// The write-back of a marker: skipped when its tombstone says it was lifted.
pub(crate) fn marker_script() -> Script {
    Script::new(&format!("{FEED}{GUARD}{MARK}"))
}

/// One record to write back, where it was: its bucket, kind, hash, watermark (`None` for
/// a marker) and the time it has left.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lost {
    pub(crate) bucket: u32,
    pub(crate) kind: Kind,
    pub(crate) hash: RevocationKey,
    pub(crate) mark: Option<u64>,
    pub(crate) ttl: Duration,
}

impl RedisStore {
    /// Writes `records` back on `connection`, all at once, each in its own bucket's slot
    /// and announced on the wake channel; answers how many were written (a marker lifted
    /// since is not). Fails as a whole when any write fails: the caller repeats the batch
    /// (every write here is idempotent).
    pub(crate) async fn write_back(&self, connection: &Conn, records: &[Lost]) -> Result<u64, StoreError> {
        let schema = self.schema();
        let cap = self.feed_trim();
        let timeout = self.bulk_timeout();
        let writes = records.iter().map(|record| {
            let ttl = ttl_ms(record.ttl).to_string();
            let hash = record.hash.to_string();
            let (script, args) = match record.mark {
                None => (
                    &self.shared.scripts.write_back,
                    vec![cap.clone(), ttl, record.kind.code().into(), hash],
                ),
                Some(mark) => (
                    &self.shared.scripts.raise,
                    vec![
                        cap.clone(),
                        mark.to_string(),
                        ttl,
                        record.kind.code().into(),
                        hash,
                    ],
                ),
            };
            let keys = schema.write_keys(record.bucket, record.kind, &record.hash);
            let wake = [schema.wake(), record.bucket.to_string()];
            let invocation = invocation(script, keys, &args, Some(wake));
            let mut connection = connection.clone();
            async move { bounded(timeout, invocation.invoke_async::<i64>(&mut connection)).await }
        });
        let mut written = 0;
        for outcome in join_all(writes).await {
            written += u64::from(outcome? > 0);
        }
        Ok(written)
    }
}
