//! Helpers shared by the integration tests: token minting, verifiers, an inner service
//! that reports what the layer handed it, and a bounded `oneshot`.
//!
//! Each test crate uses a different subset of these.
#![allow(dead_code)]

pub mod background;
pub mod broken_store;
pub mod captured;

use std::convert::Infallible;
use std::fmt::Debug;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{Request, Response};
use serde_json::{Value, json};
use tower::{Service, ServiceExt};
use tower_jwt_revoke::jsonwebtoken::{Algorithm, EncodingKey, Header};
use tower_jwt_revoke::{
    JwtVerifier, JwtVerifierBuilder, Rejection, VerificationKey, VerifiedToken, jsonwebtoken,
};

/// The HS256 secret of the test issuer.
pub const SECRET: &[u8] = b"integration-test-secret-0123456789abcdef";
/// The issuer every test verifier accepts.
pub const ISSUER: &str = "issuer-a";
/// The audience every test verifier accepts.
pub const AUDIENCE: &str = "aud-a";
/// How long a call may take before the test fails instead of hanging.
pub const CALL_LIMIT: Duration = Duration::from_secs(5);

/// Seconds since the Unix epoch, as jsonwebtoken counts them.
pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Seconds since the Unix epoch, with the fraction.
pub fn now_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Sleeps until the Unix clock has entered the next whole second, so that a token
/// issued afterwards has an `iat` strictly greater than any watermark set before.
pub async fn sleep_until_next_second() {
    let start = now();
    let into_second = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let remaining = Duration::from_secs(1) - Duration::from_nanos(u64::from(into_second));
    // A few milliseconds more: Tokio's timer runs on the monotonic clock, not on the
    // wall clock the watermark is read from.
    tokio::time::sleep(remaining + Duration::from_millis(5)).await;
    while now() <= start {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Registered claims of a fresh token of `sub` from the test issuer, valid for ten
/// minutes, with a unique `jti`.
pub fn claims(sub: &str) -> Value {
    let now = now();
    json!({
        "sub": sub,
        "jti": uuid::Uuid::new_v4().to_string(),
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 600,
    })
}

/// `claims(sub)` with some members replaced (or removed, with `null`).
pub fn claims_with(sub: &str, changes: Value) -> Value {
    let mut claims = claims(sub);
    let map = claims.as_object_mut().unwrap();
    for (name, value) in changes.as_object().expect("changes must be a JSON object") {
        if value.is_null() {
            map.remove(name);
        } else {
            map.insert(name.clone(), value.clone());
        }
    }
    claims
}

/// Signs `claims` with HS256 and the test secret.
pub fn mint(claims: &Value) -> String {
    mint_with(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET),
    )
}

/// Signs `claims` with any header and key.
pub fn mint_with(header: &Header, claims: &Value, key: &EncodingKey) -> String {
    // With both crypto features on, jsonwebtoken cannot pick a backend by itself.
    tower_jwt_revoke::install_crypto_provider();
    jsonwebtoken::encode(header, claims, key).expect("test token signs")
}

/// base64url without padding (RFC 7515 §2), for hand-built tokens.
pub fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let sextets = [n >> 18, n >> 12, n >> 6, n];
        for sextet in &sextets[..chunk.len() + 1] {
            out.push(char::from(ALPHABET[(sextet & 0x3f) as usize]));
        }
    }
    out
}

/// Decodes unpadded base64url; panics on anything else (test input only).
pub fn b64url_decode(text: &str) -> Vec<u8> {
    let sextet = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'-' => 62,
            b'_' => 63,
            _ => panic!("not base64url: {c:#x}"),
        }
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for chunk in text.as_bytes().chunks(4) {
        assert!(chunk.len() > 1, "truncated base64url");
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, c)| n | (sextet(*c) << (18 - 6 * i)));
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

