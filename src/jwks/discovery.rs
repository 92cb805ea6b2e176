//! OpenID Connect Discovery 1.0: [`OidcIssuer`] finds an issuer's keys (and the
//! endpoints a resource server may need) from `{issuer}/.well-known/openid-configuration`.

use std::time::Duration;

use reqwest::{Client, Url};
use serde_json::{Map, Value};

use super::builder::{Settings, settings_setters};
use super::error::JwksError;
use super::fetch;
use super::health::JwksHealth;
use super::source::{Jwks, Source};
use crate::{JwtVerifier, JwtVerifierBuilder, KeyRing};

/// The path OpenID Connect Discovery §4 appends to the issuer.
const WELL_KNOWN: &str = "/.well-known/openid-configuration";

/// An OpenID Provider found by discovery: its exact issuer identifier, its metadata,
/// and its signing keys, kept fresh as a [`Jwks`] is.
///
/// Give it to a verifier with [`JwtVerifierBuilder::oidc_issuer`]; several issuers
/// (tenants) in one verifier each verify with their own keys, chosen by the token's
/// `iss` before any signature work.
///
/// # Example
///
/// ```no_run
/// use tower_jwt_revoke::JwtVerifier;
/// use tower_jwt_revoke::jwks::OidcIssuer;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let tenant_a = OidcIssuer::discover("https://idp.example/realms/a").await?;
/// let tenant_b = OidcIssuer::discover("https://idp.example/realms/b").await?;
/// let verifier = JwtVerifier::builder()
///     .oidc_issuer(&tenant_a)
///     .oidc_issuer(&tenant_b)
///     .audience("my-api")
///     .require_type("at+jwt")
///     .build()?;
///
/// if let Some(endpoint) = tenant_a.metadata().and_then(|m| m.end_session_endpoint.as_deref()) {
///     println!("log out at {endpoint}");
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct OidcIssuer {
    issuer: String,
    jwks: Jwks,
}

impl OidcIssuer {
    /// Discovers `issuer` with the default settings (see [`OidcIssuerBuilder`]):
    /// reads its discovery document, checks that the document names exactly this
    /// issuer, and fetches the keys at its `jwks_uri`.
    ///
    /// `issuer` is the identifier the provider puts in `iss`, character for character
    /// (a trailing slash counts): `https://idp.example/realms/x` for Keycloak,
    /// `https://tenant.auth0.com/` for Auth0.
    ///
    /// # Errors
    ///
    /// An issuer URL that is not `https://` (or `http://` to a loopback host), or has
    /// a query or fragment; a discovery document that cannot be fetched, is not
    /// provider metadata, or names another issuer ([`JwksError::IssuerMismatch`]); a
    /// JWKS that cannot be fetched.
    pub async fn discover(issuer: impl Into<String>) -> Result<Self, JwksError> {
        Self::builder(issuer).discover().await
    }

    /// Starts configuring discovery of `issuer`, with the same settings as a
    /// [`JwksBuilder`](super::JwksBuilder) (which apply to the discovery request too).
    pub fn builder(issuer: impl Into<String>) -> OidcIssuerBuilder {
        OidcIssuerBuilder {
            issuer: issuer.into(),
            settings: Settings::default(),
        }
    }

    /// The issuer identifier, exactly as the tokens' `iss` must carry it.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The provider's metadata; `None` only after a [`StartMode::Degraded`](super::StartMode::Degraded)
    /// start while the provider has not answered yet.
    pub fn metadata(&self) -> Option<&ProviderMetadata> {
        self.jwks.metadata()
    }

    /// The issuer's keys, as a [`Jwks`] (health, forced refresh).
    pub fn jwks(&self) -> &Jwks {
        &self.jwks
    }

    /// The issuer's keys, for [`JwtVerifierBuilder::issuer_keys`].
    pub fn key_ring(&self) -> KeyRing {
        self.jwks.key_ring()
    }

    /// The health of the issuer's keys; see [`Jwks::health`].
    pub fn health(&self) -> JwksHealth {
        self.jwks.health()
    }
}

