//! Acknowledged revocations: a write that returns only once Redis confirms it reached
//! replicas (`WAIT`) and/or the append-only file on disk (`WAITAOF`).
//!
//! Redis replicates asynchronously: a master acknowledges a write before any replica
//! has it, and a failover in that moment promotes a replica without it — the
//! revocation is gone, and the token it refused is let in again. `WAIT` closes the gap
//! for the writes that matter: it blocks the caller until `n` replicas confirmed every
//! write *of that connection*. So the write and its `WAIT` run on one connection of
//! their own, taken from the pool for the call: on the connection every check shares,
//! a blocked `WAIT` would hold up every check pipelined behind it.

use std::time::Duration;

use ::redis::aio::ConnectionLike;
use ::redis::{ErrorKind, RedisError, ServerErrorKind};

use crate::store::StoreError;

/// How long a revocation waits for its acknowledgement, unless configured.
pub const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_millis(500);

/// What a revocation waits for before it returns; see
/// [`RedisStoreBuilder::acknowledge`](crate::store::redis::RedisStoreBuilder::acknowledge).
///
/// ```
/// use std::time::Duration;
/// use tower_jwt_revoke::store::Acknowledgement;
///
/// // One replica has it, within 250 ms.
/// let ack = Acknowledgement::replicas(1).with_timeout(Duration::from_millis(250));
/// // And it is on the master's disk (Redis 7.2 or later, `appendonly yes`).
/// let ack = ack.with_fsync();
/// # let _ = ack;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct Acknowledgement {
    replicas: u32,
    fsync: bool,
    timeout: Duration,
}

impl Acknowledgement {
    /// Waits until `replicas` replicas have the write (`WAIT replicas timeout`).
    pub const fn replicas(replicas: u32) -> Self {
        Self {
            replicas,
            fsync: false,
            timeout: DEFAULT_ACK_TIMEOUT,
        }
    }

    /// Waits until the master has written the revocation to its append-only file on
    /// disk (`WAITAOF 1 0 timeout`): it then survives a restart of the master. Needs
    /// Redis 7.2 or later with `appendonly yes`; on an older server every acknowledged
    /// revocation fails with [`StoreError::is_unacknowledged`], saying so.
    pub const fn fsync() -> Self {
        Self {
            replicas: 0,
            fsync: true,
            timeout: DEFAULT_ACK_TIMEOUT,
        }
    }

    /// Also waits for `replicas` replicas.
    pub const fn with_replicas(mut self, replicas: u32) -> Self {
        self.replicas = replicas;
        self
    }

    /// Also waits for the master's append-only file (see [`fsync`](Self::fsync)).
    pub const fn with_fsync(mut self) -> Self {
        self.fsync = true;
        self
    }

    /// How long each confirmation may take (default [`DEFAULT_ACK_TIMEOUT`]; at least a
    /// millisecond: Redis reads `0` as "wait for ever").
    pub const fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How many replicas must confirm.
    pub const fn replicas_required(&self) -> u32 {
        self.replicas
    }

    /// Whether the master's append-only file must confirm.
    pub const fn fsync_required(&self) -> bool {
        self.fsync
    }

    /// How long each confirmation may take.
    pub const fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Whether there is anything to wait for.
    pub(crate) fn is_needed(&self) -> bool {
        self.replicas > 0 || self.fsync
    }

