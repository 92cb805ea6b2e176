//! Keys from an identity provider: JWKS and OpenID Connect discovery documents served
//! by a loopback provider the test controls (tests/common/provider.rs), requests sent
//! through `RevocationLayer`.
//!
//! Intervals are configured short (a few hundred milliseconds) and waits are polls
//! with generous deadlines, so nothing depends on how fast the machine is.
#![cfg(feature = "jwks")]

mod common;
#[path = "common/provider.rs"]
mod provider;
#[path = "common/test_key.rs"]
mod test_key;

use std::future::Future;
use std::time::{Duration, Instant};

use http::StatusCode;
use http::header::RETRY_AFTER;
use serde_json::json;
use tokio::task::JoinSet;
use tower::Layer;
use tower_jwt_revoke::jwks::{Jwks, JwksError, OidcIssuer, StartMode};
use tower_jwt_revoke::store::InMemoryStore;
use tower_jwt_revoke::{JwtVerifier, KeyRing, RevocationLayer};

use common::{AUDIENCE, ISSUER, SECRET, bearer, claims_with, echo, send};
use provider::Provider;
use test_key::{TestKey, jwk_set};

const JWKS: &str = "/jwks";
/// How long a test waits for something that should happen within a second or two.
const DEADLINE: Duration = Duration::from_secs(10);

/// A layer verifying tokens of the common test issuer with `ring`.
fn layer(ring: KeyRing) -> RevocationLayer {
    let verifier = JwtVerifier::builder()
        .key_ring(ring)
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .build()
        .unwrap();
    RevocationLayer::new(verifier, InMemoryStore::new())
}

async fn status(layer: &RevocationLayer, token: &str) -> StatusCode {
    send(layer.layer(echo()), bearer(token)).await.status()
}

/// Polls `condition` until it holds, failing the test after [`DEADLINE`].
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

/// Keys of a JWKS without `Cache-Control`, refreshed only when asked (unless the test
/// says otherwise).
fn builder(provider: &Provider) -> tower_jwt_revoke::jwks::JwksBuilder {
    Jwks::builder(provider.url(JWKS)).refresh_interval(Duration::from_secs(3600))
}

#[tokio::test]
async fn a_rotated_key_is_accepted_on_first_sight_and_a_removed_one_refused() {
    let (old, new) = (TestKey::rsa(), TestKey::ec());
    let provider = Provider::start().await;
    provider.serve(JWKS, &jwk_set(&[old.jwk("old")]));
    let jwks = builder(&provider)
        .max_age_bounds(Duration::from_millis(200), Duration::from_secs(3600))
        .build()
        .await
        .unwrap();
    let layer = layer(jwks.key_ring());
    assert_eq!(status(&layer, &old.token("old")).await, StatusCode::OK);
    assert_eq!(provider.hits(JWKS), 1);

    // The provider publishes a new key; the first token naming it causes one fetch
    // and is accepted. That answer asks to be refetched soon (max-age=0, bounded).
    provider.serve_with(
        JWKS,
        &jwk_set(&[old.jwk("old"), new.jwk("new")]),
        Some("max-age=0"),
    );
    assert_eq!(status(&layer, &new.token("new")).await, StatusCode::OK);
    assert_eq!(provider.hits(JWKS), 2, "one fetch for the unknown kid");
    assert_eq!(status(&layer, &old.token("old")).await, StatusCode::OK);

    // The old key leaves the document: once refreshed in the background, its tokens
    // are refused, the new key's are not. (Tokens issued before the keys were
    // fetched: one signed since, with a kid they lack, could name a key published
    // since, and is a 503 until keys fetched after it say otherwise.)
    provider.serve(JWKS, &jwk_set(&[new.jwk("new")]));
    let issued_earlier = old.sign(
        "old",
        &claims_with("alice", json!({ "iat": common::now() - 120 })),
    );
    eventually("the old key's tokens are refused", || async {
        status(&layer, &issued_earlier).await == StatusCode::UNAUTHORIZED
    })
    .await;
    assert_eq!(status(&layer, &new.token("new")).await, StatusCode::OK);
    assert_eq!(jwks.health().key_count, 1);
}

