//! Readiness for probes: is the revocation store able to answer checks now?
//!
//! A fail-closed layer answers 503 while its store cannot; a readiness probe that says
//! so takes the replica out of the load balancer first, and tells the person on call
//! why. [`Readiness`] is a Tower service (an axum route, a hyper service) answering
//! `200` or `503` with the store's [`StoreHealth`] as JSON:
//!
//! ```
//! use axum::{Router, routing::get};
//! use tower_jwt_revoke::health::Readiness;
//! use tower_jwt_revoke::RevocationLayer;
//!
//! fn app(layer: RevocationLayer) -> Router {
//!     Router::new()
//!         .route("/me", get(|| async { "me" }))
//!         .route_layer(layer.clone())
//!         // Outside the layer: probes carry no token.
//!         .route_service("/ready", Readiness::new(layer.store().clone()))
//! }
//! ```
//!
//! ```text
//! HTTP/1.1 200 OK
//! content-type: application/json
//! cache-control: no-store
//!
//! {"store":"mirror","ready":true,"reachable":true,"in_sync":true,"lag_ms":12,"entries":1042}
//! ```

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Request, Response, StatusCode};
use tower_service::Service;

use crate::store::{RevocationStore, StoreHealth};

/// How long a readiness check waits for the store before it says "not ready".
pub const DEFAULT_READINESS_TIMEOUT: Duration = Duration::from_secs(1);

/// Asks `store` how it is, within `timeout`: the status a probe should see (200 or
/// 503) and the details.
pub async fn readiness(store: &dyn RevocationStore, timeout: Duration) -> (StatusCode, StoreHealth) {
    let health = match tokio::time::timeout(timeout, store.health()).await {
        Ok(health) => health,
        Err(_) => StoreHealth::not_ready(store.name(), format!("no answer within {timeout:?}")),
    };
    let status = if health.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, health)
}

/// A service answering every request with the store's readiness: `200` or `503`, and
/// [`StoreHealth`] as JSON, never cached. See the [module docs](self).
#[derive(Clone)]
pub struct Readiness {
    store: Arc<dyn RevocationStore>,
    timeout: Duration,
}

impl Readiness {
    /// Readiness of `store` (a layer's: `layer.store().clone()`), waiting at most
    /// [`DEFAULT_READINESS_TIMEOUT`].
    pub fn new(store: Arc<dyn RevocationStore>) -> Self {
        Self {
            store,
            timeout: DEFAULT_READINESS_TIMEOUT,
        }
    }

    /// How long to wait for the store before answering "not ready".
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

impl fmt::Debug for Readiness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Readiness")
            .field("store", &self.store.name())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl<B> Service<Request<B>> for Readiness {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<String>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _request: Request<B>) -> Self::Future {
        let (store, timeout) = (Arc::clone(&self.store), self.timeout);
        Box::pin(async move {
            let (status, health) = readiness(&*store, timeout).await;
            if !health.ready {
                tracing::warn!(store = health.store, detail = ?health.detail, "revocation store not ready");
            }
            // Serializing plain fields cannot fail; an empty object is still JSON.
            let body = serde_json::to_string(&health).unwrap_or_else(|_| "{}".into());
            let mut response = Response::new(body);
            *response.status_mut() = status;
            let headers = response.headers_mut();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            Ok(response)
        })
    }
}
