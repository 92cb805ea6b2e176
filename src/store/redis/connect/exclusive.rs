//! Connections for one caller alone, from the pool: for a write and the `WAIT` that
//! must follow it on the same connection (see `acknowledge.rs`). The shared connection
//! every check pipelines on cannot serve: `WAIT` blocks the connection it runs on.

use ::redis::aio::MultiplexedConnection;

use crate::store::StoreError;
use crate::store::redis::connect::sentinel::{self, SentinelManager};
use crate::store::redis::connect::shared::{Backend, Connection};

/// A connection only one caller uses, back to its pool when dropped: for a write and
/// the `WAIT` that must follow it on the same connection.
pub(crate) enum Exclusive {
    Single(deadpool_redis::Connection),
    Sentinel(deadpool::managed::Object<SentinelManager>),
}

impl Exclusive {
    pub(crate) fn connection(&mut self) -> &mut MultiplexedConnection {
        match self {
            Self::Single(connection) => connection,
            Self::Sentinel(connection) => connection,
        }
    }
}

impl Connection {
    /// A connection for one caller alone, from the pool (not on a cluster).
    pub(crate) async fn exclusive(&self) -> Result<Exclusive, StoreError> {
        let timeout = self.connect_timeout();
        let timed_out = |_| StoreError::timeout("timed out connecting to Redis");
        match self.backend() {
            Backend::Single(pool) => tokio::time::timeout(timeout, pool.get())
                .await
                .map_err(timed_out)?
                .map(Exclusive::Single)
                .map_err(|error| StoreError::new("could not connect to Redis", error)),
            Backend::Sentinel(pool) => match sentinel::get(pool, timeout).await {
                Ok(pooled) => Ok(Exclusive::Sentinel(pooled)),
                Err((context, Some(error))) => Err(StoreError::new(context, error)),
                Err((context, None)) => Err(StoreError::timeout(context)),
            },
            Backend::Cluster(_) => Err(StoreError::msg(
                "a connection of its own is not available on a Redis cluster",
            )),
        }
    }
}
