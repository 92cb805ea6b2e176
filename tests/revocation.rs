//! Revocation through the layer and the revoker, with the in-memory store: how long a
//! revocation lasts, what it covers (token, session, subject, everything), and the
//! axum extractor.

mod common;

use std::time::Duration;

use http::StatusCode;
use serde_json::json;
use tower::Layer;
use tower_jwt_revoke::jsonwebtoken::{Algorithm, EncodingKey, Header};
use tower_jwt_revoke::store::{InMemoryStore, RevokedBy};
use tower_jwt_revoke::{
    JwtVerifier, Rejection, Revocation, RevocationKey, RevocationLayer, RevokeError, VerificationKey,
    VerifyError,
};

use common::{
    ISSUER, REVOKED_CHALLENGE, b64url, b64url_decode, bearer, claims, claims_with, echo, mint, mint_with,
    now, now_f64, send,
};

const LEEWAY: u64 = 30;

/// A layer on an in-memory store, with the store at hand for inspection.
struct Memory {
    layer: RevocationLayer,
    store: InMemoryStore,
}

impl std::ops::Deref for Memory {
    type Target = RevocationLayer;

    fn deref(&self) -> &RevocationLayer {
        &self.layer
    }
}

impl Memory {
    fn store(&self) -> &InMemoryStore {
        &self.store
    }
}

fn layer(verifier: JwtVerifier) -> Memory {
    let store = InMemoryStore::new();
    Memory {
        layer: RevocationLayer::new(verifier, store.clone()),
        store,
    }
}

/// Sends `token` through `layer` (in front of [`echo`]) and checks the outcome: the
/// inner service reached with the token's subject, or a 401 for this revocation.
async fn expect_accepted(layer: &RevocationLayer, token: &str, subject: &str) {
    let response = send(layer.layer(echo()), bearer(token)).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "refused: {:?}",
        common::rejection(&response)
    );
    assert_eq!(response.body(), subject);
}

