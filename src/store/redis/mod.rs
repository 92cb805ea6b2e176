//! [`RedisStore`]: one blocklist in Redis, shared by every replica (feature `redis`),
//! on a single server or a Redis Cluster.
//!
//! # Key schema (v2)
//!
//! Revocations are spread over N buckets, each a hash tag `{prefix:bB}`, so that
//! everything one check reads is in one slot (one `MGET`, one node) and everything one
//! write touches (its record, its bucket's change feed and sequence counter) is too.
//! The whole schema, and why it is cut so, is in the [`schema`] module docs; the README
//! repeats it for services in other languages. Every record has a TTL.
//!
//! Each write also appends, in the same script, an event to its bucket's change feed
//! `{prefix:bB}:feed` (a stream capped near [`DEFAULT_FEED_MAX_LEN`] entries) with the
//! fields `seq` (from `INCR {prefix:bB}:feed:seq`), `kind` (`t`, `x`, `s` or `all`),
//! `hash`, `value` (`1`, or the watermark after the write) and `expires_ms` (the key's
//! expiry, Unix milliseconds), then publishes the bucket's number on the channel
//! `{prefix}:wake`. [`MirrorStore`](crate::store::MirrorStore)s follow the feeds.
//! The feeds, counters and epoch markers (`{prefix:bB}:epoch`, see
//! [`RedisStore::data_loss`]) are the only keys without a TTL; all are bounded.
//!
//! The same write may append two events, numbered one after the other: the store
//! repeats a write once when its connection died before the answer came, not knowing
//! whether the first one ran. A reader of the feed applies events idempotently (a
//! marker keeps the longest expiry, a watermark the highest value), as writes do.
//!
//! The version 1 schema (`{prefix}:t:{hash}`, one feed) is read and written too during
//! an upgrade ([`RedisStoreBuilder::v1_transition`], [`RedisStore::migrate_v1`]).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_redis::Pool;

use super::{Lookup, RevocationQuery, RevocationStore, StoreError};
use crate::key::RevocationKey;

mod acknowledge;
mod admin;
mod builder;
mod check;
mod check_conn;
mod command;
mod conn;
mod connect_error;
mod connection;
mod epoch;
mod exclusive;
mod key_names;
mod layout;
mod legacy;
mod persistence;
pub(crate) mod scan;
pub mod schema;
mod scripts;
mod sentinel;
mod write_back;

pub use self::acknowledge::{Acknowledgement, DEFAULT_ACK_TIMEOUT};
pub use self::admin::{Page, Record, RecordKind, Stats};
pub use self::builder::RedisStoreBuilder;
use self::check::{CheckReply, answer_of, check_keys, give_command, reply_values, take_command};
use self::command::Budget;
pub(crate) use self::conn::{Conn, Node};
use self::connection::Connection;
use self::epoch::LossWatch;
pub use self::epoch::{DataLoss, LOSS_CHECK_INTERVAL};
pub use self::legacy::MigrationReport;
pub(crate) use self::legacy::V1;
pub use self::persistence::{Persistence, PersistenceSource};
pub use self::schema::{DEFAULT_BUCKETS, MAX_BUCKETS};
pub(crate) use self::schema::{Kind, Schema};
use self::scripts::Scripts;
pub(crate) use self::scripts::Targets;
pub(crate) use self::write_back::Lost;

/// The key prefix unless configured.
pub const DEFAULT_PREFIX: &str = "revoked";
/// How long to wait for a connection to Redis, unless configured.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long Redis may stay silent before a command fails, unless configured. Shorter
/// than the layer's [`DEFAULT_CHECK_TIMEOUT`](crate::DEFAULT_CHECK_TIMEOUT), so that the
/// store sees a silent (half-open) connection time out and replaces it, rather than the
/// layer giving up on the check first.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_millis(150);

/// The change feed's length cap unless configured: about this many recent events
/// are kept (`XADD MAXLEN ~`).
pub const DEFAULT_FEED_MAX_LEN: u64 = 100_000;

