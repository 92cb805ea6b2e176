//! The `axum_logout` example, driven in-process: logout really logs out, and
//! "log out everywhere" refuses every token of the user and nobody else's.
#![cfg(all(feature = "axum", feature = "redis"))]

mod common;

#[path = "../examples/axum_logout.rs"]
#[allow(dead_code)]
mod axum_logout;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use http::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, SET_COOKIE, WWW_AUTHENTICATE};
use http::{Request, Response, StatusCode};
use serde_json::{Value, json};
use tower_jwt_revoke::store::InMemoryStore;

use common::{REVOKED_CHALLENGE, send};

const ACCESS_TTL: Duration = Duration::from_secs(900);

fn app() -> Router {
    axum_logout::app(axum_logout::DemoConfig {
        secret: b"axum-logout-test-secret-0123456789abcdef".to_vec(),
        access_ttl: ACCESS_TTL,
        store: Arc::new(InMemoryStore::new()),
    })
}

async fn body_json(response: Response<Body>) -> Value {
    let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .unwrap();
    serde_json::from_slice(&bytes)
        .unwrap_or_else(|error| panic!("not JSON ({error}): {:?}", String::from_utf8_lossy(&bytes)))
}

fn login_request(body: impl Into<Body>) -> Request<Body> {
    Request::post("/login")
        .header(CONTENT_TYPE, "application/json")
        .body(body.into())
        .unwrap()
}

/// Logs in; returns the access token and the `Set-Cookie` value.
async fn login(app: &Router, username: &str) -> (String, String) {
    let body = json!({"username": username, "password": "password"}).to_string();
    let response = send(app.clone(), login_request(body)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = response
        .headers()
        .get(SET_COOKIE)
        .expect("login sets the token cookie")
        .to_str()
        .unwrap()
        .to_owned();
    let body = body_json(response).await;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], ACCESS_TTL.as_secs());
    let token = body["access_token"].as_str().expect("access_token").to_owned();
    (token, cookie)
}

fn with_bearer(method: &str, uri: &str, token: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap()
}

fn with_cookie(uri: &str, token: &str) -> Request<Body> {
    Request::get(uri)
        .header(COOKIE, format!("theme=dark; token={token}"))
        .body(Body::empty())
        .unwrap()
}

async fn me(app: &Router, token: &str) -> Response<Body> {
    send(app.clone(), with_bearer("GET", "/me", token)).await
}

async fn assert_me_ok(app: &Router, token: &str, sub: &str) -> Value {
    let response = me(app, token).await;
    assert_eq!(response.status(), StatusCode::OK, "token of {sub} refused");
    let body = body_json(response).await;
    assert_eq!(body["sub"], sub);
    body
}

fn assert_revoked(response: &Response<Body>) {
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response
            .headers()
            .get(WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap()),
        Some(REVOKED_CHALLENGE)
    );
}

#[tokio::test]
async fn logout_revokes_the_copied_token_in_header_and_cookie() {
    let app = app();
    let (token, cookie) = login(&app, "alice").await;
    assert!(cookie.starts_with(&format!("token={token};")), "cookie: {cookie}");
    assert!(cookie.contains("HttpOnly"), "cookie: {cookie}");

    let body = assert_me_ok(&app, &token, "alice").await;
    let jti = body["jti"].as_str().expect("jti");
    assert_eq!(jti, common::insecure_claim(&token, "jti"));
    let exp = body["exp"].as_u64().expect("exp");
    let iat = body["iat"].as_u64().expect("iat");
    assert_eq!(exp - iat, ACCESS_TTL.as_secs());
    // The cookie alone is accepted too.
    let response = send(app.clone(), with_cookie("/me", &token)).await;
    assert_eq!(response.status(), StatusCode::OK);

    let response = send(app.clone(), with_bearer("POST", "/logout", &token)).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let cleared = response.headers().get(SET_COOKIE).unwrap().to_str().unwrap();
    assert!(cleared.starts_with("token=;"), "cookie not cleared: {cleared}");
    assert!(cleared.contains("Max-Age=0"), "cookie not expired: {cleared}");

    // Clearing the cookie is not the point: the copied token itself is refused.
    assert_revoked(&me(&app, &token).await);
    assert_revoked(&send(app.clone(), with_cookie("/me", &token)).await);
    // Logging out again with the revoked token is refused too.
    assert_revoked(&send(app.clone(), with_bearer("POST", "/logout", &token)).await);

    let (again, _) = login(&app, "alice").await;
    assert_ne!(again, token);
    assert_me_ok(&app, &again, "alice").await;
}

