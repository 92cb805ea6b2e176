//! Loading: every live record of some feeds' buckets, read from each bucket's index
//! (`index.rs`; the v1 keys of a transition with `SCAN` on every master), and the
//! position in each feed to follow from, noted before.
//!
//! In this folder: reading an index page by page (`index.rs`), reading v1 records
//! during a transition (`records.rs`), and the script that reads a feed's position
//! (`position.lua`). May use: the Redis store's root re-exports, `follow/` (cursors,
//! applying records), the ledger. Used by: the follower, for the first load and every
//! reload.

mod index;
mod records;

use std::collections::VecDeque;
use std::sync::PoisonError;
use std::time::Duration;

use futures_util::future::join_all;
use tokio::task::JoinHandle;

use self::index::Indexed;
use self::records::{Found, Read};
use super::follow::event::{apply, apply_mark};
use super::follow::feeds::{Cursor, Feeds};
use super::ledger::{now_ms, tag};
use super::{BATCH, Shared};
use crate::store::StoreError;
use crate::store::memory::{InMemoryStore, Writes};
use crate::store::redis::Conn;
use crate::store::redis::scan::{bounded, scan_step};

/// How long the mirror keeps a record that has no TTL in Redis (a foreign writer's
/// mistake): a year, reviewed at every reload.
const KEY_WITHOUT_TTL: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// How many keys one `SCAN` step of a load brings at most: larger than [`BATCH`] (for
/// feeds) so each step's read pipelines more keys.
const LOAD_BATCH: usize = 4 * BATCH;

/// How many steps' reads a load keeps running while it applies an older one's.
const READS_IN_FLIGHT: usize = 2;

/// What one step's read answers.
type ReadResult = Result<Vec<Read>, StoreError>;

/// The reads of a load under way, oldest first; those left when a load fails are
/// stopped rather than left to run out their timeout.
struct InFlight(VecDeque<JoinHandle<ReadResult>>);

impl Drop for InFlight {
    fn drop(&mut self) {
        for read in &self.0 {
            read.abort();
        }
    }
}

/// Reads the feed position a load starts from (see the script).
pub(super) const POSITION: &str = include_str!("position.lua");

impl Shared {
    /// Loads everything into a fresh local copy that replaces the old one: the start
    /// only. Later, even a mirror that lost its place in every feed reloads into the copy
    /// it has (`reload`): Redis may have lost what the copy knows.
    pub(super) async fn load_all(&self, connection: &mut Conn, feeds: &mut Feeds) -> Result<(), StoreError> {
        let all: Vec<usize> = (0..feeds.streams.len()).collect();
        let positions = self.positions(connection, feeds, &all).await?;
        // What Redis holds now is the whole truth (nothing was lost, or what was is
        // written back already): the copy, and with it the ledger (the copy's full
        // records, with write-back on), is filled again from it.
        let fresh = self.local.empty_like();
        let buckets: Vec<u32> = (0..self.redis.buckets()).collect();
        self.index_into(connection, &buckets, &fresh).await?;
        if let Some(v1) = self.redis.v1() {
            self.scan_into(connection, &[v1.pattern()], &fresh).await?;
        }
        self.local.replace_with(fresh);
        for (at, cursor) in all.into_iter().zip(positions) {
            feeds.cursors[at] = Some(cursor);
        }
        self.loaded(feeds, false);
        Ok(())
    }

