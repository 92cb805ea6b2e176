//! Signature and claim verification, on jsonwebtoken.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::key::RevocationKey;
use crate::token::{RegisteredClaims, VerifiedToken};

/// Tokens longer than this are refused before any parsing (8 KiB, a generous bound
/// for a JWT; browsers cap a cookie at 4 KiB).
pub const DEFAULT_MAX_TOKEN_LEN: usize = 8 * 1024;
/// Leeway for `exp` and `nbf`, in seconds, unless configured.
pub const DEFAULT_LEEWAY_SECS: u64 = 30;
/// The longest token lifetime accepted unless configured: 24 hours.
pub const DEFAULT_MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// A key that may verify tokens, pinned to exactly one algorithm.
///
/// Pinning is what rules out algorithm confusion: a token whose header names another
/// algorithm than its key's is refused, so an HMAC token can never be checked against
/// an RSA public key used as a secret, and `alg: none` has no key at all.
#[derive(Clone)]
pub struct VerificationKey {
    algorithm: Algorithm,
    key: DecodingKey,
    kid: Option<String>,
}

impl std::fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key material stays out of logs.
        f.debug_struct("VerificationKey")
            .field("algorithm", &self.algorithm)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl VerificationKey {
    /// An HMAC secret for HS256, HS384 or HS512.
    pub fn hmac(algorithm: Algorithm, secret: &[u8]) -> Result<Self, KeyError> {
        if secret.is_empty() {
            return Err(KeyError::EmptySecret);
        }
        Self::pinned(algorithm, DecodingKey::from_secret(secret))
    }

    /// An RSA public key in PEM form, for RS256/384/512 or PS256/384/512.
    pub fn rsa_pem(algorithm: Algorithm, pem: &[u8]) -> Result<Self, KeyError> {
        Self::pinned(
            algorithm,
            DecodingKey::from_rsa_pem(pem).map_err(KeyError::Parse)?,
        )
    }

    /// An ECDSA public key in PEM form, for ES256 or ES384.
    pub fn ec_pem(algorithm: Algorithm, pem: &[u8]) -> Result<Self, KeyError> {
        Self::pinned(algorithm, DecodingKey::from_ec_pem(pem).map_err(KeyError::Parse)?)
    }

    /// An Ed25519 public key in PEM form, for EdDSA.
    pub fn ed_pem(pem: &[u8]) -> Result<Self, KeyError> {
        Self::pinned(
            Algorithm::EdDSA,
            DecodingKey::from_ed_pem(pem).map_err(KeyError::Parse)?,
        )
    }

    /// Any jsonwebtoken [`DecodingKey`] with the one algorithm it may verify.
    pub fn from_decoding_key(algorithm: Algorithm, key: DecodingKey) -> Result<Self, KeyError> {
        Self::pinned(algorithm, key)
    }

    /// A key from a JWK; its `alg` is required, and its `kid` is kept.
    pub fn from_jwk(jwk: &jsonwebtoken::jwk::Jwk) -> Result<Self, KeyError> {
        let algorithm = jwk
            .common
            .key_algorithm
            .and_then(|alg| alg.to_string().parse::<Algorithm>().ok())
            .ok_or(KeyError::JwkWithoutAlgorithm)?;
        let key = DecodingKey::from_jwk(jwk).map_err(KeyError::Parse)?;
        let mut pinned = Self::pinned(algorithm, key)?;
        pinned.kid = jwk.common.key_id.clone();
        Ok(pinned)
    }

    /// Selects this key for tokens whose header carries this `kid`.
    #[must_use]
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// The one algorithm this key verifies.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    fn pinned(algorithm: Algorithm, key: DecodingKey) -> Result<Self, KeyError> {
        // A program that builds keys first and signs its own tokens next must not
        // meet jsonwebtoken's "no CryptoProvider" panic in between.
        crate::crypto::install_crypto_provider();
        if algorithm.family() != key.family() {
            return Err(KeyError::AlgorithmMismatch { algorithm });
        }
        Ok(Self {
            algorithm,
            key,
            kid: None,
        })
    }
}

