//! Reading a form POST: method, content type, a bounded body, unique parameters.

use std::collections::HashMap;

use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::request::Parts;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::response;
use super::{Limits, MAX_FORM_PARAMS};
use crate::store::BoxError;

/// The parameters of an `application/x-www-form-urlencoded` body, each present at most
/// once.
#[derive(Debug, Default)]
pub(crate) struct Form {
    // std's hasher is keyed per process, so no sender can pick names that collide.
    params: HashMap<String, String>,
}

impl Form {
    /// The value of parameter `name`; an empty value counts as absent (RFC 6749 §3.1:
    /// "parameters sent without a value MUST be treated as if they were omitted").
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.params
            .get(name)
            .map(String::as_str)
            .filter(|value| !value.is_empty())
    }

    /// Every parameter, in no particular order (the fuzz targets check them).
    #[cfg(fuzzing)]
    pub(crate) fn into_params(self) -> Vec<(String, String)> {
        self.params.into_iter().collect()
    }

    /// Parses `body` in time linear in its length: each name is looked up once in a
    /// hash map, and parsing stops at the first parameter over [`MAX_FORM_PARAMS`].
    /// This runs before any authentication, on whatever anyone sends.
    pub(crate) fn parse(body: &[u8]) -> Result<Self, Refused> {
        let mut params = HashMap::new();
        for (key, value) in form_urlencoded::parse(body) {
            if params.len() == MAX_FORM_PARAMS {
                return Err(Refused::TooManyParams);
            }
            // RFC 6749 §3.1 and §3.2: parameters MUST NOT be included more than once. A
            // repeated one is ambiguous (which token did the sender mean?), so refused.
            if params.contains_key(key.as_ref()) {
                return Err(Refused::Repeated(printable(&key)));
            }
            params.insert(key.into_owned(), value.into_owned());
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
    /// More than [`MAX_FORM_PARAMS`] parameters.
    TooManyParams,
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
            Self::TooManyParams => {
                response::invalid_request(&format!("the form has more than {MAX_FORM_PARAMS} parameters"))
            }
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

    /// `n` distinct one-to-four-letter names, `a=&b=&…`, as an attacker would pack them
    /// into a body.
    fn distinct_names(n: usize) -> String {
        let letters = b"abcdefghijklmnopqrstuvwxyz";
        let mut body = String::new();
        for i in 0..n {
            let mut rest = i;
            loop {
                body.push(char::from(letters[rest % 26]));
                rest /= 26;
                if rest == 0 {
                    break;
                }
            }
            body.push_str("=&");
        }
        body
    }

    #[test]
    fn the_most_parameters_a_form_may_have_are_accepted() {
        let form = Form::parse(distinct_names(MAX_FORM_PARAMS).as_bytes()).unwrap();
        assert_eq!(form.params.len(), MAX_FORM_PARAMS);
    }

    #[test]
    fn more_parameters_are_refused_with_400_before_any_are_compared() {
        for n in [MAX_FORM_PARAMS + 1, 16_000] {
            let body = distinct_names(n);
            let refused = Form::parse(body.as_bytes()).unwrap_err().into_response();
            assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{n}");
            assert!(
                refused
                    .body()
                    .contains(&format!("more than {MAX_FORM_PARAMS} parameters")),
                "{}",
                refused.body()
            );
        }
    }

    #[test]
    fn empty_segments_are_not_parameters() {
        // `&&&…` parses to nothing (and in linear time): not counted against the cap.
        let body = "&".repeat(64 * 1024) + "token=x";
        assert_eq!(Form::parse(body.as_bytes()).unwrap().get("token"), Some("x"));
    }

    mod properties {
        use std::collections::BTreeMap;

        use proptest::prelude::*;

        use super::*;

        /// Names and values as senders write them: any characters, urlencoded.
        fn encode(pairs: &[(String, String)]) -> String {
            let mut body = form_urlencoded::Serializer::new(String::new());
            for (name, value) in pairs {
                body.append_pair(name, value);
            }
            body.finish()
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(
                std::env::var("FORM_PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(512)
            ))]

            /// Whatever the bytes, parsing answers (a form or a refusal) and never panics;
            /// a refusal is always a 400.
            #[test]
            fn any_bytes_parse_or_are_refused_with_400(body in proptest::collection::vec(any::<u8>(), 0..4096)) {
                match Form::parse(&body) {
                    Ok(form) => prop_assert!(form.params.len() <= MAX_FORM_PARAMS),
                    Err(refused) => prop_assert_eq!(refused.into_response().status(), StatusCode::BAD_REQUEST),
                }
            }

            /// Distinct names round-trip, each value under its name, up to the cap; one
            /// more parameter is refused, and so is any repeated name.
            #[test]
            fn parsing_agrees_with_a_model(
                params in proptest::collection::btree_map(".{1,12}", ".{0,12}", 0..80),
                repeat in any::<prop::sample::Index>(),
            ) {
                let pairs: Vec<(String, String)> = params.clone().into_iter().collect();
                let parsed = Form::parse(encode(&pairs).as_bytes());
                if pairs.len() > MAX_FORM_PARAMS {
                    prop_assert!(matches!(parsed, Err(Refused::TooManyParams)));
                } else {
                    let form = parsed.unwrap();
                    let model: BTreeMap<&str, &str> = params
                        .iter()
                        .map(|(name, value)| (name.as_str(), value.as_str()))
                        .collect();
                    for (name, value) in &model {
                        prop_assert_eq!(form.get(name), Some(*value).filter(|v| !v.is_empty()));
                    }
                    prop_assert_eq!(form.params.len(), model.len());
                }
                if !pairs.is_empty() && pairs.len() < MAX_FORM_PARAMS {
                    let mut repeated = pairs.clone();
                    repeated.push(repeat.get(&pairs).clone());
                    prop_assert!(matches!(
                        Form::parse(encode(&repeated).as_bytes()),
                        Err(Refused::Repeated(_))
                    ));
                }
            }
        }
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
