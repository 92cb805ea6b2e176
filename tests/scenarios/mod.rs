//! The scenarios every store must pass with the same results, shared by the single
//! server suite (tests/redis_store.rs) and the cluster suite (tests/redis_cluster.rs):
//! the seed flow through the axum example, token, subject, session and global
//! revocations, and expiry with leeway.

#![allow(dead_code)] // each suite uses part of it

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use tower_jwt_revoke::jsonwebtoken::{self, Algorithm, EncodingKey, Header};
use tower_jwt_revoke::store::{RevocationStore, RevokedBy};
use tower_jwt_revoke::{JwtVerifier, Rejection, RevocationLayer, VerificationKey};

#[path = "../../examples/axum_logout.rs"]
#[allow(dead_code)]
pub mod axum_logout;

pub const SECRET: &[u8] = b"redis-store-test-secret-0123456789";
pub const LEEWAY: u64 = 30;
pub const MAX_LIFETIME: Duration = Duration::from_secs(3600);

pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

pub fn verifier() -> JwtVerifier {
    JwtVerifier::builder()
        .key(VerificationKey::hmac(Algorithm::HS256, SECRET).unwrap())
        .leeway_secs(LEEWAY)
        .max_token_lifetime(MAX_LIFETIME)
        // The scenarios include tokens without `iat`, which a watermark must refuse.
        .allow_missing_iat()
        .build()
        .unwrap()
}

