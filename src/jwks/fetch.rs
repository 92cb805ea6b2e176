//! One HTTP GET of a provider's document: which URLs are allowed, the client, a
//! size-bounded body, and the `Cache-Control` lifetime of the answer.

use std::net::IpAddr;
use std::time::Duration;

use http::header::{ACCEPT, CACHE_CONTROL};
use reqwest::{Client, Url, redirect};

use super::error::JwksError;

/// The largest document accepted. Real JWK Sets and discovery documents are a few
/// KiB; the bound keeps a misbehaving endpoint from filling memory.
pub(super) const MAX_DOCUMENT_SIZE: usize = 1024 * 1024;

/// Redirects followed at most, each to an allowed URL.
const MAX_REDIRECTS: usize = 5;

/// A fetched document.
pub(super) struct Document {
    pub(super) body: Vec<u8>,
    /// `Cache-Control: max-age` of the answer (`no-cache`/`no-store` count as zero).
    pub(super) max_age: Option<Duration>,
}

/// Parses a configured `url` (an issuer, a JWKS URL) and checks that keys may be
/// fetched from it: over HTTPS, or plain HTTP to a loopback host only. Anything else
/// could hand an attacker on the path the power to sign tokens we accept.
pub(super) fn parse_url(url: &str) -> Result<Url, JwksError> {
    let parsed = Url::parse(url).map_err(|_| JwksError::InvalidUrl {
        url: redact_text(url),
        reason: "not a valid absolute URL",
    })?;
    check_url(&parsed, &parsed).map_err(|reason| JwksError::InvalidUrl {
        url: redact(&parsed),
        reason,
    })?;
    Ok(parsed)
}

/// Parses a `url` that a document fetched from `origin` names (a discovery
/// document's `jwks_uri`), and checks it as [`check_url`] does from `origin`.
pub(super) fn parse_url_from(url: &str, origin: &Url) -> Result<Url, JwksError> {
    let parsed = parse_url(url)?;
    check_url(&parsed, origin).map_err(|reason| JwksError::InvalidUrl {
        url: redact(&parsed),
        reason,
    })?;
    Ok(parsed)
}

/// Whether keys may be fetched from `url` when the configured URL (the issuer, or
/// the JWKS URL) is `origin`: over HTTPS, or plain HTTP to a loopback host when
/// `origin` is on loopback too. A provider configured over HTTPS, or a redirect from
/// it, must not point fetches at plain-HTTP services of this machine (whatever
/// answers there, an attacker's local process included, would choose our keys).
fn check_url(url: &Url, origin: &Url) -> Result<(), &'static str> {
    match url.scheme() {
        "https" if url.host_str().is_some() => Ok(()),
        "https" => Err("the URL has no host"),
        "http" if is_loopback(url) && is_loopback(origin) => Ok(()),
        "http" if is_loopback(url) => Err(
            "plain http:// to a loopback host is allowed only when the configured issuer or JWKS URL is on loopback too",
        ),
        "http" => Err("plain http:// is allowed for loopback hosts only; use https://"),
        _ => Err("the scheme must be https://"),
    }
}

/// Whether `url` names this machine: a loopback address, or `localhost`.
pub(super) fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `url` for messages and logs: a password in it becomes `***`.
pub(super) fn redact(url: &Url) -> String {
    if url.password().is_none() {
        return url.to_string();
    }
    let mut shown = url.clone();
    // Only fails for URLs that cannot have a password, and this one has one.
    let _ = shown.set_password(Some("***"));
    shown.to_string()
}

/// A URL as given (it may not parse), for messages: anything between `://` and an
/// `@` may be credentials, so it is hidden.
pub(super) fn redact_text(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://***{}", &url[..scheme_end], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// The client for one provider. Proxies from the environment (`HTTPS_PROXY`…) are
/// honoured, except for a loopback `target`: a local provider is never reached
/// through a proxy.
pub(super) fn client(target: &Url, timeout: Duration) -> Result<Client, JwksError> {
    let origin = target.clone();
    let policy = redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error("too many redirects")
        } else if let Err(reason) = check_url(attempt.url(), &origin) {
            attempt.error(format!("redirect refused: {reason}"))
        } else {
            attempt.follow()
        }
    });
    let mut builder = Client::builder()
        .timeout(timeout)
        .redirect(policy)
        .user_agent(concat!("tower-jwt-revoke/", env!("CARGO_PKG_VERSION")));
    if is_loopback(target) {
        builder = builder.no_proxy();
    }
    builder.build().map_err(JwksError::Client)
}

