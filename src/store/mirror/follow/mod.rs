//! The background task that keeps the local copy in step: load, then follow the change
//! feeds; reload only the bucket whose feed has a gap; reconnect on errors.
//!
//! In this folder: the change feeds and where the mirror stands in each (`feeds.rs`),
//! one event and how it is applied (`event.rs`), and the wake-up channel a mirror on a
//! cluster listens to (`wake.rs`). May use: the Redis store's root re-exports, the
//! local copy, the ledger. Used by: the mirror (its background task), `load/` (cursors,
//! applying records).

pub(crate) mod event;
pub(crate) mod feeds;
mod wake;

use std::pin::pin;
use std::sync::{PoisonError, Weak};
use std::time::{Duration, Instant};

use futures_util::future::{Either, select};

use self::feeds::{Feeds, Read};
use self::wake::Wake;
use super::Shared;
use crate::store::StoreError;
use crate::store::redis::Conn;

/// How long one blocking read waits for new events on a single server, and how often a
/// mirror on a cluster reads every feed. Shorter than the staleness bound, so a quiet
/// but healthy feed still counts as contact.
pub(super) const FOLLOW_BLOCK: Duration = Duration::from_millis(250);

/// How long a mirror waits, after a read that brought events, before it reads again,
/// unless configured: zero, every event is read as soon as it is written. See
/// [`MirrorStoreBuilder::read_coalescing`](crate::store::MirrorStoreBuilder::read_coalescing)
/// for a fleet of mirrors.
pub const DEFAULT_READ_COALESCING: Duration = Duration::ZERO;

/// What one step of following did.
enum Step {
    /// Every feed was read up to this moment: the copy is current as of it.
    CaughtUp(Instant),
    /// Something was read or loaded; more may be waiting.
    Progressed,
}

impl Shared {
    /// One step: load what has lost its place, else read the feeds once.
    async fn step(
        &self,
        connection: &mut Conn,
        feeds: &mut Feeds,
        wake: &Wake,
        tick: &mut Instant,
    ) -> Result<Step, StoreError> {
        // Buckets Redis lost: handed to the write-back task, and reloaded below.
        self.recover(feeds).await;
        let unloaded = feeds.unloaded();
        if !feeds.loaded {
            self.set_synced(false);
            self.load_all(connection, feeds).await?;
            feeds.loaded = true;
            return Ok(Step::Progressed);
        }
        if !unloaded.is_empty() {
            // Buckets with a gap may miss records until reloaded: checks go to Redis.
            self.set_synced(false);
            self.reload(connection, feeds, &unloaded).await?;
            return Ok(Step::Progressed);
        }
        let timeout = self.redis.command_timeout();
        // Right after a load every feed is read at once, without waiting.
        let catch_up = std::mem::take(&mut feeds.catch_up);
        // The last read brought events: the next waits a little, so that it brings
        // the events written meanwhile at once.
        let coalesce = feeds
            .last_events
            .take()
            .filter(|_| !self.read_coalescing.is_zero())
            .map(|at| at + self.read_coalescing);
        let (read, full, asked) = if connection.is_cluster() {
            if catch_up {
                *tick = Instant::now();
            }
            let tick_due = pin!(tokio::time::sleep_until((*tick).into()));
            let woken = matches!(select(tick_due, pin!(wake.notified())).await, Either::Right(_));
            if let Some(until) = coalesce.filter(|_| woken && !catch_up) {
                tokio::time::sleep_until(until.into()).await;
            }
            let asked = Instant::now();
            let (which, full): (Vec<usize>, bool) = if woken && asked < *tick {
                let which = wake
                    .take()
                    .into_iter()
                    .filter_map(|bucket| feeds.of_bucket(bucket))
                    .collect();
                (which, false)
            } else {
                // The tick: every feed (a wake-up lost or never sent is caught here).
                wake.take();
                *tick = asked + FOLLOW_BLOCK;
                ((0..feeds.streams.len()).collect(), true)
            };
            let read = feeds.read_now(connection, &which, timeout, self.local()).await?;
            (read, full, asked)
        } else {
            if let Some(until) = coalesce.filter(|_| !catch_up) {
                tokio::time::sleep_until(until.into()).await;
            }
            // Everything written before this instant is in the reply, unless a feed's
            // reply is a full batch.
            let asked = Instant::now();
            let block = if catch_up { Duration::ZERO } else { FOLLOW_BLOCK };
            let read = feeds
                .read_blocking(connection, block, timeout, self.local())
                .await?;
            (read, true, asked)
        };
        self.progress
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .applied_seq = feeds.applied();
        // What the mirror applied tells the store's loss watch what Redis held, even
        // where the watch never read the counter that high.
        for (stream, cursor) in feeds.streams.iter().zip(&feeds.cursors) {
            if let (Some(bucket), Some(cursor)) = (stream.bucket, cursor) {
                self.redis.note_applied(bucket, cursor.last_seq);
            }
        }
        let Read { behind, gaps, lost } = read;
        if !lost.is_empty() {
            self.redis.report_loss(&lost, "a change feed went backwards");
        }
        if behind {
            // More may be waiting: a backlog after a load or a reconnect.
            *tick = Instant::now();
            feeds.last_events = None;
        }
        Ok(if full && !behind && gaps == 0 {
            Step::CaughtUp(asked)
        } else {
            Step::Progressed
        })
    }
}

/// The background task: load, then follow; reload a bucket with a gap; reconnect on
/// errors.
pub(super) async fn follow(shared: Weak<Shared>) {
    let Some(strong) = shared.upgrade() else { return };
    let mut feeds = Feeds::new(&strong.redis, strong.ledger.clone());
    let wake = Wake::new(strong.redis.buckets());
    wake.start(&strong);
    drop(strong);
    let mut connection: Option<Conn> = None;
    let mut tick = Instant::now();
    let mut backoff = Duration::from_millis(50);
    loop {
        let Some(strong) = shared.upgrade() else { return };
        let result = async {
            let connection = match &mut connection {
                Some(connection) => connection,
                slot => slot.insert(strong.redis.dedicated_connection().await?),
            };
            strong.step(connection, &mut feeds, &wake, &mut tick).await
        }
        .await;
        match result {
            Ok(Step::CaughtUp(asked)) => {
                strong.touch_at(asked);
                strong.set_synced(true);
                backoff = Duration::from_millis(50);
            }
            Ok(Step::Progressed) => backoff = Duration::from_millis(50),
            Err(error) => {
                // Keep the cursors: on reconnect each feed resumes where it stopped, and
                // a gap there means a reload of that bucket.
                tracing::warn!(%error, retry_in = ?backoff, "revocation mirror lost Redis");
                // A cluster's connection is kept through a node's errors (it reconnects
                // to that node, and follows a failover, by itself), but not through
                // silence: a frozen master failed over keeps its slots on a socket
                // that never answers.
                if !is_cluster(&connection) || error.is_timeout() {
                    connection = None;
                }
                drop(strong);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

fn is_cluster(connection: &Option<Conn>) -> bool {
    connection.as_ref().is_some_and(Conn::is_cluster)
}
