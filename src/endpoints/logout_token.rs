//! A logout token, validated as OpenID Connect Back-Channel Logout 1.0 §2.6 says, and
//! every way it can be refused.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::store::StoreError;
use crate::verify::token::VerifiedToken;
use crate::verify::{JwtVerifier, VerifyError, same_media_type};

/// The member of the `events` claim that makes a JWT a logout token (§2.4).
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// The explicit type of a logout token (§2.4, registered as `application/logout+jwt`).
const LOGOUT_TYPE: &str = "logout+jwt";

/// Why a back-channel logout request was refused, or could not be acted on.
///
/// The [`Display`](std::fmt::Display) text is the `error_description` of the answer:
/// it names the rule that failed and never a claim's value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogoutError {
    /// The body has no `logout_token` parameter (or an empty one).
    #[error("missing logout_token parameter")]
    MissingToken,
    /// Verification failed: signature (with the provider's keys; `alg: none` and
    /// HMAC keyed with a public key included), `iss`, `aud` (this client), `exp`,
    /// `iat`, lifetime, size.
    #[error("invalid logout token: {0}")]
    Token(#[source] VerifyError),
    /// The provider's signing keys are not loaded (a JWKS not fetched yet): the token
    /// may well be genuine, so the provider must deliver it again (503).
    #[error("the provider's signing keys are unavailable; retry later")]
    KeysUnavailable,
    /// The token's `kid` names no key the provider's keys had when last fetched, and
    /// no fetch could be made since it arrived (the rate limit): a key the provider
    /// just rotated in, likely. 503 with a `Retry-After` of `retry_after`, when the
    /// keys are fetched again.
    #[error("the logout token's signing key is not known yet; retry later")]
    KeyRefreshPending {
        /// When the keys are fetched again (whole seconds).
        retry_after: std::time::Duration,
    },
    /// The `typ` header is neither absent, `JWT`, nor `logout+jwt` (or, with
    /// [`require_explicit_type`](super::BackChannelLogoutBuilder::require_explicit_type),
    /// not `logout+jwt`): an access token (`at+jwt`) or another explicitly typed JWT
    /// sent in place of a logout token.
    #[error("logout token typ must be logout+jwt")]
    WrongType,
    /// No `iat` (required by §2.4 even when the verifier allows tokens without one).
    #[error("logout token has no iat claim")]
    MissingIssuedAt,
    /// No `events` claim holding the back-channel logout member: an ID token or an
    /// access token of the same provider, for the same client, is not a logout token.
    #[error("logout token events claim lacks {BACKCHANNEL_LOGOUT_EVENT}")]
    MissingLogoutEvent,
    /// `events`, or its back-channel logout member, is not a JSON object.
    #[error("logout token events claim and its {BACKCHANNEL_LOGOUT_EVENT} member must be JSON objects")]
    InvalidEvents,
    /// Neither `sub` nor `sid` (nor a non-empty one): nothing says whom to log out.
    #[error("logout token has neither a sub nor a sid claim")]
    NoSubjectOrSession,
    /// A `nonce` claim, which a logout token must not carry (so that it can never pass
    /// for an ID token in an authentication response).
    #[error("logout token must not contain a nonce claim")]
    Nonce,
    /// No `jti`, so a replay could not be told from the original.
    #[error("logout token has no jti claim")]
    MissingTokenId,
    /// A logout token with this `iss` and `jti` was already acted on.
    #[error("logout token already received (replayed jti)")]
    Replayed,
    /// The store failed or timed out: nothing, or not everything, was recorded, so the
    /// provider must deliver the logout again (503).
    #[error("the revocation store is unavailable; retry later")]
    Store(#[source] StoreError),
}

impl LogoutError {
    /// The HTTP status of the answer: 400 for a logout token (or request) that is
    /// refused, as §2.8 says; 503 when this server could not act on a token that may
    /// be valid (store down, provider keys not fetched), so that the provider retries
    /// instead of counting the logout as done.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Store(_) | Self::KeysUnavailable | Self::KeyRefreshPending { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// The `Retry-After` this failure knows better than the receiver's setting.
    pub(crate) fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Self::KeyRefreshPending { retry_after } => Some(*retry_after),
            _ => None,
        }
    }
}

/// A logout token that passed every check but the replay check, which needs the store.
pub(crate) struct LogoutToken {
    pub(crate) verified: VerifiedToken,
    pub(crate) issuer: String,
    pub(crate) jti: String,
    pub(crate) session: Option<String>,
    pub(crate) subject: Option<String>,
}

/// Whether `typ` may head a logout token.
///
/// §2.4 recommends `logout+jwt`, and §4.1 warns that requiring it breaks existing
/// deployments; Keycloak sent `JWT` until 2024 (its issue 28939), which (RFC 7519 §5.1) only says
/// "this is a JWT" and so counts as untyped, as Nimbus and Spring treat it. Any other
/// type names another kind of token and is refused: `at+jwt` is an access token.
fn acceptable_type(typ: Option<&str>, explicit_only: bool) -> bool {
    match typ {
        Some(typ) if same_media_type(typ, LOGOUT_TYPE) => true,
        Some(typ) => !explicit_only && typ.eq_ignore_ascii_case("JWT"),
        None => !explicit_only,
    }
}

