//! Bad input never panics and never yields a 500: malformed, oversized, wrong-alg,
//! `alg: none`, duplicate headers and non-UTF-8 credentials all get a clear 4xx with
//! the RFC 6750 challenge, and the reason in the response extensions.

mod common;

use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderValue, Request, StatusCode};
use serde_json::json;
use tower::Layer;
use tower_jwt_revoke::jsonwebtoken::{self, Algorithm, EncodingKey, Header};
use tower_jwt_revoke::store::InMemoryStore;
use tower_jwt_revoke::{
    JwtVerifier, MalformedRequest, Rejection, RevocationLayer, VerificationKey, VerifyError,
};

use common::{AUDIENCE, ISSUER, SECRET, b64url, bearer, claims, claims_with, mint, mint_with, now, send};

/// The `kid` the RSA key is registered under next to the default HS256 key.
const RSA_KID: &str = "rsa-1";

/// How a row's `WWW-Authenticate` is checked.
enum Challenge {
    /// No challenge at all (the control row).
    Absent,
    /// Exactly this value.
    Exact(String),
    /// A value starting with this.
    Prefix(String),
}

struct Row {
    name: &'static str,
    request: Request<String>,
    status: StatusCode,
    challenge: Challenge,
    /// The reasons accepted in the response extensions; empty for the control row,
    /// which must carry none.
    reasons: Vec<Rejection>,
}

fn request_with(values: &[HeaderValue]) -> Request<String> {
    let mut builder = Request::builder().uri("/resource");
    for value in values {
        builder = builder.header(AUTHORIZATION, value.clone());
    }
    builder.body(String::new()).unwrap()
}

fn authorization(value: &'static str) -> Request<String> {
    request_with(&[HeaderValue::from_static(value)])
}

/// The challenge of an invalid token with this description.
fn invalid(description: &str) -> Challenge {
    Challenge::Exact(format!(
        r#"Bearer error="invalid_token", error_description="{description}""#
    ))
}

/// The challenge of a malformed request with this description.
fn invalid_request(description: &str) -> Challenge {
    Challenge::Exact(format!(
        r#"Bearer error="invalid_request", error_description="{description}""#
    ))
}

/// Any `invalid_token` challenge, whatever its description.
fn any_invalid() -> Challenge {
    Challenge::Prefix(r#"Bearer error="invalid_token", error_description=""#.to_owned())
}

fn invalid_token(error: VerifyError) -> Rejection {
    Rejection::InvalidToken(error)
}

/// HS256 by default; the RSA public key, for RS256 only, under [`RSA_KID`].
fn verifier() -> JwtVerifier {
    JwtVerifier::builder()
        .key(VerificationKey::hmac(Algorithm::HS256, SECRET).unwrap())
        .key(
            VerificationKey::rsa_pem(Algorithm::RS256, &common::read_key("rsa_public.pem"))
                .unwrap()
                .with_kid(RSA_KID),
        )
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .leeway_secs(2)
        .build()
        .unwrap()
}

/// A token whose header says `alg: none`, with an empty signature.
fn alg_none_token() -> String {
    let header = b64url(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = b64url(claims("mallory").to_string().as_bytes());
    format!("{header}.{payload}.")
}

/// The classic algorithm confusion: an HS256 token whose HMAC secret is the bytes of
/// the RSA *public* key PEM, aimed at the RSA key by its `kid`.
fn rsa_public_key_as_hmac_secret_token() -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(RSA_KID.to_owned());
    let public_pem = common::read_key("rsa_public.pem");
    mint_with(
        &header,
        &claims("mallory"),
        &EncodingKey::from_secret(&public_pem),
    )
}

/// A token correctly signed with the test secret, whatever its header and payload say.
fn signed_hs256(header: &[u8], payload: &[u8]) -> String {
    tower_jwt_revoke::install_crypto_provider();
    let message = format!("{}.{}", b64url(header), b64url(payload));
    let key = EncodingKey::from_secret(SECRET);
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::HS256).unwrap();
    format!("{message}.{signature}")
}

