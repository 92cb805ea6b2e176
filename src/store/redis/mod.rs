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
//! expiry, Unix milliseconds). [`MirrorStore`](crate::store::mirror::MirrorStore)s
//! follow it. These two keys are the only ones without a TTL; both are bounded.

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use ::redis::aio::MultiplexedConnection;
use ::redis::{RedisError, Script};
use async_trait::async_trait;
use deadpool_redis::{Config, Pool, Runtime};

use super::{Lookup, RevocationQuery, RevocationStore, StoreError};
use crate::key::RevocationKey;

/// The key prefix unless configured.
pub const DEFAULT_PREFIX: &str = "revoked";
/// How long to wait for a connection to Redis, unless configured.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long to wait for one command's answer, unless configured. Shorter than the
/// layer's [`DEFAULT_CHECK_TIMEOUT`](crate::DEFAULT_CHECK_TIMEOUT), so that the store
/// sees a silent (half-open) connection time out and replaces it, rather than the
/// layer giving up on the check first.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_millis(150);

/// Appends a change-feed event for the key just written (KEYS[1]), atomically with
/// the write: `seq` from INCR on KEYS[3], then XADD to KEYS[2], capped at ARGV[1]
/// entries, with the key's absolute expiry in Unix milliseconds.
const FEED: &str = r"
local function feed(kind, hash, value)
  local pttl = redis.call('PTTL', KEYS[1])
  local now = redis.call('TIME')
  local expires = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) + pttl
  local seq = redis.call('INCR', KEYS[3])
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], '*',
    'seq', seq, 'kind', kind, 'hash', hash, 'value', value, 'expires_ms', string.format('%d', expires))
end
";

/// Sets a marker unless it already lives longer. ARGV: cap, ttl (ms), kind, hash.
/// Milliseconds throughout: `TTL` rounds to the nearest second, which could shorten a
/// record by up to half a second.
const MARK: &str = r"
local ttl = tonumber(ARGV[2])
if redis.call('PTTL', KEYS[1]) < ttl then
  redis.call('SET', KEYS[1], '1', 'PX', ttl)
end
feed(ARGV[3], ARGV[4], '1')
return 1
";

/// Raises a watermark (never lowers it), keeping it at least `ttl` milliseconds.
/// ARGV: cap, mark, ttl (ms), kind, hash.
const RAISE: &str = r"
local mark = tonumber(ARGV[2])
local current = tonumber(redis.call('GET', KEYS[1]) or '')
if current ~= nil and current > mark then mark = current end
local ttl = tonumber(ARGV[3])
local left = redis.call('PTTL', KEYS[1])
if left > ttl then ttl = left end
redis.call('SET', KEYS[1], string.format('%d', mark), 'PX', ttl)
feed(ARGV[4], ARGV[5], string.format('%d', mark))
return 1
";

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
/// one `MGET` and nothing else on the wire. When that connection fails or times out,
/// it is dropped and the next request takes a fresh one from the pool, so the store
/// reconnects by itself when Redis comes back.
///
/// Cheap to clone; clones share the connection.
///
/// ```no_run
/// use std::time::Duration;
/// use tower_jwt_revoke::store::redis::RedisStore;
///
/// # fn main() -> Result<(), tower_jwt_revoke::StoreError> {
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
    pool: Pool,
    current: RwLock<Option<MultiplexedConnection>>,
    reconnecting: tokio::sync::Mutex<()>,
    prefix: String,
    connect_timeout: Duration,
    command_timeout: Duration,
    feed_max_len: u64,
    mark: Script,
    raise: Script,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.shared.prefix)
            .field("connect_timeout", &self.shared.connect_timeout)
            .field("command_timeout", &self.shared.command_timeout)
            .finish_non_exhaustive()
    }
}

/// Builds a [`RedisStore`]; see [`RedisStore::builder`].
#[derive(Debug, Default)]
#[must_use]
pub struct RedisStoreBuilder {
    source: Option<Source>,
    prefix: Option<String>,
    connect_timeout: Option<Duration>,
    command_timeout: Option<Duration>,
    feed_max_len: Option<u64>,
}

enum Source {
    Config(Config),
    Pool(Pool),
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // A URL may hold a password.
            Self::Config(_) => f.write_str("Config(..)"),
            Self::Pool(pool) => f.debug_tuple("Pool").field(&pool.status()).finish(),
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

    /// Uses connections from this pool.
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

