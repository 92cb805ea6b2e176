//! [`RevocationLayer`]: configuration, and the [`Layer`] that applies it.
//!
//! In this folder: the layer and its settings (`mod.rs`), the service and its per-request
//! flow (`service.rs`), its response future (`future.rs`), the response body that ends
//! when its token is refused (`body.rs`), where a token is read from (`extract.rs`) and
//! the rejections and their responses (`reject.rs`): tower-http's split. May use: the verifier, the stores, telemetry. Used by: applications, the
//! frameworks' helpers.

pub(crate) mod body;
pub(crate) mod extract;
pub(crate) mod future;
pub(crate) mod reject;
pub(crate) mod service;

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;

use crate::layer::body::StreamEnding;
use crate::layer::extract::TokenSource;
use crate::layer::reject::DefaultRejection;
use crate::layer::service::{Config, RevocationService};
use crate::revoke::Revoker;
use crate::store::RevocationStore;
use crate::store::watch::{DEFAULT_WATCH_INTERVAL, Watch};
use crate::verify::JwtVerifier;

/// How long the layer waits for the store before applying the [`FailurePolicy`],
/// unless configured: 200 ms. Long enough for a loaded Redis on the same network,
/// short enough that an outage does not stall every request.
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_millis(200);

/// What the layer does when the store errs or does not answer in time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailurePolicy {
    /// Refuse the request with a 503 (gRPC: `UNAVAILABLE`). The default: a revoked
    /// token is never let in.
    #[default]
    FailClosed,
    /// Let the request through, logging a `tracing` warning. Availability over
    /// revocation: a revoked token may be accepted while the store is down.
    FailOpen,
}

/// A [`Layer`](https://docs.rs/tower-layer/0.3/tower_layer/trait.Layer.html) that verifies
/// each request's JWT and refuses revoked tokens.
///
/// For every request it reads the token (by default from `Authorization: Bearer`),
/// verifies it with the [`JwtVerifier`], asks the store in one call whether it, its
/// subject or its session is revoked, and only then calls the inner service, with the
/// [`VerifiedToken`](crate::VerifiedToken) in the request extensions. Refusals are
/// answered by the rejection (by default [`DefaultRejection`]), never as `Err`.
///
/// The store's type is not part of the layer's: pick the store from configuration at
/// run time and every function that names the layer (or a [`Revoker`]) stays the
/// same. Every setting can be changed on an existing layer with its `with_*` method;
/// the others are kept.
///
/// Cheap to clone; the store and the rejection are shared. Runs on Tokio: the store
/// check is timed with `tokio::time`, so the runtime needs its time driver (as
/// `#[tokio::main]` has).
///
/// Building a layer also installs this crate's signature backend as jsonwebtoken's
/// default when none is (see [`install_crypto_provider`](crate::install_crypto_provider)).
///
/// ```
/// use std::time::Duration;
/// use tower_jwt_revoke::store::InMemoryStore;
/// use tower_jwt_revoke::{FailurePolicy, JwtVerifier, RevocationLayer, TokenSource, VerificationKey};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let key = |secret: &[u8]| VerificationKey::hmac(jsonwebtoken::Algorithm::HS256, secret);
/// let verifier = JwtVerifier::builder().key(key(b"a long random secret")?).build()?;
/// let layer = RevocationLayer::new(verifier, InMemoryStore::new())
///     .with_token_sources([TokenSource::AuthorizationBearer, TokenSource::cookie("token")])
///     .with_check_timeout(Duration::from_millis(100))
///     .with_failure_policy(FailurePolicy::FailClosed);
/// let revoker = layer.revoker(); // for the logout handler
///
/// // Later: a new key, same sources, timeout and policy.
/// let rotated = JwtVerifier::builder().key(key(b"the next long random secret")?).build()?;
/// let layer = layer.with_verifier(rotated);
/// assert_eq!(layer.check_timeout(), Duration::from_millis(100));
/// # Ok(()) }
/// ```
#[must_use]
pub struct RevocationLayer<Reject = DefaultRejection> {
    verifier: JwtVerifier,
    store: Arc<dyn RevocationStore>,
    sources: Arc<[TokenSource]>,
    check_timeout: Duration,
    failure_policy: FailurePolicy,
    allow_anonymous: bool,
    rejection: Arc<Reject>,
    /// The store's waiters for open streams, attached to every token let through.
    watch: Arc<Watch>,
    watch_interval: Duration,
    stream_ending: StreamEnding,
}

