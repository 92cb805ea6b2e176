//! Logout that really logs out, in an Axum app.
//!
//! ```text
//! cargo run --example axum_logout
//! ```
//!
//! | variable          | meaning                                   | default          |
//! |-------------------|-------------------------------------------|------------------|
//! | `BIND`            | address to listen on                      | `127.0.0.1:3000` |
//! | `JWT_SECRET`      | HS256 secret                              | a dev secret     |
//! | `ACCESS_TTL_SECS` | access token lifetime                     | `900`            |
//! | `REDIS_URL`       | use Redis as the store, shared by replicas | in-memory store  |
//! | `REDIS_CLUSTER_NODES` | instead of `REDIS_URL`: a Redis Cluster's seed nodes, comma-separated (`redis://127.0.0.1:7000,redis://127.0.0.1:7001`) | none |
//! | `REDIS_SENTINELS` | instead: Redis Sentinels, comma-separated, watching the master `REDIS_MASTER_NAME` (default `mymaster`) | none |
//! | `REDIS_ACK_REPLICAS` | with `REDIS_URL` or `REDIS_SENTINELS`: a logout returns once this many replicas confirmed it (`WAIT`, 500 ms) | `0` |
//! | `REVOCATION_MIRROR` | `1` (with any Redis): answer checks from a local mirror | off |
//! | `METRICS`         | `1`: serve `GET /metrics` (Prometheus) and `GET /ready` (readiness) | off |
//! | `REFRESH_TTL_SECS` | a sign-in's refresh tokens live at most this long (its family's absolute lifetime) | `2592000` (30 days) |
//! | `REFRESH_IDLE_SECS` | ... and end after this long without a refresh | `604800` (7 days) |
//! | `INSECURE_COOKIES` | `1`: the `refresh_token` cookie without `Secure` (plain-HTTP development) | off |
//!
//! Routes: `POST /login` (JSON `{"username", "password"}`; the demo accepts any
//! username of 1 to 64 printable characters with the password `password`), `GET /me`,
//! `POST /logout`, `POST /logout-all`, `GET /events` and `GET /ws`. The token is accepted
//! as `Authorization: Bearer` or as the `token` cookie that `/login` sets.
//!
//! Open connections end when their token is refused (a logout, a log-out-everywhere,
//! a global revocation, or its expiry), not only new requests: `GET /events` is a
//! Server-Sent Events stream sending `data: {"n": <counter>}` every 200 ms, which
//! ends; `GET /ws` is a WebSocket echoing text messages, closed with code 1008 (policy
//! violation). Both await `VerifiedToken::revoked` (see `axum_logout/streams.rs`). With
//! the in-memory store or `REVOCATION_MIRROR=1` they end as the revocation arrives;
//! with plain Redis within the layer's watch interval (1 s).
//!
//! Refresh tokens: `/login` answers `{"access_token", "token_type", "expires_in",
//! "refresh_token"}` and sets the `refresh_token` cookie (`HttpOnly`, `Secure`,
//! `SameSite=Strict`, `Path=/refresh`). `POST /refresh` takes it from the JSON body
//! `{"refresh_token"}` or from that cookie and answers a new pair in the same shape;
//! each refresh token works once: a copy used after it was refreshed is a reuse, which
//! ends the session (its access tokens are refused too). `/logout` ends the session's
//! refresh tokens, `/logout-all` every session's of the user.
//!
//! The store is chosen at run time from the environment; nothing else in the app names
//! its type (`Sessions` in the handlers, `RevocationLayer` in `app`).
//!
//! Served with the timeouts a server facing the internet needs (see [`serve`]):
//! `axum::serve` has no header-read timeout, so a client that sends half a request
//! would hold its connection, and a file descriptor, for ever.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{AppendHeaders, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use jsonwebtoken::Algorithm;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::Deserialize;
use serde_json::json;
use tower_jwt_revoke::health::Readiness;
use tower_jwt_revoke::refresh::{InMemoryRefreshStore, RefreshStore, SessionError, Sessions};
use tower_jwt_revoke::store::RevocationStore;
use tower_jwt_revoke::{
    JwtVerifier, RevocationLayer, SigningKey, TokenIssuer, TokenSource, VerificationKey, VerifiedToken,
};

