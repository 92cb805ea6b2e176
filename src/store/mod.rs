//! Where revocations are kept: the [`RevocationStore`] trait and its implementations.
//!
//! | store             | feature | for                                                              |
//! |-------------------|---------|------------------------------------------------------------------|
//! | [`InMemoryStore`] |         | one process, and tests                                           |
//! | `RedisStore`      | `redis` | many replicas sharing one blocklist, on a server or a cluster; a check is one `MGET` |
//! | `MirrorStore`     | `redis` | a local copy of a `RedisStore`, kept in step by its change feed: checks answered from memory |
//!
//! Everything about stores lives in this module, at one path each
//! (`tower_jwt_revoke::store::RedisStore`, `…::store::MirrorHealth`, and so on).
//! [`RevocationLayer::new`](crate::RevocationLayer::new) takes any of them, or an
//! `Arc<dyn RevocationStore>` chosen from configuration at run time.
//!
//! A store records four kinds of revocation, all under hashed identifiers
//! ([`RevocationKey`]) and all with a time to live, so the list cleans itself:
//!
//! | scope   | recorded as                               | refuses                                   |
//! |---------|-------------------------------------------|-------------------------------------------|
//! | token   | a marker, until the token would expire    | that token                                |
//! | session | a marker, for the longest token lifetime  | every token with that `sid`               |
//! | subject | a watermark (seconds since the epoch)     | tokens of that `sub` with `iat` ≤ it       |
//! | global  | a watermark                               | every token with `iat` ≤ it               |
//!
//! A token without `iat` is refused while a watermark covering it exists. Watermarks
//! only move forward. The store answers all four in one call per request
//! ([`RevocationStore::lookup`]); deciding what the answer means is
//! [`Lookup::revoked_by`]'s job, so every store behaves the same.
//!
//! In this folder: the trait (`mod.rs`), what a check asks and answers (`lookup.rs`),
//! the hashed keys (`key.rs`), errors (`error.rs`), a store's health (`health.rs`), the
//! waiters of open streams (`watch/`), and the stores: `memory/`, `redis/`, `mirror/`,
//! each saying in its `mod.rs` what it holds. May use: nothing of
//! the layer. Used by: the layer, the revoker, the endpoints, applications.
//!
//! # Implement your own
//!
//! A store is one read ([`lookup`](RevocationStore::lookup): everything it knows
//! about one token, its subject and its session) and four writes. Writes are
//! idempotent and only ever add: a marker keeps its longest time to live, a watermark
//! its highest value. Here is a whole store over two maps (a real one also drops what
//! expired, and keeps the maps where its replicas can share them):
//!
//! ```
//! use std::collections::BTreeMap;
//! use std::sync::Mutex;
//! use std::time::{Duration, Instant};
//!
//! use tower_jwt_revoke::store::{Lookup, RevocationQuery, RevocationStore, StoreError};
//! use tower_jwt_revoke::{RevocationKey, async_trait};
//!
//! #[derive(Default)]
//! struct MapStore {
//!     /// Tokens and sessions, each until it expires.
//!     markers: Mutex<BTreeMap<RevocationKey, Instant>>,
//!     /// Subjects: issued until, until when. The global watermark is kept apart.
//!     watermarks: Mutex<BTreeMap<RevocationKey, (u64, Instant)>>,
//!     global: Mutex<Option<(u64, Instant)>>,
//! }
//!
//! impl MapStore {
//!     fn mark(&self, key: &RevocationKey, ttl: Duration) {
//!         let until = Instant::now() + ttl;
//!         let mut markers = self.markers.lock().unwrap();
//!         let kept = markers.entry(*key).or_insert(until);
//!         *kept = (*kept).max(until);
//!     }
//!
//!     fn raise(kept: &mut (u64, Instant), issued_until: u64, ttl: Duration) {
//!         *kept = (kept.0.max(issued_until), kept.1.max(Instant::now() + ttl));
//!     }
//!
//!     fn marked(&self, key: Option<&RevocationKey>) -> bool {
//!         let markers = self.markers.lock().unwrap();
//!         key.and_then(|key| markers.get(key)).is_some_and(|until| *until > Instant::now())
//!     }
//!
//!     fn live((mark, until): (u64, Instant)) -> Option<u64> {
//!         (until > Instant::now()).then_some(mark)
//!     }
//! }
//!
//! #[async_trait]
//! impl RevocationStore for MapStore {
//!     async fn lookup(&self, query: &RevocationQuery) -> Result<Lookup, StoreError> {
//!         Ok(Lookup {
//!             token_revoked: self.marked(Some(&query.token)),
//!             session_revoked: self.marked(query.session.as_ref()),
//!             subject_watermark: query
//!                 .subject
//!                 .and_then(|subject| self.watermarks.lock().unwrap().get(&subject).copied())
//!                 .and_then(Self::live),
//!             global_watermark: self.global.lock().unwrap().and_then(Self::live),
//!         })
//!     }
//!
//!     async fn revoke_token(&self, token: &RevocationKey, ttl: Duration) -> Result<(), StoreError> {
//!         Ok(self.mark(token, ttl))
//!     }
//!
//!     async fn revoke_session(&self, session: &RevocationKey, ttl: Duration) -> Result<(), StoreError> {
//!         Ok(self.mark(session, ttl))
//!     }
//!
//!     async fn raise_subject_watermark(
//!         &self,
//!         subject: &RevocationKey,
//!         issued_until: u64,
//!         ttl: Duration,
//!     ) -> Result<(), StoreError> {
//!         let mut watermarks = self.watermarks.lock().unwrap();
//!         let kept = watermarks.entry(*subject).or_insert((issued_until, Instant::now()));
//!         Ok(Self::raise(kept, issued_until, ttl))
//!     }
//!
//!     async fn raise_global_watermark(&self, issued_until: u64, ttl: Duration) -> Result<(), StoreError> {
//!         let mut global = self.global.lock().unwrap();
//!         let kept = global.get_or_insert((issued_until, Instant::now()));
//!         Ok(Self::raise(kept, issued_until, ttl))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), StoreError> {
//! let store = MapStore::default();
//! let token = RevocationKey::token(Some("https://id.example.com"), "7f3a");
//! store.revoke_token(&token, Duration::from_secs(900)).await?;
//! let query = RevocationQuery { token, subject: None, session: None, issued_at: Some(1) };
//! assert!(store.lookup(&query).await?.token_revoked);
//! // Then: `RevocationLayer::new(verifier, store)`, like any other store.
//! # Ok(()) }
//! ```
//!
//! The rest has defaults: [`health`](RevocationStore::health) (ready),
//! [`lookup_immediate`](RevocationStore::lookup_immediate) (none: every check awaits
//! `lookup`), [`revoke_token_of`](RevocationStore::revoke_token_of) (forgets the
//! subject), [`lookup_many`](RevocationStore::lookup_many) (one `lookup` after another)
//! and [`watchers`](RevocationStore::watchers) (none: open streams are polled). A store
//! that learns of each change as it happens keeps a [`Watchers`] and calls
//! [`Watchers::touched`] after applying a revocation, so open streams end at once.