/// Why a [`VerificationKey`] or a [`JwtVerifier`] could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The HMAC secret is empty.
    #[error("the HMAC secret is empty")]
    EmptySecret,
    /// The key does not belong to the algorithm's family (an RSA key for HS256, say).
    #[error("the key cannot verify {algorithm:?}: it belongs to another algorithm family")]
    AlgorithmMismatch {
        /// The algorithm asked for.
        algorithm: Algorithm,
    },
    /// The key could not be parsed.
    #[error("the key could not be parsed")]
    Parse(#[source] jsonwebtoken::errors::Error),
    /// A JWK without an `alg` member.
    #[error("the JWK has no usable `alg`; name the algorithm it verifies")]
    JwkWithoutAlgorithm,
    /// Two keys share a `kid`.
    #[error("two keys share the kid {kid:?}")]
    DuplicateKid {
        /// The shared `kid`.
        kid: String,
    },
    /// Two keys were given without a `kid`; the header could not choose between them.
    #[error("more than one key has no kid; give each key a kid with `with_kid`")]
    AmbiguousDefaultKey,
}

/// Why a token was refused by [`JwtVerifier::verify`].
///
/// Its [`Display`](std::fmt::Display) text is safe to show a client (it names no
/// claim values) and is what the default rejection puts in `error_description`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Longer than the configured maximum.
    #[error("token too large")]
    TooLarge,
    /// Not a JWS in compact form, or its parts do not decode.
    #[error("malformed token")]
    Malformed,
    /// The header's `alg` is not the one the selected key verifies (this covers
    /// `alg: none`).
    #[error("algorithm not allowed")]
    AlgorithmNotAllowed,
    /// No configured key matches the header's `kid`.
    #[error("unknown key id")]
    UnknownKey,
    /// The signature does not verify.
    #[error("invalid signature")]
    BadSignature,
    /// `exp` is in the past, beyond the leeway.
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future, beyond the leeway.
    #[error("token not yet valid")]
    NotYetValid,
    /// `iss` is not an accepted issuer.
    #[error("wrong issuer")]
    WrongIssuer,
    /// `aud` names none of the accepted audiences.
    #[error("wrong audience")]
    WrongAudience,
    /// A required claim is missing.
    #[error("missing claim {0}")]
    MissingClaim(&'static str),
    /// A claim has the wrong type.
    #[error("claim {0} has an invalid format")]
    InvalidClaim(&'static str),
    /// The application's own claims `C` could not be read from the payload.
    #[error("token claims do not match what the application expects")]
    CustomClaims,
    /// `exp - iat` exceeds the configured maximum token lifetime.
    #[error("token lifetime exceeds the accepted maximum")]
    LifetimeTooLong,
}

/// Verifies JWTs: signature, `exp`, `nbf`, `iss`, `aud`, and the lifetime bound that
/// lets watermarks ("log out everywhere") expire safely.
///
/// Cheap to clone: the configuration is shared.
///
/// ```
/// use jsonwebtoken::Algorithm;
/// use tower_jwt_revoke::{JwtVerifier, VerificationKey};
///
/// let verifier = JwtVerifier::builder()
///     .key(VerificationKey::hmac(Algorithm::HS256, b"a long random secret, 32+ bytes!")?)
///     .issuer("https://auth.example.com")
///     .audience("my-api")
///     .leeway_secs(30)
///     .build()?;
/// # Ok::<(), tower_jwt_revoke::KeyError>(())
/// ```
#[derive(Clone, Debug)]
pub struct JwtVerifier {
    inner: Arc<VerifierInner>,
}

#[derive(Debug)]
struct VerifierInner {
    by_kid: HashMap<String, VerificationKey>,
    default_key: Option<VerificationKey>,
    leeway_secs: u64,
    max_lifetime_secs: u64,
    max_token_len: usize,
    issuers: Vec<String>,
    audiences: Vec<String>,
    require_iat: bool,
}

/// Builds a [`JwtVerifier`]; see [`JwtVerifier::builder`].
#[derive(Debug, Default)]
#[must_use]
pub struct JwtVerifierBuilder {
    keys: Vec<VerificationKey>,
    issuers: Vec<String>,
    audiences: Vec<String>,
    leeway_secs: Option<u64>,
    max_lifetime: Option<Duration>,
    max_token_len: Option<usize>,
    allow_missing_iat: bool,
}

impl JwtVerifierBuilder {
    /// Adds a key. Keys with a `kid` are chosen by the token header's `kid`; at most
    /// one key may have none, and it verifies tokens whose `kid` matches no key.
    pub fn key(mut self, key: VerificationKey) -> Self {
        self.keys.push(key);
        self
    }

    /// Accepts tokens from this issuer (`iss`); call again to accept several. When
    /// none is set, `iss` is not checked.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuers.push(issuer.into());
        self
    }

    /// Accepts tokens for this audience (`aud`); call again to accept several. When
    /// none is set, tokens that carry an `aud` are refused (as jsonwebtoken does: a
    /// token meant for a named audience is not meant for a service that has none).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Clock skew tolerated on `exp` and `nbf`, in seconds (default
    /// [`DEFAULT_LEEWAY_SECS`]). Revocations last as long as this leeway keeps a token
    /// alive.
    pub fn leeway_secs(mut self, leeway: u64) -> Self {
        self.leeway_secs = Some(leeway);
        self
    }

    /// The longest lifetime (`exp - iat`) a token may have (default
    /// [`DEFAULT_MAX_TOKEN_LIFETIME`]). Set it to the longest lifetime
    /// your issuer uses: "log out everywhere" watermarks are kept exactly this long
    /// (plus leeway), and tokens promising to live longer are refused so that no token
    /// can outlive the watermark that revoked it.
    pub fn max_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.max_lifetime = Some(lifetime);
        self
    }

    /// Accepts tokens without `iat` (by default they are refused).
    ///
    /// Without `iat` nothing says when a token was issued, so "log out everywhere"
    /// and session revocations, which are kept for the maximum lifetime, only hold
    /// for such tokens if the issuer never gives one a longer lifetime than
    /// [`max_token_lifetime`](Self::max_token_lifetime). While a subject or global
    /// watermark exists, tokens without `iat` it could cover are refused. Revoking a
    /// single token (by `jti` or signing input) is exact either way.
    pub fn allow_missing_iat(mut self) -> Self {
        self.allow_missing_iat = true;
        self
    }

    /// Tokens longer than this many bytes are refused unparsed (default
    /// [`DEFAULT_MAX_TOKEN_LEN`]).
    pub fn max_token_len(mut self, bytes: usize) -> Self {
        self.max_token_len = Some(bytes);
        self
    }

    /// Builds the verifier.
    ///
    /// Also makes sure jsonwebtoken has a signature backend (see
    /// [`install_crypto_provider`](crate::install_crypto_provider)).
    pub fn build(self) -> Result<JwtVerifier, KeyError> {
        crate::crypto::install_crypto_provider();
        let leeway_secs = self.leeway_secs.unwrap_or(DEFAULT_LEEWAY_SECS);
        let mut by_kid = HashMap::new();
        let mut default_key = None;
        for key in self.keys {
            match key.kid.clone() {
                Some(kid) => {
                    if by_kid.insert(kid.clone(), key).is_some() {
                        return Err(KeyError::DuplicateKid { kid });
                    }
                }
                None if default_key.is_some() => return Err(KeyError::AmbiguousDefaultKey),
                None => default_key = Some(key),
            }
        }
        let max_lifetime = self.max_lifetime.unwrap_or(DEFAULT_MAX_TOKEN_LIFETIME);
        Ok(JwtVerifier {
            inner: Arc::new(VerifierInner {
                by_kid,
                default_key,
                leeway_secs,
                // Rounded up: a lifetime of 1.5 s admits tokens with `exp - iat == 2`.
                max_lifetime_secs: max_lifetime
                    .as_secs()
                    .saturating_add(u64::from(max_lifetime.subsec_nanos() > 0)),
                max_token_len: self.max_token_len.unwrap_or(DEFAULT_MAX_TOKEN_LEN),
                issuers: self.issuers,
                audiences: self.audiences,
                require_iat: !self.allow_missing_iat,
            }),
        })
    }
}

