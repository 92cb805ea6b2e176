//! The hyper_server example over a real loopback socket, driven by hyper-util's client:
//! the same contract as axum_logout, on plain hyper.

#![cfg(feature = "redis")]

mod common;

use common::background::Background;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, RETRY_AFTER, SET_COOKIE, WWW_AUTHENTICATE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tower_jwt_revoke::store::{InMemoryStore, RevocationStore};

#[path = "../examples/hyper_server/main.rs"]
#[allow(dead_code)]
mod hyper_server;

const ACCESS_TTL: Duration = Duration::from_secs(300);
const REVOKED: &str = r#"Bearer error="invalid_token", error_description="token revoked""#;

/// The example's server on a free loopback port, with a client for it; stopped by
/// [`Server::stop`] (or aborted on drop when a test fails first).
struct Server {
    addr: SocketAddr,
    client: Client<HttpConnector, Full<Bytes>>,
    server: Background<std::io::Error>,
}

/// A response, read whole.
struct Answer {
    status: StatusCode,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Answer {
    fn header(&self, name: http::header::HeaderName) -> Option<&str> {
        self.headers.get(name).map(|value| value.to_str().unwrap())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

impl Server {
    async fn start(store: Arc<dyn RevocationStore>) -> Self {
        let app = hyper_server::app(hyper_server::DemoConfig {
            secret: b"hyper-server-test-secret-0123456789abcdef".to_vec(),
            access_ttl: ACCESS_TTL,
            store,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = Background::spawn(|stopped| hyper_server::serve(listener, app, stopped));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(1))
            .build_http();
        Self { addr, client, server }
    }

    async fn send(&self, request: http::request::Builder, body: &str) -> Answer {
        let path = request.uri_ref().expect("a path").to_string();
        let request = request
            .uri(format!("http://{}{path}", self.addr))
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap();
        let response: Response<_> =
            tokio::time::timeout(Duration::from_secs(5), self.client.request(request))
                .await
                .expect("an answer within 5 s")
                .expect("the request reached the server");
        let (parts, body) = response.into_parts();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body: body.collect().await.unwrap().to_bytes(),
        }
    }

    async fn login(&self, username: &str) -> String {
        let answer = self
            .send(
                Request::post("/login").header(CONTENT_TYPE, "application/json"),
                &json!({ "username": username, "password": "password" }).to_string(),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK);
        let body = answer.json();
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], ACCESS_TTL.as_secs());
        let token = body["access_token"].as_str().unwrap().to_owned();
        let cookie = answer.header(SET_COOKIE).unwrap();
        assert!(cookie.starts_with(&format!("token={token};")), "{cookie}");
        assert!(cookie.contains("HttpOnly"), "{cookie}");
        token
    }

    async fn with_bearer(&self, method: Method, path: &str, token: &str) -> Answer {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(AUTHORIZATION, format!("Bearer {token}"));
        self.send(request, "").await
    }

    async fn me(&self, token: &str) -> Answer {
        self.with_bearer(Method::GET, "/me", token).await
    }

    /// Shuts the server down gracefully and checks it stopped cleanly.
    async fn stop(self) {
        self.server.stop().await;
    }
}

#[tokio::test]
async fn logout_revokes_the_token() {
    let server = Server::start(Arc::new(InMemoryStore::new())).await;
    let token = server.login("alice").await;

    let me = server.me(&token).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.header(CONTENT_TYPE), Some("application/json"));
    let body = me.json();
    assert_eq!(body["sub"], "alice");
    // The contract is a unique `jti`; TokenIssuer's are 128 random bits (22 base64url).
    assert!(
        body["jti"].as_str().is_some_and(|jti| jti.len() == 22
            && jti
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')),
        "{body}"
    );
    assert_eq!(
        body["exp"].as_u64().unwrap() - body["iat"].as_u64().unwrap(),
        ACCESS_TTL.as_secs()
    );

    let logout = server.with_bearer(Method::POST, "/logout", &token).await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);
    assert!(logout.body.is_empty());
    assert!(logout.header(SET_COOKIE).unwrap().contains("Max-Age=0"));

