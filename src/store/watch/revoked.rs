//! [`Revoked`]: the future a handler awaits to learn that its token is now refused.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Sleep;

use super::entry::News;
use super::registry::{Registration, instant_of, unix_now};
use super::{Refusal, Watch};
use crate::store::{Lookup, RevocationQuery, StoreError};

/// How long a waiter waits before asking again a store that failed to answer it.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// How long a waiter's own check may take (a mirror out of sync asks Redis).
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

type Check = Pin<Box<dyn Future<Output = Result<Lookup, StoreError>> + Send>>;

/// A future that resolves when its token becomes refused: revoked (the token, its
/// session, its subject's watermark, the global one) or past its acceptance (`exp`
/// plus the verifier's leeway). Made by [`VerifiedToken::revoked`](crate::VerifiedToken::revoked).
///
/// It registers itself with the store's waiters the first time it is polled, and
/// deregisters when dropped: an open stream costs one small entry, no timer and no
/// task. `Unpin`, so `tokio::select!` can poll it by `&mut` in a loop.
#[must_use = "futures do nothing unless polled"]
pub struct Revoked {
    state: State,
}

enum State {
    /// Watched through the store that checked the token.
    Watching(Box<Watching>),
    /// No store to watch (a token verified outside the layer): only the expiry. The
    /// timer is made on the first poll (inside the runtime).
    Expiring {
        sleep: Option<Pin<Box<Sleep>>>,
        deadline: u64,
    },
    Done(Refusal),
}

struct Watching {
    watch: Arc<Watch>,
    query: RevocationQuery,
    deadline: u64,
    registration: Option<Registration>,
    check: Option<Check>,
    retry: Option<Pin<Box<Sleep>>>,
}

impl Revoked {
    pub(crate) fn new(watch: Option<Arc<Watch>>, query: RevocationQuery, deadline: u64) -> Self {
        let state = match watch {
            Some(watch) => State::Watching(Box::new(Watching {
                watch,
                query,
                deadline,
                registration: None,
                check: None,
                retry: None,
            })),
            None => State::Expiring {
                sleep: None,
                deadline,
            },
        };
        Self { state }
    }
}

impl fmt::Debug for Revoked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Watching(_) => "watching",
            State::Expiring { .. } => "expiring",
            State::Done(_) => "done",
        };
        f.debug_struct("Revoked").field("state", &state).finish()
    }
}

impl Future for Revoked {
    type Output = Refusal;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Refusal> {
        let refusal = match &mut self.state {
            State::Done(refusal) => return Poll::Ready(*refusal),
            State::Expiring { sleep, deadline } => loop {
                let sleep = sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(instant_of(*deadline).into())));
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                if unix_now() >= *deadline {
                    break Refusal::Expired;
                }
                // The timer fired a little before the wall clock's second: the verifier
                // still accepts the token until it begins.
                sleep
                    .as_mut()
                    .reset(tokio::time::Instant::now() + Duration::from_millis(10));
            },
            State::Watching(watching) => match watching.poll_refusal(cx) {
                Poll::Ready(refusal) => refusal,
                Poll::Pending => return Poll::Pending,
            },
        };
        // Deregisters (drops the registration) as soon as the answer is known.
        self.state = State::Done(refusal);
        Poll::Ready(refusal)
    }
}

impl Watching {
    fn poll_refusal(&mut self, cx: &mut Context<'_>) -> Poll<Refusal> {
        if unix_now() >= self.deadline {
            return Poll::Ready(Refusal::Expired);
        }
        let entry = Arc::clone(
            &self
                .registration
                .get_or_insert_with(|| {
                    // A store that wakes its waiters: check once after registering, so
                    // a revocation applied since the layer's check is not missed. A
                    // polled store's next tick checks it anyway.
                    let dirty = self.watch.pushed();
                    self.watch.register(self.query, self.deadline, dirty)
                })
                .entry,
        );
        // Before reading the news: news arriving in between wakes this task.
        entry.register(cx.waker());
        loop {
            if let Some(check) = &mut self.check {
                match check.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(answer) => {
                        self.check = None;
                        match answer {
                            Ok(lookup) => {
                                if let Some(by) = lookup.revoked_by(self.query.issued_at) {
                                    return Poll::Ready(Refusal::Revoked(by));
                                }
                            }
                            Err(error) => {
                                tracing::debug!(%error, "an open stream's revocation check failed; asking again");
                                self.retry = Some(Box::pin(tokio::time::sleep(RETRY_AFTER)));
                            }
                        }
                    }
                }
            }
            if let Some(retry) = &mut self.retry
                && retry.as_mut().poll(cx).is_ready()
            {
                self.retry = None;
                self.start_check();
                continue;
            }
            match entry.take_news() {
                News::Nothing => return Poll::Pending,
                News::Expired => return Poll::Ready(Refusal::Expired),
                News::Revoked(by) => return Poll::Ready(Refusal::Revoked(by)),
                News::Dirty => {
                    let store = self.watch.store();
                    if let Some(lookup) = store.lookup_immediate(&self.query) {
                        if let Some(by) = lookup.revoked_by(self.query.issued_at) {
                            return Poll::Ready(Refusal::Revoked(by));
                        }
                        continue;
                    }
                    self.start_check();
                }
            }
        }
    }

    fn start_check(&mut self) {
        let store = Arc::clone(self.watch.store());
        let query = self.query;
        self.check = Some(Box::pin(async move {
            store.lookup_within(&query, CHECK_TIMEOUT).await
        }));
    }
}
