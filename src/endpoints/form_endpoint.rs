//! What both endpoints are underneath: a Tower service that reads an
//! `application/x-www-form-urlencoded` body within its [`Limits`] (answering 405, 413,
//! 415, 408 or 400 itself when the request is not one), then hands the form to the
//! endpoint's own protocol. Each endpoint says only what it does with a form
//! ([`FormEndpoint`]); the service, the body reading and the builders' limit settings
//! are written once, here.

use std::future::Future;

use http::Response;
use http::request::Parts;

use super::Limits;
use super::form::{self, Form};
use crate::store::BoxError;

/// An endpoint's protocol, given a form read within its limits.
pub(crate) trait FormEndpoint: Clone + Send + Sync + 'static {
    /// How much of a request the endpoint reads, and the `Retry-After` of its 503s.
    fn limits(&self) -> Limits;

    /// The answer to a form, with the request's head (client authentication reads
    /// its headers).
    fn respond(self, parts: Parts, form: Form) -> impl Future<Output = Response<String>> + Send;
}

/// Reads the form of `request`, then lets `endpoint` answer it.
pub(crate) async fn answer<E, B>(endpoint: E, request: http::Request<B>) -> Response<String>
where
    E: FormEndpoint,
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    match form::read(request, endpoint.limits()).await {
        Ok((parts, form)) => endpoint.respond(parts, form).await,
        Err(refused) => refused.into_response(),
    }
}

/// `impl Service<Request<B>>` for a [`FormEndpoint`]: ready at once, never `Err`.
macro_rules! form_service {
    ($endpoint:ty) => {
        impl<B> tower_service::Service<http::Request<B>> for $endpoint
        where
            B: http_body::Body + Send + 'static,
            B::Data: Send,
            B::Error: Into<$crate::store::BoxError>,
        {
            type Response = http::Response<String>;
            type Error = std::convert::Infallible;
            type Future = $crate::endpoints::EndpointFuture;

            fn poll_ready(
                &mut self,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Result<(), Self::Error>> {
                std::task::Poll::Ready(Ok(()))
            }

            fn call(&mut self, request: http::Request<B>) -> Self::Future {
                $crate::endpoints::EndpointFuture::new($crate::endpoints::form_endpoint::answer(
                    self.clone(),
                    request,
                ))
            }
        }
    };
}

/// The builders' settings of [`Limits`] (their field `limits`).
macro_rules! limit_settings {
    () => {
        /// The largest body read (default
        /// [`DEFAULT_MAX_BODY_LEN`](crate::endpoints::DEFAULT_MAX_BODY_LEN)); larger ones
        /// are answered 413.
        pub fn max_body_len(mut self, bytes: usize) -> Self {
            self.limits.max_body_len = bytes;
            self
        }

        /// How long the body may take to arrive (default
        /// [`DEFAULT_BODY_TIMEOUT`](crate::endpoints::DEFAULT_BODY_TIMEOUT)); after it, 408.
        pub fn body_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.limits.body_timeout = timeout;
            self
        }

        /// The `Retry-After` of a 503, rounded down to whole seconds, at least one
        /// (default [`DEFAULT_RETRY_AFTER`](crate::endpoints::DEFAULT_RETRY_AFTER)).
        pub fn retry_after(mut self, delay: std::time::Duration) -> Self {
            self.limits.retry_after = delay;
            self
        }
    };
}

pub(crate) use {form_service, limit_settings};
