//! Reading the blocklist: many checks at once for the open streams' poller
//! (`batch.rs`), a check's one `MGET` (`check.rs`: which keys, in which order,
//! and what the reply means) and reading keys node by node for the bulk readers
//! (`scan.rs`: the v1 migration, an operator's listing, a mirror's load of v1 keys).
//!
//! May use: `connect/` and `schema/`. Used by: the store's `lookup`, `admin/`, the mirror.

pub(crate) mod batch;
pub(crate) mod check;
pub(crate) mod scan;
