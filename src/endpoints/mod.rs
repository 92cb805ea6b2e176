//! HTTP endpoints that record revocations (feature `endpoints`, on by default).
//!
//! - [`BackChannelLogout`]: the receiver of [OpenID Connect Back-Channel Logout 1.0].
//!   When a user logs out at the identity provider (or an administrator ends their
//!   session there), the provider POSTs a signed logout token to this endpoint; the
//!   receiver checks it as the specification's section 2.6 says and revokes the
//!   session (`sid`), or every token of the user (`sub`) when the logout token names
//!   no session. Access tokens the provider issued for that session are refused by
//!   [`RevocationLayer`](crate::RevocationLayer) from then on, on every replica that
//!   shares the store.
//! - [`TokenRevocation`]: an [RFC 7009] revocation endpoint, for applications that
//!   issue their own tokens and let their OAuth clients revoke them.
//!
//! Both are Tower services over `http::Request<B>` for any body `B` (axum's, hyper's
//! `Incoming`, …), answering `http::Response<String>` and never `Err`: route them with
//! axum's `post_service`, or call them from a hyper `service_fn`. Both read at most
//! [`DEFAULT_MAX_BODY_LEN`] bytes of `application/x-www-form-urlencoded` form, within
//! [`DEFAULT_BODY_TIMEOUT`], and answer:
//!
//! | request                                         | answer                                   |
//! |-------------------------------------------------|------------------------------------------|
//! | not `POST`                                      | 405, `Allow: POST`                        |
//! | another content type                            | 415 (HTTP's status for it; still a 4xx the sender will not retry) |
//! | body over the limit                             | 413                                      |
//! | body not sent within the timeout                | 408                                      |
//! | a parameter missing, empty, or repeated         | 400 `invalid_request`                     |
//! | more than [`MAX_FORM_PARAMS`] parameters        | 400 `invalid_request`                     |
//! | the store failed or timed out                   | 503 `temporarily_unavailable`, `Retry-After`: the sender retries; never a 200 |
//!
//! Every answer carries `Cache-Control: no-store`; errors are OAuth-style JSON
//! bodies, `{"error": "…", "error_description": "…"}`, whose description never
//! repeats a token or a subject.
//!
//! # Example (axum)
//!
//! ```
//! use axum::Router;
//! use axum::routing::{get, post_service};
//! use tower_jwt_revoke::endpoints::{BackChannelLogout, TokenRevocation, basic_auth};
//! use tower_jwt_revoke::store::InMemoryStore;
//! use tower_jwt_revoke::{JwtVerifier, KeyRing, RevocationLayer};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The provider's signing keys, e.g. from its JWKS; one ring serves both verifiers.
//! let provider_keys = KeyRing::empty();
//! let issuer = "https://idp.example/realms/shop";
//!
//! // Access tokens presented to this API...
//! let access = JwtVerifier::builder()
//!     .key_ring(provider_keys.clone())
//!     .issuer(issuer)
//!     .audience("shop-api")
//!     .require_type("at+jwt")
//!     .build()?;
//! // ...and logout tokens, addressed to this application's client id.
//! let logout = JwtVerifier::builder()
//!     .key_ring(provider_keys)
//!     .issuer(issuer)
//!     .audience("shop-web")
//!     .build()?;
//!
//! let layer = RevocationLayer::new(access, InMemoryStore::new()); // RedisStore for replicas
//! let receiver = BackChannelLogout::builder(logout, layer.revoker()).build()?;
//! let revocation = TokenRevocation::builder(layer.revoker(), basic_auth("shop-web", "client secret")).build()?;
//!
//! let app: Router = Router::new()
//!     .route("/me", get(|| async { "refused once the provider logs the session out" }))
//!     .route_layer(layer)
//!     // Outside the layer: the provider and OAuth clients present no access token.
//!     .route("/backchannel-logout", post_service(receiver))
//!     .route("/oauth/revoke", post_service(revocation));
//! # Ok(()) }
//! ```
//!
//! [OpenID Connect Back-Channel Logout 1.0]: https://openid.net/specs/openid-connect-backchannel-1_0.html
//! [RFC 7009]: https://www.rfc-editor.org/rfc/rfc7009
//!
//! In this folder: the two endpoints (`backchannel.rs`, `revocation.rs`), the form
//! endpoint underneath both (`form_endpoint.rs`, `form.rs`), logout tokens
//! (`logout_token.rs`), client authentication (`client_auth.rs`) and the answers
//! (`response.rs`). May use: the verifier, the revoker. Used by: applications.