/// Configures discovery of an issuer; see [`OidcIssuer::builder`].
///
/// With [`StartMode::Degraded`](super::StartMode::Degraded), discovery itself waits
/// for the provider too: [`discover`](Self::discover) returns at once, and the
/// background task reads the discovery document, then the keys, retrying with
/// backoff until both succeed.
///
/// ```no_run
/// use std::time::Duration;
/// use tower_jwt_revoke::jwks::{OidcIssuer, StartMode};
///
/// # async fn run() -> Result<(), tower_jwt_revoke::jwks::JwksError> {
/// let issuer = OidcIssuer::builder("https://idp.example/realms/x")
///     .timeout(Duration::from_secs(3))
///     .start_mode(StartMode::Degraded)
///     .discover()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct OidcIssuerBuilder {
    issuer: String,
    settings: Settings,
}

impl OidcIssuerBuilder {
    settings_setters!();

    /// Discovers the issuer and starts its keys' background refresh; see
    /// [`OidcIssuer::discover`] for what is checked.
    ///
    /// Must run inside a Tokio runtime, as [`JwksBuilder::build`](super::JwksBuilder::build).
    ///
    /// # Errors
    ///
    /// As [`OidcIssuer::discover`]; with [`StartMode::Degraded`](super::StartMode::Degraded)
    /// only an invalid issuer URL.
    pub async fn discover(self) -> Result<OidcIssuer, JwksError> {
        let discovery_url = discovery_url(&self.issuer)?;
        let jwks = Jwks::start(
            Source::Issuer {
                issuer: self.issuer.clone(),
                discovery_url,
            },
            self.settings,
        )
        .await?;
        Ok(OidcIssuer {
            issuer: self.issuer,
            jwks,
        })
    }
}

/// `{issuer}/.well-known/openid-configuration`, with one terminating `/` of the issuer
/// removed first (OpenID Connect Discovery §4.1): the path is appended, never put in
/// front of the issuer's own path as RFC 8414 does for OAuth metadata.
fn discovery_url(issuer: &str) -> Result<Url, JwksError> {
    let parsed = fetch::parse_url(issuer)?;
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(JwksError::InvalidUrl {
            url: fetch::redact(&parsed),
            reason: "an issuer identifier has no query or fragment",
        });
    }
    let base = issuer.strip_suffix('/').unwrap_or(issuer);
    fetch::parse_url(&format!("{base}{WELL_KNOWN}"))
}

/// What an OpenID Provider says about itself (OpenID Connect Discovery §3), as far as
/// a resource server may need it. Members that are absent, or not of the type the
/// specifications give them, are `None` (or `false`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProviderMetadata {
    /// `issuer`: equal to the issuer discovered, checked.
    pub issuer: String,
    /// `jwks_uri`: where the signing keys are.
    pub jwks_uri: String,
    /// `token_endpoint`.
    pub token_endpoint: Option<String>,
    /// `userinfo_endpoint`.
    pub userinfo_endpoint: Option<String>,
    /// `end_session_endpoint` (RP-Initiated Logout 1.0): where to send a user's
    /// browser to log out at the provider.
    pub end_session_endpoint: Option<String>,
    /// `revocation_endpoint` (RFC 7009, RFC 8414).
    pub revocation_endpoint: Option<String>,
    /// `introspection_endpoint` (RFC 7662, RFC 8414).
    pub introspection_endpoint: Option<String>,
    /// `backchannel_logout_supported` (Back-Channel Logout 1.0 §2.1).
    pub backchannel_logout_supported: bool,
    /// `backchannel_logout_session_supported`: logout tokens carry `sid`.
    pub backchannel_logout_session_supported: bool,
    /// `id_token_signing_alg_values_supported`.
    pub id_token_signing_alg_values_supported: Vec<String>,
}

