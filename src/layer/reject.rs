//! Why a request is refused, and how that becomes a response.

use http::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use std::time::Duration;

use http::{HeaderMap, HeaderValue, Response, StatusCode};

use crate::layer::extract::MalformedRequest;
use crate::store::RevokedBy;
use crate::verify::VerifyError;

/// Why [`RevocationLayer`](crate::RevocationLayer) refused a request.
///
/// Every rejection response carries a clone of it in its extensions, so outer layers
/// (logging, metrics) can tell the reasons apart.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// The request carries no token.
    #[error("no bearer token")]
    MissingToken,
    /// The credentials are malformed or ambiguous.
    #[error("{0}")]
    MalformedRequest(MalformedRequest),
    /// The token failed verification.
    #[error("{0}")]
    InvalidToken(VerifyError),
    /// The token is genuine but revoked.
    #[error("token revoked")]
    Revoked(RevokedBy),
    /// The store could not answer in time and the layer fails closed.
    #[error("revocation status unavailable")]
    StoreUnavailable,
}

impl Rejection {
    /// The HTTP status of the default response: 400, 401 or 503.
    ///
    /// A store outage is a 503, never a 401: a 401 would tell every client its
    /// credentials are bad, and log all of them out during a Redis blip. So are
    /// signing keys that could not be fetched yet ([`VerifyError::KeysUnavailable`]).
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MalformedRequest(_) => StatusCode::BAD_REQUEST,
            Self::InvalidToken(error) if error.is_server_side() => StatusCode::SERVICE_UNAVAILABLE,
            Self::MissingToken | Self::InvalidToken(_) | Self::Revoked(_) => StatusCode::UNAUTHORIZED,
            Self::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The RFC 6750 `WWW-Authenticate` challenge, when the status calls for one.
    ///
    /// A request with no token gets a bare `Bearer` challenge (RFC 6750 §3.1: no
    /// error code when no credentials were offered).
    pub fn www_authenticate(&self) -> Option<HeaderValue> {
        let error = match self {
            Self::MissingToken => return Some(HeaderValue::from_static("Bearer")),
            Self::MalformedRequest(_) => "invalid_request",
            Self::InvalidToken(error) if error.is_server_side() => return None,
            Self::InvalidToken(_) | Self::Revoked(_) => "invalid_token",
            Self::StoreUnavailable => return None,
        };
        // Descriptions are fixed ASCII texts without quotes or backslashes, so they
        // are valid quoted-strings as they are.
        let value = format!(r#"Bearer error="{error}", error_description="{self}""#);
        HeaderValue::from_str(&value).ok()
    }

    /// How long a client should wait before trying again, for a 503: the time until
    /// the signing keys are fetched again for
    /// [`VerifyError::KeyRefreshPending`], else one second. `None` for the other
    /// statuses, which a retry would not change.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::InvalidToken(error) if error.is_server_side() => {
                Some(error.retry_after().unwrap_or(Duration::from_secs(1)))
            }
            Self::StoreUnavailable => Some(Duration::from_secs(1)),
            _ => None,
        }
    }

    /// The gRPC status code of the default gRPC response: 16 (`UNAUTHENTICATED`), or
    /// 14 (`UNAVAILABLE`) when the store is unavailable.
    pub fn grpc_status(&self) -> u16 {
        match self.status() {
            StatusCode::SERVICE_UNAVAILABLE => 14,
            _ => 16,
        }
    }
}

/// Turns a [`Rejection`] into a response.
///
/// Implemented by [`DefaultRejection`] and by any
/// `Fn(&Rejection, &HeaderMap) -> Response<B>` closure, which is given the request's
/// headers (to answer in the client's format, say). Such a closure names its
/// parameter types, since the body type `B` is only known once the layer wraps a
/// service. Axum users have `RevocationLayer::with_rejection_response` (feature
/// `axum`), whose closure returns any `impl IntoResponse` and needs no annotations;
/// tonic users have `RevocationLayer::with_status_rejection` (feature `tonic`).
///
/// ```
/// use http::{HeaderMap, Response};
/// use tower_jwt_revoke::store::InMemoryStore;
/// use tower_jwt_revoke::{JwtVerifier, Rejection, RevocationLayer, VerificationKey};
///
/// # let verifier = JwtVerifier::builder()
/// #     .key(VerificationKey::hmac(jsonwebtoken::Algorithm::HS256, b"secret").unwrap())
/// #     .build().unwrap();
/// let layer = RevocationLayer::new(verifier, InMemoryStore::new()).with_rejection(
///     |rejection: &Rejection, _request: &HeaderMap| {
///         Response::builder()
///             .status(rejection.status())
///             .header("content-type", "application/json")
///             .body(format!(r#"{{"error":"{rejection}"}}"#))
///             .unwrap()
///     },
/// );
/// ```
pub trait OnRejection<B>: Send + Sync + 'static {
    /// Builds the response for `rejection`, given the request's headers.
    fn on_rejection(&self, rejection: &Rejection, request_headers: &HeaderMap) -> Response<B>;
}

