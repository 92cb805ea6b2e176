//! With both signature backends compiled in, jsonwebtoken cannot choose one and its own
//! `encode` panics ("Could not automatically determine the process-level
//! CryptoProvider"). A program that touches this crate first must never meet that: the
//! crate installs its backend at every entry point.
//!
//! One test per file: the process-wide provider can be installed only once, so each
//! case needs a process of its own in which nothing else installed it first.
#![cfg(all(feature = "aws_lc_rs", feature = "rust_crypto"))]

use tower_jwt_revoke::VerificationKey;
use tower_jwt_revoke::jsonwebtoken::{self, Algorithm, EncodingKey, Header};

#[test]
fn the_application_can_sign_right_after_making_a_key() {
    // The first thing a program typically does with the crate...
    let key = VerificationKey::hmac(Algorithm::HS256, b"a secret of thirty-two bytes!!!!").unwrap();
    assert_eq!(key.algorithm(), Algorithm::HS256);
    // ...then the application signs with its own jsonwebtoken: no panic.
    let claims = serde_json::json!({ "sub": "alice", "exp": jsonwebtoken::get_current_timestamp() + 60 });
    let token = jsonwebtoken::encode(&Header::default(), &claims, &EncodingKey::from_secret(b"k")).unwrap();
    assert_eq!(token.split('.').count(), 3);
}
