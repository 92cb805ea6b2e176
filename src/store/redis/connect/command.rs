//! Running one command on the shared connection: how long it may take, and when it is
//! tried again.

use std::pin::pin;
use std::time::{Duration, Instant};

use ::redis::RedisError;

use crate::store::StoreError;
use crate::store::redis::RedisStore;
use crate::store::redis::connect::conn::Conn;
use crate::store::redis::connect::shared::{Age, Live};

/// How many command timeouts a command may wait while its connection keeps answering
/// the commands ahead of it. Such a wait is a queue in this process (a burst, a busy
/// machine), not Redis failing, and the caller's own bound decides how long it may be
/// (the layer's check timeout, the [`Revoker`](crate::Revoker)'s); this limit only
/// keeps a direct caller from waiting without end.
pub(crate) const QUEUED_LIMIT: u32 = 10;

/// How much time a retry on a fresh connection gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Budget {
    /// What is left of the first try's command timeout: a check has the layer's
    /// timer running and must be answered (or not) within it.
    Check,
    /// A connect timeout and a command timeout of its own: a revocation is worth the
    /// wait, and the [`Revoker`](crate::Revoker) bounds it.
    Write,
}

/// Why a try failed.
enum Failure {
    /// Redis answered nothing on the connection for a whole command timeout.
    Silent,
    /// The connection kept answering, but not this command, for
    /// [`QUEUED_LIMIT`] command timeouts.
    Queued,
    Redis(RedisError),
}

