//! The writes: each one Lua script (in `scripts/`), atomic on the server, that records
//! the revocation in one bucket and appends its event to that bucket's change feed (one
//! slot: a cluster runs it on one node). A write to every bucket is one script per
//! bucket, run concurrently.
//!
//! Here too: the writes confirmed by replicas or the append-only file
//! (`acknowledge.rs`), and the writes a mirror makes to put back what Redis lost
//! (`write_back.rs`).
//!
//! May use: `connect/` and `schema/`. Used by: the store's revocations, `admin/`
//! (restores), the mirror (write-back).

pub(crate) mod acknowledge;
mod refresh;
pub(crate) mod write_back;

use std::sync::atomic::Ordering;
use std::time::Duration;

use ::redis::{Script, ScriptInvocation};
use futures_util::future::join_all;

use self::acknowledge::Acknowledgement;
use crate::store::StoreError;
use crate::store::key::RevocationKey;
use crate::store::redis::RedisStore;
use crate::store::redis::connect::command::{Budget, QUEUED_LIMIT, is_dead_connection};
use crate::store::redis::schema::Kind;

/// `feed.lua` defines the `feed` function the others end with.
const FEED: &str = include_str!("scripts/feed.lua");
const MARK: &str = include_str!("scripts/mark.lua");
const RAISE: &str = include_str!("scripts/raise.lua");

pub(crate) struct Scripts {
    mark: Script,
    pub(crate) raise: Script,
    /// A marker written back (see `write_back.rs`).
    pub(crate) write_back: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Self {
            mark: Script::new(&format!("{FEED}{MARK}")),
            raise: Script::new(&format!("{FEED}{RAISE}")),
            write_back: crate::store::redis::write::write_back::marker_script(),
        }
    }
}

/// Which buckets a write goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Targets {
    /// The one bucket the records' checks read.
    One(u32),
    /// Every bucket: a record every check must see (global watermark, session), or one
    /// whose bucket the writer cannot tell (a token whose subject it does not know).
    Every,
}

/// The keys a write script touches: the record, the feed, the feed's counter, and (v2
/// only) the bucket's index.
pub(crate) type WriteKeys = Vec<String>;

impl RedisStore {
    /// Records a marker (token, session) for at least `ttl`.
    pub(crate) async fn mark(
        &self,
        targets: Targets,
        kind: Kind,
        hash: &RevocationKey,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let v1 = self.v1().map(|_| hash);
        self.write(targets, kind, hash, None, ttl, v1).await
    }

    /// Records a token revoked for its subject (`record`, the token bound to it) in
    /// `bucket`; during a v1 transition the v1 copy is the token's own hash (`token`),
    /// which is what v1 readers read.
    pub(crate) async fn mark_token_for_subject(
        &self,
        bucket: u32,
        record: &RevocationKey,
        token: &RevocationKey,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let v1 = self.v1().map(|_| token);
        self.write(Targets::One(bucket), Kind::Token, record, None, ttl, v1)
            .await
    }

    /// Raises a watermark (subject, global) to at least `issued_until`, kept at least
    /// `ttl`.
    pub(crate) async fn raise(
        &self,
        targets: Targets,
        kind: Kind,
        hash: &RevocationKey,
        issued_until: u64,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let v1 = self.v1().map(|_| hash);
        self.write(targets, kind, hash, Some(issued_until), ttl, v1).await
    }

