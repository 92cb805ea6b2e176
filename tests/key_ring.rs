//! Keys that change while the service runs, keys per issuer, JWKs without `alg`,
//! explicit typing (`typ: at+jwt`), and the session claim.

mod common;

use serde_json::json;
use tower::Layer;
use tower_jwt_revoke::jsonwebtoken::{Algorithm, EncodingKey, Header};
use tower_jwt_revoke::store::InMemoryStore;
use tower_jwt_revoke::{
    JwtVerifier, KeyError, KeyRing, KeySet, Rejection, RevocationLayer, SessionClaim, VerificationKey,
    VerifyError,
};

use common::{AUDIENCE, ISSUER, bearer, claims, claims_with, echo, mint_with, send};

fn hs256(secret: &[u8], kid: &str) -> VerificationKey {
    VerificationKey::hmac(Algorithm::HS256, secret)
        .unwrap()
        .with_kid(kid)
}

fn signed(secret: &[u8], kid: &str, claims: &serde_json::Value) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(kid.into());
    mint_with(&header, claims, &EncodingKey::from_secret(secret))
}

async fn outcome(layer: &RevocationLayer, token: &str) -> Result<(), Rejection> {
    let response = send(layer.layer(echo()), bearer(token)).await;
    match response.extensions().get::<Rejection>() {
        Some(rejection) => Err(rejection.clone()),
        None => Ok(()),
    }
}

#[tokio::test]
async fn a_key_ring_rotates_the_keys_of_a_running_layer() {
    let ring = KeyRing::new(KeySet::new([hs256(b"first secret", "1")]).unwrap());
    let verifier = JwtVerifier::builder()
        .key_ring(ring.clone())
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .build()
        .unwrap();
    let layer = RevocationLayer::new(verifier, InMemoryStore::new());
    let old = signed(b"first secret", "1", &claims("alice"));
    let new = signed(b"second secret", "2", &claims("alice"));
    assert_eq!(outcome(&layer, &old).await, Ok(()));
    assert_eq!(
        outcome(&layer, &new).await,
        Err(Rejection::InvalidToken(VerifyError::UnknownKey))
    );

    ring.replace(KeySet::new([hs256(b"second secret", "2")]).unwrap());
    assert_eq!(outcome(&layer, &new).await, Ok(()));
    assert_eq!(
        outcome(&layer, &old).await,
        Err(Rejection::InvalidToken(VerifyError::UnknownKey))
    );
}

#[tokio::test]
async fn an_empty_ring_is_a_503_until_keys_arrive() {
    let ring = KeyRing::empty();
    let verifier = JwtVerifier::builder().key_ring(ring.clone()).build().unwrap();
    let layer = RevocationLayer::new(verifier, InMemoryStore::new());
    let token = signed(
        b"secret",
        "k",
        &claims_with("alice", json!({ "iss": null, "aud": null })),
    );
    let response = send(layer.layer(echo()), bearer(&token)).await;
    // The client did nothing wrong: not a 401 that would log it out.
    assert_eq!(response.status(), http::StatusCode::SERVICE_UNAVAILABLE);
    ring.replace(KeySet::new([hs256(b"secret", "k")]).unwrap());
    assert_eq!(outcome(&layer, &token).await, Ok(()));
}

#[tokio::test]
async fn each_issuer_is_verified_with_its_own_keys() {
    let tenant = |name: &str| KeyRing::new(KeySet::new([hs256(name.as_bytes(), "k")]).unwrap());
    let mut builder = JwtVerifier::builder().audience(AUDIENCE);
    for index in 0..10 {
        let issuer = format!("https://idp.example/tenant-{index}");
        builder = builder.issuer_keys(issuer.clone(), tenant(&issuer));
    }
    let layer = RevocationLayer::new(builder.build().unwrap(), InMemoryStore::new());
    let of = |index: usize, secret_of: usize| {
        let issuer = format!("https://idp.example/tenant-{index}");
        let secret = format!("https://idp.example/tenant-{secret_of}");
        signed(
            secret.as_bytes(),
            "k",
            &claims_with("alice", json!({ "iss": issuer })),
        )
    };
    assert_eq!(outcome(&layer, &of(3, 3)).await, Ok(()));
    assert_eq!(outcome(&layer, &of(9, 9)).await, Ok(()));
    // Tenant 3 cannot sign for tenant 4.
    assert_eq!(
        outcome(&layer, &of(4, 3)).await,
        Err(Rejection::InvalidToken(VerifyError::BadSignature))
    );
    // An issuer the verifier does not know has no keys here.
    let stranger = signed(
        b"x",
        "k",
        &claims_with("alice", json!({ "iss": "https://evil.example" })),
    );
    assert!(outcome(&layer, &stranger).await.is_err());
}

