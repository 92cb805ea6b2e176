//! Authorization on claims after verification: 403 `insufficient_scope` (RFC 6750
//! §3.1) per route, with the scope the token lacks; 401 where no token was verified.
#![cfg(feature = "axum")]

mod common;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::header::WWW_AUTHENTICATE;
use http::{Request, StatusCode};
use serde_json::{Value, json};
use tower_jwt_revoke::authorize::{self, AuthorizeLayer, Denied};
use tower_jwt_revoke::store::InMemoryStore;
use tower_jwt_revoke::{RevocationLayer, VerifiedToken};

use common::{claims_with, mint, send};

fn app() -> Router {
    let revocation = RevocationLayer::new(common::verifier(0), InMemoryStore::new()).with_anonymous(true);
    Router::new()
        .route(
            "/orders",
            get(|| async { "orders" }).layer(authorize::require_scope("orders:read")),
        )
        .route(
            "/admin",
            get(|| async { "admin" }).layer(authorize::require_role("admin")),
        )
        .route(
            "/billing",
            get(|| async { "billing" }).layer(authorize::require_client_role("billing-api", "viewer")),
        )
        .route(
            "/aud",
            get(|| async { "aud" }).layer(authorize::require_audience("aud-a")),
        )
        .route(
            "/staff",
            get(|| async { "staff" }).layer(AuthorizeLayer::new(|token: &VerifiedToken| {
                token.subject().is_some_and(|sub| sub.ends_with("@staff"))
            })),
        )
        .route_layer(revocation)
}

async fn status(path: &str, extra: Value) -> (StatusCode, Option<String>) {
    let token = mint(&claims_with("alice", extra));
    let request = Request::get(path)
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let response = send(app(), request).await;
    let challenge = response
        .headers()
        .get(WWW_AUTHENTICATE)
        .map(|value| value.to_str().unwrap().to_owned());
    (response.status(), challenge)
}

#[tokio::test]
async fn a_scope_is_read_from_scope_and_scp_in_every_spelling() {
    for granted in [
        json!({ "scope": "profile orders:read" }),
        json!({ "scp": ["orders:read"] }),
        json!({ "scp": "profile orders:read" }),
    ] {
        assert_eq!(
            status("/orders", granted.clone()).await.0,
            StatusCode::OK,
            "{granted}"
        );
    }
}

#[tokio::test]
async fn a_missing_scope_is_a_403_naming_it() {
    for lacking in [
        json!({}),
        json!({ "scope": "orders:write" }),
        json!({ "scope": "orders:read:all" }),
        json!({ "scp": ["profile"] }),
        json!({ "scope": 7 }),
    ] {
        assert_eq!(
            status("/orders", lacking.clone()).await,
            (
                StatusCode::FORBIDDEN,
                Some(r#"Bearer error="insufficient_scope", scope="orders:read""#.into())
            ),
            "{lacking}"
        );
    }
}

#[tokio::test]
async fn roles_are_read_from_roles_and_keycloak_realm_and_client_roles() {
    assert_eq!(
        status("/admin", json!({ "roles": ["admin"] })).await.0,
        StatusCode::OK
    );
    assert_eq!(
        status("/admin", json!({ "realm_access": { "roles": ["admin"] } }))
            .await
            .0,
        StatusCode::OK
    );
    let forbidden = status("/admin", json!({ "roles": ["user"] })).await;
    assert_eq!(
        forbidden,
        (
            StatusCode::FORBIDDEN,
            Some(r#"Bearer error="insufficient_scope""#.into())
        )
    );
    let client = json!({ "resource_access": { "billing-api": { "roles": ["viewer"] } } });
    assert_eq!(status("/billing", client).await.0, StatusCode::OK);
    // A realm role of the same name is not a client role.
    let realm = json!({ "realm_access": { "roles": ["viewer"] } });
    assert_eq!(status("/billing", realm).await.0, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn audience_and_closure_checks() {
    assert_eq!(status("/aud", json!({})).await.0, StatusCode::OK);
    assert_eq!(status("/staff", json!({})).await.0, StatusCode::FORBIDDEN);
    assert_eq!(
        status("/staff", json!({ "sub": "bob@staff" })).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_request_without_a_token_is_a_401_not_a_403() {
    let response = send(app(), Request::get("/orders").body(Body::empty()).unwrap()).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()[WWW_AUTHENTICATE], "Bearer");
    assert!(response.extensions().get::<Denied>().is_none());
}

#[tokio::test]
async fn a_grpc_call_lacking_a_scope_is_permission_denied() {
    let token = mint(&claims_with("alice", json!({})));
    let request = Request::post("/orders")
        .header("content-type", "application/grpc")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let app = Router::new()
        .route(
            "/orders",
            axum::routing::post(|| async { "orders" }).layer(authorize::require_scope("orders:read")),
        )
        .route_layer(RevocationLayer::new(common::verifier(0), InMemoryStore::new()));
    let response = send(app, request).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["grpc-status"], "7");
}
