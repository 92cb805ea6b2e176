//! [`TokenRevocation`]: an RFC 7009 token revocation endpoint.

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::WWW_AUTHENTICATE;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body::Body;
use serde::Deserialize;
use tower_service::Service;

use super::client_auth::{ClientAuth, ClientRequest};
use super::response::{self, EndpointFuture};
use super::{Limits, form};
use crate::revoke::Revoker;
use crate::store::BoxError;
use crate::token::VerifiedToken;
use crate::verify::VerifyError;

type IssuedTo = dyn Fn(&VerifiedToken, &str) -> bool + Send + Sync;

/// An [RFC 7009] token revocation endpoint, for applications that issue their own
/// access tokens: an OAuth client POSTs `token=…` (and optionally
/// `token_type_hint=…`), authenticated as the [`ClientAuth`] given to
/// [`builder`](Self::builder) decides, and the token is revoked with the
/// [`Revoker`], for as long as it would otherwise be accepted.
///
/// | request                                               | answer                                  |
/// |-------------------------------------------------------|-----------------------------------------|
/// | client not authenticated                              | 401 `invalid_client`, `WWW-Authenticate: Basic` |
/// | no `token`                                            | 400 `invalid_request`                    |
/// | a valid access token issued to this client            | revoked, 200                             |
/// | a valid access token issued to another client         | 400 `unauthorized_client` (§2.1: the server "verifies whether the token was issued to the client making the revocation request") |
/// | an unknown, invalid or expired token                  | 200 (§2.2: the purpose, a token that no longer works, is achieved) |
/// | `token_type_hint=refresh_token` and no valid access token | 400 `unsupported_token_type` (§2.2.1): this endpoint revokes access tokens only, and a 200 would tell the client its refresh token is dead when it is not |
/// | any other hint                                        | ignored (§2.1: a hint that does not match extends the search; §2.2: an invalid one "is ignored") |
/// | store failed, signing keys unavailable                | 503 `temporarily_unavailable`, `Retry-After` (§2.2.1: the client must assume the token still exists) |
///
/// plus the answers to malformed requests listed in the [module docs](super).
/// A token verifies with the revoker's [`verifier`](Revoker::verifier), the one
/// requests are checked with.
///
/// # Example
///
/// ```
/// use http::{Request, StatusCode};
/// use tower::ServiceExt;
/// use tower_jwt_revoke::endpoints::{TokenRevocation, basic_auth};
/// use tower_jwt_revoke::jsonwebtoken::{self, Algorithm, EncodingKey, Header};
/// use tower_jwt_revoke::store::InMemoryStore;
/// use tower_jwt_revoke::{JwtVerifier, RevocationLayer, VerificationKey};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let secret = b"a long random secret of 32 bytes";
/// let verifier = JwtVerifier::builder().key(VerificationKey::hmac(Algorithm::HS256, secret)?).build()?;
/// let layer = RevocationLayer::new(verifier, InMemoryStore::new());
/// let endpoint = TokenRevocation::builder(layer.revoker(), basic_auth("web", "web secret")).build();
///
/// let now = jsonwebtoken::get_current_timestamp();
/// let claims = serde_json::json!({ "sub": "alice", "client_id": "web", "jti": "1", "iat": now, "exp": now + 600 });
/// let token = jsonwebtoken::encode(&Header::default(), &claims, &EncodingKey::from_secret(secret))?;
/// let request = Request::post("/oauth/revoke")
///     .header("content-type", "application/x-www-form-urlencoded")
///     .header("authorization", "Basic d2ViOndlYiBzZWNyZXQ=") // web:web secret
///     .body(format!("token={token}&token_type_hint=access_token"))?;
///
/// assert_eq!(endpoint.oneshot(request).await?.status(), StatusCode::OK);
/// // From now on, `layer` refuses `token` with a 401.
/// # Ok(()) }
/// ```
///
/// [RFC 7009]: https://www.rfc-editor.org/rfc/rfc7009
#[derive(Clone)]
pub struct TokenRevocation {
    inner: Arc<Endpoint>,
}

