//! What an operator's tools need beyond the checks and revocations services make:
//! reading every record ([`Page`], [`Record`]), counting them ([`Stats`]), lifting a
//! revocation with its change-feed event, and restoring records from a backup. The
//! command-line tool (`tower-jwt-revoke`, package `tower-jwt-revoke-cli`) is built on
//! these, so that it never re-implements the key schema.
//!
//! May use: every other folder of the store. Used by: nothing inside the crate; the
//! command-line tool and operators' code, through [`RedisStore`](super::RedisStore)'s
//! methods.

mod record;
mod scan;
mod stats;
mod write;

pub use self::record::{MAX_RECORD_TTL, MAX_WATERMARK, Record, RecordKind};
pub use self::scan::Page;
pub use self::stats::Stats;
