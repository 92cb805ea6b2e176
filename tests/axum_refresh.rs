//! The `axum_logout` example's refresh tokens, black-box through its router: on the
//! in-memory store, and as two replicas sharing one Redis (a refresh on one, the reuse
//! on the other; one of them through a mirror).
#![cfg(all(feature = "axum", feature = "redis"))]

mod common;
#[macro_use]
mod support;

#[path = "../examples/axum_logout.rs"]
#[allow(dead_code)]
mod axum_logout;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use http::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, SET_COOKIE};
use http::{Request, Response, StatusCode};
use serde_json::{Value, json};
use tower_jwt_revoke::refresh::RefreshStore;
use tower_jwt_revoke::store::{InMemoryStore, RevocationStore};

use axum_logout::{DemoConfig, RefreshConfig};
use common::send;

/// The same through replicas sharing a Redis server or cluster, and Redis failing.
#[path = "axum_refresh/on_redis.rs"]
mod on_redis;

const SECRET: &[u8] = b"axum-logout-test-secret-0123456789abcdef";

fn app(store: Arc<dyn RevocationStore>, refresh: Arc<dyn RefreshStore>, secure_cookies: bool) -> Router {
    app_with(
        store,
        refresh,
        secure_cookies,
        Duration::from_secs(3600),
        Duration::from_secs(600),
    )
}

/// [`app`] with the family's lifetime (`REFRESH_TTL_SECS`) and idle timeout
/// (`REFRESH_IDLE_SECS`).
fn app_with(
    store: Arc<dyn RevocationStore>,
    refresh: Arc<dyn RefreshStore>,
    secure_cookies: bool,
    ttl: Duration,
    idle: Duration,
) -> Router {
    axum_logout::app_with_refresh(
        DemoConfig {
            secret: SECRET.to_vec(),
            access_ttl: Duration::from_secs(900),
            store,
        },
        RefreshConfig {
            store: refresh,
            ttl,
            idle,
            secure_cookies,
        },
    )
}

async fn body_json(response: Response<Body>) -> Value {
    let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .unwrap();
    serde_json::from_slice(&bytes)
        .unwrap_or_else(|error| panic!("not JSON ({error}): {:?}", String::from_utf8_lossy(&bytes)))
}

/// A pair: the access token and the refresh token.
struct Pair {
    access: String,
    refresh: String,
}

async fn pair_of(response: Response<Body>) -> Pair {
    assert_eq!(response.status(), StatusCode::OK);
    let body = body_json(response).await;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    Pair {
        access: body["access_token"].as_str().unwrap().to_owned(),
        refresh: body["refresh_token"].as_str().unwrap().to_owned(),
    }
}

