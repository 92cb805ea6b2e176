//! Reading the records under the prefix, a `SCAN` page at a time (never `KEYS`), on
//! every master of a cluster in turn.

use super::Record;
use crate::key::RevocationKey;
use crate::store::StoreError;
use crate::store::redis::scan::{Scanned, read_keys, scan_step};
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

/// How many bits of a page's cursor hold the node's own `SCAN` cursor; the bits above
/// say which pass the scan is in (a master of the cluster, then the v1 keys).
const NODE_CURSOR_BITS: u32 = 48;
const NODE_CURSOR_MASK: u64 = (1 << NODE_CURSOR_BITS) - 1;

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
        let pass_index = usize::try_from(cursor >> NODE_CURSOR_BITS).unwrap_or(usize::MAX);
        let Some(pass) = passes.get(pass_index) else {
            return Err(StoreError::msg(
                "the scan's cursor names a node the deployment no longer has (a failover or a \
                 resharding meanwhile): start the scan again from 0",
            ));
        };
        let (next, keys) = scan_step(
            connection,
            &pass.node,
            cursor & NODE_CURSOR_MASK,
            &pass.pattern,
            count,
            timeout,
        )
        .await?;
        if next > NODE_CURSOR_MASK {
            return Err(StoreError::msg(
                "Redis answered a SCAN cursor too large to page through",
            ));
        }
        let cursor = match (next, pass_index + 1 < passes.len()) {
            (0, true) => u64::try_from(pass_index + 1).unwrap_or(u64::MAX) << NODE_CURSOR_BITS,
            (0, false) => 0,
            (next, _) => (cursor & !NODE_CURSOR_MASK) | next,
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
        match record.bucket {
            Some(bucket) if record.buckets.is_none_or(|n| n == self.buckets()) && bucket < self.buckets() => {
                self.schema().key_of(bucket, kind, &hash)
            }
            Some(_) => self.schema().key_of(self.bucket_of(&hash), kind, &hash),
            None => V1::new(self.prefix()).key(kind, &hash),
        }
    }

    /// Every master's v2 keys, then the v1 keys while the transition is on.
    async fn passes(&self, connection: &mut Conn) -> Result<Vec<Pass>, StoreError> {
        let masters = crate::store::redis::scan::bounded(self.bulk_timeout(), connection.masters()).await?;
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
