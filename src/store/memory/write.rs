//! Writing to the store: [`Writes`], one clock reading shared by the writes made with
//! it. A single revocation makes one; a mirror's load makes one per page of thousands,
//! where reading the clock and checking the sweeper for every record cost more than
//! the records themselves. Each write wakes the open streams waiting on its key once it
//! is applied (see `store/watch/`).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::table::Mark;
use super::tag::Tag;
use super::{InMemoryStore, pack, seconds, unpack};
use crate::store::key::RevocationKey;

/// Writes to an [`InMemoryStore`] as of one instant.
pub(crate) struct Writes<'a> {
    store: &'a InMemoryStore,
    now: Instant,
    /// `now` in the table's ticks.
    now_ticks: u32,
}

impl InMemoryStore {
    /// Writes as of now. Starts the sweeper if it is not running (see
    /// `InMemoryStore::start_sweeper`).
    pub(crate) fn writes(&self) -> Writes<'_> {
        self.start_sweeper();
        let now = Instant::now();
        let now_ticks = self.shared.table.tick(now);
        Writes {
            store: self,
            now,
            now_ticks,
        }
    }
}

impl Writes<'_> {
    /// Marks a token or session key revoked for `ttl`; a longer revocation already
    /// there is kept.
    pub(crate) fn mark(&self, key: &RevocationKey, ttl: Duration) {
        self.mark_as(Tag::NONE, key, ttl);
    }

    /// [`Writes::mark`], the record tagged `tag` (kept with full records only).
    pub(crate) fn mark_as(&self, tag: Tag, key: &RevocationKey, ttl: Duration) {
        let table = &self.store.shared.table;
        let expires = table.expiry(self.now, ttl);
        let mut shard = table.write(table.shard_of(key));
        shard.markers.upsert(key, expires, tag, |kept, expires| {
            *kept = (*kept).max(expires);
        });
        drop(shard);
        self.store.shared.watchers.touched(key);
    }

    /// Raises a subject's watermark to `issued_until` for `ttl` (both only ever go up).
    pub(crate) fn raise_subject(&self, subject: &RevocationKey, issued_until: u64, ttl: Duration) {
        self.raise_subject_as(Tag::NONE, subject, issued_until, ttl);
    }

    /// [`Writes::raise_subject`], the record tagged `tag` (kept with full records only).
    pub(crate) fn raise_subject_as(
        &self,
        tag: Tag,
        subject: &RevocationKey,
        issued_until: u64,
        ttl: Duration,
    ) {
        let table = &self.store.shared.table;
        let raised = Mark {
            issued_until: seconds(issued_until),
            expires: table.expiry(self.now, ttl),
        };
        let index = table.shard_of(subject);
        let mut shard = table.write(index);
        shard.subjects.upsert(subject, raised, tag, |mark, raised| {
            mark.issued_until = mark.issued_until.max(raised.issued_until);
            mark.expires = mark.expires.max(raised.expires);
        });
        table.count_subjects(index, &shard);
        drop(shard);
        self.store.shared.watchers.touched(subject);
    }

    /// Raises the global watermark to `issued_until` for `ttl`.
    pub(crate) fn raise_global(&self, issued_until: u64, ttl: Duration) {
        self.raise_global_as(Tag::NONE, issued_until, ttl);
    }

    /// [`Writes::raise_global`], the record tagged `tag` (kept with full records only).
    pub(crate) fn raise_global_as(&self, tag: Tag, issued_until: u64, ttl: Duration) {
        let shared = &self.store.shared;
        if shared.full_records && tag != Tag::NONE {
            let _ = shared
                .global_tag
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |bits| {
                    Some(Tag::from_bits(bits).merge(tag).bits())
                });
        }
        let (raised_until, raised_expires) = (seconds(issued_until), shared.table.expiry(self.now, ttl));
        let _ = shared
            .global
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |packed| {
                let (until, expires) = unpack(packed);
                // An expired watermark no longer counts: start afresh.
                if packed == 0 || expires <= self.now_ticks {
                    return Some(pack(raised_until, raised_expires));
                }
                Some(pack(until.max(raised_until), expires.max(raised_expires)))
            });
        shared.watchers.touched_all();
    }
}
