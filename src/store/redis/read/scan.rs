//! Reading keys node by node, for the bulk readers (the v1 migration, an operator's
//! listing, counts and backups): a `SCAN` step on one master, then the value and
//! remaining time of each key it found, in one pipeline to that node.

use std::time::Duration;

use ::redis::{RedisError, Value};

use crate::store::StoreError;
use crate::store::redis::{Conn, Node};

/// A key `SCAN` found, with what it held when read: `value` is `None` when the key
/// went away meanwhile; `pttl_ms` is `PTTL`'s answer (`-1`: no TTL, `-2`: gone).
pub(crate) struct Scanned {
    pub(crate) key: String,
    pub(crate) value: Option<String>,
    pub(crate) pttl_ms: i64,
}

/// One `SCAN cursor MATCH pattern COUNT count` on `node`: the next cursor and the keys.
pub(crate) async fn scan_step(
    connection: &mut Conn,
    node: &Node,
    cursor: u64,
    pattern: &str,
    count: usize,
    timeout: Duration,
) -> Result<(u64, Vec<String>), StoreError> {
    let mut scan = ::redis::cmd("SCAN");
    scan.arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(count.max(1));
    bounded(timeout, connection.on_node(node, &scan)).await
}

/// The value and `PTTL` of each of `keys`, found on `node`, in their order. A key that
/// left the node meanwhile (its slot migrating: a `MOVED` reply) is read again where
/// the cluster keeps it now.
pub(crate) async fn read_keys(
    connection: &mut Conn,
    node: &Node,
    keys: Vec<String>,
    timeout: Duration,
) -> Result<Vec<Scanned>, StoreError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipeline = ::redis::pipe();
    for key in &keys {
        pipeline.get(key).cmd("PTTL").arg(key);
    }
    // `None`: the whole pipeline was refused (a node that lost every slot meanwhile).
    // A node that does not answer fails the read: reading each key on its own there
    // would only wait for it once per key.
    let values = match bounded(timeout, connection.pipeline_on_node(node, &pipeline)).await {
        Ok(values) if values.len() == keys.len() * 2 => Some(values),
        Err(error) if error.is_timeout() => return Err(error),
        _ => None,
    };
    let mut read = Vec::with_capacity(keys.len());
    for (at, key) in keys.into_iter().enumerate() {
        let pair = values
            .as_ref()
            .map(|values| (&values[2 * at], &values[2 * at + 1]));
        let (value, pttl) = match pair {
            Some((value, pttl))
                if !matches!(value, Value::ServerError(_)) && !matches!(pttl, Value::ServerError(_)) =>
            {
                (value.clone(), pttl.clone())
            }
            _ => {
                let mut routed = ::redis::pipe();
                routed.get(&key).cmd("PTTL").arg(&key);
                let mut connection = connection.clone();
                let values: Vec<Value> = bounded(timeout, routed.query_async(&mut connection)).await?;
                match <[Value; 2]>::try_from(values) {
                    Ok([value, pttl]) => (value, pttl),
                    Err(_) => continue,
                }
            }
        };
        read.push(Scanned {
            key,
            value: ::redis::from_redis_value(value).ok().flatten(),
            pttl_ms: ::redis::from_redis_value(pttl).unwrap_or(-2),
        });
    }
    Ok(read)
}

/// Runs one command on a connection of its own (not the shared one, whose commands
/// are timed by silence) under `timeout`.
pub(crate) async fn bounded<T>(
    timeout: Duration,
    command: impl Future<Output = Result<T, RedisError>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(timeout, command).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(StoreError::new("Redis command failed", error)),
        Err(_) => Err(StoreError::timeout("Redis did not answer in time")),
    }
}

impl crate::store::redis::RedisStore {
    /// `PING`s every master of a cluster, each within the command timeout; fails at
    /// the first that does not answer (the log names it).
    pub(crate) async fn ping_every_master(&self) -> Result<(), StoreError> {
        let timeout = self.command_timeout();
        let shared = &*self.shared;
        let (live, _) = shared.connection.get(shared.schema.prefix()).await?;
        let mut connection = live.connection.clone();
        for node in bounded(timeout, connection.masters()).await? {
            let ping = ::redis::cmd("PING");
            if let Err(error) = bounded(timeout, connection.on_node::<String>(&node, &ping)).await {
                tracing::warn!(%node, %error, "a Redis master does not answer");
                return Err(StoreError::new("a Redis master does not answer", error));
            }
        }
        Ok(())
    }
}