use std::time::Duration;

use async_trait::async_trait;

use crate::store::key::RevocationKey;

mod error;
mod health;
pub(crate) mod key;
mod lookup;
mod memory;
#[cfg(feature = "redis")]
mod mirror;
#[cfg(feature = "redis")]
mod redis;
pub(crate) mod watch;

pub use self::error::StoreError;
pub use self::health::StoreHealth;
pub use self::lookup::{Lookup, RevocationQuery, RevokedBy};
pub use self::memory::{DEFAULT_SWEEP_INTERVAL, InMemoryStore};
#[cfg(feature = "redis")]
pub use self::mirror::{
    DEFAULT_READ_COALESCING, DEFAULT_STALENESS_BOUND, MirrorHealth, MirrorStore, MirrorStoreBuilder,
};
#[cfg(feature = "redis")]
pub use self::redis::{
    Acknowledgement, DEFAULT_ACK_TIMEOUT, DataLoss, LOSS_CHECK_INTERVAL, Persistence, PersistenceSource,
};
#[cfg(feature = "redis")]
pub use self::redis::{
    DEFAULT_BUCKETS, DEFAULT_COMMAND_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_FEED_MAX_LEN,
    DEFAULT_FEED_RETENTION, DEFAULT_PREFIX, MAX_BUCKETS, MigrationReport, RedisStore, RedisStoreBuilder,
    schema,
};
#[cfg(feature = "redis")]
pub use self::redis::{MAX_RECORD_TTL, MAX_WATERMARK, Page, Record, RecordKind, Stats};
pub use self::watch::{DEFAULT_WATCH_INTERVAL, Refusal, Revoked, Watchers};

