//! [`RevocationLayer`]: configuration, and the [`Layer`] that applies it.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;

use crate::extract::TokenSource;
use crate::reject::DefaultRejection;
use crate::revoke::Revoker;
use crate::service::{Config, RevocationService};
use crate::store::RevocationStore;
use crate::token::NoCustomClaims;
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

/// A [`Layer`] that verifies each request's JWT and refuses revoked tokens.
///
/// For every request it reads the token (by default from `Authorization: Bearer`),
/// verifies it with the [`JwtVerifier`], asks the store in one call whether it, its
/// subject or its session is revoked, and only then calls the inner service, with the
/// [`VerifiedToken<C>`](crate::VerifiedToken) in the request extensions. Refusals are
/// answered by the rejection (by default [`DefaultRejection`]), never as `Err`.
///
/// Cheap to clone; the store and the rejection are shared. Runs on Tokio: the store
/// check is timed with `tokio::time`, so the runtime needs its time driver (as
/// `#[tokio::main]` has).
///
/// ```
/// use std::time::Duration;
/// use tower_jwt_revoke::{
///     FailurePolicy, InMemoryStore, JwtVerifier, RevocationLayer, TokenSource, VerificationKey,
/// };
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let verifier = JwtVerifier::builder()
///     .key(VerificationKey::hmac(jsonwebtoken::Algorithm::HS256, b"a long random secret")?)
///     .build()?;
/// let layer = RevocationLayer::new(verifier, InMemoryStore::new())
///     .with_token_sources([TokenSource::AuthorizationBearer, TokenSource::cookie("token")])
///     .with_check_timeout(Duration::from_millis(100))
///     .with_failure_policy(FailurePolicy::FailClosed);
/// let revoker = layer.revoker(); // for the logout handler
/// # Ok(()) }
/// ```
#[must_use]
pub struct RevocationLayer<S, C = NoCustomClaims, R = DefaultRejection> {
    verifier: JwtVerifier,
    store: S,
    sources: Arc<[TokenSource]>,
    check_timeout: Duration,
    failure_policy: FailurePolicy,
    allow_anonymous: bool,
    rejection: Arc<R>,
    _claims: PhantomData<fn() -> C>,
}

impl<S> RevocationLayer<S> {
    /// A layer verifying with `verifier` and checking `store`, reading
    /// `Authorization: Bearer`, failing closed after [`DEFAULT_CHECK_TIMEOUT`].
    pub fn new(verifier: JwtVerifier, store: S) -> Self {
        Self {
            verifier,
            store,
            sources: Arc::new([TokenSource::AuthorizationBearer]),
            check_timeout: DEFAULT_CHECK_TIMEOUT,
            failure_policy: FailurePolicy::default(),
            allow_anonymous: false,
            rejection: Arc::new(DefaultRejection),
            _claims: PhantomData,
        }
    }
}

impl<S, C, R> RevocationLayer<S, C, R> {
    /// Decodes the application's own claims as `C` (see
    /// [`VerifiedToken::claims`](crate::VerifiedToken::claims)).
    pub fn with_claims<C2>(self) -> RevocationLayer<S, C2, R> {
        RevocationLayer {
            verifier: self.verifier,
            store: self.store,
            sources: self.sources,
            check_timeout: self.check_timeout,
            failure_policy: self.failure_policy,
            allow_anonymous: self.allow_anonymous,
            rejection: self.rejection,
            _claims: PhantomData,
        }
    }

    /// Where tokens are read from, tried in order.
    pub fn with_token_sources(mut self, sources: impl IntoIterator<Item = TokenSource>) -> Self {
        self.sources = sources.into_iter().collect();
        self
    }

    /// How long to wait for the store (default [`DEFAULT_CHECK_TIMEOUT`]).
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

    /// Answers refusals with `rejection` instead of [`DefaultRejection`].
    pub fn with_rejection<R2>(self, rejection: R2) -> RevocationLayer<S, C, R2> {
        RevocationLayer {
            verifier: self.verifier,
            store: self.store,
            sources: self.sources,
            check_timeout: self.check_timeout,
            failure_policy: self.failure_policy,
            allow_anonymous: self.allow_anonymous,
            rejection: Arc::new(rejection),
            _claims: PhantomData,
        }
    }

    /// The verifier.
    pub fn verifier(&self) -> &JwtVerifier {
        &self.verifier
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// A [`Revoker`] writing to this layer's store, with this layer's verifier.
    pub fn revoker(&self) -> Revoker<S>
    where
        S: RevocationStore + Clone,
    {
        Revoker::new(self.verifier.clone(), self.store.clone())
    }
}

impl<S: Clone, C, R> Clone for RevocationLayer<S, C, R> {
    fn clone(&self) -> Self {
        Self {
            verifier: self.verifier.clone(),
            store: self.store.clone(),
            sources: Arc::clone(&self.sources),
            check_timeout: self.check_timeout,
            failure_policy: self.failure_policy,
            allow_anonymous: self.allow_anonymous,
            rejection: Arc::clone(&self.rejection),
            _claims: PhantomData,
        }
    }
}

impl<S, C, R> fmt::Debug for RevocationLayer<S, C, R> {
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

impl<I, S: RevocationStore + Clone, C, R> Layer<I> for RevocationLayer<S, C, R> {
    type Service = RevocationService<I, C, R>;

    fn layer(&self, inner: I) -> Self::Service {
        let config = Config {
            verifier: self.verifier.clone(),
            store: Arc::new(self.store.clone()),
            sources: Arc::clone(&self.sources),
            check_timeout: self.check_timeout,
            failure_policy: self.failure_policy,
            allow_anonymous: self.allow_anonymous,
            rejection: Arc::clone(&self.rejection),
        };
        RevocationService::new(inner, Arc::new(config))
    }
}
