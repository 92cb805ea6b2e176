//! The version 1 key schema, kept for upgrades: read and written beside v2 during a
//! transition, and copied to v2 by a one-shot migration.
//!
//! v1 keys: `{prefix}:t:{hash}`, `{prefix}:x:{hash}`, `{prefix}:s:{hash}`,
//! `{prefix}:all`, one feed `{prefix}:feed` numbered by `{prefix}:feed:seq`. The keys of
//! one check hash to different slots, which is why v1 never ran on a cluster.

use std::time::Duration;

use crate::store::StoreError;
use crate::store::key::RevocationKey;
use crate::store::redis::read::scan::{Scanned, read_keys, scan_step};
use crate::store::redis::schema::{Kind, glob_escape};
use crate::store::redis::write::{Targets, WriteKeys};
use crate::store::redis::{Node, RedisStore};

/// How many keys one `SCAN` step of the migration brings at most.
const BATCH: usize = 1000;

/// How long a copied record lives when its v1 key has no TTL (a writer's mistake):
/// a year, so that nothing refused is let in.
const KEY_WITHOUT_TTL: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// The v1 key schema of a prefix.
#[derive(Debug, Clone, Copy)]
pub(crate) struct V1<'a> {
    prefix: &'a str,
}

impl<'a> V1<'a> {
    pub(crate) fn new(prefix: &'a str) -> Self {
        Self { prefix }
    }

    pub(crate) fn key(&self, kind: Kind, hash: &RevocationKey) -> String {
        match kind {
            Kind::Global => format!("{}:all", self.prefix),
            _ => format!("{}:{}:{hash}", self.prefix, kind.code()),
        }
    }

    pub(crate) fn feed(&self) -> String {
        format!("{}:feed", self.prefix)
    }

    pub(crate) fn feed_seq(&self) -> String {
        format!("{}:feed:seq", self.prefix)
    }

    pub(crate) fn write_keys(&self, kind: Kind, hash: &RevocationKey) -> WriteKeys {
        vec![self.key(kind, hash), self.feed(), self.feed_seq()]
    }

    /// The `SCAN` pattern of every v1 key (v2 keys start with `{` and do not match).
    pub(crate) fn pattern(&self) -> String {
        format!("{}:*", glob_escape(self.prefix))
    }

    /// The record a v1 key holds.
    pub(crate) fn parse(&self, key: &str) -> Option<(Kind, RevocationKey)> {
        let rest = key.strip_prefix(self.prefix)?.strip_prefix(':')?;
        if rest == "all" {
            return Some((Kind::Global, RevocationKey::ZERO));
        }
        let (code, hash) = rest.split_once(':')?;
        Some((Kind::from_code(code)?, RevocationKey::from_hex(hash)?))
    }
}

/// What [`RedisStore::migrate_v1`] copied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MigrationReport {
    /// Token markers copied (each into every bucket: v1 does not say whose they are).
    pub tokens: u64,
    /// Session markers copied (into every bucket, as v2 keeps them).
    pub sessions: u64,
    /// Subject watermarks copied (each into its subject's bucket).
    pub subjects: u64,
    /// Whether a global watermark was copied (into every bucket).
    pub global: bool,
    /// Records that had no TTL in v1, copied with a long one (a year).
    pub without_ttl: u64,
}

impl RedisStore {
    /// Copies every live v1 record into the v2 schema, each with the time it has left:
    /// the one-shot step of an upgrade from v1.
    ///
    /// An upgrade loses no revocation when it goes:
    ///
    /// 1. Deploy the new version with [`v1_transition(true)`](crate::store::redis::RedisStoreBuilder::v1_transition)
    ///    on every replica. While replicas of the old version still run, they read and
    ///    write only v1; the new ones read both schemas in the same `MGET` and write
    ///    both, so every replica sees every revocation.
    /// 2. Once no old replica is left, either wait for the longest token lifetime plus
    ///    leeway (every record written only to v1 has expired by then), or call this once
    ///    to copy them now. Calling it again is harmless: writes only extend.
    /// 3. Deploy with the transition off (the default). Delete v1's change feed and its
    ///    counter (`DEL {prefix}:feed {prefix}:feed:seq`, the two keys without a TTL);
    ///    other v1 keys expire by themselves. From here the deployment may move to a
    ///    cluster (copy the keys with `redis-cli --cluster import`, which keeps TTLs).
    ///
    /// A v1 token marker does not say which subject the token belongs to, so it is
    /// copied into every bucket (N records each, for the time the token has left).
    /// Uses `SCAN`, never `KEYS`. Only on a single server.
    pub async fn migrate_v1(&self) -> Result<MigrationReport, StoreError> {
        if self.is_cluster() {
            return Err(StoreError::msg(
                "the v1 schema never ran on a cluster: migrate on the single server, then import",
            ));
        }
        let v1 = V1::new(self.prefix());
        let timeout = self.bulk_timeout();
        let mut connection = self.dedicated_connection().await?;
        let mut report = MigrationReport::default();
        let mut cursor = 0u64;
        loop {
            let (next, keys) = scan_step(
                &mut connection,
                &Node::Only,
                cursor,
                &v1.pattern(),
                BATCH,
                timeout,
            )
            .await?;
            let keys: Vec<String> = keys.into_iter().filter(|key| v1.parse(key).is_some()).collect();
            for Scanned { key, value, pttl_ms } in
                read_keys(&mut connection, &Node::Only, keys, timeout).await?
            {
                if let Some((kind, hash)) = v1.parse(&key) {
                    self.copy_v1(&mut report, kind, &hash, value, pttl_ms).await?;
                }
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        tracing::info!(prefix = %self.prefix(), ?report, "copied the v1 revocations to the v2 schema");
        Ok(report)
    }

    async fn copy_v1(
        &self,
        report: &mut MigrationReport,
        kind: Kind,
        hash: &RevocationKey,
        value: Option<String>,
        pttl_ms: i64,
    ) -> Result<(), StoreError> {
        let ttl = match pttl_ms {
            -1 => {
                report.without_ttl += 1;
                KEY_WITHOUT_TTL
            }
            ms => match u64::try_from(ms) {
                Ok(ms) if ms > 0 => Duration::from_millis(ms),
                _ => return Ok(()), // expired meanwhile
            },
        };
        let Some(value) = value else { return Ok(()) };
        match kind {
            Kind::Token => {
                report.tokens += 1;
                self.write(Targets::Every, kind, hash, None, ttl, None).await
            }
            Kind::Session => {
                report.sessions += 1;
                self.write(Targets::Every, kind, hash, None, ttl, None).await
            }
            Kind::Subject | Kind::Global => {
                let Ok(mark) = value.parse::<u64>() else {
                    tracing::warn!(kind = kind.code(), "a v1 watermark is not a number; not copied");
                    return Ok(());
                };
                let targets = if kind == Kind::Subject {
                    report.subjects += 1;
                    Targets::One(self.bucket_of(hash))
                } else {
                    report.global = true;
                    Targets::Every
                };
                self.write(targets, kind, hash, Some(mark), ttl, None).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_keys_round_trip() {
        let v1 = V1::new("revoked");
        let key = RevocationKey::session(None, "s");
        let text = v1.key(Kind::Session, &key);
        assert_eq!(text, format!("revoked:x:{key}"));
        assert_eq!(v1.parse(&text), Some((Kind::Session, key)));
        assert_eq!(v1.parse("revoked:all"), Some((Kind::Global, RevocationKey::ZERO)));
        assert_eq!(v1.parse("revoked:feed"), None);
        assert_eq!(v1.parse("{revoked:b1}:all"), None);
    }
}
