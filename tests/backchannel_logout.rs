//! The OpenID Connect Back-Channel Logout receiver: every rule of §2.6, the logout
//! itself on every kind of replica, replays, bad input, and store failures.
//!
//! Logout tokens and access tokens are signed as a provider signs them: RS256 with
//! tests/keys/rsa_private.pem, under one `kid`.

mod common;
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::header::{ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use http::{Request, Response, StatusCode};
use serde_json::{Value, json};
use tower::Layer;
use tower_jwt_revoke::endpoints::{BACKCHANNEL_LOGOUT_EVENT, BackChannelLogout, BuildError};
use tower_jwt_revoke::jsonwebtoken::{Algorithm, EncodingKey, Header};
use tower_jwt_revoke::store::{
    DEFAULT_STALENESS_BOUND, InMemoryStore, Lookup, MirrorStore, RevocationQuery, RevocationStore, StoreError,
};
use tower_jwt_revoke::{JwtVerifier, KeyRing, RevocationKey, RevocationLayer, Revoker, VerificationKey};

use common::broken_store::{BrokenStore, Failure};
use common::{b64url, bearer, echo, mint_with, now, read_key, send};

const PROVIDER: &str = "https://idp.example/realms/test";
const CLIENT_ID: &str = "web-client";
const API: &str = "orders-api";
const KID: &str = "provider-1";

fn provider_key() -> VerificationKey {
    VerificationKey::rsa_pem(Algorithm::RS256, &read_key("rsa_public.pem"))
        .unwrap()
        .with_kid(KID)
}

/// The provider's verifier for logout tokens: addressed to our client id.
fn logout_verifier() -> JwtVerifier {
    JwtVerifier::builder()
        .key(provider_key())
        .issuer(PROVIDER)
        .audience(CLIENT_ID)
        .build()
        .unwrap()
}

/// The API's verifier for access tokens from the same provider.
fn access_verifier() -> JwtVerifier {
    JwtVerifier::builder()
        .key(provider_key())
        .issuer(PROVIDER)
        .audience(API)
        .require_type("at+jwt")
        .build()
        .unwrap()
}

fn sign(typ: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(KID.to_owned());
    header.typ = typ.map(str::to_owned);
    mint_with(
        &header,
        claims,
        &EncodingKey::from_rsa_pem(&read_key("rsa_private.pem")).unwrap(),
    )
}

/// The claims of a valid logout token for session `sid` of `sub`.
fn logout_claims(sub: &str, sid: &str) -> Value {
    let now = now();
    json!({
        "iss": PROVIDER,
        "aud": CLIENT_ID,
        "iat": now,
        "exp": now + 120,
        "jti": uuid::Uuid::new_v4().to_string(),
        "sub": sub,
        "sid": sid,
        "events": { BACKCHANNEL_LOGOUT_EVENT: {} },
    })
}

/// `claims` with members replaced, or removed with `null`.
fn changed(mut claims: Value, changes: Value) -> Value {
    let map = claims.as_object_mut().unwrap();
    for (name, value) in changes.as_object().unwrap() {
        if value.is_null() {
            map.remove(name);
        } else {
            map.insert(name.clone(), value.clone());
        }
    }
    claims
}

fn logout_token(sub: &str, sid: &str) -> String {
    sign(Some("logout+jwt"), &logout_claims(sub, sid))
}

/// An access token the provider issued to the API for session `sid` of `sub`.
fn access_token(sub: &str, sid: &str) -> String {
    let now = now();
    let claims = json!({
        "iss": PROVIDER, "aud": API, "sub": sub, "sid": sid, "azp": CLIENT_ID,
        "jti": uuid::Uuid::new_v4().to_string(), "iat": now, "exp": now + 300,
    });
    sign(Some("at+jwt"), &claims)
}

fn form(body: impl Into<String>) -> Request<String> {
    Request::post("/backchannel-logout")
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body.into())
        .unwrap()
}

fn delivery(logout_token: &str) -> Request<String> {
    form(format!("logout_token={logout_token}"))
}

fn description(response: &Response<String>) -> String {
    let body: Value = serde_json::from_str(response.body())
        .unwrap_or_else(|_| panic!("not a JSON error body: {:?}", response.body()));
    body["error_description"].as_str().unwrap_or_default().to_owned()
}

