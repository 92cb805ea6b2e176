//! Writes an operator makes: removing a revocation (with its change-feed event), and
//! restoring one from a backup through the store's normal write path.

use std::sync::LazyLock;

use ::redis::Script;
use futures_util::future::join_all;

use super::Record;
use crate::store::StoreError;
use crate::store::key::RevocationKey;
use crate::store::redis::connect::command::Budget;
use crate::store::redis::write::{Targets, WriteKeys};
use crate::store::redis::{Kind, RedisStore};

/// `feed.lua`, then the removal that ends with its `feed` call.
static UNMARK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{}{}",
        include_str!("../write/scripts/feed.lua"),
        include_str!("unmark.lua")
    ))
});

impl RedisStore {
    /// Lifts a token revocation: deletes its marker from every bucket that has one
    /// and, in the same Lua script, appends a `del` event to that bucket's change feed,
    /// so every [`MirrorStore`](crate::store::MirrorStore) forgets it too. Returns
    /// whether there was one.
    ///
    /// Only for mistakes (a token revoked by error): a subject or global watermark
    /// still refuses the token when one covers it.
    pub async fn unrevoke_token(&self, token: &RevocationKey) -> Result<bool, StoreError> {
        self.unmark(Kind::Token, token).await
    }

    /// Lifts a session revocation (every bucket's copy), like
    /// [`unrevoke_token`](Self::unrevoke_token).
    pub async fn unrevoke_session(&self, session: &RevocationKey) -> Result<bool, StoreError> {
        self.unmark(Kind::Session, session).await
    }

    /// One removal script per bucket (a token may sit in any bucket, or in all of them
    /// when it was revoked without its subject), and on the v1 key during a transition.
    async fn unmark(&self, kind: Kind, hash: &RevocationKey) -> Result<bool, StoreError> {
        let schema = self.schema();
        let mut removals: Vec<_> = (0..schema.buckets())
            .map(|bucket| {
                let keys = schema.write_keys(bucket, kind, hash);
                self.unmark_in(bucket, keys, kind, hash)
            })
            .collect();
        if let Some(v1) = self.v1() {
            removals.push(self.unmark_in(0, v1.write_keys(kind, hash), kind, hash));
        }
        let mut removed = false;
        for outcome in join_all(removals).await {
            removed |= outcome?;
        }
        if removed {
            self.announce_every_bucket().await;
            tracing::info!(kind = kind.code(), hash = %hash, "lifted a revocation");
        }
        Ok(removed)
    }

    async fn unmark_in(
        &self,
        bucket: u32,
        keys: WriteKeys,
        kind: Kind,
        hash: &RevocationKey,
    ) -> Result<bool, StoreError> {
        let mut invocation = UNMARK.prepare_invoke();
        for key in keys {
            invocation.key(key);
        }
        invocation
            .arg(self.feed_trim())
            .arg(kind.code())
            .arg(hash.hex().as_str());
        let invocation = &invocation;
        let removed: i64 = self
            .run(
                "Redis revocation removal failed",
                Budget::Write,
                bucket,
                |mut connection| async move { invocation.invoke_async(&mut connection).await },
            )
            .await?;
        Ok(removed > 0)
    }

    /// Writes `record` back (an import), through the same scripts as every revocation,
    /// so the change feeds carry it to mirrors: a marker is kept at least for its
    /// remaining time, a watermark raised to at least its value. Idempotent. Returns
    /// `false`, writing nothing, when the record has expired meanwhile.
    ///
    /// A record read from a bucket of a deployment with as many buckets goes back to
    /// that bucket. Otherwise (a v1 record, or another bucket count) it goes where this
    /// store would have written it knowing only its hash: a subject watermark to its
    /// subject's bucket, anything else to every bucket.
    ///
    /// Fails, writing nothing, on a record [`Record::problem`] finds wrong: without a
    /// TTL (nothing says how long to keep it), a token, session or subject without a
    /// hash, a TTL or a watermark out of range.
    pub async fn restore(&self, record: &Record) -> Result<bool, StoreError> {
        if let Some(problem) = record.problem() {
            return Err(StoreError::msg(problem));
        }
        let Some(ttl) = record.remaining() else {
            return Ok(false);
        };
        let kind = record.kind.kind();
        let hash = match (kind, record.hash) {
            (Kind::Global, _) => RevocationKey::ZERO,
            (_, Some(hash)) => hash,
            (_, None) => return Err(StoreError::msg("a record without a hash cannot be restored")),
        };
        let targets = match (record.bucket, record.buckets) {
            (Some(bucket), Some(buckets)) if buckets == self.buckets() && bucket < buckets => {
                Targets::One(bucket)
            }
            _ if kind == Kind::Subject => Targets::One(self.bucket_of(&hash)),
            _ => Targets::Every,
        };
        match kind {
            Kind::Token | Kind::Session => self.mark(targets, kind, &hash, ttl).await?,
            Kind::Subject | Kind::Global => {
                let mark = record
                    .watermark()
                    .ok_or_else(|| StoreError::msg("a watermark to restore is not a number of seconds"))?;
                self.raise(targets, kind, &hash, mark, ttl).await?;
            }
        }
        Ok(true)
    }

    /// Whether this prefix is a blocklist: a store registered it (its key layout, or a
    /// bucket's epoch marker: a store watching for data loss records both when it
    /// connects, before anything is revoked), a bucket's change feed counter exists
    /// (every write creates it, and it never expires), or a record does. `false` on a
    /// deployment that never saw this prefix, which is how a tool tells a mistyped
    /// prefix from an empty blocklist.
    pub async fn in_use(&self) -> Result<bool, StoreError> {
        let schema = self.schema();
        let mut asks: Vec<_> = (0..schema.buckets())
            .map(|bucket| {
                let mut keys = vec![
                    schema.feed_seq(bucket),
                    schema.feed(bucket),
                    schema.global(bucket),
                    schema.epoch(bucket),
                ];
                if bucket == 0 {
                    keys.push(self.layout_key());
                }
                self.exists(bucket, keys)
            })
            .collect();
        if let Some(v1) = self.v1() {
            asks.push(self.exists(
                0,
                vec![
                    v1.feed_seq(),
                    v1.feed(),
                    v1.key(Kind::Global, &RevocationKey::ZERO),
                ],
            ));
        }
        for found in join_all(asks).await {
            if found? > 0 {
                return Ok(true);
            }
        }
        // Records written by a writer that skipped the feed (against the schema).
        let mut connection = self.dedicated_connection().await?;
        let mut cursor = 0;
        loop {
            let step = self.scan_step(&mut connection, cursor, 1000).await?;
            if !step.page.records.is_empty() {
                return Ok(true);
            }
            cursor = step.page.cursor;
            if cursor == 0 {
                return Ok(false);
            }
        }
    }

    /// `EXISTS` of keys that share `bucket`'s slot.
    async fn exists(&self, bucket: u32, keys: Vec<String>) -> Result<u64, StoreError> {
        let mut exists = ::redis::cmd("EXISTS");
        exists.arg(&keys);
        let exists = &exists;
        self.run(
            "Redis EXISTS failed",
            Budget::Write,
            bucket,
            |mut connection| async move { exists.query_async(&mut connection).await },
        )
        .await
    }
}
