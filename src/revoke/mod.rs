//! [`Revoker`]: records revocations with the right lifetimes.
//!
//! In this folder: the [`Revoker`] (`mod.rs`) and revoking a token read without its key
//! (`unverified.rs`, for operators). May use: the verifier, the stores. Used by: the
//! layer (`RevocationLayer::revoker`), the endpoints, applications.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::StatusCode;

use crate::observe::telemetry;
use crate::store::key::RevocationKey;
use crate::store::{RevocationStore, StoreError};
use crate::verify::token::VerifiedToken;
use crate::verify::{JwtVerifier, VerifyError};

mod unverified;

/// Records revocations in a store, each kept exactly as long as it matters.
///
/// - a token: until no verifier would accept it any more (`exp` + leeway), then
///   the store forgets it;
/// - a subject ("log out everywhere"), a session, or everything: as a watermark or
///   marker kept for the longest token lifetime the verifier accepts, plus leeway.
///
/// Get one from [`RevocationLayer::revoker`](crate::RevocationLayer::revoker), or
/// build one with [`Revoker::new`]. Cheap to clone. Like the layer, it does not name
/// the store's type, so a handler's `State<Revoker>` stays the same whichever store
/// configuration picks.
#[derive(Clone)]
pub struct Revoker {
    verifier: JwtVerifier,
    store: Arc<dyn RevocationStore>,
    timeout: Duration,
}

impl std::fmt::Debug for Revoker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Revoker")
            .field("verifier", &self.verifier)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// How long a revocation may take to record before it fails, unless configured.
pub const DEFAULT_REVOKE_TIMEOUT: Duration = Duration::from_secs(5);

/// What a revocation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Revocation {
    /// Recorded; the store keeps it for this long.
    Recorded {
        /// How long the record lives.
        ttl: Duration,
    },
    /// Nothing to do: no verifier would accept the token any more.
    AlreadyExpired,
}

/// Why a revocation was not recorded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RevokeError {
    /// The token to revoke did not verify (and is not merely expired), so it names
    /// nothing that could be let in.
    /// Or, when the [error](VerifyError::is_server_side) is the server's (the signing
    /// keys are unavailable, or about to be fetched again), it cannot be verified now:
    /// a 503, to retry.
    #[error("{}", if .0.is_server_side() { "the token cannot be verified now; try again" } else { "cannot revoke an invalid token" })]
    InvalidToken(#[source] VerifyError),
    /// The verifier does not accept exactly one issuer, so a bare subject or session id
    /// does not say which tokens it names: use the `_for` or `_of` form.
    #[error(
        "the verifier accepts no single issuer; name the issuer (revoke_*_for) or revoke from a token (revoke_*_of)"
    )]
    AmbiguousIssuer,
    /// The token lacks the claim this revocation is keyed on.
    #[error("the token has no `{0}` claim")]
    MissingClaim(&'static str),
    /// The store failed: the revocation is **not** recorded.
    #[error(transparent)]
    Store(StoreError),
    /// The revocation **is** recorded, and refused from now on, but Redis did not
    /// confirm it reached the replicas (or the append-only file) the store was told to
    /// wait for (an `Acknowledgement`, with the `redis` feature), in time: a
    /// failover (or restart) in the next moments may lose it. Trying again is safe (a
    /// revocation is idempotent) and waits for the confirmation again.
    #[error(transparent)]
    Unacknowledged(StoreError),
}

impl From<StoreError> for RevokeError {
    fn from(error: StoreError) -> Self {
        if error.is_unacknowledged() {
            Self::Unacknowledged(error)
        } else {
            Self::Store(error)
        }
    }
}

impl RevokeError {
    /// The HTTP status that fits this error, for a handler to answer with: the
    /// client's mistakes are 4xx, a store failure is 503 (retry), and a verifier that
    /// cannot name an issuer is the server's own misconfiguration (500).
    ///
    /// An [unacknowledged](Self::Unacknowledged) revocation is a 503 too: the deployment
    /// asked for revocations that survive a failover, and this one may not; a retry is
    /// safe and usually confirmed (a replica that lagged a moment). A handler that would
    /// rather tell a user "logged out" at once may answer success instead: the token is
    /// refused already, and stays refused unless Redis fails over in the next moments.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidToken(error) if error.is_server_side() => StatusCode::SERVICE_UNAVAILABLE,
            Self::InvalidToken(_) | Self::MissingClaim(_) => StatusCode::BAD_REQUEST,
            Self::AmbiguousIssuer => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Store(_) | Self::Unacknowledged(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl RevokeError {
    /// When to try again, for the errors a retry can mend (those answered 503): the
    /// time until the signing keys are fetched again for a token whose key is not
    /// known yet ([`VerifyError::KeyRefreshPending`]), else one second.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::InvalidToken(error) if error.is_server_side() => {
                Some(error.retry_after().unwrap_or(Duration::from_secs(1)))
            }
            Self::Store(_) | Self::Unacknowledged(_) => Some(Duration::from_secs(1)),
            _ => None,
        }
    }
}

