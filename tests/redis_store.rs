//! The Redis store against a real redis-server (see tests/support).

mod support;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use redis::AsyncCommands;
use serde_json::{Value, json};
use tower::ServiceExt;
use tower_jwt_revoke::jsonwebtoken::{self, Algorithm, EncodingKey, Header};
use tower_jwt_revoke::store::{InMemoryStore, RedisStore, RevocationQuery, RevocationStore, RevokedBy};
use tower_jwt_revoke::{FailurePolicy, JwtVerifier, Rejection, RevocationLayer, Revoker, VerificationKey};

#[path = "../examples/axum_logout.rs"]
#[allow(dead_code)]
mod axum_logout;

const SECRET: &[u8] = b"redis-store-test-secret-0123456789";
const LEEWAY: u64 = 30;
const MAX_LIFETIME: Duration = Duration::from_secs(3600);

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn verifier() -> JwtVerifier {
    JwtVerifier::builder()
        .key(VerificationKey::hmac(Algorithm::HS256, SECRET).unwrap())
        .leeway_secs(LEEWAY)
        .max_token_lifetime(MAX_LIFETIME)
        // The scenarios include tokens without `iat`, which a watermark must refuse.
        .allow_missing_iat()
        .build()
        .unwrap()
}

fn mint(claims: Value) -> String {
    // With both signature backends enabled, jsonwebtoken needs one chosen before it signs.
    tower_jwt_revoke::install_crypto_provider();
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

fn token_for(sub: &str) -> String {
    mint(json!({ "sub": sub, "jti": uuid::Uuid::new_v4().to_string(), "iat": now(), "exp": now() + 600 }))
}

/// A service behind the layer that answers 200 "ok".
fn protected(
    layer: RevocationLayer,
) -> impl tower::Service<Request<Body>, Response = http::Response<Body>, Error = std::convert::Infallible> + Clone
{
    tower::ServiceBuilder::new()
        .layer(layer)
        .service_fn(|_request: Request<Body>| async { Ok(http::Response::new(Body::from("ok"))) })
}

async fn status_with<S>(service: &S, token: &str) -> StatusCode
where
    S: tower::Service<Request<Body>, Response = http::Response<Body>, Error = std::convert::Infallible>
        + Clone,
{
    let request = Request::get("/")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty());
    tokio::time::timeout(Duration::from_secs(5), service.clone().oneshot(request.unwrap()))
        .await
        .expect("no request may hang beyond the timeouts")
        .unwrap()
        .status()
}