impl JwtVerifier {
    /// Starts building a verifier.
    ///
    /// Also installs this crate's signature backend as jsonwebtoken's process-wide
    /// default when none is (see [`install_crypto_provider`](crate::install_crypto_provider)),
    /// so the application's own `jsonwebtoken::encode` works even when Cargo compiled
    /// both backends in.
    pub fn builder() -> JwtVerifierBuilder {
        crate::crypto::install_crypto_provider();
        JwtVerifierBuilder::default()
    }

    /// Verifies `token` and decodes its registered claims; the application reads its
    /// own later, with [`VerifiedToken::claims`].
    pub fn verify(&self, token: &str) -> Result<VerifiedToken, VerifyError> {
        match self.decode(token, Purpose::Request) {
            Ok(verified) => Ok(verified),
            Err(Failure::Verify(error)) => Err(error),
            Err(Failure::ExpiredButGenuine) => Err(VerifyError::Expired),
        }
    }

    /// Verifies a token for revocation: like [`verify`](Self::verify), but a token
    /// that is genuine and merely expired is `Ok(None)` (nothing needs revoking), and
    /// one not valid yet (`nbf`, `iat` ahead) is revocable before it ever is.
    pub(crate) fn verify_for_revocation(&self, token: &str) -> Result<Option<VerifiedToken>, VerifyError> {
        match self.decode(token, Purpose::Revocation) {
            Ok(verified) => Ok(Some(verified)),
            Err(Failure::ExpiredButGenuine) => Ok(None),
            Err(Failure::Verify(error)) => Err(error),
        }
    }

