//! Every supported algorithm verifies a genuine token and refuses a tampered one,
//! and keys are chosen by `kid`.

use std::convert::Infallible;
use std::path::PathBuf;

use http::{Request, Response, StatusCode};
use serde_json::json;
use tower::{ServiceBuilder, ServiceExt};
use tower_jwt_revoke::jsonwebtoken::{self, Algorithm, EncodingKey, Header};
use tower_jwt_revoke::store::InMemoryStore;
use tower_jwt_revoke::{JwtVerifier, RevocationLayer, VerificationKey, VerifyError};

fn key(name: &str) -> Vec<u8> {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "keys", name]
        .iter()
        .collect();
    std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// (algorithm, signing key, verification key)
fn cases() -> Vec<(Algorithm, EncodingKey, VerificationKey)> {
    let secret = b"algorithms-test-secret-0123456789abcdef";
    let hmac = |alg| {
        (
            alg,
            EncodingKey::from_secret(secret),
            VerificationKey::hmac(alg, secret).unwrap(),
        )
    };
    let rsa = |alg| {
        (
            alg,
            EncodingKey::from_rsa_pem(&key("rsa_private.pem")).unwrap(),
            VerificationKey::rsa_pem(alg, &key("rsa_public.pem")).unwrap(),
        )
    };
    let ec = |alg, private: &str, public: &str| {
        (
            alg,
            EncodingKey::from_ec_pem(&key(private)).unwrap(),
            VerificationKey::ec_pem(alg, &key(public)).unwrap(),
        )
    };
    vec![
        hmac(Algorithm::HS256),
        hmac(Algorithm::HS384),
        hmac(Algorithm::HS512),
        rsa(Algorithm::RS256),
        rsa(Algorithm::RS384),
        rsa(Algorithm::RS512),
        rsa(Algorithm::PS256),
        rsa(Algorithm::PS384),
        rsa(Algorithm::PS512),
        ec(Algorithm::ES256, "ec_private.pem", "ec_public.pem"),
        ec(Algorithm::ES384, "ec384_private.pem", "ec384_public.pem"),
        (
            Algorithm::EdDSA,
            EncodingKey::from_ed_pem(&key("ed25519_private.pem")).unwrap(),
            VerificationKey::ed_pem(&key("ed25519_public.pem")).unwrap(),
        ),
    ]
}

fn claims() -> serde_json::Value {
    let now = jsonwebtoken::get_current_timestamp();
    json!({ "sub": "alice", "jti": "algorithms", "iat": now, "exp": now + 300 })
}

#[test]
fn every_algorithm_verifies_genuine_tokens_and_refuses_tampered_ones() {
    tower_jwt_revoke::install_crypto_provider();
    for (alg, signing, verifying) in cases() {
        let verifier = JwtVerifier::builder().key(verifying).build().unwrap();
        let token = jsonwebtoken::encode(&Header::new(alg), &claims(), &signing).unwrap();
        let verified = verifier.verify(&token);
        assert_eq!(
            verified.as_ref().map(|t| t.subject()),
            Ok(Some("alice")),
            "{alg:?}"
        );

        // Another payload under the same signature.
        let (header, rest) = token.split_once('.').unwrap();
        let (_, signature) = rest.split_once('.').unwrap();
        let forged_claims = json!({ "sub": "mallory", "jti": "x", "iat": 1, "exp": 2 });
        let other = jsonwebtoken::encode(&Header::new(alg), &forged_claims, &signing).unwrap();
        let other_payload = other.split('.').nth(1).unwrap();
        let tampered = format!("{header}.{other_payload}.{signature}");
        assert_eq!(
            verifier.verify(&tampered).unwrap_err(),
            VerifyError::BadSignature,
            "{alg:?}"
        );
    }
}

#[tokio::test]
async fn keys_are_chosen_by_kid_and_an_unknown_kid_is_refused() {
    tower_jwt_revoke::install_crypto_provider();
    let secret_a = b"kid-a-secret-0123456789abcdefghij";
    let secret_b = b"kid-b-secret-0123456789abcdefghij";
    let verifier = JwtVerifier::builder()
        .key(
            VerificationKey::hmac(Algorithm::HS256, secret_a)
                .unwrap()
                .with_kid("a"),
        )
        .key(
            VerificationKey::rsa_pem(Algorithm::RS256, &key("rsa_public.pem"))
                .unwrap()
                .with_kid("b-rsa"),
        )
        .key(
            VerificationKey::hmac(Algorithm::HS512, secret_b)
                .unwrap()
                .with_kid("b"),
        )
        .build()
        .unwrap();
    let service = ServiceBuilder::new()
        .layer(RevocationLayer::new(verifier, InMemoryStore::new()))
        .service_fn(|_: Request<String>| async { Ok::<_, Infallible>(Response::new(String::new())) });
    let sign = |kid: &str, alg, key: &EncodingKey| {
        let mut header = Header::new(alg);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, &claims(), key).unwrap()
    };
    let cases = [
        (
            "kid a, its key",
            sign("a", Algorithm::HS256, &EncodingKey::from_secret(secret_a)),
            StatusCode::OK,
        ),
        (
            "kid b, its key",
            sign("b", Algorithm::HS512, &EncodingKey::from_secret(secret_b)),
            StatusCode::OK,
        ),
        (
            "kid b-rsa, its key",
            sign(
                "b-rsa",
                Algorithm::RS256,
                &EncodingKey::from_rsa_pem(&key("rsa_private.pem")).unwrap(),
            ),
            StatusCode::OK,
        ),
        (
            "kid a, signed with b's secret",
            sign("a", Algorithm::HS256, &EncodingKey::from_secret(secret_b)),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "unknown kid, no default key",
            sign("zzz", Algorithm::HS256, &EncodingKey::from_secret(secret_a)),
            StatusCode::UNAUTHORIZED,
        ),
    ];
    for (name, token, expected) in cases {
        let request = Request::get("/")
            .header("authorization", format!("Bearer {token}"))
            .body(String::new());
        let response = service.clone().oneshot(request.unwrap()).await.unwrap();
        assert_eq!(response.status(), expected, "{name}");
    }
}

#[test]
fn misconfigured_keys_are_refused_at_build_time() {
    let secret = b"misconfigured-secret";
    assert!(VerificationKey::hmac(Algorithm::HS256, b"").is_err());
    assert!(
        VerificationKey::hmac(Algorithm::RS256, secret).is_err(),
        "an HMAC secret for RS256"
    );
    assert!(VerificationKey::ec_pem(Algorithm::ES256, &key("rsa_public.pem")).is_err());
    let duplicate = JwtVerifier::builder()
        .key(
            VerificationKey::hmac(Algorithm::HS256, secret)
                .unwrap()
                .with_kid("same"),
        )
        .key(
            VerificationKey::hmac(Algorithm::HS384, secret)
                .unwrap()
                .with_kid("same"),
        )
        .build();
    assert!(duplicate.is_err());
    let two_defaults = JwtVerifier::builder()
        .key(VerificationKey::hmac(Algorithm::HS256, secret).unwrap())
        .key(VerificationKey::hmac(Algorithm::HS384, secret).unwrap())
        .build();
    assert!(two_defaults.is_err());
}
