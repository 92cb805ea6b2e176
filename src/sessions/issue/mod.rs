//! Minting access tokens that the crate's own verifier accepts.
//!
//! [`TokenIssuer`] here; its settings in `builder.rs`, its key in `key.rs`, why it
//! refuses in `error.rs`, and the random identifiers it (and refresh tokens) use in
//! `random.rs`.
//!
//! May use: `verify/` (it is built from a [`JwtVerifier`] and checks every token with
//! it). Used by: `refresh/`.

mod builder;
mod error;
mod key;
pub(crate) mod random;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::Header;
use serde::Serialize;
use serde_json::{Map, Value};

pub use self::builder::{DEFAULT_ACCESS_TOKEN_LIFETIME, TokenIssuerBuilder};
pub use self::error::IssueError;
pub use self::key::SigningKey;
pub use self::random::RandomError;
use crate::verify::JwtVerifier;

/// Claims the issuer sets itself; the application's own claims may not name them.
const RESERVED: [&str; 9] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "nbf",
    "iat",
    "jti",
    "sid",
    "session_state",
];

/// Signs access tokens from the same configuration as a [`JwtVerifier`], so that what
/// it mints is what the verifier accepts: the verifier's issuer and audience, a
/// lifetime within its maximum, `typ` as it requires (`at+jwt`, say), `iat`, `exp`,
/// `sub`, the session id (`sid`, or the claim the verifier reads sessions from) and a
/// random `jti` of 128 bits, plus the application's own claims.
///
/// It refuses to mint what the verifier would refuse: [`build`](TokenIssuerBuilder::build)
/// signs a probe and has the verifier check it, and every token minted is verified
/// before it is returned (one signature check, microseconds for HMAC), so a key
/// rotated out of the verifier's ring, or a token grown past its size limit, is an
/// error and never a token that fails at the first request.
///
/// Keys: HMAC secrets ([`SigningKey::hmac`]), and RSA, ECDSA or Ed25519 private keys
/// through [`SigningKey::from_encoding_key`].
///
/// Cheap to clone: the configuration is shared.
///
/// ```
/// use std::time::Duration;
/// use tower_jwt_revoke::jsonwebtoken::Algorithm;
/// use tower_jwt_revoke::{JwtVerifier, SigningKey, TokenIssuer, VerificationKey};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let secret = b"a long random secret of 32 bytes";
/// let verifier = JwtVerifier::builder()
///     .key(VerificationKey::hmac(Algorithm::HS256, secret)?)
///     .issuer("https://app.example.com")
///     .max_token_lifetime(Duration::from_secs(900))
///     .require_type("at+jwt")
///     .build()?;
/// let issuer = TokenIssuer::builder(&verifier)
///     .signing_key(SigningKey::hmac(Algorithm::HS256, secret)?)
///     .build()?;
///
/// // At sign-in: a new session, and its first access token.
/// let session = issuer.new_session_id()?;
/// let minted = issuer.issue_with_claims("alice", &session, &serde_json::json!({ "scope": "read" }))?;
///
/// let verified = verifier.verify(minted.token())?;
/// assert_eq!(verified.subject(), Some("alice"));
/// assert_eq!(verified.session_id(), Some(session.as_str()));
/// assert_eq!(minted.expires_in(), Duration::from_secs(900));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TokenIssuer {
    inner: Arc<IssuerInner>,
}

struct IssuerInner {
    verifier: JwtVerifier,
    key: SigningKey,
    header: Header,
    lifetime_secs: u64,
    issuer: Option<String>,
    audience: Option<String>,
    /// `sid`, or `session_state` for a verifier that reads sessions only from it.
    session_claim: &'static str,
}

impl fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("key", &self.inner.key)
            .field("lifetime_secs", &self.inner.lifetime_secs)
            .field("issuer", &self.inner.issuer)
            .field("audience", &self.inner.audience)
            .finish_non_exhaustive()
    }
}

impl TokenIssuer {
    /// Starts building an issuer whose tokens `verifier` accepts.
    pub fn builder(verifier: &JwtVerifier) -> TokenIssuerBuilder {
        crate::verify::crypto::install_crypto_provider();
        TokenIssuerBuilder::new(verifier)
    }

    /// The verifier this issuer mints for.
    pub fn verifier(&self) -> &JwtVerifier {
        &self.inner.verifier
    }

