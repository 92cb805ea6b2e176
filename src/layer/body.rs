//! [`RevocableBody`]: a response body that ends when its token is refused, and the
//! layer's [`StreamEnding`] option that wraps responses in it.
//!
//! A unary response pays (nearly) nothing: the waiter is registered only when the
//! inner body first has nothing ready (a stream waiting for its next message), so a
//! body that is written at once never touches the registry.

use std::any::Any;
use std::error::Error as StdError;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::store::watch::Watch;
use crate::store::{Refusal, RevocationQuery, Revoked};

/// A boxed error, as [`RevocableBody`] yields them.
type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Which responses the layer wraps in a [`RevocableBody`], so that they end by
/// themselves when their token is refused (see
/// [`RevocationLayer::with_stream_ending`](crate::RevocationLayer::with_stream_ending)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreamEnding {
    /// gRPC responses (`content-type: application/grpc…`) with a `tonic` body: a
    /// server stream ends with `grpc-status: 16` (`UNAUTHENTICATED`). The default.
    #[default]
    Grpc,
    /// gRPC responses, and HTTP responses with an axum body (feature `axum`): an HTTP
    /// body then fails, which closes an HTTP/1 connection and resets an HTTP/2 stream.
    GrpcAndHttp,
    /// None: handlers end their streams themselves with
    /// [`VerifiedToken::revoked`](crate::VerifiedToken::revoked).
    Off,
}

/// The error an HTTP [`RevocableBody`] fails with when its token is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyRefused(pub Refusal);

impl fmt::Display for BodyRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "response ended: {}", self.0)
    }
}

impl StdError for BodyRefused {}

/// What the layer keeps to end a response: the parts of its token's future, which is
/// made only if the body ever waits.
pub(crate) struct Ending {
    pub(crate) watch: Arc<Watch>,
    pub(crate) query: RevocationQuery,
    pub(crate) refused_from: u64,
    pub(crate) http: bool,
}

impl Ending {
    /// Wraps `response`'s body when it is one the layer can wrap without changing its
    /// type (`tonic::body::Body`, `axum::body::Body`) and one `StreamEnding` names.
    pub(crate) fn wrap<B: 'static>(self, response: &mut Response<B>) {
        let grpc = response
            .headers()
            .get(CONTENT_TYPE)
            .is_some_and(|value| value.as_bytes().starts_with(b"application/grpc"));
        if !grpc && (!self.http || response.status() == http::StatusCode::SWITCHING_PROTOCOLS) {
            return;
        }
        #[cfg_attr(not(any(feature = "tonic", feature = "axum")), allow(unused_variables))]
        let (body, ending) = (response.body_mut() as &mut dyn Any, self);
        #[cfg(feature = "tonic")]
        #[cfg_attr(not(feature = "axum"), allow(unused_variables))]
        let ending = match body.downcast_mut::<tonic::body::Body>() {
            Some(body) => {
                let inner = std::mem::take(body);
                *body = tonic::body::Body::new(RevocableBody::lazy(inner, ending, grpc));
                return;
            }
            None => ending,
        };
        #[cfg(feature = "axum")]
        if let Some(body) = body.downcast_mut::<axum_core::body::Body>() {
            let inner = std::mem::take(body);
            *body = axum_core::body::Body::new(RevocableBody::lazy(inner, ending, grpc));
        }
    }
}

pin_project! {
    /// A response body that ends when its token is refused (revoked, or expired).
    ///
    /// A gRPC body ends with trailers `grpc-status: 16` (`UNAUTHENTICATED`) and a
    /// `grpc-message` saying why; an HTTP body fails with [`BodyRefused`], on which
    /// hyper closes an HTTP/1 connection and resets an HTTP/2 stream. Frames the inner
    /// body has ready are passed on first; the token is watched only while the inner
    /// body waits, and only from the first time it does.
    ///
    /// The layer wraps `tonic` and `axum` bodies itself (see
    /// [`StreamEnding`]); with another body type, wrap it in the handler:
    ///
    /// ```
    /// use http::Response;
    /// use tower_jwt_revoke::{RevocableBody, VerifiedToken};
    ///
    /// fn respond<B>(token: &VerifiedToken, body: B) -> Response<RevocableBody<B>> {
    ///     Response::new(RevocableBody::new(body, token.revoked(), false))
    /// }
    /// ```
    pub struct RevocableBody<B> {
        #[pin]
        inner: B,
        watch: Watching,
        grpc: bool,
    }
}

enum Watching {
    /// Not yet waiting: the future is made the first time the body waits.
    #[cfg_attr(not(any(feature = "tonic", feature = "axum")), allow(dead_code))]
    Lazy(Option<Ending>),
    Started(Revoked),
    /// The refusal was sent; nothing more.
    Ended,
}

impl<B> RevocableBody<B> {
    /// `body`, ended when `revoked` resolves: with gRPC trailers when `grpc`, else
    /// with an error.
    pub fn new(body: B, revoked: Revoked, grpc: bool) -> Self {
        Self {
            inner: body,
            watch: Watching::Started(revoked),
            grpc,
        }
    }

    #[cfg_attr(not(any(feature = "tonic", feature = "axum")), allow(dead_code))]
    fn lazy(body: B, ending: Ending, grpc: bool) -> Self {
        Self {
            inner: body,
            watch: Watching::Lazy(Some(ending)),
            grpc,
        }
    }

    /// The wrapped body.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }

    /// The wrapped body, unwrapped.
    pub fn into_inner(self) -> B {
        self.inner
    }
}

impl<B: fmt::Debug> fmt::Debug for RevocableBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevocableBody")
            .field("inner", &self.inner)
            .field("grpc", &self.grpc)
            .finish_non_exhaustive()
    }
}

impl<B> Body for RevocableBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        if let Watching::Ended = this.watch {
            return Poll::Ready(None);
        }
        // What the body has ready goes first, checked or not: a refusal ends what
        // follows, it does not take back what was sent.
        match this.inner.poll_frame(cx) {
            Poll::Ready(frame) => return Poll::Ready(frame.map(|frame| frame.map_err(Into::into))),
            Poll::Pending => {}
        }
        // The body waits: now it is a stream, and worth watching.
        if let Watching::Lazy(ending) = this.watch
            && let Some(Ending {
                watch,
                query,
                refused_from,
                ..
            }) = ending.take()
        {
            *this.watch = Watching::Started(Revoked::new(Some(watch), query, refused_from));
        }
        let Watching::Started(revoked) = this.watch else {
            return Poll::Pending;
        };
        let Poll::Ready(refusal) = Pin::new(revoked).poll(cx) else {
            return Poll::Pending;
        };
        *this.watch = Watching::Ended;
        tracing::debug!(%refusal, "ended a response whose token is refused");
        if *this.grpc {
            Poll::Ready(Some(Ok(Frame::trailers(refused_trailers(refusal)))))
        } else {
            Poll::Ready(Some(Err(Box::new(BodyRefused(refusal)))))
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.watch, Watching::Ended) || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        // Ending early is an error (HTTP) or trailers after what was sent (gRPC, whose
        // bodies have no exact size): the inner body's hint stays right.
        self.inner.size_hint()
    }
}

/// `grpc-status: 16` and why (a fixed ASCII text: no percent-encoding needed).
fn refused_trailers(refusal: Refusal) -> HeaderMap {
    let mut trailers = HeaderMap::with_capacity(2);
    trailers.insert("grpc-status", HeaderValue::from_static("16"));
    let message = match refusal {
        Refusal::Expired => "token expired",
        _ => "token revoked",
    };
    trailers.insert("grpc-message", HeaderValue::from_static(message));
    trailers
}
