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
//!
//! With the `metrics` feature, `metrics/HS256/{no_recorder, prometheus}`: the layer on
//! the in-memory store before and after a Prometheus recorder is installed (the
//! metrics' cost with an exporter; `request/HS256/layer_memory` built with and without
//! the feature shows their cost without one).
//!
//! With the `jwks` feature, two more groups:
//! - `jwks/{alg}/{keys}` (RS256, ES256): the layer on the in-memory store with a
//!   token naming a `kid`, its key configured by hand (`hand_configured`) or fetched
//!   from a JWKS served on loopback (`jwks`). Both read the same kind of key ring, so
//!   they should cost the same.
//! - `issuer_selection/HS256/{case}`: `JwtVerifier::verify` alone with one key and an
//!   accepted issuer (`key`), with keys per issuer for 1 issuer (`1_issuer`) and for
//!   10 (`10_issuers`): the difference is the cost of choosing the keys by `iss`.

#[path = "../tests/support/mod.rs"]
mod support;

#[cfg(feature = "jwks")]
#[path = "../tests/common/provider.rs"]
mod provider;

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
    #[cfg(feature = "jwks")]
    {
        bench_jwks(&mut criterion, &runtime);
        bench_issuer_selection(&mut criterion);
    }
    // Last: it installs the process-wide recorder, which every later request pays.
    #[cfg(feature = "metrics")]
    bench_metrics(&mut criterion, &runtime);
    criterion.final_summary();
    drop(stores);
    drop(server);
}

/// A token of `alg` whose header names `kid`.
#[cfg(feature = "jwks")]
fn token_with_kid(alg: Alg, kid: &str) -> String {
    let now = common::now_secs();
    let claims = Claims {
        sub: "alice".into(),
        jti: uuid::Uuid::new_v4().to_string(),
        iss: common::ISSUER.into(),
        iat: now,
        exp: now + common::TOKEN_TTL.as_secs(),
    };
    let mut header = jsonwebtoken::Header::new(alg.algorithm());
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, &claims, &alg.encoding_key()).expect("sign")
}

/// The layer with a key configured by hand against the same key from a JWKS.
#[cfg(feature = "jwks")]
fn bench_jwks(criterion: &mut Criterion, runtime: &tokio::runtime::Runtime) {
    use tower_jwt_revoke::JwtVerifier;
    use tower_jwt_revoke::jsonwebtoken::jwk::Jwk;
    use tower_jwt_revoke::jwks::Jwks;

    let provider = runtime.block_on(provider::Provider::start());
    for alg in [Alg::Rs256, Alg::Es256] {
        let mut jwk =
            serde_json::to_value(Jwk::from_encoding_key(&alg.encoding_key(), alg.algorithm()).expect("jwk"))
                .expect("jwk json");
        jwk["kid"] = "bench".into();
        let path = format!("/{}/jwks", alg.name());
        provider.serve(&path, &serde_json::json!({ "keys": [jwk] }));
        let jwks = runtime
            .block_on(Jwks::builder(provider.url(&path)).build())
            .expect("jwks from the loopback provider");
        let verifier = |builder: tower_jwt_revoke::JwtVerifierBuilder| {
            builder
                .issuer(common::ISSUER)
                .max_token_lifetime(common::TOKEN_TTL)
                .build()
                .expect("verifier")
        };
        let hand_configured = verifier(JwtVerifier::builder().key(alg.verification_key().with_kid("bench")));
        let from_jwks = verifier(JwtVerifier::builder().key_ring(jwks.key_ring()));
        let bearer = HeaderValue::try_from(format!("Bearer {}", token_with_kid(alg, "bench"))).unwrap();
        let mut group = criterion.benchmark_group(format!("jwks/{}", alg.name()));
        for (id, verifier) in [("hand_configured", hand_configured), ("jwks", from_jwks)] {
            let service = RevocationLayer::new(verifier, InMemoryStore::new()).layer(inner());
            bench_service(&mut group, runtime, id, &bearer, service);
        }
        group.finish();
        assert_eq!(provider.hits(&path), 1, "no fetch while benchmarking a known kid");
    }
}

/// `verify` with keys chosen by the token's issuer among 1 or 10, against one key.
#[cfg(feature = "jwks")]
fn bench_issuer_selection(criterion: &mut Criterion) {
    use tower_jwt_revoke::{JwtVerifier, JwtVerifierBuilder, KeyRing, KeySet};

    let alg = Alg::Hs256;
    let ring = || KeyRing::new(KeySet::new([alg.verification_key()]).expect("key set"));
    let with_issuers = |count: usize| {
        // The token's issuer last, the others before it.
        (1..count)
            .map(|n| format!("{}-{n}", common::ISSUER))
            .chain([common::ISSUER.to_owned()])
            .fold(JwtVerifier::builder(), |builder: JwtVerifierBuilder, issuer| {
                builder.issuer_keys(issuer, ring())
            })
    };
    let cases = [
        (
            "key",
            JwtVerifier::builder()
                .key(alg.verification_key())
                .issuer(common::ISSUER),
        ),
        ("1_issuer", with_issuers(1)),
        ("10_issuers", with_issuers(10)),
    ];
    let token = alg.token();
    let mut group = criterion.benchmark_group(format!("issuer_selection/{}", alg.name()));
    for (id, builder) in cases {
        let verifier = builder
            .max_token_lifetime(common::TOKEN_TTL)
            .build()
            .expect("verifier");
        assert!(
            verifier.verify(&token).is_ok(),
            "{id}: the bench token is refused"
        );
        group.bench_function(id, |b| b.iter(|| black_box(verifier.verify(black_box(&token)))));
    }
    group.finish();
}

/// The layer on the in-memory store without a recorder, then with Prometheus's.
#[cfg(feature = "metrics")]
fn bench_metrics(criterion: &mut Criterion, runtime: &tokio::runtime::Runtime) {
    let alg = Alg::Hs256;
    let bearer = HeaderValue::try_from(format!("Bearer {}", alg.token())).unwrap();
    let mut group = criterion.benchmark_group(format!("metrics/{}", alg.name()));
    bench_service(
        &mut group,
        runtime,
        "no_recorder",
        &bearer,
        layered(alg, InMemoryStore::new()),
    );
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .expect("the first recorder of this process");
    bench_service(
        &mut group,
        runtime,
        "prometheus",
        &bearer,
        layered(alg, InMemoryStore::new()),
    );
    group.finish();
}
