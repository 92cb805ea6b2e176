//! [`Watchers`]: a registry of waiters, its expiry sweeper and, for stores that cannot
//! say what changed, its poller.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::entry::Entry;
use super::index::Index;
use crate::store::key::RevocationKey;
use crate::store::{RevocationQuery, RevocationStore};

/// The open waiters of one store (or, for a store that does not wake them, of one
/// layer): what a [`Revoked`](crate::Revoked) future registers with, and what a store
/// wakes when it applies a revocation.
///
/// A store that learns of every change as it happens (as `InMemoryStore` does when it
/// is written to, and `MirrorStore` when it applies its change feed) keeps one, hands
/// it out from [`RevocationStore::watchers`], and calls [`touched`](Self::touched)
/// after applying a token, session or subject revocation, and
/// [`touched_all`](Self::touched_all) after a global one. Only the waiters of that key
/// are woken; each checks the store again, so a wake that turns out to refuse nothing
/// (a watermark older than the token, say) costs one lookup and changes nothing.
///
/// Waiters are indexed by the first 64 bits of each key they watch, and by deadline: a
/// revocation costs a hash lookup whatever the number of waiters, and one sweeper task
/// per registry ends the waiters whose tokens expire (not one timer per waiter). The
/// sweeper starts with the first waiter, inside the Tokio runtime, and stops when the
/// registry is dropped.
///
/// Cheap to clone; clones share the waiters.
#[derive(Clone, Default)]
pub struct Watchers {
    inner: Arc<Inner>,
}

#[derive(Default)]
pub(super) struct Inner {
    index: parking_lot::Mutex<Index>,
    /// Waiters registered and not yet dropped: lets a store's write skip the lock when
    /// nobody waits (the common case).
    waiting: AtomicUsize,
    /// Tells the sweeper a nearer deadline arrived, or that the registry is gone.
    sweep: Arc<Notify>,
    sweeper: parking_lot::Mutex<Option<JoinHandle<()>>>,
    poller: parking_lot::Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The sweeper waits on this when no deadline is pending: let it see the
        // registry is gone.
        self.sweep.notify_one();
    }
}

impl fmt::Debug for Watchers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watchers").field("waiting", &self.len()).finish()
    }
}

impl Watchers {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many waiters are registered.
    pub fn len(&self) -> usize {
        self.inner.waiting.load(Ordering::Acquire)
    }

    /// Whether no waiter is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Wakes the waiters of tokens revoked under `key` (a token, session or subject
    /// key) to check the store again. Call it after the revocation is applied, so that
    /// the check sees it.
    pub fn touched(&self, key: &RevocationKey) {
        if self.is_empty() {
            return;
        }
        self.inner.index.lock().touch(key);
    }

    /// Wakes every waiter to check the store again: after a global revocation, or
    /// after the store replaced its whole content (a reload).
    pub fn touched_all(&self) {
        if self.is_empty() {
            return;
        }
        self.inner.index.lock().touch_all();
    }

    /// Registers a waiter for `query`, whose token is refused from Unix second
    /// `deadline`. `dirty`: its future checks the store once first.
    pub(crate) fn register(&self, query: RevocationQuery, deadline: u64, dirty: bool) -> Registration {
        let (entry, first) = self.inner.index.lock().insert(query, deadline, dirty);
        self.inner.waiting.fetch_add(1, Ordering::AcqRel);
        self.start_sweeper();
        if first {
            self.inner.sweep.notify_one();
        }
        Registration {
            entry,
            registry: Arc::downgrade(&self.inner),
        }
    }

    fn start_sweeper(&self) {
        let mut sweeper = self.inner.sweeper.lock();
        if sweeper.as_ref().is_some_and(|task| !task.is_finished()) {
            return;
        }
        // Outside a runtime: tried again with the next waiter; the futures themselves
        // still notice an expiry when polled.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let registry = Arc::downgrade(&self.inner);
        let notified = Arc::clone(&self.inner.sweep);
        *sweeper = Some(runtime.spawn(sweep(registry, notified)));
    }

    /// Starts (once per registry, again if its runtime ended) the task that asks
    /// `store` about every waiter each `interval`, in one [`RevocationStore::lookup_many`].
    pub(crate) fn start_poller(&self, store: &Arc<dyn RevocationStore>, interval: Duration) {
        let mut poller = self.inner.poller.lock();
        if poller.as_ref().is_some_and(|task| !task.is_finished()) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let registry = Arc::downgrade(&self.inner);
        *poller = Some(runtime.spawn(poll(registry, Arc::clone(store), interval)));
    }
}

/// A waiter's place in a registry; leaving it (on drop) deregisters the waiter.
pub(crate) struct Registration {
    pub(crate) entry: Arc<Entry>,
    registry: Weak<Inner>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(registry) = self.registry.upgrade() {
            registry.index.lock().remove(&self.entry);
            registry.waiting.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// The current Unix second.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// The instant Unix second `second` begins, on the monotonic clock.
pub(crate) fn instant_of(second: u64) -> Instant {
    let at = UNIX_EPOCH + Duration::from_secs(second);
    let now = (Instant::now(), SystemTime::now());
    match at.duration_since(now.1) {
        Ok(ahead) => now.0 + ahead,
        Err(_) => now.0,
    }
}

/// The sweeper: ends waiters as their deadlines pass, sleeping until the next one.
async fn sweep(registry: Weak<Inner>, notified: Arc<Notify>) {
    loop {
        let next = {
            let Some(registry) = registry.upgrade() else {
                return;
            };
            registry.index.lock().expire_until(unix_now())
        };
        match next {
            Some(deadline) => {
                // Woken early by a nearer deadline: either way, look again.
                let _ = tokio::time::timeout_at(instant_of(deadline).into(), notified.notified()).await;
            }
            None => notified.notified().await,
        }
    }
}

/// The poller: one batched check of every open waiter per tick.
async fn poll(registry: Weak<Inner>, store: Arc<dyn RevocationStore>, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let waiting = {
            let Some(registry) = registry.upgrade() else {
                return;
            };
            if registry.waiting.load(Ordering::Acquire) == 0 {
                continue;
            }
            registry.index.lock().waiting()
        };
        if waiting.is_empty() {
            continue;
        }
        let queries: Vec<RevocationQuery> = waiting.iter().map(|entry| entry.query).collect();
        match store.lookup_many(&queries).await {
            Ok(lookups) => {
                for (entry, lookup) in waiting.iter().zip(lookups) {
                    if let Some(by) = lookup.revoked_by(entry.query.issued_at) {
                        entry.revoke(by);
                    }
                }
            }
            // Open streams keep flowing while the store cannot answer: new requests
            // follow the layer's failure policy; these are asked again next tick.
            Err(error) => {
                tracing::warn!(%error, waiting = waiting.len(), "revocation poll of open streams failed");
            }
        }
    }
}