fn rows() -> Vec<Row> {
    let now = now();
    let rsa_token = {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(RSA_KID.to_owned());
        let key = EncodingKey::from_rsa_pem(&common::read_key("rsa_private.pem")).unwrap();
        mint_with(&header, &claims("rsa-user"), &key)
    };
    let oversized = format!(
        "{}.{}.{}",
        "a".repeat(8 * 1024),
        "b".repeat(8 * 1024),
        "c".repeat(16)
    );

    vec![
        Row {
            name: "control: a valid HS256 token",
            request: bearer(&mint(&claims("alice"))),
            status: StatusCode::OK,
            challenge: Challenge::Absent,
            reasons: vec![],
        },
        Row {
            name: "control: a valid RS256 token selected by kid",
            request: bearer(&rsa_token),
            status: StatusCode::OK,
            challenge: Challenge::Absent,
            reasons: vec![],
        },
        Row {
            name: "missing Authorization",
            request: Request::builder().uri("/resource").body(String::new()).unwrap(),
            status: StatusCode::UNAUTHORIZED,
            challenge: Challenge::Exact("Bearer".to_owned()),
            reasons: vec![Rejection::MissingToken],
        },
        Row {
            name: "another scheme (Basic) carries no bearer token",
            request: authorization("Basic dXNlcjpwYXNz"),
            status: StatusCode::UNAUTHORIZED,
            challenge: Challenge::Exact("Bearer".to_owned()),
            reasons: vec![Rejection::MissingToken],
        },
        Row {
            name: "`Bearer ` with nothing after the space",
            request: authorization("Bearer "),
            status: StatusCode::BAD_REQUEST,
            challenge: invalid_request("empty bearer token"),
            reasons: vec![Rejection::MalformedRequest(MalformedRequest::EmptyToken)],
        },
        Row {
            name: "`Bearer` alone",
            request: authorization("Bearer"),
            status: StatusCode::BAD_REQUEST,
            challenge: invalid_request("empty bearer token"),
            reasons: vec![Rejection::MalformedRequest(MalformedRequest::EmptyToken)],
        },
        Row {
            name: "garbage `Bearer abc`",
            request: authorization("Bearer abc"),
            status: StatusCode::UNAUTHORIZED,
            challenge: invalid("malformed token"),
            reasons: vec![invalid_token(VerifyError::Malformed)],
        },
        Row {
            name: "three dots `Bearer ...`",
            request: authorization("Bearer ..."),
            status: StatusCode::UNAUTHORIZED,
            challenge: invalid("malformed token"),
            reasons: vec![invalid_token(VerifyError::Malformed)],
        },
        Row {
            name: "alg: none with an empty signature",
            request: bearer(&alg_none_token()),
            status: StatusCode::UNAUTHORIZED,
            challenge: any_invalid(),
            // jsonwebtoken has no `none` algorithm, so the header does not even parse.
            reasons: vec![
                invalid_token(VerifyError::Malformed),
                invalid_token(VerifyError::AlgorithmNotAllowed),
            ],
        },
        Row {
            name: "HS256 signed with the RSA public key PEM, aimed at the RS256 key",
            request: bearer(&rsa_public_key_as_hmac_secret_token()),
            status: StatusCode::UNAUTHORIZED,
            challenge: invalid("algorithm not allowed"),
            reasons: vec![invalid_token(VerifyError::AlgorithmNotAllowed)],
        },
        Row {
            name: "RS256 token falling on the HS256 default key (no kid)",
            request: bearer(&mint_with(
                &Header::new(Algorithm::RS256),
                &claims("rsa-user"),
                &EncodingKey::from_rsa_pem(&common::read_key("rsa_private.pem")).unwrap(),
            )),
            status: StatusCode::UNAUTHORIZED,
            challenge: invalid("algorithm not allowed"),
            reasons: vec![invalid_token(VerifyError::AlgorithmNotAllowed)],
        },
        Row {
            name: "signed with another secret",
            request: bearer(&mint_with(
                &Header::new(Algorithm::HS256),
                &claims("mallory"),
                &EncodingKey::from_secret(b"not-the-secret-not-the-secret-!!"),
            )),
            status: StatusCode::UNAUTHORIZED,
            challenge: invalid("invalid signature"),
            reasons: vec![invalid_token(VerifyError::BadSignature)],
        },
        Row {
            name: "signed payload that is not JSON",
            request: bearer(&signed_hs256(
                br#"{"alg":"HS256","typ":"JWT"}"#,
                b"this is not json",
            )),
            status: StatusCode::UNAUTHORIZED,
            challenge: any_invalid(),
            reasons: vec![
                invalid_token(VerifyError::Malformed),
                invalid_token(VerifyError::InvalidClaim("registered")),
            ],
        },
        Row {
            name: "expired",
            request: bearer(&mint(&claims_with(
                "alice",
                json!({"iat": now - 700, "exp": now - 100}),
            ))),
            status: StatusCode::UNAUTHORIZED,
            challenge: invalid("token expired"),
            reasons: vec![invalid_token(VerifyError::Expired)],
        },
        Row {
            name: "nbf in the future",
            request: bearer(&mint(&claims_with("alice", json!({"nbf": now + 100})))),
            status: StatusCode::UNAUTHORIZED,
            challenge: invalid("token not yet valid"),
            reasons: vec![invalid_token(VerifyError::NotYetValid)],
        },
        Row {
            name: "wrong iss",
            request: bearer(&mint(&claims_with("alice", json!({"iss": "issuer-b"})))),
            status: StatusCode::UNAUTHORIZED,
            challenge: invalid("wrong issuer"),
            reasons: vec![invalid_token(VerifyError::WrongIssuer)],
        },
        Row {
            name: "wrong aud",
            request: bearer(&mint(&claims_with("alice", json!({"aud": "aud-b"})))),
            status: StatusCode::UNAUTHORIZED,
            challenge: invalid("wrong audience"),
            reasons: vec![invalid_token(VerifyError::WrongAudience)],
        },
        Row {
            name: "no iat (nothing says when it was issued)",
            request: bearer(&mint(&claims_with("alice", json!({"iat": null})))),
            status: StatusCode::UNAUTHORIZED,
            challenge: invalid("missing claim iat"),
            reasons: vec![invalid_token(VerifyError::MissingClaim("iat"))],
        },
        Row {
            name: "iat in the future beyond the leeway",
            request: bearer(&mint(&claims_with("alice", json!({"iat": now + 100})))),
            status: StatusCode::UNAUTHORIZED,
            challenge: any_invalid(),
            reasons: vec![invalid_token(VerifyError::InvalidClaim("iat"))],
        },
        Row {
            name: "exp is not a number",
            request: bearer(&mint(&claims_with("alice", json!({"exp": "tomorrow"})))),
            status: StatusCode::UNAUTHORIZED,
            challenge: any_invalid(),
            // serde's error for the untagged NumericDate does not name the claim.
            reasons: vec![
                invalid_token(VerifyError::InvalidClaim("exp")),
                invalid_token(VerifyError::Malformed),
            ],
        },
        Row {
            name: "a critical header extension nobody understands",
            request: bearer(&signed_hs256(
                br#"{"alg":"HS256","typ":"JWT","crit":["x-must-understand"],"x-must-understand":true}"#,
                claims("alice").to_string().as_bytes(),
            )),
            status: StatusCode::UNAUTHORIZED,
            challenge: any_invalid(),
            reasons: vec![invalid_token(VerifyError::Malformed)],
        },
        Row {
            name: "no exp (a token that never expires)",
            request: bearer(&mint(&claims_with("alice", json!({"exp": null})))),
            status: StatusCode::UNAUTHORIZED,
            challenge: invalid("missing claim exp"),
            reasons: vec![invalid_token(VerifyError::MissingClaim("exp"))],
        },
        Row {
            name: "16 KiB token",
            request: bearer(&oversized),
            status: StatusCode::UNAUTHORIZED,
            challenge: invalid("token too large"),
            reasons: vec![invalid_token(VerifyError::TooLarge)],
        },
        Row {
            name: "two Authorization headers",
            request: request_with(&[
                HeaderValue::try_from(format!("Bearer {}", mint(&claims("alice")))).unwrap(),
                HeaderValue::try_from(format!("Bearer {}", mint(&claims("bob")))).unwrap(),
            ]),
            status: StatusCode::BAD_REQUEST,
            challenge: invalid_request("more than one credentials header"),
            reasons: vec![Rejection::MalformedRequest(MalformedRequest::DuplicateHeader)],
        },
        Row {
            name: "non-UTF-8 header bytes",
            request: request_with(&[HeaderValue::from_bytes(b"Bearer \xff\xfe.\xc3\x28.abc").unwrap()]),
            status: StatusCode::BAD_REQUEST,
            challenge: invalid_request("credentials are not visible ASCII"),
            reasons: vec![Rejection::MalformedRequest(MalformedRequest::NotAscii)],
        },
    ]
}

