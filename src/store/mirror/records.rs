//! Reading the records one `SCAN` step found, a bucket at a time: one script per bucket
//! (`records.lua`) returns the remaining time of every key and the value of every
//! watermark, rather than a `GET` and a `PTTL` per key.

use std::time::Duration;

use ::redis::{Script, Value};
use futures_util::future::join_all;

use crate::key::RevocationKey;
use crate::store::StoreError;
use crate::store::redis::scan::{Scanned, bounded, read_keys};
use crate::store::redis::{Conn, Kind, Node};

/// The script; see its top.
pub(super) const RECORDS: &str = include_str!("records.lua");

/// A record key a load found, parsed.
pub(super) struct Found {
    pub(super) key: String,
    pub(super) kind: Kind,
    pub(super) hash: RevocationKey,
    /// The v2 bucket; `None` for a v1 key (untagged: each in a slot of its own).
    pub(super) bucket: Option<u32>,
}

/// A record as read: `value` is `None` when the key went away meanwhile (or, for a
/// watermark, is not a string); a marker's is `"1"`. `pttl_ms` as `PTTL` answers.
pub(super) struct Read {
    pub(super) found: Found,
    pub(super) value: Option<String>,
    pub(super) pttl_ms: i64,
}

/// Reads `found` (one `SCAN` step's records), one script call per bucket, all at once.
/// Each call is routed by its keys' slot, so a key whose slot moved meanwhile is read
/// where the cluster keeps it now (`MOVED` is followed). v1 keys (a transition) have no
/// hash tag, so no script may read several: they are read key by key on `node`, as
/// before, which costs only during a transition.
pub(super) async fn read(
    connection: &Conn,
    node: &Node,
    script: &Script,
    found: Vec<Found>,
    timeout: Duration,
) -> Result<Vec<Read>, StoreError> {
    let (v2, v1): (Vec<Found>, Vec<Found>) = found.into_iter().partition(|record| record.bucket.is_some());
    let mut read = read_v1(connection.clone(), node, v1, timeout).await?;
    let mut groups: Vec<(Option<u32>, Vec<Found>)> = Vec::new();
    for record in v2 {
        match groups.iter_mut().find(|(bucket, _)| *bucket == record.bucket) {
            Some((_, group)) => group.push(record),
            None => groups.push((record.bucket, vec![record])),
        }
    }
    let reads = groups
        .into_iter()
        .map(|(_, group)| read_group(connection.clone(), script, group, timeout));
    for group in join_all(reads).await {
        read.extend(group?);
    }
    Ok(read)
}

/// v1 keys, each with a `GET` and a `PTTL` (see [`read_keys`]).
async fn read_v1(
    mut connection: Conn,
    node: &Node,
    v1: Vec<Found>,
    timeout: Duration,
) -> Result<Vec<Read>, StoreError> {
    if v1.is_empty() {
        return Ok(Vec::new());
    }
    let keys = v1.iter().map(|record| record.key.clone()).collect();
    let scanned = read_keys(&mut connection, node, keys, timeout).await?;
    // `read_keys` answers in order, leaving out only keys it could not read at all.
    let mut read = Vec::with_capacity(scanned.len());
    let mut v1 = v1.into_iter();
    for Scanned { key, value, pttl_ms } in scanned {
        if let Some(found) = v1.by_ref().find(|record| record.key == key) {
            read.push(Read {
                found,
                value,
                pttl_ms,
            });
        }
    }
    Ok(read)
}

async fn read_group(
    mut connection: Conn,
    script: &Script,
    group: Vec<Found>,
    timeout: Duration,
) -> Result<Vec<Read>, StoreError> {
    let watermark = |kind: Kind| matches!(kind, Kind::Subject | Kind::Global);
    let flags: String = group
        .iter()
        .map(|record| if watermark(record.kind) { 'w' } else { 'm' })
        .collect();
    let mut invocation = script.prepare_invoke();
    for record in &group {
        invocation.key(&record.key);
    }
    invocation.arg(flags);
    let values: Vec<Value> = bounded(timeout, invocation.invoke_async(&mut connection)).await?;
    if values.len() != group.len() * 2 {
        return Err(StoreError::msg("the record read script answered out of shape"));
    }
    let mut values = values.into_iter();
    let mut read = Vec::with_capacity(group.len());
    for found in group {
        let (Some(pttl), Some(value)) = (values.next(), values.next()) else {
            break;
        };
        let pttl_ms: i64 = ::redis::from_redis_value(pttl).unwrap_or(-2);
        let value = if watermark(found.kind) {
            ::redis::from_redis_value(value).ok().flatten()
        } else {
            (pttl_ms != -2).then(|| "1".to_owned())
        };
        read.push(Read {
            found,
            value,
            pttl_ms,
        });
    }
    Ok(read)
}
