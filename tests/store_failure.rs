//! When the store errs or hangs: fail closed with a 503 (never a 401), or fail open
//! when configured; gRPC callers get gRPC statuses instead of HTTP ones.

mod common;

use std::time::Duration;

use http::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Request, Response, StatusCode};
use tower::Layer;
use tower_jwt_revoke::store::{InMemoryStore, RevokedBy};
use tower_jwt_revoke::{FailurePolicy, Rejection, RevocationLayer, RevokeError};

use common::broken_store::{BrokenStore, Failure};
use common::{ANONYMOUS, bearer, claims, echo, grpc, mint, send};

const CHECK_TIMEOUT: Duration = Duration::from_millis(50);

fn layer(store: BrokenStore, policy: FailurePolicy) -> RevocationLayer {
    RevocationLayer::new(common::verifier(5), store)
        .with_check_timeout(CHECK_TIMEOUT)
        .with_failure_policy(policy)
}

fn assert_unavailable_503(response: &Response<String>, failure: Failure) {
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{failure:?}");
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .unwrap_or_else(|| panic!("{failure:?}: no Retry-After"));
    // delta-seconds (RFC 9110 §10.2.3)
    assert!(
        retry_after.to_str().unwrap().parse::<u64>().is_ok(),
        "{failure:?}: Retry-After {retry_after:?} is not a number of seconds"
    );
    // A 401 challenge would tell the client its credentials are bad and log it out.
    assert!(
        !response.headers().contains_key(WWW_AUTHENTICATE),
        "{failure:?}: a store outage must not challenge the credentials"
    );
    assert_eq!(
        common::rejection(response),
        Some(&Rejection::StoreUnavailable),
        "{failure:?}"
    );
    assert_ne!(
        response.body(),
        "alice",
        "{failure:?}: the inner service was called"
    );
}

#[tokio::test]
async fn fail_closed_answers_503_with_retry_after_when_the_store_errs_or_hangs() {
    for failure in [Failure::Error, Failure::Hang] {
        let store = BrokenStore::new(failure);
        let service = layer(store.clone(), FailurePolicy::FailClosed).layer(echo());
        let response = send(service, bearer(&mint(&claims("alice")))).await;
        assert_unavailable_503(&response, failure);
        assert_eq!(store.lookups(), 1, "{failure:?}: one store call per request");
    }
}

#[tokio::test]
async fn fail_closed_is_the_default() {
    let store = BrokenStore::new(Failure::Error);
    let service = RevocationLayer::new(common::verifier(5), store).layer(echo());
    let response = send(service, bearer(&mint(&claims("alice")))).await;
    assert_unavailable_503(&response, Failure::Error);
}

#[tokio::test]
async fn fail_open_lets_verified_requests_through_when_the_store_errs_or_hangs() {
    for failure in [Failure::Error, Failure::Hang] {
        let store = BrokenStore::new(failure);
        let service = layer(store.clone(), FailurePolicy::FailOpen).layer(echo());
        let response = send(service, bearer(&mint(&claims("alice")))).await;
        assert_eq!(response.status(), StatusCode::OK, "{failure:?}");
        // The inner service got the verified token.
        assert_eq!(response.body(), "alice", "{failure:?}");
        assert!(common::rejection(&response).is_none(), "{failure:?}");
        assert_eq!(store.lookups(), 1, "{failure:?}");
    }
}

/// Failing open skips only the revocation check: verification still applies, and an
/// unverified token never reaches the store.
#[tokio::test]
async fn fail_open_still_refuses_bad_tokens_without_asking_the_store() {
    let store = BrokenStore::new(Failure::Error);
    let service = layer(store.clone(), FailurePolicy::FailOpen).layer(echo());
    let forged = common::mint_with(
        &tower_jwt_revoke::jsonwebtoken::Header::new(tower_jwt_revoke::jsonwebtoken::Algorithm::HS256),
        &claims("alice"),
        &tower_jwt_revoke::jsonwebtoken::EncodingKey::from_secret(b"not-the-secret-not-the-secret-!!"),
    );
    for request in [
        bearer(&forged),
        bearer("abc"),
        Request::get("/resource").body(String::new()).unwrap(),
    ] {
        let response = send(service.clone(), request).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_ne!(response.body(), ANONYMOUS, "the inner service was called");
    }
    assert_eq!(store.lookups(), 0, "an unverified token reached the store");
}

