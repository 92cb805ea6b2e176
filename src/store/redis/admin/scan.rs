//! Reading the records under the prefix, a `SCAN` page at a time (never `KEYS`), on
//! every master of a cluster in turn.

use super::Record;
use crate::store::StoreError;
use crate::store::key::RevocationKey;
use crate::store::redis::read::scan::{Scanned, read_keys, scan_step};
use crate::store::redis::{Conn, Kind, Node, RedisStore, V1};

/// One page of [`RedisStore::scan_page`]: the records found, and where to go on.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Page {
    /// The live records of this page, in `SCAN` order.
    pub records: Vec<Record>,
    /// The cursor of the next page; `0` when the scan is complete.
    pub cursor: u64,
}

/// A page's cursor: the node's own `SCAN` cursor in the low 48 bits; above it, a
/// fingerprint of the node (8 bits), and which pass the scan is in (8 bits: a master of
/// the cluster, then the v1 keys). A node's cursor means nothing on another node: the
/// fingerprint tells when a failover or a resharding put another node at that pass.
const NODE_CURSOR_BITS: u32 = 48;
const NODE_CURSOR_MASK: u64 = (1 << NODE_CURSOR_BITS) - 1;
const FINGERPRINT_BITS: u32 = 8;
const PASS_SHIFT: u32 = NODE_CURSOR_BITS + FINGERPRINT_BITS;

/// One pass of a scan: a pattern on a node.
struct Pass {
    node: Node,
    pattern: String,
    v1: bool,
}

/// What one step found on one node: the keys as `SCAN` gave them, read.
pub(super) struct Step {
    pub(super) page: Page,
    pub(super) node: Node,
    pub(super) keys: Vec<String>,
}

impl RedisStore {
    /// One `SCAN` step over this store's records, from `cursor` (`0` to start), looking
    /// at about `count` keys (`SCAN`'s `COUNT` hint), with each record's value and
    /// remaining TTL (one pipelined round trip more, to the same node).
    ///
    /// On a cluster the scan visits every master in turn (the cursor is opaque: it
    /// names the master as well as the position on it); during a
    /// [v1 transition](super::super::RedisStoreBuilder::v1_transition) it visits the v1
    /// keys last. A page may hold fewer records than `count`, none at all, or a few
    /// more; a record may show up twice across pages (`SCAN`'s guarantees), and a scan
    /// that overlaps a failover or a resharding may miss records that moved: run it
    /// again then. Records kept in every bucket (sessions, the global watermark, tokens
    /// revoked without their subject) show up once per bucket, each with its
    /// [`bucket`](Record::bucket). Keys that are not records (the change feeds) are
    /// left out, and so are records that expired between the two round trips.
    pub async fn scan_page(&self, cursor: u64, count: usize) -> Result<Page, StoreError> {
        let mut connection = self.dedicated_connection().await?;
        Ok(self.scan_step(&mut connection, cursor, count).await?.page)
    }

    /// [`scan_page`](Self::scan_page) on `connection`, with the keys and the node.
    pub(super) async fn scan_step(
        &self,
        connection: &mut Conn,
        cursor: u64,
        count: usize,
    ) -> Result<Step, StoreError> {
        let timeout = self.bulk_timeout();
        let passes = self.passes(connection).await?;
        if passes.len() > 1 << (64 - PASS_SHIFT) {
            return Err(StoreError::msg("too many masters to scan with one cursor"));
        }
        let pass_index = usize::try_from(cursor >> PASS_SHIFT).unwrap_or(usize::MAX);
        let node_cursor = cursor & NODE_CURSOR_MASK;
        // Every cursor handed out but the first (0) names its node.
        let pass = passes
            .get(pass_index)
            .filter(|pass| cursor == 0 || fingerprint_of(cursor) == fingerprint(pass));
        let Some(pass) = pass else {
            return Err(StoreError::msg(
                "the scan's cursor names a node the deployment no longer has there (a failover \
                 or a resharding meanwhile): start the scan again from 0",
            ));
        };
        let (next, keys) =
            scan_step(connection, &pass.node, node_cursor, &pass.pattern, count, timeout).await?;
        if next > NODE_CURSOR_MASK {
            return Err(StoreError::msg(
                "Redis answered a SCAN cursor too large to page through",
            ));
        }
        let cursor = match passes.get(pass_index + 1) {
            _ if next != 0 => pass_bits(pass_index, pass) << NODE_CURSOR_BITS | next,
            Some(following) => pass_bits(pass_index + 1, following) << NODE_CURSOR_BITS,
            None => 0,
        };
        let keys: Vec<String> = keys
            .into_iter()
            .filter(|key| self.parse_record_key(key, pass.v1).is_some())
            .collect();
        let read = read_keys(connection, &pass.node, keys.clone(), timeout).await?;
        let records = read
            .into_iter()
            .filter_map(|Scanned { key, value, pttl_ms }| {
                let (bucket, kind, hash) = self.parse_record_key(&key, pass.v1)?;
                Record::read(kind, hash, value?, pttl_ms)
                    .map(|record| record.in_bucket(bucket, self.buckets()))
            })
            .collect();
        Ok(Step {
            page: Page { records, cursor },
            node: pass.node.clone(),
            keys,
        })
    }