impl Revoker {
    /// A revoker writing to `store` (any [`RevocationStore`], an
    /// `Arc<dyn RevocationStore>` included); `verifier` must be the one requests are
    /// checked with, since its leeway and maximum lifetime decide how long records
    /// last.
    pub fn new(verifier: JwtVerifier, store: impl RevocationStore) -> Self {
        crate::verify::crypto::install_crypto_provider();
        Self::from_shared(verifier, crate::layer::shared_store(store))
    }

    pub(crate) fn from_shared(verifier: JwtVerifier, store: Arc<dyn RevocationStore>) -> Self {
        Self {
            verifier,
            store,
            timeout: DEFAULT_REVOKE_TIMEOUT,
        }
    }

    /// How long a revocation may take to record (default [`DEFAULT_REVOKE_TIMEOUT`]);
    /// past it, the call fails with [`RevokeError::Store`] instead of hanging the
    /// logout handler with the store.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The store written to.
    pub fn store(&self) -> &Arc<dyn RevocationStore> {
        &self.store
    }

    /// The verifier whose leeway and maximum lifetime decide how long records last.
    pub fn verifier(&self) -> &JwtVerifier {
        &self.verifier
    }

    /// How long a revocation may take to record before it fails.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// How long a token revocation must last for a token expiring at `expires_at`
    /// (leeway included); `None`, counted, when the token has expired already.
    fn token_ttl(&self, expires_at: u64) -> Option<Duration> {
        let ttl = self.verifier.revocation_ttl(expires_at, SystemTime::now());
        if ttl.is_none() {
            telemetry::revocation("token", "already_expired");
        }
        ttl
    }

    /// Revokes this token (logout). It stays refused until it would have expired
    /// anyway, leeway included; revoking an expired token is a successful no-op.
    pub async fn revoke(&self, token: &VerifiedToken) -> Result<Revocation, RevokeError> {
        let Some(ttl) = self.token_ttl(token.expires_at()) else {
            return Ok(Revocation::AlreadyExpired);
        };
        let subject = token.subject_key();
        self.bounded(
            "token",
            self.store
                .revoke_token_of(&token.revocation_key(), subject.as_ref(), ttl),
        )
        .await?;
        tracing::debug!(token = %token.revocation_key(), ?ttl, "revoked a token");
        Ok(Revocation::Recorded { ttl })
    }

    /// Verifies `token` and revokes it: for a token presented outside the layer (an
    /// admin endpoint, a refresh flow). A genuine but expired token is a successful
    /// no-op; a forged or malformed one is an error.
    ///
    /// A token naming a key the verifier's JWKS lacks has the keys fetched again
    /// first (rate limited), as the layer does; when no fetch can be made now, the
    /// error is [`VerifyError::KeyRefreshPending`] (503, retry).
    pub async fn revoke_token(&self, token: &str) -> Result<Revocation, RevokeError> {
        let verified = self
            .verifier
            .refreshing(token, |token| self.verifier.verify_for_revocation(token))
            .await;
        match verified {
            Ok(Some(verified)) => self.revoke(&verified).await,
            Ok(None) => Ok(Revocation::AlreadyExpired),
            Err(error) => Err(RevokeError::InvalidToken(error)),
        }
    }

