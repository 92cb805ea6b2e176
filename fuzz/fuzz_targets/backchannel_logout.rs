//! The back-channel logout receiver, sent anything: every answer is a 200 or a 4xx
//! with a JSON error, never a 5xx or a panic. `@TOKEN@` in the input becomes a genuine
//! logout token, so the paths behind a valid signature are reached too.

#![no_main]

mod support;

use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

fuzz_target!(|data: &[u8]| {
    let (receiver, _) = support::endpoints();
    let request = support::request(data, support::logout_token);
    let response = support::runtime().block_on(receiver.oneshot(request)).unwrap();
    support::check(&response);
});