#[tokio::test]
async fn bad_credentials_get_a_clear_4xx_with_the_reason() {
    let layer = RevocationLayer::new(verifier(), InMemoryStore::new());
    let service = layer.layer(common::echo());
    let mut failures = Vec::new();

    for row in rows() {
        let response = send(service.clone(), row.request).await;
        let status = response.status();
        let challenge = response
            .headers()
            .get(WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap());
        let reason = response.extensions().get::<Rejection>();
        let mut problems = Vec::new();

        if status == StatusCode::INTERNAL_SERVER_ERROR {
            problems.push("answered 500".to_owned());
        }
        if status != row.status {
            problems.push(format!("status {status}, expected {}", row.status));
        }
        match (&row.challenge, challenge) {
            (Challenge::Absent, None) => {}
            (Challenge::Exact(expected), Some(actual)) if actual == expected => {}
            (Challenge::Prefix(prefix), Some(actual)) if actual.starts_with(prefix.as_str()) => {}
            (Challenge::Absent, Some(actual)) => problems.push(format!("unexpected challenge {actual:?}")),
            (Challenge::Exact(expected) | Challenge::Prefix(expected), actual) => {
                problems.push(format!("challenge {actual:?}, expected {expected:?}"));
            }
        }
        match reason {
            None if row.reasons.is_empty() => {}
            Some(reason) if row.reasons.contains(reason) => {
                // The reason and the challenge tell the same story.
                if reason.status() != status {
                    problems.push(format!("reason {reason:?} has status {}", reason.status()));
                }
            }
            other => problems.push(format!("reason {other:?}, expected one of {:?}", row.reasons)),
        }
        if row.status == StatusCode::OK && response.body() == common::ANONYMOUS {
            problems.push("the inner service got no VerifiedToken".to_owned());
        }
        if row.status != StatusCode::OK && !response.body().is_empty() {
            problems.push(format!("rejection body is not empty: {:?}", response.body()));
        }
        if !problems.is_empty() {
            failures.push(format!("{}: {}", row.name, problems.join("; ")));
        }
    }

    assert!(failures.is_empty(), "rows failed:\n  {}", failures.join("\n  "));
}

