//! What one logout token, one issuer or one key may not do to another: a logout
//! token's replay record is no access-token revocation (nor the reverse), and a
//! receiver never lets one issuer's key sign logout tokens for another.

mod common;

use http::header::CONTENT_TYPE;
use http::{Request, Response, StatusCode};
use serde_json::{Value, json};
use tower::Layer;
use tower_jwt_revoke::endpoints::{BACKCHANNEL_LOGOUT_EVENT, BackChannelLogout, BuildError};
use tower_jwt_revoke::jsonwebtoken::{Algorithm, EncodingKey, Header};
use tower_jwt_revoke::store::InMemoryStore;
use tower_jwt_revoke::{JwtVerifier, KeyRing, KeySet, RevocationLayer, Revoker, VerificationKey};

use common::{bearer, echo, mint_with, now, send};

const ISSUER_A: &str = "https://a.idp.example";
const ISSUER_B: &str = "https://b.idp.example";
const SECRET_A: &[u8] = b"issuer A's secret, 32 bytes long!";
const SECRET_B: &[u8] = b"issuer B's secret, 32 bytes long!";
const CLIENT_ID: &str = "web-client";
const API: &str = "orders-api";

fn key(secret: &[u8]) -> VerificationKey {
    VerificationKey::hmac(Algorithm::HS256, secret).unwrap()
}

fn ring(secret: &[u8]) -> KeyRing {
    KeyRing::new(KeySet::new([key(secret)]).unwrap())
}

fn sign(secret: &[u8], claims: &Value) -> String {
    mint_with(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
}

fn logout_token(secret: &[u8], issuer: &str, jti: &str, sid: &str) -> String {
    let now = now();
    let claims = json!({
        "iss": issuer, "aud": CLIENT_ID, "iat": now, "exp": now + 120, "jti": jti,
        "sub": "alice", "sid": sid, "events": { BACKCHANNEL_LOGOUT_EVENT: {} },
    });
    sign(secret, &claims)
}

fn access_token(jti: &str, sid: &str) -> String {
    let now = now();
    let claims = json!({
        "iss": ISSUER_A, "aud": API, "iat": now, "exp": now + 300, "jti": jti,
        "sub": "alice", "sid": sid,
    });
    sign(SECRET_A, &claims)
}

fn delivery(logout_token: &str) -> Request<String> {
    Request::post("/backchannel-logout")
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("logout_token={logout_token}"))
        .unwrap()
}

/// The API of issuer A and its receiver, sharing one store.
struct Replica {
    layer: RevocationLayer,
    receiver: BackChannelLogout,
}

impl Replica {
    fn new() -> Self {
        let access = JwtVerifier::builder()
            .key(key(SECRET_A))
            .issuer(ISSUER_A)
            .audience(API)
            .build()
            .unwrap();
        let logout = JwtVerifier::builder()
            .key(key(SECRET_A))
            .issuer(ISSUER_A)
            .audience(CLIENT_ID)
            .build()
            .unwrap();
        let layer = RevocationLayer::new(access, InMemoryStore::new());
        let receiver = BackChannelLogout::builder(logout, layer.revoker())
            .build()
            .unwrap();
        Self { layer, receiver }
    }

    async fn status(&self, access_token: &str) -> StatusCode {
        send(self.layer.layer(echo()), bearer(access_token))
            .await
            .status()
    }

    async fn deliver(&self, logout_token: &str) -> Response<String> {
        send(self.receiver.clone(), delivery(logout_token)).await
    }
}

#[tokio::test]
async fn remembering_a_logout_token_revokes_no_access_token_with_its_jti() {
    let replica = Replica::new();
    // Both tokens carry jti "42" from issuer A; the access token is of another session.
    let access = access_token("42", "session-phone");
    let response = replica
        .deliver(&logout_token(SECRET_A, ISSUER_A, "42", "session-laptop"))
        .await;
    assert_eq!(response.status(), StatusCode::OK, "{}", response.body());
    assert_eq!(
        replica.status(&access).await,
        StatusCode::OK,
        "the logout token's replay record revoked an access token"
    );
}

