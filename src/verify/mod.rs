//! Signature and claim verification, on jsonwebtoken's primitives.
//!
//! [`JwtVerifier`] and its builder here; the keys in `key.rs` (one key) and
//! `key_set.rs` (the set chosen by `kid`, and the ring that replaces it at run time);
//! one token's decoding and validation in `decode.rs`.
//!
//! Also here: the verified token (`token.rs`), claims read without verifying
//! (`unverified.rs`), HMAC keys prepared once (`hmac.rs`), the signature backend
//! (`crypto.rs`) and errors (`error.rs`). May use: jsonwebtoken, the key rings. Used by:
//! the layer, the revoker, the endpoints, the key sources.

mod builder;
pub(crate) mod crypto;
mod decode;
mod error;
mod hmac;
mod key;
mod key_set;
pub(crate) mod token;
pub(crate) mod unverified;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use self::builder::JwtVerifierBuilder;
#[cfg(feature = "endpoints")]
pub(crate) use self::decode::same_media_type;
use self::decode::{Failure, Purpose, b64};
pub use self::error::VerifyError;
pub use self::key::{KeyError, VerificationKey};
#[cfg(feature = "jwks")]
pub(crate) use self::key_set::WeakKeyRing;
pub(crate) use self::key_set::{Asking, Refresh, Refreshed};
pub use self::key_set::{KeyRing, KeySet, SkippedKey};
use crate::verify::token::VerifiedToken;

/// Tokens longer than this are refused before any parsing (8 KiB, a generous bound
/// for a JWT; browsers cap a cookie at 4 KiB).
pub const DEFAULT_MAX_TOKEN_LEN: usize = 8 * 1024;
/// Leeway for `exp` and `nbf`, in seconds, unless configured.
pub const DEFAULT_LEEWAY_SECS: u64 = 30;
/// The longest token lifetime accepted unless configured: 24 hours.
pub const DEFAULT_MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// Verifies JWTs: signature, `exp`, `nbf`, `iss`, `aud`, and the lifetime bound that
/// lets watermarks ("log out everywhere") expire safely.
///
/// Cheap to clone: the configuration is shared.
///
/// ```
/// use jsonwebtoken::Algorithm;
/// use tower_jwt_revoke::{JwtVerifier, VerificationKey};
///
/// let verifier = JwtVerifier::builder()
///     .key(VerificationKey::hmac(Algorithm::HS256, b"a long random secret, 32+ bytes!")?)
///     .issuer("https://auth.example.com")
///     .audience("my-api")
///     .leeway_secs(30)
///     .build()?;
/// # Ok::<(), tower_jwt_revoke::KeyError>(())
/// ```
#[derive(Clone, Debug)]
pub struct JwtVerifier {
    inner: Arc<VerifierInner>,
}

#[derive(Debug)]
struct VerifierInner {
    keys: KeyRing,
    issuer_keys: HashMap<String, KeyRing>,
    required_type: Option<String>,
    session_claim: SessionClaim,
    leeway_secs: u64,
    max_lifetime_secs: u64,
    max_token_len: usize,
    issuers: Vec<String>,
    audiences: Vec<String>,
    require_iat: bool,
}

impl JwtVerifier {
    /// Starts building a verifier.
    ///
    /// Also installs this crate's signature backend as jsonwebtoken's process-wide
    /// default when none is (see [`install_crypto_provider`](crate::install_crypto_provider)),
    /// so the application's own `jsonwebtoken::encode` works even when Cargo compiled
    /// both backends in.
    pub fn builder() -> JwtVerifierBuilder {
        crate::verify::crypto::install_crypto_provider();
        JwtVerifierBuilder::default()
    }

    /// Verifies `token` and decodes its registered claims; the application reads its
    /// own later, with [`VerifiedToken::claims`].
    pub fn verify(&self, token: &str) -> Result<VerifiedToken, VerifyError> {
        match self.decode(token, Purpose::Request) {
            Ok(verified) => Ok(verified),
            Err(Failure::Verify(error)) => Err(error),
            Err(Failure::ExpiredButGenuine) => Err(VerifyError::Expired),
        }
    }

