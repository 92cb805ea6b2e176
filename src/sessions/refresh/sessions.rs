//! [`Sessions`]: sign-in, refresh, logout, for an app that signs in its own users.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{Map, Value};

use super::error::{RefreshRefusal, SessionError};
use super::seal::{self, FamilyRecord};
use super::store::{NewFamily, RefreshStore, Rotation, RotationOutcome};
use super::token::{self, Handle, RefreshHash};
use crate::revoke::Revoker;
use crate::sessions::issue::{IssuedToken, TokenIssuer};
use crate::store::RevocationQuery;
use crate::store::key::RevocationKey;
use crate::verify::token::VerifiedToken;

/// A family's absolute lifetime unless configured: 30 days.
pub const DEFAULT_FAMILY_LIFETIME: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// The longest a sign-in waits for the second of a log-out-everywhere to be over.
pub const MAX_WATERMARK_WAIT: Duration = Duration::from_secs(2);
/// How long a family may go unused unless configured: 7 days.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 60 * 60);
/// The most the application's own claims given at sign-in may take, as JSON: they are
/// kept with the family (sealed) for its whole lifetime, and copied into every access
/// token it mints.
pub const MAX_FAMILY_CLAIMS_LEN: usize = 4096;

/// Sessions that end properly: short-lived access tokens (a [`TokenIssuer`]'s) and
/// refresh tokens rotated on every use, with reuse detection.
///
/// Each sign-in starts a **family**, identified by the session id its access tokens
/// carry (`sid`). [`refresh`](Self::refresh) consumes the refresh token presented and
/// returns a new pair; presenting one already consumed is **reuse** (someone holds a
/// copy): the family ends and its session is revoked, so every access token already
/// out is refused too. A family ends at its absolute lifetime, after its idle
/// timeout, at logout ([`log_out`](Self::log_out)) and at log-out-everywhere
/// ([`log_out_everywhere`](Self::log_out_everywhere)).
///
/// Refresh tokens are opaque (not JWTs): `rt1.` then, in URL-safe base64, a random
/// 128-bit handle of their family and 256 random bits of their own; no session id,
/// no subject, nothing personal. The [`RefreshStore`] keeps each only as a hash. From
/// the handle the server derives the family's session id (one way: an access token
/// does not lead to its refresh tokens) and the key that opens the family's record,
/// which the store keeps sealed: the subject, and the application's own claims given
/// at sign-in ([`sign_in_with_claims`](Self::sign_in_with_claims)), which every access
/// token of the family carries.
///
/// # Grace window
///
/// Off by default. With [`with_grace_window`](Self::with_grace_window), the token
/// consumed by a family's last rotation, presented again within the window, gets the
/// same new refresh token that rotation handed out (and a fresh access token) instead
/// of ending the family: two requests of one client that refresh at once (two tabs, a
/// retry after a lost response) both succeed.
///
/// Its price: **within the window, a thief racing the user is not detected.** A copy
/// presented within the window of the user's refresh gets the user's own new refresh
/// token, and both then hold the family; reuse is only detected once one of them
/// presents a consumed token outside the window. Keep the window to seconds, or leave
/// it off when clients serialize their refreshes.
///
/// ```
/// use tower_jwt_revoke::jsonwebtoken::Algorithm;
/// use tower_jwt_revoke::refresh::{InMemoryRefreshStore, SessionError, Sessions};
/// use tower_jwt_revoke::store::InMemoryStore;
/// use tower_jwt_revoke::{JwtVerifier, Revoker, SigningKey, TokenIssuer, VerificationKey};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let secret = b"a long random secret of 32 bytes";
/// let verifier = JwtVerifier::builder().key(VerificationKey::hmac(Algorithm::HS256, secret)?).build()?;
/// let issuer = TokenIssuer::builder(&verifier).signing_key(SigningKey::hmac(Algorithm::HS256, secret)?).build()?;
/// let revoker = Revoker::new(verifier.clone(), InMemoryStore::new());
/// let sessions = Sessions::new(issuer, revoker, InMemoryRefreshStore::new());
///
/// let first = sessions.sign_in("alice").await?;
/// let second = sessions.refresh(first.refresh_token()).await?;
/// // The first refresh token again: someone else holds a copy. The session ends.
/// assert!(matches!(sessions.refresh(first.refresh_token()).await, Err(SessionError::Reused)));
/// assert!(sessions.refresh(second.refresh_token()).await.is_err());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Sessions {
    issuer: TokenIssuer,
    revoker: Revoker,
    store: Arc<dyn RefreshStore>,
    family_lifetime: Duration,
    idle_timeout: Duration,
    grace_window: Duration,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("issuer", &self.issuer)
            .field("family_lifetime", &self.family_lifetime)
            .field("idle_timeout", &self.idle_timeout)
            .field("grace_window", &self.grace_window)
            .finish_non_exhaustive()
    }
}

