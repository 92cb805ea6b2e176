//! What a mirror learned before its first load ended — its own writes, the refusals
//! it kept — applied again to the copy that load made.
//!
//! The first load fills a fresh copy from Redis and puts it in place of the old one.
//! Anything the old copy held that Redis lost meanwhile (a flush during the load) would
//! go with it, and with it the only trace a write-back could use. So until then the
//! mirror notes each such record here, and applies the notes again once the fresh copy
//! is in place; a feed event after the load (an unrevoke, say) still has the last word.
//!
//! May use: the local copy and the ledger. Used by: the mirror's writes and kept
//! refusals, and the first load.

use std::sync::PoisonError;
use std::time::{Duration, Instant};

use super::Shared;
use crate::store::RevocationStore;
use crate::store::key::RevocationKey;
use crate::store::redis::{Kind, Targets};

/// At most this many records are noted before the first load ends (a mirror that
/// cannot load for a long while, writing meanwhile); the rest are not applied again.
const NOTED_AT_MOST: usize = 65_536;

/// One record the mirror applied before its first load ended.
pub(super) struct Noted {
    targets: Targets,
    kind: Kind,
    hash: RevocationKey,
    value: u64,
    expires: Instant,
}

impl Shared {
    /// Notes a record applied to the copy, while the first load has not ended.
    pub(super) fn note_before_load(
        &self,
        targets: Targets,
        kind: Kind,
        hash: &RevocationKey,
        value: u64,
        ttl: Duration,
    ) {
        let mut noted = self.before_load.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(noted) = noted.as_mut().filter(|noted| noted.len() < NOTED_AT_MOST) {
            noted.push(Noted {
                targets,
                kind,
                hash: *hash,
                value,
                expires: Instant::now() + ttl,
            });
        }
    }

    /// Applies again, to the copy the first load just put in place, what was noted
    /// before; from now on nothing is noted.
    pub(super) async fn apply_noted_before_load(&self) {
        let Some(noted) = self
            .before_load
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        else {
            return;
        };
        let now = Instant::now();
        let local = self.local();
        for record in noted {
            let Some(ttl) = record
                .expires
                .checked_duration_since(now)
                .filter(|ttl| !ttl.is_zero())
            else {
                continue;
            };
            // The in-memory store's writes do not fail.
            let _ = match record.kind {
                Kind::Token => local.revoke_token(&record.hash, ttl).await,
                Kind::Session => local.revoke_session(&record.hash, ttl).await,
                Kind::Subject => {
                    local
                        .raise_subject_watermark(&record.hash, record.value, ttl)
                        .await
                }
                Kind::Global => local.raise_global_watermark(record.value, ttl).await,
            };
            self.note_in_ledger(record.targets, record.kind, &record.hash, record.value, ttl);
        }
    }
}
