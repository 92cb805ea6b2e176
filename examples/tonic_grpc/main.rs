//! Logout that really logs out, in a tonic gRPC service.
//!
//! ```text
//! cargo run --example tonic_grpc
//! ```
//!
//! | variable          | meaning                                    | default           |
//! |-------------------|--------------------------------------------|-------------------|
//! | `BIND`            | address to listen on                       | `127.0.0.1:50051` |
//! | `JWT_SECRET`      | HS256 secret                               | a dev secret      |
//! | `ACCESS_TTL_SECS` | access token lifetime                      | `900`             |
//! | `REDIS_URL`       | use Redis as the store, shared by replicas | in-memory store   |
//! | `REDIS_CLUSTER_NODES` | instead of `REDIS_URL`: a Redis Cluster's seed nodes, comma-separated | none |
//!
//! Two services (see `auth.proto` beside this file): `auth.v1.Login/Login` is open to
//! everyone (the demo accepts any non-empty username with the password `password`);
//! `auth.v1.Session/Whoami`, `auth.v1.Session/Logout` and `auth.v1.Session/Watch` are
//! behind [`RevocationLayer`], which reads the token from the `authorization: Bearer …`
//! metadata. Refusals are gRPC statuses: `UNAUTHENTICATED` for a missing, invalid or
//! revoked token, `UNAVAILABLE` when the store cannot answer.
//!
//! `Watch` is a server stream (a counter every 200 ms) that ends with `UNAUTHENTICATED`
//! when its token is refused while it is open: logged out (on any replica sharing the
//! store), or expired. It awaits `VerifiedToken::revoked`.
//!
//! The Rust code for `auth.proto` is generated once and checked in (`auth.v1.rs`, whose
//! header says how), so building this needs neither `protoc` nor a build script.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use tonic::service::{LayerExt, Routes};
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};
use tower_jwt_revoke::store::{InMemoryStore, RedisStore, RevocationStore};
use tower_jwt_revoke::tonic::RequestExt as _;
use tower_jwt_revoke::{JwtVerifier, RevocationLayer, Revoker, SigningKey, TokenIssuer, VerificationKey};

/// The messages, servers and clients generated from `auth.proto`.
pub mod pb {
    include!("auth.v1.rs");
}

use pb::login_server::{Login, LoginServer};
use pb::session_server::{Session, SessionServer};
use pb::{
    LoginRequest, LoginResponse, LogoutRequest, LogoutResponse, WatchEvent, WatchRequest, WhoamiRequest,
    WhoamiResponse,
};

/// Used when `JWT_SECRET` is not set. Never in production.
const DEV_SECRET: &str = "dev-only-secret-change-me-0123456789abcdef";
const ISSUER: &str = "tonic_grpc";
/// Usernames longer than this are refused at the door: every byte of it would be in
/// each token, and a token past the verifier's size limit could never be used.
const MAX_USERNAME_LEN: usize = 64;
/// How often `Watch` sends its counter.
const WATCH_TICK: Duration = Duration::from_millis(200);

/// What the demo service is built from.
pub struct DemoConfig {
    /// HS256 secret shared by signer and verifier.
    pub secret: Vec<u8>,
    /// Lifetime of issued access tokens.
    pub access_ttl: Duration,
    /// Where revocations live.
    pub store: Arc<dyn RevocationStore>,
}

/// `auth.v1.Login`: open, issues tokens.
struct LoginService {
    /// Mints access tokens from the verifier's own configuration.
    issuer: TokenIssuer,
}

/// `auth.v1.Session`: behind the layer, so every call carries a verified token.
struct SessionService {
    revoker: Revoker,
}

/// The demo's gRPC routes: `auth.v1.Login` is open, `auth.v1.Session` is behind the
/// layer. Serve them with [`serve`], or with `tonic::transport::Server::add_routes`.
pub fn routes(config: DemoConfig) -> Routes {
    let verifier = JwtVerifier::builder()
        .key(VerificationKey::hmac(Algorithm::HS256, &config.secret).expect("JWT secret must not be empty"))
        .issuer(ISSUER)
        // Watermarks ("log out everywhere") need to outlive only the tokens we issue.
        .max_token_lifetime(config.access_ttl)
        .build()
        .expect("the demo's verifier configuration is valid");
    // gRPC metadata is HTTP/2 headers: the default `Authorization: Bearer` source reads
    // the `authorization` metadata.
    let issuer = TokenIssuer::builder(&verifier)
        .signing_key(
            SigningKey::hmac(Algorithm::HS256, &config.secret).expect("JWT secret must not be empty"),
        )
        .lifetime(config.access_ttl)
        .build()
        .expect("the demo's issuer mints what its verifier accepts");
    let layer = RevocationLayer::new(verifier, config.store);
    let session = SessionService {
        revoker: layer.revoker(),
    };
    let login = LoginService { issuer };
    // `named_layer` keeps the generated server's service name, which tonic routes by;
    // only this service is behind the layer.
    Routes::new(LoginServer::new(login)).add_service(layer.named_layer(SessionServer::new(session)))
}

