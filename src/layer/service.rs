//! [`RevocationService`]: the per-request flow.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::{Request, Response};
use tower_service::Service;
use tracing::Span;
use tracing::field::Empty;

use crate::layer::FailurePolicy;
use crate::layer::body::{Ending, StreamEnding};
use crate::layer::extract::{TokenSource, find_token};
use crate::layer::future::{EndingFor, Pending, ResponseFuture};
use crate::layer::reject::{OnRejection, Rejection};
use crate::observe::telemetry::{self, Outcome};
use crate::store::watch::Watch;
use crate::store::{RevocationQuery, RevocationStore};
use crate::verify::token::VerifiedToken;
use crate::verify::{JwtVerifier, VerifyError};

/// The check that runs after verification: one store call, under a timeout. It yields
/// the verified token when it verified the token itself (after refreshing the keys),
/// for the request's extensions.
pub(crate) type StoreCheck = Pin<Box<dyn Future<Output = Result<Option<VerifiedToken>, Rejection>> + Send>>;

pub(crate) struct Config<Reject> {
    pub(crate) verifier: JwtVerifier,
    /// Type-erased: with the store's type out of the service's, the service's future
    /// is `Send` whatever the store (an `Arc<dyn RevocationStore>` included, which
    /// rustc otherwise fails to prove inside async blocks).
    pub(crate) store: Arc<dyn RevocationStore>,
    pub(crate) sources: Arc<[TokenSource]>,
    pub(crate) check_timeout: Duration,
    pub(crate) failure_policy: FailurePolicy,
    pub(crate) allow_anonymous: bool,
    pub(crate) rejection: Arc<Reject>,
    pub(crate) watch: Arc<Watch>,
    pub(crate) stream_ending: StreamEnding,
}

impl<Reject> Config<Reject> {
    /// Whether this request's response is wrapped to end on refusal, and as what: `Some(http)`.
    fn ends<B>(&self, request: &Request<B>) -> Option<bool> {
        match self.stream_ending {
            StreamEnding::Off => None,
            StreamEnding::GrpcAndHttp => Some(true),
            StreamEnding::Grpc => request
                .headers()
                .get(http::header::CONTENT_TYPE)
                .is_some_and(|value| value.as_bytes().starts_with(b"application/grpc"))
                .then_some(false),
        }
    }

    fn ending_for<B>(
        &self,
        request: &Request<B>,
        query: RevocationQuery,
        refused_from: u64,
    ) -> Option<Ending> {
        self.ends(request).map(|http| Ending {
            watch: Arc::clone(&self.watch),
            query,
            refused_from,
            http,
        })
    }
}

impl<Reject> Config<Reject> {
    /// Asks the store, counts and notes the outcome on `span`.
    async fn check(&self, query: RevocationQuery, span: &Span) -> Result<(), Rejection> {
        let outcome = self.ask(query, span).await;
        telemetry::check(
            span,
            match &outcome {
                Ok(checked) => *checked,
                Err(rejection) => Outcome::refused(rejection),
            },
        );
        outcome.map(drop)
    }

    async fn ask(&self, query: RevocationQuery, span: &Span) -> Result<Outcome, Rejection> {
        let store = self.store.name();
        let started = Instant::now();
        let failure = match self.store.lookup_within(&query, self.check_timeout).await {
            Ok(lookup) => {
                telemetry::lookup(span, store, started.elapsed());
                return match lookup.revoked_by(query.issued_at) {
                    None => Ok(Outcome::Allowed),
                    Some(by) => {
                        tracing::debug!(revoked_by = ?by, token = %query.token, "refused a revoked token");
                        Err(Rejection::Revoked(by))
                    }
                };
            }
            Err(error) => {
                telemetry::store_error(store, if error.is_timeout() { "timeout" } else { "error" });
                error_chain(&error)
            }
        };
        match self.failure_policy {
            FailurePolicy::FailOpen => {
                tracing::warn!(%failure, "revocation store unavailable; failing open, request let through unchecked");
                Ok(Outcome::FailedOpen)
            }
            FailurePolicy::FailClosed => {
                tracing::warn!(%failure, "revocation store unavailable; failing closed with 503");
                Err(Rejection::StoreUnavailable)
            }
        }
    }
}

/// An error and its sources, `outer: inner: innermost`, for one log field.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    std::iter::successors(Some(error), |error| error.source())
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}

/// The [`Service`](https://docs.rs/tower-service/0.3/tower_service/trait.Service.html) made by
/// [`RevocationLayer`](crate::RevocationLayer): `S` is the inner service, `Reject` the
/// rejection.
pub struct RevocationService<S, Reject = crate::layer::reject::DefaultRejection> {
    inner: S,
    config: Arc<Config<Reject>>,
}

impl<S, Reject> RevocationService<S, Reject> {
    pub(crate) fn new(inner: S, config: Arc<Config<Reject>>) -> Self {
        Self { inner, config }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes this service, returning the wrapped one.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, Reject> Clone for RevocationService<S, Reject> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            config: Arc::clone(&self.config),
        }
    }
}

