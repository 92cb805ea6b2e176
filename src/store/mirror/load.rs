//! Loading: every live record of some feeds' buckets, read with `SCAN` on every master,
//! and the position in each feed to follow from, noted before the scan.

use std::sync::PoisonError;
use std::time::Duration;

use ::redis::Value;
use futures_util::future::{join, join_all};

use super::event::apply;
use super::feeds::{Cursor, Feeds};
use super::{Shared, bounded};
use crate::key::RevocationKey;
use crate::store::StoreError;
use crate::store::memory::InMemoryStore;
use crate::store::redis::{Conn, Kind, Node};

/// How long the mirror keeps a record that has no TTL in Redis (a foreign writer's
/// mistake): a year, reviewed at every reload.
const KEY_WITHOUT_TTL: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Reads the feed position a load starts from (see the script).
pub(super) const POSITION: &str = include_str!("position.lua");

/// A record found by a scan: what it is, and its key.
type Found = (Kind, RevocationKey, String);

/// How many keys one `SCAN` step of a load brings at most: its keys are then read in
/// one pipeline (a `GET` and a `PTTL` each), so fewer, larger steps mean fewer round
/// trips.
const LOAD_BATCH: usize = 2000;

/// One `SCAN` step on `node` from `cursor`: the next cursor (0: done) and the keys found.
async fn scan_step(
    mut connection: Conn,
    node: &Node,
    pattern: &str,
    cursor: u64,
    timeout: Duration,
) -> Result<(u64, Vec<String>), StoreError> {
    let mut scan = ::redis::cmd("SCAN");
    scan.arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(LOAD_BATCH);
    bounded(timeout, connection.on_node(node, &scan)).await
}

/// Whether loading a record reads its value: a marker's is always `1` (the key's
/// existence is the revocation), so only a watermark's is read. A load of token
/// revocations then asks Redis one command a record (`PTTL`), not two.
fn reads_value(kind: Kind) -> bool {
    matches!(kind, Kind::Subject | Kind::Global)
}

/// Adds the commands that read a record of `kind` to `pipeline`; returns how many.
fn read_commands(pipeline: &mut ::redis::Pipeline, kind: Kind, key: &str) -> usize {
    if reads_value(kind) {
        pipeline.get(key);
    }
    pipeline.cmd("PTTL").arg(key);
    1 + usize::from(reads_value(kind))
}

/// A record's value (a watermark's; `None` for a marker) and `PTTL` from the replies to
/// [`read_commands`]; `None` when the key is gone (or a watermark is not a string).
fn read_record(kind: Kind, replies: &[Value]) -> Option<(Option<String>, i64)> {
    let pttl = match replies.last()? {
        Value::Int(pttl) => *pttl,
        _ => return None,
    };
    if pttl == -2 {
        return None;
    }
    if !reads_value(kind) {
        return Some((None, pttl));
    }
    let value = match replies.first()? {
        Value::BulkString(bytes) => std::str::from_utf8(bytes).ok()?.to_owned(),
        Value::SimpleString(text) => text.clone(),
        _ => return None,
    };
    Some((Some(value), pttl))
}

impl Shared {
    /// Loads everything into a fresh local copy that replaces the old one: the start,
    /// or a mirror that lost its place in every feed.
    pub(super) async fn load_all(&self, connection: &mut Conn, feeds: &mut Feeds) -> Result<(), StoreError> {
        let all: Vec<usize> = (0..feeds.streams.len()).collect();
        let positions = self.positions(connection, feeds, &all).await?;
        let fresh = InMemoryStore::new();
        let mut patterns: Vec<String> = vec![self.redis.schema().pattern(None)];
        if let Some(v1) = self.redis.v1() {
            patterns.push(v1.pattern());
        }
        self.scan_into(connection, &patterns, &fresh).await?;
        self.local.replace_with(fresh);
        for (at, cursor) in all.into_iter().zip(positions) {
            feeds.cursors[at] = Some(cursor);
        }
        self.loaded(feeds, false);
        Ok(())
    }

