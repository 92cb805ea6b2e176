//! The Redis store through Redis Sentinel, against real servers: a master, a replica and
//! three Sentinels (see tests/support/sentinel.rs), and a failover under load.

mod common;
mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use http::{Request, StatusCode, header};
use serde_json::json;
use tower::ServiceExt;
use tower_jwt_revoke::store::{Acknowledgement, MirrorStore, RedisStore};
use tower_jwt_revoke::{RevocationLayer, RevokeError, Revoker};

fn verifier() -> tower_jwt_revoke::JwtVerifier {
    common::verifier(0)
}

fn token(n: usize) -> String {
    common::mint(&common::claims_with(
        &format!("user-{n}"),
        json!({ "jti": format!("jti-{n}") }),
    ))
}

type App = tower::util::BoxCloneSyncService<Request<Body>, http::Response<Body>, std::convert::Infallible>;

fn app(layer: RevocationLayer) -> App {
    tower::util::BoxCloneSyncService::new(
        tower::ServiceBuilder::new()
            .layer(layer)
            .service_fn(|_request: Request<Body>| async { Ok(http::Response::new(Body::from("ok"))) }),
    )
}

async fn status(app: &App, token: &str) -> StatusCode {
    let request = Request::get("/")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), app.clone().oneshot(request))
        .await
        .expect("no request may hang beyond the timeouts")
        .unwrap()
        .status()
}

/// What the load saw, per token: each status it got, with when its request was sent.
#[derive(Default)]
struct Seen {
    statuses: HashMap<usize, Vec<(Instant, StatusCode)>>,
}

