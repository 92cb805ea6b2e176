//! Reading the v1 keys one `SCAN` step found during a transition (see
//! `RedisStoreBuilder::v1_transition`): v2 records are loaded from their buckets'
//! indexes instead (`index.rs`). v1 keys have no hash tag, so no script may read
//! several at once: each is read with a `GET` and a `PTTL`, which costs only while a
//! transition lasts.

use std::time::Duration;

use crate::store::StoreError;
use crate::store::key::RevocationKey;
use crate::store::redis::scan::{Scanned, read_keys};
use crate::store::redis::{Conn, Kind, Node};

/// A v1 record key a load found, parsed.
pub(crate) struct Found {
    pub(crate) key: String,
    pub(crate) kind: Kind,
    pub(crate) hash: RevocationKey,
}

/// A record as read: `value` is `None` when the key went away meanwhile (or is not a
/// string). `pttl_ms` as `PTTL` answers.
pub(crate) struct Read {
    pub(crate) found: Found,
    pub(crate) value: Option<String>,
    pub(crate) pttl_ms: i64,
}

/// Reads `found` (one `SCAN` step's keys) on `node`, in order.
pub(crate) async fn read(
    mut connection: Conn,
    node: &Node,
    found: Vec<Found>,
    timeout: Duration,
) -> Result<Vec<Read>, StoreError> {
    if found.is_empty() {
        return Ok(Vec::new());
    }
    let keys = found.iter().map(|record| record.key.clone()).collect();
    let scanned = read_keys(&mut connection, node, keys, timeout).await?;
    // `read_keys` answers in order, leaving out only keys it could not read at all.
    let mut read = Vec::with_capacity(scanned.len());
    let mut found = found.into_iter();
    for Scanned { key, value, pttl_ms } in scanned {
        if let Some(found) = found.by_ref().find(|record| record.key == key) {
            read.push(Read {
                found,
                value,
                pttl_ms,
            });
        }
    }
    Ok(read)
}
