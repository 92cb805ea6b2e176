//! Full records, for a mirror with write-back on: one structure that answers its checks
//! and keeps what the mirror would write back into Redis when Redis loses data.
//!
//! `records.rs` packs a record in 37 bytes (41 for a subject's watermark) and keeps a
//! shard's records in `chunks.rs` (grown a fixed-size chunk at a time), found through
//! `positions.rs` (2-byte positions by the key's first 64 bits). `live.rs` reads every
//! live record, with its kind and bucket, a slice at a time, for a write-back.
//!
//! May use: the table's shards and the tags. Used by: the table (`map.rs`) and the
//! mirror's ledger.

mod chunks;
mod live;
mod positions;
pub(crate) mod records;