struct Endpoint {
    revoker: Revoker,
    clients: Box<dyn ClientAuth>,
    issued_to: Box<IssuedTo>,
    limits: Limits,
}

impl fmt::Debug for TokenRevocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenRevocation")
            .field("revoker", &self.inner.revoker)
            .field("limits", &self.inner.limits)
            .finish_non_exhaustive()
    }
}

impl TokenRevocation {
    /// Starts building an endpoint that revokes with `revoker` (that of the
    /// [`RevocationLayer`](crate::RevocationLayer) checking the tokens,
    /// [`RevocationLayer::revoker`](crate::RevocationLayer::revoker)) for the clients
    /// `clients` authenticates ([`basic_auth`](super::basic_auth), or a closure).
    pub fn builder(revoker: Revoker, clients: impl ClientAuth) -> TokenRevocationBuilder {
        TokenRevocationBuilder {
            revoker,
            clients: Box::new(clients),
            issued_to: Box::new(issued_to_named_client),
            limits: Limits::default(),
        }
    }

    async fn answer<B>(self, request: Request<B>) -> Response<String>
    where
        B: Body,
        B::Error: Into<BoxError>,
    {
        let endpoint = &*self.inner;
        let retry_after = endpoint.limits.retry_after;
        let (parts, form) = match form::read(request, endpoint.limits).await {
            Ok(read) => read,
            Err(refused) => return refused.into_response(),
        };
        let Some(client) = endpoint.clients.authenticate(&ClientRequest::new(&parts, &form)) else {
            tracing::info!("token revocation refused: client not authenticated");
            return invalid_client();
        };
        let Some(token) = form.get("token") else {
            return response::invalid_request("missing token parameter");
        };
        let verified = match self.verify(token).await {
            Ok(Some(verified)) => verified,
            Ok(None) => {
                tracing::debug!(%client, "token revocation: the token has expired already");
                return response::ok();
            }
            Err(error) if error.is_server_side() => {
                tracing::warn!(%error, %client, "token revocation: cannot verify tokens now");
                let retry_after = error.retry_after().unwrap_or(retry_after);
                return response::unavailable("the token cannot be checked now; retry later", retry_after);
            }
            Err(error) if form.get("token_type_hint") == Some("refresh_token") => {
                tracing::info!(%error, %client, "token revocation: refresh token presented, unsupported");
                return response::error(
                    StatusCode::BAD_REQUEST,
                    "unsupported_token_type",
                    "this endpoint revokes access tokens only",
                );
            }
            Err(error) => {
                tracing::debug!(%error, %client, "token revocation: not a valid token, nothing to revoke");
                return response::ok();
            }
        };
        if !(endpoint.issued_to)(&verified, &client) {
            tracing::info!(%client, token = %verified.revocation_key(), "token revocation refused: another client's token");
            return response::error(
                StatusCode::BAD_REQUEST,
                "unauthorized_client",
                "the token was not issued to this client",
            );
        }
        match endpoint.revoker.revoke(&verified).await {
            Ok(revocation) => {
                tracing::info!(%client, token = %verified.revocation_key(), ?revocation, "token revoked (RFC 7009)");
                response::ok()
            }
            Err(error) => {
                tracing::warn!(%error, %client, "token revocation not recorded");
                response::unavailable("the revocation was not recorded; retry later", retry_after)
            }
        }
    }

    /// Verifies for revocation, asking a refreshing key source for fresh keys once
    /// when the token's key is unknown (a key the issuer just started signing with).
    async fn verify(&self, token: &str) -> Result<Option<VerifiedToken>, VerifyError> {
        let verifier = self.inner.revoker.verifier();
        verifier
            .refreshing(token, |token| verifier.verify_for_revocation(token))
            .await
    }
}