/// The `typ` of a token whose signature already verified (so its header is a JSON
/// object; anything unreadable counts as a wrong type, never as untyped).
fn header_type(token: &str) -> Result<Option<String>, LogoutError> {
    #[derive(Deserialize)]
    struct Header {
        #[serde(default)]
        typ: Option<String>,
    }
    let header = token.split('.').next().unwrap_or_default();
    let header = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| LogoutError::WrongType)?;
    let header: Header = serde_json::from_slice(&header).map_err(|_| LogoutError::WrongType)?;
    Ok(header.typ)
}

/// Validates `raw` as §2.6 lists it: signature, `alg`, `iss`, `aud`, `iat`, `exp` (the
/// verifier, asking the provider for fresh keys once on an unknown `kid`), then `typ`,
/// `iat` present, `events`, `sub`/`sid`, no `nonce`, `jti` present.
pub(crate) async fn validate(
    verifier: &JwtVerifier,
    raw: &str,
    explicit_only: bool,
) -> Result<LogoutToken, LogoutError> {
    let verified = verifier
        .verify_refreshing(raw)
        .await
        .map_err(|error| match error {
            VerifyError::KeyRefreshPending { retry_after } => LogoutError::KeyRefreshPending { retry_after },
            error if error.is_server_side() => LogoutError::KeysUnavailable,
            error => LogoutError::Token(error),
        })?;
    if !acceptable_type(header_type(raw)?.as_deref(), explicit_only) {
        return Err(LogoutError::WrongType);
    }
    if verified.issued_at().is_none() {
        return Err(LogoutError::MissingIssuedAt);
    }
    // The payload is a JSON object (the verifier checked); read it whole, since the
    // rules below are about claims the registered set does not have.
    let claims: Map<String, Value> = verified
        .claims()
        .map_err(|_| LogoutError::Token(VerifyError::Malformed))?;
    match claims.get("events") {
        Some(Value::Object(events)) => match events.get(BACKCHANNEL_LOGOUT_EVENT) {
            Some(Value::Object(_)) => {}
            Some(_) => return Err(LogoutError::InvalidEvents),
            None => return Err(LogoutError::MissingLogoutEvent),
        },
        Some(_) => return Err(LogoutError::InvalidEvents),
        None => return Err(LogoutError::MissingLogoutEvent),
    }
    // Read from the payload, not `VerifiedToken::session_id`: the verifier may be set to
    // read `session_state`, but a logout token's session is `sid` (§2.4). The verifier
    // has already refused non-string `sub` and `sid`.
    let text = |name: &str| {
        claims
            .get(name)
            .and_then(Value::as_str)
            .filter(|value| !value.is_empty())
            .map(str::to_owned)
    };
    let (session, subject) = (text("sid"), text("sub"));
    if session.is_none() && subject.is_none() {
        return Err(LogoutError::NoSubjectOrSession);
    }
    // Present at all, even `null`: §2.4 says the claim MUST NOT be used.
    if claims.contains_key("nonce") {
        return Err(LogoutError::Nonce);
    }
    let jti = verified.token_id().ok_or(LogoutError::MissingTokenId)?.to_owned();
    // The verifier accepts only configured issuers, and requires one (checked when the
    // receiver is built), so `iss` is there.
    let issuer = verified
        .issuer()
        .ok_or(LogoutError::Token(VerifyError::MissingClaim("iss")))?
        .to_owned();
    Ok(LogoutToken {
        verified,
        issuer,
        jti,
        session,
        subject,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untyped_jwt_and_logout_types_are_accepted_others_refused() {
        for typ in [
            None,
            Some("JWT"),
            Some("jwt"),
            Some("logout+jwt"),
            Some("application/logout+JWT"),
        ] {
            assert!(acceptable_type(typ, false), "{typ:?}");
        }
        for typ in ["at+jwt", "application/at+jwt", "secevent+jwt", "", "logout"] {
            assert!(!acceptable_type(Some(typ), false), "{typ:?}");
        }
    }

    #[test]
    fn explicit_typing_accepts_only_logout_jwt() {
        assert!(acceptable_type(Some("logout+jwt"), true));
        assert!(!acceptable_type(Some("JWT"), true));
        assert!(!acceptable_type(None, true));
    }

    #[test]
    fn server_side_failures_are_503_the_rest_400() {
        assert_eq!(
            LogoutError::KeysUnavailable.status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            LogoutError::Store(StoreError::msg("down")).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            LogoutError::Token(VerifyError::BadSignature).status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(LogoutError::Replayed.status(), StatusCode::BAD_REQUEST);
    }
}