#[test]
fn jwks_keys_without_alg_are_used_only_when_their_type_decides() {
    let document = json!({ "keys": [
        // P-256 can only be ES256.
        { "kty": "EC", "crv": "P-256", "kid": "ec", "use": "sig",
          "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0" },
        // RSA could be RS256, PS256...: guessing would reopen algorithm confusion.
        { "kty": "RSA", "kid": "rsa-no-alg", "n": "sXch", "e": "AQAB" },
        // An encryption key is never a signature key.
        { "kty": "EC", "crv": "P-256", "kid": "enc", "use": "enc", "alg": "ES256",
          "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0" },
        // A key type nobody here knows does not spoil the others.
        { "kty": "quantum", "kid": "future" },
        // An encryption key without `kid` does not make the signing key ambiguous
        // (the signing key below has none either).
        { "kty": "EC", "crv": "P-256", "use": "enc", "alg": "ES256",
          "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0" },
        { "kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" },
        // ES256 on P-384 could never verify anything.
        { "kty": "EC", "crv": "P-384", "kid": "mismatch", "alg": "ES256",
          "x": "iA7lWQLzVrKGEFjfGMfMHfTEZ2KnLiKU7JuNT3E7ygsfE7ygsfE7ygsfE7ygsfE7", "y": "iA7lWQLzVrKGEFjfGMfMHfTEZ2KnLiKU7JuNT3E7ygsfE7ygsfE7ygsfE7ygsfE7" },
    ]});
    let (set, skipped) = KeySet::from_jwks(document.to_string().as_bytes()).unwrap();
    assert_eq!(set.len(), 2, "the EC key by kid, the Ed25519 key as the default");
    assert!(set.contains_kid("ec"));
    let reasons: Vec<(Option<&str>, &KeyError)> = skipped
        .iter()
        .map(|skipped| (skipped.kid.as_deref(), &skipped.reason))
        .collect();
    assert!(
        matches!(reasons[0], (Some("rsa-no-alg"), KeyError::JwkWithoutAlgorithm)),
        "{reasons:?}"
    );
    assert!(
        matches!(reasons[1], (Some("enc"), KeyError::NotForSignatures)),
        "{reasons:?}"
    );
    assert!(
        matches!(reasons[2], (Some("future"), KeyError::NotAJwk(_))),
        "{reasons:?}"
    );
    assert!(
        matches!(reasons[3], (None, KeyError::NotForSignatures)),
        "{reasons:?}"
    );
    assert!(
        matches!(reasons[4], (Some("mismatch"), KeyError::AlgorithmMismatch { .. })),
        "{reasons:?}"
    );
    assert!(matches!(
        KeySet::from_jwks(b"{\"not\": \"a jwks\"}"),
        Err(KeyError::NotAJwkSet(_))
    ));
}

#[tokio::test]
async fn require_type_at_jwt_refuses_id_tokens_and_logout_tokens() {
    let verifier = common::verifier_builder(0)
        .require_type("at+jwt")
        .build()
        .unwrap();
    let layer = RevocationLayer::new(verifier, InMemoryStore::new());
    let with_typ = |typ: Option<&str>| {
        let mut header = Header::new(Algorithm::HS256);
        header.typ = typ.map(str::to_owned);
        mint_with(
            &header,
            &claims("alice"),
            &EncodingKey::from_secret(common::SECRET),
        )
    };
    for accepted in ["at+jwt", "application/at+jwt", "AT+JWT"] {
        assert_eq!(
            outcome(&layer, &with_typ(Some(accepted))).await,
            Ok(()),
            "{accepted}"
        );
    }
    for refused in [Some("JWT"), Some("logout+jwt"), Some("application/"), None] {
        assert_eq!(
            outcome(&layer, &with_typ(refused)).await,
            Err(Rejection::InvalidToken(VerifyError::WrongType)),
            "{refused:?}"
        );
    }
}

#[test]
fn the_session_claim_is_configurable() {
    let keycloak = claims_with("alice", json!({ "session_state": "kc-session" }));
    let token = common::mint(&keycloak);
    let session = |claim| {
        common::verifier_builder(0)
            .session_claim(claim)
            .build()
            .unwrap()
            .verify(&token)
            .unwrap()
            .session_id()
            .map(str::to_owned)
    };
    assert_eq!(session(SessionClaim::Sid), None);
    assert_eq!(session(SessionClaim::SessionState).as_deref(), Some("kc-session"));
    assert_eq!(
        session(SessionClaim::SidOrSessionState).as_deref(),
        Some("kc-session")
    );
}

#[test]
fn fixed_keys_and_a_key_ring_do_not_mix() {
    let ring = KeyRing::new(KeySet::default());
    let both = JwtVerifier::builder()
        .key(hs256(b"a", "a"))
        .key_ring(ring)
        .build();
    assert!(matches!(both, Err(KeyError::KeysAndKeyRing)));
}
