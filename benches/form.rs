//! What a hostile form costs the endpoints before any authentication: a 64 KiB body of
//! 16,000 distinct three-letter names (`aaa&baa&…`), the worst case for a parser that
//! compares each name with every earlier one, sent to the back-channel logout receiver
//! and to the RFC 7009 endpoint; next to a genuine-looking request for scale.
//!
//! ```text
//! cargo bench --bench form
//! ```
//!
//! Each request goes through the whole service (method, content type, the body read
//! from memory, the parse, the answer), on a current-thread runtime.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, StatusCode};
use tower::ServiceExt;
use tower_jwt_revoke::endpoints::{BackChannelLogout, TokenRevocation, basic_auth};
use tower_jwt_revoke::jsonwebtoken::Algorithm;
use tower_jwt_revoke::store::InMemoryStore;
use tower_jwt_revoke::{JwtVerifier, Revoker, VerificationKey};

const SECRET: &[u8] = b"a bench secret, 32 bytes or more";

/// `count` distinct three-letter names, each followed by `&`: four bytes a parameter.
fn distinct_names(count: usize) -> String {
    let mut body = String::with_capacity(count * 4);
    for n in 0..count {
        for place in [1, 26, 26 * 26] {
            body.push(char::from(b'a' + u8::try_from(n / place % 26).unwrap()));
        }
        body.push('&');
    }
    body
}

fn verifier(audience: &str) -> JwtVerifier {
    JwtVerifier::builder()
        .key(VerificationKey::hmac(Algorithm::HS256, SECRET).unwrap())
        .issuer("https://idp.example")
        .audience(audience)
        .build()
        .unwrap()
}

fn request(body: &str) -> Request<String> {
    Request::post("/endpoint")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_owned())
        .unwrap()
}

fn hostile_forms(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let revoker = Revoker::new(verifier("api"), InMemoryStore::new());
    let receiver = BackChannelLogout::builder(verifier("client"), revoker.clone())
        .build()
        .unwrap();
    let revocation = TokenRevocation::builder(revoker, basic_auth("web", "web secret"))
        .build()
        .unwrap();

    let hostile = distinct_names(16_000);
    assert!(hostile.len() <= tower_jwt_revoke::endpoints::DEFAULT_MAX_BODY_LEN);
    let genuine = format!("logout_token={}", "x".repeat(900));

    let mut group = c.benchmark_group("form");
    for (name, body, status) in [
        ("16000 distinct names (64 KiB)", &hostile, StatusCode::BAD_REQUEST),
        ("one 900-byte parameter", &genuine, StatusCode::BAD_REQUEST),
    ] {
        let answer = runtime.block_on(receiver.clone().oneshot(request(body))).unwrap();
        assert_eq!(answer.status(), status, "{}", answer.body());
        group.bench_function(format!("back-channel logout, {name}"), |b| {
            b.to_async(&runtime).iter_batched(
                || request(body),
                |request| async { black_box(receiver.clone().oneshot(request).await) },
                criterion::BatchSize::SmallInput,
            );
        });
        group.bench_function(format!("RFC 7009, {name}"), |b| {
            b.to_async(&runtime).iter_batched(
                || request(body),
                |request| async { black_box(revocation.clone().oneshot(request).await) },
                criterion::BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, hostile_forms);
criterion_main!(benches);
