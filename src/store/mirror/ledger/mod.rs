//! The mirror's ledger: every live record it knows, in full — kind, bucket, hash, value
//! and expiry — so that when Redis loses data the mirror can write back what it lost.
//!
//! It is a view of the mirror's local copy, not a second structure: with write-back on,
//! the copy the checks read keeps full records (the whole 32-byte key, the value, the
//! expiry, and a 16-bit tag of kind and bucket; see `store/memory/full_records/`), 44–47
//! bytes per live revocation in all where a short-key copy and a separate ledger
//! took about 100.
//!
//! It follows what the mirror applies: a load, a feed event (a `del` event removes the
//! marker: an unrevoke is never written back), so what it writes back is what Redis held
//! as far as the mirror last knew. A record the mirror applied without knowing its
//! bucket (its own write, before its event comes back; a v1 key) is refused by checks
//! but not written back until a load or an event names its bucket. A record seen in
//! two buckets (a session, a token revoked without its subject, the global watermark)
//! is written back into every bucket that lost its data. Expired records are never
//! written back; the copy's sweeper reclaims them.
//!
//! In this folder: the ledger and what it writes back (`mod.rs`), its tests
//! (`tests.rs`). May use: the in-memory store's full records, the Redis store's
//! root re-exports, applying a mark (`follow/`). Used by: loading, following and
//! write-back.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::store::key::RevocationKey;
use crate::store::memory::{Buckets, InMemoryStore, Tag, Writes};
use crate::store::mirror::follow::event::apply_mark;
use crate::store::redis::Kind;

/// A record to write back: where, what, and for how long still.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Live {
    pub(super) bucket: u32,
    pub(super) kind: Kind,
    pub(super) hash: RevocationKey,
    /// The watermark, for a subject or global record; `None` for a marker.
    pub(super) mark: Option<u64>,
    pub(super) ttl: Duration,
}

/// Every live record the mirror knows, by bucket: its local copy, read in full.
#[derive(Debug)]
pub(super) struct Ledger {
    /// The mirror's local copy (a clone: the same records), keeping full records.
    local: InMemoryStore,
    /// The bucket count: a record of every bucket is written back into each.
    buckets: u32,
}

pub(super) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
}

/// A kind as a [`Tag`] keeps it.
fn code(kind: Kind) -> u8 {
    match kind {
        Kind::Token => 0,
        Kind::Session => 1,
        Kind::Subject => 2,
        Kind::Global => 3,
    }
}

fn kind(code: u8) -> Kind {
    match code {
        0 => Kind::Token,
        1 => Kind::Session,
        2 => Kind::Subject,
        _ => Kind::Global,
    }
}

impl Ledger {
    /// The ledger of `local`, a store made with `InMemoryStore::with_full_records`,
    /// of a blocklist of `buckets` buckets.
    pub(super) fn new(local: InMemoryStore, buckets: u32) -> Self {
        Self { local, buckets }
    }

    /// Notes a record of `bucket`, as the writes do: a marker keeps its latest expiry, a
    /// watermark its highest value (and latest expiry). The checks refuse it too.
    pub(super) fn record(&self, bucket: u32, kind: Kind, hash: RevocationKey, value: u64, expires_ms: u64) {
        self.noting().record(bucket, kind, hash, value, expires_ms);
    }

    /// Notes many records as of one reading of the clock (a load's page).
    pub(super) fn noting(&self) -> Noting<'_> {
        Noting {
            writes: self.local.writes(),
            now_ms: now_ms(),
        }
    }

    /// Forgets a marker removed on purpose (an unrevoke: a `del` event): the checks no
    /// longer refuse it either, as the event itself says.
    pub(super) fn forget(&self, _bucket: u32, kind: Kind, hash: RevocationKey) {
        if matches!(kind, Kind::Token | Kind::Session) {
            self.local.forget_marker(&hash);
        }
    }

    /// The live records of `buckets` (all of them when `None`), each with the time it
    /// has left (rounded up to a sixteenth of a second: never shorter than in Redis).
    pub(super) fn live(&self, buckets: Option<&[u32]>) -> Vec<Live> {
        let every: Vec<u32>;
        let targets = match buckets {
            Some(buckets) => buckets,
            None => {
                every = (0..self.buckets).collect();
                &every
            }
        };
        let records = self.local.live_records(|of| match of {
            Buckets::One(bucket) => targets.contains(&bucket),
            Buckets::Every => !targets.is_empty(),
        });
        let mut live = Vec::with_capacity(records.len());
        for record in records {
            let kind = kind(record.kind);
            let mark = matches!(kind, Kind::Subject | Kind::Global).then_some(record.value);
            let one;
            let into: &[u32] = match record.buckets {
                Buckets::One(bucket) => {
                    one = [bucket];
                    &one
                }
                Buckets::Every => targets,
            };
            live.extend(into.iter().map(|&bucket| Live {
                bucket,
                kind,
                hash: record.hash,
                mark,
                ttl: record.ttl,
            }));
        }
        live
    }

    /// Nothing to do: expired records are reclaimed by the local copy's own sweeper,
    /// a slice at a time (see `InMemoryStore`).
    pub(super) async fn purge_if_due(&self) {}
}

/// Records being noted: see [`Ledger::noting`].
pub(super) struct Noting<'a> {
    writes: Writes<'a>,
    now_ms: u64,
}

impl Noting<'_> {
    /// [`Ledger::record`].
    pub(super) fn record(
        &mut self,
        bucket: u32,
        kind: Kind,
        hash: RevocationKey,
        value: u64,
        expires_ms: u64,
    ) {
        let Some(ttl) = expires_ms
            .checked_sub(self.now_ms)
            .filter(|left| *left > 0)
            .map(Duration::from_millis)
        else {
            return;
        };
        apply_mark(&self.writes, tag(kind, bucket), kind, &hash, value, ttl);
    }
}

/// The tag of a record of `kind` in `bucket`.
pub(super) fn tag(kind: Kind, bucket: u32) -> Tag {
    Tag::new(code(kind), bucket)
}

#[cfg(test)]
mod tests;
