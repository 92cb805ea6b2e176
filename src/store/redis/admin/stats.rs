//! [`Stats`]: what the blocklist under a prefix holds, for an operator.

use ::redis::Value;
use serde::Serialize;

use super::{Record, RecordKind};
use crate::store::StoreError;
use crate::store::redis::RedisStore;
use crate::store::redis::command::Budget;

/// How many keys one `SCAN` step of [`RedisStore::stats`] looks at.
const STEP: usize = 1000;

/// What the blocklist under a prefix holds ([`RedisStore::stats`]). Serializes to
/// JSON for scripts; it names records by hash only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Stats {
    /// Live token revocations.
    pub tokens: u64,
    /// Live session revocations.
    pub sessions: u64,
    /// Live subject watermarks ("log out everywhere").
    pub subjects: u64,
    /// Whether a global watermark is live.
    pub all: bool,
    /// The change feed's sequence number: how many events were ever appended.
    pub feed_last_seq: u64,
    /// How many events the change feed holds now (it is capped).
    pub feed_length: u64,
    /// The record that expires first.
    pub expires_first: Option<Record>,
    /// The record that expires last.
    pub expires_last: Option<Record>,
    /// Bytes used by the prefix's keys, feed included (`MEMORY USAGE`, summed);
    /// `None` when the server refuses `MEMORY USAGE`.
    pub memory_bytes: Option<u64>,
    /// Bytes used by the whole server (`INFO memory`'s `used_memory`).
    pub server_memory_bytes: Option<u64>,
}

impl RedisStore {
    /// Counts every record under the prefix (a full `SCAN`, in steps of 1000 keys),
    /// and reads the change feed's position and the memory used.
    pub async fn stats(&self) -> Result<Stats, StoreError> {
        let mut stats = Stats {
            memory_bytes: Some(0),
            ..Stats::default()
        };
        let mut cursor = 0;
        loop {
            let page = self.scan_page(cursor, STEP).await?;
            let keys: Vec<String> = page
                .records
                .iter()
                .map(|record| self.record_key(record))
                .collect();
            stats.memory_bytes = match stats.memory_bytes {
                Some(sum) => self.memory_usage(&keys).await.map(|used| sum + used),
                None => None,
            };
            for record in page.records {
                match record.kind {
                    RecordKind::Token => stats.tokens += 1,
                    RecordKind::Session => stats.sessions += 1,
                    RecordKind::Subject => stats.subjects += 1,
                    RecordKind::All => stats.all = true,
                }
                let ttl = record.ttl_ms.unwrap_or(u64::MAX);
                if stats
                    .expires_first
                    .as_ref()
                    .is_none_or(|first| ttl < first.ttl_ms.unwrap_or(u64::MAX))
                {
                    stats.expires_first = Some(record.clone());
                }
                if stats
                    .expires_last
                    .as_ref()
                    .is_none_or(|last| ttl > last.ttl_ms.unwrap_or(u64::MAX))
                {
                    stats.expires_last = Some(record);
                }
            }
            cursor = page.cursor;
            if cursor == 0 {
                break;
            }
        }
        let mut feed = ::redis::pipe();
        feed.get(self.feed_seq_key())
            .cmd("XLEN")
            .arg(self.feed_key())
            .cmd("INFO")
            .arg("memory");
        let feed = &feed;
        let (seq, length, info): (Option<u64>, u64, String) = self
            .run(
                "Redis feed position read failed",
                Budget::Write,
                |mut connection| async move { feed.query_async(&mut connection).await },
            )
            .await?;
        stats.feed_last_seq = seq.unwrap_or(0);
        stats.feed_length = length;
        stats.server_memory_bytes = info
            .lines()
            .find_map(|line| line.strip_prefix("used_memory:"))
            .and_then(|bytes| bytes.trim().parse().ok());
        if let Some(sum) = stats.memory_bytes {
            stats.memory_bytes = self
                .memory_usage(&[self.feed_key(), self.feed_seq_key()])
                .await
                .map(|used| sum + used);
        }
        Ok(stats)
    }

    /// `MEMORY USAGE` of `keys`, summed (keys gone meanwhile count nothing); `None`
    /// when the server refuses the command (some managed services rename it).
    async fn memory_usage(&self, keys: &[String]) -> Option<u64> {
        if keys.is_empty() {
            return Some(0);
        }
        let mut pipeline = ::redis::pipe();
        for key in keys {
            pipeline.cmd("MEMORY").arg("USAGE").arg(key).arg("SAMPLES").arg(0);
        }
        let pipeline = &pipeline;
        let used: Vec<Value> = self
            .run(
                "Redis MEMORY USAGE failed",
                Budget::Write,
                |mut connection| async move { pipeline.query_async(&mut connection).await },
            )
            .await
            .ok()?;
        Some(
            used.into_iter()
                .filter_map(|value| ::redis::from_redis_value::<Option<u64>>(value).ok().flatten())
                .sum(),
        )
    }
}