    /// How long to wait for a command's answer (default [`DEFAULT_COMMAND_TIMEOUT`]).
    /// Keep it below the layer's check timeout: a connection is replaced when one of
    /// its commands times out here, not when the layer stops waiting.
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = Some(timeout);
        self
    }

    /// About how many recent events the change feed keeps (default
    /// [`DEFAULT_FEED_MAX_LEN`]). A [`MirrorStore`](crate::store::mirror::MirrorStore)
    /// disconnected for longer than it takes to write this many revocations reloads
    /// everything when it reconnects.
    pub fn feed_max_len(mut self, entries: u64) -> Self {
        self.feed_max_len = Some(entries.max(1));
        self
    }

    /// Builds the store. No connection is made yet: the first command connects, so an
    /// application starts even while Redis is down (and fails closed until it is up).
    pub fn build(self) -> Result<RedisStore, StoreError> {
        let pool = match self.source {
            Some(Source::Pool(pool)) => pool,
            Some(Source::Config(config)) => config
                .create_pool(Some(Runtime::Tokio1))
                .map_err(|error| StoreError::new("invalid Redis configuration", error))?,
            None => return Err(StoreError::msg("no Redis URL, configuration or pool given")),
        };
        Ok(RedisStore {
            shared: Arc::new(Shared {
                pool,
                current: RwLock::new(None),
                reconnecting: tokio::sync::Mutex::new(()),
                prefix: self.prefix.unwrap_or_else(|| DEFAULT_PREFIX.to_owned()),
                connect_timeout: self.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT),
                command_timeout: self.command_timeout.unwrap_or(DEFAULT_COMMAND_TIMEOUT),
                feed_max_len: self.feed_max_len.unwrap_or(DEFAULT_FEED_MAX_LEN),
                mark: Script::new(&format!("{FEED}{MARK}")),
                raise: Script::new(&format!("{FEED}{RAISE}")),
            }),
        })
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

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.shared.prefix
    }

    /// The Redis key of a token revocation.
    pub fn token_key(&self, token: &RevocationKey) -> String {
        self.key("t", token)
    }

    /// The Redis key of a subject watermark.
    pub fn subject_key(&self, subject: &RevocationKey) -> String {
        self.key("s", subject)
    }

    /// The Redis key of a session revocation.
    pub fn session_key(&self, session: &RevocationKey) -> String {
        self.key("x", session)
    }

    fn key(&self, code: &str, hash: &RevocationKey) -> String {
        let prefix = &self.shared.prefix;
        let mut key = String::with_capacity(prefix.len() + code.len() + 2 + 64);
        key.push_str(prefix);
        key.push(':');
        key.push_str(code);
        key.push(':');
        key.push_str(hash.hex().as_str());
        key
    }

    /// The Redis key of the global watermark.
    pub fn global_key(&self) -> String {
        format!("{}:all", self.shared.prefix)
    }

    /// The Redis key of the change feed (a stream).
    pub fn feed_key(&self) -> String {
        format!("{}:feed", self.shared.prefix)
    }

    /// The Redis key of the change feed's sequence counter.
    pub fn feed_seq_key(&self) -> String {
        format!("{}:feed:seq", self.shared.prefix)
    }

    pub(crate) fn command_timeout(&self) -> Duration {
        self.shared.command_timeout
    }

    /// A multiplexed connection taken out of the pool for good: the shared one, or one
    /// of its own for commands that block (`XREAD BLOCK`) and would stall every
    /// request pipelined behind them on the shared one.
    pub(crate) async fn dedicated_connection(&self) -> Result<MultiplexedConnection, StoreError> {
        let pooled = tokio::time::timeout(self.shared.connect_timeout, self.shared.pool.get())
            .await
            .map_err(|_| StoreError::msg("timed out connecting to Redis"))?
            .map_err(|error| StoreError::new("could not connect to Redis", error))?;
        Ok(deadpool_redis::Connection::take(pooled))
    }

    /// The shared connection, taken from the pool when there is none.
    async fn connection(&self) -> Result<MultiplexedConnection, StoreError> {
        if let Some(connection) = self.cached() {
            return Ok(connection);
        }
        // One task reconnects; the others wait for its connection instead of each
        // opening their own.
        let _reconnecting = self.shared.reconnecting.lock().await;
        if let Some(connection) = self.cached() {
            return Ok(connection);
        }
        let connection = self.dedicated_connection().await?;
        *self
            .shared
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(connection.clone());
        tracing::info!(prefix = %self.shared.prefix, "connected to Redis");
        Ok(connection)
    }

    fn cached(&self) -> Option<MultiplexedConnection> {
        self.shared
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Forgets the shared connection after a failure, so the next command reconnects.
    fn discard_connection(&self, why: &str) {
        let previous = self
            .shared
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if previous.is_some() {
            tracing::warn!(%why, "dropping the Redis connection; the next request reconnects");
        }
    }

    /// Runs one command on the shared connection under the command timeout.
    async fn run<T, F, Fut>(&self, what: &'static str, command: F) -> Result<T, StoreError>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        let connection = self.connection().await?;
        match tokio::time::timeout(self.shared.command_timeout, command(connection)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => {
                if error.is_io_error() || error.is_connection_dropped() || error.is_unrecoverable_error() {
                    self.discard_connection(what);
                }
                Err(StoreError::new(what, error))
            }
            Err(_elapsed) => {
                // A connection that stops answering may be half-open: replace it.
                self.discard_connection(what);
                Err(StoreError::msg("Redis did not answer within the command timeout"))
            }
        }
    }

    async fn mark(&self, kind: Kind, hash: &RevocationKey, ttl: Duration) -> Result<(), StoreError> {
        let keys = [self.key_of(kind, hash), self.feed_key(), self.feed_seq_key()];
        let args = [
            self.shared.feed_max_len.to_string(),
            ttl_ms(ttl).to_string(),
            kind.code().into(),
            hash.to_string(),
        ];
        self.script(&self.shared.mark, "Redis revocation write failed", keys, &args)
            .await
    }

    async fn raise(
        &self,
        kind: Kind,
        hash: &RevocationKey,
        issued_until: u64,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let keys = [self.key_of(kind, hash), self.feed_key(), self.feed_seq_key()];
        let args = [
            self.shared.feed_max_len.to_string(),
            issued_until.to_string(),
            ttl_ms(ttl).to_string(),
            kind.code().into(),
            hash.to_string(),
        ];
        self.script(&self.shared.raise, "Redis watermark write failed", keys, &args)
            .await
    }

    async fn script(
        &self,
        script: &Script,
        what: &'static str,
        keys: [String; 3],
        args: &[String],
    ) -> Result<(), StoreError> {
        self.run(what, |mut connection| async move {
            let mut invocation = script.prepare_invoke();
            invocation.key(&keys[..]);
            for arg in args {
                invocation.arg(arg);
            }
            invocation.invoke_async::<i64>(&mut connection).await
        })
        .await
        .map(drop)
    }

    pub(crate) fn key_of(&self, kind: Kind, hash: &RevocationKey) -> String {
        match kind {
            Kind::Token => self.token_key(hash),
            Kind::Session => self.session_key(hash),
            Kind::Subject => self.subject_key(hash),
            Kind::Global => self.global_key(),
        }
    }

    /// Which kind of record a key of this store's prefix holds.
    pub(crate) fn parse_key(&self, key: &str) -> Option<(Kind, RevocationKey)> {
        let rest = key.strip_prefix(self.shared.prefix.as_str())?.strip_prefix(':')?;
        if rest == "all" {
            return Some((Kind::Global, RevocationKey::ZERO));
        }
        let (code, hash) = rest.split_once(':')?;
        Some((Kind::from_code(code)?, RevocationKey::from_hex(hash)?))
    }
}