    let after = server.me(&token).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    assert_eq!(after.header(WWW_AUTHENTICATE), Some(REVOKED));
    let again = server.with_bearer(Method::POST, "/logout", &token).await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);

    // Only that token: a fresh login gets in.
    let fresh = server.login("alice").await;
    assert_eq!(server.me(&fresh).await.status, StatusCode::OK);
    server.stop().await;
}

#[tokio::test]
async fn logout_all_refuses_every_token_of_the_user() {
    let server = Server::start(Arc::new(InMemoryStore::new())).await;
    let laptop = server.login("bob").await;
    let phone = server.login("bob").await;
    let other_user = server.login("carol").await;
    for token in [&laptop, &phone, &other_user] {
        assert_eq!(server.me(token).await.status, StatusCode::OK);
    }

    let logout = server.with_bearer(Method::POST, "/logout-all", &laptop).await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);

    for token in [&laptop, &phone] {
        let refused = server.me(token).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
        assert_eq!(refused.header(WWW_AUTHENTICATE), Some(REVOKED));
    }
    assert_eq!(server.me(&other_user).await.status, StatusCode::OK);
    server.stop().await;
}

#[tokio::test]
async fn the_token_cookie_works_like_the_bearer_header() {
    let server = Server::start(Arc::new(InMemoryStore::new())).await;
    let token = server.login("alice").await;
    let with_cookie = || Request::get("/me").header(COOKIE, format!("theme=dark; token={token}"));

    let me = server.send(with_cookie(), "").await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.json()["sub"], "alice");

    let logout = server
        .send(
            Request::post("/logout").header(COOKIE, format!("token={token}")),
            "",
        )
        .await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);
    let after = server.send(with_cookie(), "").await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    assert_eq!(after.header(WWW_AUTHENTICATE), Some(REVOKED));
    server.stop().await;
}

#[tokio::test]
async fn protected_routes_need_a_token_and_login_does_not() {
    let server = Server::start(Arc::new(InMemoryStore::new())).await;

    for (method, path) in [
        (Method::GET, "/me"),
        (Method::POST, "/logout"),
        (Method::POST, "/logout-all"),
    ] {
        let answer = server.send(Request::builder().method(method).uri(path), "").await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(answer.header(WWW_AUTHENTICATE), Some("Bearer"), "{path}");
    }

    // Login is outside the layer: a revoked token sent along does not get in the way.
    let token = server.login("alice").await;
    server.with_bearer(Method::POST, "/logout", &token).await;
    let login = server
        .send(
            Request::post("/login")
                .header(CONTENT_TYPE, "application/json")
                .header(AUTHORIZATION, format!("Bearer {token}")),
            r#"{"username":"alice","password":"password"}"#,
        )
        .await;
    assert_eq!(login.status, StatusCode::OK);

    let json = || Request::post("/login").header(CONTENT_TYPE, "application/json");
    let wrong = server
        .send(json(), r#"{"username":"alice","password":"nope"}"#)
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.json()["error"], "invalid username or password");
    let empty = server
        .send(json(), r#"{"username":"","password":"password"}"#)
        .await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    let garbage = server.send(json(), "not json").await;
    assert_eq!(garbage.status, StatusCode::BAD_REQUEST);
    let not_json = server.send(Request::post("/login"), "username=alice").await;
    assert_eq!(not_json.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let get_login = server.send(Request::get("/login"), "").await;
    assert_eq!(get_login.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(get_login.header(http::header::ALLOW), Some("POST"));
    assert_eq!(
        server.send(Request::get("/nowhere"), "").await.status,
        StatusCode::NOT_FOUND
    );
    server.stop().await;
}

#[tokio::test]
async fn a_store_outage_is_a_503_never_a_401() {
    let server = Server::start(Arc::new(common::broken_store::BrokenStore::new(
        common::broken_store::Failure::Error,
    )))
    .await;
    let token = server.login("alice").await;
    let me = server.me(&token).await;
    assert_eq!(me.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(me.header(RETRY_AFTER), Some("1"));
    assert_eq!(me.header(WWW_AUTHENTICATE), None);
    server.stop().await;
}
