//! Connections through Redis Sentinel: the Sentinels name the current master, and a
//! connection is made to it (redis-rs's [`SentinelClient`], which also checks that the
//! node named calls itself master). After a failover, the next connection made goes to
//! the promoted replica; the store replaces its connection when the old one dies or
//! refuses writes (`READONLY`: a demoted master), so it follows without a restart.
//!
//! A deadpool manager of its own rather than deadpool-redis's `sentinel::Manager`,
//! which makes its connections with redis-rs's defaults: a fixed 500 ms response timer
//! under every command (which would cut a command merely queued behind a burst, and
//! every `WAIT` longer than that) and redis-rs's small command queue.

use std::time::Duration;

use ::redis::aio::MultiplexedConnection;
use ::redis::sentinel::SentinelClient;
use ::redis::{AsyncConnectionConfig, RedisError};
use deadpool::managed::{self, Metrics, Object, PoolError, RecycleError, RecycleResult};
use tokio::sync::Mutex;

/// A pool of connections to the master the Sentinels name.
pub(crate) type SentinelPool = managed::Pool<SentinelManager>;

/// How many connect timeouts connecting through Sentinel may take as a whole: asking
/// the Sentinels (one after the other, when the first do not answer), then the master.
const SENTINEL_HANDSHAKE: u32 = 3;

/// A connection from `pool` within the handshake's time, or what failed (and why, when
/// the pool said).
pub(crate) async fn get(
    pool: &SentinelPool,
    connect_timeout: Duration,
) -> Result<Object<SentinelManager>, (&'static str, Option<PoolError<RedisError>>)> {
    match tokio::time::timeout(connect_timeout.saturating_mul(SENTINEL_HANDSHAKE), pool.get()).await {
        Ok(Ok(pooled)) => Ok(pooled),
        Ok(Err(error)) => Err(("could not connect to Redis through Sentinel", Some(error))),
        Err(_) => Err(("timed out connecting to Redis through Sentinel", None)),
    }
}

/// Makes connections to the master the Sentinels name, and keeps only those still
/// talking to a master.
pub(crate) struct SentinelManager {
    /// Locked while one connection is being made: the client caches its connections to
    /// the Sentinels, and asks them one after the other.
    client: Mutex<SentinelClient>,
    config: AsyncConnectionConfig,
}

impl SentinelManager {
    pub(crate) fn new(client: SentinelClient, config: AsyncConnectionConfig) -> Self {
        Self {
            client: Mutex::new(client),
            config,
        }
    }
}

impl managed::Manager for SentinelManager {
    type Type = MultiplexedConnection;
    type Error = RedisError;

    async fn create(&self) -> Result<MultiplexedConnection, RedisError> {
        self.client
            .lock()
            .await
            .get_async_connection_with_config(&self.config)
            .await
    }

    /// A pooled connection is handed out again only while its node is still the master:
    /// after a failover the old master, back as a replica, would refuse every write.
    async fn recycle(
        &self,
        connection: &mut MultiplexedConnection,
        _: &Metrics,
    ) -> RecycleResult<RedisError> {
        let role: ::redis::Value = ::redis::cmd("ROLE").query_async(connection).await?;
        match role {
            ::redis::Value::Array(fields) if is_master(fields.first()) => Ok(()),
            _ => Err(RecycleError::message("the node is no longer the master")),
        }
    }
}

fn is_master(role: Option<&::redis::Value>) -> bool {
    role.and_then(|role| ::redis::from_redis_value_ref::<String>(role).ok())
        .is_some_and(|role| role == "master")
}
