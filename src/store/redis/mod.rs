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
//! `{prefix:bB}:feed` (a stream that keeps the events of the last
//! [`DEFAULT_FEED_RETENTION`], and never more than about [`DEFAULT_FEED_MAX_LEN`]) with the
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
//!
//! # In this folder, by concern
//!
//! | folder | holds | may use |
//! |--------|-------|---------|
//! | `connect/` | the shared connection, a cluster's or a server's, the checks' own RESP connection, Sentinel, pooled connections | `schema/` (the layout check) |
//! | `schema/` | key names, the recorded layout, the v1 schema | `connect/`, `read/` |
//! | `read/` | a check's `MGET`, reading keys node by node | `connect/`, `schema/` |
//! | `write/` | the write scripts, acknowledged writes, write-back | `connect/`, `schema/` |
//! | `durability/` | persistence settings, the epoch watch (loss detection) | `connect/`, `schema/` |
//! | `admin/` | an operator's reads and writes (the command-line tool's) | all of the above |
//!
//! This file holds [`RedisStore`]; `checks_and_writes.rs` its
//! [`RevocationStore`](crate::store::RevocationStore) implementation; `builder.rs` its
//! builder. The [`MirrorStore`](crate::store::MirrorStore) uses the
//! store through the few items re-exported here (`Conn`, `Kind`, `Targets`, `Lost`,
//! `scan`), never its folders.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use deadpool_redis::Pool;

use super::StoreError;

mod admin;
mod builder;
mod checks_and_writes;
mod connect;
mod durability;
mod read;
pub mod schema;
mod write;

pub use self::admin::{MAX_RECORD_TTL, MAX_WATERMARK, Page, Record, RecordKind, Stats};
pub use self::builder::RedisStoreBuilder;
pub(crate) use self::connect::conn::{Conn, Node};
use self::connect::shared::Connection;
use self::durability::epoch::LossWatch;
pub use self::durability::epoch::{DataLoss, LOSS_CHECK_INTERVAL};
pub use self::durability::persistence::{Persistence, PersistenceSource};
pub(crate) use self::read::scan;
pub use self::schema::v1::MigrationReport;
pub(crate) use self::schema::v1::V1;
pub use self::schema::{DEFAULT_BUCKETS, MAX_BUCKETS};
pub(crate) use self::schema::{Kind, Schema};
use self::write::Scripts;
pub(crate) use self::write::Targets;
pub use self::write::acknowledge::{Acknowledgement, DEFAULT_ACK_TIMEOUT};
pub(crate) use self::write::write_back::Lost;

/// The key prefix unless configured.
pub const DEFAULT_PREFIX: &str = "revoked";
/// How long to wait for a connection to Redis, unless configured.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long Redis may stay silent before a command fails, unless configured. Shorter
/// than the layer's [`DEFAULT_CHECK_TIMEOUT`](crate::DEFAULT_CHECK_TIMEOUT), so that the
/// store sees a silent (half-open) connection time out and replaces it, rather than the
/// layer giving up on the check first.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_millis(150);

/// The change feed's length cap unless configured: a safety bound on each bucket's
/// feed (`XTRIM MAXLEN ~`) for a burst faster than the retention window can follow.
pub const DEFAULT_FEED_MAX_LEN: u64 = 100_000;

/// How long each change feed keeps its events unless configured (`XTRIM MINID ~`):
/// long enough for a mirror to reconnect after a failover or a network blip without
/// reloading. A mirror away for longer reloads the buckets it missed from their index.
pub const DEFAULT_FEED_RETENTION: Duration = Duration::from_secs(120);

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
    feed_retention: Duration,
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
    feed_retention: Duration,
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
                feed_retention: settings.feed_retention,
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

    /// The feed's trimming, as `feed.lua` takes it (`ARGV[1]`): `cap:window_ms`.
    pub(crate) fn feed_trim(&self) -> String {
        let window = u64::try_from(self.shared.feed_retention.as_millis()).unwrap_or(u64::MAX);
        format!("{}:{window}", self.shared.feed_max_len)
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
