//! [`MirrorStore`] as a [`RevocationStore`]: a check answered from memory while the copy
//! is fresh (from Redis, joined with what the copy knows, when it is not); a revocation
//! written to Redis, then applied to the copy and noted in the ledger at once.

use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::MirrorStore;
use crate::store::key::{RevocationKey, token_record};
use crate::store::redis::{Kind, Targets};
use crate::store::{Lookup, RevocationQuery, RevocationStore, StoreError, StoreHealth, Watchers};

#[async_trait]
impl RevocationStore for MirrorStore {
    async fn lookup(&self, query: &RevocationQuery) -> Result<Lookup, StoreError> {
        let shared = &*self.shared;
        // One clock read serves both the expiry of entries and the staleness bound.
        let now = Instant::now();
        let known = shared.local().lookup_at(query, now);
        if shared.fresh_at(now) {
            return Ok(known);
        }
        match shared.redis.lookup(query).await {
            Ok(remote) => Ok(known.union(remote)),
            // What the mirror knows is still refused; the rest follows the policy.
            Err(_) if known.revoked_by(query.issued_at).is_some() => Ok(known),
            Err(error) => Err(error),
        }
    }

    fn lookup_immediate(&self, query: &RevocationQuery) -> Option<Lookup> {
        let now = Instant::now();
        let shared = &*self.shared;
        shared.fresh_at(now).then(|| shared.local().lookup_at(query, now))
    }

    /// Answered from memory, or by Redis with Redis's own timing (see `RedisStore`).
    async fn lookup_within(&self, query: &RevocationQuery, _timeout: Duration) -> Result<Lookup, StoreError> {
        self.lookup(query).await
    }

    fn name(&self) -> &'static str {
        "mirror"
    }

    /// The local copy's: woken as each change feed event (or a reload) is applied.
    fn watchers(&self) -> Option<Watchers> {
        self.shared.local().watchers()
    }

    /// Ready while checks are answered from memory, or while Redis answers them.
    async fn health(&self) -> StoreHealth {
        self.store_health().await
    }

    async fn revoke_token(&self, token: &RevocationKey, ttl: Duration) -> Result<(), StoreError> {
        let written = self.shared.redis.revoke_token(token, ttl).await;
        if in_redis(&written) {
            self.shared.local().revoke_token(token, ttl).await?;
            self.shared.note_own(Targets::Every, Kind::Token, token, 1, ttl);
        }
        written
    }

    async fn revoke_token_of(
        &self,
        token: &RevocationKey,
        subject: Option<&RevocationKey>,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let written = self.shared.redis.revoke_token_of(token, subject, ttl).await;
        if in_redis(&written) {
            // The record Redis holds now: the token bound to its subject.
            let record = token_record(token, subject);
            self.shared.local().revoke_token(&record, ttl).await?;
            let bucket = self.shared.redis.bucket_for(token, subject);
            self.shared
                .note_own(Targets::One(bucket), Kind::Token, &record, 1, ttl);
        }
        written
    }

    async fn revoke_session(&self, session: &RevocationKey, ttl: Duration) -> Result<(), StoreError> {
        let written = self.shared.redis.revoke_session(session, ttl).await;
        if in_redis(&written) {
            self.shared.local().revoke_session(session, ttl).await?;
            self.shared
                .note_own(Targets::Every, Kind::Session, session, 1, ttl);
        }
        written
    }

    async fn raise_subject_watermark(
        &self,
        subject: &RevocationKey,
        issued_until: u64,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let written = self
            .shared
            .redis
            .raise_subject_watermark(subject, issued_until, ttl)
            .await;
        if in_redis(&written) {
            self.shared
                .local()
                .raise_subject_watermark(subject, issued_until, ttl)
                .await?;
            let bucket = self.shared.redis.bucket_of(subject);
            self.shared
                .note_own(Targets::One(bucket), Kind::Subject, subject, issued_until, ttl);
        }
        written
    }

    async fn raise_global_watermark(&self, issued_until: u64, ttl: Duration) -> Result<(), StoreError> {
        let written = self.shared.redis.raise_global_watermark(issued_until, ttl).await;
        if in_redis(&written) {
            self.shared
                .local()
                .raise_global_watermark(issued_until, ttl)
                .await?;
            self.shared.note_own(
                Targets::Every,
                Kind::Global,
                &RevocationKey::ZERO,
                issued_until,
                ttl,
            );
        }
        written
    }
}

/// Whether a write reached Redis: it did, or it did without the confirmation asked for
/// (applied, but not known durable). Either way the local copy records it too, so this
/// replica refuses what it just revoked; the caller still gets the error.
fn in_redis(written: &Result<(), StoreError>) -> bool {
    written.as_ref().is_ok() || written.as_ref().is_err_and(StoreError::is_unacknowledged)
}
