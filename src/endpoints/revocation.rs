//! [`TokenRevocation`]: an RFC 7009 token revocation endpoint.

use http::request::Parts;

use super::form::Form;
use super::form_endpoint::{FormEndpoint, form_service, limit_settings};
use std::fmt;
use std::sync::Arc;

use http::header::WWW_AUTHENTICATE;
use http::{HeaderValue, Response, StatusCode};
use serde::Deserialize;

use super::client_auth::{ClientAuth, ClientRequest};
use super::response::{self};
use super::{BuildError, Limits};
use crate::revoke::Revoker;
use crate::verify::VerifyError;
use crate::verify::token::VerifiedToken;

type IssuedTo = dyn Fn(&VerifiedToken, &str) -> bool + Send + Sync;

/// How the endpoint decides whether a token was issued to the client asking.
enum Owner {
    Named(NamedClient),
    Custom(Box<IssuedTo>),
}

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
/// | a valid access token issued to another client, or by another authorization server | 400 `unauthorized_client` (§2.1: the server "verifies whether the token was issued to the client making the revocation request"; §2.2.1: errors are RFC 6749 §5.2's) |
/// | a valid access token naming no client (no `client_id`, no `azp`) | 400 `unauthorized_client`, unless [`allow_unowned_tokens`](TokenRevocationBuilder::allow_unowned_tokens) |
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
/// let endpoint = TokenRevocation::builder(layer.revoker(), basic_auth("web", "web secret")).build()?;
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
    owner: Owner,
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
            issued_to: None,
            client_issuer: None,
            allow_unowned: false,
            limits: Limits::default(),
        }
    }

    /// The answer to a revocation request's form (see [`FormEndpoint`]).
    async fn answer(self, parts: Parts, form: Form) -> Response<String> {
        let endpoint = &*self.inner;
        let retry_after = endpoint.limits.retry_after;
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
        let ownership = match &endpoint.owner {
            Owner::Named(named) => named.owns(&verified, &client),
            Owner::Custom(issued_to) if issued_to(&verified, &client) => Ownership::Owned,
            Owner::Custom(_) => Ownership::AnotherClients,
        };
        // §2.1: the server "verifies whether the token was issued to the client making
        // the revocation request. If this validation fails, the request is refused", with
        // an error of RFC 6749 §5.2 (§2.2.1): 400 `unauthorized_client`.
        let refused = match ownership {
            Ownership::Owned => None,
            Ownership::AnotherClients => Some("the token was not issued to this client"),
            Ownership::Unowned => {
                Some("the token names no client (client_id or azp), so no client may revoke it")
            }
        };
        if let Some(description) = refused {
            tracing::info!(%client, token = %verified.revocation_key(), description, "token revocation refused");
            return response::error(StatusCode::BAD_REQUEST, "unauthorized_client", description);
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

/// The default of [`TokenRevocationBuilder::issued_to`]: a token is a client's when it
/// names that client in `client_id` (RFC 9068 §2.2) or else `azp` (OpenID Connect), and
/// comes from the authorization server the client is registered with (client ids are
/// unique per server only). A token naming no client is nobody's, unless
/// [`allow_unowned_tokens`](TokenRevocationBuilder::allow_unowned_tokens).
#[derive(Debug)]
struct NamedClient {
    /// The `iss` of the clients' authorization server; `None` when the verifier checks
    /// no issuer, so that every token it accepts comes from its one set of keys.
    issuer: Option<String>,
    allow_unowned: bool,
}

impl NamedClient {
    fn owns(&self, token: &VerifiedToken, client: &str) -> Ownership {
        #[derive(Deserialize)]
        struct Named {
            #[serde(default)]
            client_id: Option<String>,
            #[serde(default)]
            azp: Option<String>,
        }
        let Ok(named) = token.claims::<Named>() else {
            // A `client_id` or `azp` that is not a string names no client we could match.
            return Ownership::AnotherClients;
        };
        let owner = named
            .client_id
            .filter(|id| !id.is_empty())
            .or(named.azp.filter(|id| !id.is_empty()));
        let Some(owner) = owner else {
            return if self.allow_unowned {
                Ownership::Owned
            } else {
                Ownership::Unowned
            };
        };
        let same_server = match &self.issuer {
            Some(issuer) => token.issuer() == Some(issuer.as_str()),
            None => true,
        };
        if same_server && owner == client {
            Ownership::Owned
        } else {
            Ownership::AnotherClients
        }
    }
}

/// Whose a valid token is, as far as the authenticated client is concerned.
enum Ownership {
    Owned,
    AnotherClients,
    /// The token names no client.
    Unowned,
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

impl FormEndpoint for TokenRevocation {
    fn limits(&self) -> Limits {
        self.inner.limits
    }

    async fn respond(self, parts: Parts, form: Form) -> Response<String> {
        self.answer(parts, form).await
    }
}

form_service!(TokenRevocation);

/// Builds a [`TokenRevocation`]; see [`TokenRevocation::builder`].
#[must_use]
pub struct TokenRevocationBuilder {
    revoker: Revoker,
    clients: Box<dyn ClientAuth>,
    issued_to: Option<Box<IssuedTo>>,
    client_issuer: Option<String>,
    allow_unowned: bool,
    limits: Limits,
}

impl fmt::Debug for TokenRevocationBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenRevocationBuilder")
            .field("revoker", &self.revoker)
            .field("client_issuer", &self.client_issuer)
            .field("allow_unowned", &self.allow_unowned)
            .field("custom_issued_to", &self.issued_to.is_some())
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl TokenRevocationBuilder {
    /// Decides whether a valid token was issued to the authenticated client (its id is
    /// the second argument); a token that was not is refused with 400
    /// `unauthorized_client`. This replaces the default check, and with it what
    /// [`client_issuer`](Self::client_issuer) and
    /// [`allow_unowned_tokens`](Self::allow_unowned_tokens) configure.
    ///
    /// By default a token is the client's when it names it in `client_id` (RFC 9068)
    /// or else `azp`, and its `iss` is the clients' authorization server
    /// ([`client_issuer`](Self::client_issuer)); a token naming no client is no
    /// client's, and refused.
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
        self.issued_to = Some(Box::new(check));
        self
    }

    /// The issuer (`iss`) of the authorization server the clients authenticated here
    /// are registered with. Client ids are unique per server only (RFC 6749 §2.2), so a
    /// token is a client's only when its `iss` is this one as well as its `client_id`
    /// (or `azp`) the client's.
    ///
    /// Unset, it is the revoker's verifier's issuer when that accepts exactly one;
    /// when the verifier checks no `iss`, every token it accepts comes from its one
    /// set of keys, and `client_id` alone names the client. A verifier that accepts
    /// several issuers needs it: [`build`](Self::build) refuses to guess.
    pub fn client_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.client_issuer = Some(issuer.into());
        self
    }

    /// Lets any authenticated client revoke a valid token that names no client (no
    /// `client_id`, no `azp`). By default such a token is refused with 400
    /// `unauthorized_client`: nothing says it was issued to the client asking, which
    /// RFC 7009 §2.1 requires the server to verify. Turn it on when your tokens carry
    /// no client at all and any of your clients may end any of them.
    pub fn allow_unowned_tokens(mut self) -> Self {
        self.allow_unowned = true;
        self
    }

    limit_settings!();

    /// Builds the endpoint; fails when the clients' authorization server cannot be
    /// told ([`BuildError::NoClientIssuer`]): the verifier accepts several issuers, and
    /// neither [`client_issuer`](Self::client_issuer) nor a custom
    /// [`issued_to`](Self::issued_to) says whose clients these are.
    pub fn build(self) -> Result<TokenRevocation, BuildError> {
        let owner = match self.issued_to {
            Some(custom) => Owner::Custom(custom),
            None => {
                let verifier = self.revoker.verifier();
                let issuer = match (self.client_issuer, verifier.issuers()) {
                    (Some(issuer), _) => Some(issuer),
                    (None, []) => None,
                    (None, [only]) => Some(only.clone()),
                    (None, _) => return Err(BuildError::NoClientIssuer),
                };
                Owner::Named(NamedClient {
                    issuer,
                    allow_unowned: self.allow_unowned,
                })
            }
        };
        Ok(TokenRevocation {
            inner: Arc::new(Endpoint {
                revoker: self.revoker,
                clients: self.clients,
                owner,
                limits: self.limits,
            }),
        })
    }
}
