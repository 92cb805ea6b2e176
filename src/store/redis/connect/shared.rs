//! The one multiplexed connection every command of a store shares, and its
//! replacement when it dies.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use ::redis::cluster::ClusterClient;
use deadpool_redis::Pool;
use tokio::sync::watch;

use crate::store::StoreError;
use crate::store::redis::connect::check::{CheckConnection, Target};
use crate::store::redis::connect::conn::Conn;
use crate::store::redis::connect::error::ConnectError;
use crate::store::redis::connect::sentinel::{self, SentinelPool};
use crate::store::redis::schema::layout::{CheckFailed, Layout};

/// Where connections come from: one server's pool, the pool of the master Sentinel
/// names, or a cluster client (whose one connection holds a multiplexed connection to
/// each node and routes by slot).
pub(crate) enum Backend {
    Single(Pool),
    Sentinel(SentinelPool),
    Cluster(Box<ClusterBackend>),
}

/// A cluster: the client the store's connections come from, and what a subscriber
/// (a connection of its own, for wake-ups) is made from.
pub(crate) struct ClusterBackend {
    pub(crate) client: ClusterClient,
    pub(crate) seeds: Vec<String>,
}

/// How many connect timeouts connecting to a cluster may take as a whole.
const CLUSTER_HANDSHAKE: u32 = 3;

/// How long a cluster's connection serves before a silent node may replace it.
pub(crate) const CLUSTER_REFRESH_AFTER: Duration = Duration::from_secs(1);

/// The shared connection of a [`RedisStore`](crate::store::redis::RedisStore).
///
/// A connection is made by a task of its own, whose result every caller waiting for it
/// gets at once. Callers queued one behind the other on a lock would each need a turn
/// of a busy runtime before the next could pass, and a cold start under a burst would
/// spend the callers' timeouts on that queue.
pub(crate) struct Connection {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Backend,
    /// Where a check connection goes, when one can be made beside the shared one.
    check_target: Option<Target>,
    /// Checked on every connection made: see [`Layout`].
    layout: Layout,
    connect_timeout: Duration,
    /// How many silence clocks a connection keeps: one for a server, one per bucket for
    /// a cluster (a bucket's commands all go to the node serving its slot).
    clocks: usize,
    state: Mutex<State>,
    next_id: AtomicU64,
    /// The origin of the `last_answer` clocks.
    epoch: Instant,
}

enum State {
    Idle,
    Connecting(watch::Receiver<Option<Attempt>>),
    Ready(Live),
}

type Attempt = Result<Live, ConnectError>;

/// A connection in service.
#[derive(Clone)]
pub(crate) struct Live {
    pub(crate) connection: Conn,
    /// The checks' own connection to the same server, when it could be made.
    pub(crate) check: Option<CheckConnection>,
    /// Which connection this is: a failure reported late must not drop the one that
    /// has replaced it meanwhile.
    id: u64,
    /// When Redis last answered anything on this connection (nanoseconds from
    /// `epoch`), per bucket on a cluster. A command that waits long on a connection that
    /// keeps answering is queued behind others, not lost: only silence means the
    /// connection (on a cluster: the node serving the bucket) is dead.
    last_answer: Arc<[AtomicU64]>,
    epoch: Instant,
    /// When it was made: a cluster's connection is replaced for a silent node only
    /// once it has served for a while (see [`Connection::refresh_cluster`]).
    made: Instant,
}

impl Live {
    fn clock(&self, bucket: u32) -> &AtomicU64 {
        let index = usize::try_from(bucket).unwrap_or(0) % self.last_answer.len().max(1);
        &self.last_answer[index]
    }

    /// Notes that Redis answered a command for `bucket` on this connection.
    pub(crate) fn answered(&self, bucket: u32) {
        self.clock(bucket)
            .fetch_max(nanos(self.epoch, Instant::now()), Ordering::Relaxed);
    }

    /// Whether Redis answered anything for `bucket` on this connection at or after
    /// `since`.
    pub(crate) fn answered_since(&self, bucket: u32, since: Instant) -> bool {
        self.clock(bucket).load(Ordering::Relaxed) >= nanos(self.epoch, since)
    }

    /// Whether this is a cluster's connection, which reconnects to a node that fails
    /// with an error by itself, and is replaced only when a node falls silent.
    pub(crate) fn is_cluster(&self) -> bool {
        self.connection.is_cluster()
    }
}

fn nanos(epoch: Instant, at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(epoch).as_nanos()).unwrap_or(u64::MAX)
}

/// Whether a connection was made for the caller that asked for it: a failure on a
/// connection just made is Redis failing, not a connection gone stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Age {
    Fresh,
    Reused,
}

