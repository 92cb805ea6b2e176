//! [`JwtVerifierBuilder`]: every setting of a [`JwtVerifier`](crate::JwtVerifier).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::key::{KeyError, VerificationKey};
use super::key_set::{KeyRing, KeySet};
use super::{
    DEFAULT_LEEWAY_SECS, DEFAULT_MAX_TOKEN_LEN, DEFAULT_MAX_TOKEN_LIFETIME, JwtVerifier, SessionClaim,
    VerifierInner,
};

/// Builds a [`JwtVerifier`](crate::JwtVerifier); see [`JwtVerifier::builder`].
#[derive(Debug, Default)]
#[must_use]
pub struct JwtVerifierBuilder {
    keys: Vec<VerificationKey>,
    key_ring: Option<KeyRing>,
    issuer_keys: Vec<(String, KeyRing)>,
    required_type: Option<String>,
    session_claim: SessionClaim,
    issuers: Vec<String>,
    audiences: Vec<String>,
    leeway_secs: Option<u64>,
    max_lifetime: Option<Duration>,
    max_token_len: Option<usize>,
    allow_missing_iat: bool,
}

impl JwtVerifierBuilder {
    /// Adds a key. Keys with a `kid` are chosen by the token header's `kid`; at most
    /// one key may have none, and it verifies tokens whose `kid` matches no key.
    ///
    /// Keys added here are fixed for the verifier's life; for keys that change while
    /// the service runs, give a [`KeyRing`] instead ([`key_ring`](Self::key_ring)).
    pub fn key(mut self, key: VerificationKey) -> Self {
        self.keys.push(key);
        self
    }

    /// Takes the keys from `ring`, which can be replaced while the service runs (a
    /// rotation, or a JWKS refreshed in the background): the verifier, and every layer
    /// built with it, use the ring's current keys on each request.
    pub fn key_ring(mut self, ring: KeyRing) -> Self {
        self.key_ring = Some(ring);
        self
    }

    /// Accepts tokens from `issuer`, verified with that issuer's own keys (one tenant
    /// of several, each with its own JWKS, say). The token's `iss` picks the ring
    /// before any signature work.
    ///
    /// Like [`issuer`](Self::issuer), this adds `issuer` to the accepted issuers, so
    /// `iss` is checked from then on: tokens of another issuer are accepted only if it
    /// is listed with [`issuer`](Self::issuer) too, and they are verified with the
    /// verifier's own keys ([`key`](Self::key) or [`key_ring`](Self::key_ring)).
    pub fn issuer_keys(mut self, issuer: impl Into<String>, ring: KeyRing) -> Self {
        let issuer = issuer.into();
        self.issuers.push(issuer.clone());
        self.issuer_keys.push((issuer, ring));
        self
    }

    /// Requires the header's `typ` to be `typ` (compared without case, `application/`
    /// optional). With `"at+jwt"`, only access tokens of RFC 9068 are accepted, so an
    /// ID token or a logout token from the same provider, signed with the same keys,
    /// is never taken for an access token (RFC 8725 §3.11).
    pub fn require_type(mut self, typ: impl Into<String>) -> Self {
        self.required_type = Some(typ.into());
        self
    }

    /// Which claim names a token's session for [`revoke_session`](crate::Revoker::revoke_session)
    /// (default [`SessionClaim::Sid`]).
    pub fn session_claim(mut self, claim: SessionClaim) -> Self {
        self.session_claim = claim;
        self
    }

    /// Accepts tokens from this issuer (`iss`); call again to accept several. When
    /// none is set, `iss` is not checked.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuers.push(issuer.into());
        self
    }

    /// Accepts tokens for this audience (`aud`); call again to accept several. When
    /// none is set, tokens that carry an `aud` are refused (as jsonwebtoken does: a
    /// token meant for a named audience is not meant for a service that has none).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Clock skew tolerated on `exp` and `nbf`, in seconds (default
    /// [`DEFAULT_LEEWAY_SECS`]). Revocations last as long as this leeway keeps a token
    /// alive.
    pub fn leeway_secs(mut self, leeway: u64) -> Self {
        self.leeway_secs = Some(leeway);
        self
    }

    /// The longest lifetime (`exp - iat`) a token may have (default
    /// [`DEFAULT_MAX_TOKEN_LIFETIME`]). Set it to the longest lifetime
    /// your issuer uses: "log out everywhere" watermarks are kept exactly this long
    /// (plus leeway), and tokens promising to live longer are refused so that no token
    /// can outlive the watermark that revoked it.
    pub fn max_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.max_lifetime = Some(lifetime);
        self
    }

    /// Accepts tokens without `iat` (by default they are refused).
    ///
    /// Without `iat` nothing says when a token was issued, so "log out everywhere"
    /// and session revocations, which are kept for the maximum lifetime, only hold
    /// for such tokens if the issuer never gives one a longer lifetime than
    /// [`max_token_lifetime`](Self::max_token_lifetime). While a subject or global
    /// watermark exists, tokens without `iat` it could cover are refused. Revoking a
    /// single token (by `jti` or signing input) is exact either way.
    pub fn allow_missing_iat(mut self) -> Self {
        self.allow_missing_iat = true;
        self
    }

    /// Tokens longer than this many bytes are refused unparsed (default
    /// [`DEFAULT_MAX_TOKEN_LEN`]).
    pub fn max_token_len(mut self, bytes: usize) -> Self {
        self.max_token_len = Some(bytes);
        self
    }

    /// Builds the verifier.
    ///
    /// Also makes sure jsonwebtoken has a signature backend (see
    /// [`install_crypto_provider`](crate::install_crypto_provider)).
    pub fn build(self) -> Result<JwtVerifier, KeyError> {
        crate::verify::crypto::install_crypto_provider();
        let leeway_secs = self.leeway_secs.unwrap_or(DEFAULT_LEEWAY_SECS);
        let keys = match (self.key_ring, self.keys.is_empty()) {
            (Some(_), false) => return Err(KeyError::KeysAndKeyRing),
            (Some(ring), true) => ring,
            (None, _) => KeyRing::new(KeySet::new(self.keys)?),
        };
        let mut issuer_keys = HashMap::new();
        for (issuer, ring) in self.issuer_keys {
            issuer_keys.insert(issuer, ring);
        }
        let mut issuers: Vec<String> = Vec::with_capacity(self.issuers.len());
        for issuer in self.issuers {
            if !issuers.contains(&issuer) {
                issuers.push(issuer);
            }
        }
        let max_lifetime = self.max_lifetime.unwrap_or(DEFAULT_MAX_TOKEN_LIFETIME);
        Ok(JwtVerifier {
            inner: Arc::new(VerifierInner {
                keys,
                issuer_keys,
                required_type: self.required_type,
                session_claim: self.session_claim,
                leeway_secs,
                // Rounded up: a lifetime of 1.5 s admits tokens with `exp - iat == 2`.
                max_lifetime_secs: max_lifetime
                    .as_secs()
                    .saturating_add(u64::from(max_lifetime.subsec_nanos() > 0)),
                max_token_len: self.max_token_len.unwrap_or(DEFAULT_MAX_TOKEN_LEN),
                issuers,
                audiences: self.audiences,
                require_iat: !self.allow_missing_iat,
            }),
        })
    }
}
