//! The form parser alone: any bytes parse or are refused, never panic, and a parse is
//! what a straightforward decoder makes of the same bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_jwt_revoke::endpoints::{MAX_FORM_PARAMS, fuzz_parse_form};

fuzz_target!(|data: &[u8]| {
    let decoded: Vec<(String, String)> = form_urlencoded_pairs(data);
    match fuzz_parse_form(data) {
        Ok(params) => {
            assert!(params.len() <= MAX_FORM_PARAMS);
            // Accepted only when every name is unique, each with its value.
            let mut expected = decoded;
            expected.sort();
            let mut params = params;
            params.sort();
            assert_eq!(params, expected);
        }
        Err(body) => {
            let unique = {
                let mut names: Vec<&String> = decoded.iter().map(|(name, _)| name).collect();
                names.sort();
                names.dedup();
                names.len()
            };
            assert!(
                decoded.len() > MAX_FORM_PARAMS || unique < decoded.len(),
                "refused a form of {} unique parameters: {body}",
                decoded.len()
            );
            assert!(body.contains("error_description"), "{body}");
        }
    }
});

/// The reference: `application/x-www-form-urlencoded` decoding as the WHATWG URL
/// standard specifies it (split on `&`, skip empty, split at the first `=`, `+` is a
/// space, percent-decode, UTF-8 lossy).
fn form_urlencoded_pairs(data: &[u8]) -> Vec<(String, String)> {
    fn decode(part: &[u8]) -> String {
        let mut out = Vec::with_capacity(part.len());
        let mut i = 0;
        while i < part.len() {
            match part[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < part.len() && hex(part[i + 1]).is_some() && hex(part[i + 2]).is_some() => {
                    out.push(hex(part[i + 1]).unwrap() * 16 + hex(part[i + 2]).unwrap());
                    i += 2;
                }
                byte => out.push(byte),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    fn hex(byte: u8) -> Option<u8> {
        char::from(byte).to_digit(16).map(|digit| digit as u8)
    }
    data.split(|byte| *byte == b'&')
        .filter(|segment| !segment.is_empty())
        .map(|segment| {
            let (name, value) = match segment.iter().position(|byte| *byte == b'=') {
                Some(at) => (&segment[..at], &segment[at + 1..]),
                None => (segment, &segment[segment.len()..]),
            };
            (decode(name), decode(value))
        })
        .collect()
}
