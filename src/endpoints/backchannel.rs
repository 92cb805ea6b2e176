//! [`BackChannelLogout`]: the OpenID Connect Back-Channel Logout 1.0 receiver.

use http::request::Parts;

use super::form::Form;
use super::form_endpoint::{FormEndpoint, form_service, limit_settings};
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use http::Response;

use super::logout_token::{self, LogoutError, LogoutToken};
use super::response::{self};
use super::{BuildError, Limits};
use crate::revoke::{RevokeError, Revoker};
use crate::store::key::RevocationKey;
use crate::store::{RevocationQuery, StoreError};
use crate::verify::{JwtVerifier, same_media_type};

/// The receiver of [OpenID Connect Back-Channel Logout 1.0]: a Tower service the
/// provider POSTs `logout_token=…` to when a user's session with it ends.
///
/// The logout token is checked as §2.6 lists: signature with the provider's keys
/// (those of the verifier given to [`builder`](Self::builder), refreshed once on an
/// unknown `kid` when they come from a JWKS), `iss`, `aud` (this application's client
/// id), `iat`, `exp`, a `typ` that is absent, `JWT` or `logout+jwt`, the back-channel
/// logout member in `events`, `sub` or `sid`, no `nonce`, and a `jti` not seen before.
/// Then the session (`sid`, under the token's `iss`) is revoked through the
/// [`Revoker`], or, when the token names no session, every token of the subject (`sub`,
/// "log out everywhere"), and the provider gets a 200.
///
/// | outcome                                   | answer                                              |
/// |-------------------------------------------|-----------------------------------------------------|
/// | logged out                                | 200, empty body                                     |
/// | a rule of §2.6 broken, `logout_token` missing or repeated, a replayed `jti` | 400 `{"error":"invalid_request","error_description":"…"}` |
/// | store failed, provider keys not fetched   | 503 `temporarily_unavailable`, `Retry-After`: the provider retries |
///
/// plus the answers to malformed requests listed in the [module docs](super). Every
/// answer carries `Cache-Control: no-store`. Outcomes are logged with `tracing`, by
/// hashed key: never the token, the subject or the session id.
///
/// The layer refuses an access token of a logged-out session by its session claim
/// (`sid`, or what [`session_claim`](crate::JwtVerifierBuilder::session_claim) of the
/// access-token verifier names): have the provider put it into access tokens, or, when
/// it does not, log the user out everywhere on any logout
/// ([`revoke_whole_subject`](BackChannelLogoutBuilder::revoke_whole_subject)). Encrypted (JWE)
/// logout tokens are not supported (§2.6 step 1): register the client without ID token
/// encryption.
///
/// # Replays
///
/// Each logout token acted on is recorded in the store under a key of its `iss` and
/// `jti`, for as long as the verifier would accept it, and a token found there is
/// refused. The key is hashed in a domain of its own (`tower-jwt-revoke/v1/logout-token`),
/// not as a token revocation: remembering a logout token never revokes an access token
/// that happens to share its `jti`, and a revoked access token never makes a genuine
/// logout token look like a replay. The record is written after the revocation, so
/// a store failure in between leaves the provider's retry free to succeed. The check
/// and the record are two store calls, not one atomic step: two deliveries of the same
/// token racing each other (or reaching two replicas within a mirror's staleness bound)
/// may both be acted on. Both then record the same idempotent revocation, so the race
/// costs a duplicate 200, nothing more.
///
/// # Example
///
/// ```
/// use http::{Request, StatusCode};
/// use tower::ServiceExt;
/// use tower_jwt_revoke::endpoints::BackChannelLogout;
/// use tower_jwt_revoke::jsonwebtoken::{self, Algorithm, EncodingKey, Header};
/// use tower_jwt_revoke::store::InMemoryStore;
/// use tower_jwt_revoke::{JwtVerifier, Revoker, VerificationKey};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // Providers sign with RS256 (their JWKS); a client secret (HS256) keeps this short.
/// let secret = b"the client secret, 32 bytes long";
/// let provider = |audience: &str| {
///     JwtVerifier::builder()
///         .key(VerificationKey::hmac(Algorithm::HS256, secret)?)
///         .issuer("https://idp.example")
///         .audience(audience)
///         .build()
/// };
/// let revoker = Revoker::new(provider("my-api")?, InMemoryStore::new());
/// let receiver = BackChannelLogout::builder(provider("my-client")?, revoker).build()?;
///
/// let now = jsonwebtoken::get_current_timestamp();
/// let claims = serde_json::json!({
///     "iss": "https://idp.example", "aud": "my-client", "iat": now, "exp": now + 120,
///     "jti": "bWJq", "sid": "08a5019c-17e1-4977-8f42-65a12843ea02",
///     "events": { "http://schemas.openid.net/event/backchannel-logout": {} },
/// });
/// let logout_token = jsonwebtoken::encode(&Header::default(), &claims, &EncodingKey::from_secret(secret))?;
/// let request = || {
///     Request::post("/backchannel-logout")
///         .header("content-type", "application/x-www-form-urlencoded")
///         .body(format!("logout_token={logout_token}"))
/// };
///
/// let response = receiver.clone().oneshot(request()?).await?;
/// assert_eq!(response.status(), StatusCode::OK); // the session is revoked
/// let replayed = receiver.oneshot(request()?).await?;
/// assert_eq!(replayed.status(), StatusCode::BAD_REQUEST);
/// # Ok(()) }
/// ```
///
/// With plain hyper, wrap it in `hyper_util::service::TowerToHyperService` (as the
/// whole service, or for one path from a `service_fn` that routes).
///
/// [OpenID Connect Back-Channel Logout 1.0]: https://openid.net/specs/openid-connect-backchannel-1_0.html
#[derive(Clone)]
pub struct BackChannelLogout {
    inner: Arc<Receiver>,
}

