//! Forgetting a marker: how a mirror applies a lifted revocation (a `del` event).

use super::InMemoryStore;
use crate::store::key::RevocationKey;

impl InMemoryStore {
    /// Drops the token or session marker under `key`; returns whether there was one.
    ///
    /// A store of short keys keeps markers by the first 64 bits of their key (see
    /// `table.rs`), so this also drops a marker whose key shares them: with `n` live
    /// markers, about once in `2^64 / n` removals (10⁻¹² at ten million); the other
    /// marker is still in Redis, and the mirror's next reload has it back. A store of
    /// full records (a mirror with write-back on) drops that key's alone. Only a mirror
    /// uses it, for an operator's `unrevoke`.
    pub(crate) fn forget_marker(&self, key: &RevocationKey) -> bool {
        let table = &self.shared.table;
        table.write(table.shard_of(key)).markers.remove(key)
    }
}
