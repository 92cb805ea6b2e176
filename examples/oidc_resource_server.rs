//! An API behind an identity provider (Keycloak, Auth0, Okta, Entra ID...): keys by
//! OpenID Connect discovery, and logout that starts at the provider.
//!
//! ```text
//! OIDC_ISSUER=https://idp.example/realms/shop OIDC_AUDIENCE=shop-api \
//!     cargo run --example oidc_resource_server
//! ```
//!
//! | variable            | meaning                                                         | default          |
//! |---------------------|-----------------------------------------------------------------|------------------|
//! | `OIDC_ISSUER`       | the issuer URL; its keys come from its discovery document       | required         |
//! | `OIDC_AUDIENCE`     | required `aud` of access tokens, and the client id logout tokens are addressed to | required |
//! | `OIDC_TOKEN_TYPE`   | required `typ` of access tokens; empty accepts any (Keycloak sends `JWT`) | `at+jwt` |
//! | `BIND`              | address to listen on                                            | `127.0.0.1:3002` |
//! | `REDIS_URL`         | use Redis as the store, shared by replicas                      | in-memory store  |
//! | `REDIS_CLUSTER_NODES` | instead of `REDIS_URL`: a Redis Cluster's seed nodes, comma-separated | none     |
//! | `REVOCATION_MIRROR` | `1` (with `REDIS_URL` or `REDIS_CLUSTER_NODES`): answer checks from a local mirror | off |
//!
//! Routes:
//! - `GET /me`: 200 `{"sub", "jti", "sid", "exp"}` of the presented access token
//!   (`sid` is `null` when the token has none);
//! - `POST /logout`: revokes the presented access token, 204;
//! - `POST /backchannel-logout`: the provider's OpenID Connect Back-Channel Logout
//!   requests (`logout_token=...`): the session (`sid`), or every token of the user
//!   when the logout token names no session, is refused from then on.
//!
//! Prints `listening on http://ADDR` once it accepts connections.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post, post_service};
use axum::{Json, Router};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde_json::{Value, json};
use tower_jwt_revoke::endpoints::BackChannelLogout;
use tower_jwt_revoke::jwks::OidcIssuer;
use tower_jwt_revoke::store::{InMemoryStore, MirrorStore, RedisStore, RevocationStore};
use tower_jwt_revoke::{JwtVerifier, RevocationLayer, RevokeError, Revoker, SessionClaim, VerifiedToken};

/// What the API is built from.
pub struct OidcConfig {
    /// The provider's issuer URL (`iss`), discovered at start.
    pub issuer: String,
    /// The `aud` access tokens must carry; also this client's id, the `aud` of the
    /// provider's logout tokens.
    pub audience: String,
    /// The `typ` access tokens must carry (`at+jwt`, RFC 9068), or `None` for any.
    pub token_type: Option<String>,
    /// Where revocations live.
    pub store: Arc<dyn RevocationStore>,
}

/// The API: discovers the provider (its keys then refresh by themselves), and routes
/// `/me` and `/logout` behind the layer, `/backchannel-logout` outside it (the provider
/// authenticates with the logout token's signature, not with an access token).
pub async fn app(config: OidcConfig) -> Result<Router, Box<dyn std::error::Error + Send + Sync>> {
    let provider = OidcIssuer::discover(config.issuer).await?;
    // Keycloak's access tokens carry `sid`, older ones only `session_state`.
    let mut access = JwtVerifier::builder()
        .oidc_issuer(&provider)
        .audience(&config.audience)
        .session_claim(SessionClaim::SidOrSessionState);
    if let Some(typ) = &config.token_type {
        // An ID token or a logout token, signed with the same keys, is never taken
        // for an access token.
        access = access.require_type(typ);
    }
    let layer = RevocationLayer::new(access.build()?, config.store);
    let logout_tokens = JwtVerifier::builder()
        .oidc_issuer(&provider)
        .audience(&config.audience)
        .build()?;
    let backchannel = BackChannelLogout::builder(logout_tokens, layer.revoker()).build()?;
    Ok(Router::new()
        .route("/me", get(me))
        .route("/logout", post(logout))
        .route_layer(layer.clone())
        .route("/backchannel-logout", post_service(backchannel))
        .with_state(layer.revoker()))
}

async fn me(token: VerifiedToken) -> Json<Value> {
    Json(json!({
        "sub": token.subject(),
        "jti": token.token_id(),
        "sid": token.session_id(),
        "exp": token.expires_at(),
    }))
}

// A `RevokeError` is a response: 503 with `Retry-After` when the store failed.
async fn logout(State(revoker): State<Revoker>, token: VerifiedToken) -> Result<StatusCode, RevokeError> {
    revoker.revoke(&token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Serves `app` until `shutdown` completes, with a header-read timeout and HTTP/2
/// keep-alive (`axum::serve` has neither; see `examples/axum_logout.rs`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10));
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
    let _ = tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await;
    Ok(())
}

fn required(name: &str) -> Result<String, String> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.is_empty())
        .ok_or_else(|| {
            format!("{name} is required (see the table at the top of examples/oidc_resource_server.rs)")
        })
}

#[allow(dead_code)] // the integration tests include this file for `app` and `serve`
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_jwt_revoke=debug".into()),
        )
        .init();

    let issuer = required("OIDC_ISSUER")?;
    let audience = required("OIDC_AUDIENCE")?;
    let token_type = match std::env::var("OIDC_TOKEN_TYPE") {
        Ok(typ) if typ.is_empty() => None,
        Ok(typ) => Some(typ),
        Err(_) => Some("at+jwt".to_owned()),
    };
    let bind: SocketAddr = std::env::var("BIND")
        .unwrap_or_else(|_| "127.0.0.1:3002".into())
        .parse()?;
    // The URLs may carry a password: log only which kind of Redis is used.
    let redis = match (
        std::env::var("REDIS_URL").ok(),
        std::env::var("REDIS_CLUSTER_NODES").ok(),
    ) {
        (Some(_), Some(_)) => return Err("set REDIS_URL or REDIS_CLUSTER_NODES, not both".into()),
        (Some(url), None) => {
            tracing::info!("revocation store: Redis");
            Some(RedisStore::from_url(url)?)
        }
        (None, Some(nodes)) => {
            tracing::info!("revocation store: Redis Cluster");
            let seeds = nodes.split(',').map(str::trim).filter(|node| !node.is_empty());
            Some(RedisStore::builder().cluster_nodes(seeds).build()?)
        }
        (None, None) => None,
    };
    let store: Arc<dyn RevocationStore> = match redis {
        Some(redis) if std::env::var("REVOCATION_MIRROR").is_ok_and(|v| v == "1") => {
            tracing::info!("revocation store: with a local mirror");
            let mirror = MirrorStore::start(redis);
            if let Err(error) = mirror.wait_until_synced(Duration::from_secs(10)).await {
                tracing::warn!(%error, "starting anyway; checks go to Redis until the mirror is in sync");
            }
            Arc::new(mirror)
        }
        Some(redis) => Arc::new(redis),
        None => {
            tracing::info!("revocation store: in-memory (this process only; set REDIS_URL to share it)");
            Arc::new(InMemoryStore::new())
        }
    };

    let app = app(OidcConfig {
        issuer,
        audience,
        token_type,
        store,
    })
    .await?;
    let listener = tokio::net::TcpListener::bind(bind).await?;
    println!("listening on http://{}", listener.local_addr()?);
    serve(listener, app, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