/// A boxed error from a store's backend.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Keeps revocations and answers whether a token is revoked.
///
/// Object safe: `Arc<dyn RevocationStore>` is a store too. Implementations must
/// keep every record at least for the TTL given, may drop it after, and must make
/// watermarks only ever move forward.
#[async_trait]
pub trait RevocationStore: Send + Sync + 'static {
    /// Answers a query, ideally in one round trip.
    async fn lookup(&self, query: &RevocationQuery) -> Result<Lookup, StoreError>;

    /// Answers a query at once, when the store can without waiting for anything (an
    /// in-process lookup), or `None` to take [`lookup`](Self::lookup)'s path. The
    /// layer tries this first; the default says `None`. It must agree with `lookup`.
    fn lookup_immediate(&self, query: &RevocationQuery) -> Option<Lookup> {
        let _ = query;
        None
    }

    /// Answers a query within `timeout`, or fails. The layer calls this with its check
    /// timeout; the default wraps [`lookup`](Self::lookup) in a timer.
    ///
    /// A store that can tell a silent backend from a busy process overrides it:
    /// `RedisStore` (and `MirrorStore` when it asks Redis) times how long Redis stays
    /// silent, with its own command timeout, instead of how long the request waited,
    /// so a burst queued in this process is not mistaken for an outage.
    async fn lookup_within(&self, query: &RevocationQuery, timeout: Duration) -> Result<Lookup, StoreError> {
        match tokio::time::timeout(timeout, self.lookup(query)).await {
            Ok(answer) => answer,
            Err(_) => Err(StoreError::timeout("no answer within the check timeout")),
        }
    }

    /// Answers many queries at once, in their order: what a layer's poller asks about
    /// its open streams each tick (see [`RevocationLayer::with_watch_interval`](crate::RevocationLayer::with_watch_interval)),
    /// for stores without [`watchers`](Self::watchers). The default asks
    /// [`lookup`](Self::lookup) for each, one after the other; `RedisStore` sends one
    /// `MGET` per bucket for all of them.
    async fn lookup_many(&self, queries: &[RevocationQuery]) -> Result<Vec<Lookup>, StoreError> {
        let mut lookups = Vec::with_capacity(queries.len());
        for query in queries {
            lookups.push(self.lookup(query).await?);
        }
        Ok(lookups)
    }

    /// The registry of open streams' waiters this store wakes as it applies each
    /// revocation ([`Watchers::touched`]), or `None` (the default) when it cannot tell
    /// what changed: the layer then polls it with
    /// [`lookup_many`](Self::lookup_many). `InMemoryStore` and `MirrorStore` have one.
    fn watchers(&self) -> Option<Watchers> {
        None
    }

    /// The store's state, for a readiness probe ([`crate::health`]). The default says
    /// "ready" without asking anything; stores with a backend ask it (a `PING`).
    async fn health(&self) -> StoreHealth {
        StoreHealth::ready(self.name())
    }

    /// A short name for metrics labels and logs: `memory`, `redis`, `mirror`; other
    /// stores default to `custom`.
    fn name(&self) -> &'static str {
        "custom"
    }

    /// Records a token revocation for `ttl`.
    async fn revoke_token(&self, token: &RevocationKey, ttl: Duration) -> Result<(), StoreError>;

    /// Records a token revocation for `ttl`, knowing the token's subject (`None`: the
    /// token has no `sub`). The [`Revoker`](crate::Revoker) records tokens this way.
    ///
    /// The built-in stores record the token bound to its subject
    /// ([`RevocationKey::for_subject`]), and their lookups read both that key and the
    /// token's own ([`RevocationQuery::token_for_subject`]): the revocation refuses that
    /// subject's token, not a token of another subject with the same `jti`. `RedisStore`
    /// also writes the record once, in the bucket the token's checks read. The default
    /// forgets the subject and calls [`revoke_token`](Self::revoke_token), which refuses
    /// the token whatever its subject: a store of your own that overrides this must also
    /// read [`RevocationQuery::token_for_subject`] in its `lookup`.
    async fn revoke_token_of(
        &self,
        token: &RevocationKey,
        subject: Option<&RevocationKey>,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let _ = subject;
        self.revoke_token(token, ttl).await
    }

    /// Records a session revocation for `ttl`.
    async fn revoke_session(&self, session: &RevocationKey, ttl: Duration) -> Result<(), StoreError>;

    /// Raises the subject's watermark to `issued_until` (seconds since the epoch) if
    /// it is lower, and keeps it for at least `ttl`.
    async fn raise_subject_watermark(
        &self,
        subject: &RevocationKey,
        issued_until: u64,
        ttl: Duration,
    ) -> Result<(), StoreError>;

    /// Raises the global watermark to `issued_until` if it is lower, and keeps it for
    /// at least `ttl`.
    async fn raise_global_watermark(&self, issued_until: u64, ttl: Duration) -> Result<(), StoreError>;
}

