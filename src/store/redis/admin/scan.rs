//! Reading the records under the prefix, a `SCAN` page at a time (never `KEYS`).

use ::redis::Value;

use super::Record;
use crate::key::RevocationKey;
use crate::store::StoreError;
use crate::store::redis::command::Budget;
use crate::store::redis::{Kind, RedisStore};

/// One page of [`RedisStore::scan_page`]: the records found, and where to go on.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Page {
    /// The live records of this page, in `SCAN` order.
    pub records: Vec<Record>,
    /// The cursor of the next page; `0` when the scan is complete.
    pub cursor: u64,
}

impl RedisStore {
    /// One `SCAN` step over this store's prefix, from `cursor` (`0` to start), looking
    /// at about `count` keys (`SCAN`'s `COUNT` hint), with each record's value and
    /// remaining TTL (one pipelined round trip more).
    ///
    /// A page may hold fewer records than `count`, none at all, or a few more; a
    /// record may show up twice across pages (`SCAN`'s guarantees). Keys of the prefix
    /// that are not records (the change feed) are left out, and so are records that
    /// expired between the two round trips.
    pub async fn scan_page(&self, cursor: u64, count: usize) -> Result<Page, StoreError> {
        let mut scan = ::redis::cmd("SCAN");
        scan.arg(cursor)
            .arg("MATCH")
            .arg(self.scan_pattern())
            .arg("COUNT")
            .arg(count.max(1));
        let scan = &scan;
        let (next, keys): (u64, Vec<String>) = self
            .run("Redis SCAN failed", Budget::Write, |mut connection| async move {
                scan.query_async(&mut connection).await
            })
            .await?;
        let found: Vec<(Kind, RevocationKey, String)> = keys
            .into_iter()
            .filter_map(|key| self.parse_key(&key).map(|(kind, hash)| (kind, hash, key)))
            .collect();
        if found.is_empty() {
            return Ok(Page {
                records: Vec::new(),
                cursor: next,
            });
        }
        let mut pipeline = ::redis::pipe();
        for (_, _, key) in &found {
            pipeline.get(key).cmd("PTTL").arg(key);
        }
        let pipeline = &pipeline;
        let values: Vec<Value> = self
            .run(
                "Redis record read failed",
                Budget::Write,
                |mut connection| async move { pipeline.query_async(&mut connection).await },
            )
            .await?;
        let records = found
            .into_iter()
            .zip(values.chunks_exact(2))
            .filter_map(|((kind, hash, _), pair)| {
                let value: Option<String> = ::redis::from_redis_value(pair[0].clone()).ok().flatten();
                let pttl: i64 = ::redis::from_redis_value(pair[1].clone()).unwrap_or(-2);
                Record::read(kind, hash, value?, pttl)
            })
            .collect();
        Ok(Page {
            records,
            cursor: next,
        })
    }

    /// The Redis key `record` lives under in this store.
    pub fn record_key(&self, record: &Record) -> String {
        self.key_of(record.kind.kind(), &record.hash.unwrap_or(RevocationKey::ZERO))
    }

    /// The `SCAN` pattern of every key under the prefix, glob characters escaped.
    pub(super) fn scan_pattern(&self) -> String {
        let mut pattern = String::with_capacity(self.prefix().len() + 4);
        for c in self.prefix().chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push_str(":*");
        pattern
    }
}
