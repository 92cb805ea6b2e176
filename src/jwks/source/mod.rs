//! [`Jwks`]: a key ring kept filled from a JWKS URL, by a background task and by
//! rate-limited fetches when tokens name keys it lacks.
//!
//! Here the source, its fetches and its background tasks; `unknown_kid.rs` the refreshes
//! that tokens naming an unknown `kid` ask for. May use: the rest of `jwks/`, the key
//! ring. Used by: [`OidcIssuer`](crate::jwks::OidcIssuer), applications.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::time::{Duration, SystemTime};

use reqwest::{Client, Url};
use tokio::sync::watch;
use tokio::time::Instant;

use super::builder::{JwksBuilder, Settings, StartMode};
use super::discovery::{self, ProviderMetadata};
use super::document;
use super::error::JwksError;
use super::fetch;
use super::health::{JwksHealth, State};
use super::schedule::{Wake, due_in, jitter, wait_until};
use crate::verify::{Refresh, WeakKeyRing};
use crate::{KeyRing, KeySet};

mod unknown_kid;

/// The media type of a JWK Set (RFC 7517 §8.5), and the JSON most providers send.
const JWKS_ACCEPT: &str = "application/jwk-set+json, application/json;q=0.9";

/// Signing keys fetched from a JWKS URL (RFC 7517 §5) and kept fresh while the service
/// runs.
///
/// Build one with [`Jwks::builder`] (or discover one with
/// [`OidcIssuer`](super::OidcIssuer)) and hand its [`key_ring`](Self::key_ring) to a
/// verifier. Then:
///
/// - keys are fetched again in the background, as often as the provider's
///   `Cache-Control: max-age` says (within bounds) or every
///   [`refresh_interval`](JwksBuilder::refresh_interval);
/// - a token naming a `kid` the keys lack triggers a fetch, at most one per
///   [`unknown_kid_interval`](JwksBuilder::unknown_kid_interval), and is accepted on
///   first sight when the provider has published its key (a rotation); within the
///   interval it is a 503 whose `Retry-After` is the fetch then made by itself
///   ([`VerifyError::KeyRefreshPending`](crate::VerifyError::KeyRefreshPending));
/// - with a [`max_key_age`](JwksBuilder::max_key_age), keys not refreshed for that
///   long are withdrawn (503) until a fetch succeeds;
/// - when a fetch fails, the last good keys stay in use, the failure is logged at
///   warn (the recovery at info) and shown by [`health`](Self::health), and fetches
///   are retried with backoff;
/// - keys that cannot verify signatures (encryption keys, unknown types, `RSA` without
///   `alg`…) are skipped with a warning naming their `kid`; a document with no usable
///   key at all counts as a failed fetch.
///
/// Cloning is cheap: clones share the keys and the background task, which stops once
/// the last clone and the last [`KeyRing`] (or verifier, or layer) holding the keys are
/// dropped.
///
/// # Example
///
/// ```no_run
/// use tower_jwt_revoke::jwks::Jwks;
/// use tower_jwt_revoke::store::InMemoryStore;
/// use tower_jwt_revoke::{JwtVerifier, RevocationLayer};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let jwks = Jwks::builder("https://idp.example/.well-known/jwks.json").build().await?;
/// let verifier = JwtVerifier::builder()
///     .key_ring(jwks.key_ring())
///     .issuer("https://idp.example/")
///     .audience("my-api")
///     .build()?;
/// let layer = RevocationLayer::new(verifier, InMemoryStore::new());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Jwks {
    ring: KeyRing,
    inner: Arc<Inner>,
}

/// Where the JWKS URL comes from.
pub(super) enum Source {
    /// Given.
    Url(Url),
    /// The `jwks_uri` of this issuer's discovery document, read on the first fetch.
    Issuer { issuer: String, discovery_url: Url },
}

