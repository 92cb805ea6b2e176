//! What Redis keeps across a restart, read once at start: a revocation Redis forgets
//! lets a logged-out token back in, and nothing else would say so.
//!
//! `CONFIG GET appendonly` / `appendfsync` / `save`, or `INFO persistence` where
//! `CONFIG` is refused (managed services rename or forbid it), on every master.

use std::collections::HashMap;
use std::fmt;

use ::redis::{RedisError, Value};

use crate::store::StoreError;
use crate::store::redis::RedisStore;
use crate::store::redis::connect::conn::{Conn, Node};

/// How many command timeouts the whole check may take: a few round trips per master.
const CHECK_BUDGET: u32 = 10;

/// What one Redis server keeps of its data when it restarts, as the store read it
/// ([`RedisStore::persistence`](crate::store::redis::RedisStore::persistence)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Persistence {
    /// The append-only file is on (`appendonly yes`): every write is logged, and
    /// replayed on a restart.
    pub append_only: bool,
    /// How often the append-only file is flushed to disk (`always`, `everysec`, `no`),
    /// when known: a crash loses up to that much. `None` when read from `INFO`.
    pub append_fsync: Option<String>,
    /// RDB snapshots are configured (`save` is not empty): a restart keeps what the
    /// last snapshot holds, and loses every write since. `None` when read from `INFO`,
    /// which does not say.
    pub snapshots: Option<bool>,
    /// Where it was read.
    pub source: PersistenceSource,
}

/// Where a [`Persistence`] was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PersistenceSource {
    /// `CONFIG GET`.
    Config,
    /// `INFO persistence`, because `CONFIG` was refused.
    Info,
}

impl Persistence {
    /// Whether every acknowledged revocation survives a restart of this server: only
    /// with the append-only file (snapshots lose the writes since the last one).
    pub fn survives_restart(&self) -> bool {
        self.append_only
    }

    /// What a restart loses, in words, for the start-up warning; `None` when nothing.
    fn loss(&self) -> Option<&'static str> {
        if self.append_only {
            return None;
        }
        Some(match self.snapshots {
            Some(true) => "only RDB snapshots: a restart loses every revocation made since the last snapshot",
            Some(false) => "no persistence: a restart loses every revocation",
            None => {
                "no append-only file: a restart loses every revocation made since the last snapshot, if any"
            }
        })
    }
}

impl fmt::Display for Persistence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.append_fsync, self.snapshots) {
            _ if !self.append_only && self.snapshots == Some(false) => f.write_str("none"),
            (Some(fsync), _) if self.append_only => write!(f, "append-only file (fsync {fsync})"),
            _ if self.append_only => f.write_str("append-only file"),
            _ => f.write_str("RDB snapshots"),
        }
    }
}

/// Reads the persistence settings of `node`.
pub(crate) async fn read(connection: &mut Conn, node: &Node) -> Result<Persistence, RedisError> {
    let mut config = ::redis::cmd("CONFIG");
    // One pattern per `CONFIG GET`: servers before 7.0 take only one.
    let mut settings = HashMap::new();
    for name in ["appendonly", "appendfsync", "save"] {
        config.arg("GET").arg(name);
        let reply: Result<Value, RedisError> = connection.on_node(node, &config).await;
        config = ::redis::cmd("CONFIG");
        match reply {
            Ok(value) => settings.extend(pairs(value)),
            // Refused (renamed, disabled, or not allowed to this user): `INFO` says less,
            // but says whether the append-only file is on.
            Err(error) if error.kind() != ::redis::ErrorKind::Io && !error.is_connection_dropped() => {
                return from_info(connection, node).await;
            }
            Err(error) => return Err(error),
        }
    }
    let append_only = settings.get("appendonly").map(String::as_str) == Some("yes");
    Ok(Persistence {
        append_only,
        append_fsync: settings.get("appendfsync").cloned(),
        snapshots: settings.get("save").map(|save| !save.trim().is_empty()),
        source: PersistenceSource::Config,
    })
}