    /// The `iss` its tokens carry, if any.
    pub fn issuer(&self) -> Option<&str> {
        self.inner.issuer.as_deref()
    }

    /// How long each token lives.
    pub fn lifetime(&self) -> Duration {
        Duration::from_secs(self.inner.lifetime_secs)
    }

    /// A new session id, 128 random bits (URL-safe base64), for a sign-in: every
    /// token of the session carries it, and [`Revoker::revoke_session`](crate::Revoker::revoke_session)
    /// ends them all.
    pub fn new_session_id(&self) -> Result<String, IssueError> {
        Ok(random::random_id::<16>()?)
    }

    /// Mints an access token for `subject` in `session`.
    pub fn issue(&self, subject: &str, session: &str) -> Result<IssuedToken, IssueError> {
        self.mint(subject, session, Map::new())
    }

    /// Mints an access token for `subject` in `session`, with the application's own
    /// claims: `claims` must serialize to a JSON object that names none of the claims
    /// the issuer sets (`iss`, `sub`, `aud`, `exp`, `nbf`, `iat`, `jti`, `sid`,
    /// `session_state`).
    pub fn issue_with_claims<C: Serialize + ?Sized>(
        &self,
        subject: &str,
        session: &str,
        claims: &C,
    ) -> Result<IssuedToken, IssueError> {
        let own = match serde_json::to_value(claims) {
            Ok(Value::Object(own)) => own,
            Ok(_) => return Err(IssueError::Claims(String::from("must be a JSON object"))),
            Err(error) => return Err(IssueError::Claims(format!("do not serialize: {error}"))),
        };
        if let Some(name) = RESERVED.iter().find(|name| own.contains_key(**name)) {
            return Err(IssueError::Claims(format!(
                "name `{name}`, which the issuer sets itself"
            )));
        }
        self.mint(subject, session, own)
    }

    fn mint(&self, subject: &str, session: &str, own: Map<String, Value>) -> Result<IssuedToken, IssueError> {
        if subject.is_empty() {
            return Err(IssueError::EmptyClaim("sub"));
        }
        if session.is_empty() {
            return Err(IssueError::EmptyClaim("sid"));
        }
        let inner = &*self.inner;
        let token_id = random::random_id::<16>()?;
        let issued_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let expires_at = issued_at.saturating_add(inner.lifetime_secs);
        let mut claims = Map::with_capacity(own.len() + 7);
        if let Some(issuer) = &inner.issuer {
            claims.insert("iss".into(), issuer.as_str().into());
        }
        claims.insert("sub".into(), subject.into());
        if let Some(audience) = &inner.audience {
            claims.insert("aud".into(), audience.as_str().into());
        }
        claims.insert(inner.session_claim.into(), session.into());
        claims.insert("jti".into(), token_id.as_str().into());
        claims.insert("iat".into(), issued_at.into());
        claims.insert("exp".into(), expires_at.into());
        claims.extend(own);
        let token = jsonwebtoken::encode(&inner.header, &claims, &inner.key.key).map_err(IssueError::Sign)?;
        inner.verifier.verify(&token).map_err(IssueError::Refused)?;
        Ok(IssuedToken {
            token,
            token_id,
            session_id: session.to_owned(),
            issued_at,
            expires_at,
        })
    }
}

/// A token a [`TokenIssuer`] minted, with what the application tells its client.
#[derive(Clone)]
pub struct IssuedToken {
    token: String,
    token_id: String,
    session_id: String,
    issued_at: u64,
    expires_at: u64,
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token is a credential: it stays out of logs.
        f.debug_struct("IssuedToken")
            .field("issued_at", &self.issued_at)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl IssuedToken {
    /// The signed token (compact JWS).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The signed token, owned.
    pub fn into_token(self) -> String {
        self.token
    }

    /// Its `jti`.
    pub fn token_id(&self) -> &str {
        &self.token_id
    }

    /// Its session id.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// Its `iat`, seconds since the epoch.
    pub fn issued_at(&self) -> u64 {
        self.issued_at
    }

    /// Its `exp`, seconds since the epoch.
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// Its lifetime (`exp - iat`): the `expires_in` of an OAuth token response.
    pub fn expires_in(&self) -> Duration {
        Duration::from_secs(self.expires_at - self.issued_at)
    }
}