async fn expect_revoked(layer: &RevocationLayer, token: &str, by: RevokedBy) {
    let response = send(layer.layer(echo()), bearer(token)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(common::challenge(&response), Some(REVOKED_CHALLENGE));
    assert_eq!(common::rejection(&response), Some(&Rejection::Revoked(by)));
}

fn recorded_ttl(revocation: Revocation) -> Duration {
    match revocation {
        Revocation::Recorded { ttl } => ttl,
        other => panic!("expected a recorded revocation, got {other:?}"),
    }
}

// A token that is past `exp` but still inside the leeway is still accepted, so its
// revocation must last until the leeway runs out.
#[tokio::test]
async fn revocation_covers_the_leeway_window_of_an_expired_but_accepted_token() {
    let verifier = common::verifier(LEEWAY);
    let layer = layer(verifier.clone());
    let now = now();
    let exp = now - 10;
    let raw = mint(&claims_with("alice", json!({"iat": now - 100, "exp": exp})));

    // Only the leeway keeps it alive.
    assert_eq!(
        common::verifier(0).verify(&raw).unwrap_err(),
        VerifyError::Expired
    );
    expect_accepted(&layer, &raw, "alice").await;

    let before = now_f64();
    let ttl = recorded_ttl(layer.revoker().revoke_token(&raw).await.unwrap());
    let after = now_f64();
    expect_revoked(&layer, &raw, RevokedBy::Token).await;

    // The verifier accepts the token while floor(now) <= exp + leeway, so the
    // revocation must last until exp + leeway + 1, rounded up to whole seconds.
    let deadline = (exp + LEEWAY + 1) as f64;
    assert_eq!(ttl.subsec_nanos(), 0, "TTLs are whole seconds");
    assert!(
        (deadline - after).ceil() <= ttl.as_secs_f64() && ttl.as_secs_f64() <= (deadline - before).ceil(),
        "recorded TTL {ttl:?}, expected ceil({deadline} - now)"
    );

    let verified = verifier.verify(&raw).unwrap();
    let key = verified.revocation_key();
    let jti = common::insecure_claim(&raw, "jti");
    assert_eq!(
        key,
        RevocationKey::token(Some(ISSUER), &jti),
        "tokens are keyed by (iss, jti)"
    );
    // Revoked for its subject: recorded under its key bound to the subject's.
    let record = key.for_subject(&verified.subject_key().unwrap());
    let stored = layer.store().token_ttl(&record).expect("the revocation is live");
    let remaining = deadline - now_f64();
    // Never shorter than the window (50 ms of slack for the store's monotonic clock
    // against the wall clock), and at most the roundings longer: the TTL to the
    // second, the in-memory store's expiry to the next sixteenth of a second.
    assert!(
        stored.as_secs_f64() >= remaining - 0.05,
        "stored TTL {stored:?} ends before the verifier stops accepting ({remaining:.3} s left)"
    );
    assert!(
        stored.as_secs_f64() <= remaining + 1.0 + 0.0625,
        "stored TTL {stored:?} is more than the roundings longer than needed ({remaining:.3} s)"
    );
    assert_eq!(layer.store().len(), 1);
}

// The revocation of a token in the last second the verifier accepts it
// is recorded, not skipped as already expired.
#[tokio::test]
async fn revocation_in_the_last_accepted_second_is_recorded() {
    let verifier = common::verifier(LEEWAY);
    let layer = layer(verifier.clone());
    let revoker = layer.revoker();
    for _attempt in 0..5 {
        let second = now();
        let raw = mint(&claims_with(
            "alice",
            json!({"iat": second - 60, "exp": second - LEEWAY}),
        ));
        let revocation = revoker.revoke_token(&raw).await.unwrap();
        let still_accepted = verifier.verify(&raw);
        if now() != second {
            continue; // the clock ticked mid-way: the premise no longer holds; retry
        }
        let accepted = still_accepted.expect("accepted in second exp + leeway");
        let key = accepted
            .revocation_key()
            .for_subject(&accepted.subject_key().unwrap());
        assert_eq!(
            revocation,
            Revocation::Recorded {
                ttl: Duration::from_secs(1)
            }
        );
        assert!(layer.store().token_ttl(&key).is_some());
        return;
    }
    panic!("the clock ticked during every attempt");
}

// `revoke(&verified)`, the logout handler's path, refuses that token and no other.
#[tokio::test]
async fn revoking_a_verified_token_refuses_it() {
    let verifier = common::verifier(LEEWAY);
    let layer = layer(verifier.clone());
    let raw = mint(&claims("alice"));
    let verified = verifier.verify(&raw).unwrap();
    expect_accepted(&layer, &raw, "alice").await;

    let before = now();
    let ttl = recorded_ttl(layer.revoker().revoke(&verified).await.unwrap());
    let exp = verified.expires_at();
    assert!((exp + LEEWAY + 1 - now()..=exp + LEEWAY + 1 - before).contains(&ttl.as_secs()));
    let record = verified
        .revocation_key()
        .for_subject(&verified.subject_key().unwrap());
    assert!(layer.store().token_ttl(&record).is_some());
    expect_revoked(&layer, &raw, RevokedBy::Token).await;

    // Another token of the same user is untouched.
    expect_accepted(&layer, &mint(&claims("alice")), "alice").await;
}

#[tokio::test]
async fn revoking_a_token_expired_beyond_leeway_is_a_no_op() {
    let layer = layer(common::verifier(LEEWAY));
    let now = now();
    let raw = mint(&claims_with(
        "alice",
        json!({"iat": now - 700, "exp": now - LEEWAY - 60}),
    ));
    assert_eq!(
        layer.revoker().revoke_token(&raw).await.unwrap(),
        Revocation::AlreadyExpired
    );
    assert!(layer.store().is_empty(), "nothing may be stored for a dead token");
}

#[tokio::test]
async fn revoking_a_forged_or_malformed_token_is_an_error() {
    let layer = layer(common::verifier(LEEWAY));
    let revoker = layer.revoker();
    let other_key = EncodingKey::from_secret(b"not-the-secret-not-the-secret-!!");
    let forged = mint_with(&Header::new(Algorithm::HS256), &claims("alice"), &other_key);
    let now = now();
    let forged_expired = mint_with(
        &Header::new(Algorithm::HS256),
        &claims_with("alice", json!({"iat": now - 700, "exp": now - 600})),
        &other_key,
    );

    for (name, token, expected) in [
        ("forged", forged.as_str(), VerifyError::BadSignature),
        // Not "already expired": expiry means nothing before the signature verified.
        (
            "forged and expired",
            forged_expired.as_str(),
            VerifyError::BadSignature,
        ),
        ("not a JWT", "abc", VerifyError::Malformed),
    ] {
        match revoker.revoke_token(token).await {
            Err(RevokeError::InvalidToken(error)) => assert_eq!(error, expected, "{name}"),
            other => panic!("{name}: expected InvalidToken, got {other:?}"),
        }
    }
    assert!(layer.store().is_empty());
}

#[tokio::test]
async fn revoking_a_session_refuses_every_token_of_it_and_no_other() {
    let verifier = common::verifier(LEEWAY);
    let layer = layer(verifier.clone());
    let revoker = layer.revoker();
    let first = mint(&claims_with("alice", json!({"sid": "session-1"})));
    let second = mint(&claims_with("alice", json!({"sid": "session-1"})));
    let other = mint(&claims_with("alice", json!({"sid": "session-2"})));
    let without_sid = mint(&claims("alice"));
    for token in [&first, &second, &other, &without_sid] {
        expect_accepted(&layer, token, "alice").await;
    }

    let verified = verifier.verify(&first).unwrap();
    recorded_ttl(revoker.revoke_session_of(&verified).await.unwrap());
    expect_revoked(&layer, &first, RevokedBy::Session).await;
    expect_revoked(&layer, &second, RevokedBy::Session).await;
    expect_accepted(&layer, &other, "alice").await;
    expect_accepted(&layer, &without_sid, "alice").await;

    // By id, under the verifier's sole issuer: the same key as the token's own.
    recorded_ttl(revoker.revoke_session("session-2").await.unwrap());
    expect_revoked(&layer, &other, RevokedBy::Session).await;
    expect_accepted(&layer, &without_sid, "alice").await;

    let no_sid = verifier.verify(&without_sid).unwrap();
    assert!(matches!(
        revoker.revoke_session_of(&no_sid).await,
        Err(RevokeError::MissingClaim("sid"))
    ));
}

#[tokio::test]
async fn revoke_all_refuses_every_token_issued_until_now() {
    // Tokens without `iat` are refused unless allowed; allowed here to show that a
    // watermark refuses them.
    let layer = layer(
        common::verifier_builder(LEEWAY)
            .allow_missing_iat()
            .build()
            .unwrap(),
    );
    let alice = mint(&claims("alice"));
    let bob = mint(&claims("bob"));
    let without_iat = mint(&claims_with("carol", json!({"iat": null})));
    for (token, subject) in [(&alice, "alice"), (&bob, "bob"), (&without_iat, "carol")] {
        expect_accepted(&layer, token, subject).await;
    }

    recorded_ttl(layer.revoker().revoke_all().await.unwrap());
    expect_revoked(&layer, &alice, RevokedBy::All).await;
    expect_revoked(&layer, &bob, RevokedBy::All).await;
    // A token without `iat` cannot show it was issued after the watermark.
    expect_revoked(&layer, &without_iat, RevokedBy::All).await;

    // The watermark is the current second; a token issued in a later second passes
    // (an `iat` one second ahead stands in for waiting, and is within the leeway).
    let later = mint(&claims_with("alice", json!({"iat": now() + 1})));
    expect_accepted(&layer, &later, "alice").await;
}

// Log out everywhere by subject name, under the sole issuer.
#[tokio::test]
async fn revoke_subject_refuses_that_subject_only() {
    let layer = layer(common::verifier(LEEWAY));
    let alice = mint(&claims("alice"));
    let bob = mint(&claims("bob"));
    recorded_ttl(layer.revoker().revoke_subject("alice").await.unwrap());
    expect_revoked(&layer, &alice, RevokedBy::Subject).await;
    expect_accepted(&layer, &bob, "bob").await;
    let later = mint(&claims_with("alice", json!({"iat": now() + 1})));
    expect_accepted(&layer, &later, "alice").await;
}

// An empty `jti` names no token: were it an id, revoking one token with `"jti": ""`
// would revoke every other token of the issuer that carries one.
#[tokio::test]
async fn an_empty_jti_counts_as_absent() {
    let verifier = common::verifier(LEEWAY);
    let layer = layer(verifier.clone());
    let first = mint(&claims_with("alice", json!({ "jti": "" })));
    let second = mint(&claims_with("bob", json!({ "jti": "" })));
    let verified = verifier.verify(&first).unwrap();
    assert_eq!(verified.token_id(), None);
    assert_ne!(
        verified.revocation_key(),
        verifier.verify(&second).unwrap().revocation_key()
    );

    layer.revoker().revoke_token(&first).await.unwrap();
    expect_revoked(&layer, &first, RevokedBy::Token).await;
    expect_accepted(&layer, &second, "bob").await;
}

#[tokio::test]
async fn a_token_without_jti_is_revoked_by_its_signing_input() {
    let verifier = common::verifier(LEEWAY);
    let layer = layer(verifier.clone());
    let raw = mint(&claims_with("alice", json!({"jti": null})));
    let sibling = mint(&claims_with("alice", json!({"jti": null, "exp": now() + 601})));
    let key = verifier.verify(&raw).unwrap().revocation_key();
    let signing_input = raw.rsplit_once('.').unwrap().0;
    assert_eq!(key, RevocationKey::token_without_id(signing_input));

    recorded_ttl(layer.revoker().revoke_token(&raw).await.unwrap());
    for _ in 0..3 {
        expect_revoked(&layer, &raw, RevokedBy::Token).await;
    }
    layer.store().purge_expired();
    expect_revoked(&layer, &raw, RevokedBy::Token).await;
    expect_accepted(&layer, &sibling, "alice").await;
}

/// `s` replaced by `n - s`: the other valid ECDSA signature of the same message.
fn malleate_es256(token: &str) -> String {
    // The order of the P-256 group.
    const N: [u8; 32] = [
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xbc,
        0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
    ];
    let (signing_input, signature) = token.rsplit_once('.').unwrap();
    let mut signature = b64url_decode(signature);
    assert_eq!(signature.len(), 64, "ES256 signatures are r || s");
    let s = &mut signature[32..];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let mut digit = i16::from(N[i]) - i16::from(s[i]) - borrow;
        borrow = i16::from(digit < 0);
        if digit < 0 {
            digit += 256;
        }
        s[i] = u8::try_from(digit).unwrap();
    }
    assert_eq!(borrow, 0, "s < n");
    format!("{signing_input}.{}", b64url(&signature))
}

