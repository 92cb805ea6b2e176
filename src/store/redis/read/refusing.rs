//! The records behind a refusal: which of a check's keys refused it, and how long each
//! has left, for a mirror that answered from Redis and keeps what it was told.

use std::time::Duration;

use super::check::check_keys;
use crate::store::key::RevocationKey;
use crate::store::redis::connect::command::Budget;
use crate::store::redis::{Kind, RedisStore};
use crate::store::{Lookup, RevocationQuery, StoreError};

/// One record that refused a check, as Redis holds it in the check's bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refusing {
    pub(crate) bucket: u32,
    pub(crate) kind: Kind,
    /// The record's hash ([`RevocationKey::ZERO`] for the global watermark).
    pub(crate) hash: RevocationKey,
    /// `1` for a token or a session, the watermark for a subject or everything.
    pub(crate) value: u64,
    pub(crate) ttl: Duration,
}

impl RedisStore {
    /// The records of `query`'s bucket that `refused` (an answer of this store's) says
    /// are there, with the time each has left: one `PTTL` per record, in one pipeline to
    /// the bucket's node. A record gone meanwhile (expired, lifted, or lost) is left
    /// out; so are the keys of a v1 transition.
    pub(crate) async fn records_refusing(
        &self,
        query: &RevocationQuery,
        refused: &Lookup,
    ) -> Result<Vec<Refusing>, StoreError> {
        let schema = self.schema();
        let bucket = self.bucket_for(&query.token, query.subject.as_ref());
        let bound = query.token_for_subject();
        let candidates: Vec<Refusing> = check_keys(query, bound.as_ref())
            .filter_map(|(kind, hash)| {
                let (hash, value) = match kind {
                    Kind::Token => (*hash, refused.token_revoked.then_some(1)?),
                    Kind::Session => (*hash, refused.session_revoked.then_some(1)?),
                    Kind::Subject => (*hash, refused.subject_watermark?),
                    Kind::Global => (RevocationKey::ZERO, refused.global_watermark?),
                };
                Some(Refusing {
                    bucket,
                    kind,
                    hash,
                    value,
                    ttl: Duration::ZERO,
                })
            })
            .collect();
        if candidates.is_empty() {
            return Ok(candidates);
        }
        let mut pipeline = ::redis::pipe();
        for candidate in &candidates {
            pipeline
                .cmd("PTTL")
                .arg(schema.key_of(bucket, candidate.kind, &candidate.hash));
        }
        let left: Vec<i64> = self
            .run(
                "Redis read of a refusal's records failed",
                Budget::Check,
                bucket,
                |mut connection| {
                    let pipeline = pipeline.clone();
                    async move { pipeline.query_async(&mut connection).await }
                },
            )
            .await?;
        if left.len() != candidates.len() {
            return Err(StoreError::msg(
                "Redis answered a PTTL pipeline with another number of values",
            ));
        }
        // -2: gone; -1: no TTL (never written so by this crate: left out rather than
        // kept for ever).
        Ok(candidates
            .into_iter()
            .zip(left)
            .filter_map(|(candidate, left)| {
                let left = u64::try_from(left).ok().filter(|&left| left > 0)?;
                Some(Refusing {
                    ttl: Duration::from_millis(left),
                    ..candidate
                })
            })
            .collect())
    }
}