impl Connection {
    pub(crate) fn new(
        backend: Backend,
        connect_timeout: Duration,
        buckets: u32,
        layout: Layout,
        check_target: Option<Target>,
    ) -> Self {
        let clocks = match backend {
            Backend::Single(_) | Backend::Sentinel(_) => 1,
            Backend::Cluster(_) => usize::try_from(buckets).unwrap_or(1).max(1),
        };
        Self {
            inner: Arc::new(Inner {
                backend,
                check_target,
                layout,
                connect_timeout,
                clocks,
                state: Mutex::new(State::Idle),
                next_id: AtomicU64::new(1),
                epoch: Instant::now(),
            }),
        }
    }

    pub(crate) fn connect_timeout(&self) -> Duration {
        self.inner.connect_timeout
    }

    /// Starts connecting now when a Tokio runtime is there to do it, so the first
    /// requests do not wait for the connection (nor queue behind its round trips).
    pub(crate) fn connect_in_background(&self, prefix: &str) {
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let mut state = self.inner.lock();
        if matches!(*state, State::Idle) {
            let _ = self.inner.start_connecting(&mut state, prefix);
        }
    }

    /// The shared connection, connecting when there is none.
    pub(crate) async fn get(&self, prefix: &str) -> Result<(Live, Age), StoreError> {
        let mut attempt = {
            let mut state = self.inner.lock();
            let pending = match &*state {
                State::Ready(live) => return Ok((live.clone(), Age::Reused)),
                State::Connecting(attempt) if !abandoned(attempt) => Some(attempt.clone()),
                State::Connecting(_) | State::Idle => None,
            };
            match pending {
                Some(attempt) => attempt,
                None => self.inner.start_connecting(&mut state, prefix)?,
            }
        };
        let outcome = attempt
            .wait_for(Option::is_some)
            .await
            .map(|outcome| outcome.clone());
        match outcome {
            Ok(Some(Ok(live))) => Ok((live, Age::Fresh)),
            Ok(Some(Err(error))) => Err(error.into_store_error()),
            // The connecting task was dropped with its runtime; the next call starts
            // another.
            Ok(None) | Err(_) => Err(StoreError::msg("connecting to Redis was abandoned")),
        }
    }

    /// Drops the connection `live` after a failure, unless it has been replaced
    /// already, so the next command reconnects.
    pub(crate) fn discard(&self, live: &Live, why: &str) {
        let mut state = self.inner.lock();
        if matches!(&*state, State::Ready(current) if current.id == live.id) {
            *state = State::Idle;
            drop(state);
            tracing::warn!(%why, "dropping the Redis connection; the next request reconnects");
        }
    }

    /// Drops a cluster's connection `live` after one of its nodes fell silent, so the
    /// next command reads the slot map afresh from the seeds. redis-rs follows a
    /// failover by itself only when the old master answers with an error or closes
    /// its socket; one that freezes, or is cut off without a reset, keeps its slots on
    /// a socket that never answers, long after its replica took them over.
    ///
    /// At most once per [`CLUSTER_REFRESH_AFTER`]: while the frozen master is still in
    /// the slot map (before the failover), each new connection meets the same silence,
    /// and reconnecting on every timed-out check would only add handshakes to it.
    pub(crate) fn refresh_cluster(&self, live: &Live, why: &str) {
        if live.is_cluster() && live.made.elapsed() >= CLUSTER_REFRESH_AFTER {
            self.discard(live, why);
        }
    }

    /// A connection of its own, for commands that block (`XREAD BLOCK`) or come in
    /// large numbers (a mirror's load), which would stall every request pipelined
    /// behind them on the shared one.
    pub(crate) async fn dedicated(&self) -> Result<Conn, StoreError> {
        self.inner.take().await.map_err(ConnectError::into_store_error)
    }

    /// Where connections come from.
    pub(crate) fn backend(&self) -> &Backend {
        &self.inner.backend
    }

    /// The key layout every connection is checked against.
    pub(crate) fn layout(&self) -> &Layout {
        self.inner.layout()
    }