/// The kinds of record, with their codes in keys and in the change feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Token,
    Session,
    Subject,
    Global,
}

impl Kind {
    pub(crate) fn code(self) -> &'static str {
        match self {
            Self::Token => "t",
            Self::Session => "x",
            Self::Subject => "s",
            Self::Global => "all",
        }
    }

    pub(crate) fn from_code(code: &str) -> Option<Self> {
        match code {
            "t" => Some(Self::Token),
            "x" => Some(Self::Session),
            "s" => Some(Self::Subject),
            "all" => Some(Self::Global),
            _ => None,
        }
    }
}

/// Whole milliseconds, rounded up, at least one (`PX 0` is an error).
fn ttl_ms(ttl: Duration) -> u64 {
    let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    ms.saturating_add(u64::from(!ttl.subsec_nanos().is_multiple_of(1_000_000)))
        .max(1)
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
        let mut keys = Vec::with_capacity(4);
        keys.push(self.token_key(&query.token));
        keys.push(self.global_key());
        if let Some(session) = &query.session {
            keys.push(self.session_key(session));
        }
        if let Some(subject) = &query.subject {
            keys.push(self.subject_key(subject));
        }
        let values: Vec<Option<String>> = self
            .run("Redis revocation lookup failed", |mut connection| async move {
                ::redis::cmd("MGET").arg(&keys).query_async(&mut connection).await
            })
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