/// What a sign-in or a refresh gives the client: an access token and the refresh
/// token that renews it.
#[derive(Clone)]
pub struct TokenPair {
    access: IssuedToken,
    refresh_token: String,
}

impl std::fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Both are credentials.
        f.debug_struct("TokenPair")
            .field("access", &self.access)
            .finish_non_exhaustive()
    }
}

impl TokenPair {
    /// The access token.
    pub fn access(&self) -> &IssuedToken {
        &self.access
    }

    /// The refresh token.
    pub fn refresh_token(&self) -> &str {
        &self.refresh_token
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

impl Sessions {
    /// Sessions whose access tokens `issuer` mints, whose revocations `revoker`
    /// records (with the same verifier), and whose families `store` keeps; families
    /// last [`DEFAULT_FAMILY_LIFETIME`] at most and [`DEFAULT_IDLE_TIMEOUT`] unused.
    pub fn new(issuer: TokenIssuer, revoker: Revoker, store: impl RefreshStore) -> Self {
        Self::from_arc(issuer, revoker, Arc::new(store))
    }

    /// Like [`new`](Self::new), with a store chosen at run time.
    pub fn from_arc(issuer: TokenIssuer, revoker: Revoker, store: Arc<dyn RefreshStore>) -> Self {
        Self {
            issuer,
            revoker,
            store,
            family_lifetime: DEFAULT_FAMILY_LIFETIME,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            grace_window: Duration::ZERO,
        }
    }

    /// How long a family lives at most, from its sign-in (whole seconds, at least 1).
    pub fn with_family_lifetime(mut self, lifetime: Duration) -> Self {
        self.family_lifetime = lifetime.max(Duration::from_secs(1));
        self
    }

    /// How long a family may go without a refresh before it ends (whole seconds, at
    /// least 1).
    pub fn with_idle_timeout(mut self, idle: Duration) -> Self {
        self.idle_timeout = idle.max(Duration::from_secs(1));
        self
    }

    /// A grace window for concurrent refreshes (whole seconds; zero, the default, is
    /// off): see [the type's docs](Self#grace-window), and its abuse risk, before
    /// turning it on.
    pub fn with_grace_window(mut self, window: Duration) -> Self {
        self.grace_window = Duration::from_secs(window.as_secs());
        self
    }

    /// The issuer of the access tokens.
    pub fn issuer(&self) -> &TokenIssuer {
        &self.issuer
    }

    fn keys(&self, session: &str, subject: &str) -> (RevocationKey, RevocationKey) {
        let iss = self.issuer.issuer();
        (
            RevocationKey::session(iss, session),
            RevocationKey::subject(iss, subject),
        )
    }

    /// Signs `subject` in: a new session, its family, and its first pair.
    ///
    /// A sign-in in the same second as a "log out everywhere" of its subject (or of
    /// everyone) would get a token that watermark refuses (watermarks and `iat` have
    /// one-second resolution); so the watermarks are read first (one store lookup) and,
    /// when one covers the current second, the token is minted once that second is
    /// over: the sign-in waits up to a second, right after a log-out-everywhere only.
    pub async fn sign_in(&self, subject: &str) -> Result<TokenPair, SessionError> {
        self.start(subject, Map::new()).await
    }

    /// Signs `subject` in, with the application's own claims (roles, scope, tenant…)
    /// in its access tokens: this one and every one its refreshes mint. `claims` must
    /// serialize to a JSON object that names none of the claims the issuer sets (see
    /// [`TokenIssuer::issue_with_claims`]), in at most [`MAX_FAMILY_CLAIMS_LEN`] bytes
    /// ([`SessionError::ClaimsTooLarge`] otherwise). They are fixed for the family:
    /// claims that change call for a new sign-in.
    pub async fn sign_in_with_claims<C: Serialize + ?Sized>(
        &self,
        subject: &str,
        claims: &C,
    ) -> Result<TokenPair, SessionError> {
        let claims = match serde_json::to_value(claims) {
            Ok(Value::Object(claims)) => claims,
            Ok(_) => {
                return Err(crate::IssueError::Claims(String::from("must be a JSON object")).into());
            }
            Err(error) => return Err(crate::IssueError::Claims(format!("do not serialize: {error}")).into()),
        };
        self.start(subject, claims).await
    }

    async fn start(&self, subject: &str, claims: Map<String, Value>) -> Result<TokenPair, SessionError> {
        let claims_len = serde_json::to_vec(&claims).map_or(usize::MAX, |json| json.len());
        if claims_len > MAX_FAMILY_CLAIMS_LEN {
            return Err(SessionError::ClaimsTooLarge {
                len: claims_len,
                max: MAX_FAMILY_CLAIMS_LEN,
            });
        }
        let record = serde_json::to_vec(&serde_json::json!({ "sub": subject, "claims": &claims }))
            .map_err(|error| crate::IssueError::Claims(format!("do not serialize: {error}")))?;
        self.after_watermarks(subject).await?;
        let handle = Handle::new().map_err(crate::IssueError::from)?;
        let session = handle.session_id();
        let access = self.issuer.issue_with_claims(subject, &session, &claims)?;
        let refresh_token = handle.new_token().map_err(crate::IssueError::from)?;
        let (family, subject_key) = self.keys(&session, subject);
        let sealed =
            seal::seal(&handle.sealing_key(), family.as_bytes(), &record).map_err(crate::IssueError::from)?;
        let now = now();
        let new = NewFamily::new(
            family,
            subject_key,
            RefreshHash::of(&refresh_token),
            sealed,
            now,
            now.saturating_add(self.family_lifetime.as_secs()),
            self.idle_timeout,
        );
        self.store.start_family(&new).await?;
        Ok(TokenPair {
            access,
            refresh_token,
        })
    }

    /// Waits, when a watermark covers `subject`'s tokens issued now, until the second
    /// after it (at most [`MAX_WATERMARK_WAIT`]; past that the clocks disagree, and the
    /// token minted is refused as any other would be).
    async fn after_watermarks(&self, subject: &str) -> Result<(), SessionError> {
        let subject = RevocationKey::subject(self.issuer.issuer(), subject);
        let query = RevocationQuery {
            // No token of this subject is being checked: a key nothing is recorded under.
            token: RevocationKey::token(None, ""),
            subject: Some(subject),
            session: None,
            issued_at: None,
        };
        let lookup = self.revoker.store().lookup(&query).await?;
        let Some(watermark) = lookup.subject_watermark.max(lookup.global_watermark) else {
            return Ok(());
        };
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let after = Duration::from_secs(watermark.saturating_add(1));
        if let Some(wait) = after.checked_sub(now).filter(|wait| *wait <= MAX_WATERMARK_WAIT) {
            tokio::time::sleep(wait).await;
        }
        Ok(())
    }

    /// Exchanges `refresh_token` for a new pair, consuming it; the new access token
    /// carries the subject and the claims given at sign-in.
    ///
    /// A token consumed before is [`SessionError::Reused`]: the family ends, and its
    /// session is revoked (if that revocation fails, the error says so, and the same
    /// token presented again tries again). With a [grace window](Self#grace-window),
    /// the token consumed by the family's last rotation, presented again within it,
    /// gets that rotation's refresh token again, with a new access token.
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenPair, SessionError> {
        let handle = token::parse(refresh_token).ok_or(SessionError::Refused(RefreshRefusal::Malformed))?;
        let session = handle.session_id();
        let family = RevocationKey::session(self.issuer.issuer(), &session);
        let next = handle.new_token().map_err(crate::IssueError::from)?;
        let presented = RefreshHash::of(refresh_token);
        let mut rotation = Rotation::new(family, presented, RefreshHash::of(&next), now());
        if !self.grace_window.is_zero() {
            let successor = seal::seal(
                &token::successor_key(refresh_token),
                family.as_bytes(),
                next.as_bytes(),
            )
            .map_err(crate::IssueError::from)?;
            rotation = rotation.with_grace(self.grace_window, successor);
        }
        let unknown = SessionError::Refused(RefreshRefusal::Unknown);
        let (sealed, refresh_token) = match self.store.rotate(&rotation).await? {
            RotationOutcome::Rotated { sealed } => (sealed, next),
            RotationOutcome::Repeated { sealed, successor } => {
                let successor = seal::open(
                    &token::successor_key(refresh_token),
                    family.as_bytes(),
                    &successor,
                )
                .and_then(|successor| String::from_utf8(successor).ok());
                match successor {
                    Some(successor) => (sealed, successor),
                    None => {
                        tracing::warn!("refresh family's kept successor does not open: refused");
                        return Err(unknown);
                    }
                }
            }
            RotationOutcome::Reused => {
                tracing::warn!("refresh token reused: ending its session");
                self.revoker
                    .revoke_session_for(self.issuer.issuer(), &session)
                    .await?;
                return Err(SessionError::Reused);
            }
            RotationOutcome::Ended => return Err(SessionError::Refused(RefreshRefusal::Ended)),
            RotationOutcome::Expired => return Err(SessionError::Refused(RefreshRefusal::Expired)),
            _ => return Err(unknown),
        };
        let Some(record) = seal::open(&handle.sealing_key(), family.as_bytes(), &sealed)
            .and_then(|record| serde_json::from_slice::<FamilyRecord>(&record).ok())
        else {
            tracing::warn!("refresh family's record does not open: refused");
            return Err(unknown);
        };
        let access = self
            .issuer
            .issue_with_claims(&record.sub, &session, &record.claims)?;
        Ok(TokenPair {
            access,
            refresh_token,
        })
    }

    /// Logs out the session of `token`: revokes the token itself, then its session
    /// (the access tokens of the session minted before it, by earlier refreshes), and
    /// ends its family. A token without `sid` (not one of this issuer's) is revoked
    /// alone.
    pub async fn log_out(&self, token: &VerifiedToken) -> Result<(), SessionError> {
        self.revoker.revoke(token).await?;
        let (Some(session), Some(subject)) = (token.session_key(), token.subject_key()) else {
            return Ok(());
        };
        self.revoker.revoke_session_of(token).await?;
        self.store.end_family(&session, &subject).await?;
        Ok(())
    }

    /// Logs the subject of `token` out everywhere: every access token issued until
    /// now (a watermark) and every one of its families.
    pub async fn log_out_everywhere(&self, token: &VerifiedToken) -> Result<(), SessionError> {
        self.revoker.revoke_subject_of(token).await?;
        if let Some(subject) = token.subject_key() {
            self.store.end_families_of(&subject).await?;
        }
        Ok(())
    }
}
