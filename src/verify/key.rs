//! [`VerificationKey`]: one key, pinned to one algorithm; and why a key is refused.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

use super::hmac::HmacKey;

/// A key that may verify tokens, pinned to exactly one algorithm.
///
/// Pinning is what rules out algorithm confusion: a token whose header names another
/// algorithm than its key's is refused, so an HMAC token can never be checked against
/// an RSA public key used as a secret, and `alg: none` has no key at all.
#[derive(Clone)]
pub struct VerificationKey {
    pub(crate) algorithm: Algorithm,
    pub(crate) key: DecodingKey,
    pub(crate) kid: Option<String>,
    /// The key ready to check HMAC signatures with, for an HMAC key.
    pub(crate) hmac: Option<HmacKey>,
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

    /// A key from a JWK (RFC 7517), its `kid` kept.
    ///
    /// The algorithm is the JWK's `alg`, or, without one, the only algorithm its key
    /// type and curve allow: `EC` on `P-256` is ES256, on `P-384` ES384, `OKP` on
    /// `Ed25519` EdDSA. An `RSA` or `oct` key without `alg` is refused
    /// ([`KeyError::JwkWithoutAlgorithm`]): several algorithms could use it, and
    /// guessing one would reopen algorithm confusion. A key marked for encryption
    /// (`use: enc`) is refused too ([`KeyError::NotForSignatures`]).
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, KeyError> {
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            return Err(KeyError::NotForSignatures);
        }
        if let AlgorithmParameters::Other(_) = &jwk.algorithm {
            return Err(KeyError::NotAJwk(
                "a key type this crate cannot verify with".into(),
            ));
        }
        let curve = match &jwk.algorithm {
            AlgorithmParameters::EllipticCurve(params) => Some(&params.curve),
            AlgorithmParameters::OctetKeyPair(params) => Some(&params.curve),
            _ => None,
        };
        let implied = match curve {
            Some(EllipticCurve::P256) => Some(Algorithm::ES256),
            Some(EllipticCurve::P384) => Some(Algorithm::ES384),
            Some(EllipticCurve::Ed25519) => Some(Algorithm::EdDSA),
            _ => None,
        };
        let algorithm = match jwk.common.key_algorithm {
            Some(alg) => {
                let algorithm = alg
                    .to_string()
                    .parse::<Algorithm>()
                    .map_err(|_| KeyError::UnsupportedAlgorithm(alg.to_string()))?;
                // An ES256 key on P-384 (say) would only ever fail to verify.
                if curve.is_some() && implied != Some(algorithm) {
                    return Err(KeyError::AlgorithmMismatch { algorithm });
                }
                algorithm
            }
            None => implied.ok_or(KeyError::JwkWithoutAlgorithm)?,
        };
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

    /// The `kid` this key is selected by, if any.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The one algorithm this key verifies.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    fn pinned(algorithm: Algorithm, key: DecodingKey) -> Result<Self, KeyError> {
        // A program that builds keys first and signs its own tokens next must not
        // meet jsonwebtoken's "no CryptoProvider" panic in between.
        crate::verify::crypto::install_crypto_provider();
        if algorithm.family() != key.family() {
            return Err(KeyError::AlgorithmMismatch { algorithm });
        }
        Ok(Self {
            hmac: HmacKey::prepare(algorithm, &key),
            algorithm,
            key,
            kid: None,
        })
    }
}

/// Why a [`VerificationKey`] or a [`JwtVerifier`](crate::JwtVerifier) could not be built.
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
    /// A JWK without `alg` whose key type does not determine one (`RSA`, `oct`).
    #[error("the JWK has no `alg`, and its key type does not determine one")]
    JwkWithoutAlgorithm,
    /// A JWK whose `alg` this crate cannot verify (an encryption algorithm, ES512…).
    #[error("the JWK's algorithm {0} cannot verify signatures here")]
    UnsupportedAlgorithm(String),
    /// A JWK meant for encryption (`use: enc`).
    #[error("the JWK is meant for encryption (`use: enc`), not signatures")]
    NotForSignatures,
    /// A member of a JWK Set is not a JWK this crate understands (an unknown `kty`,
    /// say).
    #[error("not a usable JWK: {0}")]
    NotAJwk(String),
    /// A verifier was given both fixed keys (`key`) and a key ring (`key_ring`).
    #[error("give a verifier fixed keys or a key ring, not both")]
    KeysAndKeyRing,
    /// A JWK Set document is not JSON with a `keys` array.
    #[error("not a JWK Set document")]
    NotAJwkSet(#[source] serde_json::Error),
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