    /// Reloads the buckets of the feeds `which` (each lost its place: a gap, or Redis
    /// lost the bucket) into the local copy as it is: the other buckets keep being
    /// followed, and what the copy and the ledger know is only ever added to.
    pub(super) async fn reload(
        &self,
        connection: &mut Conn,
        feeds: &mut Feeds,
        which: &[usize],
    ) -> Result<(), StoreError> {
        let positions = self.positions(connection, feeds, which).await?;
        let buckets: Vec<u32> = which.iter().filter_map(|&at| feeds.streams[at].bucket).collect();
        // The v1 feed (a transition) has no bucket: its keys are scanned.
        let patterns: Vec<String> = which
            .iter()
            .filter(|&&at| feeds.streams[at].bucket.is_none())
            .map(|&at| feeds.streams[at].pattern.clone())
            .collect();
        // The ledger is added to, like the copy: a bucket reloaded for a gap may have
        // lost data that nobody has noticed yet, and what the ledger holds of it is what
        // gets written back once somebody does.
        self.index_into(connection, &buckets, &self.local).await?;
        if !patterns.is_empty() {
            self.scan_into(connection, &patterns, &self.local).await?;
        }
        for (&at, cursor) in which.iter().zip(positions) {
            feeds.cursors[at] = Some(cursor);
        }
        self.loaded(feeds, true);
        Ok(())
    }

    fn loaded(&self, feeds: &mut Feeds, partial: bool) {
        feeds.catch_up = true;
        let mut progress = self.progress.lock().unwrap_or_else(PoisonError::into_inner);
        progress.applied_seq = feeds.applied();
        progress.loads += 1;
        progress.bucket_reloads += u64::from(partial);
        drop(progress);
        tracing::info!(
            prefix = %self.redis.prefix(),
            entries = self.local().len(),
            partial,
            "revocation mirror loaded"
        );
    }

    /// Each feed's position (sequence number, last id), read atomically in its slot.
    async fn positions(
        &self,
        connection: &Conn,
        feeds: &Feeds,
        which: &[usize],
    ) -> Result<Vec<Cursor>, StoreError> {
        let timeout = self.redis.command_timeout();
        let reads = which.iter().map(|&at| {
            let mut connection = connection.clone();
            let mut invocation = self.position_script.prepare_invoke();
            invocation
                .key(&feeds.streams[at].key)
                .key(&feeds.streams[at].seq_key);
            async move {
                let (seq, last_id): (String, String) =
                    bounded(timeout, invocation.invoke_async(&mut connection)).await?;
                let last_seq = seq
                    .parse::<u64>()
                    .map_err(|e| StoreError::new("the feed sequence is not a number", e))?;
                Ok::<_, StoreError>(Cursor { last_id, last_seq })
            }
        });
        join_all(reads).await.into_iter().collect()
    }

    /// Every live record of `buckets`, read from their indexes all at once (each
    /// bucket's pages in order, by a task of its own) and applied to `into` as pages
    /// come. Each read goes to its bucket's slot, wherever the cluster keeps it now.
    async fn index_into(
        &self,
        connection: &Conn,
        buckets: &[u32],
        into: &InMemoryStore,
    ) -> Result<(), StoreError> {
        let timeout = self.redis.bulk_timeout();
        let now = now_ms();
        // Unbounded: the pages are what the load holds anyway, and the readers must not
        // wait on the loader (a page is applied while the server reads the next).
        let (pages, mut arrived) = tokio::sync::mpsc::unbounded_channel::<(u32, Vec<Indexed>)>();
        let mut readers = InFlight(
            buckets
                .iter()
                .map(|&bucket| {
                    let (connection, pages) = (connection.clone(), pages.clone());
                    let key = self.redis.schema().index(bucket);
                    tokio::spawn(async move {
                        index::read(&connection, &key, now, timeout, |page| {
                            // The loader is gone only when the load failed.
                            let _ = pages.send((bucket, page));
                        })
                        .await?;
                        Ok(Vec::new())
                    })
                })
                .collect(),
        );
        drop(pages);
        while let Some((bucket, page)) = arrived.recv().await {
            self.apply_page(bucket, page, into);
        }
        for reader in readers.0.iter_mut() {
            reader
                .await
                .map_err(|e| StoreError::new("a load's read did not finish", e))??;
        }
        Ok(())
    }

    /// Records what a page of an index named, each until its expiry, as of one instant
    /// (a page is a few milliseconds' reading). Each record is tagged with its kind and
    /// bucket: with write-back on, the copy keeps them (it is the ledger).
    fn apply_page(&self, bucket: u32, page: Vec<Indexed>, into: &InMemoryStore) {
        let (writes, now) = (into.writes(), now_ms());
        for record in page {
            let ttl = Duration::from_millis(record.expires_ms.saturating_sub(now));
            let tag = tag(record.kind, bucket);
            apply_mark(&writes, tag, record.kind, &record.hash, record.value, ttl);
        }
    }