/// Revocations in Redis, shared by every replica that uses the same server (or
/// cluster), prefix and bucket count.
///
/// Built on a deadpool-redis [`Pool`], but a check does not check a connection out of
/// the pool per request: deadpool verifies each checkout with a `PING`, which would
/// double the round trips. Instead the store takes one multiplexed connection out of
/// the pool and shares it between all requests (Redis pipelines them), so a check is
/// one `MGET` and nothing else on the wire.
///
/// A command fails when Redis answers nothing on that connection for the command
/// timeout; a command merely queued behind others (a burst) waits its turn while Redis
/// keeps answering. When the connection fails or falls silent, it is dropped and a
/// fresh one is taken from the pool, so the store reconnects by itself when Redis comes
/// back. A command that finds the connection dead (Redis restarted since it was last
/// used) is tried once more on a fresh connection before it fails.
///
/// On a Redis Cluster ([`RedisStoreBuilder::cluster_nodes`]) the shared connection is
/// the cluster's: one multiplexed connection per master, each command sent to the master
/// of its slot, `MOVED` and `ASK` followed, a failed node reconnected and the slot map
/// refreshed by the connection itself. The timeouts and the failure policy are the same;
/// silence is timed per bucket, so a master that stops answering fails only the checks
/// of its buckets. A deployment moves between a server and a cluster by configuration
/// alone: both use the same key schema.
///
/// Cheap to clone; clones share the connection.
///
/// ```no_run
/// use std::time::Duration;
/// use tower_jwt_revoke::store::RedisStore;
///
/// # fn main() -> Result<(), tower_jwt_revoke::store::StoreError> {
/// let store = RedisStore::builder()
///     .url("redis://127.0.0.1:6379")
///     .prefix("myapp:revoked")
///     .command_timeout(Duration::from_millis(250))
///     .build()?;
/// # Ok(()) }
/// ```
///
/// On a cluster:
///
/// ```no_run
/// use tower_jwt_revoke::store::RedisStore;
///
/// # fn main() -> Result<(), tower_jwt_revoke::store::StoreError> {
/// let store = RedisStore::builder()
///     .cluster_nodes(["redis://10.0.0.1:6379", "redis://10.0.0.2:6379"])
///     .build()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    shared: Arc<Shared>,
}

struct Shared {
    connection: Connection,
    schema: Schema,
    command_timeout: Duration,
    feed_max_len: u64,
    v1_transition: bool,
    acknowledge: Option<Acknowledgement>,
    detect_data_loss: bool,
    loss: LossWatch,
    scripts: Scripts,
    /// Whether this store's first write recorded the key layout already.
    layout_recorded: AtomicBool,
}

/// What the builder decided, beyond the connection.
struct Settings {
    schema: Schema,
    command_timeout: Duration,
    feed_max_len: u64,
    v1_transition: bool,
    acknowledge: Option<Acknowledgement>,
    detect_data_loss: bool,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.shared.schema.prefix())
            .field("buckets", &self.shared.schema.buckets())
            .field("cluster", &self.is_cluster())
            .field("v1_transition", &self.shared.v1_transition)
            .field("acknowledge", &self.shared.acknowledge)
            .field("connect_timeout", &self.shared.connection.connect_timeout())
            .field("command_timeout", &self.shared.command_timeout)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Starts building a store.
    pub fn builder() -> RedisStoreBuilder {
        RedisStoreBuilder::default()
    }

    /// A store on this URL, with default prefix and timeouts.
    pub fn from_url(url: impl Into<String>) -> Result<Self, StoreError> {
        Self::builder().url(url).build()
    }

    /// A store using this pool, with default prefix and timeouts.
    pub fn from_pool(pool: Pool) -> Result<Self, StoreError> {
        Self::builder().pool(pool).build()
    }

    fn new(connection: Connection, settings: Settings, scripts: Scripts) -> Self {
        Self {
            shared: Arc::new(Shared {
                connection,
                loss: LossWatch::new(settings.schema.buckets()),
                schema: settings.schema,
                command_timeout: settings.command_timeout,
                feed_max_len: settings.feed_max_len,
                v1_transition: settings.v1_transition,
                acknowledge: settings.acknowledge,
                detect_data_loss: settings.detect_data_loss,
                scripts,
                layout_recorded: AtomicBool::new(false),
            }),
        }
    }

    fn connect_in_background(&self) {
        self.shared
            .connection
            .connect_in_background(self.shared.schema.prefix());
    }

    /// Whether the store is on a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.shared.connection.cluster().is_some()
    }

    pub(crate) fn schema(&self) -> &Schema {
        &self.shared.schema
    }

    /// The v1 schema, while the store reads and writes it too.
    pub(crate) fn v1(&self) -> Option<V1<'_>> {
        self.shared
            .v1_transition
            .then(|| V1::new(self.shared.schema.prefix()))
    }

    pub(crate) fn command_timeout(&self) -> Duration {
        self.shared.command_timeout
    }

    /// A connection of its own, for commands that block (`XREAD BLOCK`) or come in
    /// bulk (a mirror's load), which would stall every request pipelined behind them
    /// on the shared one.
    pub(crate) async fn dedicated_connection(&self) -> Result<Conn, StoreError> {
        self.shared.connection.dedicated().await
    }

    /// The cluster's seed nodes, when the store is on a cluster.
    pub(crate) fn cluster_seeds(&self) -> Option<&[String]> {
        self.shared
            .connection
            .cluster()
            .map(|cluster| cluster.seeds.as_slice())
    }
}

