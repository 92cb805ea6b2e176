//! [`ResponseFuture`]: waits for the store check, then for the inner service.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::layer::body::Ending;
use crate::layer::reject::OnRejection;
use crate::layer::service::{StoreCheck, reject};

/// What is held while the store answers: the readied inner service and the request.
pub(crate) struct Pending<S, ReqBody, ResBody> {
    pub(crate) inner: S,
    pub(crate) request: Request<ReqBody>,
    pub(crate) rejection: Arc<dyn OnRejection<ResBody>>,
    /// How to end the response of a token verified only by the check (after a key
    /// refresh): `Some` when the layer's `StreamEnding` applies to this request.
    pub(crate) ending: Option<EndingFor>,
}

/// What makes an [`Ending`] once the token is known.
pub(crate) struct EndingFor {
    pub(crate) watch: Arc<crate::store::watch::Watch>,
    pub(crate) http: bool,
}

pin_project! {
    /// The response future of [`RevocationService`](crate::RevocationService).
    pub struct ResponseFuture<S, ReqBody, ResBody>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<S, ReqBody, ResBody>,
        // Wraps the response body so that it ends when the token is refused.
        ending: Option<Ending>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqBody, ResBody>
    where
        S: Service<Request<ReqBody>>,
    {
        Checking {
            check: StoreCheck,
            pending: Option<Pending<S, ReqBody, ResBody>>,
        },
        Calling {
            #[pin]
            future: S::Future,
        },
        Rejected {
            response: Option<Response<ResBody>>,
        },
    }
}

impl<S, ReqBody, ResBody> ResponseFuture<S, ReqBody, ResBody>
where
    S: Service<Request<ReqBody>>,
{
    pub(crate) fn checking(check: StoreCheck, pending: Pending<S, ReqBody, ResBody>) -> Self {
        Self {
            state: State::Checking {
                check,
                pending: Some(pending),
            },
            ending: None,
        }
    }

    pub(crate) fn calling(future: S::Future) -> Self {
        Self {
            state: State::Calling { future },
            ending: None,
        }
    }

    pub(crate) fn rejected(response: Response<ResBody>) -> Self {
        Self {
            state: State::Rejected {
                response: Some(response),
            },
            ending: None,
        }
    }

    /// Ends the response body when the token is refused (see `StreamEnding`).
    pub(crate) fn ending(mut self, ending: Option<Ending>) -> Self {
        self.ending = ending;
        self
    }
}

impl<S, ReqBody, ResBody> Future for ResponseFuture<S, ReqBody, ResBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: 'static,
{
    type Output = Result<Response<ResBody>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Checking { check, pending } => {
                    let outcome = ready!(check.as_mut().poll(cx));
                    let Pending {
                        mut inner,
                        mut request,
                        rejection,
                        ending,
                    } = pending.take().expect("ResponseFuture polled after completion");
                    match outcome {
                        Ok(verified) => {
                            if let Some(token) = verified {
                                if let Some(EndingFor { watch, http }) = ending {
                                    *this.ending = Some(Ending {
                                        watch,
                                        query: crate::store::RevocationQuery::for_token(&token),
                                        refused_from: token.refused_from(),
                                        http,
                                    });
                                }
                                request.extensions_mut().insert(token);
                            }
                            let future = inner.call(request);
                            this.state.set(State::Calling { future });
                        }
                        Err(reason) => {
                            let response = reject(&*rejection, reason, &request);
                            this.state.set(State::Rejected { response: None });
                            return Poll::Ready(Ok(response));
                        }
                    }
                }
                StateProj::Calling { future } => {
                    let mut response = ready!(future.poll(cx))?;
                    if let Some(ending) = this.ending.take() {
                        ending.wrap(&mut response);
                    }
                    return Poll::Ready(Ok(response));
                }
                StateProj::Rejected { response } => {
                    return Poll::Ready(Ok(response
                        .take()
                        .expect("ResponseFuture polled after completion")));
                }
            }
        }
    }
}

impl<S, ReqBody, ResBody> fmt::Debug for ResponseFuture<S, ReqBody, ResBody>
where
    S: Service<Request<ReqBody>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