mod backchannel;
mod client_auth;
mod form;
mod form_endpoint;
mod logout_token;
mod response;
mod revocation;

use std::time::Duration;

pub use self::backchannel::{BackChannelLogout, BackChannelLogoutBuilder, LoggedOut};
pub use self::client_auth::{BasicAuth, BasicCredentials, ClientAuth, ClientRequest, basic_auth};
pub use self::logout_token::{BACKCHANNEL_LOGOUT_EVENT, LogoutError};
pub use self::response::EndpointFuture;
pub use self::revocation::{TokenRevocation, TokenRevocationBuilder};

/// The form parser alone, for the fuzz targets in `fuzz/` (cargo-fuzz builds with
/// `--cfg fuzzing`); not part of the API, and absent from every other build.
#[cfg(fuzzing)]
#[doc(hidden)]
pub fn fuzz_parse_form(body: &[u8]) -> Result<Vec<(String, String)>, String> {
    match form::Form::parse(body) {
        Ok(form) => Ok(form.into_params()),
        Err(refused) => Err(refused.into_response().into_body()),
    }
}

/// The largest request body read, unless configured: 64 KiB. A logout token or an
/// access token is a few KiB at most; the limit stops a sender from making the
/// endpoint buffer megabytes.
pub const DEFAULT_MAX_BODY_LEN: usize = 64 * 1024;

/// The most parameters a form may have: 64. Both protocols need a handful (`token`,
/// `token_type_hint`, client credentials; `logout_token`); a body of thousands of
/// one-letter names is refused with 400 after the 65th, before any client
/// authentication, so that what anyone can send costs next to nothing to parse.
pub const MAX_FORM_PARAMS: usize = 64;

/// How long the endpoints wait for the whole request body, unless configured: 10 s.
/// A client trickling a body byte by byte is answered 408 rather than held forever.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// What `Retry-After` a 503 carries, unless configured: 5 s.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);

/// Why an endpoint could not be built from its configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The logout-token verifier accepts any issuer: the specification requires `iss`
    /// to be checked (set [`issuer`](crate::JwtVerifierBuilder::issuer)).
    #[error("the logout-token verifier must name the provider's issuer")]
    NoIssuer,
    /// The logout-token verifier has no audience, so it would refuse every logout
    /// token (each carries `aud`): set [`audience`](crate::JwtVerifierBuilder::audience)
    /// to this application's client id.
    #[error("the logout-token verifier must name this application's client id as audience")]
    NoAudience,
    /// The logout-token verifier requires another `typ` than `logout+jwt` (an access
    /// token verifier reused by mistake?), so it would refuse every logout token.
    #[error("the logout-token verifier requires typ {0:?}, which no logout token carries")]
    WrongRequiredType(String),
    /// The logout-token verifier accepts two issuers with the same keys (one
    /// [`key_ring`](crate::JwtVerifierBuilder::key_ring) and several
    /// [`issuer`](crate::JwtVerifierBuilder::issuer)s, say): a key of either would sign
    /// logout tokens naming the other, and log its users out. Give each issuer its own
    /// keys with [`issuer_keys`](crate::JwtVerifierBuilder::issuer_keys), or build one
    /// receiver per issuer.
    #[error(
        "the logout-token verifier accepts issuers {first:?} and {second:?} with the same keys; \
         give each its own with JwtVerifierBuilder::issuer_keys"
    )]
    SharedIssuerKeys {
        /// One issuer.
        first: String,
        /// Another, verified with the same keys.
        second: String,
    },
    /// The revocation endpoint's verifier accepts several issuers, and nothing says
    /// which one the authenticated clients belong to: set
    /// [`client_issuer`](TokenRevocationBuilder::client_issuer).
    #[error(
        "the verifier accepts several issuers: name the one whose clients this endpoint \
         authenticates with TokenRevocationBuilder::client_issuer"
    )]
    NoClientIssuer,
}

/// The settings both endpoints share: how much of a request they read, and what a 503
/// tells the sender.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_body_len: usize,
    pub(crate) body_timeout: Duration,
    pub(crate) retry_after: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_len: DEFAULT_MAX_BODY_LEN,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            retry_after: DEFAULT_RETRY_AFTER,
        }
    }
}
