//! What Redis keeps, and noticing what it lost: the persistence settings read once at
//! start (`persistence.rs`), and the epoch markers every store watches, on a connection
//! of its own, to notice a loss (`epoch.rs`, `epoch.lua`, the watch's loop in `watch.rs`), which its mirrors then write
//! back.
//!
//! May use: `connect/`, `schema/`. Used by: the store (its background watch, health) and
//! the mirror (the lost buckets it writes back).

pub(crate) mod epoch;
pub(crate) mod persistence;
mod watch;
