//! What the endpoint targets share: the endpoints, a runtime, fresh tokens spliced into
//! the input, and the rules every answer must follow.

#![allow(dead_code)] // each target uses part of it

use std::sync::OnceLock;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use tower_jwt_revoke::endpoints::{BACKCHANNEL_LOGOUT_EVENT, BackChannelLogout, TokenRevocation, basic_auth};
use tower_jwt_revoke::jsonwebtoken::{self, Algorithm, EncodingKey, Header};
use tower_jwt_revoke::store::InMemoryStore;
use tower_jwt_revoke::{JwtVerifier, Revoker, VerificationKey};

const SECRET: &[u8] = b"the fuzzing secret, 32 bytes long";
const ISSUER: &str = "https://idp.example";
/// Where the input asks for a genuine token, so that the fuzzer reaches the paths
/// behind a valid signature (a token in a stored input would have expired).
const TOKEN_MARKER: &[u8] = b"@TOKEN@";
/// `web:web secret`, the one client of the RFC 7009 endpoint.
pub const VALID_BASIC: &str = "Basic d2ViOndlYiBzZWNyZXQ=";

pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    })
}

fn verifier(audience: &str) -> JwtVerifier {
    JwtVerifier::builder()
        .key(VerificationKey::hmac(Algorithm::HS256, SECRET).unwrap())
        .issuer(ISSUER)
        .audience(audience)
        .build()
        .unwrap()
}

/// Both endpoints over a fresh store, so that every input runs from the same state.
pub fn endpoints() -> (BackChannelLogout, TokenRevocation) {
    let revoker = Revoker::new(verifier("api"), InMemoryStore::new());
    let receiver = BackChannelLogout::builder(verifier("web"), revoker.clone())
        .build()
        .unwrap();
    let revocation = TokenRevocation::builder(revoker, basic_auth("web", "web secret"))
        .build()
        .unwrap();
    (receiver, revocation)
}

fn sign(claims: serde_json::Value) -> String {
    jsonwebtoken::encode(&Header::default(), &claims, &EncodingKey::from_secret(SECRET)).unwrap()
}

/// A genuine logout token for the receiver, of session `s1`.
pub fn logout_token(serial: usize) -> String {
    let now = jsonwebtoken::get_current_timestamp();
    sign(serde_json::json!({
        "iss": ISSUER, "aud": "web", "iat": now, "exp": now + 120, "jti": serial.to_string(),
        "sub": "alice", "sid": "s1", "events": { BACKCHANNEL_LOGOUT_EVENT: {} },
    }))
}

/// A genuine access token for the RFC 7009 endpoint; client `web`'s when `serial` is
/// even, another's or nobody's otherwise.
pub fn access_token(serial: usize) -> String {
    let now = jsonwebtoken::get_current_timestamp();
    let mut claims = serde_json::json!({
        "iss": ISSUER, "aud": "api", "iat": now, "exp": now + 600, "jti": serial.to_string(),
        "sub": "alice",
    });
    match serial % 3 {
        0 => claims["client_id"] = "web".into(),
        1 => claims["azp"] = "cli".into(),
        _ => {}
    }
    sign(claims)
}

/// `body` with each [`TOKEN_MARKER`] replaced by `token(n)`, n counting from 0.
pub fn splice(body: &[u8], token: impl Fn(usize) -> String) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let (mut rest, mut serial) = (body, 0);
    while let Some(at) = rest
        .windows(TOKEN_MARKER.len())
        .position(|window| window == TOKEN_MARKER)
    {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(token(serial).as_bytes());
        rest = &rest[at + TOKEN_MARKER.len()..];
        serial += 1;
    }
    out.extend_from_slice(rest);
    out
}

/// A request shaped by the input's first byte: method, content type, credentials;
/// the rest is the body.
pub fn request(data: &[u8], token: impl Fn(usize) -> String) -> Request<Full<Bytes>> {
    let (flags, body) = data
        .split_first()
        .map_or((0, data), |(first, rest)| (*first, rest));
    let mut builder = Request::builder()
        .method(if flags & 1 == 0 { "POST" } else { "GET" })
        .uri("/");
    builder = match (flags >> 1) & 3 {
        0 => builder.header(CONTENT_TYPE, "application/x-www-form-urlencoded"),
        1 => builder.header(CONTENT_TYPE, "application/x-www-form-urlencoded; charset=UTF-8"),
        2 => builder.header(CONTENT_TYPE, "application/json"),
        _ => builder,
    };
    builder = match (flags >> 3) & 3 {
        0 => builder.header(AUTHORIZATION, VALID_BASIC),
        1 => builder.header(AUTHORIZATION, "Basic d2ViOndyb25n"), // web:wrong
        2 => builder.header(AUTHORIZATION, "Bearer x"),
        _ => builder,
    };
    builder.body(Full::new(Bytes::from(splice(body, token)))).unwrap()
}

/// What every answer must be, whatever was sent: a 200, or a 4xx with an OAuth JSON
/// error body that says why; never a 5xx (the store here cannot fail).
pub fn check(response: &Response<String>) {
    let status = response.status();
    assert!(
        status == StatusCode::OK || status.is_client_error(),
        "{status}: {}",
        response.body()
    );
    if status.is_client_error() {
        let body: serde_json::Value = serde_json::from_str(response.body())
            .unwrap_or_else(|_| panic!("not a JSON error: {}", response.body()));
        assert!(body["error"].is_string(), "{}", response.body());
        assert!(body["error_description"].is_string(), "{}", response.body());
    }
}
