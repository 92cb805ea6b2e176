//! `VerifiedToken::revoked`: the future an open stream awaits, on every store. The
//! memory store and two mirrors on one real redis-server wake it as the revocation is
//! applied; the plain Redis store is polled at the layer's watch interval.

mod common;
mod support;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Request, Response};
use serde_json::json;
use tower::Service;
use tower_jwt_revoke::store::{InMemoryStore, MirrorStore, RevocationStore, RevokedBy};
use tower_jwt_revoke::{Refusal, RevocationLayer, Revoker, VerifiedToken};

use common::{claims, claims_with, mint, verifier};

/// What a test allows for a future that should resolve at once to resolve, on a busy
/// machine: generous, but far below the watch interval or any expiry in these tests.
const AT_ONCE: Duration = Duration::from_secs(2);

/// The token the layer lets through for `token`, as a handler receives it.
async fn through(layer: &RevocationLayer, token: &str) -> VerifiedToken {
    let service = layer.clone().layer_service();
    let response = common::send(service, common::bearer(token)).await;
    response
        .extensions()
        .get::<VerifiedToken>()
        .cloned()
        .expect("the layer let the token through")
}

trait LayerService {
    fn layer_service(
        self,
    ) -> impl Service<Request<String>, Response = Response<String>, Error = Infallible, Future: Send> + Clone;
}

impl LayerService for RevocationLayer {
    /// An inner service that hands the verified token back in the response extensions.
    fn layer_service(
        self,
    ) -> impl Service<Request<String>, Response = Response<String>, Error = Infallible, Future: Send> + Clone
    {
        tower::ServiceBuilder::new()
            .layer(self)
            .service_fn(|request: Request<String>| async move {
                let mut response = Response::new(String::new());
                if let Some(token) = request.extensions().get::<VerifiedToken>() {
                    response.extensions_mut().insert(token.clone());
                }
                Ok::<_, Infallible>(response)
            })
    }
}

/// Waits for `revoked` at most `limit`, and says what it resolved with and when.
async fn within(revoked: tower_jwt_revoke::Revoked, limit: Duration) -> (Refusal, Duration) {
    let started = Instant::now();
    let refusal = tokio::time::timeout(limit, revoked)
        .await
        .unwrap_or_else(|_| panic!("not refused within {limit:?}"));
    (refusal, started.elapsed())
}

/// The future has not resolved after `wait`.
async fn still_open(revoked: &mut tower_jwt_revoke::Revoked, wait: Duration) {
    assert!(
        tokio::time::timeout(wait, revoked).await.is_err(),
        "refused although nothing refuses it"
    );
}

/// Every kind of revocation wakes the future; unrelated ones do not.
async fn every_scope(layer: RevocationLayer, revoker: Revoker, bound: Duration) {
    // The token itself.
    let token = mint(&claims("alice"));
    let verified = through(&layer, &token).await;
    let mut revoked = verified.revoked();
    still_open(&mut revoked, Duration::from_millis(100)).await;
    let other = mint(&claims("alice"));
    revoker.revoke_token(&other).await.unwrap();
    still_open(&mut revoked, Duration::from_millis(100)).await;
    revoker.revoke_token(&token).await.unwrap();
    let (refusal, _) = within(revoked, bound).await;
    assert_eq!(refusal, Refusal::Revoked(RevokedBy::Token));

    // Its session.
    let token = mint(&claims_with("bob", json!({ "sid": "session-1" })));
    let revoked = through(&layer, &token).await.revoked();
    revoker
        .revoke_session_for(Some(common::ISSUER), "session-1")
        .await
        .unwrap();
    assert_eq!(
        within(revoked, bound).await.0,
        Refusal::Revoked(RevokedBy::Session)
    );

    // Its subject, everywhere.
    let token = mint(&claims("carol"));
    let revoked = through(&layer, &token).await.revoked();
    revoker
        .revoke_subject_for(Some(common::ISSUER), "carol")
        .await
        .unwrap();
    assert_eq!(
        within(revoked, bound).await.0,
        Refusal::Revoked(RevokedBy::Subject)
    );

    // Everything.
    let token = mint(&claims("dave"));
    let revoked = through(&layer, &token).await.revoked();
    revoker.revoke_all().await.unwrap();
    assert_eq!(within(revoked, bound).await.0, Refusal::Revoked(RevokedBy::All));
}