pub fn mint(claims: Value) -> String {
    // With both signature backends enabled, jsonwebtoken needs one chosen before it signs.
    tower_jwt_revoke::install_crypto_provider();
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

pub fn token_for(sub: &str) -> String {
    mint(json!({ "sub": sub, "jti": uuid::Uuid::new_v4().to_string(), "iat": now(), "exp": now() + 600 }))
}

/// A service behind the layer that answers 200 "ok" (boxed, so that its futures are
/// known to be `Send` and it can serve from spawned tasks).
pub fn protected(
    layer: RevocationLayer,
) -> tower::util::BoxCloneSyncService<Request<Body>, http::Response<Body>, std::convert::Infallible> {
    tower::util::BoxCloneSyncService::new(
        tower::ServiceBuilder::new()
            .layer(layer)
            .service_fn(|_request: Request<Body>| async { Ok(http::Response::new(Body::from("ok"))) }),
    )
}

pub async fn status_with<S>(service: &S, token: &str) -> StatusCode
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

pub async fn call(
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

pub async fn login(app: &axum::Router, user: &str) -> String {
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

pub fn demo_app(store: impl RevocationStore) -> axum::Router {
    axum_logout::app(axum_logout::DemoConfig {
        secret: SECRET.to_vec(),
        access_ttl: Duration::from_secs(900),
        store: Arc::new(store),
    })
}

/// Waits until the Unix clock enters a new second, so a token minted next has an
/// `iat` after a watermark set before (watermarks have one-second resolution).
/// A user logs in on replica A, is served by B, logs out on A: B refuses the token.
pub async fn logout_on_one_replica_is_refused_by_another(a: &axum::Router, b: &axum::Router, user: &str) {
    let token = login(a, user).await;
    assert_eq!(call(b, "GET", "/me", Some(&token), None).await.0, StatusCode::OK);
    assert_eq!(
        call(a, "POST", "/logout", Some(&token), None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        call(b, "GET", "/me", Some(&token), None).await.0,
        StatusCode::UNAUTHORIZED
    );
}

/// While the store cannot answer: a fail-closed layer answers 503 to every token, even
/// a revoked one (the store cannot tell, and a 401 would log valid clients out); a
/// fail-open layer lets a valid one in.
pub async fn outage_fails_closed_or_open<S>(closed: &S, open: &S, valid: &str, revoked: &str)
where
    S: tower::Service<Request<Body>, Response = http::Response<Body>, Error = std::convert::Infallible>
        + Clone,
{
    for _ in 0..3 {
        assert_eq!(status_with(closed, valid).await, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(status_with(open, valid).await, StatusCode::OK);
    }
    assert_eq!(
        status_with(closed, revoked).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

pub async fn next_second() {
    let elapsed = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    tokio::time::sleep(
        Duration::from_nanos(1_000_000_000 - u64::from(elapsed.subsec_nanos())) + Duration::from_millis(5),
    )
    .await;
}

/// The seed flow through the axum example: log in, use, log out (refused after), log in
/// again; then log out everywhere refuses every token of that user issued until then,
/// and none of another user's, and a token issued later is accepted.
pub async fn seed_flow(app: &axum::Router) {
    let app = app.clone();

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

/// What a probe token met: accepted, or refused for a reason.
pub type Outcome = Result<(), Rejection>;

pub async fn probe(layer: &RevocationLayer, token: &str) -> Outcome {
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
pub async fn scenarios<S: RevocationStore + Clone>(
    make_store: impl Fn() -> S,
) -> Vec<(&'static str, Vec<Outcome>)> {
    let verifier = verifier();
    // Issued "after" any watermark set within the next second: taken afresh at each
    // step, since on a busy machine the steps before may take more than a second.
    let later = || now() + 2;
    let mut results = Vec::new();

    let layer = RevocationLayer::new(verifier.clone(), make_store());
    let revoker = layer.revoker();
    let (a, b) = (token_for("u1"), token_for("u1"));
    revoker.revoke_token(&a).await.unwrap();
    results.push(("token", vec![probe(&layer, &a).await, probe(&layer, &b).await]));

    let layer = RevocationLayer::new(verifier.clone(), make_store());
    let revoker = layer.revoker();
    let before = token_for("u2");
    let iat = later();
    let after = mint(json!({ "sub": "u2", "jti": "after", "iat": iat, "exp": iat + 600 }));
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
    let iat = later();
    let new = mint(json!({ "sub": "u6", "jti": "new", "iat": iat, "exp": iat + 600 }));
    revoker.revoke_all().await.unwrap();
    results.push((
        "global",
        vec![probe(&layer, &old).await, probe(&layer, &new).await],
    ));

    // What a token revocation covers: that subject's token. Tokens of other subjects
    // that an issuer gave the same `jti` (twenty, so that some share the revoked one's
    // bucket on Redis and some do not) are accepted; a revocation by the token's key
    // alone, which knows no subject, refuses them all.
    let layer = RevocationLayer::new(verifier.clone(), make_store());
    let revoker = layer.revoker();
    let shared_jti =
        |sub: &str| mint(json!({ "sub": sub, "jti": "shared", "iat": now(), "exp": now() + 600 }));
    let revoked = shared_jti("u8");
    revoker.revoke_token(&revoked).await.unwrap();
    let mut outcomes = vec![probe(&layer, &revoked).await];
    for n in 0..20 {
        outcomes.push(probe(&layer, &shared_jti(&format!("other-{n}"))).await);
    }
    let without_sub = mint(json!({ "jti": "shared", "iat": now(), "exp": now() + 600 }));
    outcomes.push(probe(&layer, &without_sub).await);
    let alone = tower_jwt_revoke::RevocationKey::token(None, "shared");
    revoker
        .store()
        .revoke_token(&alone, Duration::from_secs(600))
        .await
        .unwrap();
    outcomes.push(probe(&layer, &shared_jti("other-0")).await);
    outcomes.push(probe(&layer, &without_sub).await);
    results.push(("same jti", outcomes));

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

/// What every store must answer to [`scenarios`].
pub fn expected() -> Vec<(&'static str, Vec<Outcome>)> {
    use tower_jwt_revoke::VerifyError;
    let revoked = |by| Err(Rejection::Revoked(by));
    vec![
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
        ("same jti", {
            let mut outcomes = vec![revoked(RevokedBy::Token)];
            outcomes.extend(std::iter::repeat_n(Ok(()), 21));
            outcomes.extend([revoked(RevokedBy::Token), revoked(RevokedBy::Token)]);
            outcomes
        }),
        (
            "expiry",
            vec![
                Ok(()),
                revoked(RevokedBy::Token),
                Err(Rejection::InvalidToken(VerifyError::Expired)),
            ],
        ),
    ]
}
