//! [`InMemoryStore`]: revocations in this process's memory.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{Lookup, RevocationQuery, RevocationStore, StoreError};
use crate::key::{KeyMap, RevocationKey};

/// How often the background sweeper reclaims expired entries, unless configured.
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(10);

/// Revocations kept in this process's memory.
///
/// For a single process and for tests: replicas do not see each other's revocations
/// (use `RedisStore`, feature `redis`, for that). Cheap to clone;
/// clones share the same entries.
///
/// Entries expire by themselves. Expired entries are reclaimed on every write and by
/// a background task (started on the first write, inside the Tokio runtime; it stops
/// when the last clone of the store is dropped), so memory stays bounded by the live
/// revocations even when no request touches the expired ones.
#[derive(Clone, Debug)]
pub struct InMemoryStore {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    state: RwLock<State>,
    sweep_interval: Duration,
    sweeper_started: AtomicBool,
}

#[derive(Debug, Default)]
struct State {
    tokens: KeyMap<Instant>,
    sessions: KeyMap<Instant>,
    subjects: KeyMap<Watermark>,
    global: Option<Watermark>,
    /// Every expiry ever set, soonest first; an entry whose expiry has since moved is
    /// skipped when it comes up.
    expiries: BinaryHeap<Reverse<(Instant, Scope, RevocationKey)>>,
}

#[derive(Debug, Clone, Copy)]
struct Watermark {
    issued_until: u64,
    expires: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Scope {
    Token,
    Session,
    Subject,
    Global,
}

/// The key under which the global watermark's expiry is queued.
const GLOBAL_KEY: RevocationKey = RevocationKey::ZERO;

impl Default for InMemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl InMemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::with_sweep_interval(DEFAULT_SWEEP_INTERVAL)
    }

    /// An empty store whose background sweeper runs every `interval`.
    pub fn with_sweep_interval(interval: Duration) -> Self {
        Self {
            shared: Arc::new(Shared {
                state: RwLock::new(State::default()),
                sweep_interval: interval.max(Duration::from_millis(1)),
                sweeper_started: AtomicBool::new(false),
            }),
        }
    }

    /// How many entries are held, expired ones not yet reclaimed included.
    pub fn len(&self) -> usize {
        let state = self.read();
        state.tokens.len() + state.sessions.len() + state.subjects.len() + usize::from(state.global.is_some())
    }

    /// Whether the store holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reclaims every expired entry now.
    pub fn purge_expired(&self) {
        self.write().purge(Instant::now());
    }

    /// How much longer the token revocation under `token` lasts, if it is live.
    pub fn token_ttl(&self, token: &RevocationKey) -> Option<Duration> {
        let now = Instant::now();
        self.read()
            .tokens
            .get(token)
            .and_then(|expires| live(*expires, now))
    }

    /// How much longer the session revocation under `session` lasts, if it is live.
    pub fn session_ttl(&self, session: &RevocationKey) -> Option<Duration> {
        let now = Instant::now();
        self.read()
            .sessions
            .get(session)
            .and_then(|expires| live(*expires, now))
    }

    /// The subject's live watermark and how much longer it lasts.
    pub fn subject_watermark(&self, subject: &RevocationKey) -> Option<(u64, Duration)> {
        let now = Instant::now();
        let state = self.read();
        let mark = state.subjects.get(subject)?;
        Some((mark.issued_until, live(mark.expires, now)?))
    }

    /// Answers a query without awaiting anything.
    pub(crate) fn lookup_now(&self, query: &RevocationQuery) -> Lookup {
        self.lookup_at(query, Instant::now())
    }

    /// Answers a query as of `now`.
    pub(crate) fn lookup_at(&self, query: &RevocationQuery, now: Instant) -> Lookup {
        let state = self.read();
        let marker = |map: &KeyMap<Instant>, key: Option<&RevocationKey>| {
            key.and_then(|key| map.get(key))
                .is_some_and(|expires| *expires > now)
        };
        let watermark = |mark: Option<&Watermark>| mark.filter(|m| m.expires > now).map(|m| m.issued_until);
        Lookup {
            token_revoked: marker(&state.tokens, Some(&query.token)),
            session_revoked: marker(&state.sessions, query.session.as_ref()),
            subject_watermark: watermark(query.subject.as_ref().and_then(|key| state.subjects.get(key))),
            global_watermark: watermark(state.global.as_ref()),
        }
    }

    /// Takes over every entry of `other`, dropping this store's own (a mirror's reload).
    #[cfg(feature = "redis")]
    pub(crate) fn replace_with(&self, other: InMemoryStore) {
        let entries = std::mem::take(&mut *other.write());
        *self.write() = entries;
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated in a way
        // that loses a revocation (each write is one insert), so poisoning is ignored.
        self.shared.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.shared.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, apply: impl FnOnce(&mut State, Instant)) {
        self.start_sweeper();
        let now = Instant::now();
        let mut state = self.write();
        state.purge(now);
        apply(&mut state, now);
    }

    fn start_sweeper(&self) {
        if self.shared.sweeper_started.swap(true, Ordering::Relaxed) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // Outside a runtime: writes still reclaim; try again on the next write.
            self.shared.sweeper_started.store(false, Ordering::Relaxed);
            return;
        };
        let weak: Weak<Shared> = Arc::downgrade(&self.shared);
        let interval = self.shared.sweep_interval;
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(shared) = weak.upgrade() else { break };
                let mut state = shared.state.write().unwrap_or_else(PoisonError::into_inner);
                state.purge(Instant::now());
            }
        });
    }
}