/// A 400 with the specification's JSON error body, whose description mentions `why`.
fn assert_refused(response: &Response<String>, why: &str) {
    assert_eq!(
        response.status(),
        StatusCode::BAD_REQUEST,
        "{why}: {:?}",
        response.body()
    );
    let body: Value = serde_json::from_str(response.body()).unwrap();
    assert_eq!(body["error"], "invalid_request", "{why}");
    assert!(
        description(response).contains(why),
        "{why}: {:?}",
        response.body()
    );
    assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
    assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
}

fn assert_logged_out(response: &Response<String>) {
    assert_eq!(response.status(), StatusCode::OK, "{:?}", response.body());
    assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
}

/// A replica: the API behind the layer, and the receiver writing to the same store.
struct Replica {
    layer: RevocationLayer,
    receiver: BackChannelLogout,
}

impl Replica {
    fn new(store: impl RevocationStore) -> Self {
        let layer = RevocationLayer::new(access_verifier(), store);
        let receiver = BackChannelLogout::builder(logout_verifier(), layer.revoker())
            .build()
            .unwrap();
        Self { layer, receiver }
    }

    async fn status(&self, access_token: &str) -> StatusCode {
        send(self.layer.layer(echo()), bearer(access_token))
            .await
            .status()
    }

    async fn deliver(&self, logout_token: &str) -> Response<String> {
        send(self.receiver.clone(), delivery(logout_token)).await
    }
}

#[tokio::test]
async fn a_logout_token_revokes_its_session_and_only_it() {
    let replica = Replica::new(InMemoryStore::new());
    let (laptop, phone) = (
        access_token("alice", "session-laptop"),
        access_token("alice", "session-phone"),
    );
    assert_eq!(replica.status(&laptop).await, StatusCode::OK);

    let response = replica.deliver(&logout_token("alice", "session-laptop")).await;
    assert_logged_out(&response);
    assert!(response.body().is_empty());

    assert_eq!(replica.status(&laptop).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        replica.status(&phone).await,
        StatusCode::OK,
        "another session of the user"
    );
}

#[tokio::test]
async fn a_logout_token_without_sid_logs_the_subject_out_everywhere() {
    let replica = Replica::new(InMemoryStore::new());
    let (laptop, phone) = (access_token("bob", "s1"), access_token("bob", "s2"));
    let someone_else = access_token("carol", "s3");
    let token = sign(None, &changed(logout_claims("bob", ""), json!({ "sid": null })));

    assert_logged_out(&replica.deliver(&token).await);

    assert_eq!(replica.status(&laptop).await, StatusCode::UNAUTHORIZED);
    assert_eq!(replica.status(&phone).await, StatusCode::UNAUTHORIZED);
    assert_eq!(replica.status(&someone_else).await, StatusCode::OK);
    // Signing in again afterwards works: the logout covers tokens issued until it.
    common::sleep_until_next_second().await;
    assert_eq!(replica.status(&access_token("bob", "s4")).await, StatusCode::OK);
}

