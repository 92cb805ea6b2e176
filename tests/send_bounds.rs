//! The futures users hold across `.await` in multi-threaded servers must be `Send`,
//! with every store, `Arc<dyn RevocationStore>` included. A compile-time check.

use std::convert::Infallible;
use std::sync::Arc;

use http::{Request, Response};
use tower::{Layer, ServiceExt};
use tower_jwt_revoke::jsonwebtoken::Algorithm;
use tower_jwt_revoke::store::{InMemoryStore, RevocationStore};
use tower_jwt_revoke::{JwtVerifier, RevocationLayer, Revoker, VerificationKey, VerifiedToken};

fn assert_send<T: Send>(value: T) -> T {
    value
}

fn layer() -> RevocationLayer {
    let verifier = JwtVerifier::builder()
        .key(VerificationKey::hmac(Algorithm::HS256, b"send-bounds-secret").unwrap())
        .build()
        .unwrap();
    let store: Arc<dyn RevocationStore> = Arc::new(InMemoryStore::new());
    RevocationLayer::new(verifier, store)
}

#[tokio::test]
async fn a_layered_service_on_a_dyn_store_can_be_driven_from_a_send_future() {
    let service = layer().layer(tower::service_fn(|_: Request<String>| async {
        Ok::<_, Infallible>(Response::new(String::new()))
    }));
    let response = assert_send(async move { service.oneshot(Request::new(String::new())).await }).await;
    assert_eq!(response.unwrap().status(), http::StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn revoking_through_a_dyn_store_is_a_send_future() {
    let revoker: Revoker = layer().revoker();
    let outcome = assert_send(async move {
        let token: Option<VerifiedToken> = None;
        match token {
            Some(token) => revoker.revoke(&token).await.map(|_| ()),
            None => revoker.revoke_subject_for(None, "alice").await.map(|_| ()),
        }
    })
    .await;
    assert!(outcome.is_ok());
}