// ECDSA signatures are malleable: revoking a jti-less token must also
// refuse its twin with the other valid signature.
#[tokio::test]
async fn a_token_without_jti_stays_revoked_under_another_valid_signature() {
    let verifier = JwtVerifier::builder()
        .key(VerificationKey::ec_pem(Algorithm::ES256, &common::read_key("ec_public.pem")).unwrap())
        .issuer(ISSUER)
        .audience(common::AUDIENCE)
        .leeway_secs(LEEWAY)
        .build()
        .unwrap();
    let layer = layer(verifier.clone());
    let key = EncodingKey::from_ec_pem(&common::read_key("ec_private.pem")).unwrap();
    let raw = mint_with(
        &Header::new(Algorithm::ES256),
        &claims_with("alice", json!({"jti": null})),
        &key,
    );
    let twin = malleate_es256(&raw);
    assert_ne!(raw, twin);
    expect_accepted(&layer, &twin, "alice").await;

    recorded_ttl(layer.revoker().revoke_token(&raw).await.unwrap());
    expect_revoked(&layer, &raw, RevokedBy::Token).await;
    expect_revoked(&layer, &twin, RevokedBy::Token).await;
}

#[tokio::test]
async fn tokens_promising_to_outlive_the_maximum_lifetime_are_refused() {
    let max = Duration::from_secs(3600);
    let verifier = common::verifier_builder(LEEWAY)
        .max_token_lifetime(max)
        .build()
        .unwrap();
    assert_eq!(verifier.max_token_lifetime_secs(), 3600);
    let layer = layer(verifier.clone());
    let now = now();

    let longest = mint(&claims_with("alice", json!({"iat": now, "exp": now + 3600})));
    assert!(verifier.verify(&longest).is_ok());
    expect_accepted(&layer, &longest, "alice").await;

    let one_second_too_long = mint(&claims_with("alice", json!({"iat": now, "exp": now + 3601})));
    let too_long = mint(&claims_with("alice", json!({"iat": now, "exp": now + 2 * 3600})));
    let backdated = mint(&claims_with(
        "alice",
        json!({"iat": now - 3000, "exp": now + 3600}),
    ));
    for (name, token) in [
        ("exp - iat = max + 1 s", &one_second_too_long),
        ("exp - iat = 2 h", &too_long),
        ("backdated iat, exp - iat = max + 3000 s", &backdated),
    ] {
        assert_eq!(
            verifier.verify(token).unwrap_err(),
            VerifyError::LifetimeTooLong,
            "{name}"
        );
        let response = send(layer.layer(echo()), bearer(token)).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{name}");
        assert_eq!(
            common::challenge(&response),
            Some(
                r#"Bearer error="invalid_token", error_description="token lifetime exceeds the accepted maximum""#
            ),
            "{name}"
        );
        assert_eq!(
            common::rejection(&response),
            Some(&Rejection::InvalidToken(VerifyError::LifetimeTooLong)),
            "{name}"
        );
        assert!(matches!(
            layer.revoker().revoke_token(token).await,
            Err(RevokeError::InvalidToken(VerifyError::LifetimeTooLong))
        ));
    }

    // Without `iat`: refused outright by default; when allowed, bounded from now.
    let no_iat = mint(&claims_with("alice", json!({"iat": null, "exp": now + 2 * 3600})));
    assert_eq!(
        verifier.verify(&no_iat).unwrap_err(),
        VerifyError::MissingClaim("iat")
    );
    let lenient = common::verifier_builder(LEEWAY)
        .max_token_lifetime(max)
        .allow_missing_iat()
        .build()
        .unwrap();
    assert_eq!(lenient.verify(&no_iat).unwrap_err(), VerifyError::LifetimeTooLong);
}

