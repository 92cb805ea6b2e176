//! Loading: every live record of some feeds' buckets, read with `SCAN` on every master,
//! and the position in each feed to follow from, noted before the scan.

use std::sync::PoisonError;
use std::time::Duration;

use ::redis::Value;
use futures_util::future::join_all;

use super::event::apply;
use super::feeds::{Cursor, Feeds};
use super::ledger::now_ms;
use super::{BATCH, Shared, bounded};
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
type Found = (Kind, RevocationKey, String, Option<u32>);

impl Shared {
    /// Loads everything into a fresh local copy that replaces the old one: the start,
    /// or a mirror that lost its place in every feed.
    pub(super) async fn load_all(&self, connection: &mut Conn, feeds: &mut Feeds) -> Result<(), StoreError> {
        let all: Vec<usize> = (0..feeds.streams.len()).collect();
        let positions = self.positions(connection, feeds, &all).await?;
        let fresh = InMemoryStore::new();
        // What Redis holds now is the whole truth (nothing was lost, or what was is
        // written back already): the ledger is filled again from it.
        if let Some(ledger) = &self.ledger {
            ledger.clear(None);
        }
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
        if let Some(ledger) = &self.ledger {
            let buckets: Vec<u32> = which.iter().filter_map(|&at| feeds.streams[at].bucket).collect();
            ledger.clear(Some(&buckets));
        }
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
                let mut cursor = 0u64;
                loop {
                    let mut scan = ::redis::cmd("SCAN");
                    scan.arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(BATCH);
                    let (next, keys): (u64, Vec<String>) =
                        bounded(timeout, connection.on_node(node, &scan)).await?;
                    let found: Vec<Found> = keys.into_iter().filter_map(|key| self.parse(key)).collect();
                    if !found.is_empty() {
                        self.fetch(connection, node, &found, into).await?;
                    }
                    cursor = next;
                    if cursor == 0 {
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    fn parse(&self, key: String) -> Option<Found> {
        let parsed = match self.redis.schema().parse(&key) {
            Some((bucket, kind, hash)) => Some((kind, hash, Some(bucket))),
            None => self
                .redis
                .v1()
                .and_then(|v1| v1.parse(&key))
                .map(|(kind, hash)| (kind, hash, None)),
        };
        parsed.map(|(kind, hash, bucket)| (kind, hash, key, bucket))
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
        let timeout = self.redis.command_timeout();
        let mut pipeline = ::redis::pipe();
        for (_, _, key, _) in found {
            pipeline.get(key).cmd("PTTL").arg(key);
        }
        // `None`: the whole pipeline was refused (a node that lost every slot meanwhile).
        let values = match bounded(timeout, connection.pipeline_on_node(node, &pipeline)).await {
            Ok(values) if values.len() == found.len() * 2 => Some(values),
            _ => None,
        };
        for (at, (kind, hash, key, bucket)) in found.iter().enumerate() {
            let pair = values
                .as_ref()
                .map(|values| (&values[2 * at], &values[2 * at + 1]));
            let (value, pttl) = match pair {
                Some((value, pttl))
                    if !matches!(value, Value::ServerError(_)) && !matches!(pttl, Value::ServerError(_)) =>
                {
                    (value.clone(), pttl.clone())
                }
                _ => {
                    let mut routed = ::redis::pipe();
                    routed.get(key).cmd("PTTL").arg(key);
                    let mut connection = connection.clone();
                    let values: Vec<Value> = bounded(timeout, routed.query_async(&mut connection)).await?;
                    match <[Value; 2]>::try_from(values) {
                        Ok([value, pttl]) => (value, pttl),
                        Err(_) => continue,
                    }
                }
            };
            let value: Option<String> = ::redis::from_redis_value(value).ok().flatten();
            let pttl: i64 = ::redis::from_redis_value(pttl).unwrap_or(-2);
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
            if let (Some(value), Some(ttl)) = (value, ttl) {
                apply(into, *kind, hash, &value, ttl).await;
                // v1 keys are not written back: the v2 copy of the write is.
                if let (Some(ledger), Some(bucket), Ok(value)) = (&self.ledger, bucket, value.parse()) {
                    let expires_ms =
                        now_ms().saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
                    ledger.record(*bucket, *kind, *hash, value, expires_ms);
                }
            }
        }
        Ok(())
    }
}
