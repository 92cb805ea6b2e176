//! [`RedisStore`] as a [`RevocationStore`]: a check is one `MGET` of one bucket (one
//! slot, one node), a revocation one script per bucket it goes to.

use std::time::Duration;

use async_trait::async_trait;

use super::connect::command::Budget;
use super::read::check::{CheckReply, answer_of, check_keys, give_command, reply_values, take_command};
use super::{Kind, RedisStore, Targets, connect};
use crate::store::key::{RevocationKey, token_record};
use crate::store::{Lookup, RevocationQuery, RevocationStore, StoreError, StoreHealth};

#[async_trait]
impl RevocationStore for RedisStore {
    /// One `MGET` of the bucket the token is checked in (one slot, one node); during a
    /// v1 transition the same `MGET` also reads the v1 keys (a single server).
    async fn lookup(&self, query: &RevocationQuery) -> Result<Lookup, StoreError> {
        let schema = self.schema();
        let bucket = self.bucket_for(&query.token, query.subject.as_ref());
        let mut scratch = take_command();
        let v1 = self.v1();
        let bound = query.token_for_subject();
        let keys = check_keys(query, bound.as_ref()).count()
            + v1.as_ref().map_or(0, |_| check_keys(query, None).count());
        connect::check::push_array_len(&mut scratch.packed, keys + 1);
        connect::check::push_bulk(&mut scratch.packed, b"MGET");
        for (kind, hash) in check_keys(query, bound.as_ref()) {
            scratch.key.clear();
            schema.push_key_of(&mut scratch.key, bucket, kind, hash);
            scratch.mget.arg(scratch.key.as_str());
            connect::check::push_bulk(&mut scratch.packed, scratch.key.as_bytes());
        }
        if let Some(v1) = &v1 {
            for (kind, hash) in check_keys(query, None) {
                let key = v1.key(kind, hash);
                connect::check::push_bulk(&mut scratch.packed, key.as_bytes());
                scratch.mget.arg(key);
            }
        }
        let (mget, packed) = (&scratch.mget, scratch.packed.as_slice());
        let reply: Result<CheckReply, StoreError> = self
            .run_on("Redis revocation lookup failed", Budget::Check, bucket, |live| {
                // Sent now, on the check connection when there is one with a slot free.
                let pending = live.check.as_ref().and_then(|check| check.send(packed, keys));
                let mut connection = live.connection.clone();
                async move {
                    match pending {
                        Some(pending) => pending.await.map(CheckReply::Values),
                        None => mget.query_async(&mut connection).await.map(CheckReply::Value),
                    }
                }
            })
            .await;
        give_command(scratch);
        match reply? {
            CheckReply::Values(values) => {
                answer_of(query, bound.is_some(), v1.is_some(), &mut values.iter().map(Ok))
            }
            CheckReply::Value(value) => {
                answer_of(query, bound.is_some(), v1.is_some(), &mut reply_values(&value)?)
            }
        }
    }

    /// Redis's own timing: a check fails when Redis stays silent for the command
    /// timeout, not when it waited behind a burst queued in this process (bounded at
    /// a few command timeouts while Redis keeps answering others).
    async fn lookup_within(&self, query: &RevocationQuery, _timeout: Duration) -> Result<Lookup, StoreError> {
        self.lookup(query).await
    }

    /// One `MGET` per bucket for all of them (a few hundred queries to a command), the
    /// buckets' commands sent together.
    async fn lookup_many(&self, queries: &[RevocationQuery]) -> Result<Vec<Lookup>, StoreError> {
        self.lookup_batch(queries).await
    }

    fn name(&self) -> &'static str {
        "redis"
    }

    /// A `PING`; on a cluster, one to every master, so that a master whose buckets
    /// cannot be checked makes the store not ready (the log names it).
    async fn health(&self) -> StoreHealth {
        let ping = self
            .run("Redis PING failed", Budget::Check, 0, |mut connection| async move {
                ::redis::cmd("PING").query_async::<String>(&mut connection).await
            })
            .await;
        let loss = self.data_loss();
        let ping = match ping {
            Ok(_) if self.is_cluster() => self.ping_every_master().await,
            other => other.map(drop),
        };
        let health = match ping {
            Ok(_) => StoreHealth {
                reachable: Some(true),
                ..StoreHealth::ready("redis")
            },
            Err(error) => StoreHealth {
                reachable: Some(false),
                ..StoreHealth::not_ready("redis", error.to_string())
            },
        };
        StoreHealth {
            data_losses: (loss.detected > 0).then_some(loss.detected),
            written_back: (loss.written_back > 0).then_some(loss.written_back),
            ..health
        }
    }

    /// Not knowing the token's subject, nor so which bucket it is checked in, writes the
    /// marker to every bucket; the [`Revoker`](crate::Revoker) calls
    /// [`revoke_token_of`](RevocationStore::revoke_token_of) instead, one write.
    async fn revoke_token(&self, token: &RevocationKey, ttl: Duration) -> Result<(), StoreError> {
        self.mark(Targets::Every, Kind::Token, token, ttl).await
    }

    /// One write, to the bucket the token is checked in: the token bound to its subject
    /// (it refuses that subject's token only), or its own key when it has no subject.
    async fn revoke_token_of(
        &self,
        token: &RevocationKey,
        subject: Option<&RevocationKey>,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let bucket = self.bucket_for(token, subject);
        let record = token_record(token, subject);
        self.mark_token_for_subject(bucket, &record, token, ttl).await
    }

    /// A copy in every bucket: the tokens of the session are checked in their subject's
    /// bucket, which the `sid` does not tell.
    async fn revoke_session(&self, session: &RevocationKey, ttl: Duration) -> Result<(), StoreError> {
        self.mark(Targets::Every, Kind::Session, session, ttl).await
    }

    async fn raise_subject_watermark(
        &self,
        subject: &RevocationKey,
        issued_until: u64,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let bucket = self.bucket_of(subject);
        self.raise(Targets::One(bucket), Kind::Subject, subject, issued_until, ttl)
            .await
    }

    /// A copy in every bucket, so that every check still reads one bucket.
    async fn raise_global_watermark(&self, issued_until: u64, ttl: Duration) -> Result<(), StoreError> {
        self.raise(
            Targets::Every,
            Kind::Global,
            &RevocationKey::ZERO,
            issued_until,
            ttl,
        )
        .await
    }
}
