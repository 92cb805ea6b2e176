//! Signing keys from an identity provider: a JWKS URL ([`Jwks`]) or OpenID Connect
//! discovery ([`OidcIssuer`]), refreshed while the service runs.
//!
//! Feature `jwks` (on by default). Documents are fetched with reqwest over HTTPS
//! (rustls, the platform's root certificates); plain `http://` is allowed for loopback
//! hosts only, for tests and local development, and only when the configured issuer
//! or JWKS URL is on loopback itself (neither a discovery document nor a redirect
//! can send fetches from an `https://` provider to this machine's plain-HTTP
//! services).
//!
//! The keys land in a [`KeyRing`](crate::KeyRing) that a [`JwtVerifier`](crate::JwtVerifier)
//! reads on every request (a lock-free pointer load: no cost over keys configured by
//! hand). The ring asks its source for a fetch when a token names a `kid` it lacks,
//! so a key the provider rotated in is accepted on first sight; a background task
//! refreshes on the provider's `Cache-Control: max-age` or an interval; a provider
//! that is down leaves the last good keys in place, which is logged and shown by
//! [`Jwks::health`]. A verification that fails only because no keys could be fetched
//! yet is answered **503**, not 401; so is a token naming an unknown `kid` while the
//! rate limit on such fetches allows none, with the `Retry-After` of the fetch then
//! made by itself.
//!
//! ```no_run
//! use tower_jwt_revoke::store::InMemoryStore;
//! use tower_jwt_revoke::{JwtVerifier, RevocationLayer};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let verifier = JwtVerifier::from_issuer("https://idp.example/realms/x")
//!     .await?
//!     .audience("my-api")
//!     .require_type("at+jwt")
//!     .build()?;
//! let layer = RevocationLayer::new(verifier, InMemoryStore::new());
//! # Ok(()) }
//! ```
//!
//! In this folder: the key source and its unknown-`kid` refreshes (`source/`), its
//! builder (`builder.rs`), discovery (`discovery.rs`), fetching and what may be fetched
//! (`fetch.rs`), the documents (`document.rs`), the refresh schedule (`schedule.rs`),
//! health (`health.rs`) and errors (`error.rs`). May use: the verifier's key rings. Used
//! by: applications, through the verifier's builder.

mod builder;
mod discovery;
mod document;
mod error;
mod fetch;
mod health;
mod schedule;
mod source;

pub use self::builder::{
    DEFAULT_MAX_REFRESH_INTERVAL, DEFAULT_MIN_REFRESH_INTERVAL, DEFAULT_REFRESH_INTERVAL,
    DEFAULT_RETRY_INITIAL, DEFAULT_RETRY_MAX, DEFAULT_TIMEOUT, DEFAULT_UNKNOWN_KID_INTERVAL, JwksBuilder,
    StartMode,
};
pub use self::discovery::{OidcIssuer, OidcIssuerBuilder, ProviderMetadata};
pub use self::error::JwksError;
pub use self::health::JwksHealth;
pub use self::source::Jwks;
