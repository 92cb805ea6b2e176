//! Make JWT logout real: a Tower layer that verifies every request's token and
//! refuses revoked ones.
//!
//! A JWT is stateless: clearing a cookie at logout leaves every copy of the token valid
//! until it expires. [`RevocationLayer`] checks a revocation list on every request,
//! after full verification, in one store call; [`Revoker`] records revocations that
//! expire by themselves when the token would have.
//!
//! - [`RevocationLayer`]: read the token ([`TokenSource`]), verify it
//!   ([`JwtVerifier`]), ask the store, then call the inner service with a
//!   [`VerifiedToken`] in the request extensions; refuse with a [`Rejection`] otherwise.
//! - [`RevocationStore`]: where revocations live; [`InMemoryStore`] for one process,
//!   `RedisStore` (feature `redis`) for many replicas sharing one blocklist, and
//!   `MirrorStore` (feature `redis`) for a local copy of it that answers checks
//!   without a network round trip.
//! - [`Revoker`]: log out a token, a subject everywhere, a session, or everyone.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response, StatusCode};
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_jwt_revoke::jsonwebtoken::{self, Algorithm, EncodingKey, Header};
//! use tower_jwt_revoke::{InMemoryStore, JwtVerifier, RevocationLayer, VerificationKey};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let secret = b"a long random secret of 32 bytes";
//! let verifier = JwtVerifier::builder().key(VerificationKey::hmac(Algorithm::HS256, secret)?).build()?;
//! let layer = RevocationLayer::new(verifier, InMemoryStore::new());
//! let revoker = layer.revoker();
//! let service = ServiceBuilder::new()
//!     .layer(layer)
//!     .service_fn(|_: Request<String>| async { Ok::<_, Infallible>(Response::new(String::from("hi"))) });
//!
//! let now = jsonwebtoken::get_current_timestamp();
//! let claims = serde_json::json!({ "sub": "alice", "jti": "1", "iat": now, "exp": now + 600 });
//! let token = jsonwebtoken::encode(&Header::default(), &claims, &EncodingKey::from_secret(secret))?;
//! let request = || Request::get("/").header("authorization", format!("Bearer {token}")).body(String::new());
//!
//! assert_eq!(service.clone().oneshot(request()?).await?.status(), StatusCode::OK);
//! revoker.revoke_token(&token).await?; // logout
//! assert_eq!(service.clone().oneshot(request()?).await?.status(), StatusCode::UNAUTHORIZED);
//! # Ok(()) }
//! ```
//!
//! # Features
//!
//! | feature       | default | what                                                    |
//! |---------------|---------|---------------------------------------------------------|
//! | `aws_lc_rs`   | yes     | verify signatures with aws-lc-rs                        |
//! | `rust_crypto` | no      | verify signatures with the RustCrypto crates            |
//! | `redis`       | yes     | `RedisStore`, `MirrorStore`, and re-exports of `redis`/`deadpool_redis` |
//! | `axum`        | yes     | [`VerifiedToken`] as an Axum extractor                  |
//!
//! The README documents the Redis key schema for services in other languages.
#![deny(missing_docs, unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

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
pub use crate::revoke::{DEFAULT_REVOKE_TIMEOUT, Revocation, RevokeError, Revoker};
pub use crate::service::RevocationService;
pub use crate::store::memory::InMemoryStore;
#[cfg(feature = "redis")]
pub use crate::store::mirror::MirrorStore;
#[cfg(feature = "redis")]
pub use crate::store::redis::RedisStore;

pub use crate::store::{Lookup, RevocationQuery, RevocationStore, RevokedBy, StoreError};
pub use crate::token::{NoCustomClaims, RegisteredClaims, VerifiedToken};
pub use crate::verify::{
    DEFAULT_LEEWAY_SECS, DEFAULT_MAX_TOKEN_LEN, DEFAULT_MAX_TOKEN_LIFETIME, JwtVerifier, JwtVerifierBuilder,
    KeyError, VerificationKey, VerifyError,
};
/// The attribute [`RevocationStore`] implementations use, at the version this crate uses.
pub use async_trait::async_trait;
/// deadpool-redis, at the version [`RedisStore`] is built with.
#[cfg(feature = "redis")]
pub use deadpool_redis;
/// jsonwebtoken, at the version [`JwtVerifier`] is built with (keys, algorithms, signing).
pub use jsonwebtoken;
/// redis, at the version [`RedisStore`] is built with.
#[cfg(feature = "redis")]
pub use redis;

// The README's examples compile as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
