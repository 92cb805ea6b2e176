//! The answers both endpoints give, and the future they give them through.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Response, StatusCode};

/// The future of [`BackChannelLogout`](super::BackChannelLogout) and
/// [`TokenRevocation`](super::TokenRevocation): resolves to their response, never to
/// an error.
///
/// Boxed: an endpoint is called once per logout, not once per request, and reading the
/// body, verifying and writing to the store would otherwise make a deep, unnameable
/// state machine.
pub struct EndpointFuture {
    inner: Pin<Box<dyn Future<Output = Response<String>> + Send>>,
}

impl EndpointFuture {
    pub(super) fn new(future: impl Future<Output = Response<String>> + Send + 'static) -> Self {
        Self {
            inner: Box::pin(future),
        }
    }
}

impl Future for EndpointFuture {
    type Output = Result<Response<String>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx).map(Ok)
    }
}

impl fmt::Debug for EndpointFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndpointFuture").finish_non_exhaustive()
    }
}

/// `Cache-Control: no-store` on every answer: a logout or revocation outcome must
/// never be served from a cache to another request (Back-Channel Logout §2.8, RFC 6749
/// §5.1).
fn no_store(status: StatusCode, body: String) -> Response<String> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// 200 with an empty body: the clients of both protocols read nothing but the status.
pub(super) fn ok() -> Response<String> {
    no_store(StatusCode::OK, String::new())
}

/// An OAuth error (RFC 6749 §5.2): `{"error": code, "error_description": description}`.
pub(super) fn error(status: StatusCode, code: &'static str, description: &str) -> Response<String> {
    let body = serde_json::json!({ "error": code, "error_description": description }).to_string();
    let mut response = no_store(status, body);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// 400 `invalid_request`.
pub(super) fn invalid_request(description: &str) -> Response<String> {
    error(StatusCode::BAD_REQUEST, "invalid_request", description)
}

/// 503 `temporarily_unavailable` with `Retry-After`: the sender must try again, since
/// nothing was recorded.
pub(super) fn unavailable(description: &str, retry_after: Duration) -> Response<String> {
    let mut response = error(
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
        description,
    );
    // At least one second: `Retry-After: 0` would invite a retry storm.
    let secs = retry_after.as_secs().max(1);
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(secs));
    response
}

/// 405 with `Allow: POST` (RFC 9110 §15.5.6 requires the header).
pub(super) fn method_not_allowed() -> Response<String> {
    let mut response = error(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request",
        "this endpoint only accepts POST",
    );
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static("POST"));
    response
}
