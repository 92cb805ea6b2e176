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
//!
//! Routes: `POST /login` (JSON `{"username", "password"}`; the demo accepts any
//! username of 1 to 64 printable characters with the password `password`), `GET /me`,
//! `POST /logout`, `POST /logout-all`. The token is accepted as
//! `Authorization: Bearer` or as the `token` cookie that `/login` sets.
//!
//! The store is chosen at run time from the environment; nothing else in the app names
//! its type (`State<Revoker>` in the handlers, `RevocationLayer` in `app`).
//!
//! Served with the timeouts a server facing the internet needs (see [`serve`]):
//! `axum::serve` has no header-read timeout, so a client that sends half a request
//! would hold its connection, and a file descriptor, for ever.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use jsonwebtoken::Algorithm;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::Deserialize;
use serde_json::json;
use tower_jwt_revoke::health::Readiness;
use tower_jwt_revoke::store::{Acknowledgement, InMemoryStore, MirrorStore, RedisStore, RevocationStore};
use tower_jwt_revoke::{
    JwtVerifier, RevocationLayer, RevokeError, Revoker, SigningKey, TokenIssuer, TokenSource,
    VerificationKey, VerifiedToken,
};

/// Used when `JWT_SECRET` is not set. Never in production.
const DEV_SECRET: &str = "dev-only-secret-change-me-0123456789abcdef";
const ISSUER: &str = "axum_logout";
const COOKIE: &str = "token";
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
    revoker: Revoker,
    /// Mints access tokens from the verifier's own configuration.
    issuer: TokenIssuer,
}

#[derive(Deserialize)]
struct LoginRequest {
    username: String,
    password: String,
}

/// The demo's router: `/login` is open, the other routes are behind the layer.
pub fn app(config: DemoConfig) -> Router {
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
    let state = Arc::new(AppState {
        revoker: layer.revoker(),
        issuer,
    });
    Router::new()
        .route("/me", get(me))
        .route("/logout", post(logout))
        .route("/logout-all", post(logout_all))
        .route_layer(layer)
        // Only `/login` reads a body, so only it needs a request timeout: a timer on
        // every request would cost the checked routes for nothing.
        .route(
            "/login",
            post(login)
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
    // Each sign-in is a session of its own: its tokens carry the session id (`sid`).
    let minted = match state
        .issuer
        .new_session_id()
        .and_then(|session| state.issuer.issue(username, &session))
    {
        Ok(minted) => minted,
        Err(failure) => {
            tracing::error!(error = %failure, "could not mint an access token");
            return error(StatusCode::INTERNAL_SERVER_ERROR, "could not sign the token");
        }
    };
    let expires_in = minted.expires_in().as_secs();
    let token = minted.into_token();
    // Add `Secure` when serving over TLS.
    let cookie = format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={expires_in}");
    let body = Json(json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": expires_in,
    }));
    ([(header::SET_COOKIE, cookie)], body).into_response()
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
async fn logout(State(state): State<Arc<AppState>>, token: VerifiedToken) -> Result<Response, RevokeError> {
    state.revoker.revoke(&token).await?;
    Ok(clear_cookie())
}

async fn logout_all(
    State(state): State<Arc<AppState>>,
    token: VerifiedToken,
) -> Result<Response, RevokeError> {
    // A token without `sub` names no one to log out everywhere: 400, not 503.
    state.revoker.revoke_subject_of(&token).await?;
    Ok(clear_cookie())
}

async fn request_timeout(request: Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => error(StatusCode::REQUEST_TIMEOUT, "request took too long"),
    }
}

fn clear_cookie() -> Response {
    let expired = HeaderValue::from_static("token=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    (StatusCode::NO_CONTENT, [(header::SET_COOKIE, expired)]).into_response()
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// Serves `app` on `listener` until `shutdown` completes, as `axum::serve` does, plus
/// what a server facing the internet needs and `axum::serve` lacks: a client gets
/// [`HEADER_READ_TIMEOUT`] to send its request head (a half-sent request would
/// otherwise hold a file descriptor for ever), and HTTP/2 connections are pinged so
/// dead peers are dropped. [`REQUEST_TIMEOUT`] bounds the one route that reads a body.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_secs(20));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, say: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(app.clone()))
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(5), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after 5 s; closing them");
    }
    Ok(())
}

/// The store the environment (`var`) asks for: Redis on one server (`REDIS_URL`), on a
/// cluster (`REDIS_CLUSTER_NODES`, its seed nodes comma-separated) or through Sentinel
/// (`REDIS_SENTINELS`), with a local mirror on `REVOCATION_MIRROR=1`; without any, in
/// memory.
pub async fn store_from_env(
    var: impl Fn(&str) -> Option<String>,
) -> Result<Arc<dyn RevocationStore>, Box<dyn std::error::Error>> {
    // The URLs may carry a password: log only which kind of Redis is used.
    let list = |nodes: String| -> Vec<String> {
        nodes
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(String::from)
            .collect()
    };
    let builder = match (
        var("REDIS_URL"),
        var("REDIS_CLUSTER_NODES"),
        var("REDIS_SENTINELS"),
    ) {
        (Some(url), None, None) => RedisStore::builder().url(url),
        (None, Some(nodes), None) => RedisStore::builder().cluster_nodes(list(nodes)),
        (None, None, Some(sentinels)) => {
            let master = var("REDIS_MASTER_NAME").unwrap_or_else(|| "mymaster".into());
            RedisStore::builder().sentinel(list(sentinels), master)
        }
        (None, None, None) => {
            tracing::info!("revocation store: in-memory (this process only; set REDIS_URL to share it)");
            return Ok(Arc::new(InMemoryStore::new()));
        }
        _ => return Err("set one of REDIS_URL, REDIS_CLUSTER_NODES, REDIS_SENTINELS".into()),
    };
    let replicas: u32 = var("REDIS_ACK_REPLICAS").map_or(Ok(0), |n| n.parse())?;
    let builder = match replicas {
        0 => builder,
        n => builder.acknowledge(Acknowledgement::replicas(n)),
    };
    let redis = builder.build()?;
    tracing::info!(
        cluster = redis.is_cluster(),
        ack_replicas = replicas,
        "revocation store: Redis (shared by every replica using it)"
    );
    if var("REVOCATION_MIRROR").is_some_and(|v| v == "1") {
        tracing::info!("revocation store: with a local mirror (checks answered from memory)");
        let mirror = MirrorStore::start(redis);
        if let Err(error) = mirror.wait_until_synced(Duration::from_secs(10)).await {
            tracing::warn!(%error, "starting anyway; checks go to Redis until the mirror is in sync");
        }
        return Ok(Arc::new(mirror));
    }
    Ok(Arc::new(redis))
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

    let store = store_from_env(|name| std::env::var(name).ok()).await?;

    let mut app = app(DemoConfig {
        secret: secret.into_bytes(),
        access_ttl,
        store: Arc::clone(&store),
    });
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
"#
    );
    serve(listener, app, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
