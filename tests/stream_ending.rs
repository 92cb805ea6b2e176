//! `RevocationLayer::with_stream_ending`: response bodies that end by themselves when
//! their token is refused. A gRPC stream ends with `grpc-status: 16`; an HTTP body (on
//! opt-in) fails; a response written at once never registers a waiter.
#![cfg(all(feature = "tonic", feature = "axum"))]

mod common;

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use tokio::sync::mpsc;
use tower::ServiceExt;
use tower_jwt_revoke::store::{InMemoryStore, RevocationStore};
use tower_jwt_revoke::{BodyRefused, RevocationLayer, StreamEnding};

use common::{claims, mint, verifier};

const AT_ONCE: Duration = Duration::from_secs(3);

type Sender = mpsc::UnboundedSender<Result<Frame<Bytes>, Infallible>>;

/// A body that sends what the test pushes, and waits in between.
fn channel_body() -> (
    Sender,
    impl http_body::Body<Data = Bytes, Error = Infallible> + Send + 'static,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let stream =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    (tx, StreamBody::new(stream))
}

fn grpc_request(token: &str) -> Request<tonic::body::Body> {
    Request::post("/demo.Stream/Watch")
        .header("content-type", "application/grpc")
        .header("authorization", format!("Bearer {token}"))
        .body(tonic::body::Body::empty())
        .unwrap()
}

#[tokio::test]
async fn a_grpc_stream_ends_with_unauthenticated_trailers_by_default() {
    let store = InMemoryStore::new();
    let layer = RevocationLayer::new(verifier(0), store.clone());
    assert_eq!(layer.stream_ending(), StreamEnding::Grpc);
    let revoker = layer.revoker();
    let (tx, body) = channel_body();
    let body = std::sync::Arc::new(std::sync::Mutex::new(Some(body)));
    let service =
        tower::ServiceBuilder::new()
            .layer(layer)
            .service_fn(move |_: Request<tonic::body::Body>| {
                let body = body.lock().unwrap().take().unwrap();
                async move {
                    let mut response = Response::new(tonic::body::Body::new(body));
                    response
                        .headers_mut()
                        .insert("content-type", "application/grpc".parse().unwrap());
                    Ok::<_, Infallible>(response)
                }
            });
    let token = mint(&claims("alice"));
    let response = service.oneshot(grpc_request(&token)).await.unwrap();
    let mut body = response.into_body();
    tx.send(Ok(Frame::data(Bytes::from_static(b"message 1"))))
        .unwrap();
    let first = tokio::time::timeout(AT_ONCE, body.frame())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.into_data().unwrap(), "message 1");
    // Waiting for the next message: the token is watched now.
    assert!(
        tokio::time::timeout(Duration::from_millis(50), body.frame())
            .await
            .is_err()
    );
    assert_eq!(store.watchers().unwrap().len(), 1);
    revoker.revoke_token(&token).await.unwrap();
    let last = tokio::time::timeout(AT_ONCE, body.frame())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let trailers = last.into_trailers().expect("trailers end the stream");
    assert_eq!(trailers["grpc-status"], "16");
    assert_eq!(trailers["grpc-message"], "token revoked");
    assert!(body.frame().await.is_none(), "nothing after the trailers");
    drop(body);
    assert!(store.watchers().unwrap().is_empty());
    drop(tx);
}

#[tokio::test]
async fn an_http_body_fails_when_asked_for_and_only_then() {
    for ending in [StreamEnding::GrpcAndHttp, StreamEnding::Grpc, StreamEnding::Off] {
        let store = InMemoryStore::new();
        let layer = RevocationLayer::new(verifier(0), store.clone()).with_stream_ending(ending);
        let revoker = layer.revoker();
        let (tx, body) = channel_body();
        let body = std::sync::Arc::new(std::sync::Mutex::new(Some(body)));
        let service = tower::ServiceBuilder::new()
            .layer(layer)
            .service_fn(move |_: Request<String>| {
                let body = body.lock().unwrap().take().unwrap();
                async move {
                    let mut response = Response::new(axum::body::Body::new(body));
                    response
                        .headers_mut()
                        .insert("content-type", "text/event-stream".parse().unwrap());
                    Ok::<_, Infallible>(response)
                }
            });
        let token = mint(&claims("bob"));
        let mut body = service.oneshot(common::bearer(&token)).await.unwrap().into_body();
        tx.send(Ok(Frame::data(Bytes::from_static(b"data: 1\n\n"))))
            .unwrap();
        assert!(body.frame().await.unwrap().is_ok());
        assert!(
            tokio::time::timeout(Duration::from_millis(50), body.frame())
                .await
                .is_err()
        );
        revoker.revoke_token(&token).await.unwrap();
        let after = tokio::time::timeout(Duration::from_millis(300), body.frame()).await;
        if ending == StreamEnding::GrpcAndHttp {
            let error = after.expect("ended at once").unwrap().unwrap_err();
            let refused = error.into_inner();
            assert!(
                refused.downcast_ref::<BodyRefused>().is_some()
                    || refused.to_string().contains("token revoked"),
                "{refused}"
            );
        } else {
            assert!(after.is_err(), "{ending:?}: an HTTP body goes on unless asked");
        }
    }
}

#[tokio::test]
async fn a_unary_response_never_registers_a_waiter() {
    let store = InMemoryStore::new();
    let layer =
        RevocationLayer::new(verifier(0), store.clone()).with_stream_ending(StreamEnding::GrpcAndHttp);
    let service =
        tower::ServiceBuilder::new()
            .layer(layer)
            .service_fn(|_: Request<tonic::body::Body>| async {
                let mut response = Response::new(tonic::body::Body::new(http_body_util::Full::new(
                    Bytes::from_static(b"one message"),
                )));
                response
                    .headers_mut()
                    .insert("content-type", "application/grpc".parse().unwrap());
                Ok::<_, Infallible>(response)
            });
    let token = mint(&claims("carol"));
    let body = service.oneshot(grpc_request(&token)).await.unwrap().into_body();
    let collected = body.collect().await.unwrap().to_bytes();
    assert_eq!(collected, "one message");
    assert!(
        store.watchers().unwrap().is_empty(),
        "no waiter for a body written at once"
    );
}