/// GETs `url`, accepting `accept`, and reads at most [`MAX_DOCUMENT_SIZE`] bytes.
pub(super) async fn get(
    client: &Client,
    url: &Url,
    accept: &'static str,
    timeout: Duration,
) -> Result<Document, JwksError> {
    let failed = |error: reqwest::Error| {
        if error.is_timeout() {
            JwksError::Timeout {
                url: redact(url),
                timeout,
            }
        } else {
            JwksError::Request {
                url: redact(url),
                source: error.without_url(),
            }
        }
    };
    let mut response = client
        .get(url.clone())
        .header(ACCEPT, accept)
        .send()
        .await
        .map_err(failed)?;
    let status = response.status();
    if !status.is_success() {
        return Err(JwksError::Status {
            url: redact(url),
            status,
        });
    }
    let too_large = || JwksError::TooLarge {
        url: redact(url),
        limit: MAX_DOCUMENT_SIZE,
    };
    if response
        .content_length()
        .is_some_and(|length| length > MAX_DOCUMENT_SIZE as u64)
    {
        return Err(too_large());
    }
    let max_age = max_age(response.headers().get_all(CACHE_CONTROL));
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(failed)? {
        if body.len() + chunk.len() > MAX_DOCUMENT_SIZE {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Document { body, max_age })
}

/// The lifetime `Cache-Control` gives a response (RFC 9111 §5.2.2): its `max-age`;
/// zero for `no-store` or `no-cache`, which allow no reuse without asking again.
/// `None` when the header says neither, or says it unreadably.
pub(super) fn max_age<'a>(values: impl IntoIterator<Item = &'a http::HeaderValue>) -> Option<Duration> {
    let mut max_age = None;
    for value in values {
        let Ok(value) = value.to_str() else { continue };
        for directive in value.split(',') {
            let (name, argument) = match directive.split_once('=') {
                Some((name, argument)) => (name.trim(), Some(argument.trim().trim_matches('"'))),
                None => (directive.trim(), None),
            };
            if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
                return Some(Duration::ZERO);
            }
            if name.eq_ignore_ascii_case("max-age")
                && let Some(seconds) = argument.and_then(|secs| secs.parse::<u64>().ok())
            {
                // Two max-age directives: the shorter is the safe reading.
                let age = Duration::from_secs(seconds);
                max_age = Some(max_age.map_or(age, |other: Duration| other.min(age)));
            }
        }
    }
    max_age
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn parse(values: &[&'static str]) -> Option<Duration> {
        let values: Vec<HeaderValue> = values.iter().map(|v| HeaderValue::from_static(v)).collect();
        max_age(&values)
    }

    #[test]
    fn cache_control() {
        assert_eq!(parse(&[]), None);
        assert_eq!(parse(&["public, max-age=300"]), Some(Duration::from_secs(300)));
        assert_eq!(
            parse(&["Max-Age=\"60\", must-revalidate"]),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse(&["max-age=60", "max-age=30"]),
            Some(Duration::from_secs(30))
        );
        assert_eq!(parse(&["no-cache"]), Some(Duration::ZERO));
        assert_eq!(parse(&["max-age=60, no-store"]), Some(Duration::ZERO));
        assert_eq!(parse(&["max-age=-1"]), None);
        assert_eq!(parse(&["max-age=99999999999999999999999"]), None);
        assert_eq!(parse(&["private"]), None);
    }

    #[test]
    fn urls() {
        assert!(parse_url("https://idp.example/jwks").is_ok());
        assert!(parse_url("http://127.0.0.1:8080/jwks").is_ok());
        assert!(parse_url("http://[::1]:8080/jwks").is_ok());
        assert!(parse_url("http://localhost/jwks").is_ok());
        assert!(parse_url("http://idp.example/jwks").is_err());
        assert!(parse_url("http://127.0.0.1.example/jwks").is_err());
        assert!(parse_url("ftp://idp.example/jwks").is_err());
        assert!(parse_url("/jwks").is_err());
        let error = parse_url("http://user:hunter2@idp.example/jwks")
            .unwrap_err()
            .to_string();
        assert!(!error.contains("hunter2"), "{error}");
        let error = parse_url("http://user:hunter2@[bad/jwks")
            .unwrap_err()
            .to_string();
        assert!(!error.contains("hunter2"), "{error}");
    }

    // A provider configured over HTTPS must not send key fetches to plain-HTTP
    // services of this machine, by its discovery document or by a redirect.
    #[test]
    fn loopback_http_only_from_a_loopback_origin() {
        let https = parse_url("https://idp.example/realms/x").unwrap();
        let local = parse_url("http://127.0.0.1:8080/").unwrap();
        for target in [
            "http://127.0.0.1:6379/jwks",
            "http://localhost/jwks",
            "http://[::1]:2375/jwks",
        ] {
            let error = parse_url_from(target, &https).expect_err(target).to_string();
            assert!(error.contains("configured issuer or JWKS URL"), "{error}");
            assert!(
                check_url(&Url::parse(target).unwrap(), &https).is_err(),
                "redirect to {target}"
            );
            assert!(parse_url_from(target, &local).is_ok(), "{target} from loopback");
            assert!(check_url(&Url::parse(target).unwrap(), &local).is_ok());
        }
        for target in ["https://idp.example/jwks", "https://127.0.0.1/jwks"] {
            assert!(parse_url_from(target, &https).is_ok(), "{target}");
            assert!(parse_url_from(target, &local).is_ok(), "{target}");
        }
        assert!(parse_url_from("http://idp.example/jwks", &local).is_err());
    }
}