#[tokio::test]
async fn the_memory_store_wakes_every_scope_at_once() {
    let layer = RevocationLayer::new(verifier(0), InMemoryStore::new());
    assert_eq!(layer.watch_interval(), None, "the memory store wakes its waiters");
    let revoker = layer.revoker();
    every_scope(layer, revoker, AT_ONCE).await;
}

#[tokio::test]
async fn a_token_is_refused_at_exp_plus_leeway() {
    let layer = RevocationLayer::new(verifier(1), InMemoryStore::new());
    let now = common::now();
    let token = mint(&claims_with("erin", json!({ "iat": now, "exp": now + 1 })));
    let verified = through(&layer, &token).await;
    assert_eq!(verified.refused_from(), now + 3, "exp + leeway + 1");
    let (refusal, _) = within(verified.revoked(), Duration::from_secs(10)).await;
    assert_eq!(refusal, Refusal::Expired);
    assert!(common::now() >= now + 3, "not before the verifier refuses it");
    // The verifier agrees.
    assert!(layer.verifier().verify(&token).is_err());
}

#[tokio::test]
async fn a_token_verified_outside_the_layer_resolves_at_expiry_only() {
    let store = InMemoryStore::new();
    let layer = RevocationLayer::new(verifier(0), store.clone());
    let now = common::now();
    let token = mint(&claims_with("frank", json!({ "iat": now, "exp": now + 1 })));
    let verified = layer.verifier().verify(&token).unwrap();
    let mut revoked = verified.revoked();
    layer.revoker().revoke_token(&token).await.unwrap();
    // Not watched: the revocation does not reach it...
    if common::now() < now + 1 {
        still_open(&mut revoked, Duration::from_millis(50)).await;
    }
    // ...its expiry does.
    assert_eq!(within(revoked, Duration::from_secs(10)).await.0, Refusal::Expired);
    // Watched through the layer, the revocation does.
    let token = mint(&claims("frank"));
    let verified = layer.watched(layer.verifier().verify(&token).unwrap());
    layer.revoker().revoke_token(&token).await.unwrap();
    assert_eq!(
        within(verified.revoked(), AT_ONCE).await.0,
        Refusal::Revoked(RevokedBy::Token)
    );
}

#[tokio::test]
async fn a_revocation_between_the_check_and_the_first_poll_is_not_missed() {
    let layer = RevocationLayer::new(verifier(0), InMemoryStore::new());
    let token = mint(&claims("grace"));
    let verified = through(&layer, &token).await;
    let revoked = verified.revoked(); // made, not polled yet
    layer.revoker().revoke_token(&token).await.unwrap();
    assert_eq!(
        within(revoked, AT_ONCE).await.0,
        Refusal::Revoked(RevokedBy::Token)
    );
}

#[tokio::test]
async fn dropped_futures_leave_the_registry() {
    let store = InMemoryStore::new();
    let layer = RevocationLayer::new(verifier(0), store.clone());
    let watchers = store.watchers().expect("the memory store has waiters");
    let mut open = Vec::new();
    for n in 0..100 {
        let mut revoked = through(&layer, &mint(&claims(&format!("user-{n}"))))
            .await
            .revoked();
        still_open(&mut revoked, Duration::from_millis(1)).await;
        open.push(revoked);
    }
    assert_eq!(watchers.len(), 100);
    open.truncate(10);
    assert_eq!(watchers.len(), 10);
    drop(open);
    assert!(watchers.is_empty());
}

#[tokio::test]
async fn two_mirrors_wake_each_others_streams() {
    let Some(server) = support::RedisServer::start() else {
        return;
    };
    let prefix = format!("revoked-{}", uuid::Uuid::new_v4());
    let a = MirrorStore::builder(server.store(&prefix)).start();
    let b = MirrorStore::builder(server.store(&prefix)).start();
    for mirror in [&a, &b] {
        mirror.wait_until_synced(Duration::from_secs(10)).await.unwrap();
    }
    let layer_a = RevocationLayer::new(verifier(0), a);
    let layer_b = RevocationLayer::new(verifier(0), b);
    assert_eq!(layer_b.watch_interval(), None, "a mirror wakes its waiters");
    // The delay from the write on A to the end of the stream on B.
    let mut delays = Vec::new();
    for _ in 0..5 {
        let token = mint(&claims("heidi"));
        let mut revoked = through(&layer_b, &token).await.revoked();
        still_open(&mut revoked, Duration::from_millis(10)).await;
        let started = Instant::now();
        layer_a.revoker().revoke_token(&token).await.unwrap();
        within(revoked, AT_ONCE).await;
        delays.push(started.elapsed());
    }
    delays.sort();
    eprintln!("mirror: revocation on A to stream end on B: {delays:?}");
    assert!(
        delays[2] < Duration::from_millis(100),
        "the median delay is under 100 ms: {delays:?}"
    );
    // Streams on replica B, revocations made on replica A (the global one last: it
    // refuses every token issued until now).
    every_scope(layer_b, layer_a.revoker(), AT_ONCE).await;
}