/// What the ring's refresher and the background task share. The ring holds this (as
/// its refresher) and this holds the ring only weakly, so the keys' users alone decide
/// how long it lives.
struct Inner {
    source: Source,
    client: Client,
    settings: Settings,
    ring: WeakKeyRing,
    jwks_url: OnceLock<Url>,
    metadata: OnceLock<ProviderMetadata>,
    /// One fetch at a time; requests with unknown `kid`s queue here behind it.
    fetch_lock: tokio::sync::Mutex<()>,
    /// Fetches started so far, so that a request waiting for the lock can tell
    /// whether a fetch started after it asked (then the keys are as fresh as its own
    /// fetch would make them).
    fetches_started: AtomicU64,
    state: Mutex<State>,
    /// When the background task fetches next. Every fetch moves it, and the task,
    /// watching, wakes to the new time; when this is dropped (with the rest), the
    /// task stops at once rather than at its next wake-up.
    next_due: watch::Sender<Instant>,
    /// When the keys of the last successful fetch get too old to trust
    /// ([`max_key_age`](JwksBuilder::max_key_age)); watched by a task of its own,
    /// which withdraws them then.
    keys_expire: watch::Sender<Instant>,
    /// The runtime the background task runs on; fetches for unknown `kid`s run there
    /// too, in tasks of their own.
    runtime: tokio::runtime::Handle,
    /// This, for those tasks.
    me: Weak<Inner>,
}

impl Jwks {
    /// Starts configuring keys fetched from `url` (`https://`, or `http://` to a
    /// loopback host).
    ///
    /// See [`JwksBuilder`] for the settings and [`JwksBuilder::build`] to start.
    pub fn builder(url: impl Into<String>) -> JwksBuilder {
        JwksBuilder::new(url.into())
    }

    pub(super) async fn start(source: Source, settings: Settings) -> Result<Self, JwksError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| JwksError::NoRuntime)?;
        let target = match &source {
            Source::Url(url) => url,
            Source::Issuer { discovery_url, .. } => discovery_url,
        };
        let client = fetch::client(target, settings.timeout)?;
        let jwks_url = OnceLock::new();
        if let Source::Url(url) = &source {
            let _ = jwks_url.set(url.clone());
        }
        let ring = KeyRing::empty();
        let (next_due, due_watch) = watch::channel(Instant::now());
        let (keys_expire, expiry_watch) = watch::channel(due_in(Duration::MAX));
        let start_mode = settings.start_mode;
        let max_key_age = settings.max_key_age;
        let inner = Arc::new_cyclic(|me| Inner {
            source,
            client,
            settings,
            ring: ring.downgrade(),
            jwks_url,
            metadata: OnceLock::new(),
            fetch_lock: tokio::sync::Mutex::new(()),
            fetches_started: AtomicU64::new(0),
            state: Mutex::new(State::new()),
            next_due,
            keys_expire,
            runtime: runtime.clone(),
            me: me.clone(),
        });
        ring.set_refresher(Arc::clone(&inner) as Arc<dyn Refresh>);
        if start_mode == StartMode::Fail {
            let _fetching = inner.fetch_lock.lock().await;
            inner.fetch().await?;
        }
        runtime.spawn(refresh_in_background(Arc::downgrade(&inner), due_watch));
        if max_key_age.is_some() {
            runtime.spawn(expire_in_background(Arc::downgrade(&inner), expiry_watch));
        }
        Ok(Self { ring, inner })
    }

    /// The keys, for [`JwtVerifierBuilder::key_ring`](crate::JwtVerifierBuilder::key_ring)
    /// or [`issuer_keys`](crate::JwtVerifierBuilder::issuer_keys). Verifiers holding it
    /// see every refresh and ask this source for one when a token names an unknown
    /// `kid`.
    pub fn key_ring(&self) -> KeyRing {
        self.ring.clone()
    }

    /// How the source is doing: keys loaded, how many, the last success, the last
    /// error, failures in a row.
    pub fn health(&self) -> JwksHealth {
        self.inner.state().health.clone()
    }

    /// The JWKS URL (any password in it replaced), once known: with discovery, from
    /// the first successful discovery on.
    pub fn url(&self) -> Option<String> {
        self.inner.jwks_url.get().map(fetch::redact)
    }

    /// Fetches the keys now, whatever the intervals say (after a fetch already under
    /// way, if any), for an operator's "reload keys" or a test. On failure the
    /// keys in use stay.
    ///
    /// # Errors
    ///
    /// The fetch's error; it is also logged and shown by [`health`](Self::health).
    pub async fn refresh(&self) -> Result<(), JwksError> {
        let _fetching = self.inner.fetch_lock.lock().await;
        self.inner.fetch().await
    }

    pub(super) fn metadata(&self) -> Option<&ProviderMetadata> {
        self.inner.metadata.get()
    }
}