    /// The `exp`/`nbf` leeway, in seconds.
    pub fn leeway_secs(&self) -> u64 {
        self.inner.leeway_secs
    }

    /// The longest token lifetime accepted, in whole seconds.
    pub fn max_token_lifetime_secs(&self) -> u64 {
        self.inner.max_lifetime_secs
    }

    /// The issuer to hash subjects and sessions under when none is given: the
    /// configured issuer when there is exactly one.
    pub(crate) fn sole_issuer(&self) -> Option<&str> {
        match self.inner.issuers.as_slice() {
            [only] => Some(only),
            _ => None,
        }
    }

    /// How long a revocation must last for a token expiring at `exp` (seconds since
    /// the epoch) to stay refused, measured from `now`; `None` once no verifier would
    /// accept it.
    ///
    /// The verifier (like jsonwebtoken) refuses a token once `exp < floor(now) - leeway`, so it still
    /// accepts it during the whole second `exp + leeway`: the revocation must last
    /// until `exp + leeway + 1`.
    pub(crate) fn revocation_ttl(&self, exp: u64, now: SystemTime) -> Option<Duration> {
        let last_accepted = exp.saturating_add(self.inner.leeway_secs).saturating_add(1);
        let until = UNIX_EPOCH + Duration::from_secs(last_accepted);
        let remaining = until.duration_since(now).ok().filter(|d| !d.is_zero())?;
        // Rounded up to whole seconds: stores keep TTLs in seconds, never shorter.
        let secs = remaining.as_secs() + u64::from(remaining.subsec_nanos() > 0);
        Some(Duration::from_secs(secs))
    }

    /// How long a subject, session or global revocation must last: every token it
    /// covers was issued before it, and so expires within the maximum lifetime.
    pub(crate) fn watermark_ttl(&self) -> Duration {
        Duration::from_secs(
            self.inner
                .max_lifetime_secs
                .saturating_add(self.inner.leeway_secs)
                .saturating_add(1),
        )
    }