impl ProviderMetadata {
    fn from_document(url: &Url, body: &[u8]) -> Result<Self, JwksError> {
        let not_metadata = |reason: &str| JwksError::NotProviderMetadata {
            url: fetch::redact(url),
            reason: reason.to_owned(),
        };
        let document: Map<String, Value> =
            serde_json::from_slice(body).map_err(|_| not_metadata("not a JSON object"))?;
        let string = |name: &str| document.get(name).and_then(Value::as_str).map(str::to_owned);
        let flag = |name: &str| document.get(name).and_then(Value::as_bool).unwrap_or(false);
        Ok(Self {
            issuer: string("issuer").ok_or_else(|| not_metadata("no `issuer` string"))?,
            jwks_uri: string("jwks_uri").ok_or_else(|| not_metadata("no `jwks_uri` string"))?,
            token_endpoint: string("token_endpoint"),
            userinfo_endpoint: string("userinfo_endpoint"),
            end_session_endpoint: string("end_session_endpoint"),
            revocation_endpoint: string("revocation_endpoint"),
            introspection_endpoint: string("introspection_endpoint"),
            backchannel_logout_supported: flag("backchannel_logout_supported"),
            backchannel_logout_session_supported: flag("backchannel_logout_session_supported"),
            id_token_signing_alg_values_supported: document
                .get("id_token_signing_alg_values_supported")
                .and_then(Value::as_array)
                .map(|algs| algs.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                .unwrap_or_default(),
        })
    }
}

/// Fetches and checks the discovery document of `issuer`.
pub(super) async fn fetch_metadata(
    client: &Client,
    issuer: &str,
    url: &Url,
    timeout: Duration,
) -> Result<ProviderMetadata, JwksError> {
    let document = fetch::get(client, url, "application/json", timeout).await?;
    let metadata = ProviderMetadata::from_document(url, &document.body)?;
    // §4.3: exactly equal, or tokens signed by whoever serves this document under
    // another name would be accepted as this issuer's.
    if metadata.issuer != issuer {
        return Err(JwksError::IssuerMismatch {
            expected: issuer.to_owned(),
            found: metadata.issuer,
        });
    }
    Ok(metadata)
}

impl JwtVerifierBuilder {
    /// Accepts tokens from a discovered issuer, verified with its keys: a shorthand
    /// for [`issuer_keys`](Self::issuer_keys)`(issuer.issuer(), issuer.key_ring())`.
    /// Call again for each tenant.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use tower_jwt_revoke::JwtVerifier;
    /// use tower_jwt_revoke::jwks::OidcIssuer;
    ///
    /// let issuer = OidcIssuer::discover("https://idp.example/realms/x").await?;
    /// let verifier = JwtVerifier::builder().oidc_issuer(&issuer).audience("my-api").build()?;
    /// # Ok(()) }
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "jwks")))]
    pub fn oidc_issuer(self, issuer: &OidcIssuer) -> Self {
        self.issuer_keys(issuer.issuer(), issuer.key_ring())
    }
}

impl JwtVerifier {
    /// Discovers `issuer` ([`OidcIssuer::discover`]) and starts a verifier builder that
    /// accepts its tokens with its keys; add the audience and other settings, then
    /// build.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use tower_jwt_revoke::JwtVerifier;
    ///
    /// let verifier = JwtVerifier::from_issuer("https://idp.example/realms/x")
    ///     .await?
    ///     .audience("my-api")
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`OidcIssuer::discover`].
    #[cfg_attr(docsrs, doc(cfg(feature = "jwks")))]
    pub async fn from_issuer(issuer: impl Into<String>) -> Result<JwtVerifierBuilder, JwksError> {
        let issuer = OidcIssuer::discover(issuer).await?;
        Ok(Self::builder().oidc_issuer(&issuer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_well_known_path_is_appended_to_the_issuer() {
        let url = |issuer| discovery_url(issuer).map(|url| url.to_string());
        assert_eq!(
            url("https://idp.example/realms/x").unwrap(),
            "https://idp.example/realms/x/.well-known/openid-configuration"
        );
        assert_eq!(
            url("https://idp.example/realms/x/").unwrap(),
            "https://idp.example/realms/x/.well-known/openid-configuration"
        );
        assert_eq!(
            url("https://idp.example").unwrap(),
            "https://idp.example/.well-known/openid-configuration"
        );
        assert!(url("https://idp.example/?tenant=1").is_err());
        assert!(url("http://idp.example").is_err());
    }

    #[test]
    fn metadata_of_the_wrong_types_is_absent_not_an_error() {
        let url = Url::parse("https://idp.example/.well-known/openid-configuration").unwrap();
        let body = br#"{"issuer":"https://idp.example","jwks_uri":"https://idp.example/jwks",
            "backchannel_logout_supported":"yes","end_session_endpoint":7,
            "id_token_signing_alg_values_supported":["RS256",1]}"#;
        let metadata = ProviderMetadata::from_document(&url, body).unwrap();
        assert!(!metadata.backchannel_logout_supported);
        assert_eq!(metadata.end_session_endpoint, None);
        assert_eq!(metadata.id_token_signing_alg_values_supported, ["RS256"]);
        assert!(ProviderMetadata::from_document(&url, b"[]").is_err());
        assert!(ProviderMetadata::from_document(&url, br#"{"issuer":"x"}"#).is_err());
    }
}
