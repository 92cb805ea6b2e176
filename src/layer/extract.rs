//! Where a request's token is read from.

use http::header::{AUTHORIZATION, COOKIE};
use http::{HeaderMap, HeaderName};

/// A place a token may be read from. Several may be configured on a
/// [`RevocationLayer`](crate::RevocationLayer); they are tried in order and the first
/// that holds a token wins.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenSource {
    /// `Authorization: Bearer <token>` (RFC 6750 §2.1; the scheme is matched
    /// case-insensitively). This also reads gRPC's `authorization` metadata. The
    /// default.
    AuthorizationBearer,
    /// A cookie with this name.
    Cookie(String),
    /// A header whose whole value is the token.
    Header(HeaderName),
}

impl TokenSource {
    /// A cookie source.
    pub fn cookie(name: impl Into<String>) -> Self {
        Self::Cookie(name.into())
    }

    /// A header source.
    pub fn header(name: HeaderName) -> Self {
        Self::Header(name)
    }
}

/// Why no token could be read: the request is malformed (RFC 6750's
/// `invalid_request`, a 400), as opposed to merely carrying no token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MalformedRequest {
    /// More than one `Authorization` header (or token header).
    #[error("more than one credentials header")]
    DuplicateHeader,
    /// A header or cookie that should hold a token is not visible ASCII.
    #[error("credentials are not visible ASCII")]
    NotAscii,
    /// `Authorization: Bearer` with nothing after it.
    #[error("empty bearer token")]
    EmptyToken,
    /// The token cookie appears more than once.
    #[error("more than one token cookie")]
    DuplicateCookie,
}

/// Reads the token from the first source that has one.
pub(crate) fn find_token<'a>(
    sources: &[TokenSource],
    headers: &'a HeaderMap,
) -> Result<Option<&'a str>, MalformedRequest> {
    for source in sources {
        let found = match source {
            TokenSource::AuthorizationBearer => bearer(headers)?,
            TokenSource::Cookie(name) => cookie(headers, name)?,
            TokenSource::Header(name) => single_header(headers, name)?.filter(|value| !value.is_empty()),
        };
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(None)
}

fn single_header<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Result<Option<&'a str>, MalformedRequest> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(MalformedRequest::DuplicateHeader);
    }
    value
        .to_str()
        .map(|v| Some(v.trim()))
        .map_err(|_| MalformedRequest::NotAscii)
}