#[tokio::test]
async fn the_plain_redis_store_is_polled_at_the_watch_interval() {
    let Some(server) = support::RedisServer::start() else {
        return;
    };
    let prefix = format!("revoked-{}", uuid::Uuid::new_v4());
    let interval = Duration::from_millis(200);
    let store: Arc<dyn RevocationStore> = Arc::new(server.store(&prefix));
    let layer = RevocationLayer::new(verifier(0), Arc::clone(&store)).with_watch_interval(interval);
    assert_eq!(layer.watch_interval(), Some(interval));
    // Revocations written by another replica's store.
    let other = RevocationLayer::new(verifier(0), server.store(&prefix));

    let token = mint(&claims("ivan"));
    let mut revoked = through(&layer, &token).await.revoked();
    still_open(&mut revoked, interval * 3).await;
    let started = Instant::now();
    other.revoker().revoke_token(&token).await.unwrap();
    within(revoked, interval * 10).await;
    eprintln!(
        "redis, polled every {interval:?}: revocation to stream end: {:?}",
        started.elapsed()
    );
    every_scope(layer, other.revoker(), interval * 10).await;
}

#[tokio::test]
async fn one_batched_lookup_answers_many_queries_on_redis() {
    let Some(server) = support::RedisServer::start() else {
        return;
    };
    let prefix = format!("revoked-{}", uuid::Uuid::new_v4());
    let store = server.store(&prefix);
    let revoker = RevocationLayer::new(verifier(0), store.clone()).revoker();
    let tokens: Vec<String> = (0..1000)
        .map(|n| mint(&claims(&format!("u{}", n % 37))))
        .collect();
    let verified: Vec<VerifiedToken> = tokens.iter().map(|t| verifier(0).verify(t).unwrap()).collect();
    for token in tokens.iter().step_by(3) {
        revoker.revoke_token(token).await.unwrap();
    }
    let queries: Vec<_> = verified
        .iter()
        .map(tower_jwt_revoke::store::RevocationQuery::for_token)
        .collect();
    let batched = store.lookup_many(&queries).await.unwrap();
    assert_eq!(batched.len(), queries.len());
    for (query, lookup) in queries.iter().zip(&batched) {
        assert_eq!(
            *lookup,
            store.lookup(query).await.unwrap(),
            "as one check answers"
        );
    }
    assert_eq!(batched.iter().filter(|lookup| lookup.token_revoked).count(), 334);
}

#[tokio::test]
async fn unrelated_revocations_do_not_disturb_an_open_stream() {
    let store = InMemoryStore::new();
    let layer = RevocationLayer::new(verifier(0), store.clone());
    let revoker = layer.revoker();
    let token = mint(&claims_with("judy", json!({ "sid": "kept" })));
    let mut revoked = through(&layer, &token).await.revoked();
    still_open(&mut revoked, Duration::from_millis(1)).await;
    for n in 0..1000 {
        let other = mint(&claims(&format!("other-{n}")));
        revoker.revoke_token(&other).await.unwrap();
        revoker
            .revoke_subject_for(Some(common::ISSUER), &format!("other-{n}"))
            .await
            .unwrap();
    }
    revoker
        .revoke_session_for(Some(common::ISSUER), "another")
        .await
        .unwrap();
    still_open(&mut revoked, Duration::from_millis(50)).await;
}

#[allow(dead_code)]
fn assert_bounds() {
    fn send_unpin<T: Send + Unpin + 'static>() {}
    send_unpin::<tower_jwt_revoke::Revoked>();
}