struct Receiver {
    verifier: JwtVerifier,
    revoker: Revoker,
    explicit_only: bool,
    whole_subject: bool,
    limits: Limits,
}

impl fmt::Debug for BackChannelLogout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackChannelLogout")
            .field("verifier", &self.inner.verifier)
            .field("explicit_only", &self.inner.explicit_only)
            .field("whole_subject", &self.inner.whole_subject)
            .field("limits", &self.inner.limits)
            .finish_non_exhaustive()
    }
}

/// What a logout token revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoggedOut {
    /// The session (`sid`): every token carrying it is refused.
    Session(RevocationKey),
    /// The subject (`sub`), as the token named no session: every token of the subject
    /// issued until now is refused.
    Subject(RevocationKey),
}

impl BackChannelLogout {
    /// Starts building a receiver that checks logout tokens with `verifier` and records
    /// logouts with `revoker`.
    ///
    /// `verifier` is the provider's: its keys (a [`KeyRing`](crate::KeyRing) filled from
    /// the provider's JWKS, typically the same ring as the access-token verifier's), its
    /// [`issuer`](crate::JwtVerifierBuilder::issuer), and this application's client id as
    /// [`audience`](crate::JwtVerifierBuilder::audience). It is not the access-token
    /// verifier: a logout token is addressed to the client, not to the API, and carries
    /// no `at+jwt` type. `revoker` is the one of the
    /// [`RevocationLayer`](crate::RevocationLayer) that checks access tokens
    /// ([`RevocationLayer::revoker`](crate::RevocationLayer::revoker)), so that records
    /// last as long as those tokens.
    pub fn builder(verifier: JwtVerifier, revoker: Revoker) -> BackChannelLogoutBuilder {
        BackChannelLogoutBuilder {
            verifier,
            revoker,
            explicit_only: false,
            whole_subject: false,
            limits: Limits::default(),
        }
    }

    /// Validates `logout_token` and performs the logout: what the service does with
    /// the body's `logout_token`, for a framework that is not Tower's.
    pub async fn log_out(&self, logout_token: &str) -> Result<LoggedOut, LogoutError> {
        let receiver = &*self.inner;
        let token = logout_token::validate(&receiver.verifier, logout_token, receiver.explicit_only).await?;
        let seen = RevocationKey::logout_token(&token.issuer, &token.jti);
        if self.already_seen(seen).await? {
            return Err(LogoutError::Replayed);
        }
        let outcome = self.revoke(&token).await?;
        self.remember(&token, seen).await?;
        Ok(outcome)
    }

    async fn already_seen(&self, seen: RevocationKey) -> Result<bool, LogoutError> {
        let store = self.inner.revoker.store();
        let query = RevocationQuery {
            token: seen,
            subject: None,
            session: None,
            issued_at: None,
        };
        let lookup = match store.lookup_immediate(&query) {
            Some(lookup) => lookup,
            None => tokio::time::timeout(self.inner.revoker.timeout(), store.lookup(&query))
                .await
                .unwrap_or_else(|_| Err(StoreError::msg("the store did not answer in time")))
                .map_err(LogoutError::Store)?,
        };
        Ok(lookup.token_revoked)
    }

    async fn revoke(&self, token: &LogoutToken) -> Result<LoggedOut, LogoutError> {
        let revoker = &self.inner.revoker;
        let issuer = Some(token.issuer.as_str());
        // §2.7: a `sid` names the session to end, even when `sub` is there too; unless
        // sessions cannot be told apart here (`revoke_whole_subject`).
        let session = token
            .session
            .as_deref()
            .filter(|_| !(self.inner.whole_subject && token.subject.is_some()));
        let outcome = match (session, token.subject.as_deref()) {
            (Some(session), _) => revoker
                .revoke_session_for(issuer, session)
                .await
                .map(|_| LoggedOut::Session(RevocationKey::session(issuer, session))),
            (None, Some(subject)) => revoker
                .revoke_subject_for(issuer, subject)
                .await
                .map(|_| LoggedOut::Subject(RevocationKey::subject(issuer, subject))),
            (None, None) => return Err(LogoutError::NoSubjectOrSession),
        };
        outcome.map_err(|error| match error {
            RevokeError::Store(error) => LogoutError::Store(error),
            other => LogoutError::Store(StoreError::new("the logout was not recorded", other)),
        })
    }

