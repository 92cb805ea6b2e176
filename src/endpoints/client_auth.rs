//! Client authentication for the RFC 7009 endpoint: the [`ClientAuth`] trait (any
//! closure), and HTTP Basic with fixed credentials ([`basic_auth`]).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::header::AUTHORIZATION;
use http::request::Parts;
use http::{HeaderMap, HeaderValue};
use percent_encoding::percent_decode_str;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::form::Form;

/// Decides which OAuth client a revocation request comes from (RFC 7009 §2.1: the
/// server "first validates the client credentials").
///
/// Implemented for every `Fn(&ClientRequest<'_>) -> Option<String>`: return the
/// authenticated client's id, or `None` to answer 401 `invalid_client`. The closure
/// sees the request's method, URI and headers and its form parameters, so it can
/// check HTTP Basic ([`ClientRequest::basic_credentials`]), `client_id` and
/// `client_secret` in the body, or a mutual-TLS identity that a proxy put in a header.
/// Compare secrets in constant time (`subtle`, or [`basic_auth`]).
///
/// ```
/// use tower_jwt_revoke::endpoints::{ClientAuth, ClientRequest};
///
/// // A public client (RFC 7009 §5 allows them): identified, not authenticated.
/// let public_client = |request: &ClientRequest<'_>| {
///     request.param("client_id").filter(|id| *id == "mobile-app").map(str::to_owned)
/// };
/// # fn accepts(_: impl ClientAuth) {}
/// # accepts(public_client);
/// ```
pub trait ClientAuth: Send + Sync + 'static {
    /// The id of the client `request` authenticates, or `None`.
    fn authenticate(&self, request: &ClientRequest<'_>) -> Option<String>;
}

impl<F> ClientAuth for F
where
    F: Fn(&ClientRequest<'_>) -> Option<String> + Send + Sync + 'static,
{
    fn authenticate(&self, request: &ClientRequest<'_>) -> Option<String> {
        self(request)
    }
}

/// What client authentication sees of a revocation request: its head and its form.
#[derive(Debug, Clone, Copy)]
pub struct ClientRequest<'a> {
    parts: &'a Parts,
    form: &'a Form,
}

impl<'a> ClientRequest<'a> {
    pub(super) fn new(parts: &'a Parts, form: &'a Form) -> Self {
        Self { parts, form }
    }

    /// The request's method, URI, headers and extensions.
    pub fn parts(&self) -> &'a Parts {
        self.parts
    }

    /// The request's headers.
    pub fn headers(&self) -> &'a HeaderMap {
        &self.parts.headers
    }

    /// A form parameter (`client_id`, `client_secret`, …); empty ones are absent, and
    /// none is ever repeated (such requests are refused before authentication).
    pub fn param(&self, name: &str) -> Option<&'a str> {
        self.form.get(name)
    }

    /// The credentials of the `Authorization: Basic` header, when there is exactly one
    /// such header and it decodes (RFC 7617).
    pub fn basic_credentials(&self) -> Option<BasicCredentials> {
        let mut values = self.headers().get_all(AUTHORIZATION).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return None;
        };
        BasicCredentials::parse(value)
    }
}

/// The client id and secret of an `Authorization: Basic` header.
///
/// RFC 6749 §2.3.1 has clients form-urlencode both before encoding them, and many
/// clients skip that; [`client_id`](Self::client_id) and [`secret`](Self::secret) are
/// the values as sent, [`decoded`](Self::decoded) the form-urldecoded ones.
#[derive(Clone, PartialEq, Eq)]
pub struct BasicCredentials {
    client_id: String,
    secret: String,
}

impl fmt::Debug for BasicCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicCredentials")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl BasicCredentials {
    fn parse(value: &HeaderValue) -> Option<Self> {
        let value = value.to_str().ok()?;
        let (scheme, encoded) = value.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
        let (client_id, secret) = decoded.split_once(':')?;
        Some(Self {
            client_id: client_id.to_owned(),
            secret: secret.to_owned(),
        })
    }

    /// The client id, as sent.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The secret, as sent.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// Both, form-urldecoded (`+` is a space, `%XX` a byte), when they decode to UTF-8.
    pub fn decoded(&self) -> Option<Self> {
        let decode = |text: &str| {
            percent_decode_str(&text.replace('+', " "))
                .decode_utf8()
                .ok()
                .map(|text| text.into_owned())
        };
        Some(Self {
            client_id: decode(&self.client_id)?,
            secret: decode(&self.secret)?,
        })
    }
}