#[path = "axum_logout/refresh.rs"]
mod refresh;
#[path = "axum_logout/serving.rs"]
mod serving;
#[path = "axum_logout/streams.rs"]
mod streams;

use self::refresh::{refresh_tokens, session_error, tokens};
// Public for the integration tests that include this file, each using some of them.
#[allow(unused_imports)]
pub use self::serving::{serve, store_from_env, stores_from_env};

/// Used when `JWT_SECRET` is not set. Never in production.
const DEV_SECRET: &str = "dev-only-secret-change-me-0123456789abcdef";
const ISSUER: &str = "axum_logout";
const COOKIE: &str = "token";
const REFRESH_COOKIE: &str = "refresh_token";
/// Usernames longer than this are refused at the door: every byte of it would be in
/// each token, and a token past the verifier's size limit could never be used.
const MAX_USERNAME_LEN: usize = 64;
/// The largest `/login` body accepted.
const MAX_LOGIN_BODY: usize = 16 * 1024;
/// How long a client may take to send its request head, then its whole request.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What the demo app is built from.
pub struct DemoConfig {
    /// HS256 secret shared by signer and verifier.
    pub secret: Vec<u8>,
    /// Lifetime of issued access tokens.
    pub access_ttl: Duration,
    /// Where revocations live.
    pub store: Arc<dyn RevocationStore>,
}

/// Refresh tokens: where their families live and how long.
pub struct RefreshConfig {
    /// Where families of refresh tokens live (shared by replicas when it is Redis).
    pub store: Arc<dyn RefreshStore>,
    /// A family's absolute lifetime.
    pub ttl: Duration,
    /// How long a family may go without a refresh.
    pub idle: Duration,
    /// Whether the `refresh_token` cookie is `Secure` (off only for plain HTTP).
    pub secure_cookies: bool,
}

impl RefreshConfig {
    /// Families in this process, with the defaults (30 days, 7 days idle).
    pub fn in_memory() -> Self {
        Self {
            store: Arc::new(InMemoryRefreshStore::new()),
            ttl: tower_jwt_revoke::refresh::DEFAULT_FAMILY_LIFETIME,
            idle: tower_jwt_revoke::refresh::DEFAULT_IDLE_TIMEOUT,
            secure_cookies: true,
        }
    }
}

/// `GET /metrics` (the Prometheus text format of what the crate counts) and
/// `GET /ready` (the store's readiness, 200 or 503 with JSON), outside the layer:
/// scrapers and probes carry no token.
pub fn operations(metrics: PrometheusHandle, store: Arc<dyn RevocationStore>) -> Router {
    Router::new()
        .route("/metrics", get(move || std::future::ready(metrics.render())))
        .route_service("/ready", Readiness::new(store))
}

/// Shared behind one `Arc`: axum clones the state into every request's handler, and
/// one reference count is cheaper than a clone of each field.
struct AppState {
    /// Sign-in, refresh and logout: access tokens from the verifier's own
    /// configuration, refresh tokens rotated on every use.
    sessions: Sessions,
    refresh_ttl: Duration,
    secure_cookies: bool,
}

#[derive(Deserialize)]
struct LoginRequest {
    username: String,
    password: String,
}

/// The demo's router, its refresh-token families kept in this process.
pub fn app(config: DemoConfig) -> Router {
    app_with_refresh(config, RefreshConfig::in_memory())
}