    /// Every record matching `patterns` on every master, applied to `into`.
    ///
    /// On a cluster that is moving slots (a resharding), a key may leave a master not
    /// yet scanned for one already scanned, and be missed: the load fails then (checks
    /// keep going to Redis), and is tried again until the slots stay put.
    async fn scan_into(
        &self,
        connection: &mut Conn,
        patterns: &[String],
        into: &InMemoryStore,
    ) -> Result<(), StoreError> {
        let timeout = self.redis.bulk_timeout();
        let before = bounded(timeout, connection.slot_layout()).await?;
        self.scan_masters(connection, patterns, into).await?;
        let after = bounded(timeout, connection.slot_layout()).await?;
        match (before, after) {
            (Some(before), Some(after)) if before == after => Ok(()),
            _ => Err(StoreError::msg(
                "the cluster moved slots during the mirror's load; loading again",
            )),
        }
    }

    async fn scan_masters(
        &self,
        connection: &mut Conn,
        patterns: &[String],
        into: &InMemoryStore,
    ) -> Result<(), StoreError> {
        let timeout = self.redis.bulk_timeout();
        let masters = bounded(timeout, connection.masters()).await?;
        for node in &masters {
            for pattern in patterns {
                // The `SCAN` steps follow one another; each step's records are read
                // as soon as it answers, by a task of its own, and applied here while
                // the next steps and reads run on the server.
                let mut reads = InFlight(VecDeque::new());
                let mut cursor = 0u64;
                loop {
                    let (next, keys) =
                        scan_step(connection, node, cursor, pattern, LOAD_BATCH, timeout).await?;
                    let found: Vec<Found> = keys.into_iter().filter_map(|key| self.found(key)).collect();
                    let (connection, node) = (connection.clone(), node.clone());
                    reads.0.push_back(tokio::spawn(async move {
                        records::read(connection, &node, found, timeout).await
                    }));
                    if reads.0.len() > READS_IN_FLIGHT {
                        self.apply_next(&mut reads, into).await?;
                    }
                    cursor = next;
                    if cursor == 0 {
                        break;
                    }
                }
                while !reads.0.is_empty() {
                    self.apply_next(&mut reads, into).await?;
                }
            }
        }
        Ok(())
    }

    /// Applies the oldest read of `reads` once it is done.
    async fn apply_next(&self, reads: &mut InFlight, into: &InMemoryStore) -> Result<(), StoreError> {
        let Some(read) = reads.0.pop_front() else {
            return Ok(());
        };
        let read = read
            .await
            .map_err(|e| StoreError::new("a load's read did not finish", e))??;
        let writes = into.writes();
        for record in read {
            self.apply_read(record, &writes);
        }
        Ok(())
    }

    /// A v1 record key parsed; `None` for other keys.
    fn found(&self, key: String) -> Option<Found> {
        let (kind, hash) = self.redis.v1()?.parse(&key)?;
        Some(Found { key, kind, hash })
    }

    /// Records what a v1 key held, for as long as Redis keeps it.
    fn apply_read(&self, read: Read, writes: &Writes<'_>) {
        let Found { kind, hash, .. } = read.found;
        let ttl = match read.pttl_ms {
            // No TTL: a writer broke the schema. Redis refuses the token for as long
            // as the key exists, so the mirror must too.
            -1 => {
                tracing::warn!(
                    kind = kind.code(),
                    "a revocation in Redis has no TTL; mirrored as long-lived"
                );
                Some(KEY_WITHOUT_TTL)
            }
            ms => u64::try_from(ms).ok().map(Duration::from_millis),
        };
        // Not in the ledger: v1 keys are not written back, the v2 copy of the write is.
        if let (Some(value), Some(ttl)) = (read.value, ttl) {
            apply(writes, kind, &hash, &value, ttl);
        }
    }
}
