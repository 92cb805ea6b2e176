//! Tonic integration (feature `tonic`): the verified token from a `tonic::Request`,
//! and refusals as `tonic::Status`.
//!
//! # Wiring
//!
//! gRPC metadata is HTTP/2 headers, so the layer's default source reads the
//! `authorization: Bearer …` metadata. Put every service behind the layer with
//! `Server::layer`, or a single one with tonic's `LayerExt::named_layer` (which keeps
//! the service name tonic routes by); handlers read the token with
//! [`RequestExt::verified_token`] or their own claims with [`RequestExt::claims`]:
//!
//! ```
//! use tonic::service::LayerExt as _;
//! use tonic::transport::Server;
//! use tonic::{Request, Status};
//! use tower_jwt_revoke::tonic::RequestExt as _;
//! use tower_jwt_revoke::{JwtVerifier, RevocationLayer, VerificationKey, store::InMemoryStore};
//! # use tonic::server::NamedService;
//! # #[derive(Clone)] struct GreeterServer;
//! # impl NamedService for GreeterServer { const NAME: &'static str = "hello.Greeter"; }
//! # impl tower::Service<http::Request<tonic::body::Body>> for GreeterServer {
//! #     type Response = http::Response<tonic::body::Body>;
//! #     type Error = std::convert::Infallible;
//! #     type Future = std::future::Ready<Result<Self::Response, Self::Error>>;
//! #     fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> { std::task::Poll::Ready(Ok(())) }
//! #     fn call(&mut self, _: http::Request<tonic::body::Body>) -> Self::Future { std::future::ready(Ok(Status::unimplemented("").into_http())) }
//! # }
//!
//! // In a handler of the generated service trait:
//! fn whoami<T>(request: &Request<T>) -> Result<String, Status> {
//!     let token = request.verified_token()?; // Status::internal if the layer is missing
//!     Ok(token.subject().unwrap_or("anonymous").to_owned())
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let key = VerificationKey::hmac(jsonwebtoken::Algorithm::HS256, b"a long random secret")?;
//! let layer = RevocationLayer::new(JwtVerifier::builder().key(key).build()?, InMemoryStore::new())
//!     // Optional: your own statuses (`Status::from(rejection)` is the default's).
//!     .with_status_rejection(|rejection| match Status::from(rejection) {
//!         status if status.code() == tonic::Code::Unauthenticated => Status::unauthenticated("please sign in again"),
//!         status => status,
//!     });
//!
//! // Every service behind the layer:
//! let everything = Server::builder().layer(layer.clone()).add_service(GreeterServer);
//! // Only this one (others added beside it stay open):
//! let one = Server::builder().add_service(layer.named_layer(GreeterServer));
//! # drop((everything, one));
//! # Ok(()) }
//! ```

use serde::de::DeserializeOwned;
use tonic::{Code, Status};

use crate::layer::RevocationLayer;
use crate::layer::reject::{OnRejection, Rejection, retry_after_ms};
use crate::revoke::RevokeError;
use crate::verify::VerifyError;
use crate::verify::token::VerifiedToken;

/// Reads what [`RevocationLayer`] verified from a `tonic::Request`.
pub trait RequestExt {
    /// The verified token, or `Status::internal` when the service is not behind the
    /// layer (a bug in the server's wiring: the details are logged, not sent).
    fn verified_token(&self) -> Result<&VerifiedToken, Status>;

    /// The application's own claims from the verified token; `UNAUTHENTICATED` when
    /// the genuine token's payload does not fit `C` (see [`VerifiedToken::claims`]).
    fn claims<C: DeserializeOwned>(&self) -> Result<C, Status> {
        self.verified_token()?.claims().map_err(unauthenticated)
    }
}

impl<T> RequestExt for tonic::Request<T> {
    fn verified_token(&self) -> Result<&VerifiedToken, Status> {
        self.extensions().get::<VerifiedToken>().ok_or_else(|| {
            tracing::error!(
                "a gRPC handler asked for a verified token, but its service is not behind RevocationLayer"
            );
            Status::internal("internal error")
        })
    }
}

fn unauthenticated(error: VerifyError) -> Status {
    Status::unauthenticated(error.to_string())
}

