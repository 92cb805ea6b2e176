//! The change feeds a mirror follows — one per bucket, and v1's during a transition —
//! where it stands in each, and reading them: one `XREAD BLOCK` over every feed on a
//! single server; on a cluster (where one `XREAD` may only name streams of one slot) one
//! non-blocking `XREAD` per feed, all at once over the cluster's connection.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;

use super::event::{Event, FeedEntry};
use crate::store::StoreError;
use crate::store::memory::InMemoryStore;
use crate::store::mirror::BATCH;
use crate::store::mirror::ledger::Ledger;
use crate::store::redis::scan::bounded;
use crate::store::redis::{Conn, RedisStore};

/// One change feed.
pub(crate) struct Stream {
    /// The stream's key.
    pub(crate) key: String,
    /// Its sequence counter's key.
    pub(crate) seq_key: String,
    /// The `SCAN` pattern of the records it announces.
    pub(crate) pattern: String,
    /// A bucket's feed (v2), or v1's.
    pub(crate) bucket: Option<u32>,
}

/// Where the mirror stands in one feed: the last event applied.
#[derive(Debug, Clone)]
pub(crate) struct Cursor {
    pub(crate) last_id: String,
    pub(crate) last_seq: u64,
}

/// Every feed the mirror follows, with its cursor (`None`: to be loaded).
pub(crate) struct Feeds {
    pub(crate) streams: Vec<Stream>,
    pub(crate) cursors: Vec<Option<Cursor>>,
    index: HashMap<String, usize>,
    /// Where each event applied is noted in full, with write-back on.
    ledger: Option<Arc<Ledger>>,
    /// The copy was loaded once: from then on feeds that lose their place are reloaded
    /// into the copy as it is, never into a fresh one (which would forget what Redis no
    /// longer holds, before anyone noticed it lost it), even when that is every feed.
    pub(crate) loaded: bool,
    /// A load just ended: the next read of the feeds does not wait for an event, so
    /// the mirror serves locally as soon as it has what was written during the load
    /// (a blocking read with nothing new would hold that back for a whole block).
    pub(crate) catch_up: bool,
    /// When the last read that brought events ended (see `DEFAULT_READ_COALESCING`).
    pub(crate) last_events: Option<Instant>,
}

/// What one read of some feeds found.
#[derive(Debug, Default)]
pub(crate) struct Read {
    /// Some feed returned a full batch: more may be waiting.
    pub(crate) behind: bool,
    /// Feeds with a gap (trimmed events, or a writer that skipped numbers): their
    /// cursors are dropped, and they must be reloaded.
    pub(crate) gaps: usize,
    /// Buckets whose feed went backwards (an event numbered at or below one already
    /// applied): Redis lost their latest writes.
    pub(crate) lost: Vec<u32>,
}

impl Feeds {
    pub(crate) fn new(redis: &RedisStore, ledger: Option<Arc<Ledger>>) -> Self {
        let schema = redis.schema();
        let mut streams: Vec<Stream> = (0..schema.buckets())
            .map(|bucket| Stream {
                key: schema.feed(bucket),
                seq_key: schema.feed_seq(bucket),
                pattern: schema.pattern(Some(bucket)),
                bucket: Some(bucket),
            })
            .collect();
        if let Some(v1) = redis.v1() {
            streams.push(Stream {
                key: v1.feed(),
                seq_key: v1.feed_seq(),
                pattern: v1.pattern(),
                bucket: None,
            });
        }
        let index = streams
            .iter()
            .enumerate()
            .map(|(at, stream)| (stream.key.clone(), at))
            .collect();
        Self {
            cursors: vec![None; streams.len()],
            streams,
            index,
            ledger,
            loaded: false,
            catch_up: false,
            last_events: None,
        }
    }

    /// Feeds whose cursor is gone: all of them before the first load.
    pub(crate) fn unloaded(&self) -> Vec<usize> {
        (0..self.cursors.len())
            .filter(|&at| self.cursors[at].is_none())
            .collect()
    }

    /// The sum of the last sequence numbers applied (events applied, all feeds).
    pub(crate) fn applied(&self) -> u64 {
        self.cursors.iter().flatten().map(|cursor| cursor.last_seq).sum()
    }

    /// The feed of a v2 bucket.
    pub(crate) fn of_bucket(&self, bucket: u32) -> Option<usize> {
        self.streams
            .iter()
            .position(|stream| stream.bucket == Some(bucket))
    }

