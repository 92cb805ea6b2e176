//! Axum integration (feature `axum`): extractors for the verified token and the
//! application's claims, [`RevokeError`] as a response, and rejections written as
//! axum responses.

use axum_core::body::Body;
use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode};
use serde::de::DeserializeOwned;

use crate::layer::RevocationLayer;
use crate::layer::reject::{OnRejection, Rejection};
use crate::revoke::RevokeError;
use crate::verify::VerifyError;
use crate::verify::token::VerifiedToken;

/// `VerifiedToken` is an extractor: a handler behind
/// [`RevocationLayer`] takes the verified token as an argument.
///
/// ```
/// use axum::{Router, routing::get};
/// use tower_jwt_revoke::{RevocationLayer, VerifiedToken};
///
/// async fn me(token: VerifiedToken) -> String {
///     format!("hello {}", token.subject().unwrap_or("anonymous"))
/// }
///
/// async fn greeting(token: Option<VerifiedToken>) -> &'static str {
///     if token.is_some() { "welcome back" } else { "hello, stranger" }
/// }
///
/// fn app(layer: RevocationLayer) -> Router {
///     Router::new()
///         .route("/me", get(me))
///         .route("/", get(greeting))
///         .route_layer(layer)
/// }
/// ```
///
/// Used on a route the layer does not cover, the plain form fails with a **500**, since
/// that is a bug in the application, not in the request; the details go to the log,
/// not to the client. `Option<VerifiedToken>` never fails: it is `None` where no token
/// was verified (a route without the layer, or a request without a token under
/// [`RevocationLayer::with_anonymous`]).
impl<S: Send + Sync> FromRequestParts<S> for VerifiedToken {
    type Rejection = MissingVerifiedToken;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Self>()
            .cloned()
            .ok_or(MissingVerifiedToken)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for VerifiedToken {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Self>().cloned())
    }
}

/// The [`VerifiedToken`] extractor found no verified token: the route is not behind
/// [`RevocationLayer`]. Answers 500 with a body that says only that the server failed;
/// the explanation is logged at `error` level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "no verified token in the request extensions: is `RevocationLayer` applied to this route \
     (`.route_layer(layer)` after the route, or `.layer(layer)`)?"
)]
#[non_exhaustive]
pub struct MissingVerifiedToken;

impl IntoResponse for MissingVerifiedToken {
    fn into_response(self) -> Response {
        tracing::error!(%self, "a handler asked for a verified token on a route without RevocationLayer");
        json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal server error")
    }
}

/// Extracts the application's own claims `C` from the verified token's payload.
///
/// Any handler may ask for any claims type: the layer does not fix one, so the two
/// cannot disagree. A genuine token whose payload does not fit `C` (a claim missing or
/// of the wrong type) is answered **401** `invalid_token`, as the layer answers a bad
/// token; `Option<Claims<C>>` is `None` only where no token was verified.
///
/// ```
/// use axum::{Router, routing::get};
/// use serde::Deserialize;
/// use tower_jwt_revoke::{Claims, RevocationLayer};
///
/// #[derive(Deserialize)]
/// struct MyClaims {
///     sub: String,
///     tenant: String,
/// }
///
/// async fn whoami(Claims(claims): Claims<MyClaims>) -> String {
///     format!("{} of {}", claims.sub, claims.tenant)
/// }
///
/// fn app(layer: RevocationLayer) -> Router {
///     Router::new().route("/whoami", get(whoami)).route_layer(layer)
/// }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Claims<C>(pub C);

impl<S: Send + Sync, C: DeserializeOwned> FromRequestParts<S> for Claims<C> {
    type Rejection = ClaimsRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let token = parts
            .extensions
            .get::<VerifiedToken>()
            .ok_or(MissingVerifiedToken)?;
        token.claims().map(Claims).map_err(ClaimsRejection::Invalid)
    }
}

impl<S: Send + Sync, C: DeserializeOwned> OptionalFromRequestParts<S> for Claims<C> {
    type Rejection = ClaimsRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Option<Self>, Self::Rejection> {
        parts
            .extensions
            .get::<VerifiedToken>()
            .map(|token| token.claims().map(Claims).map_err(ClaimsRejection::Invalid))
            .transpose()
    }
}

/// Why the [`Claims`] extractor failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClaimsRejection {
    /// No verified token: the route is not behind [`RevocationLayer`] (500, see
    /// [`MissingVerifiedToken`]).
    #[error(transparent)]
    Missing(#[from] MissingVerifiedToken),
    /// The token is genuine but its payload does not fit the claims type (401).
    #[error("{0}")]
    Invalid(VerifyError),
}