/// With only an RSA key configured (the classic setting of the attack), an HS256 token
/// whose secret is the RSA public key PEM is refused for its algorithm, before any
/// signature check could be fooled.
#[tokio::test]
async fn rsa_only_verifier_refuses_hmac_signed_with_its_public_key() {
    let public_pem = common::read_key("rsa_public.pem");
    let verifier = JwtVerifier::builder()
        .key(VerificationKey::rsa_pem(Algorithm::RS256, &public_pem).unwrap())
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .build()
        .unwrap();
    let forged = mint_with(
        &Header::new(Algorithm::HS256),
        &claims("mallory"),
        &EncodingKey::from_secret(&public_pem),
    );
    assert_eq!(
        verifier.verify(&forged).unwrap_err(),
        VerifyError::AlgorithmNotAllowed
    );

    let service = RevocationLayer::new(verifier, InMemoryStore::new()).layer(common::echo());
    let response = send(service, bearer(&forged)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        common::challenge(&response),
        Some(r#"Bearer error="invalid_token", error_description="algorithm not allowed""#)
    );
    assert_eq!(
        common::rejection(&response),
        Some(&Rejection::InvalidToken(VerifyError::AlgorithmNotAllowed))
    );
}

/// A key cannot be registered for an algorithm of another family: an RSA public key
/// is not accepted as an HMAC key, nor an HMAC secret for RS256.
#[test]
fn keys_are_pinned_to_their_algorithm_family() {
    let public_pem = common::read_key("rsa_public.pem");
    let rsa = jsonwebtoken::DecodingKey::from_rsa_pem(&public_pem).unwrap();
    assert!(VerificationKey::from_decoding_key(Algorithm::HS256, rsa).is_err());
    let hmac = jsonwebtoken::DecodingKey::from_secret(SECRET);
    assert!(VerificationKey::from_decoding_key(Algorithm::RS256, hmac).is_err());
    assert!(VerificationKey::hmac(Algorithm::HS256, b"").is_err());
}
