//! Refreshes asked for by tokens that name a `kid` the ring lacks: at most one fetch per
//! unknown-`kid` interval, whatever the requests; a request the interval holds back is
//! told when to come back (a 503 with `Retry-After`), and the fetch is made then by
//! itself, so that a provider's key rotation is never a 401 for its new tokens.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use super::Inner;
use crate::jwks::health::State;
use crate::jwks::schedule::after;
use crate::verify::{Asking, Refresh, Refreshed};

impl Refresh for Inner {
    /// A refresh asked for by a token naming an unknown `kid` (or arriving before any
    /// keys).
    fn refresh(&self, asking: Asking) -> Pin<Box<dyn Future<Output = Refreshed> + Send + '_>> {
        Box::pin(async move {
            let asked = self.fetches_started.load(Ordering::Acquire);
            let Some(inner) = self.me.upgrade() else {
                return Refreshed::Later(RETRY_SOON);
            };
            // In a task of its own: a request dropped while it waits (its client went
            // away) must not cancel the fetch that other requests are waiting for.
            self.runtime
                .spawn(async move { inner.refresh_for_unknown_kid(asked, &asking).await })
                .await
                .unwrap_or(Refreshed::Later(RETRY_SOON))
        })
    }
}

/// The `Retry-After` when no better one is known (the runtime shutting down).
const RETRY_SOON: Duration = Duration::from_secs(1);

impl Inner {
    /// Makes sure the ring holds keys fetched after the token that asked was issued
    /// or, failing that, after it asked (`asked`: the fetches started then): joins a
    /// fetch under way, else fetches, unless one was made for an unknown `kid` within
    /// the unknown-`kid` interval. Then a fetch is scheduled for when the interval
    /// allows one, and the request told to come back then.
    async fn refresh_for_unknown_kid(&self, asked: u64, asking: &Asking) -> Refreshed {
        let _fetching = self.fetch_lock.lock().await;
        let fetched_since = self.fetches_started.load(Ordering::Acquire) != asked;
        {
            let mut state = self.state();
            let issued_before_fetch = asking
                .issued_before
                .zip(state.last_success_started)
                .is_some_and(|(issued, fetched)| fetched >= issued);
            let unusable = asking.kid.as_deref().is_some_and(|kid| state.skipped(kid));
            if state.health.consecutive_failures == 0 && (fetched_since || issued_before_fetch || unusable) {
                // The keys in the ring were fetched after the token was signed (or
                // after it arrived), or name its key as unusable: a fetch now would
                // not bring its key.
                return Refreshed::Fresh;
            }
            let now = Instant::now();
            if let Some(last) = state.last_unknown_kid_fetch {
                let allowed = after(last, self.settings.unknown_kid_interval);
                if now < allowed {
                    tracing::debug!(
                        url = %self.shown_url(),
                        "a token names an unknown kid (or came before any keys), but keys were fetched for one recently: fetching them when allowed"
                    );
                    self.schedule_fetch(&mut state, allowed);
                    return Refreshed::Later(whole_seconds(allowed - now));
                }
            }
            state.last_unknown_kid_fetch = Some(now);
        }
        tracing::debug!(
            url = %self.shown_url(),
            "a token names an unknown kid (or came before any keys): fetching keys"
        );
        match self.fetch().await {
            Ok(()) => Refreshed::Fresh,
            // Logged and recorded by `fetch`; tried again when the interval allows.
            Err(_) => {
                let allowed = after(Instant::now(), self.settings.unknown_kid_interval);
                self.schedule_fetch(&mut self.state(), allowed);
                Refreshed::Later(whole_seconds(self.settings.unknown_kid_interval))
            }
        }
    }

    /// Has a fetch made at `at` (the end of the unknown-`kid` interval), for the
    /// requests told to come back then. One task per distinct time: `at` only moves
    /// with a fetch, at most one per interval, so made-up `kid`s cannot pile tasks up.
    fn schedule_fetch(&self, state: &mut State, at: Instant) {
        if state.scheduled_fetch == Some(at) {
            return;
        }
        state.scheduled_fetch = Some(at);
        let asked = self.fetches_started.load(Ordering::Acquire);
        let me = self.me.clone();
        self.runtime.spawn(async move {
            tokio::time::sleep_until(at).await;
            let Some(inner) = me.upgrade() else {
                return;
            };
            inner.scheduled_fetch(asked, at).await;
        });
    }

    /// The fetch [`schedule_fetch`](Self::schedule_fetch) planned for `at`, unless
    /// one was made since it was planned (`asked`: the fetches started then).
    async fn scheduled_fetch(&self, asked: u64, at: Instant) {
        let _fetching = self.fetch_lock.lock().await;
        {
            let mut state = self.state();
            if state.scheduled_fetch == Some(at) {
                state.scheduled_fetch = None;
            }
            let fetched_since = self.fetches_started.load(Ordering::Acquire) != asked;
            if fetched_since && state.health.consecutive_failures == 0 {
                return;
            }
            let now = Instant::now();
            if state
                .last_unknown_kid_fetch
                .is_some_and(|last| now < after(last, self.settings.unknown_kid_interval))
            {
                // A request fetched since (and failed): it scheduled the next one.
                return;
            }
            state.last_unknown_kid_fetch = Some(now);
        }
        tracing::debug!(url = %self.shown_url(), "fetching keys for tokens that named an unknown kid earlier");
        if self.fetch().await.is_err() {
            let allowed = after(Instant::now(), self.settings.unknown_kid_interval);
            self.schedule_fetch(&mut self.state(), allowed);
        }
    }
}

/// `delay` rounded up to whole seconds, at least one: a client told to come back
/// after it finds the fetch made.
fn whole_seconds(delay: Duration) -> Duration {
    Duration::from_secs(crate::layer::reject::retry_after_secs(delay))
}