/// The default of [`TokenRevocationBuilder::issued_to`]: a token naming its client in
/// `client_id` (RFC 9068 §2.2) or else `azp` (OpenID Connect) belongs to that client
/// only; one naming none may be revoked by any authenticated client (it had to present
/// the token, which already lets it use it).
fn issued_to_named_client(token: &VerifiedToken, client: &str) -> bool {
    #[derive(Deserialize)]
    struct Named {
        #[serde(default)]
        client_id: Option<String>,
        #[serde(default)]
        azp: Option<String>,
    }
    match token.claims::<Named>() {
        Ok(Named {
            client_id: Some(owner),
            ..
        })
        | Ok(Named {
            client_id: None,
            azp: Some(owner),
        }) => owner == client,
        Ok(_) => true,
        // A `client_id` that is not a string names no client we could match.
        Err(_) => false,
    }
}

/// 401 `invalid_client` with a Basic challenge (RFC 6749 §5.2).
fn invalid_client() -> Response<String> {
    let mut answer = response::error(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "client authentication failed",
    );
    answer.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static(r#"Basic realm="token revocation", charset="UTF-8""#),
    );
    answer
}

impl<B> Service<Request<B>> for TokenRevocation
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<String>;
    type Error = Infallible;
    type Future = EndpointFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        EndpointFuture::new(self.clone().answer(request))
    }
}

/// Builds a [`TokenRevocation`]; see [`TokenRevocation::builder`].
#[must_use]
pub struct TokenRevocationBuilder {
    revoker: Revoker,
    clients: Box<dyn ClientAuth>,
    issued_to: Box<IssuedTo>,
    limits: Limits,
}

impl fmt::Debug for TokenRevocationBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenRevocationBuilder")
            .field("revoker", &self.revoker)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl TokenRevocationBuilder {
    /// Decides whether a valid token was issued to the authenticated client (its id is
    /// the second argument); a token that was not is refused with 400
    /// `unauthorized_client`. By default a token naming a client in `client_id`
    /// (RFC 9068) or else `azp` must name this one, and a token naming none may be
    /// revoked by any authenticated client.
    ///
    /// ```
    /// # use tower_jwt_revoke::endpoints::TokenRevocationBuilder;
    /// # fn strict(builder: TokenRevocationBuilder) -> TokenRevocationBuilder {
    /// #[derive(serde::Deserialize)]
    /// struct Issued { client_id: String }
    /// builder.issued_to(|token, client| token.claims::<Issued>().is_ok_and(|issued| issued.client_id == client))
    /// # }
    /// ```
    pub fn issued_to(mut self, check: impl Fn(&VerifiedToken, &str) -> bool + Send + Sync + 'static) -> Self {
        self.issued_to = Box::new(check);
        self
    }

    /// The largest body read (default [`DEFAULT_MAX_BODY_LEN`](super::DEFAULT_MAX_BODY_LEN));
    /// larger ones are answered 413.
    pub fn max_body_len(mut self, bytes: usize) -> Self {
        self.limits.max_body_len = bytes;
        self
    }

    /// How long the body may take to arrive (default
    /// [`DEFAULT_BODY_TIMEOUT`](super::DEFAULT_BODY_TIMEOUT)); after it, 408.
    pub fn body_timeout(mut self, timeout: Duration) -> Self {
        self.limits.body_timeout = timeout;
        self
    }

    /// The `Retry-After` of a 503, rounded down to whole seconds, at least one (default
    /// [`DEFAULT_RETRY_AFTER`](super::DEFAULT_RETRY_AFTER)).
    pub fn retry_after(mut self, delay: Duration) -> Self {
        self.limits.retry_after = delay;
        self
    }

    /// Builds the endpoint.
    pub fn build(self) -> TokenRevocation {
        TokenRevocation {
            inner: Arc::new(Endpoint {
                revoker: self.revoker,
                clients: self.clients,
                issued_to: self.issued_to,
                limits: self.limits,
            }),
        }
    }
}