    /// Log out everywhere: refuses every token of `subject` issued until now, from the
    /// verifier's issuer.
    ///
    /// Subjects are namespaced by issuer (`iss`), so this needs the verifier to accept
    /// exactly one issuer; otherwise it fails with [`RevokeError::AmbiguousIssuer`]
    /// rather than record a revocation no token would match. Name the issuer with
    /// [`revoke_subject_for`](Self::revoke_subject_for) then, or revoke the subject of a
    /// token in hand with [`revoke_subject_of`](Self::revoke_subject_of).
    ///
    /// Tokens issued in the current second are refused too (`iat` has one-second
    /// resolution, and a token issued just before the call must not survive it). The
    /// watermark is this service's clock: tokens whose issuer's clock runs ahead of it
    /// by `s` seconds, issued within `s` seconds before the call, are not covered.
    pub async fn revoke_subject(&self, subject: &str) -> Result<Revocation, RevokeError> {
        let issuer = self.verifier.sole_issuer().ok_or(RevokeError::AmbiguousIssuer)?;
        self.revoke_subject_for(Some(issuer), subject).await
    }

    /// Log out everywhere for `subject` of `issuer` (`None`: tokens without `iss`).
    pub async fn revoke_subject_for(
        &self,
        issuer: Option<&str>,
        subject: &str,
    ) -> Result<Revocation, RevokeError> {
        self.revoke_subject_key(&RevocationKey::subject(issuer, subject))
            .await
    }

    /// Log out everywhere for the subject of `token` (under its own issuer).
    pub async fn revoke_subject_of(&self, token: &VerifiedToken) -> Result<Revocation, RevokeError> {
        let key = token.subject_key().ok_or(RevokeError::MissingClaim("sub"))?;
        self.revoke_subject_key(&key).await
    }

    /// Refuses every token carrying session id `session` from the verifier's issuer;
    /// like [`revoke_subject`](Self::revoke_subject), it needs the verifier to accept
    /// exactly one issuer, else see [`revoke_session_for`](Self::revoke_session_for).
    pub async fn revoke_session(&self, session: &str) -> Result<Revocation, RevokeError> {
        let issuer = self.verifier.sole_issuer().ok_or(RevokeError::AmbiguousIssuer)?;
        self.revoke_session_for(Some(issuer), session).await
    }

    /// Refuses every token carrying session id `session` of `issuer` (`None`: tokens
    /// without `iss`).
    pub async fn revoke_session_for(
        &self,
        issuer: Option<&str>,
        session: &str,
    ) -> Result<Revocation, RevokeError> {
        self.revoke_session_key(&RevocationKey::session(issuer, session))
            .await
    }

    /// Refuses every token of the session of `token` (its `sid`).
    pub async fn revoke_session_of(&self, token: &VerifiedToken) -> Result<Revocation, RevokeError> {
        let key = token.session_key().ok_or(RevokeError::MissingClaim("sid"))?;
        self.revoke_session_key(&key).await
    }

    /// Refuses every token issued until now, whoever it belongs to (a key
    /// compromise, say).
    pub async fn revoke_all(&self) -> Result<Revocation, RevokeError> {
        let ttl = self.verifier.watermark_ttl();
        self.bounded("all", self.store.raise_global_watermark(now_secs(), ttl))
            .await?;
        tracing::info!(?ttl, "revoked every token issued until now");
        Ok(Revocation::Recorded { ttl })
    }

    /// Runs a store write under the revoke timeout, counting it under `scope`.
    async fn bounded(
        &self,
        scope: &'static str,
        write: impl Future<Output = Result<(), StoreError>>,
    ) -> Result<(), StoreError> {
        let written = tokio::time::timeout(self.timeout, write)
            .await
            .unwrap_or_else(|_| Err(StoreError::msg("the store did not record the revocation in time")));
        let result = match &written {
            Ok(()) => "recorded",
            Err(error) if error.is_unacknowledged() => "unacknowledged",
            Err(_) => "failed",
        };
        telemetry::revocation(scope, result);
        written
    }

    async fn revoke_subject_key(&self, key: &RevocationKey) -> Result<Revocation, RevokeError> {
        let ttl = self.verifier.watermark_ttl();
        self.bounded(
            "subject",
            self.store.raise_subject_watermark(key, now_secs(), ttl),
        )
        .await?;
        tracing::debug!(subject = %key, ?ttl, "revoked every token of a subject");
        Ok(Revocation::Recorded { ttl })
    }

    async fn revoke_session_key(&self, key: &RevocationKey) -> Result<Revocation, RevokeError> {
        let ttl = self.verifier.session_ttl();
        self.bounded("session", self.store.revoke_session(key, ttl))
            .await?;
        tracing::debug!(session = %key, ?ttl, "revoked a session");
        Ok(Revocation::Recorded { ttl })
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}
