//! [`RedisStoreBuilder`]: where to connect, and how long to wait.

use std::fmt;
use std::time::Duration;

use ::redis::AsyncConnectionConfig;
use ::redis::cluster::ClusterClientBuilder;
use ::redis::sentinel::{SentinelClient, SentinelServerType};
use deadpool_redis::{Config, ConnectionInfo, Manager, Pool, Runtime};

use super::connect::check::Target;
use super::connect::sentinel::{SentinelManager, SentinelPool};
use super::connect::shared::{Backend, ClusterBackend, Connection};
use super::schema::layout::Layout;
use super::schema::{DEFAULT_BUCKETS, MAX_BUCKETS, Schema};
use super::write::Scripts;
use super::write::acknowledge::Acknowledgement;
use super::{
    DEFAULT_COMMAND_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_FEED_MAX_LEN, DEFAULT_FEED_RETENTION,
    DEFAULT_PREFIX, RedisStore, Settings,
};
use crate::store::{BoxError, StoreError};

/// How many commands may wait for the connection's writer before a caller has to wait
/// for room. redis-rs's default (50) makes the 51st request of a burst queue in our
/// process while the timer meant for Redis runs; a queued command costs a few bytes, so
/// the bound is set far above any burst the timeouts let build up.
const PIPELINE_BUFFER: usize = 1 << 16;

/// Bytes encoded before the connection flushes to the socket: a burst then goes out in
/// a few large writes rather than one write per 8 KiB (redis-rs's default).
const WRITE_BUFFER: usize = 1 << 16;

/// How often a cluster's connection tries a command again after a node failed or the
/// slot map changed (`MOVED`, `ASK`, a failover), and how long it waits in between (ms):
/// the store's own timeouts bound the whole, so these only need to let a redirect or a
/// promoted replica be found quickly.
const CLUSTER_RETRIES: u32 = 8;
const CLUSTER_RETRY_WAIT_MS: (u64, u64) = (10, 250);

/// Builds a [`RedisStore`]; see [`RedisStore::builder`].
#[derive(Debug, Default)]
#[must_use]
pub struct RedisStoreBuilder {
    source: Option<Source>,
    prefix: Option<String>,
    connect_timeout: Option<Duration>,
    command_timeout: Option<Duration>,
    feed_max_len: Option<u64>,
    feed_retention: Option<Duration>,
    buckets: Option<u32>,
    v1_transition: bool,
    acknowledge: Option<Acknowledgement>,
    detect_data_loss: Option<bool>,
}

enum Source {
    Config(Config),
    Pool(Pool),
    Cluster(Vec<String>),
    Sentinel { sentinels: Vec<String>, master: String },
    SentinelClient(Box<SentinelClient>),
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // A URL may hold a password.
            Self::Config(_) => f.write_str("Config(..)"),
            Self::Pool(pool) => f.debug_tuple("Pool").field(&pool.status()).finish(),
            Self::Cluster(seeds) => write!(f, "Cluster({} seeds)", seeds.len()),
            Self::Sentinel { sentinels, master } => {
                write!(f, "Sentinel({} sentinels, master {master:?})", sentinels.len())
            }
            Self::SentinelClient(_) => f.write_str("SentinelClient(..)"),
        }
    }
}

