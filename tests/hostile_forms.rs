//! Both endpoints under whatever anyone can send them before authentication: forms of
//! many parameters, and random bodies, content types and credentials (property tests).
//!
//! Every answer is a 4xx with a JSON error body, or the 200 of a logout or revocation
//! that genuinely happened; never a 5xx (the store here never fails), never a panic.
//! `HOSTILE_FORM_CASES=100000 cargo test --all-features --test hostile_forms` runs a
//! longer search than the suite's.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use proptest::prelude::*;
use serde_json::{Value, json};
use tower_jwt_revoke::endpoints::{
    BACKCHANNEL_LOGOUT_EVENT, BackChannelLogout, MAX_FORM_PARAMS, TokenRevocation, basic_auth,
};
use tower_jwt_revoke::jsonwebtoken::Algorithm;
use tower_jwt_revoke::store::InMemoryStore;
use tower_jwt_revoke::{JwtVerifier, Revoker, VerificationKey};

use common::{claims_with, mint, now, send};

/// `count` distinct three-letter names, `aaa&baa&…`: four bytes a parameter.
fn distinct_names(count: usize) -> String {
    let mut body = String::with_capacity(count * 4);
    for n in 0..count {
        for place in [1, 26, 26 * 26] {
            body.push(char::from(b'a' + u8::try_from(n / place % 26).unwrap()));
        }
        body.push('&');
    }
    body
}

struct Endpoints {
    receiver: BackChannelLogout,
    revocation: TokenRevocation,
}

impl Endpoints {
    fn new() -> Self {
        let logout = JwtVerifier::builder()
            .key(VerificationKey::hmac(Algorithm::HS256, common::SECRET).unwrap())
            .issuer(common::ISSUER)
            .audience("web")
            .build()
            .unwrap();
        let revoker = Revoker::new(common::verifier(5), InMemoryStore::new());
        Self {
            receiver: BackChannelLogout::builder(logout, revoker.clone())
                .build()
                .unwrap(),
            revocation: TokenRevocation::builder(revoker, basic_auth("web", "web secret"))
                .build()
                .unwrap(),
        }
    }

    async fn both(&self, request: impl Fn() -> Request<Full<Bytes>>) -> [Response<String>; 2] {
        [
            send(self.receiver.clone(), request()).await,
            send(self.revocation.clone(), request()).await,
        ]
    }
}

fn form(body: impl Into<Vec<u8>>) -> Request<Full<Bytes>> {
    Request::post("/")
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(AUTHORIZATION, "Basic d2ViOndlYiBzZWNyZXQ=") // web:web secret
        .body(Full::new(Bytes::from(body.into())))
        .unwrap()
}

fn description(response: &Response<String>) -> String {
    let body: Value = serde_json::from_str(response.body())
        .unwrap_or_else(|_| panic!("not a JSON error body: {:?}", response.body()));
    body["error_description"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_form_of_many_parameters_is_a_400_that_says_why() {
    let endpoints = Endpoints::new();
    for count in [MAX_FORM_PARAMS + 1, 16_000] {
        let body = distinct_names(count);
        let started = Instant::now();
        for response in endpoints.both(|| form(body.clone())).await {
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{count}");
            assert!(
                description(&response).contains(&format!("more than {MAX_FORM_PARAMS} parameters")),
                "{count}: {:?}",
                response.body()
            );
        }
        // Generous: the bench (`cargo bench --bench form`) measures microseconds; a
        // pairwise parser took about a second here in a debug build.
        assert!(
            started.elapsed() < Duration::from_millis(250),
            "{count} names took {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn the_cap_leaves_room_for_every_parameter_the_protocols_use() {
    let endpoints = Endpoints::new();
    let token = mint(&claims_with("alice", json!({ "client_id": "web" })));
    // The token among the most parameters allowed: revoked.
    let mut body = distinct_names(MAX_FORM_PARAMS - 1);
    body.push_str(&format!("token={token}"));
    let response = send(endpoints.revocation.clone(), form(body)).await;
    assert_eq!(response.status(), StatusCode::OK, "{:?}", response.body());
}

/// A logout token for the receiver of [`Endpoints`], so that random forms sometimes
/// carry a real one.
fn logout_token(jti: &str) -> String {
    let now = now();
    mint(&json!({
        "iss": common::ISSUER, "aud": "web", "iat": now, "exp": now + 120, "jti": jti,
        "sid": "s1", "events": { BACKCHANNEL_LOGOUT_EVENT: {} },
    }))
}

/// Parameter names the endpoints read, and some they do not.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("token".to_owned()),
        Just("logout_token".to_owned()),
        Just("token_type_hint".to_owned()),
        Just("client_id".to_owned()),
        "[a-z_%+&=]{0,6}",
        ".{0,4}",
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("refresh_token".to_owned()),
        "[A-Za-z0-9_.%+=-]{0,40}",
        any::<String>(),
        "[a-z]{1,8}".prop_map(|jti| logout_token(&jti)),
        "[a-z]{1,8}".prop_map(|sub| mint(&claims_with(&sub, json!({ "client_id": "web" })))),
    ]
}

/// A body: parameters urlencoded or raw, or arbitrary bytes.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec((name(), value()), 0..8).prop_map(|params| {
            let mut body = form_urlencoded::Serializer::new(String::new());
            for (name, value) in &params {
                body.append_pair(name, value);
            }
            body.finish().into_bytes()
        }),
        proptest::collection::vec((name(), value()), 0..8).prop_map(|params| {
            params
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect::<Vec<_>>()
                .join("&")
                .into_bytes()
        }),
        proptest::collection::vec(any::<u8>(), 0..512),
    ]
}

fn header_value() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        Just(None),
        Just(Some(b"application/x-www-form-urlencoded".to_vec())),
        Just(Some(b"Basic d2ViOndlYiBzZWNyZXQ=".to_vec())),
        "Basic [A-Za-z0-9+/=]{0,24}".prop_map(|value| Some(value.into_bytes())),
        proptest::collection::vec(32u8..=255, 0..40).prop_map(Some),
    ]
}

fn cases() -> u32 {
    std::env::var("HOSTILE_FORM_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn no_request_makes_either_endpoint_fail_or_panic(
        method in prop_oneof![Just("POST"), Just("GET"), Just("PUT")],
        content_type in header_value(),
        authorization in header_value(),
        body in body(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let endpoints = Endpoints::new();
        let request = || {
            let mut request = Request::builder().method(method).uri("/");
            if let Some(value) = content_type.as_deref().and_then(|v| http::HeaderValue::from_bytes(v).ok()) {
                request = request.header(CONTENT_TYPE, value);
            }
            if let Some(value) = authorization.as_deref().and_then(|v| http::HeaderValue::from_bytes(v).ok()) {
                request = request.header(AUTHORIZATION, value);
            }
            request.body(Full::new(Bytes::from(body.clone()))).unwrap()
        };
        for response in runtime.block_on(endpoints.both(request)) {
            let status = response.status();
            prop_assert!(
                status == StatusCode::OK || status.is_client_error(),
                "{status}: {:?}", response.body()
            );
            if status.is_client_error() {
                // A JSON error body with a description, whatever the input.
                prop_assert!(!description(&response).is_empty(), "{:?}", response.body());
            }
        }
    }
}