/// `now + ttl`, capped a century ahead instead of overflowing.
fn expiry(now: Instant, ttl: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);
    const YEAR: Duration = Duration::from_secs(365 * 24 * 60 * 60);
    now.checked_add(ttl.min(CENTURY))
        .or_else(|| now.checked_add(ttl.min(YEAR)))
        .unwrap_or(now)
}

fn live(expires: Instant, now: Instant) -> Option<Duration> {
    expires.checked_duration_since(now).filter(|left| !left.is_zero())
}

impl State {
    /// Records a token or session marker, keeping the later expiry.
    fn mark(&mut self, scope: Scope, key: RevocationKey, expires: Instant) {
        debug_assert!(
            matches!(scope, Scope::Token | Scope::Session),
            "watermarks are raised, not marked"
        );
        let markers = match scope {
            Scope::Session => &mut self.sessions,
            Scope::Token | Scope::Subject | Scope::Global => &mut self.tokens,
        };
        let entry = markers.entry(key).or_insert(expires);
        *entry = (*entry).max(expires);
        self.expiries.push(Reverse((expires, scope, key)));
    }

    fn purge(&mut self, now: Instant) {
        while let Some(Reverse((expires, scope, key))) = self.expiries.peek().copied() {
            if expires > now {
                break;
            }
            self.expiries.pop();
            // Only remove the entry if this queued expiry is still its current one.
            match scope {
                Scope::Token => remove_if_expired(&mut self.tokens, &key, now, |e| *e),
                Scope::Session => remove_if_expired(&mut self.sessions, &key, now, |e| *e),
                Scope::Subject => remove_if_expired(&mut self.subjects, &key, now, |m| m.expires),
                Scope::Global => {
                    if self.global.is_some_and(|mark| mark.expires <= now) {
                        self.global = None;
                    }
                }
            }
        }
    }
}

fn remove_if_expired<V>(
    map: &mut KeyMap<V>,
    key: &RevocationKey,
    now: Instant,
    expiry: impl Fn(&V) -> Instant,
) {
    if map.get(key).is_some_and(|value| expiry(value) <= now) {
        map.remove(key);
    }
}

/// Raises a watermark, never lowering it, and extends its life to at least `expires`.
fn raise(current: Option<Watermark>, issued_until: u64, expires: Instant) -> Watermark {
    match current {
        Some(mark) => Watermark {
            issued_until: mark.issued_until.max(issued_until),
            expires: mark.expires.max(expires),
        },
        None => Watermark {
            issued_until,
            expires,
        },
    }
}

#[async_trait]
impl RevocationStore for InMemoryStore {
    async fn lookup(&self, query: &RevocationQuery) -> Result<Lookup, StoreError> {
        Ok(self.lookup_now(query))
    }

    fn lookup_immediate(&self, query: &RevocationQuery) -> Option<Lookup> {
        Some(self.lookup_now(query))
    }

