//! Authorization on claims, after verification: [`AuthorizeLayer`] answers **403**
//! `insufficient_scope` (RFC 6750 §3.1) when a verified token lacks what a route
//! requires.
//!
//! [`RevocationLayer`](crate::RevocationLayer) answers "who is this, and is the token
//! still good?"; this layer answers "may this token do *this*?", per route. It reads
//! the [`VerifiedToken`] the revocation layer put in the request extensions, so it goes
//! *inside* it:
//!
//! ```
//! use axum::{Router, routing::{get, post}};
//! use tower_jwt_revoke::authorize::{self, AuthorizeLayer};
//! use tower_jwt_revoke::{RevocationLayer, VerifiedToken};
//!
//! fn app(revocation: RevocationLayer) -> Router {
//!     Router::new()
//!         .route("/orders", get(|| async { "orders" }).layer(authorize::require_scope("orders:read")))
//!         .route("/admin", post(|| async { "done" }).layer(authorize::require_role("admin")))
//!         .route(
//!             "/own",
//!             get(|| async { "yours" }).layer(AuthorizeLayer::new(|token: &VerifiedToken| {
//!                 token.subject().is_some_and(|sub| sub.starts_with("user-"))
//!             })),
//!         )
//!         .route_layer(revocation) // outside: verifies and checks revocation first
//! }
//! ```
//!
//! In this folder: the layer and its service (`mod.rs`) and the checks a route may ask
//! for (`checks.rs`). May use: the verified token, the rejections. Used by: applications.

mod checks;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

pub use self::checks::{
    RequireAudience, RequireRole, RequireScope, require_audience, require_client_role, require_role,
    require_scope,
};
use crate::layer::reject::is_grpc;
use crate::verify::token::VerifiedToken;

/// A check a verified token must pass. Closures `Fn(&VerifiedToken) -> bool` are
/// checks; [`require_scope`] and its siblings build the common ones.
pub trait ClaimsCheck: Send + Sync + 'static {
    /// `Ok` when `token` may proceed, else what it lacks.
    fn check(&self, token: &VerifiedToken) -> Result<(), Denied>;
}

impl<F> ClaimsCheck for F
where
    F: Fn(&VerifiedToken) -> bool + Send + Sync + 'static,
{
    fn check(&self, token: &VerifiedToken) -> Result<(), Denied> {
        if self(token) {
            Ok(())
        } else {
            Err(Denied::default())
        }
    }
}

/// Why a token may not proceed: the scope it lacks, when the check is about one (put
/// in the challenge's `scope` attribute, RFC 6750 §3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Denied {
    scope: Option<String>,
}

impl Denied {
    /// Denied for lack of `scope`.
    pub fn missing_scope(scope: impl Into<String>) -> Self {
        Self {
            scope: Some(scope.into()),
        }
    }

    /// The scope the token lacks, if the check named one.
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// The `WWW-Authenticate` challenge: `Bearer error="insufficient_scope"`, with
    /// the `scope` when it is known and fits in a quoted string.
    pub fn challenge(&self) -> HeaderValue {
        let scope = self.scope.as_deref().filter(|scope| {
            scope
                .bytes()
                .all(|b| b == b' ' || (b.is_ascii_graphic() && b != b'"' && b != b'\\'))
        });
        let value = match scope {
            Some(scope) => format!(r#"Bearer error="insufficient_scope", scope="{scope}""#),
            None => r#"Bearer error="insufficient_scope""#.to_owned(),
        };
        HeaderValue::from_str(&value)
            .unwrap_or_else(|_| HeaderValue::from_static(r#"Bearer error="insufficient_scope""#))
    }
}

/// A [`Layer`](https://docs.rs/tower-layer/0.3/tower_layer/trait.Layer.html) that lets a
/// request through only when its [`VerifiedToken`] passes a [`ClaimsCheck`]; see the
/// [module docs](self).
///
/// - token passes: the inner service runs;
/// - token fails: **403** with `WWW-Authenticate: Bearer error="insufficient_scope"`
///   (gRPC: `grpc-status` 7, `PERMISSION_DENIED`), an empty body, and the [`Denied`] in
///   the response extensions;
/// - no verified token (the route is not behind `RevocationLayer`, or it lets anonymous
///   requests through): **401** `WWW-Authenticate: Bearer` (gRPC 16): a token is needed.
#[must_use]
pub struct AuthorizeLayer<Check> {
    check: Arc<Check>,
}

impl<Check: ClaimsCheck> AuthorizeLayer<Check> {
    /// A layer requiring `check`.
    pub fn new(check: Check) -> Self {
        Self {
            check: Arc::new(check),
        }
    }
}

impl<Check> Clone for AuthorizeLayer<Check> {
    fn clone(&self) -> Self {
        Self {
            check: Arc::clone(&self.check),
        }
    }
}

impl<Check> fmt::Debug for AuthorizeLayer<Check> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizeLayer").finish_non_exhaustive()
    }
}

impl<S, Check> Layer<S> for AuthorizeLayer<Check> {
    type Service = AuthorizeService<S, Check>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthorizeService {
            inner,
            check: Arc::clone(&self.check),
        }
    }
}

