//! Reading the records one `SCAN` step found, a bucket at a time: one script per bucket
//! (`records.lua`) returns the remaining time of every key and the value of every
//! watermark, rather than a `GET` and a `PTTL` per key.

use std::time::Duration;

use ::redis::{Script, Value};
use futures_util::future::join_all;

use crate::key::RevocationKey;
use crate::store::StoreError;
use crate::store::redis::scan::bounded;
use crate::store::redis::{Conn, Kind};

/// The script; see its top.
pub(super) const RECORDS: &str = include_str!("records.lua");

/// A record key a load found, parsed.
pub(super) struct Found {
    pub(super) key: String,
    pub(super) kind: Kind,
    pub(super) hash: RevocationKey,
    /// The v2 bucket; `None` for a v1 key (all of them share one slot).
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
/// where the cluster keeps it now (`MOVED` is followed).
pub(super) async fn read(
    connection: &Conn,
    script: &Script,
    found: Vec<Found>,
    timeout: Duration,
) -> Result<Vec<Read>, StoreError> {
    let mut groups: Vec<(Option<u32>, Vec<Found>)> = Vec::new();
    for record in found {
        match groups.iter_mut().find(|(bucket, _)| *bucket == record.bucket) {
            Some((_, group)) => group.push(record),
            None => groups.push((record.bucket, vec![record])),
        }
    }
    let reads = groups
        .into_iter()
        .map(|(_, group)| read_group(connection.clone(), script, group, timeout));
    let mut read = Vec::new();
    for group in join_all(reads).await {
        read.extend(group?);
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
