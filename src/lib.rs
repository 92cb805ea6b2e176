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
//! - [`store`]: where revocations live. [`InMemoryStore`](store::InMemoryStore) for one
//!   process, [`RedisStore`](store/struct.RedisStore.html) (feature `redis`) for many
//!   replicas sharing one blocklist, and [`MirrorStore`](store/struct.MirrorStore.html)
//!   (feature `redis`) for a local copy of it that answers checks without a network round
//!   trip. Neither the layer nor the [`Revoker`] names the store's type, so the store can
//!   come from configuration.
//! - [`Revoker`]: log out a token, a subject everywhere, a session, or everyone.
//! - [`VerifiedToken::revoked`]: a future that resolves when the token is revoked or
//!   expires, so that a stream opened before logout (Server-Sent Events, a WebSocket, a
//!   gRPC server stream) ends with it.
//! - [`TokenIssuer`]: for an app that signs in its own users, access tokens minted from
//!   the verifier's own configuration (issuer, audience, lifetime, `typ`), each with a
//!   random `jti` and the session id that logout revokes.
//! - [`health`]: a readiness service for probes, 200 or 503 with the store's state.
//! - [`authorize`]: per-route checks on the verified claims (a scope, a role, an
//!   audience, a closure), answered 403 `insufficient_scope`.
//! - [`endpoints`](endpoints/index.html) (feature `endpoints`, on by default): HTTP
//!   endpoints that record revocations: the OpenID Connect Back-Channel Logout receiver,
//!   so that logging out at the identity provider stops the access tokens it issued, and
//!   an RFC 7009 revocation endpoint.
//! - Axum (feature `axum`): [`VerifiedToken`] and [`Claims<C>`](struct.Claims.html) are
//!   extractors, [`RevokeError`] is a response, and
//!   [`RevocationLayer::with_rejection_response`](struct.RevocationLayer.html#method.with_rejection_response)
//!   takes a closure returning `impl IntoResponse`.
//! - Keys from an identity provider (feature `jwks`): [`Jwks`](jwks/struct.Jwks.html)
//!   fetches a JWKS URL and [`OidcIssuer`](jwks/struct.OidcIssuer.html) discovers an
//!   issuer's; both refresh in the background and when a token names an unknown `kid`,
//!   and keep the last good keys while the provider is down. Several issuers, each with
//!   its own keys, fit in one verifier.
//! - Tonic (feature `tonic`, off by default): `tonic::RequestExt` reads the token from a
//!   `tonic::Request`, and `RevocationLayer::with_status_rejection` builds rejections
//!   as `tonic::Status`.
//!
//! Links to an item of a feature that is off lead nowhere: build these docs with the
//! features you use (`cargo doc --open` has the default ones), or read them on docs.rs,
//! which has every feature.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response, StatusCode};
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_jwt_revoke::jsonwebtoken::{self, Algorithm, EncodingKey, Header};
//! use tower_jwt_revoke::store::InMemoryStore;
//! use tower_jwt_revoke::{JwtVerifier, RevocationLayer, VerificationKey};
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
//! # Signature backends
//!
//! Signatures are checked with aws-lc-rs (feature `aws_lc_rs`, the default) or the
//! RustCrypto crates (`rust_crypto`). When Cargo compiles both into jsonwebtoken (this
//! crate asks for one, the application's own `jsonwebtoken` for the other),
//! jsonwebtoken cannot choose and its `encode`/`decode` panic. This crate installs its
//! backend as jsonwebtoken's default the first time any of its entry points runs
//! ([`JwtVerifier::builder`], [`VerificationKey`]'s constructors,
//! [`RevocationLayer::new`], [`Revoker::new`], the stores); an application that signs
//! tokens before touching this crate calls [`install_crypto_provider`] first.
//!
//! # Features
//!
//! | feature       | default | what                                                    |
//! |---------------|---------|---------------------------------------------------------|
//! | `aws_lc_rs`   | yes     | verify signatures with aws-lc-rs                        |
//! | `rust_crypto` | no      | verify signatures with the RustCrypto crates            |
//! | `redis`       | yes     | [`RedisStore`](store/struct.RedisStore.html) (one server or a Redis Cluster), [`MirrorStore`](store/struct.MirrorStore.html), and re-exports of `redis`/`deadpool_redis` |
//! | `axum`        | yes     | extractors, `IntoResponse` for errors, axum-native rejections |
//! | `endpoints`   | yes     | back-channel logout receiver, RFC 7009 revocation endpoint |
//! | `jwks`        | yes     | keys from a JWKS URL or OpenID Connect discovery (reqwest, rustls) |
//! | `metrics`     | yes     | counters and histograms through the `metrics` facade (names in the README) |
//! | `tonic`       | no      | `tonic::RequestExt`, rejections as `tonic::Status`       |
//!
//! The README documents the Redis key schema for services in other languages; the
//! [`store::schema`](store/schema/index.html) module (feature `redis`) says why it is cut
//! as it is. The README's "Features" section says what each feature costs in
//! dependencies.
#![deny(missing_docs, unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod authorize;
#[cfg(feature = "endpoints")]
#[cfg_attr(docsrs, doc(cfg(feature = "endpoints")))]
pub mod endpoints;
mod frameworks;
#[cfg(feature = "jwks")]
#[cfg_attr(docsrs, doc(cfg(feature = "jwks")))]
pub mod jwks;
mod layer;
mod observe;
mod revoke;
mod sessions;
pub mod store;
mod verify;

