//! Make JWT logout real: a Tower layer that verifies every request's token and
//! refuses revoked ones.
//!
//! PLACEHOLDER_DOCS
#![deny(missing_docs, unsafe_code)]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

#[cfg(feature = "axum")]
mod axum;
mod crypto;
mod extract;
mod future;
mod key;
mod layer;
mod reject;
mod revoke;
mod service;
pub mod store;
mod token;
mod verify;

#[cfg(feature = "axum")]
pub use crate::axum::MissingVerifiedToken;
pub use crate::crypto::install_crypto_provider;
pub use crate::extract::{MalformedRequest, TokenSource};
pub use crate::future::ResponseFuture;
pub use crate::key::RevocationKey;
pub use crate::layer::{DEFAULT_CHECK_TIMEOUT, FailurePolicy, RevocationLayer};
pub use crate::reject::{DefaultRejection, OnRejection, Rejection};
pub use crate::revoke::{Revocation, RevokeError, Revoker};
pub use crate::service::RevocationService;
pub use crate::store::memory::InMemoryStore;
pub use crate::store::{Lookup, RevocationQuery, RevocationStore, RevokedBy, StoreError};
pub use crate::token::{NoCustomClaims, RegisteredClaims, VerifiedToken};
pub use crate::verify::{
    DEFAULT_LEEWAY_SECS, DEFAULT_MAX_TOKEN_LEN, DEFAULT_MAX_TOKEN_LIFETIME, JwtVerifier, JwtVerifierBuilder,
    KeyError, VerificationKey, VerifyError,
};
pub use async_trait::async_trait;
#[cfg(feature = "redis")]
pub use deadpool_redis;
pub use jsonwebtoken;
#[cfg(feature = "redis")]
pub use redis;
#[cfg(feature = "redis")]
pub use crate::store::redis::RedisStore;
