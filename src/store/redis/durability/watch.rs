//! The store's background watch, on a connection of its own: the persistence check
//! once, the blocklist's registration, then every bucket's epoch marker and feed
//! counter read every [`LOSS_CHECK_INTERVAL`] (see `epoch.rs` for what a change means).

use std::sync::Weak;

use futures_util::future::join_all;
use std::time::Duration;

use super::epoch::LOSS_CHECK_INTERVAL;
use crate::store::StoreError;
use crate::store::redis::connect::conn::Conn;
use crate::store::redis::read::scan::bounded;
use crate::store::redis::schema::Schema;
use crate::store::redis::{RedisStore, Shared};

/// How soon the watch tries again after a failed read, doubling up to a second.
const RETRY_FIRST: Duration = Duration::from_millis(100);

/// Every bucket's epoch marker and feed counter: one `MGET` on a server, one per bucket
/// (its slot), all at once, on a cluster.
pub(super) async fn read_markers(
    connection: &mut Conn,
    schema: &Schema,
    timeout: Duration,
) -> Result<Vec<(Option<String>, u64)>, StoreError> {
    let pairs = |values: Vec<Option<String>>| -> Result<Vec<(Option<String>, u64)>, StoreError> {
        values
            .chunks(2)
            .map(|pair| {
                let seq = match pair.get(1).and_then(Option::as_deref) {
                    None => 0,
                    Some(seq) => seq
                        .parse()
                        .map_err(|e| StoreError::new("a feed counter in Redis is not a number", e))?,
                };
                Ok((pair.first().cloned().flatten(), seq))
            })
            .collect()
    };
    let keys = |bucket: u32| [schema.epoch(bucket), schema.feed_seq(bucket)];
    let found = if connection.is_cluster() {
        let reads = (0..schema.buckets()).map(|bucket| {
            let mut connection = connection.clone();
            let mut mget = ::redis::cmd("MGET");
            mget.arg(&keys(bucket));
            async move { bounded(timeout, mget.query_async::<Vec<Option<String>>>(&mut connection)).await }
        });
        let mut values = Vec::new();
        for read in join_all(reads).await {
            values.extend(read?);
        }
        values
    } else {
        let mut mget = ::redis::cmd("MGET");
        for bucket in 0..schema.buckets() {
            mget.arg(&keys(bucket));
        }
        bounded(timeout, mget.query_async::<Vec<Option<String>>>(connection)).await?
    };
    if found.len() != 2 * schema.buckets() as usize {
        return Err(StoreError::msg(
            "Redis answered the epoch read with the wrong number of values",
        ));
    }
    pairs(found)
}

/// The store's background watch, while a clone of it lives, on a connection of its own:
/// the persistence check once (tried again until Redis answers it), the blocklist's
/// registration, then the epoch markers every [`LOSS_CHECK_INTERVAL`].
pub(crate) async fn watch(shared: Weak<Shared>, detect_loss: bool) {
    let mut persistence_checked = false;
    let mut backoff = RETRY_FIRST;
    let mut connection: Option<Conn> = None;
    loop {
        let Some(strong) = shared.upgrade() else { return };
        let store = RedisStore { shared: strong };
        let mut failed = false;
        if !persistence_checked {
            match store.check_persistence().await {
                Ok(()) => persistence_checked = true,
                Err(error) => {
                    tracing::debug!(%error, "could not read Redis's persistence settings yet");
                    failed = true;
                }
            }
        }
        if detect_loss {
            // A slow Redis gets time: a late read only delays the watch.
            let timeout = store.bulk_timeout();
            let checked = async {
                let connection = match &mut connection {
                    Some(connection) => connection,
                    slot => {
                        let mut fresh = store.dedicated_connection().await?;
                        store.register(&mut fresh, timeout).await?;
                        slot.insert(fresh)
                    }
                };
                store.check_epochs(connection, timeout).await
            }
            .await;
            if let Err(error) = checked {
                tracing::debug!(%error, "could not read the epoch markers; trying again on a new connection");
                connection = None;
                failed = true;
            }
        }
        if !detect_loss && persistence_checked {
            return;
        }
        drop(store);
        let wait = if failed {
            // Soon, and capped low: a Redis back from a restart without its data must be
            // checked at once, before anything is written back too late.
            let wait = backoff;
            backoff = (backoff * 2).min(Duration::from_secs(1));
            wait
        } else {
            backoff = RETRY_FIRST;
            LOSS_CHECK_INTERVAL
        };
        tokio::time::sleep(wait).await;
    }
}