impl<S: fmt::Debug, Reject> fmt::Debug for RevocationService<S, Reject> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevocationService")
            .field("inner", &self.inner)
            .field("verifier", &self.config.verifier)
            .finish_non_exhaustive()
    }
}

impl<S, Reject, ReqBody, ResBody> Service<Request<ReqBody>> for RevocationService<S, Reject>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    Reject: OnRejection<ResBody>,
    ResBody: 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let config = &self.config;
        // Costs a cached level check when debug spans are off; never names the token.
        let span = tracing::debug_span!(
            "revocation_check",
            outcome = Empty,
            reason = Empty,
            store_latency_us = Empty
        );
        let verified = match find_token(&config.sources, request.headers()) {
            Ok(Some(token)) => match config.verifier.verify(token) {
                // A key the provider published since the last fetch, or keys not
                // fetched yet: wait for a (rate-limited) refresh, then try again.
                Err(VerifyError::UnknownKey | VerifyError::KeysUnavailable)
                    if config.verifier.refresher_for(token).is_some() =>
                {
                    let token = token.to_owned();
                    let check_config = Arc::clone(config);
                    let check: StoreCheck = Box::pin(async move {
                        let mut verified = match check_config.verifier.verify_refreshing(&token).await {
                            Ok(verified) => verified,
                            Err(error) => {
                                let rejection = Rejection::InvalidToken(error);
                                telemetry::check(&span, Outcome::refused(&rejection));
                                return Err(rejection);
                            }
                        };
                        check_config
                            .check(RevocationQuery::for_token(&verified), &span)
                            .await?;
                        verified.watch = Some(Arc::clone(&check_config.watch));
                        Ok(Some(verified))
                    });
                    return self.checking(check, request);
                }
                verified => verified.map_err(Rejection::InvalidToken),
            },
            Ok(None) => Err(Rejection::MissingToken),
            Err(malformed) => Err(Rejection::MalformedRequest(malformed)),
        };
        let mut token = match verified {
            Ok(token) => token,
            Err(Rejection::MissingToken) if config.allow_anonymous => {
                telemetry::check(&span, Outcome::Anonymous);
                return ResponseFuture::calling(self.inner.call(request));
            }
            Err(rejection) => {
                telemetry::check(&span, Outcome::refused(&rejection));
                tracing::debug!(%rejection, "refused a request before the store check");
                let response = reject(&*config.rejection, rejection, &request);
                return ResponseFuture::rejected(response);
            }
        };

        let query = RevocationQuery::for_token(&token);
        token.watch = Some(Arc::clone(&config.watch));
        let ending = config.ending_for(&request, query, token.refused_from);
        request.extensions_mut().insert::<VerifiedToken>(token);

        // A store that can answer without waiting (memory, a mirror in sync) skips the
        // boxed future and the timer: the check is then a plain function call.
        if let Some(lookup) = config.store.lookup_immediate(&query) {
            return match lookup.revoked_by(query.issued_at) {
                None => {
                    telemetry::check(&span, Outcome::Allowed);
                    ResponseFuture::calling(self.inner.call(request)).ending(ending)
                }
                Some(by) => {
                    let rejection = Rejection::Revoked(by);
                    telemetry::check(&span, Outcome::refused(&rejection));
                    tracing::debug!(revoked_by = ?by, token = %query.token, "refused a revoked token");
                    ResponseFuture::rejected(reject(&*config.rejection, rejection, &request))
                }
            };
        }

        let check_config = Arc::clone(config);
        let check: StoreCheck =
            Box::pin(async move { check_config.check(query, &span).await.map(|()| None) });
        self.checking(check, request).ending(ending)
    }
}

impl<S, Reject> RevocationService<S, Reject> {
    /// The response future that waits for `check`, then calls the inner service.
    fn checking<ReqBody, ResBody>(
        &mut self,
        check: StoreCheck,
        request: Request<ReqBody>,
    ) -> ResponseFuture<S, ReqBody, ResBody>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
        Reject: OnRejection<ResBody>,
        ResBody: 'static,
    {
        // The readied service goes with this request; a fresh clone waits for the
        // next poll_ready (tower-service: "Be careful when cloning inner services").
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let ending = self.config.ends(&request).map(|http| EndingFor {
            watch: Arc::clone(&self.config.watch),
            http,
        });
        ResponseFuture::checking(
            check,
            Pending {
                inner,
                request,
                rejection: Arc::clone(&self.config.rejection) as _,
                ending,
            },
        )
    }
}

/// Builds the rejection response and tags it with the reason.
pub(crate) fn reject<B: 'static, ReqBody>(
    on_rejection: &dyn OnRejection<B>,
    rejection: Rejection,
    request: &Request<ReqBody>,
) -> Response<B> {
    let mut response = on_rejection.on_rejection(&rejection, request.headers());
    response.extensions_mut().insert(rejection);
    response
}