    /// Records the logout token as seen, for as long as the verifier would accept it
    /// (its own leeway, which may differ from the access tokens').
    async fn remember(&self, token: &LogoutToken, seen: RevocationKey) -> Result<(), LogoutError> {
        let Some(ttl) = self
            .inner
            .verifier
            .revocation_ttl(token.verified.expires_at(), SystemTime::now())
        else {
            // Expired since it was verified: no verifier accepts it again.
            return Ok(());
        };
        let revoker = &self.inner.revoker;
        tokio::time::timeout(
            revoker.timeout(),
            revoker.store().revoke_token_of(&seen, None, ttl),
        )
        .await
        .unwrap_or_else(|_| {
            Err(StoreError::msg(
                "the store did not record the logout token in time",
            ))
        })
        .map_err(LogoutError::Store)
    }
}

impl FormEndpoint for BackChannelLogout {
    fn limits(&self) -> Limits {
        self.inner.limits
    }

    async fn respond(self, _parts: Parts, form: Form) -> Response<String> {
        let limits = self.inner.limits;
        let outcome = match form.get("logout_token") {
            Some(logout_token) => self.log_out(logout_token).await,
            None => Err(LogoutError::MissingToken),
        };
        match outcome {
            Ok(logged_out) => {
                tracing::info!(?logged_out, "back-channel logout");
                response::ok()
            }
            Err(error) if error.status().is_server_error() => {
                tracing::warn!(%error, "back-channel logout not recorded; the provider should retry");
                response::unavailable(
                    &error.to_string(),
                    error.retry_after().unwrap_or(limits.retry_after),
                )
            }
            Err(error) => {
                tracing::info!(%error, "back-channel logout refused");
                response::invalid_request(&error.to_string())
            }
        }
    }
}

form_service!(BackChannelLogout);

/// Builds a [`BackChannelLogout`]; see [`BackChannelLogout::builder`].
#[must_use]
pub struct BackChannelLogoutBuilder {
    verifier: JwtVerifier,
    revoker: Revoker,
    explicit_only: bool,
    whole_subject: bool,
    limits: Limits,
}

impl fmt::Debug for BackChannelLogoutBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackChannelLogoutBuilder")
            .field("verifier", &self.verifier)
            .field("explicit_only", &self.explicit_only)
            .field("whole_subject", &self.whole_subject)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl BackChannelLogoutBuilder {
    /// Accepts only logout tokens with `typ: logout+jwt` (by default an absent `typ`
    /// and `JWT` are accepted too, as §4.1 advises so as not to break providers that
    /// do not type their logout tokens yet). Turn it on when the provider types them.
    pub fn require_explicit_type(mut self) -> Self {
        self.explicit_only = true;
        self
    }

    /// Revokes every token of the subject (`sub`) even when the logout token names a
    /// session: for providers whose access tokens carry no session id, where revoking
    /// the session would refuse nothing. Ending one session at the provider then logs
    /// the user out of this API everywhere. A logout token naming a session and no
    /// subject still revokes the session.
    pub fn revoke_whole_subject(mut self) -> Self {
        self.whole_subject = true;
        self
    }

    limit_settings!();

    /// Builds the receiver, refusing a verifier that could never accept a logout token
    /// as the specification wants it (one without an issuer, without an audience, or
    /// requiring another `typ`), and one that would let an issuer's key sign logout
    /// tokens for another issuer ([`BuildError::SharedIssuerKeys`]).
    pub fn build(self) -> Result<BackChannelLogout, BuildError> {
        if self.verifier.issuers().is_empty() {
            return Err(BuildError::NoIssuer);
        }
        if let Some((first, second)) = self.verifier.issuers_sharing_keys() {
            return Err(BuildError::SharedIssuerKeys {
                first: first.to_owned(),
                second: second.to_owned(),
            });
        }
        if self.verifier.audiences().is_empty() {
            return Err(BuildError::NoAudience);
        }
        if let Some(required) = self.verifier.required_type()
            && !same_media_type(required, "logout+jwt")
        {
            return Err(BuildError::WrongRequiredType(required.to_owned()));
        }
        Ok(BackChannelLogout {
            inner: Arc::new(Receiver {
                verifier: self.verifier,
                revoker: self.revoker,
                explicit_only: self.explicit_only,
                whole_subject: self.whole_subject,
                limits: self.limits,
            }),
        })
    }
}
