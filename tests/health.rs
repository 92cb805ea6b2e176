//! Readiness for probes: 200 while the store can answer checks, 503 with the reason
//! when it cannot, as JSON that names no key, token or subject. Redis cases run against
//! a real private redis-server (tests/support).
#![cfg(feature = "redis")]

mod support;

use std::sync::Arc;
use std::time::Duration;

use http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;
use tower_jwt_revoke::health::Readiness;
use tower_jwt_revoke::store::{InMemoryStore, MirrorStore, RedisStore, RevocationStore};

async fn probe(store: Arc<dyn RevocationStore>) -> (StatusCode, Value) {
    let response = Readiness::new(store)
        .with_timeout(Duration::from_secs(3))
        .oneshot(Request::get("/ready").body(()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.headers()["cache-control"], "no-store");
    (response.status(), serde_json::from_str(response.body()).unwrap())
}

#[tokio::test]
async fn an_in_memory_store_is_always_ready() {
    let (status, body) = probe(Arc::new(InMemoryStore::new())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({ "store": "memory", "ready": true, "entries": 0 }));
}

#[tokio::test]
async fn an_unreachable_redis_is_not_ready() {
    // Nothing listens on port 1.
    let store = RedisStore::builder()
        .url("redis://127.0.0.1:1")
        .connect_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let (status, body) = probe(Arc::new(store)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["store"], "redis");
    assert_eq!(body["ready"], false);
    assert_eq!(body["reachable"], false);
    assert!(
        body["detail"].as_str().is_some_and(|detail| !detail.is_empty()),
        "{body}"
    );
}

#[tokio::test]
async fn redis_and_its_mirror_report_their_state_and_notice_an_outage() {
    let Some(mut server) = support::RedisServer::start_private(false) else {
        return;
    };
    let prefix = support::unique_prefix();
    let (status, body) = probe(Arc::new(server.store(&prefix))).await;
    assert_eq!(
        (status, &body["reachable"]),
        (StatusCode::OK, &json!(true)),
        "{body}"
    );

    let mirror = MirrorStore::builder(server.store(&prefix))
        .staleness_bound(Duration::from_millis(500))
        .start();
    mirror.wait_until_synced(Duration::from_secs(10)).await.unwrap();
    let (status, body) = probe(Arc::new(mirror.clone())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["store"], "mirror");
    assert_eq!(body["in_sync"], true);
    assert!(body["lag_ms"].as_u64().is_some(), "{body}");

    server.kill();
    // Once the mirror is stale and Redis silent, checks would fail: not ready.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = probe(Arc::new(mirror.clone())).await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(body["reachable"], false, "{body}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still ready 10 s after Redis died: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