impl<B, F> OnRejection<B> for F
where
    F: Fn(&Rejection, &HeaderMap) -> Response<B> + Send + Sync + 'static,
{
    fn on_rejection(&self, rejection: &Rejection, request_headers: &HeaderMap) -> Response<B> {
        self(rejection, request_headers)
    }
}

/// The default rejection: RFC 6750 responses for HTTP, gRPC status for gRPC.
///
/// - HTTP: the [`status`](Rejection::status), a
///   [`WWW-Authenticate`](Rejection::www_authenticate) challenge on 400 and 401,
///   [`Retry-After`](Rejection::retry_after) on 503 (in whole seconds, at least 1),
///   and an empty body;
/// - gRPC (`content-type: application/grpc…`): HTTP 200 with
///   `content-type: application/grpc`, [`grpc-status`](Rejection::grpc_status) and a
///   `grpc-message`, and an empty body, as gRPC clients expect ("Trailers-Only");
///   an `UNAVAILABLE` carries `grpc-retry-pushback-ms`, the delay a client with a
///   gRPC retry policy waits before its retry.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultRejection;

impl<B: Default> OnRejection<B> for DefaultRejection {
    fn on_rejection(&self, rejection: &Rejection, request_headers: &HeaderMap) -> Response<B> {
        let mut response = Response::new(B::default());
        if is_grpc(request_headers) {
            let headers = response.headers_mut();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
            headers.insert("grpc-status", HeaderValue::from(rejection.grpc_status()));
            if let Ok(message) = HeaderValue::from_str(&percent_encode(&rejection.to_string())) {
                headers.insert("grpc-message", message);
            }
            if let Some(delay) = rejection.retry_after() {
                headers.insert("grpc-retry-pushback-ms", HeaderValue::from(retry_after_ms(delay)));
            }
            return response;
        }
        *response.status_mut() = rejection.status();
        if let Some(challenge) = rejection.www_authenticate() {
            response.headers_mut().insert(WWW_AUTHENTICATE, challenge);
        }
        if let Some(delay) = rejection.retry_after() {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(retry_after_secs(delay)));
        }
        response
    }
}

/// A `Retry-After` in whole seconds: rounded up (a client coming back earlier would be
/// refused again), and at least one (`0` would invite a retry storm).
pub(crate) fn retry_after_secs(delay: Duration) -> u64 {
    let secs = delay
        .as_secs()
        .saturating_add(u64::from(delay.subsec_nanos() > 0));
    secs.max(1)
}

/// The same delay in milliseconds, for `grpc-retry-pushback-ms`.
pub(crate) fn retry_after_ms(delay: Duration) -> u64 {
    retry_after_secs(delay).saturating_mul(1000)
}

/// Whether the request is a gRPC call.
pub(crate) fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/grpc"))
}

/// gRPC's `grpc-message` encoding: bytes outside printable ASCII, and `%`, as `%XX`.
fn percent_encode(message: &str) -> String {
    let mut encoded = String::with_capacity(message.len());
    for byte in message.bytes() {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_follow_rfc_6750() {
        assert_eq!(Rejection::MissingToken.www_authenticate().unwrap(), "Bearer");
        assert_eq!(
            Rejection::Revoked(RevokedBy::Token).www_authenticate().unwrap(),
            r#"Bearer error="invalid_token", error_description="token revoked""#
        );
        assert_eq!(
            Rejection::MalformedRequest(MalformedRequest::DuplicateHeader)
                .www_authenticate()
                .unwrap(),
            r#"Bearer error="invalid_request", error_description="more than one credentials header""#
        );
        assert!(Rejection::StoreUnavailable.www_authenticate().is_none());
    }

    #[test]
    fn grpc_messages_are_percent_encoded() {
        assert_eq!(percent_encode("100% sûr"), "100%25 s%C3%BBr");
    }
}
