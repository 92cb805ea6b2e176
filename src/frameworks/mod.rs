//! What the crate adds to the frameworks it serves, each behind its feature: axum's
//! extractors and `IntoResponse` for the crate's errors (`axum.rs`), tonic's
//! helpers and `Status` for rejections (`tonic.rs`, public as
//! [`tower_jwt_revoke::tonic`](crate::tonic)). The layer itself needs neither: it
//! is plain Tower.
//!
//! May use: everything public in the crate. Used by: applications only.

#[cfg(feature = "axum")]
pub(crate) mod axum;
#[cfg(feature = "tonic")]
pub mod tonic;