/// HTTP Basic authentication of one client with a fixed secret; add more with
/// [`BasicAuth::client`].
///
/// The secret is compared in constant time, as sent and form-urldecoded (RFC 6749
/// §2.3.1 asks clients to encode it, and many do not). Only SHA-256 digests of the
/// secrets are kept.
///
/// ```
/// use tower_jwt_revoke::endpoints::basic_auth;
///
/// let clients = basic_auth("web", "web secret").client("cli", "cli secret");
/// # let _ = clients;
/// ```
pub fn basic_auth(client_id: impl Into<String>, secret: impl AsRef<[u8]>) -> BasicAuth {
    BasicAuth { clients: Vec::new() }.client(client_id, secret)
}

/// Clients authenticated by HTTP Basic with fixed secrets; see [`basic_auth`].
#[derive(Clone)]
pub struct BasicAuth {
    clients: Vec<(String, [u8; 32])>,
}

impl fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.clients.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("BasicAuth")
            .field("clients", &ids)
            .finish_non_exhaustive()
    }
}

impl BasicAuth {
    /// Also accepts `client_id` with `secret`.
    #[must_use]
    pub fn client(mut self, client_id: impl Into<String>, secret: impl AsRef<[u8]>) -> Self {
        self.clients
            .push((client_id.into(), Sha256::digest(secret.as_ref()).into()));
        self
    }

    fn matches(&self, credentials: &BasicCredentials) -> Option<String> {
        // Digests have one length whatever the secret's, so comparing them reveals
        // neither a prefix nor the length of a configured secret.
        let presented: [u8; 32] = Sha256::digest(credentials.secret.as_bytes()).into();
        let mut found = None;
        for (client_id, digest) in &self.clients {
            let id_matches = client_id.as_bytes().ct_eq(credentials.client_id.as_bytes());
            if bool::from(id_matches & digest.ct_eq(&presented)) {
                found = Some(client_id.clone());
            }
        }
        found
    }
}

impl ClientAuth for BasicAuth {
    fn authenticate(&self, request: &ClientRequest<'_>) -> Option<String> {
        let credentials = request.basic_credentials()?;
        self.matches(&credentials)
            .or_else(|| self.matches(&credentials.decoded()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request_with(authorization: &[&str]) -> (Parts, Form) {
        let mut builder = http::Request::post("/revoke");
        for value in authorization {
            builder = builder.header(AUTHORIZATION, *value);
        }
        (builder.body(()).unwrap().into_parts().0, Form::default())
    }

    fn basic(id: &str, secret: &str) -> String {
        format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
    }

    #[test]
    fn the_right_secret_authenticates_its_client_only() {
        let clients = basic_auth("web", "s3cret").client("cli", "other");
        let check = |value: &str| {
            let (parts, form) = request_with(&[value]);
            clients.authenticate(&ClientRequest::new(&parts, &form))
        };
        assert_eq!(check(&basic("web", "s3cret")).as_deref(), Some("web"));
        assert_eq!(check(&basic("cli", "other")).as_deref(), Some("cli"));
        assert_eq!(check(&basic("web", "other")), None, "another client's secret");
        assert_eq!(check(&basic("web", "s3cre")), None);
        assert_eq!(check(&basic("nobody", "s3cret")), None);
        assert_eq!(check("Bearer abc"), None);
        assert_eq!(check("Basic !!!"), None);
    }

    #[test]
    fn urlencoded_credentials_are_accepted_as_rfc_6749_asks() {
        let clients = basic_auth("my client", "a+b:c%");
        let check = |value: &str| {
            let (parts, form) = request_with(&[value]);
            clients.authenticate(&ClientRequest::new(&parts, &form))
        };
        assert_eq!(
            check(&basic("my+client", "a%2Bb%3Ac%25")).as_deref(),
            Some("my client")
        );
        assert_eq!(
            check(&basic("my client", "a+b:c%")).as_deref(),
            Some("my client"),
            "unencoded, as sent"
        );
    }

    #[test]
    fn two_authorization_headers_authenticate_nobody() {
        let clients = basic_auth("web", "s3cret");
        let (parts, form) = request_with(&[&basic("web", "s3cret"), &basic("web", "s3cret")]);
        assert_eq!(clients.authenticate(&ClientRequest::new(&parts, &form)), None);
    }

    #[test]
    fn debug_output_names_clients_but_no_secret() {
        let shown = format!("{:?}", basic_auth("web", "s3cret"));
        assert!(shown.contains("web") && !shown.contains("s3cret"), "{shown}");
    }
}