async fn login(app: &Router, username: &str) -> Pair {
    let body = json!({"username": username, "password": "password"}).to_string();
    let request = Request::post("/login")
        .header(CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap();
    pair_of(send(app.clone(), request).await).await
}

async fn refresh(app: &Router, token: &str) -> Response<Body> {
    let body = json!({ "refresh_token": token }).to_string();
    let request = Request::post("/refresh")
        .header(CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap();
    send(app.clone(), request).await
}

async fn refused(app: &Router, token: &str) {
    refused_saying(app, token, "").await;
}

/// Refused with 401 and an `error` that says `why`.
async fn refused_saying(app: &Router, token: &str, why: &str) {
    let response = refresh(app, token).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body = body_json(response).await;
    assert!(
        body["error"].as_str().is_some_and(|error| error.contains(why)),
        "{body}"
    );
}

async fn me(app: &Router, token: &str) -> StatusCode {
    let request = Request::get("/me")
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    send(app.clone(), request).await.status()
}

async fn post(app: &Router, uri: &str, token: &str) -> StatusCode {
    let request = Request::post(uri)
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    send(app.clone(), request).await.status()
}

/// Waits (a mirror learns through its feed) until `app` refuses `token`.
async fn until_refused(app: &Router, token: &str) -> StatusCode {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let status = me(app, token).await;
        if status != StatusCode::OK || tokio::time::Instant::now() > deadline {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A copy used after the user refreshed (on `two`): refused, and the user's current
/// tokens too; another session of the user is untouched.
async fn reuse_flow(one: &Router, two: &Router) {
    let first = login(one, "alice").await;
    let other = login(one, "alice").await;
    let copy = first.refresh.clone();
    let current = pair_of(refresh(one, &first.refresh).await).await;
    assert_eq!(me(two, &current.access).await, StatusCode::OK);

    let response = refresh(two, &copy).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(
        body_json(response).await["error"]
            .as_str()
            .unwrap()
            .contains("reused")
    );
    assert_eq!(
        until_refused(one, &current.access).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        until_refused(two, &current.access).await,
        StatusCode::UNAUTHORIZED
    );
    refused(one, &current.refresh).await;
    refused(two, &current.refresh).await;

    assert_eq!(me(one, &other.access).await, StatusCode::OK);
    assert_eq!(me(two, &other.access).await, StatusCode::OK);
    let renewed = pair_of(refresh(two, &other.refresh).await).await;
    assert_eq!(me(one, &renewed.access).await, StatusCode::OK);
}

fn in_memory() -> Router {
    app(
        Arc::new(InMemoryStore::new()),
        Arc::new(tower_jwt_revoke::refresh::InMemoryRefreshStore::new()),
        true,
    )
}

#[tokio::test]
async fn a_reused_refresh_token_ends_its_session_in_memory() {
    let app = in_memory();
    reuse_flow(&app, &app).await;
}

#[tokio::test]
async fn login_sets_the_refresh_cookie_and_refresh_takes_it() {
    let app = in_memory();
    let request = Request::post("/login")
        .header(CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"username":"alice","password":"password"}"#))
        .unwrap();
    let response = send(app.clone(), request).await;
    let cookies: Vec<String> = response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(
        cookies[0].starts_with("token="),
        "the access token's cookie stays first: {cookies:?}"
    );
    let pair = pair_of(response).await;
    assert_eq!(
        cookies[1],
        format!(
            "refresh_token={}; HttpOnly; Secure; SameSite=Strict; Path=/refresh; Max-Age=3600",
            pair.refresh
        )
    );
    let request = Request::post("/refresh")
        .header(COOKIE, format!("theme=dark; refresh_token={}", pair.refresh))
        .body(Body::empty())
        .unwrap();
    let renewed = pair_of(send(app.clone(), request).await).await;
    assert_eq!(me(&app, &renewed.access).await, StatusCode::OK);

    let insecure = app_insecure();
    let request = Request::post("/login")
        .header(CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"username":"alice","password":"password"}"#))
        .unwrap();
    let response = send(insecure, request).await;
    let refresh_cookie = response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .nth(1)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        !refresh_cookie.contains("Secure"),
        "INSECURE_COOKIES=1: {refresh_cookie}"
    );
}

fn app_insecure() -> Router {
    app(
        Arc::new(InMemoryStore::new()),
        Arc::new(tower_jwt_revoke::refresh::InMemoryRefreshStore::new()),
        false,
    )
}

#[tokio::test]
async fn what_is_not_a_live_refresh_token_is_a_clear_4xx() {
    let app = in_memory();
    let pair = login(&app, "alice").await;
    // An access token as a refresh token.
    refused_saying(&app, &pair.access, "not a refresh token").await;
    // Well-formed, but no family issued it.
    refused_saying(&app, &format!("rt1.{}", "A".repeat(64)), "unknown refresh token").await;
    // Tampered: in its secret, or in its family handle.
    for at in [pair.refresh.len() - 1, 5] {
        let mut tampered = pair.refresh.clone().into_bytes();
        tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
        refused_saying(
            &app,
            &String::from_utf8(tampered).unwrap(),
            "unknown refresh token",
        )
        .await;
    }
    refused_saying(&app, "", "not a refresh token").await;
    refused_saying(&app, &"rt1.".repeat(1_000), "not a refresh token").await;
    // A refresh token as an access token.
    assert_eq!(me(&app, &pair.refresh).await, StatusCode::UNAUTHORIZED);
    // No token at all, or a body that is not the JSON asked for: 400.
    let request = Request::post("/refresh").body(Body::empty()).unwrap();
    assert_eq!(send(app.clone(), request).await.status(), StatusCode::BAD_REQUEST);
    let request = Request::post("/refresh")
        .body(Body::from("refresh_token=x"))
        .unwrap();
    assert_eq!(send(app.clone(), request).await.status(), StatusCode::BAD_REQUEST);
    // None of that touched the family.
    pair_of(refresh(&app, &pair.refresh).await).await;
}

#[tokio::test]
async fn logout_ends_the_family_and_logout_all_every_family() {
    let app = in_memory();
    let one = login(&app, "alice").await;
    let two = login(&app, "alice").await;
    let bob = login(&app, "bob").await;
    assert_eq!(post(&app, "/logout", &one.access).await, StatusCode::NO_CONTENT);
    refused(&app, &one.refresh).await;
    let two = pair_of(refresh(&app, &two.refresh).await).await;
    assert_eq!(
        post(&app, "/logout-all", &two.access).await,
        StatusCode::NO_CONTENT
    );
    refused(&app, &two.refresh).await;
    assert_eq!(me(&app, &two.access).await, StatusCode::UNAUTHORIZED);
    // Signing in again at once, in the same second as the logout, works.
    let again = login(&app, "alice").await;
    assert_eq!(me(&app, &again.access).await, StatusCode::OK);
    assert_eq!(me(&app, &bob.access).await, StatusCode::OK);
    pair_of(refresh(&app, &bob.refresh).await).await;
}

/// A family ends at its absolute lifetime (`REFRESH_TTL_SECS`) however often it is
/// refreshed, and after its idle timeout (`REFRESH_IDLE_SECS`) without a refresh:
/// 401, "expired".
#[tokio::test]
async fn an_expired_refresh_token_is_refused_through_the_router() {
    let memory = || -> (Arc<dyn RevocationStore>, Arc<dyn RefreshStore>) {
        (
            Arc::new(InMemoryStore::new()),
            Arc::new(tower_jwt_revoke::refresh::InMemoryRefreshStore::new()),
        )
    };
    let (store, families) = memory();
    let lifetime = app_with(
        store,
        families,
        true,
        Duration::from_secs(2),
        Duration::from_secs(600),
    );
    let (store, families) = memory();
    let idle = app_with(
        store,
        families,
        true,
        Duration::from_secs(600),
        Duration::from_secs(1),
    );
    let by_lifetime = login(&lifetime, "alice").await;
    let by_idle = login(&idle, "alice").await;
    let by_lifetime = pair_of(refresh(&lifetime, &by_lifetime.refresh).await).await;
    // Past both (whole seconds: the end is at most a second later than its length).
    tokio::time::sleep(Duration::from_millis(3_100)).await;
    refused_saying(&lifetime, &by_lifetime.refresh, "expired").await;
    refused_saying(&idle, &by_idle.refresh, "expired").await;
}
