//! [`RedisStore`]: one blocklist in Redis, shared by every replica (feature `redis`).
//!
//! # Key schema
//!
//! Every key lives under a prefix (default `revoked`) and has a TTL:
//!
//! | key                 | value                         | TTL                               |
//! |---------------------|-------------------------------|-----------------------------------|
//! | `{prefix}:t:{hash}` | `1`                           | until the token would expire      |
//! | `{prefix}:x:{hash}` | `1`                           | longest token lifetime + leeway   |
//! | `{prefix}:s:{hash}` | watermark, decimal seconds    | longest token lifetime + leeway   |
//! | `{prefix}:all`      | watermark, decimal seconds    | longest token lifetime + leeway   |
//!
//! `{hash}` is the lowercase hex [`RevocationKey`]. A check is one `MGET` of the
//! token, subject, session and global keys. Writes never shorten a TTL and never lower
//! a watermark (each is one small Lua script, atomic on the server).
//!
//! Each write also appends, in the same script, an event to the change feed
//! `{prefix}:feed` (a stream capped near [`DEFAULT_FEED_MAX_LEN`] entries) with the
//! fields `seq` (from `INCR {prefix}:feed:seq`), `kind` (`t`, `x`, `s` or `all`),
//! `hash`, `value` (`1`, or the watermark after the write) and `expires_ms` (the key's
//! expiry, Unix milliseconds). [`MirrorStore`](crate::store::MirrorStore)s
//! follow it. These two keys are the only ones without a TTL; both are bounded.
//!
//! The same write may append two events, numbered one after the other: the store
//! repeats a write once when its connection died before the answer came, not knowing
//! whether the first one ran. A reader of the feed applies events idempotently (a
//! marker keeps the longest expiry, a watermark the highest value), as writes do.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::MultiplexedConnection;
use async_trait::async_trait;
use deadpool_redis::Pool;

use super::{Lookup, RevocationQuery, RevocationStore, StoreError};
use crate::key::RevocationKey;

mod admin;
mod builder;
mod command;
mod connection;
mod keys;
mod scripts;

pub use self::admin::{Page, Record, RecordKind, Stats};
pub use self::builder::RedisStoreBuilder;
use self::command::Budget;
use self::connection::Connection;
pub(crate) use self::keys::Kind;
use self::scripts::Scripts;

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

/// Revocations in Redis, shared by every replica that uses the same server and
/// prefix.
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
#[derive(Clone)]
pub struct RedisStore {
    shared: Arc<Shared>,
}

struct Shared {
    connection: Connection,
    prefix: String,
    command_timeout: Duration,
    feed_max_len: u64,
    scripts: Scripts,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.shared.prefix)
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

    fn new(
        connection: Connection,
        prefix: String,
        command_timeout: Duration,
        feed_max_len: u64,
        scripts: Scripts,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                connection,
                prefix,
                command_timeout,
                feed_max_len,
                scripts,
            }),
        }
    }

    fn connect_in_background(&self) {
        self.shared.connection.connect_in_background(&self.shared.prefix);
    }

    pub(crate) fn command_timeout(&self) -> Duration {
        self.shared.command_timeout
    }

    /// A multiplexed connection of its own, for commands that block (`XREAD BLOCK`)
    /// and would stall every request pipelined behind them on the shared one.
    pub(crate) async fn dedicated_connection(&self) -> Result<MultiplexedConnection, StoreError> {
        self.shared.connection.dedicated().await
    }
}

fn watermark(value: Option<String>) -> Result<Option<u64>, StoreError> {
    value
        .map(|text| text.parse::<u64>())
        .transpose()
        .map_err(|error| StoreError::new("a watermark in Redis is not a number of seconds", error))
}

#[async_trait]
impl RevocationStore for RedisStore {
    async fn lookup(&self, query: &RevocationQuery) -> Result<Lookup, StoreError> {
        let mut mget = ::redis::cmd("MGET");
        mget.arg(self.token_key(&query.token)).arg(self.global_key());
        if let Some(session) = &query.session {
            mget.arg(self.session_key(session));
        }
        if let Some(subject) = &query.subject {
            mget.arg(self.subject_key(subject));
        }
        let mget = &mget;
        let values: Vec<Option<String>> = self
            .run(
                "Redis revocation lookup failed",
                Budget::Check,
                |mut connection| async move { mget.query_async(&mut connection).await },
            )
            .await?;
        let mut values = values.into_iter();
        let token = values.next().flatten();
        let global = values.next().flatten();
        let session = if query.session.is_some() {
            values.next().flatten()
        } else {
            None
        };
        let subject = if query.subject.is_some() {
            values.next().flatten()
        } else {
            None
        };
        Ok(Lookup {
            token_revoked: token.is_some(),
            session_revoked: session.is_some(),
            subject_watermark: watermark(subject)?,
            global_watermark: watermark(global)?,
        })
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

    async fn health(&self) -> super::StoreHealth {
        let ping = self
            .run("Redis PING failed", Budget::Check, |mut connection| async move {
                ::redis::cmd("PING").query_async::<String>(&mut connection).await
            })
            .await;
        match ping {
            Ok(_) => super::StoreHealth {
                reachable: Some(true),
                ..super::StoreHealth::ready("redis")
            },
            Err(error) => super::StoreHealth {
                reachable: Some(false),
                ..super::StoreHealth::not_ready("redis", error.to_string())
            },
        }
    }

    async fn revoke_token(&self, token: &RevocationKey, ttl: Duration) -> Result<(), StoreError> {
        self.mark(Kind::Token, token, ttl).await
    }

    async fn revoke_session(&self, session: &RevocationKey, ttl: Duration) -> Result<(), StoreError> {
        self.mark(Kind::Session, session, ttl).await
    }

    async fn raise_subject_watermark(
        &self,
        subject: &RevocationKey,
        issued_until: u64,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.raise(Kind::Subject, subject, issued_until, ttl).await
    }

    async fn raise_global_watermark(&self, issued_until: u64, ttl: Duration) -> Result<(), StoreError> {
        self.raise(Kind::Global, &RevocationKey::ZERO, issued_until, ttl)
            .await
    }
}