fn bearer(headers: &HeaderMap) -> Result<Option<&str>, MalformedRequest> {
    let Some(value) = single_header(headers, &AUTHORIZATION)? else {
        return Ok(None);
    };
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        // Another scheme (Basic, say) carries no bearer token.
        return Ok(None);
    }
    match rest.trim() {
        "" => Err(MalformedRequest::EmptyToken),
        token => Ok(Some(token)),
    }
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, MalformedRequest> {
    let mut found: Option<&[u8]> = None;
    // HTTP/2 may split cookies over several headers (RFC 9113 §8.2.3). Other cookies
    // may hold any bytes; only the token cookie's value has to be ASCII.
    for header in headers.get_all(COOKIE) {
        for pair in header.as_bytes().split(|byte| *byte == b';') {
            let pair = pair.trim_ascii();
            let Some(equals) = pair.iter().position(|byte| *byte == b'=') else {
                continue;
            };
            if pair[..equals].trim_ascii() != name.as_bytes() {
                continue;
            }
            // Two cookies of one name may come from different paths or domains; picking
            // one would let a sibling site plant a token ("cookie tossing"). An empty
            // one counts too, or `token=; token=planted` would slip through.
            if found.is_some() {
                return Err(MalformedRequest::DuplicateCookie);
            }
            let value = pair[equals + 1..].trim_ascii();
            let unquoted = value.strip_prefix(b"\"").and_then(|v| v.strip_suffix(b"\""));
            found = Some(unquoted.unwrap_or(value));
        }
    }
    match found {
        None | Some(b"") => Ok(None),
        Some(value) => std::str::from_utf8(value)
            .ok()
            .filter(|value| value.is_ascii())
            .map(Some)
            .ok_or(MalformedRequest::NotAscii),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(HeaderName, &[u8])]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(name.clone(), HeaderValue::from_bytes(value).unwrap());
        }
        map
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        for value in [&b"Bearer abc"[..], b"bearer abc", b"BEARER  abc "] {
            let map = headers(&[(AUTHORIZATION, value)]);
            assert_eq!(
                find_token(&[TokenSource::AuthorizationBearer], &map),
                Ok(Some("abc"))
            );
        }
    }

    #[test]
    fn other_schemes_carry_no_token() {
        let map = headers(&[(AUTHORIZATION, b"Basic dXNlcjpwYXNz")]);
        assert_eq!(find_token(&[TokenSource::AuthorizationBearer], &map), Ok(None));
    }

    #[test]
    fn sources_are_tried_in_order() {
        let sources = [TokenSource::AuthorizationBearer, TokenSource::cookie("token")];
        let map = headers(&[(COOKIE, b"theme=dark; token=from-cookie")]);
        assert_eq!(find_token(&sources, &map), Ok(Some("from-cookie")));
        let map = headers(&[
            (AUTHORIZATION, b"Bearer from-header"),
            (COOKIE, b"token=from-cookie"),
        ]);
        assert_eq!(find_token(&sources, &map), Ok(Some("from-header")));
    }

    #[test]
    fn other_cookies_may_hold_any_bytes() {
        let map = headers(&[(COOKIE, "name=Zoë; token=abc.def.ghi".as_bytes())]);
        assert_eq!(
            find_token(&[TokenSource::cookie("token")], &map),
            Ok(Some("abc.def.ghi"))
        );
        let quoted = headers(&[(COOKIE, b"token=\"abc\"")]);
        assert_eq!(
            find_token(&[TokenSource::cookie("token")], &quoted),
            Ok(Some("abc"))
        );
    }

    #[test]
    fn custom_header_source_reads_the_whole_value() {
        let name = HeaderName::from_static("x-access-token");
        let map = headers(&[(name.clone(), b"abc.def.ghi")]);
        assert_eq!(
            find_token(&[TokenSource::header(name)], &map),
            Ok(Some("abc.def.ghi"))
        );
    }

    #[test]
    fn ambiguous_or_malformed_credentials_are_refused() {
        let bearer = [TokenSource::AuthorizationBearer];
        let twice = headers(&[(AUTHORIZATION, b"Bearer a"), (AUTHORIZATION, b"Bearer b")]);
        assert_eq!(
            find_token(&bearer, &twice),
            Err(MalformedRequest::DuplicateHeader)
        );
        let empty = headers(&[(AUTHORIZATION, b"Bearer ")]);
        assert_eq!(find_token(&bearer, &empty), Err(MalformedRequest::EmptyToken));
        let binary = headers(&[(AUTHORIZATION, b"Bearer \xff\xfe")]);
        assert_eq!(find_token(&bearer, &binary), Err(MalformedRequest::NotAscii));
        let cookies = headers(&[(COOKIE, b"token=a"), (COOKIE, b"token=b")]);
        assert_eq!(
            find_token(&[TokenSource::cookie("token")], &cookies),
            Err(MalformedRequest::DuplicateCookie)
        );
        let planted = headers(&[(COOKIE, b"token=; token=planted")]);
        assert_eq!(
            find_token(&[TokenSource::cookie("token")], &planted),
            Err(MalformedRequest::DuplicateCookie)
        );
        let binary = headers(&[(COOKIE, b"token=\xff\xfe")]);
        assert_eq!(
            find_token(&[TokenSource::cookie("token")], &binary),
            Err(MalformedRequest::NotAscii)
        );
    }
}
