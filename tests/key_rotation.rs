//! A provider's key rotation as clients see it, with keys from a loopback JWKS the
//! test controls (tests/common/provider.rs).
//!
//! A token naming a `kid` the keys lack, while the unknown-`kid` rate limit allows no
//! fetch, is a 503 with the `Retry-After` of the fetch then made by itself (on the
//! layer, the back-channel logout receiver, the RFC 7009 endpoint, and `revoke_token`),
//! never a 401 nor a 400 nor a 200 that recorded nothing; retried after it, the token
//! is accepted. Keys older than the maximum key age are withdrawn (503).
#![cfg(all(feature = "jwks", feature = "endpoints"))]

mod common;
#[path = "common/provider.rs"]
mod provider;
#[path = "common/test_key.rs"]
mod test_key;

use std::future::Future;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Request, Response, StatusCode};
use serde_json::{Value, json};
use tower::Layer;
use tower_jwt_revoke::endpoints::{BACKCHANNEL_LOGOUT_EVENT, BackChannelLogout, TokenRevocation, basic_auth};
use tower_jwt_revoke::jwks::Jwks;
use tower_jwt_revoke::store::InMemoryStore;
use tower_jwt_revoke::{JwtVerifier, KeyRing, Rejection, RevocationLayer, RevokeError, VerifyError};

use common::{AUDIENCE, ISSUER, bearer, claims_with, echo, now, send};
use provider::Provider;
use test_key::{TestKey, jwk_set};

const JWKS: &str = "/jwks";
/// The unknown-`kid` interval of these tests: `Retry-After` counts whole seconds.
const INTERVAL: Duration = Duration::from_secs(2);
/// How long a test waits for something that should happen within a few seconds.
const DEADLINE: Duration = Duration::from_secs(15);
const CLIENT: (&str, &str) = ("web", "web secret");

/// The provider publishes `old`; the keys are fetched once, at build.
struct Rotation {
    provider: Provider,
    jwks: Jwks,
    old: TestKey,
    new: TestKey,
}

impl Rotation {
    async fn start() -> Self {
        let (old, new) = (TestKey::rsa(), TestKey::ec());
        let provider = Provider::start().await;
        provider.serve(JWKS, &jwk_set(&[old.jwk("old")]));
        let jwks = Jwks::builder(provider.url(JWKS))
            .refresh_interval(Duration::from_secs(3600))
            .unknown_kid_interval(INTERVAL)
            .build()
            .await
            .unwrap();
        Self {
            provider,
            jwks,
            old,
            new,
        }
    }

    fn ring(&self) -> KeyRing {
        self.jwks.key_ring()
    }

    /// The provider rotates `new` in, beside `old`.
    fn rotate(&self) {
        self.provider
            .serve(JWKS, &jwk_set(&[self.old.jwk("old"), self.new.jwk("new")]));
    }

    fn fetches(&self) -> usize {
        self.provider.hits(JWKS)
    }

    /// Waits, sending nothing, until the keys hold the new key: the fetch a 503
    /// promised is made by itself.
    async fn new_key_fetched_by_itself(&self) {
        eventually("the keys are fetched again without another request", || async {
            self.ring().current().is_some_and(|keys| keys.contains_kid("new"))
        })
        .await;
    }
}

/// A layer for tokens of the common test issuer, with `ring`.
fn layer(ring: KeyRing) -> RevocationLayer {
    let verifier = JwtVerifier::builder()
        .key_ring(ring)
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .build()
        .unwrap();
    RevocationLayer::new(verifier, InMemoryStore::new())
}