#[async_trait]
impl<T: RevocationStore + ?Sized> RevocationStore for std::sync::Arc<T> {
    async fn lookup(&self, query: &RevocationQuery) -> Result<Lookup, StoreError> {
        (**self).lookup(query).await
    }

    fn lookup_immediate(&self, query: &RevocationQuery) -> Option<Lookup> {
        (**self).lookup_immediate(query)
    }

    async fn lookup_within(&self, query: &RevocationQuery, timeout: Duration) -> Result<Lookup, StoreError> {
        (**self).lookup_within(query, timeout).await
    }

    async fn lookup_many(&self, queries: &[RevocationQuery]) -> Result<Vec<Lookup>, StoreError> {
        (**self).lookup_many(queries).await
    }

    fn watchers(&self) -> Option<Watchers> {
        (**self).watchers()
    }

    async fn health(&self) -> StoreHealth {
        (**self).health().await
    }

    fn name(&self) -> &'static str {
        (**self).name()
    }

    async fn revoke_token(&self, token: &RevocationKey, ttl: Duration) -> Result<(), StoreError> {
        (**self).revoke_token(token, ttl).await
    }

    async fn revoke_token_of(
        &self,
        token: &RevocationKey,
        subject: Option<&RevocationKey>,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        (**self).revoke_token_of(token, subject, ttl).await
    }

    async fn revoke_session(&self, session: &RevocationKey, ttl: Duration) -> Result<(), StoreError> {
        (**self).revoke_session(session, ttl).await
    }

    async fn raise_subject_watermark(
        &self,
        subject: &RevocationKey,
        issued_until: u64,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        (**self).raise_subject_watermark(subject, issued_until, ttl).await
    }

    async fn raise_global_watermark(&self, issued_until: u64, ttl: Duration) -> Result<(), StoreError> {
        (**self).raise_global_watermark(issued_until, ttl).await
    }
}
