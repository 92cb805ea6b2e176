//! Logout that really logs out, on plain hyper: a `tower::Service` behind the layer,
//! served by hyper-util.
//!
//! ```text
//! cargo run --example hyper_server
//! ```
//!
//! | variable          | meaning                                    | default          |
//! |-------------------|--------------------------------------------|------------------|
//! | `BIND`            | address to listen on                       | `127.0.0.1:3001` |
//! | `JWT_SECRET`      | HS256 secret                               | a dev secret     |
//! | `ACCESS_TTL_SECS` | access token lifetime                      | `900`            |
//! | `REDIS_URL`       | use Redis as the store, shared by replicas | in-memory store  |
//! | `REDIS_CLUSTER_NODES` | instead of `REDIS_URL`: a Redis Cluster's seed nodes, comma-separated | none |
//!
//! The same routes and contract as the `axum_logout` example: `POST /login` (JSON
//! `{"username", "password"}`; the demo accepts any username of 1 to 64 printable
//! characters with the password `password`), `GET /me`, `POST /logout`,
//! `POST /logout-all`. The token is accepted as `Authorization: Bearer` or as the
//! `token` cookie that `/login` sets. Served with a header-read timeout (see `serve`).
//!
//! Without a framework, the router is a function matching on method and path. The
//! outer service sends `/login` to an open handler and the other routes to a service
//! wrapped by [`RevocationLayer`], which puts the [`VerifiedToken`] in the request
//! extensions.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use jsonwebtoken::Algorithm;
use tower::ServiceExt;
use tower::util::BoxCloneSyncService;
use tower_jwt_revoke::store::{InMemoryStore, RedisStore, RevocationStore};
mod routes;

use self::routes::{error, login, method_not_allowed, protected_routes};
use tower_jwt_revoke::{
    JwtVerifier, RevocationLayer, Revoker, SigningKey, TokenIssuer, TokenSource, VerificationKey,
};

/// Used when `JWT_SECRET` is not set. Never in production.
const DEV_SECRET: &str = "dev-only-secret-change-me-0123456789abcdef";
const ISSUER: &str = "hyper_server";
const COOKIE: &str = "token";
/// The largest `/login` body read.
const MAX_LOGIN_BODY: usize = 16 * 1024;
/// Usernames longer than this are refused at the door: every byte of it would be in
/// each token, and a token past the verifier's size limit could never be used.
const MAX_USERNAME_LEN: usize = 64;
/// How long a client may take to send its request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Response bodies. `Default` (empty), as the layer's default rejection needs.
pub type Body = Full<Bytes>;

/// The whole app as one cloneable service, ready for hyper.
pub type App = BoxCloneSyncService<Request<Incoming>, Response<Body>, Infallible>;

/// What the demo app is built from.
pub struct DemoConfig {
    /// HS256 secret shared by signer and verifier.
    pub secret: Vec<u8>,
    /// Lifetime of issued access tokens.
    pub access_ttl: Duration,
    /// Where revocations live.
    pub store: Arc<dyn RevocationStore>,
}

#[derive(Clone)]
struct AppState {
    revoker: Revoker,
    /// Mints access tokens from the verifier's own configuration.
    issuer: TokenIssuer,
}

/// The demo app: `/login` is open, `/me`, `/logout` and `/logout-all` are behind the
/// layer, anything else is a 404.
pub fn app(config: DemoConfig) -> App {
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
    let state = AppState {
        revoker: layer.revoker(),
        issuer,
    };

    // Boxed so the type stays nameable.
    let protected = BoxCloneSyncService::new(tower::ServiceBuilder::new().layer(layer).service_fn({
        let state = state.clone();
        move |request: Request<Incoming>| protected_routes(state.clone(), request)
    }));
    let app = tower::service_fn(move |request: Request<Incoming>| {
        let state = state.clone();
        let protected = protected.clone();
        async move {
            match request.uri().path() {
                "/login" if request.method() == Method::POST => Ok(login(state, request).await),
                "/login" => Ok(method_not_allowed("POST")),
                "/me" | "/logout" | "/logout-all" => protected.oneshot(request).await,
                _ => Ok(error(StatusCode::NOT_FOUND, "no such route")),
            }
        }
    });
    BoxCloneSyncService::new(app)
}

/// Serves `app` on `listener` (HTTP/1.1, and HTTP/2 with prior knowledge) until
/// `shutdown` completes, then lets open connections finish for up to five seconds.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: App,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    // A client gets HEADER_READ_TIMEOUT to send its request head: without a timer,
    // hyper waits for ever, and half-sent requests hold file descriptors.
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
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()))
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

#[allow(dead_code)] // the integration tests include this file for `app` and `serve`
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Logs go to stderr, so stdout holds only the "listening on" line and the tour.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_jwt_revoke=debug".into()),
        )
        .init();

    let bind: SocketAddr = std::env::var("BIND")
        .unwrap_or_else(|_| "127.0.0.1:3001".into())
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

    // The URLs may carry a password: log only which kind of Redis is used.
    let store: Arc<dyn RevocationStore> = match (
        std::env::var("REDIS_URL").ok(),
        std::env::var("REDIS_CLUSTER_NODES").ok(),
    ) {
        (Some(_), Some(_)) => return Err("set REDIS_URL or REDIS_CLUSTER_NODES, not both".into()),
        (Some(url), None) => {
            tracing::info!("revocation store: Redis (shared by every replica using it)");
            Arc::new(RedisStore::from_url(url)?)
        }
        (None, Some(nodes)) => {
            tracing::info!("revocation store: Redis Cluster (shared by every replica using it)");
            let seeds = nodes.split(',').map(str::trim).filter(|node| !node.is_empty());
            Arc::new(RedisStore::builder().cluster_nodes(seeds).build()?)
        }
        (None, None) => {
            tracing::info!("revocation store: in-memory (this process only; set REDIS_URL to share it)");
            Arc::new(InMemoryStore::new())
        }
    };

    let app = app(DemoConfig {
        secret: secret.into_bytes(),
        access_ttl,
        store,
    });
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