async fn call(
    app: &axum::Router,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = match body {
        Some(body) => request
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string())),
        None => request.body(Body::empty()),
    }
    .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn login(app: &axum::Router, user: &str) -> String {
    let (status, body) = call(
        app,
        "POST",
        "/login",
        None,
        Some(json!({ "username": user, "password": "password" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

fn demo_app(store: RedisStore) -> axum::Router {
    axum_logout::app(axum_logout::DemoConfig {
        secret: SECRET.to_vec(),
        access_ttl: Duration::from_secs(900),
        store: Arc::new(store),
    })
}

/// Waits until the Unix clock enters a new second, so a token minted next has an
/// `iat` after a watermark set before (watermarks have one-second resolution).
async fn next_second() {
    let elapsed = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    tokio::time::sleep(
        Duration::from_nanos(1_000_000_000 - u64::from(elapsed.subsec_nanos())) + Duration::from_millis(5),
    )
    .await;
}

#[tokio::test]
async fn seed_scenario_and_log_out_everywhere_through_axum() {
    let server = redis_or_skip!();
    let app = demo_app(server.store(&support::unique_prefix()));

    let token = login(&app, "alice").await;
    assert_eq!(
        call(&app, "GET", "/me", Some(&token), None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(&app, "POST", "/logout", Some(&token), None).await.0,
        StatusCode::NO_CONTENT
    );
    let response = app
        .clone()
        .oneshot(
            Request::get("/me")
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers()[header::WWW_AUTHENTICATE],
        r#"Bearer error="invalid_token", error_description="token revoked""#
    );
    let again = login(&app, "alice").await;
    assert_eq!(
        call(&app, "GET", "/me", Some(&again), None).await.0,
        StatusCode::OK
    );

    let (first, second, bob) = (
        login(&app, "alice").await,
        login(&app, "alice").await,
        login(&app, "bob").await,
    );
    assert_eq!(
        call(&app, "POST", "/logout-all", Some(&first), None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        call(&app, "GET", "/me", Some(&first), None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&app, "GET", "/me", Some(&second), None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(call(&app, "GET", "/me", Some(&bob), None).await.0, StatusCode::OK);
    next_second().await;
    let later = login(&app, "alice").await;
    assert_eq!(
        call(&app, "GET", "/me", Some(&later), None).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_revocation_through_one_replica_is_honoured_by_another() {
    let server = redis_or_skip!();
    let prefix = support::unique_prefix();
    // Two routers with their own stores (own pools and connections), like two pods.
    let replica_a = demo_app(server.store(&prefix));
    let replica_b = demo_app(server.store(&prefix));

    let token = login(&replica_a, "carol").await;
    assert_eq!(
        call(&replica_b, "GET", "/me", Some(&token), None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(&replica_a, "POST", "/logout", Some(&token), None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        call(&replica_b, "GET", "/me", Some(&token), None).await.0,
        StatusCode::UNAUTHORIZED
    );
}

/// Where the store keeps a token's revocation: in the bucket its checks read.
fn token_key(store: &RedisStore, token: &tower_jwt_revoke::VerifiedToken) -> String {
    let key = token.revocation_key();
    store.token_key(store.bucket_for(&key, token.subject_key().as_ref()), &key)
}

#[tokio::test]
async fn stored_ttls_match_the_token_lifetime_and_lapse() {
    let server = redis_or_skip!();
    let store = server.store(&support::unique_prefix());
    let verifier = verifier();
    let revoker = Revoker::new(verifier.clone(), store.clone());
    let mut redis = server.client().get_multiplexed_async_connection().await.unwrap();

    let exp = now() + 100;
    let raw = mint(json!({ "sub": "dave", "jti": "ttl-1", "iat": now(), "exp": exp }));
    let token = verifier.verify(&raw).unwrap();
    revoker.revoke(&token).await.unwrap();
    let pttl: i64 = redis.pttl(token_key(&store, &token)).await.unwrap();
    let expected_ms = ((exp + LEEWAY + 1) as i64) * 1000
        - SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
    assert!(
        (pttl - expected_ms).abs() <= 1000,
        "PTTL {pttl} ms, expected {expected_ms} ms ±1 s"
    );

    // Accepted only thanks to leeway: expires from the store about two seconds on.
    let short = mint(json!({ "jti": "ttl-2", "exp": now() - LEEWAY + 1 }));
    let short_token = verifier.verify(&short).unwrap();
    revoker.revoke(&short_token).await.unwrap();
    let key = token_key(&store, &short_token);
    let ttl: i64 = redis.ttl(&key).await.unwrap();
    assert!((1..=3).contains(&ttl), "TTL {ttl}");
    tokio::time::sleep(Duration::from_secs(ttl as u64) + Duration::from_millis(1100)).await;
    let exists: bool = redis.exists(&key).await.unwrap();
    assert!(!exists, "the revocation outlived its TTL");

    revoker.revoke_subject_of(&token).await.unwrap();
    let ttl: i64 = redis
        .ttl(store.subject_key(&token.subject_key().unwrap()))
        .await
        .unwrap();
    let configured = (MAX_LIFETIME.as_secs() + LEEWAY + 1) as i64;
    assert!(
        (configured - 1..=configured).contains(&ttl),
        "watermark TTL {ttl}, configured {configured}"
    );
}

#[tokio::test]
async fn nothing_secret_or_personal_is_stored() {
    let server = redis_or_skip!();
    let prefix = support::unique_prefix();
    let store = server.store(&prefix);
    let verifier = verifier();
    let revoker = Revoker::new(verifier.clone(), store.clone());

    let subject = "erin@example.com";
    let raw = mint(
        json!({ "sub": subject, "sid": "session-erin-42", "jti": "jti-erin-7", "iat": now(), "exp": now() + 600 }),
    );
    let no_jti = mint(json!({ "sub": subject, "iat": now(), "exp": now() + 600 }));
    let token = verifier.verify(&raw).unwrap();
    revoker.revoke(&token).await.unwrap();
    revoker.revoke_token(&no_jti).await.unwrap();
    revoker.revoke_subject_of(&token).await.unwrap();
    revoker.revoke_session_of(&token).await.unwrap();
    revoker.revoke_all().await.unwrap();

    let mut redis = server.client().get_multiplexed_async_connection().await.unwrap();
    let mut keys = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("*{prefix}*"))
            .query_async(&mut redis)
            .await
            .unwrap();
        keys.extend(batch);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    // Both tokens (each in its subject's bucket) and the subject: one key each; the
    // session and the global watermark: a copy in every bucket; every bucket's feed and
    // counter (the copies touched them all).
    let n = store.buckets() as usize;
    assert_eq!(
        keys.len(),
        3 + 2 * n + 2 * n,
        "tokens, subject, sessions, globals, feeds, counters: {keys:?}"
    );
    assert!(
        keys.iter().all(|key| key.starts_with(&format!("{{{prefix}:b"))),
        "every key carries its bucket's hash tag: {keys:?}"
    );
    let mut events = 0;
    let signature = raw.rsplit('.').next().unwrap();
    let forbidden = [
        raw.as_str(),
        no_jti.as_str(),
        signature,
        subject,
        "erin",
        "session-erin-42",
        "jti-erin-7",
    ];
    for key in keys {
        let value = if key.ends_with(":feed") {
            // The change feed: every field of every event.
            let entries: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
                .arg(&key)
                .arg("-")
                .arg("+")
                .query_async(&mut redis)
                .await
                .unwrap();
            events += entries.len();
            let fields = entries
                .into_iter()
                .flat_map(|(_, fields)| fields)
                .collect::<Vec<_>>();
            fields.join(" ")
        } else {
            let value: String = redis.get(&key).await.unwrap();
            // The feeds' sequence counters are the keys without a TTL (numbers).
            if !key.ends_with(":feed:seq") {
                let ttl: i64 = redis.ttl(&key).await.unwrap();
                assert!(ttl > 0, "{key} has no TTL");
            }
            value
        };
        for secret in forbidden {
            assert!(
                !key.contains(secret) && !value.contains(secret),
                "{key} = {value} leaks {secret:?}"
            );
        }
    }
    assert_eq!(events, 3 + 2 * n, "one event per record written");
}

#[tokio::test]
async fn one_read_command_per_checked_request() {
    let server = redis_or_skip!(private);
    let store = server.store(&support::unique_prefix());
    let service = protected(RevocationLayer::new(verifier(), store));
    let token = token_for("frank");
    // The first request connects (HELLO, CLIENT SETINFO...); count after it.
    assert_eq!(status_with(&service, &token).await, StatusCode::OK);

    let mut admin = server.client().get_multiplexed_async_connection().await.unwrap();
    let () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut admin)
        .await
        .unwrap();
    const REQUESTS: u64 = 25;
    for _ in 0..REQUESTS {
        assert_eq!(status_with(&service, &token).await, StatusCode::OK);
    }
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut admin)
        .await
        .unwrap();
    let mut calls = std::collections::BTreeMap::new();
    for line in stats.lines().filter_map(|line| line.strip_prefix("cmdstat_")) {
        let (name, rest) = line.split_once(':').unwrap();
        let count: u64 = rest
            .split(',')
            .find_map(|kv| kv.strip_prefix("calls="))
            .unwrap()
            .parse()
            .unwrap();
        if name != "info" && !name.starts_with("config") {
            calls.insert(name.to_owned(), count);
        }
    }
    assert_eq!(calls.get("mget"), Some(&REQUESTS), "{calls:?}");
    assert_eq!(
        calls.values().sum::<u64>(),
        REQUESTS,
        "nothing but one MGET per request: {calls:?}"
    );
}

#[tokio::test]
async fn an_outage_fails_closed_or_open_and_recovery_needs_no_restart() {
    let mut server = redis_or_skip!(private, aof);
    let prefix = support::unique_prefix();
    let store = server.store(&prefix);
    let verifier = verifier();
    let closed = protected(
        RevocationLayer::new(verifier.clone(), store.clone()).with_check_timeout(Duration::from_millis(500)),
    );
    let open = protected(
        RevocationLayer::new(verifier.clone(), store.clone())
            .with_check_timeout(Duration::from_millis(500))
            .with_failure_policy(FailurePolicy::FailOpen),
    );
    let revoked = token_for("grace");
    let valid = token_for("grace");
    Revoker::new(verifier.clone(), store.clone())
        .revoke_token(&revoked)
        .await
        .unwrap();
    assert_eq!(status_with(&closed, &revoked).await, StatusCode::UNAUTHORIZED);
    assert_eq!(status_with(&closed, &valid).await, StatusCode::OK);

    server.kill();
    for _ in 0..3 {
        assert_eq!(
            status_with(&closed, &valid).await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(status_with(&open, &valid).await, StatusCode::OK);
    }
    // Even a revoked token is a 503 when closed: the store cannot tell, and a 401
    // would log valid clients out.
    assert_eq!(
        status_with(&closed, &revoked).await,
        StatusCode::SERVICE_UNAVAILABLE
    );

    server.restart();
    let back = std::time::Instant::now();
    let mut recovered = false;
    while back.elapsed() < Duration::from_secs(1) {
        if status_with(&closed, &valid).await == StatusCode::OK {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        recovered,
        "requests did not succeed within a second of Redis coming back"
    );
    assert_eq!(
        status_with(&closed, &revoked).await,
        StatusCode::UNAUTHORIZED,
        "AOF kept the revocation"
    );
}

#[tokio::test]
async fn concurrent_revokes_and_checks_lose_nothing() {
    let server = redis_or_skip!();
    let store = server.store(&support::unique_prefix());
    let mut tasks = Vec::new();
    for worker in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut keys = Vec::new();
            for n in 0..40 {
                let key = tower_jwt_revoke::RevocationKey::token(None, &format!("{worker}-{n}"));
                store.revoke_token(&key, Duration::from_secs(60)).await.unwrap();
                let query = RevocationQuery {
                    token: key,
                    subject: None,
                    session: None,
                    issued_at: None,
                };
                assert!(store.lookup(&query).await.unwrap().token_revoked);
                keys.push(key);
            }
            keys
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    assert_eq!(all.len(), 640);
    for key in all {
        let query = RevocationQuery {
            token: key,
            subject: None,
            session: None,
            issued_at: None,
        };
        assert!(store.lookup(&query).await.unwrap().token_revoked, "lost {key}");
    }
}

/// What a probe token met: accepted, or refused for a reason.
type Outcome = Result<(), Rejection>;

async fn probe(layer: &RevocationLayer, token: &str) -> Outcome {
    let service = protected(layer.clone());
    let request = Request::get("/")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty());
    let response = service.oneshot(request.unwrap()).await.unwrap();
    match response.extensions().get::<Rejection>() {
        Some(rejection) => Err(rejection.clone()),
        None => Ok(()),
    }
}

/// Runs every scenario on a store and returns what each probe met.
async fn scenarios<S: RevocationStore + Clone>(
    make_store: impl Fn() -> S,
) -> Vec<(&'static str, Vec<Outcome>)> {
    let verifier = verifier();
    let later = now() + 1; // issued "after" any watermark set now
    let mut results = Vec::new();

    let layer = RevocationLayer::new(verifier.clone(), make_store());
    let revoker = layer.revoker();
    let (a, b) = (token_for("u1"), token_for("u1"));
    revoker.revoke_token(&a).await.unwrap();
    results.push(("token", vec![probe(&layer, &a).await, probe(&layer, &b).await]));

    let layer = RevocationLayer::new(verifier.clone(), make_store());
    let revoker = layer.revoker();
    let before = token_for("u2");
    let after = mint(json!({ "sub": "u2", "jti": "after", "iat": later, "exp": later + 600 }));
    let no_iat = mint(json!({ "sub": "u2", "jti": "no-iat", "exp": now() + 600 }));
    let other = token_for("u3");
    revoker.revoke_subject_for(None, "u2").await.unwrap();
    results.push((
        "subject",
        vec![
            probe(&layer, &before).await,
            probe(&layer, &after).await,
            probe(&layer, &no_iat).await,
            probe(&layer, &other).await,
        ],
    ));

    let layer = RevocationLayer::new(verifier.clone(), make_store());
    let revoker = layer.revoker();
    let s1 = mint(json!({ "sub": "u4", "sid": "s1", "jti": "1", "iat": now(), "exp": now() + 600 }));
    let s1b = mint(json!({ "sub": "u4", "sid": "s1", "jti": "2", "iat": now(), "exp": now() + 600 }));
    let s2 = mint(json!({ "sub": "u4", "sid": "s2", "jti": "3", "iat": now(), "exp": now() + 600 }));
    revoker.revoke_session_for(None, "s1").await.unwrap();
    results.push((
        "session",
        vec![
            probe(&layer, &s1).await,
            probe(&layer, &s1b).await,
            probe(&layer, &s2).await,
        ],
    ));

    let layer = RevocationLayer::new(verifier.clone(), make_store());
    let revoker = layer.revoker();
    let old = token_for("u5");
    let new = mint(json!({ "sub": "u6", "jti": "new", "iat": later, "exp": later + 600 }));
    revoker.revoke_all().await.unwrap();
    results.push((
        "global",
        vec![probe(&layer, &old).await, probe(&layer, &new).await],
    ));

    // Expiry: a token accepted only thanks to leeway, revoked; its record lapses with it.
    let layer = RevocationLayer::new(verifier.clone(), make_store());
    let revoker = layer.revoker();
    let dying = mint(json!({ "sub": "u7", "jti": "dying", "iat": now() - 100, "exp": now() - LEEWAY + 1 }));
    let before_revoke = probe(&layer, &dying).await;
    revoker.revoke_token(&dying).await.unwrap();
    let revoked = probe(&layer, &dying).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let expired = probe(&layer, &dying).await;
    let dead = mint(json!({ "sub": "u7", "jti": "dead", "exp": now() - LEEWAY - 5 }));
    let dead_revocation = revoker.revoke_token(&dead).await.unwrap();
    assert_eq!(dead_revocation, tower_jwt_revoke::Revocation::AlreadyExpired);
    results.push(("expiry", vec![before_revoke, revoked, expired]));

    results
}

#[tokio::test]
async fn redis_and_memory_stores_agree_on_every_scenario() {
    let server = redis_or_skip!();
    let url = server.url().to_owned();
    let memory = scenarios(InMemoryStore::new).await;
    let redis = scenarios(|| {
        RedisStore::builder()
            .url(url.clone())
            .prefix(support::unique_prefix())
            .build()
            .unwrap()
    })
    .await;

    use tower_jwt_revoke::VerifyError;
    let revoked = |by| Err(Rejection::Revoked(by));
    let expected: Vec<(&str, Vec<Outcome>)> = vec![
        ("token", vec![revoked(RevokedBy::Token), Ok(())]),
        (
            "subject",
            vec![
                revoked(RevokedBy::Subject),
                Ok(()),
                revoked(RevokedBy::Subject),
                Ok(()),
            ],
        ),
        (
            "session",
            vec![revoked(RevokedBy::Session), revoked(RevokedBy::Session), Ok(())],
        ),
        ("global", vec![revoked(RevokedBy::All), Ok(())]),
        (
            "expiry",
            vec![
                Ok(()),
                revoked(RevokedBy::Token),
                Err(Rejection::InvalidToken(VerifyError::Expired)),
            ],
        ),
    ];
    assert_eq!(memory, expected, "in-memory store");
    assert_eq!(redis, expected, "Redis store");
}

/// Issue #9: after Redis restarts, the store's shared connection is stale. The first
/// revocation (a logout) and the first check must still go through, on a fresh
/// connection, instead of failing once and leaving the client with a 503.
#[tokio::test]
async fn the_first_revocation_and_the_first_check_after_a_redis_restart_succeed() {
    let mut server = redis_or_skip!(private, aof);
    let store = server.store(&support::unique_prefix());
    let verifier = verifier();
    let revoker = Revoker::new(verifier.clone(), store.clone());
    let service = protected(RevocationLayer::new(verifier.clone(), store.clone()));
    let before = token_for("ivan");
    revoker.revoke_token(&before).await.unwrap();
    assert_eq!(status_with(&service, &before).await, StatusCode::UNAUTHORIZED);

    // A revocation first.
    server.kill();
    server.restart();
    let logout = token_for("ivan");
    let recorded = revoker.revoke_token(&logout).await;
    assert!(
        recorded.is_ok(),
        "the first revocation after a restart failed: {recorded:?}"
    );
    assert_eq!(status_with(&service, &logout).await, StatusCode::UNAUTHORIZED);

    // A check first.
    server.kill();
    server.restart();
    let valid = token_for("ivan");
    assert_eq!(
        status_with(&service, &valid).await,
        StatusCode::OK,
        "the first check after a restart was not answered"
    );
    assert_eq!(
        status_with(&service, &before).await,
        StatusCode::UNAUTHORIZED,
        "AOF kept the revocation"
    );
    assert_eq!(status_with(&service, &logout).await, StatusCode::UNAUTHORIZED);
}