/// Under a steady stream of requests and revocations, the master is killed: the
/// Sentinels promote the replica, the store follows it without a restart, every
/// revocation acknowledged by a replica (`WAIT 1`) before the kill is still refused
/// after it, and no request got a 5xx other than 503.
async fn follows_a_failover(mirrored: bool) {
    let mut deployment = sentinels_or_skip!();
    let redis = deployment
        .builder(&support::unique_prefix())
        .acknowledge(Acknowledgement::replicas(1).with_timeout(Duration::from_secs(1)))
        .build()
        .unwrap();
    let layer = if mirrored {
        let mirror = MirrorStore::start(redis);
        mirror.wait_until_synced(Duration::from_secs(10)).await.unwrap();
        RevocationLayer::new(verifier(), mirror)
    } else {
        RevocationLayer::new(verifier(), redis)
    };
    let revoker: Revoker = layer.revoker();
    let app = app(layer);

    // Revocations of tokens 0, 2, 4...: acknowledged ones noted with when they were.
    let acknowledged: Arc<Mutex<Vec<(usize, Instant)>>> = Arc::default();
    let seen: Arc<Mutex<Seen>> = Arc::default();
    // Told once, and seen by every task whether it waits at that moment or not.
    let (stop_load, stopped) = tokio::sync::watch::channel(false);
    let writer = {
        let (acknowledged, revoker, mut stopped) = (acknowledged.clone(), revoker.clone(), stopped.clone());
        tokio::spawn(async move {
            for n in (0..).step_by(2) {
                let revoked = token(n);
                let wrote = tokio::select! {
                    wrote = revoker.revoke_token(&revoked) => wrote,
                    _ = stopped.wait_for(|stop| *stop) => return,
                };
                match wrote {
                    Ok(_) => acknowledged.lock().unwrap().push((n, Instant::now())),
                    // Applied but not confirmed, or not applied: neither is promised.
                    Err(RevokeError::Unacknowledged(_) | RevokeError::Store(_)) => {}
                    Err(other) => panic!("unexpected revocation error: {other}"),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let readers: Vec<_> = (0..4)
        .map(|reader| {
            let (app, seen, mut stopped) = (app.clone(), seen.clone(), stopped.clone());
            tokio::spawn(async move {
                for round in 0.. {
                    // Tokens revoked lately, and ones never revoked (odd numbers).
                    let n = (round * 7 + reader) % 400;
                    // When the request was sent: a revocation acknowledged after that
                    // may still let it in.
                    let (sent, asked) = (Instant::now(), token(n));
                    let got = tokio::select! {
                        got = status(&app, &asked) => got,
                        _ = stopped.wait_for(|stop| *stop) => return,
                    };
                    seen.lock()
                        .unwrap()
                        .statuses
                        .entry(n)
                        .or_default()
                        .push((sent, got));
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_secs(2)).await;
    let before_kill = acknowledged.lock().unwrap().len();
    assert!(
        before_kill > 10,
        "revocations were acknowledged before the kill ({before_kill})"
    );
    let failover =
        tokio::task::block_in_place(|| deployment.kill_master_and_wait_for_failover(Duration::from_secs(30)));
    let killed_at = Instant::now() - failover;

    // The application follows by itself: a token never revoked is let in again.
    let followed = Instant::now();
    let mut first_served = None;
    while followed.elapsed() < Duration::from_secs(20) {
        if status(&app, &token(100_001)).await == StatusCode::OK {
            first_served = Some(Instant::now());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let first_served = first_served.expect("the store did not follow the promoted replica within 20 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop_load.send_replace(true);
    for task in readers.into_iter().chain([writer]) {
        let _ = task.await;
    }

    let acknowledged_before: Vec<(usize, Instant)> = acknowledged
        .lock()
        .unwrap()
        .iter()
        .copied()
        .filter(|(_, at)| *at < killed_at)
        .collect();
    for (n, _) in &acknowledged_before {
        assert_eq!(
            status(&app, &token(*n)).await,
            StatusCode::UNAUTHORIZED,
            "token {n}, revoked with WAIT 1 before the kill, is let in after the failover"
        );
    }
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let (mut unavailable, mut after_served) = (0, 0);
    let mut first_503 = Duration::MAX;
    let mut total = 0;
    for (n, statuses) in &seen.statuses {
        let revoked_at = acknowledged_before
            .iter()
            .find(|(acked, _)| acked == n)
            .map(|(_, at)| *at);
        for (at, got) in statuses {
            total += 1;
            assert!(
                !got.is_server_error() || *got == StatusCode::SERVICE_UNAVAILABLE,
                "token {n} got {got}: the only 5xx a store failure may cause is 503"
            );
            if *got == StatusCode::SERVICE_UNAVAILABLE {
                unavailable += 1;
                after_served += usize::from(*at > first_served);
                first_503 = first_503.min(at.saturating_duration_since(killed_at));
            }
            if n % 2 == 1 {
                assert_ne!(
                    *got,
                    StatusCode::UNAUTHORIZED,
                    "token {n}, never revoked, was refused"
                );
            }
            if revoked_at.is_some_and(|revoked| *at > revoked) {
                assert_ne!(
                    *got,
                    StatusCode::OK,
                    "token {n} let in after its acknowledged revocation"
                );
            }
        }
    }
    eprintln!(
        "first 503 {first_503:?} after the kill; failover (kill to promotion seen): {failover:?}; kill to first request served: {:?}; \
         {unavailable} of {total} requests answered 503 ({after_served} sent after the first served); \
         {} revocations acknowledged before the kill",
        first_served - killed_at,
        acknowledged_before.len()
    );

    // Revocations go on through the promoted master (which has no replica now: applied,
    // but unacknowledged).
    // A loaded machine may time a connection out while the pool drops the ones to the
    // dead master: a logout handler answers 503 then, and the client tries again.
    let late = token(100_003);
    let mut tries = 0;
    loop {
        match revoker.revoke_token(&late).await {
            Ok(_) | Err(RevokeError::Unacknowledged(_)) => break,
            Err(RevokeError::Store(error)) if tries < 10 => {
                eprintln!("a revocation after the failover failed ({error}); trying again");
                tries += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(other) => panic!("a revocation after the failover failed: {other}"),
        }
    }
    assert_eq!(status(&app, &late).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_store_follows_a_sentinel_failover_and_keeps_every_acknowledged_revocation() {
    follows_a_failover(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mirror_follows_a_sentinel_failover_and_keeps_every_acknowledged_revocation() {
    follows_a_failover(true).await;
}

/// The store through Sentinel is the same store: built without waiting for Redis,
/// writes and reads on the master the Sentinels name.
#[tokio::test]
async fn a_store_through_sentinel_writes_to_the_master() {
    let deployment = sentinels_or_skip!();
    let store: RedisStore = deployment.builder(&support::unique_prefix()).build().unwrap();
    let layer = RevocationLayer::new(verifier(), store);
    let revoker = layer.revoker();
    let app = app(layer);
    let revoked = token(1);
    assert_eq!(status(&app, &revoked).await, StatusCode::OK);
    revoker.revoke_token(&revoked).await.unwrap();
    assert_eq!(status(&app, &revoked).await, StatusCode::UNAUTHORIZED);
    let keys: u64 = redis::cmd("DBSIZE")
        .query(&mut deployment.data.master.client().get_connection().unwrap())
        .unwrap();
    assert!(keys > 0, "the revocation is on the master");
}
