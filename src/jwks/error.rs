//! [`JwksError`]: why keys or provider metadata could not be fetched.

use std::error::Error as _;
use std::time::Duration;

use http::StatusCode;

use crate::KeyError;

/// Why a JWKS or an OpenID Provider's metadata could not be fetched or used.
///
/// Messages name the URL (with any password in it replaced by `***`) and never hold
/// key material or the documents' contents. The underlying error, when there is one,
/// is kept as the [`source`](std::error::Error::source).
///
/// At start ([`JwksBuilder::build`](super::JwksBuilder::build),
/// [`OidcIssuer::discover`](super::OidcIssuer::discover)) these are returned; later
/// refreshes that fail are logged with `tracing` and reported by
/// [`Jwks::health`](super::Jwks::health), while the last good keys stay in use.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JwksError {
    /// The URL does not parse, or its scheme is not allowed: `https://` is required,
    /// except for loopback hosts (`127.0.0.1`, `[::1]`, `localhost`), where `http://`
    /// is allowed for tests and local development when the configured issuer or JWKS
    /// URL is on loopback too (a discovery document's `jwks_uri` from an `https://`
    /// issuer may not name one).
    #[error("{url}: {reason}")]
    InvalidUrl {
        /// The URL as given (any password replaced).
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The HTTP client could not be built (its TLS configuration, say).
    #[error("the HTTP client could not be built")]
    Client(#[source] reqwest::Error),
    /// Not called inside a Tokio runtime, which the background refresh needs.
    #[error("keys from a JWKS are refreshed by a Tokio task: build them inside a Tokio runtime")]
    NoRuntime,
    /// The request failed: connection refused, DNS, TLS, a redirect refused…
    #[error("GET {url} failed")]
    Request {
        /// The URL requested.
        url: String,
        /// The transport error (without the URL, which may hold a password).
        #[source]
        source: reqwest::Error,
    },
    /// No complete answer within the configured timeout.
    #[error("GET {url} timed out after {timeout:?}")]
    Timeout {
        /// The URL requested.
        url: String,
        /// The configured timeout.
        timeout: Duration,
    },
    /// The server answered with a status other than 2xx.
    #[error("GET {url} answered {status}")]
    Status {
        /// The URL requested.
        url: String,
        /// The status it answered with.
        status: StatusCode,
    },
    /// The document is larger than accepted.
    #[error("the document at {url} is larger than {limit} bytes")]
    TooLarge {
        /// The URL requested.
        url: String,
        /// The size limit, in bytes.
        limit: usize,
    },
    /// The document at a JWKS URL is not a JWK Set.
    #[error("the document at {url} is not a JWK Set")]
    NotAJwkSet {
        /// The URL requested.
        url: String,
        /// Why it was refused.
        #[source]
        source: KeyError,
    },
    /// The JWK Set holds no key that can verify signatures here (every key was skipped,
    /// or there were none). The keys in use, if any, are kept.
    #[error("the JWK Set at {url} holds no usable signing key ({skipped} skipped)")]
    NoUsableKeys {
        /// The URL requested.
        url: String,
        /// How many keys were skipped as unusable.
        skipped: usize,
    },
    /// The discovery document is not a JSON object with `issuer` and `jwks_uri`
    /// strings.
    #[error("the document at {url} is not OpenID Provider metadata: {reason}")]
    NotProviderMetadata {
        /// The URL requested.
        url: String,
        /// What is missing or malformed.
        reason: String,
    },
    /// The discovery document names another issuer than the one asked for (OpenID
    /// Connect Discovery §4.3: they must be identical, character for character).
    #[error("the discovery document names the issuer {found:?}, not {expected:?}")]
    IssuerMismatch {
        /// The issuer asked for.
        expected: String,
        /// The issuer the document names.
        found: String,
    },
}

impl JwksError {
    /// The message with the messages of its sources, for health reports and logs.
    pub(super) fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut source = self.source();
        while let Some(error) = source {
            text.push_str(": ");
            text.push_str(&error.to_string());
            source = error.source();
        }
        text
    }
}
