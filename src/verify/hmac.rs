//! HMAC keys prepared once, with the [`VerificationKey`](super::VerificationKey).
//!
//! jsonwebtoken's verifier factory builds a verifier for every token it checks: for an
//! HMAC key that is the key schedule (the secret's inner and outer pads hashed, two
//! hash blocks) and a boxed verifier, on every request. Its verifiers are boxed trait
//! objects that are not `Send`, so they cannot be kept in a key shared between
//! threads; an HMAC key of the backend's own can, and the check is then the message's
//! hash alone. Keys of the other families still go through the factory.

use jsonwebtoken::{Algorithm, DecodingKey};

/// A ready HMAC key of the backend this crate verifies with (see [`crate::verify::crypto`]).
#[derive(Clone)]
pub(crate) struct HmacKey(Backend);

#[cfg(feature = "aws_lc_rs")]
type Backend = aws_lc_rs::hmac::Key;

#[cfg(all(feature = "rust_crypto", not(feature = "aws_lc_rs")))]
#[derive(Clone)]
enum Backend {
    Sha256(hmac::Hmac<sha2::Sha256>),
    Sha384(hmac::Hmac<sha2::Sha384>),
    Sha512(hmac::Hmac<sha2::Sha512>),
}

impl HmacKey {
    /// The prepared key for `algorithm`, when it is an HMAC algorithm and `key` an HMAC
    /// secret; `None` otherwise (the key is verified through the factory then).
    pub(crate) fn prepare(algorithm: Algorithm, key: &DecodingKey) -> Option<Self> {
        let secret = key.try_get_as_bytes().ok()?;
        #[cfg(feature = "aws_lc_rs")]
        {
            use aws_lc_rs::hmac;
            let backend = match algorithm {
                Algorithm::HS256 => hmac::HMAC_SHA256,
                Algorithm::HS384 => hmac::HMAC_SHA384,
                Algorithm::HS512 => hmac::HMAC_SHA512,
                _ => return None,
            };
            Some(Self(hmac::Key::new(backend, secret)))
        }
        #[cfg(all(feature = "rust_crypto", not(feature = "aws_lc_rs")))]
        {
            use hmac::{Hmac, Mac};
            // Any length is a valid HMAC key, so these never fail; `None` would only
            // send the key through the factory.
            let backend = match algorithm {
                Algorithm::HS256 => Backend::Sha256(Hmac::new_from_slice(secret).ok()?),
                Algorithm::HS384 => Backend::Sha384(Hmac::new_from_slice(secret).ok()?),
                Algorithm::HS512 => Backend::Sha512(Hmac::new_from_slice(secret).ok()?),
                _ => return None,
            };
            Some(Self(backend))
        }
    }

    /// Whether `tag` is `message`'s HMAC under this key (compared in constant time).
    pub(crate) fn verify(&self, message: &[u8], tag: &[u8]) -> bool {
        #[cfg(feature = "aws_lc_rs")]
        {
            aws_lc_rs::hmac::verify(&self.0, message, tag).is_ok()
        }
        #[cfg(all(feature = "rust_crypto", not(feature = "aws_lc_rs")))]
        {
            use hmac::Mac;
            // A clone of the keyed state: the pads are not hashed again.
            match &self.0 {
                Backend::Sha256(mac) => mac.clone().chain_update(message).verify_slice(tag).is_ok(),
                Backend::Sha384(mac) => mac.clone().chain_update(message).verify_slice(tag).is_ok(),
                Backend::Sha512(mac) => mac.clone().chain_update(message).verify_slice(tag).is_ok(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};

    /// The signature jsonwebtoken makes for `algorithm`, split from its signing input.
    fn signed(algorithm: Algorithm, secret: &[u8]) -> (String, Vec<u8>) {
        let token = jsonwebtoken::encode(
            &Header::new(algorithm),
            &serde_json::json!({"sub": "alice"}),
            &EncodingKey::from_secret(secret),
        )
        .expect("signs");
        let (input, signature) = token.rsplit_once('.').expect("three parts");
        let signature = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, signature)
            .expect("base64url");
        (input.to_owned(), signature)
    }

    #[test]
    fn accepts_what_jsonwebtoken_signs_and_nothing_else() {
        crate::verify::crypto::install_crypto_provider();
        for algorithm in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let key = HmacKey::prepare(algorithm, &DecodingKey::from_secret(b"secret")).expect("an HMAC key");
            let (input, signature) = signed(algorithm, b"secret");
            assert!(key.verify(input.as_bytes(), &signature), "{algorithm:?}");
            // Another message, another secret, a cut tag: all refused.
            assert!(!key.verify(b"other.input", &signature), "{algorithm:?}");
            let (_, foreign) = signed(algorithm, b"another secret");
            assert!(!key.verify(input.as_bytes(), &foreign), "{algorithm:?}");
            assert!(
                !key.verify(input.as_bytes(), &signature[..signature.len() - 1]),
                "{algorithm:?}"
            );
            assert!(!key.verify(input.as_bytes(), &[]), "{algorithm:?}");
        }
    }

    #[test]
    fn only_hmac_algorithms_and_secrets_are_prepared() {
        let secret = DecodingKey::from_secret(b"secret");
        assert!(HmacKey::prepare(Algorithm::RS256, &secret).is_none());
        let rsa = DecodingKey::from_rsa_raw_components(&[0xc3; 256], &[1, 0, 1]);
        assert!(HmacKey::prepare(Algorithm::HS256, &rsa).is_none());
    }
}
