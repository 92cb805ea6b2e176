//! The one multiplexed connection every command of a store shares, and its
//! replacement when it dies.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use ::redis::aio::MultiplexedConnection;
use deadpool_redis::Pool;
use tokio::sync::watch;

use crate::store::StoreError;

/// The shared connection of a [`RedisStore`](super::RedisStore).
///
/// A connection is made by a task of its own, whose result every caller waiting for it
/// gets at once. Callers queued one behind the other on a lock would each need a turn
/// of a busy runtime before the next could pass, and a cold start under a burst would
/// spend the callers' timeouts on that queue.
pub(super) struct Connection {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    connect_timeout: Duration,
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
pub(super) struct Live {
    pub(super) connection: MultiplexedConnection,
    /// Which connection this is: a failure reported late must not drop the one that
    /// has replaced it meanwhile.
    id: u64,
    /// When Redis last answered anything on this connection (nanoseconds from
    /// `epoch`). A command that waits long on a connection that keeps answering is
    /// queued behind others, not lost: only silence means the connection is dead.
    last_answer: Arc<AtomicU64>,
    epoch: Instant,
}

impl Live {
    /// Notes that Redis answered on this connection.
    pub(super) fn answered(&self) {
        self.last_answer
            .fetch_max(nanos(self.epoch, Instant::now()), Ordering::Relaxed);
    }

    /// Whether Redis answered anything on this connection at or after `since`.
    pub(super) fn answered_since(&self, since: Instant) -> bool {
        self.last_answer.load(Ordering::Relaxed) >= nanos(self.epoch, since)
    }
}

fn nanos(epoch: Instant, at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(epoch).as_nanos()).unwrap_or(u64::MAX)
}

/// Whether a connection was made for the caller that asked for it: a failure on a
/// connection just made is Redis failing, not a connection gone stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Age {
    Fresh,
    Reused,
}

impl Connection {
    pub(super) fn new(pool: Pool, connect_timeout: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                pool,
                connect_timeout,
                state: Mutex::new(State::Idle),
                next_id: AtomicU64::new(1),
                epoch: Instant::now(),
            }),
        }
    }

    pub(super) fn connect_timeout(&self) -> Duration {
        self.inner.connect_timeout
    }

    /// Starts connecting now when a Tokio runtime is there to do it, so the first
    /// requests do not wait for the connection (nor queue behind its round trips).
    pub(super) fn connect_in_background(&self, prefix: &str) {
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let mut state = self.inner.lock();
        if matches!(*state, State::Idle) {
            let _ = self.inner.start_connecting(&mut state, prefix);
        }
    }

    /// The shared connection, connecting when there is none.
    pub(super) async fn get(&self, prefix: &str) -> Result<(Live, Age), StoreError> {
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
    pub(super) fn discard(&self, live: &Live, why: &str) {
        let mut state = self.inner.lock();
        if matches!(&*state, State::Ready(current) if current.id == live.id) {
            *state = State::Idle;
            drop(state);
            tracing::warn!(%why, "dropping the Redis connection; the next request reconnects");
        }
    }

    /// A multiplexed connection taken out of the pool for good, for commands that block
    /// (`XREAD BLOCK`) and would stall every request pipelined behind them on the
    /// shared one.
    pub(super) async fn dedicated(&self) -> Result<MultiplexedConnection, StoreError> {
        self.inner.take().await.map_err(ConnectError::into_store_error)
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
            let attempt = inner.take().await.map(|connection| Live {
                connection,
                id: inner.next_id.fetch_add(1, Ordering::Relaxed),
                last_answer: Arc::new(AtomicU64::new(nanos(inner.epoch, Instant::now()))),
                epoch: inner.epoch,
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

    async fn take(&self) -> Result<MultiplexedConnection, ConnectError> {
        let pooled = tokio::time::timeout(self.connect_timeout, self.pool.get())
            .await
            .map_err(|_| ConnectError::new("timed out connecting to Redis", None))?
            .map_err(|error| ConnectError::new("could not connect to Redis", Some(Arc::new(error) as _)))?;
        Ok(deadpool_redis::Connection::take(pooled))
    }
}

/// Whether the task making this connection is gone without a word (its runtime shut
/// down).
fn abandoned(attempt: &watch::Receiver<Option<Attempt>>) -> bool {
    attempt.has_changed().is_err() && attempt.borrow().is_none()
}

/// A failure to connect, shared by everyone who waited for that connection.
#[derive(Clone)]
struct ConnectError {
    context: &'static str,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl ConnectError {
    fn new(context: &'static str, source: Option<Arc<dyn std::error::Error + Send + Sync>>) -> Self {
        Self { context, source }
    }

    fn into_store_error(self) -> StoreError {
        match self.source {
            Some(source) => StoreError::new(self.context, Shared(source)),
            None => StoreError::msg(self.context),
        }
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(source) => write!(f, "{}: {source}", self.context),
            None => f.write_str(self.context),
        }
    }
}

/// One error handed to several callers, each as the source of its own [`StoreError`].
struct Shared(Arc<dyn std::error::Error + Send + Sync>);

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

impl std::error::Error for Shared {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}
