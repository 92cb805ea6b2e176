//! The full load: every live record of the prefix, read with `SCAN`, and the feed
//! position to follow from.

use std::sync::PoisonError;
use std::time::Duration;

use ::redis::Value;
use ::redis::aio::MultiplexedConnection;

use super::event::apply;
use super::{BATCH, Shared, bounded};
use crate::key::RevocationKey;
use crate::store::StoreError;
use crate::store::memory::InMemoryStore;
use crate::store::redis::Kind;

/// How long the mirror keeps a record that has no TTL in Redis (a foreign writer's
/// mistake): a year, reviewed at every reload.
const KEY_WITHOUT_TTL: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Reads the feed position a load starts from (see the script).
pub(super) const POSITION: &str = include_str!("position.lua");

impl Shared {
    /// Loads every live record into a fresh local copy and returns the feed position
    /// to follow from, noted before the load.
    pub(super) async fn load(
        &self,
        connection: &mut MultiplexedConnection,
    ) -> Result<(String, u64), StoreError> {
        let timeout = self.redis.command_timeout();
        let (seq, last_id): (String, String) = bounded(
            timeout,
            self.position_script
                .key(self.redis.feed_key())
                .key(self.redis.feed_seq_key())
                .invoke_async(connection),
        )
        .await?;
        let seq = seq
            .parse::<u64>()
            .map_err(|e| StoreError::new("the feed sequence is not a number", e))?;

        let fresh = InMemoryStore::new();
        let pattern = format!("{}:*", self.redis.prefix());
        let mut cursor = 0u64;
        loop {
            let (next, keys): (u64, Vec<String>) = bounded(
                timeout,
                ::redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(BATCH)
                    .query_async(connection),
            )
            .await?;
            let records: Vec<(Kind, RevocationKey, String)> = keys
                .into_iter()
                .filter_map(|key| self.redis.parse_key(&key).map(|(kind, hash)| (kind, hash, key)))
                .collect();
            if !records.is_empty() {
                let mut pipeline = ::redis::pipe();
                for (_, _, key) in &records {
                    pipeline.get(key).cmd("PTTL").arg(key);
                }
                let values: Vec<Value> = bounded(timeout, pipeline.query_async(connection)).await?;
                for ((kind, hash, _), pair) in records.iter().zip(values.chunks_exact(2)) {
                    let value: Option<String> = ::redis::from_redis_value(pair[0].clone()).ok().flatten();
                    let pttl: i64 = ::redis::from_redis_value(pair[1].clone()).unwrap_or(-2);
                    let ttl = match pttl {
                        // No TTL: a writer broke the schema. Redis refuses the token for
                        // as long as the key exists, so the mirror must too.
                        -1 => {
                            tracing::warn!(
                                kind = kind.code(),
                                "a revocation in Redis has no TTL; mirrored as long-lived"
                            );
                            Some(KEY_WITHOUT_TTL)
                        }
                        ms => u64::try_from(ms).ok().map(Duration::from_millis),
                    };
                    if let (Some(value), Some(ttl)) = (value, ttl) {
                        apply(&fresh, *kind, hash, &value, ttl).await;
                    }
                }
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        self.local.replace_with(fresh);
        let mut progress = self.progress.lock().unwrap_or_else(PoisonError::into_inner);
        progress.applied_seq = seq;
        progress.loads += 1;
        drop(progress);
        tracing::info!(prefix = %self.redis.prefix(), entries = self.local().len(), seq, "revocation mirror loaded");
        Ok((last_id, seq))
    }
}
