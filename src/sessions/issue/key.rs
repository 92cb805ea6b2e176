//! [`SigningKey`]: the private half a [`TokenIssuer`](crate::TokenIssuer) signs with.

use jsonwebtoken::{Algorithm, EncodingKey};

use crate::verify::KeyError;

/// A key that signs tokens, pinned to one algorithm, with the `kid` its tokens name.
///
/// HMAC secrets (HS256, HS384, HS512) have their own constructor; RSA, ECDSA and EdDSA
/// private keys come through [`from_encoding_key`](Self::from_encoding_key), from
/// jsonwebtoken's own constructors (`EncodingKey::from_rsa_pem` and so on). Whatever
/// the key, [`TokenIssuerBuilder::build`](crate::TokenIssuerBuilder::build) signs a
/// probe with it and refuses it unless the verifier accepts the result.
#[derive(Clone)]
pub struct SigningKey {
    pub(crate) algorithm: Algorithm,
    pub(crate) key: EncodingKey,
    pub(crate) kid: Option<String>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key material stays out of logs.
        f.debug_struct("SigningKey")
            .field("algorithm", &self.algorithm)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// An HMAC secret for HS256, HS384 or HS512: the same bytes as the verifier's
    /// [`VerificationKey::hmac`](crate::VerificationKey::hmac).
    pub fn hmac(algorithm: Algorithm, secret: &[u8]) -> Result<Self, KeyError> {
        if secret.is_empty() {
            return Err(KeyError::EmptySecret);
        }
        if !matches!(algorithm, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
            return Err(KeyError::AlgorithmMismatch { algorithm });
        }
        crate::verify::crypto::install_crypto_provider();
        Ok(Self {
            algorithm,
            key: EncodingKey::from_secret(secret),
            kid: None,
        })
    }

    /// Any jsonwebtoken [`EncodingKey`] (an RSA, ECDSA or Ed25519 private key, say)
    /// with the one algorithm it signs with.
    pub fn from_encoding_key(algorithm: Algorithm, key: EncodingKey) -> Self {
        crate::verify::crypto::install_crypto_provider();
        Self {
            algorithm,
            key,
            kid: None,
        }
    }

    /// Names the key in every token's header (`kid`), as the verifier's key of that
    /// `kid` expects.
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// The algorithm the key signs with.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The `kid` tokens name, if any.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }
}