    /// Verifies `token` like [`verify`](Self::verify); when that fails only because
    /// its key is unknown (or no keys were loaded yet) and its keys come from a source
    /// that can refresh them (a JWKS), asks for a refresh once (rate limited by the
    /// source) and tries again. A token signed with a key the provider just published
    /// is then accepted on first sight.
    ///
    /// A `kid` still unknown because the rate limit (or a failing provider) allowed no
    /// fetch since the token arrived is [`VerifyError::KeyRefreshPending`], a 503
    /// with the `Retry-After` of the fetch the source then makes by itself; only a
    /// `kid` missing from keys fetched after the token arrived is
    /// [`VerifyError::UnknownKey`].
    pub async fn verify_refreshing(&self, token: &str) -> Result<VerifiedToken, VerifyError> {
        self.refreshing(token, |token| self.verify(token)).await
    }

    /// Runs `verify`; when it fails for want of the token's key and a source can
    /// refresh the keys, refreshes once and runs it again (see
    /// [`verify_refreshing`](Self::verify_refreshing)).
    pub(crate) async fn refreshing<T>(
        &self,
        token: &str,
        verify: impl Fn(&str) -> Result<T, VerifyError>,
    ) -> Result<T, VerifyError> {
        match verify(token) {
            Err(error @ (VerifyError::UnknownKey | VerifyError::KeysUnavailable)) => {
                let Some(refresher) = self.refresher_for(token) else {
                    return Err(error);
                };
                let refreshed = refresher.refresh(self.asking(token)).await;
                match (verify(token), refreshed) {
                    (Err(VerifyError::UnknownKey), Refreshed::Later(retry_after)) => {
                        Err(VerifyError::KeyRefreshPending { retry_after })
                    }
                    (outcome, _) => outcome,
                }
            }
            outcome => outcome,
        }
    }

    /// What a key source is told of `token` when it asks for fresh keys: its `kid`,
    /// and when it was issued at the latest (`iat` plus the leeway), unverified.
    fn asking(&self, token: &str) -> Asking {
        #[derive(serde::Deserialize)]
        struct Header {
            #[serde(default)]
            kid: Option<String>,
        }
        #[derive(serde::Deserialize)]
        struct Claims {
            #[serde(default)]
            iat: Option<serde_json::Number>,
        }
        let mut parts = token.split('.');
        let decoded = |part: Option<&str>| part.and_then(|part| b64(part).ok());
        let kid = decoded(parts.next())
            .and_then(|header| serde_json::from_slice::<Header>(&header).ok())
            .and_then(|header| header.kid);
        let issued_before = decoded(parts.next())
            .and_then(|payload| serde_json::from_slice::<Claims>(&payload).ok())
            .and_then(|claims| claims.iat?.as_f64())
            .filter(|iat| iat.is_finite() && *iat >= 0.0)
            .and_then(|iat| Duration::try_from_secs_f64(iat).ok())
            .and_then(|iat| iat.checked_add(Duration::from_secs(self.inner.leeway_secs)))
            .and_then(|latest| UNIX_EPOCH.checked_add(latest));
        Asking { kid, issued_before }
    }

    /// The refresher of the ring that verifies `token`, if that ring can refresh.
    pub(crate) fn refresher_for(&self, token: &str) -> Option<&Arc<dyn Refresh>> {
        let payload = token.split('.').nth(1).and_then(|part| b64(part).ok())?;
        self.ring_for(&payload).refresher()
    }

    /// The verifier's own keys (those of [`key`](JwtVerifierBuilder::key) or
    /// [`key_ring`](JwtVerifierBuilder::key_ring)): [`KeyRing::replace`] on it rotates
    /// the keys of every layer built with this verifier, with nothing rebuilt.
    pub fn key_ring(&self) -> &KeyRing {
        &self.inner.keys
    }

    /// The keys of `issuer`, when it was given its own with
    /// [`issuer_keys`](JwtVerifierBuilder::issuer_keys).
    pub fn issuer_key_ring(&self, issuer: &str) -> Option<&KeyRing> {
        self.inner.issuer_keys.get(issuer)
    }

    /// Two accepted issuers whose tokens are verified with the same keys, if any: the
    /// verifier's own ring serving two issuers that have no ring of their own, or one
    /// ring given to two issuers. Either issuer's key then signs tokens that pass for
    /// the other's.
    #[cfg(feature = "endpoints")]
    pub(crate) fn issuers_sharing_keys(&self) -> Option<(&str, &str)> {
        let inner = &*self.inner;
        let ring_of = |issuer: &str| inner.issuer_keys.get(issuer).unwrap_or(&inner.keys);
        // Issuers are few (a configuration, not input): pairwise is fine here.
        inner.issuers.iter().enumerate().find_map(|(i, first)| {
            inner.issuers[i + 1..]
                .iter()
                .find(|second| ring_of(first).same_ring(ring_of(second)))
                .map(|second| (first.as_str(), second.as_str()))
        })
    }