impl RedisStore {
    /// Runs `command`, about keys of `bucket`, on the shared connection. When it fails
    /// because the connection is dead (an I/O error, the connection dropped: what a
    /// Redis restart leaves behind in a connection nobody used since), it is run once
    /// more on a fresh connection, so the first request after a restart is answered
    /// instead of failing. Only idempotent commands come here: the checks, and writes
    /// that only raise a TTL or a watermark (a repeated write adds a second event for
    /// the same record to the change feed, numbered next, which mirrors apply
    /// idempotently).
    ///
    /// A cluster's connection reconnects to a node that failed with an error, and
    /// follows the slot map as it changes (`MOVED`, `ASK`, a failover), by itself. Its
    /// silence is timed per bucket, so a master that stops answering fails the
    /// commands for its buckets while the other masters keep answering theirs; and
    /// the connection is replaced then (at most once a second), so that a master failed
    /// over while frozen does not keep its buckets failing.
    pub(crate) async fn run<T, F, Fut>(
        &self,
        what: &'static str,
        budget: Budget,
        bucket: u32,
        command: F,
    ) -> Result<T, StoreError>
    where
        F: Fn(Conn) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        self.run_on(what, budget, bucket, |live| command(live.connection.clone()))
            .await
    }

    /// [`run`](Self::run), for a command that needs more of the connection than its
    /// multiplexed part (a check, which goes to the check connection when there is one).
    pub(crate) async fn run_on<T, F, Fut>(
        &self,
        what: &'static str,
        budget: Budget,
        bucket: u32,
        command: F,
    ) -> Result<T, StoreError>
    where
        F: Fn(&Live) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        let shared = &*self.shared;
        let (live, age) = shared.connection.get(shared.schema.prefix()).await?;
        let started = Instant::now();
        let error = match self.attempt(&live, bucket, command(&live)).await {
            Ok(value) => return Ok(value),
            Err(Failure::Redis(error)) if is_dead_connection(&error) && !live.is_cluster() => error,
            Err(failure) => return Err(self.failed(&live, what, failure)),
        };
        shared.connection.discard(&live, what);
        if age == Age::Fresh {
            return Err(StoreError::new(what, error));
        }
        tracing::debug!(%error, "Redis connection found dead; trying once more on a fresh one");
        let retry = async {
            let (live, _) = shared.connection.get(shared.schema.prefix()).await?;
            self.attempt(&live, bucket, command(&live))
                .await
                .map_err(|failure| self.failed(&live, what, failure))
        };
        match budget {
            Budget::Write => retry.await,
            Budget::Check => tokio::time::timeout_at(later(started, shared.command_timeout), retry)
                .await
                .unwrap_or_else(|_| Err(StoreError::new(what, error))),
        }
    }

    /// One try of a command, timed by how long Redis stays silent rather than by how
    /// long this command waits: behind a burst, a command waits for the ones queued
    /// ahead of it in this process, and that says nothing about Redis.
    async fn attempt<T>(
        &self,
        live: &Live,
        bucket: u32,
        command: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<T, Failure> {
        let timeout = self.shared.command_timeout;
        let sent = Instant::now();
        let mut command = pin!(command);
        let mut round = sent;
        let outcome = loop {
            if let Ok(outcome) = tokio::time::timeout_at(later(round, timeout), command.as_mut()).await {
                break outcome;
            }
            // In a busy runtime the timer fires while answers Redis has sent are still
            // waiting to be read and handed out, by tasks queued ahead of this one. Let
            // them run, then look again.
            tokio::task::yield_now().await;
            if let Ok(outcome) = tokio::time::timeout(Duration::ZERO, command.as_mut()).await {
                break outcome;
            }
            let now = Instant::now();
            // Silence is only believed when this task ran about on time: one that ran
            // late saw the answers late too, and waits another round instead.
            let behind = now.saturating_duration_since(round).saturating_sub(timeout);
            if !live.answered_since(bucket, round) && behind < timeout / 4 {
                return Err(Failure::Silent);
            }
            if now.saturating_duration_since(sent) >= timeout.saturating_mul(QUEUED_LIMIT) {
                return Err(Failure::Queued);
            }
            round = now;
        };
        match outcome {
            Ok(value) => {
                live.answered(bucket);
                Ok(value)
            }
            // A timer of the connection's own (a pool built elsewhere): this command is
            // given up, but the connection is only dead if it answered nothing else.
            Err(error) if error.is_timeout() => Err(if live.answered_since(bucket, round) {
                Failure::Redis(error)
            } else {
                Failure::Silent
            }),
            Err(error) => {
                if !is_dead_connection(&error) {
                    live.answered(bucket);
                }
                Err(Failure::Redis(error))
            }
        }
    }

    fn failed(&self, live: &Live, what: &'static str, failure: Failure) -> StoreError {
        match failure {
            Failure::Silent => {
                // A connection that stops answering may be half-open: replace it. A
                // cluster's, once it has served a while: its node may have been
                // failed over while frozen (see `refresh_cluster`).
                if live.is_cluster() {
                    self.shared.connection.refresh_cluster(live, what);
                } else {
                    self.shared.connection.discard(live, what);
                }
                StoreError::timeout("Redis did not answer within the command timeout")
            }
            Failure::Queued => StoreError::timeout("Redis answered other commands but not this one in time"),
            Failure::Redis(error) => {
                if is_dead_connection(&error) && !live.is_cluster() {
                    self.shared.connection.discard(live, what);
                }
                StoreError::new(what, error)
            }
        }
    }
}

/// `at + after`, or a moment too far to matter when that overflows (a timeout
/// configured as `Duration::MAX`).
fn later(at: Instant, after: Duration) -> tokio::time::Instant {
    let at = tokio::time::Instant::from_std(at);
    at.checked_add(after)
        .unwrap_or_else(|| at + Duration::from_secs(30 * 365 * 24 * 60 * 60))
}

/// Whether an error says the connection is unusable (rather than the command wrong,
/// or slow): the connection must be replaced. A command that failed this way may or
/// may not have run on Redis, which is why only idempotent commands are repeated.
///
/// `READONLY` is one: the node is a replica now (a master demoted by a Sentinel
/// failover), and a fresh connection goes to the new master. (A cluster's connection
/// follows that by itself, and never comes here with it.)
pub(crate) fn is_dead_connection(error: &RedisError) -> bool {
    !error.is_timeout()
        && (error.is_io_error()
            || error.is_connection_dropped()
            || error.is_unrecoverable_error()
            || error.kind() == ::redis::ErrorKind::Server(::redis::ServerErrorKind::ReadOnly))
}