    /// Reads every feed on a single server, waiting up to `block` for an event (not at
    /// all when it is zero).
    pub(crate) async fn read_blocking(
        &mut self,
        connection: &mut Conn,
        block: Duration,
        timeout: Duration,
        local: &InMemoryStore,
    ) -> Result<Read, StoreError> {
        let mut xread = ::redis::cmd("XREAD");
        xread.arg("COUNT").arg(BATCH);
        if !block.is_zero() {
            // At least a millisecond: `BLOCK 0` would wait for ever.
            xread
                .arg("BLOCK")
                .arg(u64::try_from(block.as_millis()).unwrap_or(250).max(1));
        }
        xread.arg("STREAMS");
        let open: Vec<usize> = (0..self.streams.len())
            .filter(|&at| self.cursors[at].is_some())
            .collect();
        for &at in &open {
            xread.arg(&self.streams[at].key);
        }
        for &at in &open {
            xread.arg(self.cursors[at].as_ref().map_or("0-0", |c| c.last_id.as_str()));
        }
        let reply: Option<Vec<(String, Vec<FeedEntry>)>> =
            bounded(block.saturating_add(timeout), xread.query_async(connection)).await?;
        let mut read = Read::default();
        for (key, entries) in reply.into_iter().flatten() {
            if let Some(&at) = self.index.get(&key) {
                self.apply(at, entries, local, &mut read).await;
            }
        }
        Ok(read)
    }

    /// Reads the feeds `which` without waiting, all at once (a cluster: each feed's
    /// `XREAD` goes to the node of its slot).
    pub(crate) async fn read_now(
        &mut self,
        connection: &Conn,
        which: &[usize],
        timeout: Duration,
        local: &InMemoryStore,
    ) -> Result<Read, StoreError> {
        let which: Vec<usize> = which
            .iter()
            .copied()
            .filter(|&at| self.cursors.get(at).is_some_and(Option::is_some))
            .collect();
        let reads = which.iter().map(|&at| {
            let mut connection = connection.clone();
            let mut xread = ::redis::cmd("XREAD");
            xread
                .arg("COUNT")
                .arg(BATCH)
                .arg("STREAMS")
                .arg(&self.streams[at].key)
                .arg(self.cursors[at].as_ref().map_or("0-0", |c| c.last_id.as_str()));
            let key = &self.streams[at].key;
            async move {
                let reply: Option<Vec<(String, Vec<FeedEntry>)>> =
                    bounded(timeout, xread.query_async(&mut connection)).await?;
                let mut entries = Vec::new();
                for (stream, batch) in reply.into_iter().flatten() {
                    // Events of another feed would be numbered in another sequence.
                    if stream != *key {
                        return Err(StoreError::msg("Redis answered an XREAD with another feed"));
                    }
                    entries.extend(batch);
                }
                Ok::<_, StoreError>(entries)
            }
        });
        let replies = join_all(reads).await;
        let mut read = Read::default();
        let mut failed = None;
        for (at, reply) in which.into_iter().zip(replies) {
            match reply {
                Ok(entries) => self.apply(at, entries, local, &mut read).await,
                Err(error) => failed = Some(error),
            }
        }
        // What did come is applied; a feed that failed is read again next time.
        match failed {
            Some(error) => Err(error),
            None => Ok(read),
        }
    }

    /// Applies one feed's entries in order; a gap drops the feed's cursor.
    async fn apply(&mut self, at: usize, entries: Vec<FeedEntry>, local: &InMemoryStore, read: &mut Read) {
        if entries.len() >= BATCH {
            read.behind = true;
        }
        if !entries.is_empty() {
            self.last_events = Some(Instant::now());
        }
        let Some(cursor) = self.cursors[at].as_mut() else {
            return;
        };
        for (id, fields) in entries {
            let Some(event) = Event::parse(&fields) else {
                tracing::warn!(feed = %self.streams[at].key, %id, "malformed event in the revocation feed; reloading it");
                self.cursors[at] = None;
                read.gaps += 1;
                return;
            };
            if event.seq <= cursor.last_seq {
                // Numbers only go up, unless Redis forgot the events (and the records)
                // after them: a replica promoted without the latest writes.
                read.lost.extend(self.streams[at].bucket);
            }
            if event.seq != cursor.last_seq + 1 {
                tracing::warn!(
                    feed = %self.streams[at].key,
                    expected = cursor.last_seq + 1,
                    got = event.seq,
                    "gap in the revocation feed; reloading it"
                );
                self.cursors[at] = None;
                read.gaps += 1;
                return;
            }
            // A write the store repeated on a fresh connection (the first try's answer
            // was lost with its connection) comes as a second event, numbered next: no
            // gap, and applying it again changes nothing.
            event.apply_to(local);
            if let (Some(ledger), Some(bucket)) = (&self.ledger, self.streams[at].bucket) {
                event.note_in(ledger, bucket);
            }
            cursor.last_seq = event.seq;
            cursor.last_id = id;
        }
    }
}
