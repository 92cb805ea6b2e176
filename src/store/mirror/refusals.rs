//! What a mirror keeps of the refusals Redis gave for it.
//!
//! While its copy is not fresh (the first load, a reconnect, a reload), a mirror's
//! checks are answered by Redis. A refusal Redis gave then is applied to the copy and
//! noted in the ledger, with the time Redis says its record has left: so that a
//! replica that refused a token never accepts it again while it is revoked, even when
//! Redis loses the record before the mirror has read its event (a flush, an empty
//! restart), and so that the mirror writes it back then like any record it applied.
//!
//! May use: the Redis store's reads, the local copy, the ledger. Used by: the mirror's
//! checks.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Shared;
use crate::store::redis::{Kind, Refusing, Targets};
use crate::store::{Lookup, RevocationQuery, RevocationStore};

/// At most this many refusals are being read back at once; beyond, a refusal is
/// answered but not kept (a burst of one revoked token during a reload must not
/// double the load on Redis).
const KEEPING_AT_ONCE: usize = 64;

impl Shared {
    /// Keeps, in the background, the records behind `refused` (Redis's answer to
    /// `query`), unless the copy refuses the token already.
    pub(super) fn keep_refusal(self: &Arc<Self>, query: &RevocationQuery, refused: Lookup) {
        if self.keeping.fetch_add(1, Ordering::AcqRel) >= KEEPING_AT_ONCE {
            self.keeping.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        let shared = Arc::clone(self);
        let query = *query;
        tokio::spawn(async move {
            match shared.redis.records_refusing(&query, &refused).await {
                Ok(records) => {
                    for record in records {
                        shared.keep(record).await;
                    }
                }
                // Answered already; kept by the feed once the mirror reads it again.
                Err(error) => tracing::debug!(%error, "a refusal from Redis could not be read back"),
            }
            shared.keeping.fetch_sub(1, Ordering::AcqRel);
        });
    }

    async fn keep(&self, record: Refusing) {
        let Refusing {
            bucket,
            kind,
            hash,
            value,
            ttl,
        } = record;
        let local = self.local();
        // The in-memory store's writes do not fail.
        let _ = match kind {
            Kind::Token => local.revoke_token(&hash, ttl).await,
            Kind::Session => local.revoke_session(&hash, ttl).await,
            Kind::Subject => local.raise_subject_watermark(&hash, value, ttl).await,
            Kind::Global => local.raise_global_watermark(value, ttl).await,
        };
        self.note_own(Targets::One(bucket), kind, &hash, value, ttl);
    }
}