impl RedisStoreBuilder {
    /// Connects to this URL: `redis://`, `rediss://` (with a TLS feature of the
    /// `redis` crate) or `redis+unix://`, as the `redis` crate accepts them.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.source = Some(Source::Config(Config::from_url(url)));
        self
    }

    /// Connects as this deadpool-redis configuration says.
    pub fn config(mut self, config: Config) -> Self {
        self.source = Some(Source::Config(config));
        self
    }

    /// Connects to a Redis Cluster through these seed nodes (`redis://host:port`, as
    /// [`url`](Self::url) takes them; any few of the cluster's nodes will do: the store
    /// learns the rest from them, and follows the cluster as slots move and replicas are
    /// promoted).
    ///
    /// Commands go to the master of their keys' slot. Everything one check reads lives
    /// in one slot, so a check is still one `MGET` to one node; see the key schema in
    /// the [`RedisStore`] docs.
    pub fn cluster_nodes<I, U>(mut self, seeds: I) -> Self
    where
        I: IntoIterator<Item = U>,
        U: Into<String>,
    {
        self.source = Some(Source::Cluster(seeds.into_iter().map(Into::into).collect()));
        self
    }

    /// Connects through Redis Sentinel: to the master these Sentinels (`redis://host:port`
    /// each; a few of them will do) know as `master_name`, following it when they fail
    /// over to a replica.
    ///
    /// The store asks the Sentinels for the master when it connects, and connects again
    /// when its connection dies or the node refuses writes (`READONLY`: a demoted master),
    /// so it follows a failover by itself; commands fail (and the layer answers 503, or
    /// lets requests through, by its failure policy) while there is no master. Everything
    /// else is as on a single server: same key schema, timeouts and failure policy.
    ///
    /// For a password, TLS or a database other than 0 on the data nodes (or on the
    /// Sentinels), build a [`SentinelClient`] with redis-rs's `SentinelClientBuilder` and
    /// give it to [`sentinel_client`](Self::sentinel_client).
    pub fn sentinel<I, U>(mut self, sentinels: I, master_name: impl Into<String>) -> Self
    where
        I: IntoIterator<Item = U>,
        U: Into<String>,
    {
        self.source = Some(Source::Sentinel {
            sentinels: sentinels.into_iter().map(Into::into).collect(),
            master: master_name.into(),
        });
        self
    }

    /// Connects through this Sentinel client (see [`sentinel`](Self::sentinel)); it must
    /// be for the master ([`SentinelServerType::Master`]): revocations are written.
    pub fn sentinel_client(mut self, client: SentinelClient) -> Self {
        self.source = Some(Source::SentinelClient(Box::new(client)));
        self
    }

    /// Waits, at each revocation, until Redis confirms it reached replicas and/or the
    /// append-only file ([`Acknowledgement`]); when the confirmation does not come within
    /// its timeout, the revocation fails with an error that
    /// [`is_unacknowledged`](StoreError::is_unacknowledged) (it is applied all the same,
    /// but may not survive a failover). Off by default: a revocation returns once the
    /// master has it, and Redis replicates it asynchronously, as it does everything.
    ///
    /// Each acknowledged revocation takes a connection of its own from the pool for the
    /// write and its `WAIT` (which blocks the connection it runs on). Not on a cluster.
    pub fn acknowledge(mut self, acknowledgement: Acknowledgement) -> Self {
        self.acknowledge = Some(acknowledgement);
        self
    }

    /// Whether the store watches for Redis losing data (on by default): it reads each
    /// bucket's epoch marker every
    /// [`LOSS_CHECK_INTERVAL`](super::LOSS_CHECK_INTERVAL), logs a loss at `error` level,
    /// counts it in [`RedisStore::data_loss`] and the metrics, and tells its mirrors,
    /// which write back what they hold. Watching also *registers* the blocklist as soon
    /// as the store reaches Redis: its key layout and every bucket's epoch marker, so
    /// the blocklist exists (and a loss is visible) before its first revocation. Its
    /// reads go over a connection of their own, never the one checks share.
    ///
    /// Turn it off for a short-lived tool that must not register a prefix it was only
    /// asked to look at (the command-line tool does).
    pub fn detect_data_loss(mut self, on: bool) -> Self {
        self.detect_data_loss = Some(on);
        self
    }

    /// Uses connections from this pool.
    ///
    /// The store then takes its connections as the pool's manager makes them. With a
    /// URL or a [`Config`], it sets them up for bursts itself (a deep command queue,
    /// large writes); a pool of your own should do the same, with
    /// [`Manager::new_with_config`] and an
    /// [`AsyncConnectionConfig`](::redis::AsyncConnectionConfig) whose pipeline buffer is
    /// larger than the most requests a burst can bring at once.
    pub fn pool(mut self, pool: Pool) -> Self {
        self.source = Some(Source::Pool(pool));
        self
    }

    /// The key prefix (default [`DEFAULT_PREFIX`]). Services sharing a blocklist must
    /// use the same one.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// How long to wait for a new connection (default [`DEFAULT_CONNECT_TIMEOUT`]).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// How long Redis may stay silent before a command fails (default
    /// [`DEFAULT_COMMAND_TIMEOUT`]). Keep it below the layer's check timeout: a
    /// connection is replaced when it answers nothing for this long, not when the layer
    /// stops waiting.
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = Some(timeout);
        self
    }

    /// At most about how many events each bucket's change feed keeps (default
    /// [`DEFAULT_FEED_MAX_LEN`]): a safety bound, for bursts, on top of
    /// [`feed_retention`](Self::feed_retention). A
    /// [`MirrorStore`](crate::store::MirrorStore) disconnected for longer than it takes
    /// to write this many revocations to a bucket reloads that bucket when it
    /// reconnects.
    pub fn feed_max_len(mut self, entries: u64) -> Self {
        self.feed_max_len = Some(entries.max(1));
        self
    }

    /// How long the change feeds keep their events (default
    /// [`DEFAULT_FEED_RETENTION`]), so Redis holds the feeds of that long a time, not of
    /// a count of revocations: at a steady write rate `r`, about `r × window` events in
    /// all (about 100 bytes each), or fewer when every live record of a bucket expires
    /// sooner (then the feed keeps no event older than the bucket's longest-lived
    /// record). A [`MirrorStore`](crate::store::MirrorStore) disconnected for longer
    /// reloads the buckets it missed from their index when it reconnects (what it holds
    /// is never lost: a reload only adds), so the window need only cover a reconnect.
    /// Every service writing to the blocklist should use the same window: each write
    /// trims its bucket's feed by its own.
    pub fn feed_retention(mut self, window: Duration) -> Self {
        self.feed_retention = Some(window);
        self
    }

    /// How many buckets revocations are spread over (default
    /// [`DEFAULT_BUCKETS`](super::DEFAULT_BUCKETS), at most
    /// [`MAX_BUCKETS`](super::MAX_BUCKETS)). Every service sharing the blocklist must use
    /// the same number, and it stays fixed for a deployment: a few times the number of
    /// cluster masters spreads the load; each session and global revocation writes one
    /// record per bucket.
    pub fn buckets(mut self, buckets: u32) -> Self {
        self.buckets = Some(buckets);
        self
    }

    /// Also reads, and also writes, the version 1 key schema (`{prefix}:t:{hash}` and
    /// so on, one change feed `{prefix}:feed`), for the time a running deployment
    /// upgrades (off by default). See [`RedisStore::migrate_v1`] for the steps. Only on
    /// a single server: the v1 schema never ran on a cluster.
    pub fn v1_transition(mut self, on: bool) -> Self {
        self.v1_transition = on;
        self
    }

    /// Builds the store. It never waits for Redis: inside a Tokio runtime it starts
    /// connecting in the background at once, elsewhere the first command connects. So
    /// an application starts even while Redis is down (and fails closed until it is up).
    pub fn build(self) -> Result<RedisStore, StoreError> {
        let connect_timeout = self.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        let prefix = self.prefix.unwrap_or_else(|| DEFAULT_PREFIX.to_owned());
        if prefix.contains(['{', '}']) {
            return Err(StoreError::msg(
                "invalid Redis key prefix: it must not contain `{` or `}` (it sits inside the hash tag)",
            ));
        }
        let buckets = self.buckets.unwrap_or(DEFAULT_BUCKETS);
        if !(1..=MAX_BUCKETS).contains(&buckets) {
            return Err(StoreError::msg("invalid bucket count: from 1 to MAX_BUCKETS"));
        }
        // Checks get a connection of their own where one can be made (see `check_conn`).
        let check_target = match &self.source {
            Some(Source::Config(config)) => config.url.as_deref().and_then(Target::of_url),
            _ => None,
        };
        let backend = match self.source {
            Some(Source::Pool(pool)) => Backend::Single(pool),
            Some(Source::Config(config)) => Backend::Single(pool_for(&config, connect_timeout)?),
            Some(Source::Sentinel { sentinels, master }) => {
                let client = SentinelClient::build(sentinels, master, None, SentinelServerType::Master)
                    .map_err(invalid)?;
                Backend::Sentinel(sentinel_pool(client, connect_timeout)?)
            }
            Some(Source::SentinelClient(client)) => {
                Backend::Sentinel(sentinel_pool(*client, connect_timeout)?)
            }
            Some(Source::Cluster(seeds)) => {
                if self.acknowledge.is_some_and(|ack| ack.is_needed()) {
                    return Err(StoreError::msg(
                        "acknowledged revocations are not supported on a Redis cluster (yet): use a single \
                         server or Sentinel",
                    ));
                }
                if self.v1_transition {
                    return Err(StoreError::msg(
                        "the v1 transition is for a single server: the v1 schema never ran on a cluster",
                    ));
                }
                Backend::Cluster(Box::new(cluster_for(seeds, connect_timeout)?))
            }
            None => {
                return Err(StoreError::msg(
                    "no Redis URL, configuration, pool, Sentinels or cluster nodes given",
                ));
            }
        };
        let schema = Schema::new(prefix, buckets);
        let layout = Layout::new(&schema);
        let store = RedisStore::new(
            Connection::new(backend, connect_timeout, buckets, layout, check_target),
            Settings {
                schema,
                command_timeout: self.command_timeout.unwrap_or(DEFAULT_COMMAND_TIMEOUT),
                feed_max_len: self.feed_max_len.unwrap_or(DEFAULT_FEED_MAX_LEN),
                feed_retention: self.feed_retention.unwrap_or(DEFAULT_FEED_RETENTION),
                v1_transition: self.v1_transition,
                acknowledge: self.acknowledge.filter(Acknowledgement::is_needed),
                detect_data_loss: self.detect_data_loss.unwrap_or(true),
            },
            Scripts::new(),
        );
        store.connect_in_background();
        store.watch_in_background();
        Ok(store)
    }
}

