//! The background task that keeps the local copy in step: load, then follow the
//! change feed; reload on a gap; reconnect on errors.

use std::sync::{PoisonError, Weak};
use std::time::{Duration, Instant};

use ::redis::aio::MultiplexedConnection;

use super::event::{Event, FeedEntry};
use super::{BATCH, Shared, bounded};
use crate::store::StoreError;

/// How long one `XREAD` waits for new events. Shorter than the staleness bound, so a
/// quiet but healthy feed still counts as contact.
pub(super) const FOLLOW_BLOCK: Duration = Duration::from_millis(250);

impl Shared {
    /// Reads the feed once (waiting up to [`FOLLOW_BLOCK`] for events) and applies what
    /// came.
    async fn follow_once(
        &self,
        connection: &mut MultiplexedConnection,
        last_id: &mut String,
        last_seq: &mut u64,
    ) -> Result<Followed, StoreError> {
        let block_ms = u64::try_from(FOLLOW_BLOCK.as_millis()).unwrap_or(250);
        // Everything written before this instant is in the reply, unless the reply is
        // a full batch: only then may the copy count as current as of it.
        let asked = Instant::now();
        let reply: Option<Vec<(String, Vec<FeedEntry>)>> = bounded(
            FOLLOW_BLOCK.saturating_add(self.redis.command_timeout()),
            ::redis::cmd("XREAD")
                .arg("COUNT")
                .arg(BATCH)
                .arg("BLOCK")
                .arg(block_ms)
                .arg("STREAMS")
                .arg(self.redis.feed_key())
                .arg(&*last_id)
                .query_async(connection),
        )
        .await?;
        let local = self.local();
        let mut read = 0;
        for (id, fields) in reply.into_iter().flatten().flat_map(|(_, entries)| entries) {
            read += 1;
            let Some(event) = Event::parse(&fields) else {
                tracing::warn!(%id, "malformed event in the revocation feed; reloading");
                return Ok(Followed::Gap);
            };
            if event.seq != *last_seq + 1 {
                tracing::warn!(
                    expected = *last_seq + 1,
                    got = event.seq,
                    "gap in the revocation feed; reloading"
                );
                return Ok(Followed::Gap);
            }
            // A write the store repeated on a fresh connection (the first try's answer
            // was lost with its connection) comes as a second event, numbered next: no
            // gap, and applying it again changes nothing.
            event.apply_to(local).await;
            *last_seq = event.seq;
            *last_id = id;
        }
        self.progress
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .applied_seq = *last_seq;
        if read >= BATCH {
            // More may be waiting: a backlog after a load or a reconnect.
            return Ok(Followed::Behind);
        }
        self.touch_at(asked);
        Ok(Followed::CaughtUp)
    }
}

/// What one read of the feed found.
enum Followed {
    /// Everything up to the moment of asking is applied.
    CaughtUp,
    /// A full batch was applied; more may be waiting.
    Behind,
    /// Events are missing (trimmed, or a writer skipped numbers): reload.
    Gap,
}

/// The background task: load, then follow; reload on a gap; reconnect on errors.
pub(super) async fn follow(shared: Weak<Shared>) {
    let mut connection: Option<MultiplexedConnection> = None;
    let mut position: Option<(String, u64)> = None;
    let mut backoff = Duration::from_millis(50);
    loop {
        let Some(strong) = shared.upgrade() else { return };
        let result = async {
            let connection = match &mut connection {
                Some(connection) => connection,
                slot => slot.insert(strong.redis.dedicated_connection().await?),
            };
            match &mut position {
                None => {
                    strong.set_synced(false);
                    position = Some(strong.load(connection).await?);
                    Ok::<(), StoreError>(())
                }
                Some((last_id, last_seq)) => {
                    match strong.follow_once(connection, last_id, last_seq).await? {
                        Followed::CaughtUp => strong.set_synced(true),
                        Followed::Behind => {}
                        Followed::Gap => position = None,
                    }
                    Ok(())
                }
            }
        }
        .await;
        match result {
            Ok(()) => backoff = Duration::from_millis(50),
            Err(error) => {
                // Keep the position: on reconnect the feed resumes where it stopped,
                // and a gap there means a reload.
                tracing::warn!(%error, retry_in = ?backoff, "revocation mirror lost Redis");
                connection = None;
                drop(strong);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}
