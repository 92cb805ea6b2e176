//! Wake-ups for a mirror on a cluster. One `XREAD BLOCK` cannot wait on feeds of
//! different slots, and a blocking connection per bucket would not scale; so the mirror
//! reads every feed on a short tick, and between ticks reads a bucket's feed as soon as
//! a write announces it: every write publishes its bucket's number on `{prefix}:wake`.
//!
//! Classic pub/sub, not sharded: a cluster forwards a `PUBLISH` to every node, so one
//! subscription, on any one node, hears every bucket, and has nothing to follow when a
//! failover or a resharding moves slots (sharded channels would need a subscription on
//! each master, moved with each slot). It costs each write one message over the cluster
//! bus to each node, which at the rate revocations are written is nothing. When the
//! subscribed node goes away (its connection drops, or a `PING` every half second goes
//! unanswered), the subscriber moves to the next seed node, and every feed is read at
//! once (announcements may have been lost meanwhile). Wake-ups are only a
//! shortcut: a lost one costs at most a tick, since the tick reads every feed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use ::redis::aio::MultiplexedConnection;
use ::redis::{AsyncConnectionConfig, IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind, Value};
use tokio::sync::Notify;

use crate::store::StoreError;
use crate::store::mirror::Shared;

/// Which buckets were woken since the follower last looked.
#[derive(Clone)]
pub(crate) struct Wake {
    flags: Arc<[AtomicBool]>,
    notify: Arc<Notify>,
}

impl Wake {
    pub(crate) fn new(buckets: u32) -> Self {
        Self {
            flags: (0..buckets).map(|_| AtomicBool::new(false)).collect(),
            notify: Arc::new(Notify::new()),
        }
    }

    /// The buckets woken since the last call.
    pub(crate) fn take(&self) -> Vec<u32> {
        self.flags
            .iter()
            .enumerate()
            .filter(|(_, flag)| flag.swap(false, Ordering::AcqRel))
            .filter_map(|(bucket, _)| u32::try_from(bucket).ok())
            .collect()
    }

    /// Waits for a wake-up.
    pub(crate) async fn notified(&self) {
        self.notify.notified().await;
    }

    fn wake(&self, bucket: usize) {
        if let Some(flag) = self.flags.get(bucket) {
            flag.store(true, Ordering::Release);
            self.notify.notify_one();
        }
    }

    fn wake_all(&self) {
        for bucket in 0..self.flags.len() {
            self.wake(bucket);
        }
    }

    /// Subscribes, in a task of its own, to the wake channel on one of the cluster's seed
    /// nodes, moving to the next when that one goes away, while the mirror lives.
    pub(crate) fn start(&self, shared: &Arc<Shared>) {
        let Some(seeds) = shared.redis.cluster_seeds().map(<[String]>::to_vec) else {
            return;
        };
        let wake = self.clone();
        let alive: Weak<Shared> = Arc::downgrade(shared);
        let prefix = shared.redis.prefix().to_owned();
        let channel = shared.redis.wake_channel();
        let timeout = shared.redis.command_timeout().saturating_mul(4);
        // Each mirror starts at a seed of its own choosing: a fleet's subscriptions (and
        // the messages every write sends them) spread over the seeds, not all on the first.
        let mut random = [0u8; 2];
        let start = match getrandom::getrandom(&mut random) {
            Ok(()) => usize::from(u16::from_le_bytes(random)) % seeds.len().max(1),
            Err(_) => 0,
        };
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            for seed in seeds.iter().cycle().skip(start) {
                if alive.strong_count() == 0 {
                    return;
                }
                let lost = Arc::new(Notify::new());
                match wake.subscribe(seed, &channel, timeout, &lost).await {
                    Ok(mut subscriber) => {
                        tracing::debug!(%prefix, "revocation mirror subscribed to wake-ups");
                        backoff = Duration::from_millis(100);
                        loop {
                            let gone = lost.notified();
                            if tokio::time::timeout(Duration::from_millis(500), gone)
                                .await
                                .is_ok()
                            {
                                break;
                            }
                            if alive.strong_count() == 0 {
                                return;
                            }
                            // A node gone without a word (no reset) is found out here.
                            let ping = ::redis::cmd("PING");
                            let ping = ping.query_async::<Value>(&mut subscriber);
                            if !matches!(tokio::time::timeout(timeout, ping).await, Ok(Ok(_))) {
                                break;
                            }
                        }
                        // Announcements may have been lost meanwhile.
                        wake.wake_all();
                        tracing::debug!(%prefix, "revocation mirror lost its wake-ups; subscribing again");
                    }
                    Err(error) => {
                        tracing::debug!(%error, retry_in = ?backoff, "revocation mirror without wake-ups for now");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                    }
                }
            }
        });
    }

    /// A RESP3 connection to `seed`, subscribed to `channel`; `lost` is notified when
    /// it drops.
    async fn subscribe(
        &self,
        seed: &str,
        channel: &str,
        timeout: Duration,
        lost: &Arc<Notify>,
    ) -> Result<MultiplexedConnection, StoreError> {
        let wake = self.clone();
        let dropped = Arc::clone(lost);
        let sender = move |info: PushInfo| -> Result<(), std::convert::Infallible> {
            match info.kind {
                PushKind::Message => {
                    let bucket = info.data.get(1).and_then(|message| match message {
                        Value::BulkString(bytes) => std::str::from_utf8(bytes).ok()?.parse().ok(),
                        _ => None,
                    });
                    match bucket {
                        Some(bucket) => wake.wake(bucket),
                        None => wake.wake_all(),
                    }
                }
                PushKind::Disconnection => dropped.notify_one(),
                _ => {}
            }
            Ok(())
        };
        let invalid = |error| StoreError::new("invalid Redis cluster seed", error);
        let info = seed.into_connection_info().map_err(invalid)?;
        let settings = info.redis_settings().clone().set_protocol(ProtocolVersion::RESP3);
        let client = ::redis::Client::open(info.set_redis_settings(settings)).map_err(invalid)?;
        let config = AsyncConnectionConfig::new()
            .set_push_sender(sender)
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        let subscribe = async {
            let mut connection = client
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            connection.subscribe(channel).await?;
            Ok::<_, ::redis::RedisError>(connection)
        };
        match tokio::time::timeout(timeout.saturating_mul(2), subscribe).await {
            Ok(Ok(connection)) => Ok(connection),
            Ok(Err(error)) => Err(StoreError::new(
                "could not subscribe to the wake-up channel",
                error,
            )),
            Err(_) => Err(StoreError::msg("subscribing to the wake-up channel timed out")),
        }
    }
}