/// A string claim of `token`, read without verification (to compare with what the
/// library derived from it).
pub fn insecure_claim(token: &str, name: &str) -> String {
    let payload = token.split('.').nth(1).expect("a JWS in compact form");
    let claims: Value = serde_json::from_slice(&b64url_decode(payload)).unwrap();
    claims[name]
        .as_str()
        .unwrap_or_else(|| panic!("no string claim {name}"))
        .to_owned()
}

/// The path of a test key under `tests/keys/`.
pub fn key_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/keys")
        .join(name)
}

/// The bytes of a test key under `tests/keys/`.
pub fn read_key(name: &str) -> Vec<u8> {
    let path = key_path(name);
    std::fs::read(&path).unwrap_or_else(|error| {
        panic!(
            "cannot read {} ({error}): the test keys are not in the published package; \
             run the tests from the repository",
            path.display()
        )
    })
}

/// A verifier for the test issuer: HS256 with [`SECRET`], issuer [`ISSUER`],
/// audience [`AUDIENCE`].
pub fn verifier(leeway_secs: u64) -> JwtVerifier {
    verifier_builder(leeway_secs).build().unwrap()
}

/// The builder of [`verifier`], for tests that configure more.
pub fn verifier_builder(leeway_secs: u64) -> JwtVerifierBuilder {
    JwtVerifier::builder()
        .key(VerificationKey::hmac(Algorithm::HS256, SECRET).unwrap())
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .leeway_secs(leeway_secs)
}

/// The body the [`echo`] service answers with when the layer handed it no token.
pub const ANONYMOUS: &str = "anonymous";

/// An inner service that answers 200 with the `sub` of the [`VerifiedToken`] the layer
/// put into the request extensions (or [`ANONYMOUS`]), so a test can tell that the
/// inner service was reached and with which token.
pub fn echo() -> impl Service<Request<String>, Response = Response<String>, Error = Infallible, Future: Send>
+ Clone
+ Send
+ 'static {
    tower::service_fn(|request: Request<String>| async move {
        let body = match request.extensions().get::<VerifiedToken>() {
            Some(token) => token.subject().unwrap_or("<no sub>").to_owned(),
            None => ANONYMOUS.to_owned(),
        };
        Ok::<_, Infallible>(Response::new(body))
    })
}

/// A GET request carrying `Authorization: Bearer <token>`.
pub fn bearer(token: &str) -> Request<String> {
    Request::builder()
        .uri("/resource")
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .body(String::new())
        .unwrap()
}

/// A gRPC call, with `Authorization: Bearer <token>` metadata when a token is given.
pub fn grpc(token: Option<&str>) -> Request<String> {
    let mut builder = Request::builder()
        .method("POST")
        .uri("/demo.Greeter/SayHello")
        .header(CONTENT_TYPE, "application/grpc")
        .header("te", "trailers");
    if let Some(token) = token {
        builder = builder.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    builder.body(String::new()).unwrap()
}

/// Sends one request through `service`, failing the test if no response comes within
/// [`CALL_LIMIT`] or the service errs (the layer must never turn a rejection into `Err`).
pub async fn send<S, B>(service: S, request: Request<B>) -> S::Response
where
    S: Service<Request<B>>,
    S::Error: Debug,
{
    tokio::time::timeout(CALL_LIMIT, service.oneshot(request))
        .await
        .unwrap_or_else(|_| panic!("no response within {CALL_LIMIT:?}"))
        .expect("the service answered with Err")
}

/// The `WWW-Authenticate` value of a response, as text.
pub fn challenge<B>(response: &Response<B>) -> Option<&str> {
    response
        .headers()
        .get(WWW_AUTHENTICATE)
        .map(|value| value.to_str().expect("WWW-Authenticate is ASCII"))
}

/// The rejection reason the layer put into the response extensions.
pub fn rejection<B>(response: &Response<B>) -> Option<&Rejection> {
    response.extensions().get::<Rejection>()
}

/// The challenge of a revoked token (RFC 6750 §3.1).
pub const REVOKED_CHALLENGE: &str = r#"Bearer error="invalid_token", error_description="token revoked""#;
