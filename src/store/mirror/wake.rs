//! Wake-ups for a mirror on a cluster. One `XREAD BLOCK` cannot wait on feeds of
//! different slots, and a blocking connection per bucket would not scale; so the mirror
//! reads every feed on a short tick, and between ticks a write's `SPUBLISH` on its
//! bucket's shard channel (`{prefix:bB}:wake`) has the mirror read that one feed at once.
//!
//! The subscription is one RESP3 cluster connection (a connection per master). When a
//! node's connection drops or the server ends a subscription (its slot moved), and when
//! a tick finds events no wake-up announced (a failover or a resharding moved a bucket
//! to a master the subscription has not followed), every channel is subscribed again,
//! each on the master that now serves it. Wake-ups are only a shortcut: a lost one costs
//! at most a tick, since the tick reads every feed.

use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use ::redis::cluster::ClusterClientBuilder;
use ::redis::cluster_async::ClusterConnection;
use ::redis::{ProtocolVersion, PushInfo, PushKind, Value};
use futures_util::future::{Either, select};
use tokio::sync::Notify;

use super::Shared;
use crate::store::StoreError;

/// How long the subscriber waits after a reason to subscribe again, so that one
/// failover or one resharding step leads to one round of subscriptions; and how often
/// it subscribes again at most.
const RESUBSCRIBE_AFTER: Duration = Duration::from_millis(100);
const RESUBSCRIBE_EVERY: Duration = Duration::from_secs(1);

/// Which buckets were woken since the follower last looked.
#[derive(Clone)]
pub(super) struct Wake {
    flags: Arc<[AtomicBool]>,
    notify: Arc<Notify>,
    resubscribe: Arc<Notify>,
    /// Per bucket: whether the last tick that found events in its feed found them
    /// unannounced.
    unannounced: Arc<[AtomicBool]>,
}

impl Wake {
    pub(super) fn new(buckets: u32) -> Self {
        Self {
            flags: (0..buckets).map(|_| AtomicBool::new(false)).collect(),
            notify: Arc::new(Notify::new()),
            resubscribe: Arc::new(Notify::new()),
            unannounced: (0..buckets).map(|_| AtomicBool::new(false)).collect(),
        }
    }

    /// Notes that a tick found events in `bucket`'s feed, announced by a wake-up or
    /// not. Twice in a row unannounced, the subscription has lost that bucket (a write
    /// between the last wake-up and the tick is not enough): subscribe again.
    pub(super) fn tick_found(&self, bucket: u32, announced: bool) {
        let Some(flag) = usize::try_from(bucket)
            .ok()
            .and_then(|at| self.unannounced.get(at))
        else {
            return;
        };
        if flag.swap(!announced, Ordering::AcqRel) && !announced {
            flag.store(false, Ordering::Release);
            self.resubscribe();
        }
    }

    /// Asks the subscriber to subscribe to every channel again, each on the master that
    /// serves it now: a tick found events no wake-up announced.
    pub(super) fn resubscribe(&self) {
        self.resubscribe.notify_one();
    }

    /// The buckets woken since the last call.
    pub(super) fn take(&self) -> Vec<u32> {
        self.flags
            .iter()
            .enumerate()
            .filter(|(_, flag)| flag.swap(false, Ordering::AcqRel))
            .filter_map(|(bucket, _)| u32::try_from(bucket).ok())
            .collect()
    }

    /// Waits for a wake-up.
    pub(super) async fn notified(&self) {
        self.notify.notified().await;
    }

    fn wake(&self, bucket: Option<u32>) {
        match bucket.and_then(|bucket| self.flags.get(usize::try_from(bucket).ok()?)) {
            Some(flag) => flag.store(true, Ordering::Release),
            None => return,
        }
        self.notify.notify_one();
    }