async fn from_info(connection: &mut Conn, node: &Node) -> Result<Persistence, RedisError> {
    let text: String = connection
        .on_node(node, ::redis::cmd("INFO").arg("persistence"))
        .await?;
    let aof = text
        .lines()
        .find_map(|line| line.strip_prefix("aof_enabled:"))
        .map(str::trim);
    Ok(Persistence {
        append_only: aof == Some("1"),
        append_fsync: None,
        snapshots: None,
        source: PersistenceSource::Info,
    })
}

/// `CONFIG GET`'s reply (a flat array in RESP2, a map in RESP3) as name/value pairs.
fn pairs(value: Value) -> Vec<(String, String)> {
    let text = |value: &Value| ::redis::from_redis_value_ref::<String>(value).ok();
    match value {
        Value::Map(entries) => entries
            .iter()
            .filter_map(|(name, value)| Some((text(name)?, text(value)?)))
            .collect(),
        Value::Array(items) => items
            .chunks_exact(2)
            .filter_map(|pair| Some((text(&pair[0])?, text(&pair[1])?)))
            .collect(),
        _ => Vec::new(),
    }
}

/// Reads every master's settings and warns (once: the caller runs this once per store)
/// when a restart would lose revocations. Answers the settings of each master.
pub(crate) async fn check(
    connection: &mut Conn,
    prefix: &str,
) -> Result<Vec<(Node, Persistence)>, RedisError> {
    let mut found = Vec::new();
    for node in connection.masters().await? {
        let persistence = read(connection, &node).await?;
        match persistence.loss() {
            Some(loss) => tracing::warn!(
                %prefix,
                node = %node,
                persistence = %persistence,
                "Redis does not keep revocations across a restart ({loss}); turn on the \
                 append-only file (appendonly yes), or rely on replicas with acknowledged \
                 writes and on mirrors writing back what Redis lost"
            ),
            None => tracing::debug!(%prefix, node = %node, persistence = %persistence, "Redis persistence"),
        }
        found.push((node, persistence));
    }
    Ok(found)
}

impl RedisStore {
    /// Reads Redis's persistence settings (on a cluster, those of the least durable
    /// master): whether a restart of Redis would lose revocations. The store reads them
    /// once at start by itself, and warns (`tracing`) when it would.
    pub async fn persistence(&self) -> Result<Persistence, StoreError> {
        let found = self.read_persistence(false).await?;
        found
            .into_iter()
            .map(|(_, persistence)| persistence)
            .min_by_key(|persistence| (persistence.append_only, persistence.snapshots))
            .ok_or_else(|| StoreError::msg("the Redis cluster named no master"))
    }

    /// The check at start: reads and warns.
    pub(crate) async fn check_persistence(&self) -> Result<(), StoreError> {
        let found = self.read_persistence(true).await?;
        let append_only = found.iter().all(|(_, persistence)| persistence.append_only);
        self.check_acknowledgement(append_only).await
    }

    async fn read_persistence(&self, warn: bool) -> Result<Vec<(Node, Persistence)>, StoreError> {
        // A connection of its own: a few commands, once, that the checks need not wait
        // behind.
        let mut connection = self.dedicated_connection().await?;
        let budget = self.command_timeout().saturating_mul(CHECK_BUDGET);
        let prefix = self.prefix();
        let read = async {
            if warn {
                check(&mut connection, prefix).await
            } else {
                let mut found = Vec::new();
                for node in connection.masters().await? {
                    let persistence = read(&mut connection, &node).await?;
                    found.push((node, persistence));
                }
                Ok(found)
            }
        };
        match tokio::time::timeout(budget, read).await {
            Ok(Ok(found)) => Ok(found),
            Ok(Err(error)) => Err(StoreError::new(
                "reading Redis's persistence settings failed",
                error,
            )),
            Err(_) => Err(StoreError::timeout(
                "Redis did not answer the persistence check in time",
            )),
        }
    }
}