// The first-sight path verifies inside the check (after the fetch): the handler must
// still see the token, and revoking it must still hold.
#[tokio::test]
async fn a_token_accepted_after_a_first_sight_fetch_reaches_the_handler_and_can_be_revoked() {
    let (old, new) = (TestKey::rsa(), TestKey::ec());
    let provider = Provider::start().await;
    provider.serve(JWKS, &jwk_set(&[old.jwk("old")]));
    let jwks = builder(&provider).build().await.unwrap();
    let layer = layer(jwks.key_ring());
    provider.serve(JWKS, &jwk_set(&[old.jwk("old"), new.jwk("new")]));

    let token = new.token("new");
    let response = send(layer.layer(echo()), bearer(&token)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_ne!(
        response.body(),
        common::ANONYMOUS,
        "the handler saw no verified token"
    );
    assert_eq!(provider.hits(JWKS), 2, "one fetch for the unknown kid");

    layer.revoker().revoke_token(&token).await.unwrap();
    assert_eq!(status(&layer, &token).await, StatusCode::UNAUTHORIZED);
}

/// Sends `count` tokens naming random `kid`s at once; every one is refused: 401 when
/// keys were fetched since it arrived, else 503 with a `Retry-After` of at most
/// `interval` (when the keys are fetched again).
async fn flood(layer: &RevocationLayer, key: &TestKey, count: usize, interval: Duration) {
    let mut requests = JoinSet::new();
    for _ in 0..count {
        let token = key.token(&uuid::Uuid::new_v4().to_string());
        let service = layer.layer(echo());
        requests.spawn(async move { send(service, bearer(&token)).await });
    }
    let most = interval.as_secs() + u64::from(interval.subsec_nanos() > 0);
    while let Some(response) = requests.join_next().await {
        let response = response.unwrap();
        match response.status() {
            StatusCode::UNAUTHORIZED => {}
            StatusCode::SERVICE_UNAVAILABLE => {
                let retry_after: u64 = response.headers()[RETRY_AFTER].to_str().unwrap().parse().unwrap();
                assert!(
                    (1..=most.max(1)).contains(&retry_after),
                    "Retry-After: {retry_after}"
                );
            }
            status => panic!("a made-up kid answered {status}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unknown_kids_fetches_at_most_once_per_interval() {
    let key = TestKey::ec();
    let provider = Provider::start().await;
    provider.serve(JWKS, &jwk_set(&[key.jwk("real")]));

    // The default interval, 10 s: hundreds of made-up kids, one fetch.
    let jwks = builder(&provider).build().await.unwrap();
    let layer = layer(jwks.key_ring());
    let start = Instant::now();
    flood(&layer, &key, 300, Duration::from_secs(10)).await;
    flood(&layer, &key, 300, Duration::from_secs(10)).await;
    let fetches = provider.hits(JWKS) - 1;
    let intervals = start.elapsed().as_secs() / 10 + 1;
    assert!(fetches >= 1, "an unknown kid causes a fetch");
    assert!(
        fetches as u64 <= intervals,
        "{fetches} fetches in {intervals} intervals"
    );
    assert_eq!(status(&layer, &key.token("real")).await, StatusCode::OK);

    // A short interval: each flood after the interval has passed fetches once more.
    let path = "/short";
    provider.serve(path, &jwk_set(&[key.jwk("real")]));
    let interval = Duration::from_millis(300);
    let jwks = Jwks::builder(provider.url(path))
        .refresh_interval(Duration::from_secs(3600))
        .unknown_kid_interval(interval)
        .build()
        .await
        .unwrap();
    let layer = self::layer(jwks.key_ring());
    let start = Instant::now();
    for _ in 0..3 {
        flood(&layer, &key, 200, interval).await;
        tokio::time::sleep(interval + Duration::from_millis(50)).await;
    }
    let fetches = provider.hits(path) - 1;
    let intervals = start.elapsed().as_millis() / interval.as_millis() + 1;
    assert!(fetches >= 3, "one fetch per flood: {fetches}");
    assert!(
        fetches as u128 <= intervals,
        "{fetches} fetches in {intervals} intervals"
    );
}

#[tokio::test]
async fn a_provider_down_at_start_fails_the_build_by_default() {
    // Nothing listens on a port just released.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/jwks", listener.local_addr().unwrap());
    drop(listener);
    let error = Jwks::builder(&url).build().await.unwrap_err();
    assert!(matches!(error, JwksError::Request { .. }), "{error:?}");
    assert!(
        error.to_string().contains(&url),
        "the message names the URL: {error}"
    );

    let provider = Provider::start().await;
    let error = Jwks::builder(provider.url("/missing")).build().await.unwrap_err();
    assert!(
        matches!(
            error,
            JwksError::Status {
                status: StatusCode::NOT_FOUND,
                ..
            }
        ),
        "{error:?}"
    );

    provider.set_down(true);
    let error = Jwks::builder(provider.url(JWKS)).build().await.unwrap_err();
    assert!(matches!(error, JwksError::Request { .. }), "{error:?}");
}

#[tokio::test]
async fn a_degraded_start_answers_503_until_the_provider_is_up() {
    let key = TestKey::ec();
    let provider = Provider::start().await;
    provider.serve(JWKS, &jwk_set(&[key.jwk("k")]));
    provider.set_down(true);
    let jwks = builder(&provider)
        .start_mode(StartMode::Degraded)
        .retry_backoff(Duration::from_millis(50), Duration::from_millis(200))
        .unknown_kid_interval(Duration::from_millis(200))
        .build()
        .await
        .unwrap();
    let layer = layer(jwks.key_ring());
    assert_eq!(
        status(&layer, &key.token("k")).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    eventually("failures are counted", || async {
        jwks.health().consecutive_failures >= 2
    })
    .await;
    let health = jwks.health();
    assert!(!health.loaded && health.key_count == 0, "{health:?}");
    assert!(
        health
            .last_error
            .is_some_and(|error| error.contains(&provider.url(JWKS)))
    );
    assert_eq!(
        status(&layer, &key.token("k")).await,
        StatusCode::SERVICE_UNAVAILABLE
    );

    provider.set_down(false);
    eventually("tokens are accepted once the provider is up", || async {
        status(&layer, &key.token("k")).await == StatusCode::OK
    })
    .await;
    let health = jwks.health();
    assert!(health.is_current() && health.key_count == 1, "{health:?}");
}

#[tokio::test]
async fn the_last_good_keys_stay_while_the_provider_is_down() {
    let key = TestKey::rsa();
    let provider = Provider::start().await;
    provider.serve(JWKS, &jwk_set(&[key.jwk("k")]));
    let jwks = Jwks::builder(provider.url(JWKS))
        .refresh_interval(Duration::from_millis(200))
        .retry_backoff(Duration::from_millis(50), Duration::from_millis(200))
        .build()
        .await
        .unwrap();
    let layer = layer(jwks.key_ring());
    assert_eq!(status(&layer, &key.token("k")).await, StatusCode::OK);

    provider.set_down(true);
    eventually("refreshes fail", || async {
        jwks.health().consecutive_failures >= 2
    })
    .await;
    assert_eq!(status(&layer, &key.token("k")).await, StatusCode::OK);
    let health = jwks.health();
    assert!(
        health.loaded && !health.is_current() && health.key_count == 1,
        "{health:?}"
    );
    assert!(
        health.last_success.is_some() && health.last_error.is_some(),
        "{health:?}"
    );

    // A document that is no JWK Set, or holds no usable key, counts as a failure too.
    provider.set_down(false);
    provider.serve_raw(JWKS, b"<html>maintenance</html>".to_vec(), None);
    let failures = jwks.health().consecutive_failures;
    eventually("a malformed document is a failure", || async {
        jwks.health().consecutive_failures > failures
    })
    .await;
    provider.serve(
        JWKS,
        &jwk_set(&[json!({ "kty": "RSA", "kid": "broken", "alg": "RS256", "n": "!", "e": "AQAB" })]),
    );
    let error = jwks.refresh().await.unwrap_err();
    assert!(
        matches!(error, JwksError::NoUsableKeys { skipped: 1, .. }),
        "{error:?}"
    );
    assert_eq!(status(&layer, &key.token("k")).await, StatusCode::OK);

    provider.serve(JWKS, &jwk_set(&[key.jwk("k")]));
    eventually("the source recovers", || async { jwks.health().is_current() }).await;
    assert_eq!(status(&layer, &key.token("k")).await, StatusCode::OK);
}

#[tokio::test]
async fn cache_control_max_age_sets_the_refresh_interval_within_bounds() {
    let key = TestKey::ec();
    let provider = Provider::start().await;
    let bounds = (Duration::from_millis(100), Duration::from_secs(3600));
    let start = |path: &'static str| {
        Jwks::builder(provider.url(path))
            .refresh_interval(Duration::from_secs(3600))
            .max_age_bounds(bounds.0, bounds.1)
            .build()
    };
    // max-age=1: refreshed every second, though the configured interval is an hour.
    provider.serve_with("/max-age", &jwk_set(&[key.jwk("k")]), Some("public, max-age=1"));
    // No Cache-Control: the configured hour.
    provider.serve("/none", &jwk_set(&[key.jwk("k")]));
    // A day asked for, a quarter of a second allowed: the bound wins.
    provider.serve_with("/bounded", &jwk_set(&[key.jwk("k")]), Some("max-age=86400"));
    let _max_age = start("/max-age").await.unwrap();
    let _none = start("/none").await.unwrap();
    let _bounded = Jwks::builder(provider.url("/bounded"))
        .max_age_bounds(Duration::from_millis(100), Duration::from_millis(250))
        .build()
        .await
        .unwrap();
    eventually("max-age=1 refetches", || async { provider.hits("/max-age") >= 3 }).await;
    eventually("the max bound refetches", || async {
        provider.hits("/bounded") >= 3
    })
    .await;
    assert_eq!(
        provider.hits("/none"),
        1,
        "no Cache-Control: the configured interval"
    );
}

#[tokio::test]
async fn keys_without_alg_for_encryption_or_symmetric_are_skipped_unless_the_curve_decides() {
    let (rsa, ec) = (TestKey::rsa(), TestKey::ec());
    let provider = Provider::start().await;
    provider.serve(
        JWKS,
        &jwk_set(&[
            ec.jwk_with("ec-no-alg", json!({ "alg": null })),
            rsa.jwk_with("rsa-no-alg", json!({ "alg": null })),
            rsa.jwk_with("rsa-enc", json!({ "use": "enc" })),
            json!({ "kty": "RSA", "kid": "rsa-oaep", "alg": "RSA-OAEP", "use": "enc", "n": "AQAB", "e": "AQAB" }),
            json!({ "kty": "unknown", "kid": "strange" }),
            json!({ "kty": "oct", "kid": "hmac", "alg": "HS256", "k": common::b64url(SECRET) }),
            rsa.jwk("rsa"),
        ]),
    );
    let jwks = builder(&provider).build().await.unwrap();
    let health = jwks.health();
    assert_eq!((health.key_count, health.skipped_keys), (2, 5), "{health:?}");
    let layer = layer(jwks.key_ring());
    assert_eq!(status(&layer, &ec.token("ec-no-alg")).await, StatusCode::OK);
    assert_eq!(status(&layer, &rsa.token("rsa")).await, StatusCode::OK);
    assert_eq!(
        status(&layer, &rsa.token("rsa-no-alg")).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(&layer, &rsa.token("rsa-enc")).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn plain_http_is_refused_except_to_loopback_hosts() {
    for url in [
        "http://idp.example/jwks",
        "http://10.0.0.1/jwks",
        "ftp://idp.example/jwks",
        "jwks",
    ] {
        let error = Jwks::builder(url).build().await.unwrap_err();
        assert!(matches!(error, JwksError::InvalidUrl { .. }), "{url}: {error:?}");
    }
    let error = Jwks::builder("http://idp.example/jwks")
        .build()
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("https://"),
        "the message says what to do: {error}"
    );
    let error = OidcIssuer::discover("http://idp.example/realms/x")
        .await
        .unwrap_err();
    assert!(matches!(error, JwksError::InvalidUrl { .. }), "{error:?}");
    let error = Jwks::builder("https://user:hunter2@idp.example:1/jwks")
        .timeout(Duration::from_millis(200))
        .build()
        .await
        .unwrap_err();
    assert!(!format!("{error} {error:?}").contains("hunter2"), "{error:?}");

    // A loopback provider announcing keys at a plain-http address elsewhere.
    let provider = Provider::start().await;
    let issuer = provider.url("/realms/x");
    provider.serve(
        "/realms/x/.well-known/openid-configuration",
        &json!({ "issuer": issuer, "jwks_uri": "http://idp.example/jwks" }),
    );
    let error = OidcIssuer::discover(&issuer).await.unwrap_err();
    assert!(matches!(error, JwksError::InvalidUrl { .. }), "{error:?}");
}

/// Serves discovery for `realm` with its own JWKS holding `key` as `kid`; returns the
/// issuer identifier.
fn serve_realm(provider: &Provider, realm: &str, key: &TestKey, kid: &str) -> String {
    let issuer = provider.url(&format!("/realms/{realm}"));
    let jwks_path = format!("/realms/{realm}/certs");
    provider.serve(&jwks_path, &jwk_set(&[key.jwk(kid)]));
    provider.serve(
        &format!("/realms/{realm}/.well-known/openid-configuration"),
        &json!({
            "issuer": issuer,
            "jwks_uri": provider.url(&jwks_path),
            "end_session_endpoint": format!("{issuer}/logout"),
            "revocation_endpoint": format!("{issuer}/revoke"),
            "backchannel_logout_supported": true,
            "backchannel_logout_session_supported": true,
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        }),
    );
    issuer
}

/// A token of "alice" from `issuer`.
fn token_from(issuer: &str, key: &TestKey, kid: &str) -> String {
    key.sign(kid, &claims_with("alice", json!({ "iss": issuer })))
}

#[tokio::test]
async fn discovery_reads_the_metadata_and_checks_the_issuer_exactly() {
    let key = TestKey::rsa();
    let provider = Provider::start().await;
    let issuer = serve_realm(&provider, "x", &key, "k");

    let discovered = OidcIssuer::discover(&issuer).await.unwrap();
    assert_eq!(discovered.issuer(), issuer);
    let metadata = discovered.metadata().expect("discovered");
    assert_eq!(metadata.jwks_uri, provider.url("/realms/x/certs"));
    assert_eq!(
        metadata.end_session_endpoint.as_deref(),
        Some(&*format!("{issuer}/logout"))
    );
    assert_eq!(
        metadata.revocation_endpoint.as_deref(),
        Some(&*format!("{issuer}/revoke"))
    );
    assert!(metadata.backchannel_logout_supported && metadata.backchannel_logout_session_supported);

    let verifier = JwtVerifier::from_issuer(&issuer)
        .await
        .unwrap()
        .audience(AUDIENCE)
        .build()
        .unwrap();
    let layer = RevocationLayer::new(verifier, InMemoryStore::new());
    assert_eq!(
        status(&layer, &token_from(&issuer, &key, "k")).await,
        StatusCode::OK
    );
    assert_eq!(
        status(&layer, &token_from(&format!("{issuer}/"), &key, "k")).await,
        StatusCode::UNAUTHORIZED,
        "another issuer, though it differs only by a slash"
    );

    // The document names another issuer: refused, whatever the difference.
    for named in [
        provider.url("/realms/other"),
        format!("{issuer}/"),
        issuer.to_uppercase(),
    ] {
        provider.serve(
            "/realms/x/.well-known/openid-configuration",
            &json!({ "issuer": named, "jwks_uri": provider.url("/realms/x/certs") }),
        );
        let error = OidcIssuer::discover(&issuer).await.unwrap_err();
        assert!(
            matches!(&error, JwksError::IssuerMismatch { expected, found } if *expected == issuer && *found == named),
            "{error:?}"
        );
    }

    // An issuer given with a trailing slash: the path is appended after it is removed.
    let with_slash = format!("{issuer}/");
    provider.serve(
        "/realms/x/.well-known/openid-configuration",
        &json!({ "issuer": with_slash, "jwks_uri": provider.url("/realms/x/certs") }),
    );
    let discovered = OidcIssuer::discover(&with_slash).await.unwrap();
    assert_eq!(discovered.issuer(), with_slash);

    provider.serve_raw("/realms/x/.well-known/openid-configuration", b"{}".to_vec(), None);
    let error = OidcIssuer::discover(&issuer).await.unwrap_err();
    assert!(
        matches!(error, JwksError::NotProviderMetadata { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn two_issuers_each_verify_with_their_own_keys() {
    let (key_a, key_b) = (TestKey::rsa(), TestKey::ec());
    let provider = Provider::start().await;
    let issuer_a = serve_realm(&provider, "a", &key_a, "a");
    let issuer_b = serve_realm(&provider, "b", &key_b, "b");
    let (tenant_a, tenant_b) = (
        OidcIssuer::discover(&issuer_a).await.unwrap(),
        OidcIssuer::discover(&issuer_b).await.unwrap(),
    );
    let verifier = JwtVerifier::builder()
        .oidc_issuer(&tenant_a)
        .oidc_issuer(&tenant_b)
        .audience(AUDIENCE)
        .build()
        .unwrap();
    let layer = RevocationLayer::new(verifier, InMemoryStore::new());
    assert_eq!(
        status(&layer, &token_from(&issuer_a, &key_a, "a")).await,
        StatusCode::OK
    );
    assert_eq!(
        status(&layer, &token_from(&issuer_b, &key_b, "b")).await,
        StatusCode::OK
    );
    // B's key does not sign for A, nor A's for B, even with the other's kid.
    assert_eq!(
        status(&layer, &token_from(&issuer_a, &key_b, "b")).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(&layer, &token_from(&issuer_b, &key_a, "a")).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(&layer, &token_from(&issuer_a, &key_b, "a")).await,
        StatusCode::UNAUTHORIZED
    );
    // A third issuer, unknown to the verifier.
    assert_eq!(status(&layer, &key_a.token("a")).await, StatusCode::UNAUTHORIZED);
    assert_eq!(provider.hits("/realms/a/certs"), 2, "one unknown-kid fetch for A");
    assert_eq!(provider.hits("/realms/b/certs"), 2, "one unknown-kid fetch for B");
}

#[tokio::test]
async fn a_degraded_discovery_waits_for_the_provider() {
    let key = TestKey::ec();
    let provider = Provider::start().await;
    let issuer = serve_realm(&provider, "x", &key, "k");
    provider.set_down(true);
    let discovered = OidcIssuer::builder(&issuer)
        .start_mode(StartMode::Degraded)
        .retry_backoff(Duration::from_millis(50), Duration::from_millis(200))
        .discover()
        .await
        .unwrap();
    assert!(discovered.metadata().is_none());
    let verifier = JwtVerifier::builder()
        .oidc_issuer(&discovered)
        .audience(AUDIENCE)
        .build()
        .unwrap();
    let layer = RevocationLayer::new(verifier, InMemoryStore::new());
    let token = token_from(&issuer, &key, "k");
    assert_eq!(status(&layer, &token).await, StatusCode::SERVICE_UNAVAILABLE);

    provider.set_down(false);
    eventually("accepted once discovered", || async {
        status(&layer, &token).await == StatusCode::OK
    })
    .await;
    assert!(discovered.metadata().is_some());
}

#[tokio::test]
async fn the_background_refresh_stops_with_the_last_user_of_the_keys() {
    let key = TestKey::ec();
    let provider = Provider::start().await;
    provider.serve(JWKS, &jwk_set(&[key.jwk("k")]));
    let jwks = Jwks::builder(provider.url(JWKS))
        .refresh_interval(Duration::from_millis(100))
        .build()
        .await
        .unwrap();
    let layer = layer(jwks.key_ring());
    drop(jwks);
    // The layer still holds the keys: refreshes go on.
    let hits = provider.hits(JWKS);
    eventually("refreshes go on", || async { provider.hits(JWKS) >= hits + 2 }).await;
    assert_eq!(status(&layer, &key.token("k")).await, StatusCode::OK);

    drop(layer);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let hits = provider.hits(JWKS);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        provider.hits(JWKS),
        hits,
        "no refresh once nothing holds the keys"
    );
}

#[tokio::test]
async fn the_health_of_a_source_and_its_url_are_reported() {
    let key = TestKey::ec();
    let provider = Provider::start().await;
    provider.serve(
        JWKS,
        &jwk_set(&[
            key.jwk("k"),
            json!({ "kty": "oct", "kid": "hmac", "k": "c2VjcmV0" }),
        ]),
    );
    let jwks = builder(&provider).build().await.unwrap();
    let health = jwks.health();
    assert!(health.is_current(), "{health:?}");
    assert_eq!(
        (health.key_count, health.skipped_keys, health.consecutive_failures),
        (1, 1, 0)
    );
    assert!(health.last_error.is_none());
    assert_eq!(jwks.url(), Some(provider.url(JWKS)));
    let shown = format!("{jwks:?}");
    assert!(shown.contains("key_count: 1"), "{shown}");
}