/// The [`Service`](https://docs.rs/tower-service/0.3/tower_service/trait.Service.html) made by
/// [`AuthorizeLayer`].
pub struct AuthorizeService<S, Check> {
    inner: S,
    check: Arc<Check>,
}

impl<S: Clone, Check> Clone for AuthorizeService<S, Check> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            check: Arc::clone(&self.check),
        }
    }
}

impl<S: fmt::Debug, Check> fmt::Debug for AuthorizeService<S, Check> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizeService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, Check, ReqBody, ResBody> Service<Request<ReqBody>> for AuthorizeService<S, Check>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    Check: ClaimsCheck,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = AuthorizeFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let grpc = is_grpc(request.headers());
        let outcome = match request.extensions().get::<VerifiedToken>() {
            None => Err(None),
            Some(token) => self.check.check(token).map_err(Some),
        };
        match outcome {
            Ok(()) => AuthorizeFuture {
                state: State::Calling {
                    future: self.inner.call(request),
                },
            },
            Err(denied) => {
                tracing::debug!(scope = ?denied.as_ref().and_then(Denied::scope), "refused a token lacking what the route requires");
                AuthorizeFuture {
                    state: State::Refused {
                        response: Some(refusal(denied, grpc)),
                    },
                }
            }
        }
    }
}

/// 403 for a token that lacks something, 401 when there is no token at all.
fn refusal<B: Default>(denied: Option<Denied>, grpc: bool) -> Response<B> {
    let mut response = Response::new(B::default());
    let headers = response.headers_mut();
    match (&denied, grpc) {
        (_, true) => {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
            let (status, message) = match denied {
                Some(_) => ("7", "insufficient scope"),
                None => ("16", "no verified token"),
            };
            headers.insert("grpc-status", HeaderValue::from_static(status));
            headers.insert("grpc-message", HeaderValue::from_static(message));
        }
        (Some(denied), false) => {
            headers.insert(WWW_AUTHENTICATE, denied.challenge());
            *response.status_mut() = StatusCode::FORBIDDEN;
        }
        (None, false) => {
            headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            *response.status_mut() = StatusCode::UNAUTHORIZED;
        }
    }
    if let Some(denied) = denied {
        response.extensions_mut().insert(denied);
    }
    response
}

pin_project! {
    /// The response future of [`AuthorizeService`].
    pub struct AuthorizeFuture<F, B> {
        #[pin]
        state: State<F, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        Calling {
            #[pin]
            future: F,
        },
        Refused {
            response: Option<Response<B>>,
        },
    }
}

impl<F, B, E> Future for AuthorizeFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Calling { future } => future.poll(cx),
            StateProj::Refused { response } => Poll::Ready(Ok(response
                .take()
                .expect("AuthorizeFuture polled after completion"))),
        }
    }
}

impl<F, B> fmt::Debug for AuthorizeFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizeFuture").finish_non_exhaustive()
    }
}