    /// The Redis key `record` lives under in this store: its bucket's copy, or the v1
    /// key for a record read from the v1 schema (no bucket). A record whose bucket
    /// belongs to another bucket count (a backup of another deployment) is named by its
    /// own bucket here, the subject's for a watermark.
    pub fn record_key(&self, record: &Record) -> String {
        let kind = record.kind.kind();
        let hash = record.hash.unwrap_or(RevocationKey::ZERO);
        match (record.bucket, record.buckets) {
            (Some(bucket), Some(buckets)) if buckets == self.buckets() && bucket < buckets => {
                self.schema().key_of(bucket, kind, &hash)
            }
            (Some(_), _) => self.schema().key_of(self.bucket_of(&hash), kind, &hash),
            (None, _) => V1::new(self.prefix()).key(kind, &hash),
        }
    }

    /// Every master's v2 keys, then the v1 keys while the transition is on.
    async fn passes(&self, connection: &mut Conn) -> Result<Vec<Pass>, StoreError> {
        let masters =
            crate::store::redis::read::scan::bounded(self.bulk_timeout(), connection.masters()).await?;
        let pattern = self.schema().pattern(None);
        let mut passes: Vec<Pass> = masters
            .into_iter()
            .map(|node| Pass {
                node,
                pattern: pattern.clone(),
                v1: false,
            })
            .collect();
        if let Some(v1) = self.v1() {
            passes.push(Pass {
                node: Node::Only,
                pattern: v1.pattern(),
                v1: true,
            });
        }
        Ok(passes)
    }

    /// The bucket (none in v1), kind and hash of a record key; `None` for other keys.
    fn parse_record_key(&self, key: &str, v1: bool) -> Option<(Option<u32>, Kind, RevocationKey)> {
        if v1 {
            let (kind, hash) = V1::new(self.prefix()).parse(key)?;
            return Some((None, kind, hash));
        }
        let (bucket, kind, hash) = self.schema().parse(key)?;
        Some((Some(bucket), kind, hash))
    }

    /// How long one bulk command may take: ten command timeouts (it reads many keys).
    pub(crate) fn bulk_timeout(&self) -> std::time::Duration {
        self.command_timeout().saturating_mul(10)
    }
}

/// The bits above a node's cursor: the pass, then the fingerprint of its node.
fn pass_bits(index: usize, pass: &Pass) -> u64 {
    (u64::try_from(index).unwrap_or(u64::MAX) << FINGERPRINT_BITS) | fingerprint(pass)
}

/// Eight bits of a hash of the node's address and the pass's pattern.
fn fingerprint(pass: &Pass) -> u64 {
    use std::hash::{Hash, Hasher};
    // A fixed-key hasher: a cursor handed out by one process is read by another
    // (the command-line tool's `list --cursor`).
    let mut hasher = FixedHasher::default();
    pass.node.to_string().hash(&mut hasher);
    pass.pattern.hash(&mut hasher);
    hasher.finish() & ((1 << FINGERPRINT_BITS) - 1)
}

fn fingerprint_of(cursor: u64) -> u64 {
    (cursor >> NODE_CURSOR_BITS) & ((1 << FINGERPRINT_BITS) - 1)
}

/// FNV-1a: stable across processes and Rust versions, unlike `DefaultHasher`.
struct FixedHasher(u64);

impl Default for FixedHasher {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for FixedHasher {
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass(host: &str, port: u16) -> Pass {
        Pass {
            node: Node::At {
                host: host.into(),
                port,
            },
            pattern: "{p:b*}:*".into(),
            v1: false,
        }
    }

    #[test]
    fn a_cursor_names_its_pass_and_node() {
        let (a, b) = (pass("10.0.0.1", 6379), pass("10.0.0.2", 6379));
        let cursor = pass_bits(2, &a) << NODE_CURSOR_BITS | 12345;
        assert_eq!(cursor >> PASS_SHIFT, 2);
        assert_eq!(cursor & NODE_CURSOR_MASK, 12345);
        assert_eq!(fingerprint_of(cursor), fingerprint(&a));
        assert_ne!(
            fingerprint(&a),
            fingerprint(&b),
            "another node at that pass is told apart"
        );
        assert_eq!(fingerprint(&a), fingerprint(&pass("10.0.0.1", 6379)), "stable");
    }
}