#[cfg(feature = "tonic")]
#[cfg_attr(docsrs, doc(cfg(feature = "tonic")))]
#[doc(inline)]
pub use crate::frameworks::tonic;
#[doc(inline)]
pub use crate::observe::health;
#[doc(inline)]
pub use crate::sessions::refresh;

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub use crate::frameworks::axum::{Claims, ClaimsRejection, MissingVerifiedToken, RejectionResponse};
pub use crate::layer::body::{BodyRefused, RevocableBody, StreamEnding};
pub use crate::layer::extract::{MalformedRequest, TokenSource};
pub use crate::layer::future::ResponseFuture;
pub use crate::layer::reject::{DefaultRejection, OnRejection, Rejection};
pub use crate::layer::service::RevocationService;
pub use crate::layer::{DEFAULT_CHECK_TIMEOUT, FailurePolicy, RevocationLayer};
pub use crate::revoke::{DEFAULT_REVOKE_TIMEOUT, Revocation, RevokeError, Revoker};
pub use crate::sessions::issue::{
    DEFAULT_ACCESS_TOKEN_LIFETIME, IssueError, IssuedToken, RandomError, SigningKey, TokenIssuer,
    TokenIssuerBuilder,
};
pub use crate::store::key::RevocationKey;
pub use crate::store::{Refusal, Revoked};
pub use crate::verify::crypto::install_crypto_provider;
pub use crate::verify::token::{RegisteredClaims, VerifiedToken};
pub use crate::verify::unverified::UnverifiedToken;
pub use crate::verify::{
    DEFAULT_LEEWAY_SECS, DEFAULT_MAX_TOKEN_LEN, DEFAULT_MAX_TOKEN_LIFETIME, JwtVerifier, JwtVerifierBuilder,
    KeyError, KeyRing, KeySet, SessionClaim, SkippedKey, VerificationKey, VerifyError,
};
/// The attribute [`RevocationStore`](store::RevocationStore) implementations use, at the
/// version this crate uses.
pub use async_trait::async_trait;
/// deadpool-redis, at the version [`RedisStore`](store::RedisStore) is built with.
#[cfg(feature = "redis")]
pub use deadpool_redis;
/// jsonwebtoken, at the version [`JwtVerifier`] is built with (keys, algorithms, signing).
pub use jsonwebtoken;
/// redis, at the version [`RedisStore`](store::RedisStore) is built with.
#[cfg(feature = "redis")]
pub use redis;

// The README's examples compile as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