impl IntoResponse for ClaimsRejection {
    fn into_response(self) -> Response {
        match self {
            Self::Missing(missing) => missing.into_response(),
            Self::Invalid(error) => {
                tracing::debug!(%error, "refused a token whose claims do not fit the handler's");
                let mut response = Rejection::InvalidToken(error.clone()).status().into_response();
                if let Some(challenge) = Rejection::InvalidToken(error).www_authenticate() {
                    response.headers_mut().insert(WWW_AUTHENTICATE, challenge);
                }
                response
            }
        }
    }
}

/// A revocation that failed answers with [`RevokeError::status`] (400 for the
/// client's mistakes, 503 with [`Retry-After`](RevokeError::retry_after) when the
/// store failed or did not confirm the revocation durable, or the token cannot be
/// verified now) and a JSON body
/// `{"error": "…"}` that names no internals, so a logout handler can use `?`:
///
/// ```
/// use axum::http::StatusCode;
/// use tower_jwt_revoke::{RevokeError, Revoker, VerifiedToken};
/// use axum::extract::State;
///
/// async fn logout_everywhere(State(revoker): State<Revoker>, token: VerifiedToken) -> Result<StatusCode, RevokeError> {
///     revoker.revoke_subject_of(&token).await?; // a token without `sub`: 400, not 503
///     Ok(StatusCode::NO_CONTENT)
/// }
/// ```
impl IntoResponse for RevokeError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            Self::Store(error) => {
                tracing::warn!(%error, "a revocation was not recorded");
                "the revocation could not be recorded; try again".to_owned()
            }
            Self::Unacknowledged(error) => {
                tracing::warn!(%error, "a revocation was recorded but not confirmed durable");
                "the revocation is recorded but not yet confirmed; try again".to_owned()
            }
            Self::AmbiguousIssuer => {
                tracing::error!(error = %self, "a revocation needs the issuer named");
                "internal server error".to_owned()
            }
            other => other.to_string(),
        };
        let mut response = json_error(status, &message);
        if let Some(delay) = self.retry_after() {
            response.headers_mut().insert(
                RETRY_AFTER,
                HeaderValue::from(crate::layer::reject::retry_after_secs(delay)),
            );
        }
        response
    }
}

/// Answers refusals with an axum response: see
/// [`RevocationLayer::with_rejection_response`].
#[derive(Debug, Clone, Copy)]
pub struct RejectionResponse<F>(F);

impl<F, T> OnRejection<Body> for RejectionResponse<F>
where
    F: Fn(&Rejection) -> T + Send + Sync + 'static,
    T: IntoResponse,
{
    fn on_rejection(&self, rejection: &Rejection, _request_headers: &HeaderMap) -> Response {
        (self.0)(rejection).into_response()
    }
}

impl<Reject> RevocationLayer<Reject> {
    /// Answers refusals with whatever `respond` returns, as axum handlers do: any
    /// `impl IntoResponse`, `(StatusCode, Json<_>)` included. Every other setting is
    /// kept.
    ///
    /// ```
    /// use axum::Json;
    /// use axum::http::StatusCode;
    /// use serde_json::json;
    /// # use tower_jwt_revoke::{JwtVerifier, RevocationLayer, VerificationKey, store::InMemoryStore};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let verifier = JwtVerifier::builder()
    /// #     .key(VerificationKey::hmac(jsonwebtoken::Algorithm::HS256, b"secret")?)
    /// #     .build()?;
    /// let layer = RevocationLayer::new(verifier, InMemoryStore::new()).with_rejection_response(|rejection| {
    ///     let status = if rejection.status() == StatusCode::SERVICE_UNAVAILABLE {
    ///         StatusCode::SERVICE_UNAVAILABLE
    ///     } else {
    ///         StatusCode::UNAUTHORIZED
    ///     };
    ///     (status, Json(json!({ "error": rejection.to_string() })))
    /// });
    /// # let _: axum::Router = axum::Router::new().route("/", axum::routing::get(|| async {})).route_layer(layer);
    /// # Ok(()) }
    /// ```
    pub fn with_rejection_response<F, T>(self, respond: F) -> RevocationLayer<RejectionResponse<F>>
    where
        F: Fn(&Rejection) -> T + Send + Sync + 'static,
        T: IntoResponse,
    {
        self.with_rejection(RejectionResponse(respond))
    }
}

fn json_error(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "error": message }).to_string();
    (
        status,
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        body,
    )
        .into_response()
}
