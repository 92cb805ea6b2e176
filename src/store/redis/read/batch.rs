//! Many checks at once, for a layer's poller of open streams: the queries grouped by
//! the bucket each is checked in, and each group's keys read by one `MGET` (a few
//! hundred queries to a command), every bucket's at the same time.

use ::redis::{Cmd, Value};

use super::check::{answer_of, check_keys, reply_values};
use crate::store::redis::RedisStore;
use crate::store::redis::connect::command::Budget;
use crate::store::{Lookup, RevocationQuery, StoreError};

/// Queries per `MGET`: up to four keys each, so a command stays under a few hundred
/// kilobytes and never holds Redis for long.
const PER_COMMAND: usize = 256;

impl RedisStore {
    /// The answers to `queries`, in their order: one `MGET` per bucket (and per
    /// [`PER_COMMAND`] queries), sent together.
    pub(crate) async fn lookup_batch(&self, queries: &[RevocationQuery]) -> Result<Vec<Lookup>, StoreError> {
        if self.v1().is_some() {
            // During an upgrade's transition a check reads both schemas: ask as checks do.
            let mut lookups = Vec::with_capacity(queries.len());
            for query in queries {
                lookups.push(crate::store::RevocationStore::lookup(self, query).await?);
            }
            return Ok(lookups);
        }
        let mut by_bucket: std::collections::BTreeMap<u32, Vec<usize>> = std::collections::BTreeMap::new();
        for (at, query) in queries.iter().enumerate() {
            let bucket = self.bucket_for(&query.token, query.subject.as_ref());
            by_bucket.entry(bucket).or_default().push(at);
        }
        let schema = self.schema();
        // Each query's token bound to its subject, the second key it is revoked under.
        let bound: Vec<_> = queries.iter().map(RevocationQuery::token_for_subject).collect();
        let mut commands = Vec::new();
        for (bucket, members) in by_bucket {
            for chunk in members.chunks(PER_COMMAND) {
                let mut mget = Cmd::new();
                mget.arg("MGET");
                let mut key = String::with_capacity(128);
                for &at in chunk {
                    for (kind, hash) in check_keys(&queries[at], bound[at].as_ref()) {
                        key.clear();
                        schema.push_key_of(&mut key, bucket, kind, hash);
                        mget.arg(key.as_str());
                    }
                }
                commands.push((bucket, chunk.to_vec(), mget));
            }
        }
        let replies = futures_util::future::join_all(commands.iter().map(|(bucket, _, mget)| {
            self.run(
                "Redis batched revocation lookup failed",
                Budget::Check,
                *bucket,
                move |mut connection| {
                    let mget = mget.clone();
                    async move { mget.query_async::<Value>(&mut connection).await }
                },
            )
        }))
        .await;
        let mut lookups = vec![Lookup::default(); queries.len()];
        for ((_, members, _), reply) in commands.iter().zip(replies) {
            let reply = reply?;
            let mut values = reply_values(&reply)?;
            for &at in members {
                let query = &queries[at];
                let count = check_keys(query, bound[at].as_ref()).count();
                let bound = bound[at].is_some();
                lookups[at] = answer_of(query, bound, false, &mut values.by_ref().take(count))?;
            }
            if values.next().is_some() {
                return Err(StoreError::msg(
                    "Redis answered a batched MGET with more values than keys",
                ));
            }
        }
        Ok(lookups)
    }
}