impl RevocationLayer {
    /// A layer verifying with `verifier` and checking `store`, reading
    /// `Authorization: Bearer`, failing closed after [`DEFAULT_CHECK_TIMEOUT`].
    ///
    /// `store` is any [`RevocationStore`], an `Arc<dyn RevocationStore>` chosen at run
    /// time included.
    pub fn new(verifier: JwtVerifier, store: impl RevocationStore) -> Self {
        crate::verify::crypto::install_crypto_provider();
        let store = shared_store(store);
        Self {
            verifier,
            watch: Arc::new(Watch::new(Arc::clone(&store), DEFAULT_WATCH_INTERVAL)),
            watch_interval: DEFAULT_WATCH_INTERVAL,
            stream_ending: StreamEnding::default(),
            store,
            sources: Arc::new([TokenSource::AuthorizationBearer]),
            check_timeout: DEFAULT_CHECK_TIMEOUT,
            failure_policy: FailurePolicy::default(),
            allow_anonymous: false,
            rejection: Arc::new(DefaultRejection),
        }
    }
}

impl<Reject> RevocationLayer<Reject> {
    /// Verifies with `verifier` from now on (a key rotation, say); every other
    /// setting is kept.
    pub fn with_verifier(mut self, verifier: JwtVerifier) -> Self {
        self.verifier = verifier;
        self
    }

    /// Checks `store` from now on; every other setting is kept.
    pub fn with_store(mut self, store: impl RevocationStore) -> Self {
        self.store = shared_store(store);
        self.watch = Arc::new(Watch::new(Arc::clone(&self.store), self.watch_interval));
        self
    }

    /// How often the layer asks a store that does not wake open streams itself
    /// (`RedisStore`, custom stores without
    /// [`watchers`](RevocationStore::watchers)) whether the tokens of its open streams
    /// were revoked (default [`DEFAULT_WATCH_INTERVAL`](crate::store::DEFAULT_WATCH_INTERVAL), 1 s):
    /// the longest a stream outlives a revocation on such a store. Each tick asks
    /// about all of them in one [`lookup_many`](RevocationStore::lookup_many) (on
    /// Redis, one `MGET` per bucket), and only while streams are open. `InMemoryStore`
    /// and `MirrorStore` wake the streams as they apply a revocation; this setting does
    /// not apply to them.
    ///
    /// Streams opened before this call keep the interval they started with.
    pub fn with_watch_interval(mut self, interval: Duration) -> Self {
        self.watch_interval = interval;
        self.watch = Arc::new(Watch::new(Arc::clone(&self.store), interval));
        self
    }

    /// Where tokens are read from, tried in order.
    pub fn with_token_sources(mut self, sources: impl IntoIterator<Item = TokenSource>) -> Self {
        self.sources = sources.into_iter().collect();
        self
    }

    /// How long to wait for the store (default [`DEFAULT_CHECK_TIMEOUT`]).
    ///
    /// Stores that tell a silent backend from a busy process time themselves
    /// ([`RevocationStore::lookup_within`]): `RedisStore` and `MirrorStore` fail a
    /// check when Redis stays silent for their command timeout (150 ms by default),
    /// not when a burst queued in this process made the request wait.
    pub fn with_check_timeout(mut self, timeout: Duration) -> Self {
        self.check_timeout = timeout;
        self
    }

    /// What to do when the store fails (default [`FailurePolicy::FailClosed`]).
    pub fn with_failure_policy(mut self, policy: FailurePolicy) -> Self {
        self.failure_policy = policy;
        self
    }

    /// Lets requests that carry **no** token through, without a
    /// [`VerifiedToken`](crate::VerifiedToken) in their extensions, for routes where
    /// signing in is optional. A request that carries a token is still verified and
    /// checked, and refused when it is invalid or revoked.
    pub fn with_anonymous(mut self, allow: bool) -> Self {
        self.allow_anonymous = allow;
        self
    }

    /// Answers refusals with `rejection` instead of [`DefaultRejection`]; every other
    /// setting is kept. See [`OnRejection`](crate::OnRejection) for closures, and
    /// `with_rejection_response` (feature `axum`) for a closure returning
    /// `impl IntoResponse`.
    pub fn with_rejection<NewReject>(self, rejection: NewReject) -> RevocationLayer<NewReject> {
        RevocationLayer {
            verifier: self.verifier,
            store: self.store,
            sources: self.sources,
            check_timeout: self.check_timeout,
            failure_policy: self.failure_policy,
            allow_anonymous: self.allow_anonymous,
            rejection: Arc::new(rejection),
            watch: self.watch,
            watch_interval: self.watch_interval,
            stream_ending: self.stream_ending,
        }
    }