/// The cluster client: connections set up for bursts, as a single server's are, with
/// retries quick enough to find a promoted replica within the store's own timeouts.
fn cluster_for(seeds: Vec<String>, connect_timeout: Duration) -> Result<ClusterBackend, StoreError> {
    if seeds.is_empty() {
        return Err(StoreError::msg(
            "invalid Redis cluster configuration: no seed nodes",
        ));
    }
    let client = ClusterClientBuilder::new(seeds.clone())
        .connection_timeout(connect_timeout)
        .retries(CLUSTER_RETRIES)
        .min_retry_wait(CLUSTER_RETRY_WAIT_MS.0)
        .max_retry_wait(CLUSTER_RETRY_WAIT_MS.1)
        // The store times every command itself, by how long a node stays silent.
        .overall_response_timeout(None)
        .write_backpressure_boundary(WRITE_BUFFER)
        .build()
        .map_err(invalid)?;
    Ok(ClusterBackend { client, seeds })
}

/// How the store's connections to one server are set up: for bursts, and timed by the
/// store itself.
fn connection_config(connect_timeout: Duration) -> AsyncConnectionConfig {
    AsyncConnectionConfig::new()
        .set_pipeline_buffer_size(PIPELINE_BUFFER)
        .set_write_backpressure_boundary(WRITE_BUFFER)
        .set_connection_timeout(Some(connect_timeout))
        // The store times every command itself, by how long Redis stays silent; a
        // second, fixed timer underneath would cut a command that is merely queued.
        .set_response_timeout(None)
}

/// Connections to the master the Sentinels name, set up as a single server's are.
fn sentinel_pool(client: SentinelClient, connect_timeout: Duration) -> Result<SentinelPool, StoreError> {
    SentinelPool::builder(SentinelManager::new(client, connection_config(connect_timeout)))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(invalid)
}

/// The pool `Config::create_pool` would make, but with connections set up for bursts.
fn pool_for(config: &Config, connect_timeout: Duration) -> Result<Pool, StoreError> {
    let connection = connection_config(connect_timeout);
    let manager = match (&config.url, &config.connection) {
        (Some(url), None) => Manager::new_with_config(url.as_str(), connection),
        (None, Some(info)) => Manager::new_with_config(info.clone(), connection),
        (None, None) => Manager::new_with_config(ConnectionInfo::default(), connection),
        (Some(_), Some(_)) => {
            return Err(StoreError::msg(
                "invalid Redis configuration: both a URL and connection details given",
            ));
        }
    }
    .map_err(invalid)?;
    Pool::builder(manager)
        .config(config.get_pool_config())
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(invalid)
}

fn invalid(error: impl Into<BoxError>) -> StoreError {
    StoreError::new("invalid Redis configuration", error)
}
