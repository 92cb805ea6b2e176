//! Reading a form POST: method, content type, a bounded body, unique parameters.

use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::request::Parts;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::Limits;
use super::response;
use crate::store::BoxError;

/// The parameters of an `application/x-www-form-urlencoded` body, each present at most
/// once.
#[derive(Debug, Default)]
pub(crate) struct Form {
    params: Vec<(String, String)>,
}

impl Form {
    /// The value of parameter `name`; an empty value counts as absent (RFC 6749 §3.1:
    /// "parameters sent without a value MUST be treated as if they were omitted").
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .filter(|value| !value.is_empty())
    }

    fn parse(body: &[u8]) -> Result<Self, Refused> {
        let mut params: Vec<(String, String)> = Vec::new();
        for (key, value) in form_urlencoded::parse(body) {
            // RFC 6749 §3.1 and §3.2: parameters MUST NOT be included more than once. A
            // repeated one is ambiguous (which token did the sender mean?), so refused.
            if params.iter().any(|(seen, _)| *seen == key) {
                return Err(Refused::Repeated(printable(&key)));
            }
            params.push((key.into_owned(), value.into_owned()));
        }
        Ok(Self { params })
    }
}

/// Why a request was refused before its parameters were looked at.
#[derive(Debug)]
pub(crate) enum Refused {
    Method,
    ContentType,
    TooLarge(usize),
    Timeout,
    Unreadable,
    /// A parameter, named as [`printable`] quotes it.
    Repeated(String),
}

impl Refused {
    pub(crate) fn into_response(self) -> Response<String> {
        match self {
            Self::Method => response::method_not_allowed(),
            Self::ContentType => response::error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "invalid_request",
                "the body must be application/x-www-form-urlencoded",
            ),
            Self::TooLarge(limit) => response::error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request",
                &format!("the request body exceeds {limit} bytes"),
            ),
            Self::Timeout => response::error(
                StatusCode::REQUEST_TIMEOUT,
                "invalid_request",
                "the request body did not arrive in time",
            ),
            Self::Unreadable => response::invalid_request("the request body could not be read"),
            Self::Repeated(name) => response::invalid_request(&format!("parameter {name} is repeated")),
        }
    }
}

/// Checks the method and content type, reads the body within `limits`, and parses it.
pub(crate) async fn read<B>(request: Request<B>, limits: Limits) -> Result<(Parts, Form), Refused>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let (parts, body) = request.into_parts();
    if parts.method != Method::POST {
        return Err(Refused::Method);
    }
    if !is_form(&parts.headers) {
        return Err(Refused::ContentType);
    }
    if declared_length(&parts.headers).is_some_and(|len| len > limits.max_body_len as u64) {
        // Refused before reading a byte.
        return Err(Refused::TooLarge(limits.max_body_len));
    }
    let collected = tokio::time::timeout(
        limits.body_timeout,
        Limited::new(body, limits.max_body_len).collect(),
    )
    .await
    .map_err(|_| Refused::Timeout)?;
    let body = match collected {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
            return Err(Refused::TooLarge(limits.max_body_len));
        }
        Err(error) => {
            tracing::debug!(%error, "could not read a form body");
            return Err(Refused::Unreadable);
        }
    };
    Ok((parts, Form::parse(&body)?))
}

/// Whether the one `Content-Type` is `application/x-www-form-urlencoded`, whatever its
/// case and parameters (`; charset=UTF-8`, which some senders add).
fn is_form(headers: &HeaderMap) -> bool {
    let mut values = headers.get_all(CONTENT_TYPE).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return false;
    };
    value
        .to_str()
        .ok()
        .and_then(|value| value.split(';').next())
        .is_some_and(|essence| {
            essence
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// A parameter name fit to quote back: short and plain, else a placeholder (the name
/// comes from the sender, and goes into a response and maybe a log).
fn printable(name: &str) -> String {
    let plain = name.len() <= 40
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-');
    if plain {
        format!("`{name}`")
    } else {
        String::from("(a parameter)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_decoded_and_empty_ones_are_absent() {
        let form = Form::parse(b"token=a%2Bb+c&token_type_hint=&x=1").unwrap();
        assert_eq!(form.get("token"), Some("a+b c"));
        assert_eq!(form.get("token_type_hint"), None);
        assert_eq!(form.get("missing"), None);
    }

    #[test]
    fn repeated_parameters_are_refused_by_name() {
        let refused = Form::parse(b"token=a&token=b").unwrap_err().into_response();
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
        assert!(
            refused.body().contains("parameter `token` is repeated"),
            "{}",
            refused.body()
        );
        let odd = Form::parse(b"%22%3E=a&%22%3E=b").unwrap_err().into_response();
        assert!(odd.body().contains("(a parameter)"), "{}", odd.body());
    }

    #[test]
    fn content_type_parameters_and_case_are_accepted() {
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            "Application/X-WWW-Form-Urlencoded; charset=UTF-8"
                .parse()
                .unwrap(),
        );
        assert!(is_form(&headers));
        headers.append(CONTENT_TYPE, "application/x-www-form-urlencoded".parse().unwrap());
        assert!(!is_form(&headers), "two content types are ambiguous");
        headers.insert(CONTENT_TYPE, "application/json".parse().unwrap());
        assert!(!is_form(&headers));
    }
}