    /// The verifier.
    pub fn verifier(&self) -> &JwtVerifier {
        &self.verifier
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn RevocationStore> {
        &self.store
    }

    /// Where tokens are read from, in order.
    pub fn token_sources(&self) -> &[TokenSource] {
        &self.sources
    }

    /// How long the layer waits for the store.
    pub fn check_timeout(&self) -> Duration {
        self.check_timeout
    }

    /// What the layer does when the store fails.
    pub fn failure_policy(&self) -> FailurePolicy {
        self.failure_policy
    }

    /// Whether requests without a token are let through.
    pub fn allows_anonymous(&self) -> bool {
        self.allow_anonymous
    }

    /// Which responses end by themselves when their token is refused while they are
    /// still being sent (default [`StreamEnding::Grpc`]).
    ///
    /// The layer wraps the response body in a [`RevocableBody`](crate::RevocableBody):
    /// a gRPC server stream then ends with `grpc-status: 16` (`UNAUTHENTICATED`) and a
    /// `grpc-message` (`token revoked`, `token expired`); with
    /// [`StreamEnding::GrpcAndHttp`], an HTTP body (Server-Sent Events, a long
    /// download) fails, so hyper closes its HTTP/1 connection or resets its HTTP/2
    /// stream. Bodies the layer can wrap without changing the response type: tonic's
    /// (`tonic::body::Body`, feature `tonic`) and axum's (`axum::body::Body`, feature
    /// `axum`); others are passed on as they are (wrap them in a `RevocableBody` in the
    /// handler). A WebSocket's upgrade response (101) is never wrapped: its handler
    /// closes the socket (code 1008) when
    /// [`VerifiedToken::revoked`](crate::VerifiedToken::revoked) resolves.
    ///
    /// A response written at once (any unary call) costs one allocation (the wrapper,
    /// boxed into the same body type) and never touches the store's waiters: the token
    /// is watched only from the first time the body has to wait.
    pub fn with_stream_ending(mut self, ending: StreamEnding) -> Self {
        self.stream_ending = ending;
        self
    }

    /// Which responses end by themselves when their token is refused.
    pub fn stream_ending(&self) -> StreamEnding {
        self.stream_ending
    }

    /// How often the layer polls a store that does not wake open streams itself; `None`
    /// when the store does (`InMemoryStore`, `MirrorStore`).
    pub fn watch_interval(&self) -> Option<Duration> {
        self.watch.poll_interval()
    }

    /// `token`, watched through this layer's store: its
    /// [`revoked`](crate::VerifiedToken::revoked) future then resolves on revocation,
    /// not only at expiry. For a token verified outside the layer (a WebSocket that
    /// sends its token in its first message, say); tokens the layer lets through are
    /// watched already.
    pub fn watched(&self, mut token: crate::VerifiedToken) -> crate::VerifiedToken {
        token.watch = Some(Arc::clone(&self.watch));
        token
    }

    /// The rejection.
    pub fn rejection(&self) -> &Reject {
        &self.rejection
    }

    /// A [`Revoker`] writing to this layer's store, with this layer's verifier.
    pub fn revoker(&self) -> Revoker {
        Revoker::from_shared(self.verifier.clone(), Arc::clone(&self.store))
    }
}

/// The store behind an `Arc`, without wrapping one that already is an
/// `Arc<dyn RevocationStore>` (a second pointer to chase on every check).
pub(crate) fn shared_store(store: impl RevocationStore) -> Arc<dyn RevocationStore> {
    let mut store = Some(store);
    if let Some(shared) = (&mut store as &mut dyn Any).downcast_mut::<Option<Arc<dyn RevocationStore>>>()
        && let Some(shared) = shared.take()
    {
        return shared;
    }
    match store {
        Some(store) => Arc::new(store),
        None => unreachable!("the store is taken only when it is already shared"),
    }
}

impl<Reject> Clone for RevocationLayer<Reject> {
    fn clone(&self) -> Self {
        Self {
            verifier: self.verifier.clone(),
            store: Arc::clone(&self.store),
            sources: Arc::clone(&self.sources),
            check_timeout: self.check_timeout,
            failure_policy: self.failure_policy,
            allow_anonymous: self.allow_anonymous,
            rejection: Arc::clone(&self.rejection),
            watch: Arc::clone(&self.watch),
            watch_interval: self.watch_interval,
            stream_ending: self.stream_ending,
        }
    }
}

impl<Reject> fmt::Debug for RevocationLayer<Reject> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevocationLayer")
            .field("verifier", &self.verifier)
            .field("sources", &self.sources)
            .field("check_timeout", &self.check_timeout)
            .field("failure_policy", &self.failure_policy)
            .field("allow_anonymous", &self.allow_anonymous)
            .finish_non_exhaustive()
    }
}

impl<S, Reject> Layer<S> for RevocationLayer<Reject> {
    type Service = RevocationService<S, Reject>;

    fn layer(&self, inner: S) -> Self::Service {
        let config = Config {
            verifier: self.verifier.clone(),
            store: Arc::clone(&self.store),
            sources: Arc::clone(&self.sources),
            check_timeout: self.check_timeout,
            failure_policy: self.failure_policy,
            allow_anonymous: self.allow_anonymous,
            rejection: Arc::clone(&self.rejection),
            watch: Arc::clone(&self.watch),
            stream_ending: self.stream_ending,
        };
        RevocationService::new(inner, Arc::new(config))
    }
}
