use std::time::Duration;

use jsonwebtoken::Algorithm;

use super::{IssueError, SigningKey, TokenIssuer};
use crate::verify::{JwtVerifier, SessionClaim, VerificationKey, VerifyError};

const SECRET: &[u8] = b"a long random secret of 32 bytes";

fn verifier() -> crate::JwtVerifierBuilder {
    JwtVerifier::builder().key(VerificationKey::hmac(Algorithm::HS256, SECRET).unwrap())
}

fn key() -> SigningKey {
    SigningKey::hmac(Algorithm::HS256, SECRET).unwrap()
}

#[test]
fn a_minted_token_verifies_with_every_claim_the_verifier_checks() {
    let verifier = verifier()
        .issuer("https://app.example.com")
        .audience("api")
        .require_type("at+jwt")
        .max_token_lifetime(Duration::from_secs(600))
        .build()
        .unwrap();
    let issuer = TokenIssuer::builder(&verifier)
        .signing_key(key())
        .build()
        .unwrap();
    let session = issuer.new_session_id().unwrap();
    let minted = issuer
        .issue_with_claims("alice", &session, &serde_json::json!({ "roles": ["admin"] }))
        .unwrap();
    let verified = verifier.verify(minted.token()).unwrap();
    assert_eq!(verified.subject(), Some("alice"));
    assert_eq!(verified.session_id(), Some(session.as_str()));
    assert_eq!(verified.token_id(), Some(minted.token_id()));
    assert_eq!(verified.issuer(), Some("https://app.example.com"));
    assert_eq!(verified.issued_at(), Some(minted.issued_at()));
    assert_eq!(
        minted.expires_in(),
        Duration::from_secs(600),
        "the default is capped at the verifier's maximum"
    );
    #[derive(serde::Deserialize)]
    struct Roles {
        roles: Vec<String>,
    }
    assert_eq!(verified.claims::<Roles>().unwrap().roles, ["admin"]);
    let header = jsonwebtoken::decode_header(minted.token()).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
}

#[test]
fn token_ids_carry_128_random_bits_and_never_repeat() {
    let issuer = TokenIssuer::builder(&verifier().build().unwrap())
        .signing_key(key())
        .build()
        .unwrap();
    let ids: std::collections::HashSet<String> = (0..1000)
        .map(|_| issuer.issue("alice", "s").unwrap().token_id().to_owned())
        .collect();
    assert_eq!(ids.len(), 1000);
    assert!(ids.iter().all(|id| id.len() == 22), "16 bytes, base64url");
}

#[test]
fn the_session_goes_where_the_verifier_reads_it() {
    let verifier = verifier()
        .session_claim(SessionClaim::SessionState)
        .build()
        .unwrap();
    let issuer = TokenIssuer::builder(&verifier)
        .signing_key(key())
        .build()
        .unwrap();
    let minted = issuer.issue("alice", "s1").unwrap();
    assert_eq!(verifier.verify(minted.token()).unwrap().session_id(), Some("s1"));
}

#[test]
fn a_lifetime_the_verifier_refuses_is_an_error() {
    let verifier = verifier()
        .max_token_lifetime(Duration::from_secs(300))
        .build()
        .unwrap();
    for asked in [
        Duration::from_secs(301),
        Duration::from_millis(300_001),
        Duration::ZERO,
    ] {
        let built = TokenIssuer::builder(&verifier)
            .signing_key(key())
            .lifetime(asked)
            .build();
        assert!(
            matches!(built, Err(IssueError::Lifetime { .. })),
            "{asked:?}: {built:?}"
        );
    }
    let issuer = TokenIssuer::builder(&verifier)
        .signing_key(key())
        .lifetime(Duration::from_secs(300))
        .build()
        .unwrap();
    assert_eq!(
        issuer.issue("alice", "s").unwrap().expires_in(),
        Duration::from_secs(300)
    );
}

