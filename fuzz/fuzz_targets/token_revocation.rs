//! The RFC 7009 endpoint, sent anything: every answer is a 200 or a 4xx with a JSON
//! error, never a 5xx or a panic. `@TOKEN@` in the input becomes a genuine access
//! token (the client's, another client's, or one naming no client).

#![no_main]

mod support;

use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

fuzz_target!(|data: &[u8]| {
    let (_, revocation) = support::endpoints();
    let request = support::request(data, support::access_token);
    let response = support::runtime().block_on(revocation.oneshot(request)).unwrap();
    support::check(&response);
});