    fn timeout_ms(&self) -> u64 {
        u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX).max(1)
    }

    /// Waits for the confirmations of every write made so far on `connection` (the one
    /// the writes ran on). `guard` bounds each command on top of its own timeout: Redis
    /// answers `WAIT` when its timeout ends, so only a Redis that stopped answering
    /// altogether meets it. Every failure here comes after the writes were applied, and
    /// so is an [unacknowledged](StoreError::is_unacknowledged) one.
    pub(crate) async fn confirm<C: ConnectionLike>(
        &self,
        connection: &mut C,
        guard: Duration,
    ) -> Result<(), StoreError> {
        let bound = self.timeout.saturating_add(guard);
        if self.replicas > 0 {
            let mut wait = ::redis::cmd("WAIT");
            wait.arg(self.replicas).arg(self.timeout_ms());
            let reached = match tokio::time::timeout(bound, wait.query_async::<i64>(connection)).await {
                Ok(Ok(reached)) => Some(reached),
                Ok(Err(error)) => return Err(StoreError::unacknowledged(NO_REPLICAS, Some(error.into()))),
                Err(_) => None,
            };
            if reached.is_none_or(|reached| reached < i64::from(self.replicas)) {
                tracing::warn!(
                    reached,
                    required = self.replicas,
                    "Redis did not confirm a revocation reached its replicas in time"
                );
                return Err(StoreError::unacknowledged(NO_REPLICAS, None));
            }
        }
        if self.fsync {
            let mut waitaof = ::redis::cmd("WAITAOF");
            waitaof.arg(1).arg(0).arg(self.timeout_ms());
            let local = match tokio::time::timeout(bound, waitaof.query_async::<(i64, i64)>(connection)).await
            {
                Ok(Ok((local, _replicas))) => local,
                Ok(Err(error)) => return Err(refused_waitaof(error)),
                Err(_) => 0,
            };
            if local < 1 {
                tracing::warn!("Redis did not confirm a revocation reached its append-only file in time");
                return Err(StoreError::unacknowledged(NO_FSYNC, None));
            }
        }
        Ok(())
    }
}

const NO_REPLICAS: &str = "Redis did not confirm the revocation reached the replicas in time: it is applied, but may not survive a failover";
const NO_FSYNC: &str = "Redis did not confirm the revocation reached its append-only file in time: it is applied, \
                        but may not survive a restart";

/// Why `WAITAOF` failed: a server too old to have it, or without an append-only file,
/// cannot confirm anything, and says so the same way a slow one does.
fn refused_waitaof(error: RedisError) -> StoreError {
    let unknown = error.kind() == ErrorKind::Server(ServerErrorKind::ResponseError)
        && error.to_string().to_ascii_lowercase().contains("unknown command");
    if unknown {
        // Said once at `error` level at start (`check_acknowledgement`); each call returns it.
        tracing::debug!("Redis has no WAITAOF: a revocation cannot be confirmed on disk");
        return StoreError::unacknowledged(
            "Redis cannot confirm the revocation reached its append-only file (no WAITAOF before Redis \
             7.2): it is applied, but may not survive a restart",
            Some(error.into()),
        );
    }
    StoreError::unacknowledged(
        "Redis refused to confirm the revocation reached its append-only file (is appendonly on?): it is \
         applied, but may not survive a restart",
        Some(error.into()),
    )
}

impl crate::store::redis::RedisStore {
    /// What each revocation waits for, if anything (see
    /// [`RedisStoreBuilder::acknowledge`](crate::store::redis::RedisStoreBuilder::acknowledge)).
    pub fn acknowledgement(&self) -> Option<Acknowledgement> {
        self.shared.acknowledge
    }

    /// At start, with an fsync acknowledgement: says once, at `error` level, when the
    /// server cannot give one (no `WAITAOF` before Redis 7.2, or no append-only file), so
    /// that every acknowledged revocation would fail.
    pub(crate) async fn check_acknowledgement(&self, append_only: bool) -> Result<(), StoreError> {
        if !self.acknowledgement().is_some_and(|ack| ack.fsync_required()) {
            return Ok(());
        }
        if !append_only {
            tracing::error!(
                prefix = %self.prefix(),
                "revocations are to be confirmed on disk, but Redis has no append-only file \
                 (appendonly no): every one will fail as unacknowledged"
            );
        }
        let mut connection = self.dedicated_connection().await?;
        let mut info = ::redis::cmd("COMMAND");
        info.arg("INFO").arg("WAITAOF");
        let reply: ::redis::Value =
            tokio::time::timeout(self.command_timeout(), info.query_async(&mut connection))
                .await
                .map_err(|_| StoreError::timeout("Redis did not answer COMMAND INFO in time"))?
                .map_err(|error| StoreError::new("COMMAND INFO failed", error))?;
        // One entry per command asked about; nil for a command the server does not know.
        let known = matches!(&reply, ::redis::Value::Array(entries) if entries.first().is_some_and(|entry| !matches!(entry, ::redis::Value::Nil)));
        if !known {
            tracing::error!(
                prefix = %self.prefix(),
                "revocations are to be confirmed on disk, but Redis has no WAITAOF (it came with \
                 Redis 7.2): every one will fail as unacknowledged; upgrade Redis, or drop the \
                 fsync acknowledgement"
            );
        }
        Ok(())
    }
}