    /// The issuers accepted (`iss`); empty when `iss` is not checked.
    pub fn issuers(&self) -> &[String] {
        &self.inner.issuers
    }

    /// The audiences accepted (`aud`); empty when only tokens without `aud` are.
    pub fn audiences(&self) -> &[String] {
        &self.inner.audiences
    }

    /// The `typ` header every token must carry
    /// ([`require_type`](JwtVerifierBuilder::require_type)), if any.
    pub fn required_type(&self) -> Option<&str> {
        self.inner.required_type.as_deref()
    }

    /// Verifies a token for revocation: like [`verify`](Self::verify), but a token
    /// that is genuine and merely expired is `Ok(None)` (nothing needs revoking), and
    /// one not valid yet (`nbf`, `iat` ahead) is revocable before it ever is.
    pub(crate) fn verify_for_revocation(&self, token: &str) -> Result<Option<VerifiedToken>, VerifyError> {
        match self.decode(token, Purpose::Revocation) {
            Ok(verified) => Ok(Some(verified)),
            Err(Failure::ExpiredButGenuine) => Ok(None),
            Err(Failure::Verify(error)) => Err(error),
        }
    }

    /// Which claim names a token's session.
    pub(crate) fn session_claim(&self) -> SessionClaim {
        self.inner.session_claim
    }

    /// The `exp`/`nbf` leeway, in seconds.
    pub fn leeway_secs(&self) -> u64 {
        self.inner.leeway_secs
    }

    /// The longest token lifetime accepted, in whole seconds.
    pub fn max_token_lifetime_secs(&self) -> u64 {
        self.inner.max_lifetime_secs
    }

    /// The issuer to hash subjects and sessions under when none is given: the
    /// configured issuer when there is exactly one.
    pub(crate) fn sole_issuer(&self) -> Option<&str> {
        match self.inner.issuers.as_slice() {
            [only] => Some(only),
            _ => None,
        }
    }

    /// How long a revocation must last for a token expiring at `exp` (seconds since
    /// the epoch) to stay refused, measured from `now`; `None` once no verifier would
    /// accept it.
    ///
    /// The verifier (like jsonwebtoken) refuses a token once `exp < floor(now) - leeway`, so it still
    /// accepts it during the whole second `exp + leeway`: the revocation must last
    /// until `exp + leeway + 1`.
    pub(crate) fn revocation_ttl(&self, exp: u64, now: SystemTime) -> Option<Duration> {
        let last_accepted = exp.saturating_add(self.inner.leeway_secs).saturating_add(1);
        // An `exp` beyond what the clock type holds: kept as long as a store can keep
        // anything, rather than overflowing.
        let Some(until) = UNIX_EPOCH.checked_add(Duration::from_secs(last_accepted)) else {
            return Some(Duration::from_secs(u64::from(u32::MAX)));
        };
        let remaining = until.duration_since(now).ok().filter(|d| !d.is_zero())?;
        // Rounded up to whole seconds: stores keep TTLs in seconds, never shorter.
        let secs = remaining.as_secs() + u64::from(remaining.subsec_nanos() > 0);
        Some(Duration::from_secs(secs))
    }

    /// How long a session revocation must last: a watermark's time plus one leeway,
    /// since a token of the session may come from an issuer whose clock runs up to the
    /// leeway ahead (its `iat`, and so its `exp`, that much later than our clock says).
    pub(crate) fn session_ttl(&self) -> Duration {
        self.watermark_ttl()
            .saturating_add(Duration::from_secs(self.inner.leeway_secs))
    }

    /// How long a subject, session or global revocation must last: every token it
    /// covers was issued before it, and so expires within the maximum lifetime.
    pub(crate) fn watermark_ttl(&self) -> Duration {
        Duration::from_secs(
            self.inner
                .max_lifetime_secs
                .saturating_add(self.inner.leeway_secs)
                .saturating_add(1),
        )
    }
}

/// Which claim carries a token's session id, for session revocations
/// ([`Revoker::revoke_session`](crate::Revoker::revoke_session), back-channel logout).
///
/// OpenID Connect names it `sid` (Front- and Back-Channel Logout); Keycloak's access
/// tokens carry `sid` and, in older versions, only `session_state`, with the same
/// value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionClaim {
    /// `sid` (the default).
    #[default]
    Sid,
    /// `session_state` (Keycloak before version 18 or so).
    SessionState,
    /// `sid`, or `session_state` when the token has no `sid`.
    SidOrSessionState,
}