fn assert_grpc(response: &Response<String>, status: &str) {
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "gRPC errors travel in HTTP 200"
    );
    assert_eq!(
        response.headers().get(CONTENT_TYPE).map(|v| v.as_bytes()),
        Some(&b"application/grpc"[..])
    );
    assert_eq!(
        response.headers().get("grpc-status").map(|v| v.to_str().unwrap()),
        Some(status)
    );
    let message = response
        .headers()
        .get("grpc-message")
        .map(|v| v.to_str().unwrap())
        .unwrap_or_default();
    assert!(!message.is_empty(), "no grpc-message");
    assert!(response.body().is_empty(), "a Trailers-Only response has no body");
    assert!(!response.headers().contains_key(WWW_AUTHENTICATE));
}

#[tokio::test]
async fn grpc_store_failure_is_unavailable() {
    for failure in [Failure::Error, Failure::Hang] {
        let service = layer(BrokenStore::new(failure), FailurePolicy::FailClosed).layer(echo());
        let response = send(service, grpc(Some(&mint(&claims("alice"))))).await;
        assert_grpc(&response, "14");
        assert_eq!(common::rejection(&response), Some(&Rejection::StoreUnavailable));
    }
}

#[tokio::test]
async fn grpc_missing_invalid_or_revoked_token_is_unauthenticated() {
    let layer = RevocationLayer::new(common::verifier(5), InMemoryStore::new());
    let service = layer.layer(echo());
    let token = mint(&claims("alice"));

    let response = send(service.clone(), grpc(Some(&token))).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.body(), "alice");
    assert!(!response.headers().contains_key("grpc-status"));

    let response = send(service.clone(), grpc(None)).await;
    assert_grpc(&response, "16");
    assert_eq!(common::rejection(&response), Some(&Rejection::MissingToken));

    let response = send(service.clone(), grpc(Some("abc"))).await;
    assert_grpc(&response, "16");

    layer.revoker().revoke_token(&token).await.unwrap();
    let response = send(service.clone(), grpc(Some(&token))).await;
    assert_grpc(&response, "16");
    assert_eq!(
        common::rejection(&response),
        Some(&Rejection::Revoked(RevokedBy::Token))
    );

    // `application/grpc+proto` is gRPC too.
    let mut request = grpc(None);
    request
        .headers_mut()
        .insert(CONTENT_TYPE, "application/grpc+proto".parse().unwrap());
    let response = send(service.clone(), request).await;
    assert_eq!(
        response.headers().get("grpc-status").map(|v| v.as_bytes()),
        Some(&b"16"[..])
    );
}

/// A revocation the store could not record is reported as an error, never as done.
#[tokio::test]
async fn revocations_the_store_could_not_record_are_errors() {
    let revoker = layer(BrokenStore::new(Failure::Error), FailurePolicy::FailOpen).revoker();
    let token = mint(&claims("alice"));
    assert!(matches!(
        revoker.revoke_token(&token).await,
        Err(RevokeError::Store(_))
    ));
    assert!(matches!(
        revoker.revoke_subject("alice").await,
        Err(RevokeError::Store(_))
    ));
    assert!(matches!(
        revoker.revoke_session("s-1").await,
        Err(RevokeError::Store(_))
    ));
    assert!(matches!(revoker.revoke_all().await, Err(RevokeError::Store(_))));
}

#[tokio::test]
async fn a_revocation_the_store_sits_on_fails_after_the_revoker_timeout() {
    let revoker = layer(BrokenStore::new(Failure::Hang), FailurePolicy::FailClosed)
        .revoker()
        .with_timeout(Duration::from_millis(50));
    let token = mint(&claims("alice"));
    let outcome = tokio::time::timeout(common::CALL_LIMIT, revoker.revoke_token(&token))
        .await
        .expect("a logout handler must not hang with the store");
    assert!(matches!(outcome, Err(RevokeError::Store(_))), "{outcome:?}");
}