/// The demo's router: `/login` and `/refresh` are open, the other routes are behind
/// the layer.
pub fn app_with_refresh(config: DemoConfig, refresh: RefreshConfig) -> Router {
    let verifier = JwtVerifier::builder()
        .key(VerificationKey::hmac(Algorithm::HS256, &config.secret).expect("JWT secret must not be empty"))
        .issuer(ISSUER)
        // Watermarks ("log out everywhere") need to outlive only the tokens we issue.
        .max_token_lifetime(config.access_ttl)
        .build()
        .expect("the demo's verifier configuration is valid");
    let issuer = TokenIssuer::builder(&verifier)
        .signing_key(
            SigningKey::hmac(Algorithm::HS256, &config.secret).expect("JWT secret must not be empty"),
        )
        .lifetime(config.access_ttl)
        .build()
        .expect("the demo's issuer mints what its verifier accepts");
    let layer = RevocationLayer::new(verifier, config.store)
        .with_token_sources([TokenSource::AuthorizationBearer, TokenSource::cookie(COOKIE)]);
    let sessions = Sessions::from_arc(issuer, layer.revoker(), refresh.store)
        .with_family_lifetime(refresh.ttl)
        .with_idle_timeout(refresh.idle);
    let state = Arc::new(AppState {
        sessions,
        refresh_ttl: refresh.ttl,
        secure_cookies: refresh.secure_cookies,
    });
    Router::new()
        .route("/me", get(me))
        .route("/logout", post(logout))
        .route("/logout-all", post(logout_all))
        .route("/events", get(streams::events))
        .route("/ws", get(streams::websocket))
        .route_layer(layer)
        // Only `/login` and `/refresh` read a body, so only they need a request
        // timeout: a timer on every request would cost the checked routes for nothing.
        .route(
            "/login",
            post(login)
                .layer(DefaultBodyLimit::max(MAX_LOGIN_BODY))
                .layer(middleware::from_fn(request_timeout)),
        )
        .route(
            "/refresh",
            post(refresh_tokens)
                .layer(DefaultBodyLimit::max(MAX_LOGIN_BODY))
                .layer(middleware::from_fn(request_timeout)),
        )
        .with_state(state)
}

async fn login(
    State(state): State<Arc<AppState>>,
    request: Result<Json<LoginRequest>, JsonRejection>,
) -> Response {
    let Json(request) = match request {
        Ok(request) => request,
        Err(rejection) => return error(rejection.status(), &rejection.body_text()),
    };
    let username = request.username.trim();
    if username.is_empty() {
        return error(StatusCode::BAD_REQUEST, "username must not be empty");
    }
    if username.chars().count() > MAX_USERNAME_LEN || username.chars().any(char::is_control) {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("username must be at most {MAX_USERNAME_LEN} printable characters"),
        );
    }
    if request.password != "password" {
        return error(StatusCode::UNAUTHORIZED, "invalid username or password");
    }
    // Each sign-in is a session of its own: its tokens carry the session id (`sid`),
    // and its refresh tokens are one family.
    match state.sessions.sign_in(username).await {
        Ok(pair) => tokens(&state, &pair),
        Err(failure) => session_error(&failure),
    }
}

async fn me(token: VerifiedToken) -> Json<serde_json::Value> {
    Json(json!({
        "sub": token.subject(),
        "jti": token.token_id(),
        "iat": token.issued_at(),
        "exp": token.expires_at(),
    }))
}

// A `RevokeError` is a response: 503 with `Retry-After` when the store failed (the
// client retries), 400 for a request that can never succeed. With REDIS_ACK_REPLICAS,
// a logout no replica confirmed in time (`RevokeError::Unacknowledged`) is a 503 too:
// the token is refused already, but a failover in the next moments could let it back
// in, so the client is asked to log out again (safe: a revocation is idempotent). An
// app that prefers telling its user "logged out" at once matches that variant and
// answers `clear_cookie()`, accepting that window.
//
// Logout revokes the session (every access token of it) and ends its refresh tokens.
async fn logout(State(state): State<Arc<AppState>>, token: VerifiedToken) -> Response {
    match state.sessions.log_out(&token).await {
        Ok(()) => clear_cookie(),
        Err(SessionError::Revoke(error)) => error.into_response(),
        Err(failure) => session_error(&failure),
    }
}

async fn logout_all(State(state): State<Arc<AppState>>, token: VerifiedToken) -> Response {
    // A token without `sub` names no one to log out everywhere: 400, not 503.
    match state.sessions.log_out_everywhere(&token).await {
        Ok(()) => clear_cookie(),
        Err(SessionError::Revoke(error)) => error.into_response(),
        Err(failure) => session_error(&failure),
    }
}

async fn request_timeout(request: Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => error(StatusCode::REQUEST_TIMEOUT, "request took too long"),
    }
}