#[test]
fn a_key_the_verifier_does_not_hold_is_refused_at_build() {
    let verifier = verifier().build().unwrap();
    let other = SigningKey::hmac(Algorithm::HS256, b"another secret of thirty-two byte").unwrap();
    let built = TokenIssuer::builder(&verifier).signing_key(other).build();
    assert!(
        matches!(built, Err(IssueError::Refused(VerifyError::BadSignature))),
        "{built:?}"
    );
    let other_algorithm = SigningKey::hmac(Algorithm::HS384, SECRET).unwrap();
    let built = TokenIssuer::builder(&verifier)
        .signing_key(other_algorithm)
        .build();
    assert!(matches!(built, Err(IssueError::Refused(_))), "{built:?}");
    assert!(matches!(
        TokenIssuer::builder(&verifier).build(),
        Err(IssueError::NoSigningKey)
    ));
    assert!(SigningKey::hmac(Algorithm::HS256, b"").is_err());
    assert!(SigningKey::hmac(Algorithm::RS256, SECRET).is_err());
}

#[test]
fn issuer_and_audience_are_chosen_among_those_accepted() {
    let two = verifier()
        .issuer("a")
        .issuer("b")
        .audience("x")
        .audience("y")
        .build()
        .unwrap();
    let built = TokenIssuer::builder(&two).signing_key(key()).build();
    assert!(matches!(built, Err(IssueError::Issuer { .. })), "{built:?}");
    let built = TokenIssuer::builder(&two)
        .signing_key(key())
        .issuer("c")
        .audience("x")
        .build();
    assert!(matches!(built, Err(IssueError::Issuer { .. })), "{built:?}");
    let built = TokenIssuer::builder(&two).signing_key(key()).issuer("b").build();
    assert!(matches!(built, Err(IssueError::Audience { .. })), "{built:?}");
    let issuer = TokenIssuer::builder(&two)
        .signing_key(key())
        .issuer("b")
        .audience("y")
        .build()
        .unwrap();
    assert_eq!(
        two.verify(issuer.issue("alice", "s").unwrap().token())
            .unwrap()
            .issuer(),
        Some("b")
    );
    // A verifier without an audience refuses tokens that carry one.
    let none = verifier().build().unwrap();
    let built = TokenIssuer::builder(&none)
        .signing_key(key())
        .audience("x")
        .build();
    assert!(matches!(built, Err(IssueError::Audience { .. })), "{built:?}");
}

#[test]
fn what_the_verifier_would_refuse_is_not_minted() {
    let verifier = verifier().build().unwrap();
    let issuer = TokenIssuer::builder(&verifier)
        .signing_key(key())
        .build()
        .unwrap();
    assert!(matches!(
        issuer.issue("", "s"),
        Err(IssueError::EmptyClaim("sub"))
    ));
    assert!(matches!(
        issuer.issue("alice", ""),
        Err(IssueError::EmptyClaim("sid"))
    ));
    for reserved in ["exp", "sub", "jti", "sid", "iat", "aud", "iss", "nbf"] {
        let claims = serde_json::json!({ reserved: 1 });
        let minted = issuer.issue_with_claims("alice", "s", &claims);
        assert!(
            matches!(minted, Err(IssueError::Claims(_))),
            "{reserved}: {minted:?}"
        );
    }
    assert!(matches!(
        issuer.issue_with_claims("alice", "s", &[1, 2]),
        Err(IssueError::Claims(_))
    ));
    // A token past the verifier's size limit is an error, not a token that fails later.
    let small = verifier_with_limit(512);
    let issuer = TokenIssuer::builder(&small).signing_key(key()).build().unwrap();
    let big = serde_json::json!({ "blob": "x".repeat(600) });
    let minted = issuer.issue_with_claims("alice", "s", &big);
    assert!(
        matches!(minted, Err(IssueError::Refused(VerifyError::TooLarge))),
        "{minted:?}"
    );
}

#[test]
fn a_key_rotated_out_of_the_verifiers_ring_stops_minting() {
    let verifier = verifier().build().unwrap();
    let issuer = TokenIssuer::builder(&verifier)
        .signing_key(key())
        .build()
        .unwrap();
    let other = VerificationKey::hmac(Algorithm::HS256, b"the next secret, 32 bytes long!!").unwrap();
    verifier
        .key_ring()
        .replace(crate::KeySet::new(vec![other]).unwrap());
    assert!(matches!(issuer.issue("alice", "s"), Err(IssueError::Refused(_))));
}

fn verifier_with_limit(bytes: usize) -> JwtVerifier {
    verifier().max_token_len(bytes).build().unwrap()
}