    /// The cluster's seeds and client, when the store is on a cluster.
    pub(crate) fn cluster(&self) -> Option<&ClusterBackend> {
        match &self.inner.backend {
            Backend::Cluster(cluster) => Some(cluster),
            Backend::Single(_) | Backend::Sentinel(_) => None,
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section only swaps the state whole: a panic cannot leave it
        // half-written.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn start_connecting(
        self: &Arc<Self>,
        state: &mut State,
        prefix: &str,
    ) -> Result<watch::Receiver<Option<Attempt>>, StoreError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|error| StoreError::new("Redis commands need a Tokio runtime", error))?;
        let (sender, receiver) = watch::channel(None);
        *state = State::Connecting(receiver.clone());
        let inner = Arc::clone(self);
        let prefix = prefix.to_owned();
        // A task of its own: the connection is made even when the request that asked
        // for it gives up first, and is there for the next one.
        runtime.spawn(async move {
            let attempt = match inner.take().await {
                Ok(connection) => Ok((connection, inner.check_connection().await)),
                Err(error) => Err(error),
            };
            let attempt = attempt.map(|(connection, check)| {
                let now = nanos(inner.epoch, Instant::now());
                Live {
                    connection,
                    check,
                    id: inner.next_id.fetch_add(1, Ordering::Relaxed),
                    last_answer: (0..inner.clocks).map(|_| AtomicU64::new(now)).collect(),
                    epoch: inner.epoch,
                    made: Instant::now(),
                }
            });
            *inner.lock() = match &attempt {
                Ok(live) => {
                    tracing::info!(%prefix, "connected to Redis");
                    State::Ready(live.clone())
                }
                Err(error) => {
                    tracing::debug!(%prefix, %error, "could not connect to Redis");
                    State::Idle
                }
            };
            let _ = sender.send(Some(attempt));
        });
        Ok(receiver)
    }

    /// A new connection, once it has shown that the blocklist's recorded layout is
    /// this store's.
    async fn take(&self) -> Result<Conn, ConnectError> {
        let mut connection = self.connect().await?;
        match self.layout.check(&mut connection, self.connect_timeout).await {
            Ok(Ok(())) => Ok(connection),
            Ok(Err(mismatch)) => {
                tracing::error!(%mismatch, "refusing the Redis blocklist: another key layout");
                Err(ConnectError::new(
                    "the Redis blocklist has another key layout",
                    Some(Arc::new(mismatch)),
                ))
            }
            Err(CheckFailed(Some(error))) => Err(ConnectError::new(
                "could not read the blocklist's layout from Redis",
                Some(Arc::new(error)),
            )),
            Err(CheckFailed(None)) => Err(ConnectError::new(
                "timed out reading the blocklist's layout from Redis",
                None,
            )),
        }
    }

    /// A check connection to the same server as the shared connection just made (whose
    /// layout check covers it). Without one, checks share the multiplexed connection.
    async fn check_connection(&self) -> Option<CheckConnection> {
        let target = self.check_target.as_ref()?;
        match CheckConnection::connect(target, self.connect_timeout).await {
            Ok(check) => Some(check),
            Err(error) => {
                tracing::warn!(%error, "no check connection to Redis; checks share the multiplexed one");
                None
            }
        }
    }

    /// The key layout every connection is checked against.
    fn layout(&self) -> &Layout {
        &self.layout
    }

    async fn connect(&self) -> Result<Conn, ConnectError> {
        match &self.backend {
            Backend::Single(pool) => {
                let pooled = tokio::time::timeout(self.connect_timeout, pool.get())
                    .await
                    .map_err(|_| ConnectError::new("timed out connecting to Redis", None))?
                    .map_err(|error| {
                        ConnectError::new("could not connect to Redis", Some(Arc::new(error) as _))
                    })?;
                Ok(Conn::Single(deadpool_redis::Connection::take(pooled)))
            }
            Backend::Sentinel(pool) => match sentinel::get(pool, self.connect_timeout).await {
                Ok(pooled) => Ok(Conn::Single(deadpool::managed::Object::take(pooled))),
                Err((context, source)) => Err(ConnectError::new(context, source.map(|e| Arc::new(e) as _))),
            },
            Backend::Cluster(cluster) => {
                // The handshake is a few round trips to a few nodes (the slot map, then
                // each master), each bounded by the connect timeout on its own.
                let handshake = self.connect_timeout.saturating_mul(CLUSTER_HANDSHAKE);
                let connection = tokio::time::timeout(handshake, cluster.client.get_async_connection())
                    .await
                    .map_err(|_| ConnectError::new("timed out connecting to the Redis cluster", None))?
                    .map_err(|error| {
                        ConnectError::new(
                            "could not connect to the Redis cluster",
                            Some(Arc::new(error) as _),
                        )
                    })?;
                Ok(Conn::Cluster(connection))
            }
        }
    }
}

/// Whether the task making this connection is gone without a word (its runtime shut
/// down).
fn abandoned(attempt: &watch::Receiver<Option<Attempt>>) -> bool {
    attempt.has_changed().is_err() && attempt.borrow().is_none()
}