    /// One pass over the token: split, check the header, verify the signature,
    /// then read and validate the claims. Signature verification comes before any
    /// claim is trusted, so "expired" is only ever said of a genuine token.
    fn decode(&self, token: &str, purpose: Purpose) -> Result<VerifiedToken, Failure> {
        let inner = &*self.inner;
        if token.len() > inner.max_token_len {
            return Err(VerifyError::TooLarge.into());
        }
        let (signing_input, signature) = token.rsplit_once('.').ok_or(VerifyError::Malformed)?;
        let (header, payload) = signing_input.split_once('.').ok_or(VerifyError::Malformed)?;

        let header = b64(header)?;
        let header: JoseHeader<'_> = serde_json::from_slice(&header).map_err(|_| VerifyError::Malformed)?;
        if header.crit.is_some() {
            // RFC 7515 §4.1.11: critical extensions we do not understand mean "refuse".
            return Err(VerifyError::Malformed.into());
        }
        let key = match header.kid.as_deref().and_then(|kid| inner.by_kid.get(kid)) {
            Some(key) => key,
            None => inner.default_key.as_ref().ok_or(VerifyError::UnknownKey)?,
        };
        // `none`, unknown names and other algorithms than the key's all end here.
        if header.alg.parse::<Algorithm>().ok() != Some(key.algorithm) {
            return Err(VerifyError::AlgorithmNotAllowed.into());
        }

        let signature = b64(signature)?;
        let verifier = (crate::crypto::provider().verifier_factory)(&key.algorithm, &key.key)
            .map_err(|_| VerifyError::AlgorithmNotAllowed)?;
        verifier
            .verify(signing_input.as_bytes(), &signature)
            .map_err(|_| VerifyError::BadSignature)?;

        let payload = b64(payload)?;
        let claims: Payload<'_> = serde_json::from_slice(&payload).map_err(|error| {
            // Name the claim when serde can tell which one is off.
            let message = error.to_string();
            let claim = ["exp", "nbf", "iat", "iss", "aud", "sub", "jti", "sid"]
                .into_iter()
                .find(|claim| message.contains(&format!("`{claim}`")));
            match claim {
                Some(claim) if message.starts_with("missing field") => VerifyError::MissingClaim(claim),
                Some(claim) => VerifyError::InvalidClaim(claim),
                None => VerifyError::Malformed,
            }
        })?;
        let registered = RegisteredClaims {
            // An empty `jti` names no token: were it an id, every token carrying one
            // would be revoked with the first.
            jti: claims.jti.filter(|jti| !jti.is_empty()),
            sub: claims.sub,
            sid: claims.sid,
            iss: claims.iss,
            iat: claims.iat,
            nbf: claims.nbf,
            exp: claims.exp,
        };
        self.validate(&registered, claims.aud.as_ref(), purpose)?;
        let key = match registered.jti.as_deref() {
            Some(jti) => RevocationKey::token(registered.iss.as_deref(), jti),
            None => RevocationKey::token_without_id(signing_input),
        };
        Ok(VerifiedToken {
            registered,
            key,
            payload: payload.into(),
        })
    }

    fn validate(
        &self,
        claims: &RegisteredClaims,
        audience: Option<&Audience>,
        purpose: Purpose,
    ) -> Result<(), Failure> {
        let not_yet_valid_counts = purpose == Purpose::Request;
        let inner = &*self.inner;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        if claims.exp < now.saturating_sub(inner.leeway_secs) {
            return Err(Failure::ExpiredButGenuine);
        }
        if not_yet_valid_counts
            && claims
                .nbf
                .is_some_and(|nbf| nbf > now.saturating_add(inner.leeway_secs))
        {
            return Err(VerifyError::NotYetValid.into());
        }
        if !inner.issuers.is_empty() {
            let issuer = claims.iss.as_deref().ok_or(VerifyError::MissingClaim("iss"))?;
            if !inner.issuers.iter().any(|accepted| accepted == issuer) {
                return Err(VerifyError::WrongIssuer.into());
            }
        }
        match (audience, inner.audiences.is_empty()) {
            (None, true) => {}
            (None, false) => return Err(VerifyError::MissingClaim("aud").into()),
            // A token meant for a named audience is not meant for a service that has none.
            (Some(_), true) => return Err(VerifyError::WrongAudience.into()),
            (Some(audience), false) => {
                if !audience
                    .iter()
                    .any(|aud| inner.audiences.iter().any(|accepted| accepted == aud))
                {
                    return Err(VerifyError::WrongAudience.into());
                }
            }
        }
        // Watermarks and session revocations are kept for the maximum lifetime, so no
        // token may live longer than that after its `iat`. Both come from the issuer's
        // clock, so no leeway applies to their difference.
        match claims.iat {
            Some(iat) if not_yet_valid_counts && iat > now.saturating_add(inner.leeway_secs) => {
                return Err(VerifyError::InvalidClaim("iat").into());
            }
            Some(iat) if claims.exp.saturating_sub(iat) > inner.max_lifetime_secs => {
                return Err(VerifyError::LifetimeTooLong.into());
            }
            Some(_) => {}
            None if inner.require_iat => return Err(VerifyError::MissingClaim("iat").into()),
            None => {
                // Issuance is unknown: bound what is left, allowing for clock skew.
                let allowed = inner.max_lifetime_secs.saturating_add(inner.leeway_secs);
                if claims.exp.saturating_sub(now) > allowed {
                    return Err(VerifyError::LifetimeTooLong.into());
                }
            }
        }
        Ok(())
    }
}

