//! `StreamEnding::GrpcAndHttp` over real connections: when a streaming HTTP body's token
//! is revoked, the body fails, and hyper ends the response the only way HTTP lets a
//! server say "this body is not complete": on HTTP/1 it closes the connection, on HTTP/2
//! it resets that one stream and the connection keeps serving.
#![cfg(feature = "axum")]

mod common;

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::routing::get;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tower_jwt_revoke::store::InMemoryStore;
use tower_jwt_revoke::{RevocationLayer, Revoker, StreamEnding};

use common::{claims, mint, verifier};

/// How long a revoked body may keep going: the in-memory store wakes its waiter at once,
/// the rest is a loaded machine.
const ENDS_WITHIN: Duration = Duration::from_secs(3);

/// A chunk every 20 ms, for ever: what an SSE feed or a download looks like to the layer.
async fn endless() -> Body {
    let ticks = futures_util::stream::unfold(0u64, |n| async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        Some((Ok::<_, Infallible>(Bytes::from(format!("chunk {n}\n"))), n + 1))
    });
    Body::from_stream(ticks)
}

/// Serves `/stream` behind a layer that ends HTTP bodies, HTTP/1 and HTTP/2 on one port.
async fn serve() -> (std::net::SocketAddr, Revoker, tokio::task::JoinHandle<()>) {
    let layer =
        RevocationLayer::new(verifier(0), InMemoryStore::new()).with_stream_ending(StreamEnding::GrpcAndHttp);
    let revoker = layer.revoker();
    let app = axum::Router::new().route("/stream", get(endless)).layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let service = hyper_util::service::TowerToHyperService::new(app.clone());
            tokio::spawn(async move {
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let _ = builder.serve_connection(TokioIo::new(socket), service).await;
            });
        }
    });
    (addr, revoker, server)
}

fn get_stream(token: &str) -> Request<Empty<Bytes>> {
    Request::get("/stream")
        .header("host", "127.0.0.1")
        .header("authorization", format!("Bearer {token}"))
        .body(Empty::new())
        .unwrap()
}

/// Reads a body until it fails or ends: whether it failed, and how long that took.
async fn read_to_the_end(mut body: hyper::body::Incoming) -> Result<(), hyper::Error> {
    while let Some(frame) = body.frame().await {
        frame?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_http1_a_revoked_body_fails_and_its_connection_closes() {
    let (addr, revoker, server) = serve().await;
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    let connection = tokio::spawn(connection);

    let token = mint(&claims("alice"));
    let response = sender.send_request(get_stream(&token)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    // Flowing before the logout.
    for _ in 0..3 {
        assert!(body.frame().await.unwrap().unwrap().is_data());
    }
    revoker.revoke_token(&token).await.unwrap();
    let ended = tokio::time::timeout(ENDS_WITHIN, read_to_the_end(body))
        .await
        .expect("the body ended after the logout");
    assert!(
        ended.is_err(),
        "an incomplete body, not a complete one: {ended:?}"
    );
    // No message framing can say "incomplete" on HTTP/1: the server closed the connection.
    let closed = tokio::time::timeout(ENDS_WITHIN, connection).await;
    assert!(closed.is_ok(), "the connection closed");
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_http2_a_revoked_body_resets_its_stream_and_the_connection_serves_on() {
    let (addr, revoker, server) = serve().await;
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    let connection = tokio::spawn(connection);

    let (revoked, other) = (mint(&claims("alice")), mint(&claims("bob")));
    let response = sender.send_request(get_stream(&revoked)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let bystander = sender.send_request(get_stream(&other)).await.unwrap();
    let mut bystander = bystander.into_body();
    for _ in 0..3 {
        assert!(body.frame().await.unwrap().unwrap().is_data());
    }
    revoker.revoke_token(&revoked).await.unwrap();
    let ended = tokio::time::timeout(ENDS_WITHIN, read_to_the_end(body))
        .await
        .expect("the body ended after the logout");
    let error = ended.expect_err("an incomplete body, not a complete one");
    assert!(
        format!("{error:?}").contains("Reset") || error.to_string().contains("reset"),
        "the stream was reset: {error:?}"
    );
    // The other stream on the same connection goes on, and new requests are served.
    for _ in 0..3 {
        assert!(bystander.frame().await.unwrap().unwrap().is_data());
    }
    let again = sender.send_request(get_stream(&other)).await.unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    assert!(!connection.is_finished(), "the connection is still open");
    server.abort();
}