    /// Subscribes, in a task of its own, to every bucket's wake channel, and keeps the
    /// subscription while the mirror lives. A cluster that cannot (a server before 7.0
    /// has no sharded pub/sub) leaves the mirror on its tick alone.
    pub(super) fn start(&self, shared: &Arc<Shared>) {
        let Some(seeds) = shared.redis.cluster_seeds().map(<[String]>::to_vec) else {
            return;
        };
        let wake = self.clone();
        let alive: Weak<Shared> = Arc::downgrade(shared);
        let prefix = shared.redis.prefix().to_owned();
        let channels: Vec<String> = (0..shared.redis.buckets())
            .map(|bucket| shared.redis.wake_channel(bucket))
            .collect();
        let connect_timeout = shared.redis.command_timeout().saturating_mul(4);
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            while alive.strong_count() > 0 {
                match wake.subscribe(&seeds, &prefix, &channels, connect_timeout).await {
                    Ok((subscriber, current)) => {
                        tracing::debug!(%prefix, "revocation mirror subscribed to wake-ups");
                        backoff = Duration::from_millis(100);
                        let subscribed = Instant::now();
                        loop {
                            let asked = pin!(wake.resubscribe.notified());
                            let idle = pin!(tokio::time::sleep(Duration::from_millis(500)));
                            let asked = matches!(select(asked, idle).await, Either::Left(_));
                            if alive.strong_count() == 0 {
                                return;
                            }
                            if asked {
                                break;
                            }
                        }
                        // A fresh connection learns the slot map anew and subscribes each
                        // channel where it is now served. (Not the old connection's own
                        // resubscription: it names several slots' channels in one
                        // SSUBSCRIBE, which Redis refuses with CROSSSLOT.)
                        current.store(false, Ordering::Release);
                        drop(subscriber);
                        tracing::debug!(%prefix, "revocation mirror subscribing to wake-ups again");
                        let since = subscribed.elapsed();
                        tokio::time::sleep(RESUBSCRIBE_EVERY.saturating_sub(since).max(RESUBSCRIBE_AFTER))
                            .await;
                    }
                    Err(error) => {
                        tracing::debug!(%error, retry_in = ?backoff, "revocation mirror without wake-ups for now");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(30));
                    }
                }
            }
        });
    }

    /// A subscriber connection, subscribed to every channel. Its pushes count until
    /// the returned flag is lowered (when it is replaced: dropping it must not ask for
    /// another).
    async fn subscribe(
        &self,
        seeds: &[String],
        prefix: &str,
        channels: &[String],
        timeout: Duration,
    ) -> Result<(ClusterConnection, Arc<AtomicBool>), StoreError> {
        let wake = self.clone();
        let head = format!("{{{prefix}:b");
        let current = Arc::new(AtomicBool::new(true));
        let counts = Arc::clone(&current);
        let sender = move |info: PushInfo| -> Result<(), std::convert::Infallible> {
            if !counts.load(Ordering::Acquire) {
                return Ok(());
            }
            match info.kind {
                PushKind::SMessage => {
                    let bucket = info.data.first().and_then(|channel| match channel {
                        Value::BulkString(bytes) => std::str::from_utf8(bytes)
                            .ok()?
                            .strip_prefix(head.as_str())?
                            .strip_suffix("}:wake")?
                            .parse()
                            .ok(),
                        _ => None,
                    });
                    wake.wake(bucket);
                }
                // Messages may have been lost while a node's connection was down: have
                // every feed read at once, and subscribe again where the slots are now.
                PushKind::Disconnection => {
                    for bucket in 0..u32::try_from(wake.flags.len()).unwrap_or(0) {
                        wake.wake(Some(bucket));
                    }
                    wake.resubscribe();
                }
                // The server ended a subscription: its slot moved to another master.
                PushKind::SUnsubscribe => wake.resubscribe(),
                _ => {}
            }
            Ok(())
        };
        let client = ClusterClientBuilder::new(seeds.to_vec())
            .use_protocol(ProtocolVersion::RESP3)
            .push_sender(sender)
            .connection_timeout(timeout)
            .build()
            .map_err(|error| StoreError::new("invalid Redis cluster configuration", error))?;
        let subscribe = async {
            let mut connection = client.get_async_connection().await?;
            for channel in channels {
                connection.ssubscribe(channel).await?;
            }
            Ok::<_, ::redis::RedisError>(connection)
        };
        match tokio::time::timeout(timeout.saturating_mul(4), subscribe).await {
            Ok(Ok(connection)) => Ok((connection, current)),
            Ok(Err(error)) => Err(StoreError::new(
                "could not subscribe to the wake-up channels",
                error,
            )),
            Err(_) => Err(StoreError::msg("subscribing to the wake-up channels timed out")),
        }
    }
}
