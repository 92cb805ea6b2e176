//! A signing key of the test keys (tests/keys), its public half as a JWK, and tokens
//! signed with it: the provider's keys in the JWKS tests.

#![allow(dead_code)]

use serde_json::{Value, json};
use tower_jwt_revoke::jsonwebtoken::jwk::Jwk;
use tower_jwt_revoke::jsonwebtoken::{Algorithm, EncodingKey, Header};

use crate::common::{claims, mint_with, read_key};

/// A signing key of the test keys, with its public half as a JWK.
pub struct TestKey {
    alg: Algorithm,
    private: EncodingKey,
}

impl TestKey {
    pub fn rsa() -> Self {
        Self {
            alg: Algorithm::RS256,
            private: EncodingKey::from_rsa_pem(&read_key("rsa_private.pem")).unwrap(),
        }
    }

    pub fn ec() -> Self {
        Self {
            alg: Algorithm::ES256,
            private: EncodingKey::from_ec_pem(&read_key("ec_private.pem")).unwrap(),
        }
    }

    /// The public JWK, with `alg` and this `kid`.
    pub fn jwk(&self, kid: &str) -> Value {
        tower_jwt_revoke::install_crypto_provider();
        let jwk = Jwk::from_encoding_key(&self.private, self.alg).unwrap();
        let mut jwk = serde_json::to_value(jwk).unwrap();
        jwk["kid"] = json!(kid);
        jwk
    }

    /// The public JWK with members changed (or removed, with `null`).
    pub fn jwk_with(&self, kid: &str, changes: Value) -> Value {
        let mut jwk = self.jwk(kid);
        let map = jwk.as_object_mut().unwrap();
        for (name, value) in changes.as_object().unwrap() {
            if value.is_null() {
                map.remove(name);
            } else {
                map.insert(name.clone(), value.clone());
            }
        }
        jwk
    }

    /// A token of `claims`, signed with this key, naming `kid`.
    pub fn sign(&self, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(kid.to_owned());
        mint_with(&header, claims, &self.private)
    }

    /// A fresh token of "alice" from the common test issuer.
    pub fn token(&self, kid: &str) -> String {
        self.sign(kid, &claims("alice"))
    }
}

pub fn jwk_set(keys: &[Value]) -> Value {
    json!({ "keys": keys })
}