// The point of the lifetime bound: no token the verifier accepts can
// outlive the watermark or session marker that revoked it.
#[tokio::test]
async fn no_accepted_token_outlives_the_watermark_that_revoked_it() {
    let max = Duration::from_secs(3600);
    let verifier = common::verifier_builder(LEEWAY)
        .max_token_lifetime(max)
        .build()
        .unwrap();
    let layer = layer(verifier.clone());
    let revoker = layer.revoker();
    let now = now();

    // Find the longest-lived token issued now that the verifier still accepts.
    let nominal = now + max.as_secs();
    let mut longest = None;
    for candidate in nominal..=nominal + 2 * LEEWAY {
        let token = mint(&claims_with(
            "alice",
            json!({"iat": now, "exp": candidate, "sid": "s-1"}),
        ));
        if let Ok(verified) = verifier.verify(&token) {
            longest = Some(verified);
        }
    }
    let longest = longest.expect("a token of the maximum lifetime is accepted");
    let exp = longest.expires_at();
    // The verifier accepts it while floor(now) <= exp + leeway.
    let accepted_until = (exp + LEEWAY + 1) as f64;

    recorded_ttl(revoker.revoke_subject_of(&longest).await.unwrap());
    recorded_ttl(revoker.revoke_session_of(&longest).await.unwrap());
    let measured = now_f64();
    let (mark, watermark_left) = layer
        .store()
        .subject_watermark(&longest.subject_key().unwrap())
        .expect("watermark recorded");
    let session_left = layer
        .store()
        .session_ttl(&longest.session_key().unwrap())
        .expect("session revocation recorded");
    assert!(mark >= now);
    let mut short = Vec::new();
    for (what, left) in [
        ("subject watermark", watermark_left),
        ("session revocation", session_left),
    ] {
        let ends = measured + left.as_secs_f64();
        // 50 ms of slack for the store's monotonic clock against the wall clock.
        if ends + 0.05 < accepted_until {
            short.push(format!(
                "the {what} ends {:.1} s before the verifier stops accepting a token it covers",
                accepted_until - ends
            ));
        }
    }
    assert!(
        short.is_empty(),
        "{} (token: exp - iat = {} s; verifier: leeway {LEEWAY} s, max lifetime {} s)",
        short.join("; "),
        exp - now,
        max.as_secs()
    );
}