#[async_trait]
impl RevocationStore for RedisStore {
    /// One `MGET` of the bucket the token is checked in (one slot, one node); during a
    /// v1 transition the same `MGET` also reads the v1 keys (a single server).
    async fn lookup(&self, query: &RevocationQuery) -> Result<Lookup, StoreError> {
        let schema = self.schema();
        let bucket = self.bucket_for(&query.token, query.subject.as_ref());
        let mut scratch = take_command();
        let v1 = self.v1();
        let keys = check_keys(query).count() * if v1.is_some() { 2 } else { 1 };
        check_conn::push_array_len(&mut scratch.packed, keys + 1);
        check_conn::push_bulk(&mut scratch.packed, b"MGET");
        for (kind, hash) in check_keys(query) {
            scratch.key.clear();
            schema.push_key_of(&mut scratch.key, bucket, kind, hash);
            scratch.mget.arg(scratch.key.as_str());
            check_conn::push_bulk(&mut scratch.packed, scratch.key.as_bytes());
        }
        if let Some(v1) = &v1 {
            for (kind, hash) in check_keys(query) {
                let key = v1.key(kind, hash);
                check_conn::push_bulk(&mut scratch.packed, key.as_bytes());
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
            CheckReply::Values(values) => answer_of(query, v1.is_some(), &mut values.iter().map(Ok)),
            CheckReply::Value(value) => answer_of(query, v1.is_some(), &mut reply_values(&value)?),
        }
    }

    /// Redis's own timing: a check fails when Redis stays silent for the command
    /// timeout, not when it waited behind a burst queued in this process (bounded at
    /// a few command timeouts while Redis keeps answering others).
    async fn lookup_within(&self, query: &RevocationQuery, _timeout: Duration) -> Result<Lookup, StoreError> {
        self.lookup(query).await
    }

    fn name(&self) -> &'static str {
        "redis"
    }

    /// A `PING`; on a cluster, one to every master, so that a master whose buckets
    /// cannot be checked makes the store not ready (the log names it).
    async fn health(&self) -> super::StoreHealth {
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
            Ok(_) => super::StoreHealth {
                reachable: Some(true),
                ..super::StoreHealth::ready("redis")
            },
            Err(error) => super::StoreHealth {
                reachable: Some(false),
                ..super::StoreHealth::not_ready("redis", error.to_string())
            },
        };
        super::StoreHealth {
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

    /// One write, to the bucket the token is checked in.
    async fn revoke_token_of(
        &self,
        token: &RevocationKey,
        subject: Option<&RevocationKey>,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let bucket = self.bucket_for(token, subject);
        self.mark(Targets::One(bucket), Kind::Token, token, ttl).await
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