fn clear_cookie() -> Response {
    let expired = HeaderValue::from_static("token=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    let refresh =
        HeaderValue::from_static("refresh_token=; HttpOnly; SameSite=Strict; Path=/refresh; Max-Age=0");
    (
        StatusCode::NO_CONTENT,
        AppendHeaders([(header::SET_COOKIE, expired), (header::SET_COOKIE, refresh)]),
    )
        .into_response()
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

#[allow(dead_code)] // the integration tests include this file for `app` and `serve`
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Logs go to stderr, so stdout holds only the "listening on" line and the tour.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // `RUST_LOG=info,tower_jwt_revoke=debug` shows every check: a span and a
                // line per request, which is not free.
                .unwrap_or_else(|_| "info".into()),
        )
        .init();

    let bind: SocketAddr = std::env::var("BIND")
        .unwrap_or_else(|_| "127.0.0.1:3000".into())
        .parse()?;
    let secret = std::env::var("JWT_SECRET").unwrap_or_else(|_| {
        tracing::warn!("JWT_SECRET is not set; using a development secret. Never do this in production.");
        DEV_SECRET.into()
    });
    let access_ttl = Duration::from_secs(match std::env::var("ACCESS_TTL_SECS") {
        Ok(value) => value
            .parse()
            .map_err(|_| format!("ACCESS_TTL_SECS must be a number of seconds, got {value:?}"))?,
        Err(_) => 900,
    });

    let seconds = |name: &str, default: u64| -> Result<Duration, String> {
        match std::env::var(name) {
            Ok(value) => value
                .parse()
                .map(Duration::from_secs)
                .map_err(|_| format!("{name} must be a number of seconds, got {value:?}")),
            Err(_) => Ok(Duration::from_secs(default)),
        }
    };
    let refresh_ttl = seconds("REFRESH_TTL_SECS", 30 * 24 * 60 * 60)?;
    let refresh_idle = seconds("REFRESH_IDLE_SECS", 7 * 24 * 60 * 60)?;
    let secure_cookies = !std::env::var("INSECURE_COOKIES").is_ok_and(|v| v == "1");

    let (store, refresh_store) = stores_from_env(|name| std::env::var(name).ok()).await?;

    let mut app = app_with_refresh(
        DemoConfig {
            secret: secret.into_bytes(),
            access_ttl,
            store: Arc::clone(&store),
        },
        RefreshConfig {
            store: refresh_store,
            ttl: refresh_ttl,
            idle: refresh_idle,
            secure_cookies,
        },
    );
    if std::env::var("METRICS").is_ok_and(|v| v == "1") {
        // The app picks the exporter; the crate only talks to the `metrics` facade.
        let handle = PrometheusBuilder::new().install_recorder()?;
        app = app.merge(operations(handle, store));
        tracing::info!("serving GET /metrics and GET /ready");
    }
    let listener = tokio::net::TcpListener::bind(bind).await?;
    let addr = listener.local_addr()?;
    println!("listening on http://{addr}");
    println!(
        r#"
try it:
  login() {{ curl -s -X POST http://{addr}/login -H 'content-type: application/json' \
               -d '{{"username":"alice","password":"password"}}' | sed 's/.*"access_token":"\([^"]*\)".*/\1/'; }}
  TOKEN=$(login); OTHER=$(login)                                          # two sessions of alice
  curl -i http://{addr}/me -H "authorization: Bearer $TOKEN"              # 200
  curl -i -X POST http://{addr}/logout -H "authorization: Bearer $TOKEN"  # 204
  curl -i http://{addr}/me -H "authorization: Bearer $TOKEN"              # 401 token revoked
  THIRD=$(login)
  curl -i -X POST http://{addr}/logout-all -H "authorization: Bearer $THIRD"  # 204: log out everywhere
  curl -i http://{addr}/me -H "authorization: Bearer $OTHER"              # 401 token revoked
  FOURTH=$(login)
  curl -N http://{addr}/events -H "authorization: Bearer $FOURTH" &        # data: {{"n":0}} ...
  curl -s -X POST http://{addr}/logout -H "authorization: Bearer $FOURTH" # the stream ends
"#
    );
    serve(listener, app, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