#[tokio::test]
async fn logout_all_refuses_every_token_of_the_user_and_no_other() {
    let app = app();
    let (alice_1, _) = login(&app, "alice").await;
    let (alice_2, _) = login(&app, "alice").await;
    let (bob, _) = login(&app, "bob").await;
    for (token, sub) in [(&alice_1, "alice"), (&alice_2, "alice"), (&bob, "bob")] {
        assert_me_ok(&app, token, sub).await;
    }

    let response = send(app.clone(), with_bearer("POST", "/logout-all", &alice_1)).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);

    assert_revoked(&me(&app, &alice_1).await);
    assert_revoked(&me(&app, &alice_2).await);
    assert_me_ok(&app, &bob, "bob").await;

    // The watermark has one-second resolution (like `iat`): it refuses every token
    // with `iat` at or before the second of the logout, so a token issued in that
    // same second would be refused too. Wait for the next whole second of the Unix
    // clock before logging in again.
    common::sleep_until_next_second().await;
    let (fresh, _) = login(&app, "alice").await;
    assert_me_ok(&app, &fresh, "alice").await;
    assert_revoked(&me(&app, &alice_2).await);
}

#[tokio::test]
async fn login_refuses_bad_credentials_and_bad_requests_with_4xx() {
    let app = app();

    let wrong_password = json!({"username": "alice", "password": "hunter2"}).to_string();
    let response = send(app.clone(), login_request(wrong_password)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().get(SET_COOKIE).is_none());

    for username in ["", "   "] {
        let empty = json!({"username": username, "password": "password"}).to_string();
        let response = send(app.clone(), login_request(empty)).await;
        assert_eq!(
            response.status(),
            StatusCode::BAD_REQUEST,
            "username {username:?}"
        );
        assert!(response.headers().get(SET_COOKIE).is_none());
    }

    let malformed = [
        ("truncated JSON", login_request(r#"{"username": "alice", "pass"#)),
        ("not JSON", login_request("username=alice&password=password")),
        ("missing field", login_request(r#"{"username": "alice"}"#)),
        (
            "wrong type",
            login_request(r#"{"username": 7, "password": "password"}"#),
        ),
        (
            "no content type",
            Request::post("/login")
                .body(Body::from(r#"{"username":"alice","password":"password"}"#))
                .unwrap(),
        ),
    ];
    for (name, request) in malformed {
        let response = send(app.clone(), request).await;
        assert!(
            response.status().is_client_error(),
            "{name}: {} is not a 4xx",
            response.status()
        );
    }
}

#[tokio::test]
async fn every_login_gets_a_unique_jti() {
    let app = app();
    let (first, _) = login(&app, "alice").await;
    let (second, _) = login(&app, "alice").await;
    let first_jti = assert_me_ok(&app, &first, "alice").await["jti"].clone();
    let second_jti = assert_me_ok(&app, &second, "alice").await["jti"].clone();
    assert!(first_jti.is_string() && second_jti.is_string());
    assert_ne!(first_jti, second_jti);
    assert_ne!(first, second);
}

#[tokio::test]
async fn login_refuses_a_username_its_tokens_could_not_carry() {
    let app = app();
    // Before: a 7,000-character username got a token the server itself then refused
    // as too large. Now the door says why.
    let body = json!({"username": "a".repeat(7000), "password": "password"}).to_string();
    let response = send(app.clone(), login_request(body)).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        body_json(response).await["error"],
        "username must be at most 64 printable characters"
    );
    let body = json!({"username": "eve\u{0}", "password": "password"}).to_string();
    let response = send(app.clone(), login_request(body)).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    // A body far beyond any login is refused unread.
    let huge = format!(
        r#"{{"username":"{}","password":"password"}}"#,
        "a".repeat(1 << 20)
    );
    let response = send(app.clone(), login_request(huge)).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // The longest accepted username still makes a token the server accepts.
    let (token, _) = login(&app, &"é".repeat(64)).await;
    assert_me_ok(&app, &token, &"é".repeat(64)).await;
}

#[tokio::test]
async fn logout_all_with_a_token_without_subject_is_a_client_error() {
    let app = app();
    let now = common::now();
    let no_subject = common::mint_with(
        &tower_jwt_revoke::jsonwebtoken::Header::default(),
        &json!({ "jti": "no-sub", "iss": "axum_logout", "iat": now, "exp": now + 60 }),
        &tower_jwt_revoke::jsonwebtoken::EncodingKey::from_secret(
            b"axum-logout-test-secret-0123456789abcdef",
        ),
    );
    let response = send(app.clone(), with_bearer("POST", "/logout-all", &no_subject)).await;
    // Never "503, try again" for a request that can never succeed.
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(body_json(response).await["error"], "the token has no `sub` claim");
}

#[tokio::test]
async fn the_server_drops_a_client_that_never_finishes_its_request_head() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server =
        common::background::Background::spawn(|stopped| axum_logout::serve(listener, app(), stopped));
    let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
    client
        .write_all(b"GET /me HTTP/1.1\r\nhost: localhost\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut buffer = Vec::new();
    // The connection must end (closed, or a 408) instead of being held for ever.
    let ended = tokio::time::timeout(Duration::from_secs(30), client.read_to_end(&mut buffer)).await;
    assert!(
        ended.is_ok(),
        "a half-sent request still holds its connection after 30 s"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "closed before the client had a fair chance: {:?}",
        started.elapsed()
    );
    server.stop().await;
}

#[cfg(feature = "metrics")]
#[test]
fn metrics_and_readiness_are_served_outside_the_layer() {
    use metrics_exporter_prometheus::PrometheusBuilder;

    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // The recorder is this thread's; the current-thread runtime polls everything here.
    metrics::with_local_recorder(&recorder, || {
        runtime.block_on(async {
            let store: Arc<dyn tower_jwt_revoke::store::RevocationStore> = Arc::new(InMemoryStore::new());
            let app = axum_logout::app(axum_logout::DemoConfig {
                secret: b"axum-logout-test-secret-0123456789abcdef".to_vec(),
                access_ttl: ACCESS_TTL,
                store: Arc::clone(&store),
            })
            .merge(axum_logout::operations(handle.clone(), store));
            let (token, _) = login(&app, "alice").await;
            assert_me_ok(&app, &token, "alice").await;
            send(app.clone(), with_bearer("POST", "/logout", &token)).await;
            assert_revoked(&me(&app, &token).await);

            let ready = send(app.clone(), Request::get("/ready").body(Body::empty()).unwrap()).await;
            assert_eq!(ready.status(), StatusCode::OK);
            assert_eq!(body_json(ready).await["store"], "memory");

            let metrics = send(app.clone(), Request::get("/metrics").body(Body::empty()).unwrap()).await;
            assert_eq!(metrics.status(), StatusCode::OK);
            let bytes = axum::body::to_bytes(metrics.into_body(), 1 << 20).await.unwrap();
            let text = String::from_utf8(bytes.to_vec()).unwrap();
            for line in [
                r#"tower_jwt_revoke_checks_total{outcome="allowed",reason="none"} 2"#,
                r#"tower_jwt_revoke_checks_total{outcome="refused",reason="revoked_token"} 1"#,
                r#"tower_jwt_revoke_revocations_total{scope="token",result="recorded"} 1"#,
            ] {
                assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
            }
            assert!(
                !text.contains("alice"),
                "a subject leaked into the metrics:\n{text}"
            );
        })
    });
}