    /// Reloads the buckets of the feeds `which` (each lost its place: a gap) into the
    /// local copy as it is: the other buckets keep being followed, and what the copy
    /// knows is only ever added to.
    pub(super) async fn reload(
        &self,
        connection: &mut Conn,
        feeds: &mut Feeds,
        which: &[usize],
    ) -> Result<(), StoreError> {
        let positions = self.positions(connection, feeds, which).await?;
        let patterns: Vec<String> = which
            .iter()
            .map(|&at| feeds.streams[at].pattern.clone())
            .collect();
        self.scan_into(connection, &patterns, &self.local).await?;
        for (&at, cursor) in which.iter().zip(positions) {
            feeds.cursors[at] = Some(cursor);
        }
        self.loaded(feeds, true);
        Ok(())
    }

    fn loaded(&self, feeds: &Feeds, partial: bool) {
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
        let timeout = self.redis.command_timeout();
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

    /// Scans each master, with the next `SCAN` step in flight while the keys of the
    /// last one are read and applied: Redis works on the one while this process works
    /// on the other, where one step after the other left each idle half the time.
    async fn scan_masters(
        &self,
        connection: &mut Conn,
        patterns: &[String],
        into: &InMemoryStore,
    ) -> Result<(), StoreError> {
        let timeout = self.redis.command_timeout();
        let masters = bounded(timeout, connection.masters()).await?;
        for node in &masters {
            for pattern in patterns {
                let mut answer = scan_step(connection.clone(), node, pattern, 0, timeout).await?;
                loop {
                    let (next, keys) = answer;
                    let found: Vec<Found> = keys.into_iter().filter_map(|key| self.parse(key)).collect();
                    let mut fetching = connection.clone();
                    let fetch = self.fetch(&mut fetching, node, &found, into);
                    if next == 0 {
                        fetch.await?;
                        break;
                    }
                    let (scanned, fetched) =
                        join(scan_step(connection.clone(), node, pattern, next, timeout), fetch).await;
                    fetched?;
                    answer = scanned?;
                }
            }
        }
        Ok(())
    }

    fn parse(&self, key: String) -> Option<Found> {
        let parsed = match self.redis.schema().parse(&key) {
            Some((_, kind, hash)) => Some((kind, hash)),
            None => self.redis.v1().and_then(|v1| v1.parse(&key)),
        };
        parsed.map(|(kind, hash)| (kind, hash, key))
    }

    /// Reads the value and remaining time of each record `SCAN` found on `node`, in one
    /// pipeline to that node; a key that left it meanwhile (a slot migrating) is read
    /// again where the cluster now keeps it.
    async fn fetch(
        &self,
        connection: &mut Conn,
        node: &Node,
        found: &[Found],
        into: &InMemoryStore,
    ) -> Result<(), StoreError> {
        if found.is_empty() {
            return Ok(());
        }
        let timeout = self.redis.command_timeout();
        let mut pipeline = ::redis::pipe();
        let mut expected = 0;
        for (kind, _, key) in found {
            expected += read_commands(&mut pipeline, *kind, key);
        }
        // `None`: the whole pipeline was refused (a node that lost every slot meanwhile).
        let values = match bounded(timeout, connection.pipeline_on_node(node, &pipeline)).await {
            Ok(values) if values.len() == expected => Some(values),
            _ => None,
        };
        let mut at = 0;
        for (kind, hash, key) in found {
            let width = 1 + usize::from(reads_value(*kind));
            let mine = values.as_ref().map(|values| &values[at..at + width]);
            at += width;
            let read = match mine {
                Some(replies) if !replies.iter().any(|reply| matches!(reply, Value::ServerError(_))) => {
                    read_record(*kind, replies)
                }
                _ => {
                    let mut routed = ::redis::pipe();
                    read_commands(&mut routed, *kind, key);
                    let mut connection = connection.clone();
                    let replies: Vec<Value> = bounded(timeout, routed.query_async(&mut connection)).await?;
                    if replies.len() != width {
                        continue;
                    }
                    read_record(*kind, &replies)
                }
            };
            let Some((value, pttl)) = read else { continue };
            let ttl = match pttl {
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
            if let Some(ttl) = ttl {
                apply(into, *kind, hash, value.as_deref().unwrap_or("1"), ttl).await;
            }
        }
        Ok(())
    }
}