/// The status the layer answers a refusal with: `UNAUTHENTICATED`, or `UNAVAILABLE`
/// when the store could not answer or the signing keys are not fetched yet (a client
/// retries that one; the status carries `grpc-retry-pushback-ms`, the
/// [delay](Rejection::retry_after) a client with a gRPC retry policy waits).
impl From<&Rejection> for Status {
    fn from(rejection: &Rejection) -> Self {
        let code = match rejection.grpc_status() {
            14 => Code::Unavailable,
            _ => Code::Unauthenticated,
        };
        let mut status = Status::new(code, rejection.to_string());
        if let Some(delay) = rejection.retry_after() {
            status
                .metadata_mut()
                .insert("grpc-retry-pushback-ms", retry_after_ms(delay).into());
        }
        status
    }
}

impl From<Rejection> for Status {
    fn from(rejection: Rejection) -> Self {
        Self::from(&rejection)
    }
}

/// A failed revocation as a status: `INVALID_ARGUMENT` for the client's mistakes,
/// `UNAVAILABLE` when the store failed or did not confirm the revocation durable, or
/// the token cannot be verified now (its signing keys unavailable or about to be
/// fetched again): retry. `INTERNAL` for a verifier that cannot name an issuer.
/// Messages name no internals.
impl From<RevokeError> for Status {
    fn from(error: RevokeError) -> Self {
        match &error {
            RevokeError::InvalidToken(cause) if cause.is_server_side() => {
                tracing::warn!(error = %cause, "a token to revoke cannot be verified now");
                let mut status = Status::unavailable("the token cannot be verified now; try again");
                if let Some(delay) = error.retry_after() {
                    status
                        .metadata_mut()
                        .insert("grpc-retry-pushback-ms", retry_after_ms(delay).into());
                }
                status
            }
            RevokeError::Store(cause) => {
                tracing::warn!(error = %cause, "a revocation was not recorded");
                Status::unavailable("the revocation could not be recorded; try again")
            }
            RevokeError::Unacknowledged(cause) => {
                tracing::warn!(error = %cause, "a revocation was recorded but not confirmed durable");
                Status::unavailable("the revocation is recorded but not yet confirmed; try again")
            }
            RevokeError::AmbiguousIssuer => {
                tracing::error!(%error, "a revocation needs the issuer named");
                Status::internal("internal error")
            }
            _ => Status::invalid_argument(error.to_string()),
        }
    }
}

/// Answers refusals with a `tonic::Status`: see
/// [`RevocationLayer::with_status_rejection`].
#[derive(Debug, Clone, Copy)]
pub struct StatusRejection<F>(F);

impl<F, B> OnRejection<B> for StatusRejection<F>
where
    F: Fn(&Rejection) -> Status + Send + Sync + 'static,
    B: Default,
{
    fn on_rejection(&self, rejection: &Rejection, _request_headers: &http::HeaderMap) -> http::Response<B> {
        (self.0)(rejection).into_http()
    }
}

impl<Reject> RevocationLayer<Reject> {
    /// Answers refusals with the `tonic::Status` that `status` builds (a message of
    /// your own, details, metadata), sent as gRPC clients expect. Every other setting
    /// is kept. `Status::from(rejection)` gives the default codes.
    pub fn with_status_rejection<F>(self, status: F) -> RevocationLayer<StatusRejection<F>>
    where
        F: Fn(&Rejection) -> Status + Send + Sync + 'static,
    {
        self.with_rejection(StatusRejection(status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::RevokedBy;

    #[test]
    fn refusals_map_to_grpc_codes() {
        assert_eq!(
            Status::from(Rejection::StoreUnavailable).code(),
            Code::Unavailable
        );
        let revoked = Status::from(Rejection::Revoked(RevokedBy::Token));
        assert_eq!(revoked.code(), Code::Unauthenticated);
        assert_eq!(revoked.message(), "token revoked");
        assert_eq!(
            Status::from(RevokeError::MissingClaim("sub")).code(),
            Code::InvalidArgument
        );
    }

    #[test]
    fn a_token_that_cannot_be_verified_now_is_unavailable_with_pushback_not_invalid() {
        let pending = VerifyError::KeyRefreshPending {
            retry_after: std::time::Duration::from_secs(7),
        };
        let status = Status::from(Rejection::InvalidToken(pending.clone()));
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(status.metadata().get("grpc-retry-pushback-ms").unwrap(), "7000");
        for cause in [pending, VerifyError::KeysUnavailable] {
            let status = Status::from(RevokeError::InvalidToken(cause));
            assert_eq!(status.code(), Code::Unavailable, "{status:?}");
            assert!(status.metadata().get("grpc-retry-pushback-ms").is_some());
        }
        assert_eq!(
            Status::from(RevokeError::InvalidToken(VerifyError::BadSignature)).code(),
            Code::InvalidArgument
        );
    }
}
