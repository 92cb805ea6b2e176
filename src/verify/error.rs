//! [`VerifyError`]: why a token was refused.

use std::time::Duration;

/// Why a token was refused by [`JwtVerifier::verify`](crate::JwtVerifier::verify).
///
/// Its [`Display`](std::fmt::Display) text is safe to show a client (it names no
/// claim values) and is what the default rejection puts in `error_description`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Longer than the configured maximum.
    #[error("token too large")]
    TooLarge,
    /// Not a JWS in compact form, or its parts do not decode.
    #[error("malformed token")]
    Malformed,
    /// The header's `alg` is not the one the selected key verifies (this covers
    /// `alg: none`).
    #[error("algorithm not allowed")]
    AlgorithmNotAllowed,
    /// No configured key matches the header's `kid`.
    #[error("unknown key id")]
    UnknownKey,
    /// The signature does not verify.
    #[error("invalid signature")]
    BadSignature,
    /// `exp` is in the past, beyond the leeway.
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future, beyond the leeway.
    #[error("token not yet valid")]
    NotYetValid,
    /// `iss` is not an accepted issuer.
    #[error("wrong issuer")]
    WrongIssuer,
    /// `aud` names none of the accepted audiences.
    #[error("wrong audience")]
    WrongAudience,
    /// A required claim is missing.
    #[error("missing claim {0}")]
    MissingClaim(&'static str),
    /// A claim has the wrong type.
    #[error("claim {0} has an invalid format")]
    InvalidClaim(&'static str),
    /// The application's own claims `C` could not be read from the payload.
    #[error("token claims do not match what the application expects")]
    CustomClaims,
    /// `exp - iat` exceeds the configured maximum token lifetime.
    #[error("token lifetime exceeds the accepted maximum")]
    LifetimeTooLong,
    /// The header's `typ` is not the required one (an ID token or a logout token
    /// presented as an access token, say).
    #[error("token type not accepted")]
    WrongType,
    /// No signing keys are available yet (a JWKS not fetched so far): the token may be
    /// genuine, so this is the server's failure, answered 503, not 401.
    #[error("signing keys unavailable")]
    KeysUnavailable,
    /// No key matches the header's `kid`, and no fetch of the provider's keys could
    /// be made since the token arrived (the rate limit of a JWKS source's
    /// `unknown_kid_interval`, or a provider that failed): the token may be signed with a key the provider just
    /// published. A 503: the keys are fetched again by themselves within
    /// `retry_after`, the `Retry-After` of the answer.
    #[error("unknown key id; the signing keys are fetched again shortly")]
    KeyRefreshPending {
        /// When to try again: the keys are fetched again by then (whole seconds).
        retry_after: Duration,
    },
}

impl VerifyError {
    /// Whether this failure is the server's (its keys are unavailable or about to be
    /// fetched again), not the token's: answered 503, never 401.
    pub fn is_server_side(&self) -> bool {
        matches!(self, Self::KeysUnavailable | Self::KeyRefreshPending { .. })
    }

    /// When a client should try again, when the failure says: for
    /// [`KeyRefreshPending`](Self::KeyRefreshPending), the time until the keys are
    /// fetched again.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::KeyRefreshPending { retry_after } => Some(*retry_after),
            _ => None,
        }
    }
}
