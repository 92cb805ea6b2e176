//! The hand-written peers `benches/http_load.sh` compares the layer against: the
//! `axum_logout` example's `POST /login` and `GET /me`, verified by a tiny hand-written
//! middleware calling jsonwebtoken directly, with **no** revocation check (so no logout
//! either); or, with `REDIS_URL`, with the revocation check one writes by hand: one
//! `GET revoked:t:{jti}` per request on a shared multiplexed connection, and a
//! `POST /logout` that `SET`s that key for the token's remaining lifetime.
//!
//! ```text
//! cargo run --release --example baseline_server
//! REDIS_URL=redis://127.0.0.1:6379 cargo run --release --example baseline_server
//! ```
//!
//! | variable          | meaning                   | default          |
//! |-------------------|---------------------------|------------------|
//! | `BIND`            | address to listen on      | `127.0.0.1:3000` |
//! | `JWT_SECRET`      | HS256 secret              | a dev secret     |
//! | `ACCESS_TTL_SECS` | access token lifetime     | `900`            |
//! | `REDIS_URL`       | check (and `/logout`) in Redis | no revocation |
//!
//! Tokens, claims, validation (signature, `exp`, `iss`, `iat` required, 30 s leeway)
//! and the `/me` answer are the same as `axum_logout`'s, so the difference between
//! the two is what the revocation layer costs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tower_jwt_revoke::jsonwebtoken::{self, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use tower_jwt_revoke::redis::{self, aio::MultiplexedConnection};

/// Used when `JWT_SECRET` is not set. Never in production.
const DEV_SECRET: &str = "dev-only-secret-change-me-0123456789abcdef";
const ISSUER: &str = "axum_logout";

#[derive(Clone)]
struct AppState {
    signing_key: Arc<EncodingKey>,
    decoding_key: Arc<DecodingKey>,
    validation: Arc<Validation>,
    access_ttl: Duration,
    redis: Option<MultiplexedConnection>,
}

#[derive(Clone, Serialize, Deserialize)]
struct Claims {
    sub: String,
    jti: String,
    iss: String,
    iat: u64,
    exp: u64,
}

#[derive(Deserialize)]
struct LoginRequest {
    username: String,
    password: String,
}

fn app(secret: &[u8], access_ttl: Duration, redis: Option<MultiplexedConnection>) -> Router {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_issuer(&[ISSUER]);
    validation.set_required_spec_claims(&["exp", "iat"]);
    validation.leeway = 30;
    let state = AppState {
        signing_key: Arc::new(EncodingKey::from_secret(secret)),
        decoding_key: Arc::new(DecodingKey::from_secret(secret)),
        validation: Arc::new(validation),
        access_ttl,
        redis,
    };
    Router::new()
        .route("/me", get(me))
        .route("/logout", post(logout))
        .route_layer(middleware::from_fn_with_state(state.clone(), verify))
        .route("/login", post(login))
        .with_state(state)
}

/// The whole authentication of the baseline: `Authorization: Bearer`, then one
/// `jsonwebtoken::decode`, then (with `REDIS_URL`) one `GET`.
async fn verify(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let Some(token) = token else {
        return (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")]).into_response();
    };
    let claims = match jsonwebtoken::decode::<Claims>(token, &state.decoding_key, &state.validation) {
        Ok(data) => data.claims,
        Err(_) => return invalid_token(),
    };
    if let Some(mut redis) = state.redis.clone() {
        let revoked: Result<Option<String>, _> = redis::cmd("GET")
            .arg(revoked_key(&claims.jti))
            .query_async(&mut redis)
            .await;
        match revoked {
            Ok(None) => {}
            Ok(Some(_)) => return invalid_token(),
            Err(_) => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
        }
    }
    request.extensions_mut().insert(claims);
    next.run(request).await
}

fn revoked_key(jti: &str) -> String {
    format!("revoked:t:{jti}")
}

/// The hand-written logout: the token's key, for what is left of its lifetime. Without
/// Redis there is nothing to revoke into: 404, as if the route did not exist.
async fn logout(State(state): State<AppState>, Extension(claims): Extension<Claims>) -> Response {
    let Some(mut redis) = state.redis.clone() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let remaining = claims.exp.saturating_sub(now);
    if remaining > 0 {
        let written: Result<(), _> = redis::cmd("SET")
            .arg(revoked_key(&claims.jti))
            .arg(1)
            .arg("EX")
            .arg(remaining)
            .query_async(&mut redis)
            .await;
        if written.is_err() {
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    }
    StatusCode::NO_CONTENT.into_response()
}

fn invalid_token() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, r#"Bearer error="invalid_token""#)],
    )
        .into_response()
}

async fn me(Extension(claims): Extension<Claims>) -> Json<serde_json::Value> {
    Json(json!({
        "sub": claims.sub,
        "jti": claims.jti,
        "iat": claims.iat,
        "exp": claims.exp,
    }))
}

async fn login(State(state): State<AppState>, Json(request): Json<LoginRequest>) -> Response {
    if request.username.trim().is_empty() || request.password != "password" {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({ "error": "invalid username or password" })),
        )
            .into_response();
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let claims = Claims {
        sub: request.username,
        jti: uuid::Uuid::new_v4().to_string(),
        iss: ISSUER.into(),
        iat: now,
        exp: now + state.access_ttl.as_secs(),
    };
    match jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &state.signing_key) {
        Ok(token) => Json(json!({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": state.access_ttl.as_secs(),
        }))
        .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Both signature backends may be compiled in (`--all-features`): choose one.
    tower_jwt_revoke::install_crypto_provider();
    // The same logging set-up as axum_logout, so both pay the same for it.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_jwt_revoke=debug".into()),
        )
        .init();

    let bind: SocketAddr = std::env::var("BIND")
        .unwrap_or_else(|_| "127.0.0.1:3000".into())
        .parse()?;
    let secret = std::env::var("JWT_SECRET").unwrap_or_else(|_| DEV_SECRET.into());
    let access_ttl = Duration::from_secs(match std::env::var("ACCESS_TTL_SECS") {
        Ok(value) => value
            .parse()
            .map_err(|_| format!("ACCESS_TTL_SECS must be a number of seconds, got {value:?}"))?,
        Err(_) => 900,
    });

    let redis = match std::env::var("REDIS_URL") {
        Ok(url) => Some(
            redis::Client::open(url)?
                .get_multiplexed_async_connection()
                .await?,
        ),
        Err(_) => None,
    };

    let listener = tokio::net::TcpListener::bind(bind).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app(secret.as_bytes(), access_ttl, redis))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