    /// Runs the write's script (`mark`: a marker; `Some(mark)`: a watermark) in each
    /// target bucket, and on the v1 keys too with `with_v1` (the hash the v1 copy is
    /// recorded under), all at once; fails if any fails (every write may be repeated).
    pub(crate) async fn write(
        &self,
        targets: Targets,
        kind: Kind,
        hash: &RevocationKey,
        mark: Option<u64>,
        ttl: Duration,
        with_v1: Option<&RevocationKey>,
    ) -> Result<(), StoreError> {
        let schema = self.schema();
        let cap = self.feed_trim();
        let ttl = ttl_ms(ttl).to_string();
        let (script, what) = match mark {
            None => (&self.shared.scripts.mark, "Redis revocation write failed"),
            Some(_) => (&self.shared.scripts.raise, "Redis watermark write failed"),
        };
        let args_for = |hash: &RevocationKey| match mark {
            None => vec![cap.clone(), ttl.clone(), kind.code().into(), hash.to_string()],
            Some(mark) => vec![
                cap.clone(),
                mark.to_string(),
                ttl.clone(),
                kind.code().into(),
                hash.to_string(),
            ],
        };
        let args = args_for(hash);
        let buckets = match targets {
            Targets::One(bucket) => bucket..bucket + 1,
            Targets::Every => 0..schema.buckets(),
        };
        // A write to one bucket announces it itself; a write to every bucket announces
        // them all at once when done, rather than each over the cluster bus.
        let one = matches!(targets, Targets::One(_));
        let mut invocations: Vec<(u32, ScriptInvocation<'_>)> = buckets
            .map(|bucket| {
                let keys = schema.write_keys(bucket, kind, hash);
                let wake = one.then(|| [schema.wake(), bucket.to_string()]);
                (bucket, invocation(script, keys, &args, wake))
            })
            .collect();
        let v1_args;
        if let (Some(v1), Some(v1_hash)) = (self.v1(), with_v1) {
            v1_args = args_for(v1_hash);
            invocations.push((
                0,
                invocation(script, v1.write_keys(kind, v1_hash), &v1_args, None),
            ));
        }
        // An acknowledgement that did not come leaves the write applied: it is announced
        // like any other, and the error given after.
        let mut unacknowledged = None;
        match self.shared.acknowledge {
            Some(acknowledgement) => match self.acknowledged(&invocations, what, acknowledgement).await {
                Ok(()) => {}
                Err(error) if error.is_unacknowledged() => unacknowledged = Some(error),
                Err(error) => return Err(error),
            },
            None => {
                let writes = invocations.iter().map(|(bucket, invocation)| {
                    self.run(what, Budget::Write, *bucket, move |mut connection| async move {
                        invocation.invoke_async::<i64>(&mut connection).await
                    })
                });
                join_all(writes)
                    .await
                    .into_iter()
                    .collect::<Result<Vec<_>, _>>()?;
            }
        }
        if !one {
            self.announce_every_bucket().await;
        }
        self.record_layout().await?;
        unacknowledged.map_or(Ok(()), Err)
    }

    /// Records the key layout beside the blocklist, once per store (see the `layout`
    /// module): from then on a store configured with another bucket count is refused.
    async fn record_layout(&self) -> Result<(), StoreError> {
        if self.shared.layout_recorded.load(Ordering::Relaxed) {
            return Ok(());
        }
        let set = self.shared.connection.layout().record();
        let set = &set;
        self.run(
            "Redis layout write failed",
            Budget::Write,
            0,
            |mut connection| async move { set.query_async::<Option<String>>(&mut connection).await },
        )
        .await?;
        self.shared.layout_recorded.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Runs `invocations` one after the other on a connection of their own, then waits
    /// on it for `acknowledgement`: `WAIT` counts the writes of the connection it runs
    /// on, and blocks that connection meanwhile (which on the shared one would hold up
    /// every check behind it).
    ///
    /// Timed and retried as the other writes are: a write fails when Redis stays silent
    /// for the command timeout, counted from when this task could look (a busy runtime
    /// that wakes it late does not make Redis silent), and a write that finds its
    /// connection dead is tried once more, with the rest, on a fresh one (every write
    /// is idempotent). Whatever goes wrong once the writes are through is
    /// [unacknowledged](StoreError::is_unacknowledged): they are applied.
    async fn acknowledged(
        &self,
        invocations: &[(u32, ScriptInvocation<'_>)],
        what: &'static str,
        acknowledgement: Acknowledgement,
    ) -> Result<(), StoreError> {
        // The shared connection first: it is made only once the blocklist's recorded
        // layout matches this store's (see the `layout` module), which the pooled
        // connection below does not check again.
        self.shared.connection.get(self.prefix()).await?;
        let timeout = self.command_timeout();
        let mut retried = false;
        loop {
            let mut exclusive = self.shared.connection.exclusive().await?;
            let connection = exclusive.connection();
            match self.write_exclusively(connection, invocations, what).await {
                Ok(()) => return acknowledgement.confirm(connection, timeout).await,
                Err(Some(error)) if is_dead_connection(&error) && !retried => {
                    tracing::debug!(%error, "Redis connection found dead under a write; trying once more on a fresh one");
                    retried = true;
                }
                Err(Some(error)) => return Err(StoreError::new(what, error)),
                Err(None) => return Err(StoreError::timeout("Redis did not answer the revocation in time")),
            }
        }
    }

    /// The writes of [`acknowledged`](Self::acknowledged), in order; `Err(None)` when
    /// Redis stayed silent.
    async fn write_exclusively(
        &self,
        connection: &mut ::redis::aio::MultiplexedConnection,
        invocations: &[(u32, ScriptInvocation<'_>)],
        what: &'static str,
    ) -> Result<(), Option<::redis::RedisError>> {
        let timeout = self.command_timeout();
        for (_, invocation) in invocations {
            // `invoke_async` loads the script when the server does not know it yet.
            let mut write = std::pin::pin!(invocation.invoke_async::<i64>(connection));
            let mut round = std::time::Instant::now();
            let sent = round;
            loop {
                if let Ok(outcome) = tokio::time::timeout(timeout, write.as_mut()).await {
                    outcome.map_err(Some)?;
                    break;
                }
                tokio::task::yield_now().await;
                let now = std::time::Instant::now();
                // Believed only when this task ran about on time, as on the shared
                // connection (`command.rs`); bounded all the same.
                let behind = now.saturating_duration_since(round).saturating_sub(timeout);
                if behind < timeout / 4
                    || now.saturating_duration_since(sent) >= timeout.saturating_mul(QUEUED_LIMIT)
                {
                    tracing::debug!(what, "Redis stayed silent under an acknowledged write");
                    return Err(None);
                }
                round = now;
            }
        }
        Ok(())
    }

    /// `PUBLISH {prefix}:wake *`: every bucket has news. Best effort, as in the scripts:
    /// mirrors read every feed on their tick anyway.
    pub(crate) async fn announce_every_bucket(&self) {
        let mut publish = ::redis::cmd("PUBLISH");
        publish.arg(self.schema().wake()).arg("*");
        let publish = &publish;
        let published = self
            .run(
                "Redis wake-up failed",
                Budget::Write,
                0,
                |mut connection| async move { publish.query_async::<i64>(&mut connection).await },
            )
            .await;
        if let Err(error) = published {
            tracing::debug!(%error, "could not announce a write to every bucket; mirrors see it on their tick");
        }
    }
}

/// One script run: `keys` in one bucket's slot, then `args`, then the wake channel and
/// the bucket's number.
pub(crate) fn invocation<'a>(
    script: &'a Script,
    keys: WriteKeys,
    args: &[String],
    wake: Option<[String; 2]>,
) -> ScriptInvocation<'a> {
    let mut invocation = script.prepare_invoke();
    for key in keys {
        invocation.key(key);
    }
    for arg in args.iter().chain(wake.iter().flatten()) {
        invocation.arg(arg);
    }
    invocation
}

/// Whole milliseconds, rounded up, at least one (`PX 0` is an error).
pub(crate) fn ttl_ms(ttl: Duration) -> u64 {
    let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    ms.saturating_add(u64::from(!ttl.subsec_nanos().is_multiple_of(1_000_000)))
        .max(1)
}