fn b64(part: &str) -> Result<Vec<u8>, VerifyError> {
    URL_SAFE_NO_PAD.decode(part).map_err(|_| VerifyError::Malformed)
}

/// The JOSE header fields verification depends on.
#[derive(Deserialize)]
struct JoseHeader<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(default, borrow)]
    kid: Option<Cow<'a, str>>,
    #[serde(default)]
    crit: Option<IgnoredAny>,
}

/// The payload as verification reads it: the registered claims, and `aud`. Spelled
/// out rather than `#[serde(flatten)]`ing [`RegisteredClaims`], which would buffer the
/// whole payload on every request.
#[derive(Deserialize)]
struct Payload<'a> {
    #[serde(default)]
    jti: Option<String>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    sid: Option<String>,
    #[serde(default)]
    iss: Option<String>,
    #[serde(default, deserialize_with = "crate::token::iat_date")]
    iat: Option<u64>,
    #[serde(default, deserialize_with = "crate::token::nbf_date")]
    nbf: Option<u64>,
    #[serde(deserialize_with = "crate::token::exp_date")]
    exp: u64,
    #[serde(default, borrow)]
    aud: Option<Audience<'a>>,
}

/// `aud`: one audience or several (RFC 7519 §4.1.3).
#[derive(Deserialize)]
#[serde(untagged)]
enum Audience<'a> {
    One(#[serde(borrow)] Cow<'a, str>),
    Many(#[serde(borrow)] Vec<Cow<'a, str>>),
}

impl Audience<'_> {
    fn iter(&self) -> impl Iterator<Item = &str> {
        let (one, many) = match self {
            Self::One(aud) => (Some(aud.as_ref()), &[][..]),
            Self::Many(auds) => (None, auds.as_slice()),
        };
        one.into_iter().chain(many.iter().map(AsRef::as_ref))
    }
}

/// What a token is verified for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// Letting a request in.
    Request,
    /// Revoking it: a token that is not valid yet is still worth revoking.
    Revocation,
}

enum Failure {
    Verify(VerifyError),
    ExpiredButGenuine,
}

impl From<VerifyError> for Failure {
    fn from(error: VerifyError) -> Self {
        Self::Verify(error)
    }
}