/// A made-up `kid`.
fn random_kid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The whole seconds of a 503's `Retry-After`, checked to be within the interval.
fn retry_after<B: std::fmt::Debug>(response: &Response<B>) -> Duration {
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{response:?}");
    let secs: u64 = response.headers()[RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!((1..=INTERVAL.as_secs()).contains(&secs), "Retry-After: {secs}");
    Duration::from_secs(secs)
}

async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while !condition().await {
        assert!(start.elapsed() < DEADLINE, "not within {DEADLINE:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_kid_within_the_rate_limit_is_a_503_then_accepted_after_its_retry_after() {
    let rotation = Rotation::start().await;
    let layer = layer(rotation.ring());
    let status = |token: String| {
        let service = layer.layer(echo());
        async move { send(service, bearer(&token)).await }
    };

    // A made-up kid causes a fetch; missing from keys fetched after it arrived, it is
    // an invalid token.
    let made_up = status(rotation.old.token(&random_kid())).await;
    assert_eq!(made_up.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(rotation.fetches(), 2);

    // The provider rotates its key within the interval: the new key's first token is
    // a 503 (the client keeps its token), not a 401.
    rotation.rotate();
    let asked = Instant::now();
    let first = status(rotation.new.token("new")).await;
    let wait = retry_after(&first);
    assert!(first.headers().get(WWW_AUTHENTICATE).is_none());
    assert!(
        matches!(
            common::rejection(&first),
            Some(Rejection::InvalidToken(VerifyError::KeyRefreshPending { .. }))
        ),
        "{:?}",
        common::rejection(&first)
    );
    // Made-up kids meanwhile cause no fetch, and known kids verify as ever.
    for _ in 0..50 {
        let response = status(rotation.old.token(&random_kid())).await;
        retry_after(&response);
        assert_eq!(status(rotation.old.token("old")).await.status(), StatusCode::OK);
    }
    assert_eq!(rotation.fetches(), 2, "no fetch within the interval");

    rotation.new_key_fetched_by_itself().await;
    assert_eq!(rotation.fetches(), 3, "one fetch, when the interval allowed");
    tokio::time::sleep(wait.saturating_sub(asked.elapsed())).await;
    assert_eq!(status(rotation.new.token("new")).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn revoke_token_of_a_new_kid_within_the_rate_limit_is_a_503_to_retry() {
    let rotation = Rotation::start().await;
    let layer = layer(rotation.ring());
    let revoker = layer.revoker();
    let made_up = revoker.revoke_token(&rotation.old.token(&random_kid())).await;
    assert!(
        matches!(made_up, Err(RevokeError::InvalidToken(VerifyError::UnknownKey))),
        "{made_up:?}"
    );

    rotation.rotate();
    let token = rotation.new.token("new");
    let error = revoker.revoke_token(&token).await.unwrap_err();
    assert_eq!(error.status(), StatusCode::SERVICE_UNAVAILABLE, "{error:?}");
    assert!(error.retry_after().is_some_and(|wait| wait <= INTERVAL));

    rotation.new_key_fetched_by_itself().await;
    revoker.revoke_token(&token).await.unwrap();
    assert_eq!(
        send(layer.layer(echo()), bearer(&token)).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

/// A logout token for `sub`, as the provider signs it, naming `kid`.
fn logout_token(key: &TestKey, kid: &str, sub: &str) -> String {
    let now = now();
    key.sign(
        kid,
        &json!({
            "iss": ISSUER,
            "aud": "web",
            "iat": now,
            "exp": now + 120,
            "jti": random_kid(),
            "sub": sub,
            "events": { BACKCHANNEL_LOGOUT_EVENT: {} },
        }),
    )
}

fn delivery(logout_token: &str) -> Request<String> {
    Request::post("/backchannel-logout")
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("logout_token={logout_token}"))
        .unwrap()
}

// The logout of a provider that just rotated its key must not be lost: a 400 would
// make the provider give up. 503 with Retry-After, and the retry logs the user out.
#[tokio::test]
async fn a_logout_token_of_a_new_kid_within_the_rate_limit_is_a_503_and_its_retry_logs_out() {
    let rotation = Rotation::start().await;
    let layer = layer(rotation.ring());
    let logout_verifier = JwtVerifier::builder()
        .key_ring(rotation.ring())
        .issuer(ISSUER)
        .audience("web")
        .build()
        .unwrap();
    let receiver = BackChannelLogout::builder(logout_verifier, layer.revoker())
        .build()
        .unwrap();
    let access = rotation.old.token("old");
    assert_eq!(
        send(layer.layer(echo()), bearer(&access)).await.status(),
        StatusCode::OK
    );

    let made_up = send(
        receiver.clone(),
        delivery(&logout_token(&rotation.old, &random_kid(), "alice")),
    )
    .await;
    assert_eq!(made_up.status(), StatusCode::BAD_REQUEST, "{made_up:?}");

    rotation.rotate();
    let logout = logout_token(&rotation.new, "new", "alice");
    let first = send(receiver.clone(), delivery(&logout)).await;
    retry_after(&first);
    assert_eq!(
        send(layer.layer(echo()), bearer(&access)).await.status(),
        StatusCode::OK,
        "nothing recorded yet"
    );

    rotation.new_key_fetched_by_itself().await;
    let retried = send(receiver, delivery(&logout)).await;
    assert_eq!(retried.status(), StatusCode::OK, "{retried:?}");
    assert_eq!(
        send(layer.layer(echo()), bearer(&access)).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

fn revocation_request(token: &str) -> Request<String> {
    let (id, secret) = CLIENT;
    Request::post("/oauth/revoke")
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(
            AUTHORIZATION,
            format!("Basic {}", STANDARD.encode(format!("{id}:{secret}"))),
        )
        .body(format!("token={token}"))
        .unwrap()
}

// RFC 7009 §2.2.1: a 503 tells the client the token still works. A 200 here, with
// nothing recorded, would let the "revoked" token in once the new key arrives.
#[tokio::test]
async fn an_rfc_7009_revocation_of_a_new_kid_within_the_rate_limit_is_a_503_not_a_200() {
    let rotation = Rotation::start().await;
    let layer = layer(rotation.ring());
    let endpoint = TokenRevocation::builder(layer.revoker(), basic_auth(CLIENT.0, CLIENT.1))
        .build()
        .expect("one issuer: the clients' authorization server is the verifier's");
    let for_client =
        |key: &TestKey, kid: &str| key.sign(kid, &claims_with("alice", json!({ "client_id": "web" })));

    let made_up = send(
        endpoint.clone(),
        revocation_request(&for_client(&rotation.old, &random_kid())),
    )
    .await;
    assert_eq!(
        made_up.status(),
        StatusCode::OK,
        "RFC 7009 §2.2: an invalid token is a 200"
    );

    rotation.rotate();
    let token = for_client(&rotation.new, "new");
    let first = send(endpoint.clone(), revocation_request(&token)).await;
    retry_after(&first);
    let body: Value = serde_json::from_str(first.body()).unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");

    rotation.new_key_fetched_by_itself().await;
    assert_eq!(
        send(layer.layer(echo()), bearer(&token)).await.status(),
        StatusCode::OK,
        "not revoked by the 503"
    );
    let retried = send(endpoint, revocation_request(&token)).await;
    assert_eq!(retried.status(), StatusCode::OK);
    assert_eq!(
        send(layer.layer(echo()), bearer(&token)).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

// With a maximum key age, keys the provider may have withdrawn are not trusted for
// longer than that after the last successful fetch: 503 until a fetch succeeds.
#[tokio::test]
async fn keys_older_than_the_maximum_age_are_withdrawn_until_a_fetch_succeeds() {
    let key = TestKey::ec();
    let provider = Provider::start().await;
    provider.serve(JWKS, &jwk_set(&[key.jwk("k")]));
    let max_age = Duration::from_secs(2);
    let jwks = Jwks::builder(provider.url(JWKS))
        .refresh_interval(Duration::from_millis(200))
        .retry_backoff(Duration::from_millis(100), Duration::from_millis(200))
        .unknown_kid_interval(Duration::from_millis(200))
        .max_key_age(max_age)
        .build()
        .await
        .unwrap();
    let layer = layer(jwks.key_ring());
    let status = || async { send(layer.layer(echo()), bearer(&key.token("k"))).await };
    assert_eq!(status().await.status(), StatusCode::OK);

    // Refreshed in time, the keys stay however long the service runs.
    tokio::time::sleep(max_age + Duration::from_millis(500)).await;
    assert_eq!(status().await.status(), StatusCode::OK);
    assert!(!jwks.health().expired);

    provider.set_down(true);
    let down = Instant::now();
    assert_eq!(
        status().await.status(),
        StatusCode::OK,
        "the last good keys, for now"
    );
    eventually("the keys are withdrawn", || async {
        status().await.status() == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    assert!(
        down.elapsed() <= max_age + Duration::from_secs(1),
        "{:?}",
        down.elapsed()
    );
    let refused = status().await;
    assert!(refused.headers().contains_key(RETRY_AFTER));
    assert!(refused.headers().get(WWW_AUTHENTICATE).is_none());
    let health = jwks.health();
    assert!(health.expired && !health.is_current(), "{health:?}");

    provider.set_down(false);
    eventually("tokens are accepted once a fetch succeeds", || async {
        status().await.status() == StatusCode::OK
    })
    .await;
    let health = jwks.health();
    assert!(!health.expired && health.is_current(), "{health:?}");
}
