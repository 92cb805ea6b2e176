//! The key layout a blocklist was written with, recorded in Redis beside it, so that a
//! store configured differently (another bucket count) is refused instead of quietly
//! writing and reading other buckets than its peers.
//!
//! `{prefix:b0}:layout` holds `v2 buckets=<N>`, without a TTL. The first write of a
//! store records it (`SET NX`); every connection a store makes reads it first, and a
//! store whose own layout differs fails to connect: its checks fail closed (503), its
//! writes fail, with an error that says both bucket counts. A blocklist without the
//! key (new, or written before it existed, or lost with Redis's data) is taken as it
//! comes.

use std::fmt;
use std::time::Duration;

use ::redis::Cmd;

use crate::store::redis::connect::conn::Conn;
use crate::store::redis::schema::Schema;

/// What a store expects to find, and where.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    key: String,
    value: String,
}

impl Layout {
    pub(crate) fn new(schema: &Schema) -> Self {
        Self {
            key: format!("{}:layout", schema.tag(0)),
            value: format!("v2 buckets={}", schema.buckets()),
        }
    }

    /// The key, for the admin API and the tests.
    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    /// `SET key value NX`: records the layout unless one is recorded already.
    pub(crate) fn record(&self) -> Cmd {
        let mut set = ::redis::cmd("SET");
        set.arg(&self.key).arg(&self.value).arg("NX");
        set
    }

    /// Reads the recorded layout on `connection`: `Ok(Err(..))` when it differs.
    pub(crate) async fn check(
        &self,
        connection: &mut Conn,
        timeout: Duration,
    ) -> Result<Result<(), Mismatch>, CheckFailed> {
        let mut get = ::redis::cmd("GET");
        get.arg(&self.key);
        let recorded: Option<String> = match tokio::time::timeout(timeout, get.query_async(connection)).await
        {
            Ok(Ok(recorded)) => recorded,
            Ok(Err(error)) => return Err(CheckFailed(Some(error))),
            Err(_) => return Err(CheckFailed(None)),
        };
        Ok(match recorded {
            Some(recorded) if recorded != self.value => Err(Mismatch {
                key: self.key.clone(),
                recorded,
                configured: self.value.clone(),
            }),
            _ => Ok(()),
        })
    }
}

/// The blocklist in Redis was written with another layout than this store's.
#[derive(Debug)]
pub(crate) struct Mismatch {
    key: String,
    recorded: String,
    configured: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the blocklist was written with `{}` ({}), this store is configured with `{}`: every \
             service sharing a prefix must use the same bucket count (RedisStoreBuilder::buckets)",
            self.recorded, self.key, self.configured
        )
    }
}

impl std::error::Error for Mismatch {}

/// Reading the layout failed: Redis refused (the error) or did not answer (`None`).
pub(crate) struct CheckFailed(pub(crate) Option<::redis::RedisError>);
