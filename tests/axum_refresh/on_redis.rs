//! `axum_logout`'s refresh tokens on Redis: two replicas on one server (one through a
//! mirror) and on a cluster, a refresh on one and the reuse on the other; Redis stopped
//! mid-test.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http::header::CONTENT_TYPE;
use http::{Request, StatusCode};
use serde_json::json;
use tower_jwt_revoke::store::MirrorStore;

use super::support::{self, RedisServer, unique_prefix};
use super::{app, axum_logout, body_json, login, me, pair_of, refresh, reuse_flow, send};

#[tokio::test]
async fn two_replicas_on_redis_a_refresh_on_one_the_reuse_on_the_other() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let redis = server.store(&unique_prefix());
    let mirror = MirrorStore::start(redis.clone());
    mirror.wait_until_synced(Duration::from_secs(10)).await.unwrap();
    let one = app(Arc::new(redis.clone()), Arc::new(redis), true);
    let two = app(Arc::new(mirror.clone()), Arc::new(mirror), true);
    reuse_flow(&one, &two).await;
    reuse_flow(&two, &one).await;
}

/// Redis stopped mid-test (SIGSTOP to its pid): `POST /refresh` and `POST /login`
/// answer 503 with `Retry-After`, never 401; once it runs again, so does the app.
#[tokio::test]
async fn a_store_that_fails_is_a_503_with_retry_after_never_a_401() {
    let Some(server) = RedisServer::start_private(false) else {
        return;
    };
    let redis = server.store(&unique_prefix());
    let app = app(Arc::new(redis.clone()), Arc::new(redis), true);
    let before = login(&app, "alice").await;
    let pid = server.pid().expect("the test's own redis-server");

    support::signal(pid, "STOP");
    let response = refresh(&app, &before.refresh).await;
    let login_response = {
        let body = json!({"username": "alice", "password": "password"}).to_string();
        let request = Request::post("/login")
            .header(CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .unwrap();
        send(app.clone(), request).await
    };
    support::signal(pid, "CONT");

    for response in [response, login_response] {
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let retry_after = response.headers().get(http::header::RETRY_AFTER).cloned();
        assert!(
            retry_after
                .and_then(|value| value.to_str().ok()?.parse::<u64>().ok())
                .is_some_and(|secs| secs >= 1),
            "Retry-After in seconds"
        );
        assert!(body_json(response).await["error"].is_string());
    }

    // Running again: the app answers again. (Whether the rotation sent during the
    // outage ran is not known to the client; presenting that token again is answered,
    // 200 or a 401 reuse, never a 5xx.)
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let after = loop {
        let body = json!({"username": "alice", "password": "password"}).to_string();
        let request = Request::post("/login")
            .header(CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .unwrap();
        let response = send(app.clone(), request).await;
        if response.status() == StatusCode::OK || tokio::time::Instant::now() > deadline {
            break pair_of(response).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let renewed = pair_of(refresh(&app, &after.refresh).await).await;
    assert_eq!(me(&app, &renewed.access).await, StatusCode::OK);
    let again = refresh(&app, &before.refresh).await.status();
    assert!(
        again == StatusCode::OK || again == StatusCode::UNAUTHORIZED,
        "{again}"
    );
}

/// Two replicas of the example on a Redis Cluster, as `REDIS_CLUSTER_NODES` (one with
/// `REVOCATION_MIRROR=1`) configures them: a refresh on one, the reuse on the other.
#[tokio::test]
async fn two_replicas_on_a_redis_cluster_a_refresh_on_one_the_reuse_on_the_other() {
    let Some(cluster) = support::cluster::RedisCluster::start() else {
        return;
    };
    let replica = async |mirror: &str| {
        let env = |name: &str| match name {
            "REDIS_CLUSTER_NODES" => Some(cluster.seeds_env()),
            "REVOCATION_MIRROR" => Some(mirror.to_owned()),
            _ => None,
        };
        let (store, families) = axum_logout::stores_from_env(env).await.unwrap();
        app(store, families, true)
    };
    let one = replica("0").await;
    let two = replica("1").await;
    reuse_flow(&one, &two).await;
    reuse_flow(&two, &one).await;
    let errors = cluster.crossslot_errors();
    assert!(errors.is_empty(), "CROSSSLOT seen: {errors:?}");
}