#[cfg(feature = "axum")]
mod extractor {
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use http::{Request, StatusCode};
    use tower_jwt_revoke::store::InMemoryStore;
    use tower_jwt_revoke::{RevocationLayer, VerifiedToken};

    use super::common::{self, bearer, claims, mint, send};

    async fn greet(token: Option<VerifiedToken>) -> String {
        match token {
            Some(token) => format!("welcome back {}", token.subject().unwrap_or("?")),
            None => "hello, stranger".to_owned(),
        }
    }

    async fn me(token: VerifiedToken) -> String {
        token.subject().unwrap_or("?").to_owned()
    }

    async fn body_text(response: http::Response<Body>) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    fn to_axum(request: Request<String>, uri: &str) -> Request<Body> {
        let (mut parts, body) = request.into_parts();
        parts.uri = uri.parse().unwrap();
        Request::from_parts(parts, Body::from(body))
    }

    fn app(layer: RevocationLayer) -> Router {
        Router::new()
            .route("/greet", get(greet))
            .route("/me", get(me))
            .route_layer(layer)
            .route("/uncovered", get(me))
    }

    #[tokio::test]
    async fn optional_extractor_with_anonymous_access() {
        let layer =
            RevocationLayer::new(common::verifier(super::LEEWAY), InMemoryStore::new()).with_anonymous(true);
        let revoker = layer.revoker();
        let app = app(layer);

        let anonymous = Request::get("/greet").body(Body::empty()).unwrap();
        let response = send(app.clone(), anonymous).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(body_text(response).await, "hello, stranger");

        let token = mint(&claims("alice"));
        let response = send(app.clone(), to_axum(bearer(&token), "/greet")).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(body_text(response).await, "welcome back alice");

        // Anonymous means "no token", not "any token": a bad one is still refused...
        let response = send(app.clone(), to_axum(bearer("abc"), "/greet")).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        // ...and so is a revoked one.
        revoker.revoke_token(&token).await.unwrap();
        let response = send(app.clone(), to_axum(bearer(&token), "/greet")).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(common::challenge(&response), Some(common::REVOKED_CHALLENGE));
    }