impl fmt::Debug for Jwks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jwks")
            .field("url", &self.url())
            .field("health", &self.health())
            .finish_non_exhaustive()
    }
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        // The state is plain data, consistent after every statement that changes it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The URL to name in logs and errors.
    fn shown_url(&self) -> String {
        match (self.jwks_url.get(), &self.source) {
            (Some(url), _) => fetch::redact(url),
            (
                None,
                Source::Url(url)
                | Source::Issuer {
                    discovery_url: url, ..
                },
            ) => fetch::redact(url),
        }
    }

    /// Fetches, installs and records. The caller holds `fetch_lock`.
    async fn fetch(&self) -> Result<(), JwksError> {
        self.fetches_started.fetch_add(1, Ordering::AcqRel);
        let started = SystemTime::now();
        let outcome = self.fetch_keys().await;
        let url = self.shown_url();
        let mut state = self.state();
        let (outcome, next_in) = match outcome {
            Ok((keys, max_age)) => {
                let count = keys.len();
                if let Some(ring) = self.ring.upgrade() {
                    ring.replace(keys);
                }
                if let Some(max_key_age) = self.settings.max_key_age {
                    self.keys_expire.send_replace(due_in(max_key_age));
                }
                let next_in = jitter(self.settings.refresh_after(max_age));
                state.record_success(&url, count, next_in);
                state.last_success_started = Some(started);
                (Ok(()), next_in)
            }
            Err(error) => {
                let failures = state.record_failure(&url, &error);
                (Err(error), jitter(self.settings.retry_after(failures)))
            }
        };
        self.next_due.send_replace(due_in(next_in));
        outcome
    }

    async fn fetch_keys(&self) -> Result<(KeySet, Option<Duration>), JwksError> {
        let timeout = self.settings.timeout;
        let url = match (self.jwks_url.get(), &self.source) {
            (Some(url), _) => url,
            (None, Source::Url(url)) => url,
            (
                None,
                Source::Issuer {
                    issuer,
                    discovery_url,
                },
            ) => {
                let metadata =
                    discovery::fetch_metadata(&self.client, issuer, discovery_url, timeout).await?;
                // Plain HTTP to loopback only from an issuer on loopback.
                let url = fetch::parse_url_from(&metadata.jwks_uri, discovery_url)?;
                let _ = self.metadata.set(metadata);
                self.jwks_url.get_or_init(|| url)
            }
        };
        let document = fetch::get(&self.client, url, JWKS_ACCEPT, timeout).await?;
        let shown = fetch::redact(url);
        let (keys, skipped) = document::key_set(&shown, &document.body)?;
        self.state().report_skipped(&shown, &skipped);
        if keys.is_empty() {
            return Err(JwksError::NoUsableKeys {
                url: shown,
                skipped: skipped.len(),
            });
        }
        Ok((keys, document.max_age))
    }
}

impl Inner {
    /// Withdraws the keys fetched last if they are still those that expire at `at`.
    fn expire_keys(&self, at: Instant) {
        let mut state = self.state();
        if *self.keys_expire.borrow() != at {
            return; // A fetch succeeded meanwhile.
        }
        if let Some(ring) = self.ring.upgrade() {
            ring.clear();
        }
        state.record_expiry(&self.shown_url(), self.settings.max_key_age.unwrap_or_default());
    }
}

/// Fetches whenever the last fetch says the next is due, until the keys' last user is
/// gone.
async fn refresh_in_background(inner: Weak<Inner>, mut due: watch::Receiver<Instant>) {
    loop {
        let next = *due.borrow_and_update();
        match wait_until(next, &mut due).await {
            Wake::Due => {}
            Wake::Moved => continue,
            Wake::Stopped => return,
        }
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let _fetching = inner.fetch_lock.lock().await;
        // A fetch for an unknown kid may have run while this waited for the lock.
        if Instant::now() < *due.borrow() {
            continue;
        }
        let _ = inner.fetch().await;
    }
}

/// Withdraws the keys once they are older than the maximum key age without a fetch
/// having succeeded since, until the keys' last user is gone.
async fn expire_in_background(inner: Weak<Inner>, mut expiry: watch::Receiver<Instant>) {
    loop {
        let at = *expiry.borrow_and_update();
        match wait_until(at, &mut expiry).await {
            Wake::Due => {}
            Wake::Moved => continue,
            Wake::Stopped => return,
        }
        match inner.upgrade() {
            Some(inner) => inner.expire_keys(at),
            None => return,
        }
        // Nothing more to withdraw until a fetch succeeds and moves the time.
        if expiry.changed().await.is_err() {
            return;
        }
    }
}