#[tokio::test]
async fn a_revoked_access_token_makes_no_logout_token_look_replayed() {
    let replica = Replica::new();
    let access = access_token("7", "session-phone");
    replica.layer.revoker().revoke_token(&access).await.unwrap();
    assert_eq!(replica.status(&access).await, StatusCode::UNAUTHORIZED);

    // The provider's genuine logout token with the same iss and jti is acted on.
    let logout = logout_token(SECRET_A, ISSUER_A, "7", "session-laptop");
    let response = replica.deliver(&logout).await;
    assert_eq!(response.status(), StatusCode::OK, "{}", response.body());
    assert_eq!(
        replica.status(&access_token("8", "session-laptop")).await,
        StatusCode::UNAUTHORIZED,
        "the session was logged out"
    );
    // Its own replay is still refused.
    assert_eq!(replica.deliver(&logout).await.status(), StatusCode::BAD_REQUEST);
}

fn receiver(verifier: JwtVerifier) -> Result<BackChannelLogout, BuildError> {
    let access = JwtVerifier::builder()
        .key(key(SECRET_A))
        .issuer(ISSUER_A)
        .audience(API)
        .build()
        .unwrap();
    BackChannelLogout::builder(verifier, Revoker::new(access, InMemoryStore::new())).build()
}

#[test]
fn issuers_sharing_one_key_ring_are_refused_at_build_time() {
    let shared =
        KeyRing::new(KeySet::new([key(SECRET_A).with_kid("a"), key(SECRET_B).with_kid("b")]).unwrap());
    let one_ring = JwtVerifier::builder()
        .key_ring(shared.clone())
        .issuer(ISSUER_A)
        .issuer(ISSUER_B)
        .audience(CLIENT_ID)
        .build()
        .unwrap();
    let error = receiver(one_ring).unwrap_err();
    assert_eq!(
        error,
        BuildError::SharedIssuerKeys {
            first: ISSUER_A.into(),
            second: ISSUER_B.into()
        }
    );
    assert!(error.to_string().contains("issuer_keys"), "{error}");

    // The same ring given to both issuers as "their own" is one ring all the same.
    let same_ring_twice = JwtVerifier::builder()
        .issuer_keys(ISSUER_A, shared.clone())
        .issuer_keys(ISSUER_B, shared.clone())
        .audience(CLIENT_ID)
        .build()
        .unwrap();
    assert!(matches!(
        receiver(same_ring_twice),
        Err(BuildError::SharedIssuerKeys { .. })
    ));
    // And so is one issuer's own ring that is also the verifier's, serving another.
    let own_is_default = JwtVerifier::builder()
        .key_ring(shared.clone())
        .issuer_keys(ISSUER_A, shared)
        .issuer(ISSUER_B)
        .audience(CLIENT_ID)
        .build()
        .unwrap();
    assert!(matches!(
        receiver(own_is_default),
        Err(BuildError::SharedIssuerKeys { .. })
    ));
}

#[tokio::test]
async fn with_a_ring_each_an_issuers_key_signs_for_that_issuer_only() {
    let separate = JwtVerifier::builder()
        .issuer_keys(ISSUER_A, ring(SECRET_A))
        .issuer_keys(ISSUER_B, ring(SECRET_B))
        .audience(CLIENT_ID)
        .build()
        .unwrap();
    let receiver = receiver(separate).unwrap();
    let deliver = |token: String| send(receiver.clone(), delivery(&token));

    // A's key signing a logout token that names B: refused.
    let forged = deliver(logout_token(SECRET_A, ISSUER_B, "f1", "b-session")).await;
    assert_eq!(forged.status(), StatusCode::BAD_REQUEST, "{}", forged.body());
    assert!(
        forged.body().contains("invalid logout token"),
        "{}",
        forged.body()
    );
    // Each issuer's own logout tokens: acted on.
    for (secret, issuer) in [(SECRET_A, ISSUER_A), (SECRET_B, ISSUER_B)] {
        let response = deliver(logout_token(secret, issuer, "g1", "s")).await;
        assert_eq!(response.status(), StatusCode::OK, "{issuer}: {}", response.body());
    }
}
