//! Serving the demo: [`serve`] (the timeouts a server facing the internet needs) and
//! the stores the environment asks for.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tower_jwt_revoke::refresh::{InMemoryRefreshStore, RefreshStore};
use tower_jwt_revoke::store::{Acknowledgement, InMemoryStore, MirrorStore, RedisStore, RevocationStore};

use super::HEADER_READ_TIMEOUT;

/// Serves `app` on `listener` until `shutdown` completes, as `axum::serve` does, plus
/// what a server facing the internet needs and `axum::serve` lacks: a client gets
/// [`HEADER_READ_TIMEOUT`] to send its request head (a half-sent request would
/// otherwise hold a file descriptor for ever), and HTTP/2 connections are pinged so
/// dead peers are dropped. [`REQUEST_TIMEOUT`](super::REQUEST_TIMEOUT) bounds the one route that reads a body.
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
    Ok(stores_from_env(var).await?.0)
}

/// [`store_from_env`]'s store, and the same backend as the store of refresh-token
/// families (Redis, or this process's memory).
pub async fn stores_from_env(
    var: impl Fn(&str) -> Option<String>,
) -> Result<(Arc<dyn RevocationStore>, Arc<dyn RefreshStore>), Box<dyn std::error::Error>> {
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
            return Ok((
                Arc::new(InMemoryStore::new()),
                Arc::new(InMemoryRefreshStore::new()),
            ));
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
        return Ok((Arc::new(mirror.clone()), Arc::new(mirror)));
    }
    Ok((Arc::new(redis.clone()), Arc::new(redis)))
}
