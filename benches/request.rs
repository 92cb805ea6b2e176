//! One request through `RevocationLayer` and a trivial inner service, per store and per
//! token algorithm, against the same request through jsonwebtoken alone and through
//! the bare inner service. The layer's cost is the difference.
//!
//! ```text
//! cargo bench --bench request
//! ```
//!
//! Ids: `request/{alg}/{path}`, where `path` is
//! - `inner`: the bare inner service (building the request included, as everywhere);
//! - `jsonwebtoken`: `jsonwebtoken::decode` with the same key, then the inner service;
//! - `verifier`: this crate's `JwtVerifier::verify` alone, then the inner service;
//! - `layer_memory`, `layer_redis`, `layer_mirror`: the whole layer on each store.
//!
//! The Redis and mirror paths need a `redis-server` (started privately, see
//! tests/support) or `REDIS_URL`; without one they are skipped, saying why.

#[path = "../tests/support/mod.rs"]
mod support;

mod common;

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkGroup, Criterion, measurement::WallTime};
use http::header::AUTHORIZATION;
use http::{HeaderValue, Request, Response, StatusCode};
use tower::{Layer, Service, ServiceExt};
use tower_jwt_revoke::store::{InMemoryStore, MirrorStore, RevocationStore};
use tower_jwt_revoke::{RevocationLayer, VerifiedToken, jsonwebtoken};

use common::{Alg, Claims};

fn inner() -> impl Service<Request<()>, Response = Response<()>, Error = Infallible> + Clone {
    tower::service_fn(|request: Request<()>| async move {
        black_box(&request);
        Ok::<_, Infallible>(Response::new(()))
    })
}

fn request(bearer: &HeaderValue) -> Request<()> {
    let mut request = Request::new(());
    *request.uri_mut() = http::Uri::from_static("/me");
    request.headers_mut().insert(AUTHORIZATION, bearer.clone());
    request
}

fn bearer(request: &Request<()>) -> &str {
    request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .expect("bearer token")
}

/// Benches one path: `service` must answer 200.
fn bench_service<S>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    runtime: &tokio::runtime::Runtime,
    id: &str,
    bearer: &HeaderValue,
    service: S,
) where
    S: Service<Request<()>, Response = Response<()>, Error = Infallible> + Clone,
{
    let mut check = service.clone();
    let status = runtime.block_on(async { check.ready().await.unwrap().call(request(bearer)).await });
    assert_eq!(
        status.unwrap().status(),
        StatusCode::OK,
        "{id}: the bench token is refused"
    );
    group.bench_function(id, |b| {
        b.to_async(runtime).iter_custom(|iters| {
            let mut service = service.clone();
            async move {
                let start = Instant::now();
                for _ in 0..iters {
                    let response = service.ready().await.unwrap().call(request(bearer)).await;
                    black_box(response.unwrap());
                }
                start.elapsed()
            }
        });
    });
}

/// `jsonwebtoken::decode` and nothing else in front of the inner service: what a
/// hand-written middleware without revocation does.
fn jsonwebtoken_only(
    alg: Alg,
) -> impl Service<Request<()>, Response = Response<()>, Error = Infallible> + Clone {
    let key = Arc::new(alg.decoding_key());
    let validation = Arc::new(alg.validation());
    let inner = inner();
    tower::service_fn(move |mut request: Request<()>| {
        let verified = jsonwebtoken::decode::<Claims>(bearer(&request), &key, &validation);
        let mut inner = inner.clone();
        async move {
            match verified {
                Ok(data) => {
                    request.extensions_mut().insert(data.claims);
                    inner.call(request).await
                }
                Err(_) => {
                    let mut response = Response::new(());
                    *response.status_mut() = StatusCode::UNAUTHORIZED;
                    Ok(response)
                }
            }
        }
    })
}

/// This crate's verifier alone (no store) in front of the inner service.
fn verifier_only(alg: Alg) -> impl Service<Request<()>, Response = Response<()>, Error = Infallible> + Clone {
    let verifier = alg.verifier();
    let inner = inner();
    tower::service_fn(move |mut request: Request<()>| {
        let verified = verifier.verify(bearer(&request));
        let mut inner = inner.clone();
        async move {
            match verified {
                Ok(token) => {
                    request.extensions_mut().insert::<VerifiedToken>(token);
                    inner.call(request).await
                }
                Err(_) => {
                    let mut response = Response::new(());
                    *response.status_mut() = StatusCode::UNAUTHORIZED;
                    Ok(response)
                }
            }
        }
    })
}

fn layered<S: RevocationStore + Clone>(
    alg: Alg,
    store: S,
) -> impl Service<Request<()>, Response = Response<()>, Error = Infallible> + Clone {
    RevocationLayer::new(alg.verifier(), store).layer(inner())
}

struct RedisStores {
    url: String,
    redis: tower_jwt_revoke::store::RedisStore,
    mirror: MirrorStore,
}

fn main() {
    tower_jwt_revoke::install_crypto_provider();
    let mut criterion: Criterion = common::criterion();
    let runtime = common::runtime();

    let server = support::RedisServer::start();
    let stores = server.as_ref().map(|server| {
        let prefix = support::unique_prefix();
        let redis = common::redis_store(server.url(), &prefix);
        let mirror = runtime.block_on(async {
            let mirror = MirrorStore::start(common::redis_store(server.url(), &prefix));
            mirror
                .wait_until_synced(Duration::from_secs(10))
                .await
                .expect("mirror in sync");
            mirror
        });
        RedisStores {
            url: server.url().to_owned(),
            redis,
            mirror,
        }
    });
    if stores.is_none() {
        eprintln!("request: no Redis, so layer_redis and layer_mirror are skipped");
    }

    for alg in Alg::ALL {
        let token = alg.token();
        let bearer = HeaderValue::try_from(format!("Bearer {token}")).unwrap();
        let mut group = criterion.benchmark_group(format!("request/{}", alg.name()));
        bench_service(&mut group, &runtime, "inner", &bearer, inner());
        bench_service(
            &mut group,
            &runtime,
            "jsonwebtoken",
            &bearer,
            jsonwebtoken_only(alg),
        );
        bench_service(&mut group, &runtime, "verifier", &bearer, verifier_only(alg));
        let memory = InMemoryStore::new();
        bench_service(
            &mut group,
            &runtime,
            "layer_memory",
            &bearer,
            layered(alg, memory),
        );
        if let Some(stores) = &stores {
            let before = runtime.block_on(common::mget_calls(&stores.url));
            bench_service(
                &mut group,
                &runtime,
                "layer_mirror",
                &bearer,
                layered(alg, stores.mirror.clone()),
            );
            let mirror_mgets = runtime.block_on(common::mget_calls(&stores.url)) - before;
            let health = stores.mirror.health();
            eprintln!(
                "request/{}/layer_mirror: {mirror_mgets} checks went to Redis; mirror {health:?}",
                alg.name()
            );
            bench_service(
                &mut group,
                &runtime,
                "layer_redis",
                &bearer,
                layered(alg, stores.redis.clone()),
            );
        }
        group.finish();
    }
    criterion.final_summary();
    drop(stores);
    drop(server);
}