/// Serves `routes` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    routes: Routes,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    Server::builder()
        .add_routes(routes)
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), shutdown)
        .await
}

#[tonic::async_trait]
impl Login for LoginService {
    async fn login(&self, request: Request<LoginRequest>) -> Result<Response<LoginResponse>, Status> {
        let LoginRequest { username, password } = request.into_inner();
        let username = username.trim();
        if username.is_empty() {
            return Err(Status::invalid_argument("username must not be empty"));
        }
        if username.chars().count() > MAX_USERNAME_LEN || username.chars().any(char::is_control) {
            return Err(Status::invalid_argument(format!(
                "username must be at most {MAX_USERNAME_LEN} printable characters"
            )));
        }
        if password != "password" {
            return Err(Status::unauthenticated("invalid username or password"));
        }
        // Each login a new session: its own `sid`, and a random 128-bit `jti`.
        let minted = self
            .issuer
            .new_session_id()
            .and_then(|session| self.issuer.issue(username, &session))
            .map_err(|_| Status::internal("could not sign the token"))?;
        let expires_in = minted.expires_in().as_secs();
        Ok(Response::new(LoginResponse {
            access_token: minted.into_token(),
            token_type: "Bearer".into(),
            expires_in,
        }))
    }
}

#[tonic::async_trait]
impl Session for SessionService {
    async fn whoami(&self, request: Request<WhoamiRequest>) -> Result<Response<WhoamiResponse>, Status> {
        // `RequestExt::verified_token`: the token the layer verified and checked.
        let token = request.verified_token()?;
        Ok(Response::new(WhoamiResponse {
            sub: token.subject().unwrap_or_default().into(),
            jti: token.token_id().unwrap_or_default().into(),
            exp: token.expires_at(),
        }))
    }

    async fn logout(&self, request: Request<LogoutRequest>) -> Result<Response<LogoutResponse>, Status> {
        let token = request.verified_token()?;
        // A failed revocation becomes a status: UNAVAILABLE when the store failed (retry).
        self.revoker.revoke(token).await?;
        Ok(Response::new(LogoutResponse {}))
    }

    type WatchStream = Pin<Box<dyn futures_util::Stream<Item = Result<WatchEvent, Status>> + Send>>;

    async fn watch(&self, request: Request<WatchRequest>) -> Result<Response<Self::WatchStream>, Status> {
        // Resolves when the token is revoked (by any replica sharing the store) or expires.
        let revoked = request.verified_token()?.revoked();
        let mut ticks = tokio::time::interval(WATCH_TICK);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let stream = futures_util::stream::unfold(Some((0, ticks, revoked)), |state| async move {
            let (n, mut ticks, mut revoked) = state?;
            tokio::select! {
                // The last item: the stream ends with this status in its trailers.
                refusal = &mut revoked => Some((Err(Status::unauthenticated(refusal.to_string())), None)),
                _ = ticks.tick() => Some((Ok(WatchEvent { n }), Some((n + 1, ticks, revoked)))),
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

#[allow(dead_code)] // the integration tests include this file for `routes` and `serve`
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
        .unwrap_or_else(|_| "127.0.0.1:50051".into())
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

    let routes = routes(DemoConfig {
        secret: secret.into_bytes(),
        access_ttl,
        store,
    });
    let listener = tokio::net::TcpListener::bind(bind).await?;
    let addr = listener.local_addr()?;
    println!("listening on {addr}");
    println!(
        r#"
try it with cargo alone (the example client logs in, calls Whoami, logs out, calls Whoami again):
  ADDR=http://{addr} cargo run --example tonic_client

or with grpcurl (it needs the .proto: the server offers no reflection):
  GRPC="grpcurl -plaintext -import-path examples/tonic_grpc -proto auth.proto"
  TOKEN=$($GRPC -d '{{"username":"alice","password":"password"}}' {addr} auth.v1.Login/Login \
            | sed -n 's/.*"accessToken": *"\([^"]*\)".*/\1/p')
  $GRPC -H "authorization: Bearer $TOKEN" {addr} auth.v1.Session/Whoami   # {{"sub": "alice", ...}}
  $GRPC -H "authorization: Bearer $TOKEN" {addr} auth.v1.Session/Watch &  # {{"n": "0"}} ... until the logout:
  $GRPC -H "authorization: Bearer $TOKEN" {addr} auth.v1.Session/Logout   # {{}}
  $GRPC -H "authorization: Bearer $TOKEN" {addr} auth.v1.Session/Whoami   # Unauthenticated: token revoked
"#
    );
    serve(listener, routes, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