    async fn revoke_token(&self, token: &RevocationKey, ttl: Duration) -> Result<(), StoreError> {
        self.record(|state, now| state.mark(Scope::Token, *token, expiry(now, ttl)));
        Ok(())
    }

    async fn revoke_session(&self, session: &RevocationKey, ttl: Duration) -> Result<(), StoreError> {
        self.record(|state, now| state.mark(Scope::Session, *session, expiry(now, ttl)));
        Ok(())
    }

    async fn raise_subject_watermark(
        &self,
        subject: &RevocationKey,
        issued_until: u64,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.record(|state, now| {
            let expires = expiry(now, ttl);
            let mark = raise(state.subjects.get(subject).copied(), issued_until, expires);
            state.subjects.insert(*subject, mark);
            state.expiries.push(Reverse((expires, Scope::Subject, *subject)));
        });
        Ok(())
    }

    async fn raise_global_watermark(&self, issued_until: u64, ttl: Duration) -> Result<(), StoreError> {
        self.record(|state, now| {
            let expires = expiry(now, ttl);
            state.global = Some(raise(state.global, issued_until, expires));
            state.expiries.push(Reverse((expires, Scope::Global, GLOBAL_KEY)));
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> RevocationKey {
        RevocationKey::token(None, &n.to_string())
    }

    #[tokio::test]
    async fn expired_entries_are_reclaimed_by_the_sweeper_without_any_request() {
        let store = InMemoryStore::with_sweep_interval(Duration::from_millis(20));
        for n in 0..50 {
            store
                .revoke_token(&key(n), Duration::from_millis(30))
                .await
                .unwrap();
        }
        assert_eq!(store.len(), 50);
        // Nothing reads or writes the store while we wait: only the sweeper can act.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !store.is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(store.is_empty(), "sweeper left {} expired entries", store.len());
    }

    #[tokio::test]
    async fn a_later_shorter_revocation_does_not_shorten_a_longer_one() {
        let store = InMemoryStore::new();
        store
            .revoke_token(&key(1), Duration::from_secs(60))
            .await
            .unwrap();
        store
            .revoke_token(&key(1), Duration::from_millis(1))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        store.purge_expired();
        let ttl = store.token_ttl(&key(1)).expect("still revoked");
        assert!(ttl > Duration::from_secs(59), "ttl shrank to {ttl:?}");
    }

    #[tokio::test]
    async fn watermarks_only_move_forward() {
        let store = InMemoryStore::new();
        let subject = RevocationKey::subject(None, "alice");
        store
            .raise_subject_watermark(&subject, 200, Duration::from_secs(60))
            .await
            .unwrap();
        store
            .raise_subject_watermark(&subject, 100, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(store.subject_watermark(&subject).map(|(mark, _)| mark), Some(200));
        store
            .raise_global_watermark(300, Duration::from_secs(60))
            .await
            .unwrap();
        store
            .raise_global_watermark(10, Duration::from_secs(60))
            .await
            .unwrap();
        let query = RevocationQuery {
            token: key(9),
            subject: Some(subject),
            session: None,
            issued_at: None,
        };
        let lookup = store.lookup(&query).await.unwrap();
        assert_eq!(lookup.subject_watermark, Some(200));
        assert_eq!(lookup.global_watermark, Some(300));
    }

    #[tokio::test]
    async fn concurrent_revokes_and_checks_lose_nothing() {
        let store = InMemoryStore::new();
        let mut tasks = Vec::new();
        for worker in 0..8u8 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for n in 0..200u32 {
                    let token = RevocationKey::token(None, &format!("{worker}-{n}"));
                    store.revoke_token(&token, Duration::from_secs(60)).await.unwrap();
                    let query = RevocationQuery {
                        token,
                        subject: None,
                        session: None,
                        issued_at: None,
                    };
                    assert!(store.lookup(&query).await.unwrap().token_revoked);
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        for worker in 0..8u8 {
            for n in 0..200u32 {
                let token = RevocationKey::token(None, &format!("{worker}-{n}"));
                assert!(store.token_ttl(&token).is_some(), "lost {worker}-{n}");
            }
        }
    }
}