#[tokio::test]
async fn access_tokens_without_sid_need_the_whole_subject_logged_out() {
    let replica = Replica::new(InMemoryStore::new());
    let now = now();
    let no_sid = sign(
        Some("at+jwt"),
        &json!({ "iss": PROVIDER, "aud": API, "sub": "paul", "jti": "a1", "iat": now, "exp": now + 300 }),
    );
    // A session revocation cannot match a token that names no session.
    assert_logged_out(&replica.deliver(&logout_token("paul", "s1")).await);
    assert_eq!(replica.status(&no_sid).await, StatusCode::OK);

    let whole = BackChannelLogout::builder(logout_verifier(), replica.layer.revoker())
        .revoke_whole_subject()
        .build()
        .unwrap();
    assert_logged_out(&send(whole, delivery(&logout_token("paul", "s1"))).await);
    assert_eq!(replica.status(&no_sid).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_replayed_logout_token_is_refused() {
    let replica = Replica::new(InMemoryStore::new());
    let token = logout_token("dave", "s1");
    assert_logged_out(&replica.deliver(&token).await);
    assert_refused(&replica.deliver(&token).await, "replayed");
    // A new logout token for the same session (the provider retrying with a fresh one)
    // is not a replay.
    assert_logged_out(&replica.deliver(&logout_token("dave", "s1")).await);
}

/// Each case breaks exactly one rule of §2.6 (or of the token format it relies on).
fn rule_breakers() -> Vec<(&'static str, String)> {
    let valid = || logout_claims("erin", "doomed-session");
    let other_key = EncodingKey::from_rsa_pem(&read_key("other_rsa_private.pem")).unwrap();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(KID.to_owned());
    header.typ = Some("logout+jwt".to_owned());
    let mut hs256 = Header::new(Algorithm::HS256);
    hs256.kid = Some(KID.to_owned());
    let alg_none = format!(
        "{}.{}.",
        b64url(br#"{"alg":"none","kid":"provider-1","typ":"logout+jwt"}"#),
        b64url(valid().to_string().as_bytes())
    );
    let now = now();
    vec![
        ("invalid signature", mint_with(&header, &valid(), &other_key)),
        // The provider's public key as an HMAC secret: the key is pinned to RS256.
        (
            "algorithm not allowed",
            mint_with(
                &hs256,
                &valid(),
                &EncodingKey::from_secret(&read_key("rsa_public.pem")),
            ),
        ),
        ("algorithm not allowed", alg_none),
        (
            "wrong issuer",
            sign(None, &changed(valid(), json!({ "iss": "https://evil.example" }))),
        ),
        (
            "wrong audience",
            sign(None, &changed(valid(), json!({ "aud": "another-client" }))),
        ),
        (
            "wrong audience",
            sign(None, &changed(valid(), json!({ "aud": API }))),
        ),
        (
            "missing claim iat",
            sign(None, &changed(valid(), json!({ "iat": null }))),
        ),
        (
            "token expired",
            sign(
                None,
                &changed(valid(), json!({ "iat": now - 600, "exp": now - 300 })),
            ),
        ),
        (
            "missing claim exp",
            sign(None, &changed(valid(), json!({ "exp": null }))),
        ),
        ("typ must be logout+jwt", sign(Some("at+jwt"), &valid())),
        ("lacks", sign(None, &changed(valid(), json!({ "events": null })))),
        (
            "lacks",
            sign(
                None,
                &changed(valid(), json!({ "events": { "urn:other:event": {} } })),
            ),
        ),
        (
            "must be JSON objects",
            sign(
                None,
                &changed(valid(), json!({ "events": [BACKCHANNEL_LOGOUT_EVENT] })),
            ),
        ),
        (
            "must be JSON objects",
            sign(
                None,
                &changed(valid(), json!({ "events": { BACKCHANNEL_LOGOUT_EVENT: "yes" } })),
            ),
        ),
        (
            "neither a sub nor a sid",
            sign(None, &changed(valid(), json!({ "sub": null, "sid": null }))),
        ),
        (
            "neither a sub nor a sid",
            sign(None, &changed(valid(), json!({ "sub": "", "sid": "" }))),
        ),
        (
            "nonce",
            sign(None, &changed(valid(), json!({ "nonce": "n-0S6_WzA2Mj" }))),
        ),
        ("no jti", sign(None, &changed(valid(), json!({ "jti": null })))),
        ("malformed token", String::from("not-a-jwt")),
    ]
}

#[tokio::test]
async fn every_rule_of_section_2_6_refuses_the_token_that_breaks_it() {
    let replica = Replica::new(InMemoryStore::new());
    let access = access_token("erin", "doomed-session");
    for (why, token) in rule_breakers() {
        assert_refused(&replica.deliver(&token).await, why);
    }
    // None of them logged anyone out.
    assert_eq!(replica.status(&access).await, StatusCode::OK);
}

#[tokio::test]
async fn iat_is_required_even_when_the_verifier_allows_tokens_without_it() {
    let lenient = JwtVerifier::builder()
        .key(provider_key())
        .issuer(PROVIDER)
        .audience(CLIENT_ID)
        .allow_missing_iat()
        .build()
        .unwrap();
    let receiver = BackChannelLogout::builder(lenient, Revoker::new(access_verifier(), InMemoryStore::new()))
        .build()
        .unwrap();
    let token = sign(
        None,
        &changed(logout_claims("olga", "s1"), json!({ "iat": null })),
    );
    assert_refused(&send(receiver, delivery(&token)).await, "no iat claim");
}

#[tokio::test]
async fn typ_may_be_absent_jwt_or_logout_jwt_unless_explicit_typing_is_required() {
    let replica = Replica::new(InMemoryStore::new());
    for typ in [
        None,
        Some("JWT"),
        Some("logout+jwt"),
        Some("application/logout+jwt"),
    ] {
        assert_logged_out(&replica.deliver(&sign(typ, &logout_claims("frank", "s"))).await);
    }
    // An audience list that includes us is fine too.
    let listed = changed(
        logout_claims("frank", "s"),
        json!({ "aud": ["someone", CLIENT_ID] }),
    );
    assert_logged_out(&replica.deliver(&sign(None, &listed)).await);

    let strict = BackChannelLogout::builder(logout_verifier(), replica.layer.revoker())
        .require_explicit_type()
        .build()
        .unwrap();
    for typ in [None, Some("JWT")] {
        let response = send(strict.clone(), delivery(&sign(typ, &logout_claims("frank", "s")))).await;
        assert_refused(&response, "typ must be logout+jwt");
    }
    let typed = sign(Some("logout+jwt"), &logout_claims("frank", "s"));
    assert_logged_out(&send(strict, delivery(&typed)).await);
}

#[tokio::test]
async fn bad_requests_are_4xx_with_a_clear_message() {
    let replica = Replica::new(InMemoryStore::new());
    let call = |request: Request<String>| send(replica.receiver.clone(), request);
    let token = logout_token("gina", "s1");

    let get = call(Request::get("/backchannel-logout").body(String::new()).unwrap()).await;
    assert_eq!(get.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(get.headers()[ALLOW], "POST");

    let json_body = Request::post("/")
        .header(CONTENT_TYPE, "application/json")
        .body(json!({ "logout_token": token }).to_string())
        .unwrap();
    let wrong_type = call(json_body).await;
    assert_eq!(wrong_type.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(description(&wrong_type).contains("application/x-www-form-urlencoded"));
    let untyped = call(Request::post("/").body(format!("logout_token={token}")).unwrap()).await;
    assert_eq!(untyped.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    assert_refused(&call(form("")).await, "missing logout_token");
    assert_refused(&call(form("logout_token=")).await, "missing logout_token");
    assert_refused(&call(form("state=xyz")).await, "missing logout_token");
    assert_refused(
        &call(form(format!("logout_token={token}&logout_token={token}"))).await,
        "parameter `logout_token` is repeated",
    );

    // 1 MiB, announced or not.
    let huge = format!("logout_token={}", "a".repeat(1024 * 1024));
    let announced = Request::post("/")
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(CONTENT_LENGTH, huge.len())
        .body(huge.clone())
        .unwrap();
    let too_large = call(announced).await;
    assert_eq!(too_large.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(description(&too_large).contains("exceeds 65536 bytes"));
    assert_eq!(call(form(huge)).await.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // Bytes that are not UTF-8 cannot be a token.
    let binary = Request::post("/")
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(
            b"logout_token=\xff\xfe%FF",
        )))
        .unwrap();
    assert_refused(&send(replica.receiver.clone(), binary).await, "malformed token");

    // None of it logged the session out.
    assert_eq!(replica.status(&access_token("gina", "s1")).await, StatusCode::OK);
}

/// A body whose bytes never come.
struct Stalled;

impl http_body::Body for Stalled {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::task::Poll::Pending
    }
}

#[tokio::test]
async fn a_body_that_never_arrives_is_a_408_not_a_hung_request() {
    let replica = Replica::new(InMemoryStore::new());
    let receiver = BackChannelLogout::builder(logout_verifier(), replica.layer.revoker())
        .body_timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    let stalled = Request::post("/")
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Stalled)
        .unwrap();
    let response = send(receiver, stalled).await;
    assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
    assert!(description(&response).contains("did not arrive in time"));
}

#[tokio::test]
async fn a_failing_store_is_a_503_never_a_200() {
    for failure in [Failure::Error, Failure::Hang] {
        let revoker = Revoker::new(access_verifier(), BrokenStore::new(failure))
            .with_timeout(Duration::from_millis(100));
        let receiver = BackChannelLogout::builder(logout_verifier(), revoker)
            .build()
            .unwrap();
        let response = send(receiver, delivery(&logout_token("hank", "s1"))).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{failure:?}");
        assert_eq!(response.headers()[RETRY_AFTER], "5");
        assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
        let body: Value = serde_json::from_str(response.body()).unwrap();
        assert_eq!(body["error"], "temporarily_unavailable", "{failure:?}");
    }
}

/// An in-memory store whose `fail_at`-th write (counting from 1) fails.
#[derive(Clone)]
struct FlakyStore {
    inner: InMemoryStore,
    writes: Arc<AtomicUsize>,
    fail_at: usize,
}

impl FlakyStore {
    async fn write(&self, write: impl Future<Output = Result<(), StoreError>>) -> Result<(), StoreError> {
        if self.writes.fetch_add(1, Ordering::SeqCst) + 1 == self.fail_at {
            return Err(StoreError::msg("flaky write"));
        }
        write.await
    }
}

#[tower_jwt_revoke::async_trait]
impl RevocationStore for FlakyStore {
    async fn lookup(&self, query: &RevocationQuery) -> Result<Lookup, StoreError> {
        self.inner.lookup(query).await
    }
    async fn revoke_token(&self, token: &RevocationKey, ttl: Duration) -> Result<(), StoreError> {
        self.write(self.inner.revoke_token(token, ttl)).await
    }
    async fn revoke_session(&self, session: &RevocationKey, ttl: Duration) -> Result<(), StoreError> {
        self.write(self.inner.revoke_session(session, ttl)).await
    }
    async fn raise_subject_watermark(
        &self,
        subject: &RevocationKey,
        until: u64,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.write(self.inner.raise_subject_watermark(subject, until, ttl))
            .await
    }
    async fn raise_global_watermark(&self, until: u64, ttl: Duration) -> Result<(), StoreError> {
        self.write(self.inner.raise_global_watermark(until, ttl)).await
    }
}

#[tokio::test]
async fn a_delivery_the_store_failed_is_not_remembered_so_the_retry_succeeds() {
    // A delivery writes the session's revocation first, then the logout token's record.
    for fail_at in [1, 2] {
        let store = FlakyStore {
            inner: InMemoryStore::new(),
            writes: Arc::default(),
            fail_at,
        };
        let replica = Replica::new(store);
        let access = access_token("ivan", "s1");
        let token = logout_token("ivan", "s1");

        let first = replica.deliver(&token).await;
        assert_eq!(
            first.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "write {fail_at} failed"
        );
        let expected = if fail_at == 1 {
            StatusCode::OK
        } else {
            StatusCode::UNAUTHORIZED
        };
        assert_eq!(replica.status(&access).await, expected, "write {fail_at} failed");

        assert_logged_out(&replica.deliver(&token).await);
        assert_eq!(replica.status(&access).await, StatusCode::UNAUTHORIZED);
        assert_refused(&replica.deliver(&token).await, "replayed");
    }
}

#[tokio::test]
async fn provider_keys_not_fetched_yet_are_a_503_so_the_provider_retries() {
    let verifier = JwtVerifier::builder()
        .key_ring(KeyRing::empty())
        .issuer(PROVIDER)
        .audience(CLIENT_ID)
        .build()
        .unwrap();
    let receiver =
        BackChannelLogout::builder(verifier, Revoker::new(access_verifier(), InMemoryStore::new()))
            .build()
            .unwrap();
    let response = send(receiver, delivery(&logout_token("judy", "s1"))).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(description(&response).contains("retry"));
}

#[test]
fn a_verifier_that_could_never_accept_a_logout_token_is_refused_at_build_time() {
    let revoker = || Revoker::new(access_verifier(), InMemoryStore::new());
    let builder = || JwtVerifier::builder().key(provider_key());
    let no_issuer = builder().audience(CLIENT_ID).build().unwrap();
    let no_audience = builder().issuer(PROVIDER).build().unwrap();
    let build = |verifier| {
        BackChannelLogout::builder(verifier, revoker())
            .build()
            .unwrap_err()
    };
    assert_eq!(build(no_issuer), BuildError::NoIssuer);
    assert_eq!(build(no_audience), BuildError::NoAudience);
    // The access-token verifier, passed by mistake.
    assert_eq!(
        build(access_verifier()),
        BuildError::WrongRequiredType("at+jwt".into())
    );
}

/// Polls until `replica` refuses `access_token`, failing after `bound`.
async fn until_refused(replica: &Replica, access_token: &str, bound: Duration) -> Duration {
    let start = Instant::now();
    while replica.status(access_token).await != StatusCode::UNAUTHORIZED {
        assert!(start.elapsed() < bound, "not refused within {bound:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    start.elapsed()
}

#[tokio::test]
async fn a_logout_reaches_every_replica_redis_and_its_mirror() {
    let server = redis_or_skip!();
    let prefix = support::unique_prefix();
    let (a, b) = (
        Replica::new(server.store(&prefix)),
        Replica::new(server.store(&prefix)),
    );
    let mirror = MirrorStore::start(server.store(&prefix));
    mirror
        .wait_until_synced(Duration::from_secs(10))
        .await
        .expect("mirror in sync");
    let c = Replica::new(mirror);

    let laptop = access_token("kate", "laptop");
    let phone = access_token("kate", "phone");
    for replica in [&a, &b, &c] {
        assert_eq!(replica.status(&laptop).await, StatusCode::OK);
    }

    // Delivered to one replica, honoured by the others: at once through Redis, within
    // the mirror's staleness bound through the mirror.
    let token = logout_token("kate", "laptop");
    assert_logged_out(&a.deliver(&token).await);
    assert_eq!(a.status(&laptop).await, StatusCode::UNAUTHORIZED);
    assert_eq!(b.status(&laptop).await, StatusCode::UNAUTHORIZED);
    // Plus the test's own scheduling on a loaded machine.
    until_refused(&c, &laptop, DEFAULT_STALENESS_BOUND + Duration::from_millis(500)).await;
    assert_eq!(c.status(&phone).await, StatusCode::OK);
    // The provider's retry reaching another replica is a replay there too.
    assert_refused(&b.deliver(&token).await, "replayed");

    // And a logout delivered to the mirror's replica is written through to Redis.
    assert_logged_out(&c.deliver(&logout_token("kate", "phone")).await);
    assert_eq!(a.status(&phone).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn it_is_an_axum_route() {
    use axum::routing::{get, post_service};
    use tower::ServiceExt;

    let replica = Replica::new(InMemoryStore::new());
    let app = axum::Router::new()
        .route("/me", get(|| async { "me" }))
        .route_layer(replica.layer.clone())
        .route("/backchannel-logout", post_service(replica.receiver.clone()));
    let access = access_token("liam", "s1");
    let call = |request: Request<axum::body::Body>| app.clone().oneshot(request);
    let me = || {
        Request::get("/me")
            .header("authorization", format!("Bearer {access}"))
            .body(axum::body::Body::empty())
    };

    assert_eq!(call(me().unwrap()).await.unwrap().status(), StatusCode::OK);
    let logout = Request::post("/backchannel-logout")
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(axum::body::Body::from(format!(
            "logout_token={}",
            logout_token("liam", "s1")
        )))
        .unwrap();
    let response = call(logout).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
    assert_eq!(
        call(me().unwrap()).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn it_serves_plain_hyper_over_a_socket() {
    use hyper_util::rt::TokioIo;
    use hyper_util::service::TowerToHyperService;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let replica = Replica::new(InMemoryStore::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let receiver = replica.receiver.clone();
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(receiver))
            .await
    });

    let body = format!("logout_token={}", logout_token("mia", "s1"));
    let request = format!(
        "POST /backchannel-logout HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/x-www-form-urlencoded\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut client = tokio::net::TcpStream::connect(address).await.unwrap();
    client.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), client.read_to_string(&mut answer))
        .await
        .expect("an answer within 5 s")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("cache-control: no-store"),
        "{answer}"
    );
    server.await.unwrap().unwrap();
    assert_eq!(
        replica.status(&access_token("mia", "s1")).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn logs_name_neither_the_token_nor_the_subject_nor_the_session() {
    let captured = common::captured::Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let replica = Replica::new(InMemoryStore::new());
    let (sub, sid) = ("nora@example.com", "nora-session-1234");
    let token = logout_token(sub, sid);
    assert_logged_out(&replica.deliver(&token).await);
    assert_refused(&replica.deliver(&token).await, "replayed");
    let no_sid = sign(None, &changed(logout_claims(sub, ""), json!({ "sid": null })));
    assert_logged_out(&replica.deliver(&no_sid).await);
    let forged = sign(None, &changed(logout_claims(sub, sid), json!({ "nonce": "x" })));
    assert_refused(&replica.deliver(&forged).await, "nonce");

    let logs = captured.text();
    assert!(
        logs.contains("back-channel logout"),
        "the outcomes are logged: {logs}"
    );
    for secret in [
        token.as_str(),
        no_sid.as_str(),
        sub,
        sid,
        token.split('.').nth(2).unwrap(),
    ] {
        assert!(!logs.contains(secret), "{secret:?} leaked into the logs:\n{logs}");
    }
}
