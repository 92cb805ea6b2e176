//! Axum extractors for the verified token (feature `axum`).

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;

use crate::token::VerifiedToken;

/// `VerifiedToken<C>` is an extractor: a handler behind
/// [`RevocationLayer`](crate::RevocationLayer) takes the verified token as an argument.
///
/// ```
/// use axum::{Router, routing::get};
/// use tower_jwt_revoke::VerifiedToken;
///
/// async fn me(token: VerifiedToken) -> String {
///     format!("hello {}", token.subject().unwrap_or("anonymous"))
/// }
///
/// async fn greeting(token: Option<VerifiedToken>) -> &'static str {
///     if token.is_some() { "welcome back" } else { "hello, stranger" }
/// }
///
/// # fn app(layer: tower_jwt_revoke::RevocationLayer<tower_jwt_revoke::InMemoryStore>) -> Router {
/// Router::new()
///     .route("/me", get(me))
///     .route("/", get(greeting))
///     .route_layer(layer)
/// # }
/// ```
///
/// Used on a route the layer does not cover, the plain form fails the way axum's own
/// `Extension` does: a **500** naming the missing layer, since that is a bug in the
/// application, not in the request. `Option<VerifiedToken<C>>` never fails: it is
/// `None` where no token was verified (a route without the layer, or a request without
/// a token under [`RevocationLayer::with_anonymous`](crate::RevocationLayer::with_anonymous)).
impl<S, C> FromRequestParts<S> for VerifiedToken<C>
where
    S: Send + Sync,
    C: Clone + Send + Sync + 'static,
{
    type Rejection = MissingVerifiedToken;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Self>()
            .cloned()
            .ok_or(MissingVerifiedToken {
                claims_type: std::any::type_name::<C>(),
            })
    }
}

impl<S, C> OptionalFromRequestParts<S> for VerifiedToken<C>
where
    S: Send + Sync,
    C: Clone + Send + Sync + 'static,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Self>().cloned())
    }
}

/// The [`VerifiedToken`] extractor found no verified token: the route is not behind
/// [`RevocationLayer`](crate::RevocationLayer), or the layer decodes other claims
/// than the handler asks for. Answers 500.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "Missing request extension: VerifiedToken<{claims_type}> was not found. \
     Is `RevocationLayer` (with `.with_claims::<{claims_type}>()`) applied to this route?"
)]
pub struct MissingVerifiedToken {
    claims_type: &'static str,
}

impl IntoResponse for MissingVerifiedToken {
    fn into_response(self) -> Response {
        tracing::error!(%self, "a handler asked for a verified token on a route without RevocationLayer");
        (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
    }
}
