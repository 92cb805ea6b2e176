//! [`Stats`]: what the blocklist under a prefix holds, for an operator.

use std::collections::HashSet;

use ::redis::Value;
use futures_util::future::join_all;
use serde::Serialize;

use super::{Record, RecordKind};
use crate::store::StoreError;
use crate::store::key::RevocationKey;
use crate::store::redis::connect::command::Budget;
use crate::store::redis::read::scan::bounded;
use crate::store::redis::{Conn, Node, RedisStore};

/// How many keys one `SCAN` step of [`RedisStore::stats`] looks at.
const STEP: usize = 1000;

/// What the blocklist under a prefix holds ([`RedisStore::stats`]). Serializes to
/// JSON for scripts; it names records by hash only.
///
/// Counts are of revocations, not of keys: a session revoked once is one session, though
/// every bucket keeps a copy of it (`keys` counts the copies).
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
    /// Record keys, every bucket's copy counted.
    pub keys: u64,
    /// How many buckets the records are spread over.
    pub buckets: u32,
    /// The change feeds' sequence numbers, summed over the buckets: how many events
    /// were ever appended.
    pub feed_last_seq: u64,
    /// How many events the change feeds hold now (each is capped), summed.
    pub feed_length: u64,
    /// The record that expires first.
    pub expires_first: Option<Record>,
    /// The record that expires last.
    pub expires_last: Option<Record>,
    /// Bytes used by the prefix's keys, feeds included (`MEMORY USAGE`, summed);
    /// `None` when the server refuses `MEMORY USAGE`.
    pub memory_bytes: Option<u64>,
    /// Bytes used by the servers (`INFO memory`'s `used_memory`, summed over the
    /// masters).
    pub server_memory_bytes: Option<u64>,
}

impl RedisStore {
    /// Counts every record under the prefix (a full `SCAN` of every master, in steps
    /// of 1000 keys), and reads the change feeds' positions and the memory used.
    pub async fn stats(&self) -> Result<Stats, StoreError> {
        let mut stats = Stats {
            buckets: self.buckets(),
            memory_bytes: Some(0),
            ..Stats::default()
        };
        let mut connection = self.dedicated_connection().await?;
        let mut seen: HashSet<(RecordKind, RevocationKey)> = HashSet::new();
        let mut cursor = 0;
        loop {
            let step = self.scan_step(&mut connection, cursor, STEP).await?;
            if let Some(sum) = stats.memory_bytes {
                stats.memory_bytes =
                    memory_usage(&mut connection, &step.node, &step.keys, self.bulk_timeout())
                        .await
                        .map(|used| sum + used);
            }
            for record in step.page.records {
                stats.keys += 1;
                if seen.insert((record.kind, record.hash.unwrap_or(RevocationKey::ZERO))) {
                    match record.kind {
                        RecordKind::Token => stats.tokens += 1,
                        RecordKind::Session => stats.sessions += 1,
                        RecordKind::Subject => stats.subjects += 1,
                        RecordKind::All => stats.all = true,
                    }
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
            cursor = step.page.cursor;
            if cursor == 0 {
                break;
            }
        }
        for feed in join_all((0..self.buckets()).map(|bucket| self.feed_position(bucket))).await {
            let (seq, length) = feed?;
            stats.feed_last_seq += seq;
            stats.feed_length += length;
        }
        if let Some(sum) = stats.memory_bytes {
            let feeds: Vec<String> = (0..self.buckets())
                .flat_map(|bucket| [self.feed_key(bucket), self.feed_seq_key(bucket)])
                .collect();
            stats.memory_bytes = self.routed_memory_usage(&feeds).await.map(|used| sum + used);
        }
        stats.server_memory_bytes = self.server_memory(&mut connection).await;
        Ok(stats)
    }

    /// A bucket's feed counter and length, in one round trip to its slot.
    async fn feed_position(&self, bucket: u32) -> Result<(u64, u64), StoreError> {
        let mut feed = ::redis::pipe();
        feed.get(self.feed_seq_key(bucket))
            .cmd("XLEN")
            .arg(self.feed_key(bucket));
        let feed = &feed;
        let (seq, length): (Option<u64>, u64) = self
            .run(
                "Redis feed position read failed",
                Budget::Write,
                bucket,
                |mut connection| async move { feed.query_async(&mut connection).await },
            )
            .await?;
        Ok((seq.unwrap_or(0), length))
    }

    /// `MEMORY USAGE` of keys that may be on any node, each routed by its slot.
    async fn routed_memory_usage(&self, keys: &[String]) -> Option<u64> {
        let mut sum = 0;
        for key in keys {
            let mut usage = ::redis::cmd("MEMORY");
            usage.arg("USAGE").arg(key).arg("SAMPLES").arg(0);
            let usage = &usage;
            let used: Option<u64> = self
                .run(
                    "Redis MEMORY USAGE failed",
                    Budget::Write,
                    0,
                    |mut connection| async move { usage.query_async(&mut connection).await },
                )
                .await
                .ok()?;
            sum += used.unwrap_or(0);
        }
        Some(sum)
    }

    /// `used_memory` of every master, summed; `None` when one refuses `INFO`.
    async fn server_memory(&self, connection: &mut Conn) -> Option<u64> {
        let timeout = self.bulk_timeout();
        let mut sum = 0;
        for node in bounded(timeout, connection.masters()).await.ok()? {
            let info: String = bounded(
                timeout,
                connection.on_node(&node, ::redis::cmd("INFO").arg("memory")),
            )
            .await
            .ok()?;
            sum += info
                .lines()
                .find_map(|line| line.strip_prefix("used_memory:"))
                .and_then(|bytes| bytes.trim().parse::<u64>().ok())?;
        }
        Some(sum)
    }
}

/// `MEMORY USAGE` of `keys` found on `node`, summed (keys gone meanwhile count
/// nothing); `None` when the server refuses the command (some managed services rename
/// it).
async fn memory_usage(
    connection: &mut Conn,
    node: &Node,
    keys: &[String],
    timeout: std::time::Duration,
) -> Option<u64> {
    if keys.is_empty() {
        return Some(0);
    }
    let mut pipeline = ::redis::pipe();
    for key in keys {
        pipeline.cmd("MEMORY").arg("USAGE").arg(key).arg("SAMPLES").arg(0);
    }
    let used = bounded(timeout, connection.pipeline_on_node(node, &pipeline))
        .await
        .ok()?;
    // Refused: an error for every key (a key that moved meanwhile fails alone).
    if used.iter().all(|value| matches!(value, Value::ServerError(_))) {
        return None;
    }
    Some(
        used.into_iter()
            .filter_map(|value| ::redis::from_redis_value::<Option<u64>>(value).ok().flatten())
            .sum(),
    )
}