    #[tokio::test]
    async fn plain_extractor_on_an_uncovered_route_is_a_500_that_names_no_internals() {
        let layer = RevocationLayer::new(common::verifier(super::LEEWAY), InMemoryStore::new());
        let app = app(layer);
        let token = mint(&claims("alice"));

        let response = send(app.clone(), to_axum(bearer(&token), "/me")).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(body_text(response).await, "alice");

        let response = send(app.clone(), to_axum(bearer(&token), "/uncovered")).await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        // The wiring mistake is the server's: the log explains it, the client learns
        // nothing about the server's types.
        let body = body_text(response).await;
        assert_eq!(body, r#"{"error":"internal server error"}"#);
    }
}

#[tokio::test]
async fn a_bare_subject_or_session_needs_a_single_issuer() {
    let two_issuers = tower_jwt_revoke::JwtVerifier::builder()
        .key(
            tower_jwt_revoke::VerificationKey::hmac(tower_jwt_revoke::jsonwebtoken::Algorithm::HS256, b"k")
                .unwrap(),
        )
        .issuer("a")
        .issuer("b")
        .build()
        .unwrap();
    let store = InMemoryStore::new();
    let revoker = RevocationLayer::new(two_issuers, store.clone()).revoker();
    // Recording a revocation that no token could match would be a silent failure.
    assert!(matches!(
        revoker.revoke_subject("alice").await,
        Err(RevokeError::AmbiguousIssuer)
    ));
    assert!(matches!(
        revoker.revoke_session("s").await,
        Err(RevokeError::AmbiguousIssuer)
    ));
    assert!(store.is_empty());
    revoker.revoke_subject_for(Some("a"), "alice").await.unwrap();
    let key = tower_jwt_revoke::RevocationKey::subject(Some("a"), "alice");
    assert!(store.subject_watermark(&key).is_some());
}

#[tokio::test]
async fn a_token_not_valid_yet_can_be_revoked_before_it_ever_is() {
    let layer = RevocationLayer::new(common::verifier(LEEWAY), InMemoryStore::new());
    let starts = now() + LEEWAY + 60;
    let raw = mint(&claims_with(
        "alice",
        json!({ "nbf": starts, "exp": starts + 300 }),
    ));
    assert!(matches!(
        layer.verifier().verify(&raw),
        Err(VerifyError::NotYetValid)
    ));
    let revocation = layer.revoker().revoke_token(&raw).await.unwrap();
    // Kept until the token would stop being accepted, long after it starts.
    let Revocation::Recorded { ttl } = revocation else {
        panic!("{revocation:?}")
    };
    assert!(ttl.as_secs() >= starts + 300 + LEEWAY - now(), "{ttl:?}");
}
