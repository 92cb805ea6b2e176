//! What a fetched JWK Set document becomes: the keys to verify with, and the keys
//! skipped, with why.

use serde_json::Value;

use super::error::JwksError;
use crate::{KeyError, KeySet, SkippedKey};

/// The usable keys of the JWK Set at `url`, and those left out.
///
/// Besides what [`KeySet::from_jwks`] leaves out, symmetric (`oct`) keys are skipped:
/// a JWK Set is published for anyone to read, and whoever can read an HMAC secret can
/// sign tokens with it.
pub(super) fn key_set(url: &str, body: &[u8]) -> Result<(KeySet, Vec<SkippedKey>), JwksError> {
    let not_a_jwk_set = |source| JwksError::NotAJwkSet {
        url: url.to_owned(),
        source,
    };
    let mut document: Value =
        serde_json::from_slice(body).map_err(|error| not_a_jwk_set(KeyError::NotAJwkSet(error)))?;
    let mut skipped = Vec::new();
    if let Some(keys) = document.get_mut("keys").and_then(Value::as_array_mut) {
        keys.retain(|key| {
            let symmetric = key.get("kty").and_then(Value::as_str) == Some("oct");
            if symmetric {
                skipped.push(SkippedKey {
                    kid: key.get("kid").and_then(Value::as_str).map(str::to_owned),
                    reason: KeyError::NotAJwk(
                        "a symmetric (`oct`) key in a published JWK Set: anyone who reads it could sign tokens"
                            .to_owned(),
                    ),
                });
            }
            !symmetric
        });
    }
    let (keys, more) = KeySet::from_jwks(document.to_string().as_bytes()).map_err(not_a_jwk_set)?;
    skipped.extend(more);
    Ok((keys, skipped))
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    #[test]
    fn malformed_documents_and_keys_are_errors_or_skips_never_panics() {
        for document in [
            &b""[..],
            b"null",
            b"[]",
            b"{}",
            br#"{"keys": 5}"#,
            br#"{"keys": {"kty": "EC"}}"#,
            &[0xff, 0xfe, 0x00],
        ] {
            assert!(key_set("u", document).is_err(), "{document:?}");
        }
        let keys = [
            r#"1"#,
            r#"null"#,
            r#"{}"#,
            r#"{"kty": 7}"#,
            r#"{"kty": "EC", "crv": "P-256", "x": "!!", "y": ""}"#,
            r#"{"kty": "EC", "crv": "P-256", "x": "", "y": ""}"#,
            r#"{"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"}"#,
            r#"{"kty": "EC", "crv": "P-256", "alg": "ES384", "x": "AA", "y": "AA"}"#,
            r#"{"kty": "RSA", "alg": "RS256", "n": "!", "e": "AQAB"}"#,
            r#"{"kty": "RSA", "alg": "RS256", "n": "", "e": ""}"#,
            r#"{"kty": "RSA", "alg": "none", "n": "AQAB", "e": "AQAB"}"#,
            r#"{"kty": "OKP", "crv": "X25519", "x": "AA"}"#,
            r#"{"kty": "oct", "alg": "HS256", "k": "c2VjcmV0"}"#,
            r#"{"kty": "oct", "kid": 5}"#,
        ];
        for key in keys {
            let document = format!(r#"{{"keys": [{key}]}}"#);
            let Ok((keys, _)) = key_set("u", document.as_bytes()) else {
                continue;
            };
            // A key that parsed but is not a point on its curve (say) still only ever
            // fails to verify.
            let verifier = crate::JwtVerifier::builder()
                .key_ring(crate::KeyRing::new(keys))
                .build()
                .unwrap();
            for alg in ["ES256", "RS256", "EdDSA"] {
                let b64 = |text: &str| URL_SAFE_NO_PAD.encode(text);
                let token = format!(
                    "{}.{}.{}",
                    b64(&format!(r#"{{"alg":"{alg}"}}"#)),
                    b64(r#"{"exp":4000000000,"iat":1}"#),
                    b64("signature")
                );
                assert!(verifier.verify(&token).is_err(), "{key} {alg}");
            }
        }
    }
}
