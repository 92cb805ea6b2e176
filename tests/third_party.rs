//! The crate as a third-party application uses it, through its public API alone: the
//! store comes from configuration and no handler names its type; the verifier is
//! swapped on a configured layer; refusals are answered by an axum closure returning
//! `(StatusCode, Json<_>)`; handlers read their own claims type; and a tonic service
//! reads the verified token with `RequestExt`.
//!
//! Each of these failed to compile, or misbehaved, before the API was reshaped (issue
//! #9): that is what these tests pin.

#![cfg(all(feature = "axum", feature = "redis", feature = "tonic"))]

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, StatusCode, header};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use tower::ServiceExt;
use tower_jwt_revoke::jsonwebtoken::{Algorithm, EncodingKey, Header};
use tower_jwt_revoke::store::{InMemoryStore, RedisStore, RevocationStore};
use tower_jwt_revoke::{
    Claims, FailurePolicy, JwtVerifier, RevocationLayer, RevokeError, Revoker, TokenSource, VerificationKey,
    VerifiedToken,
};

use common::{AUDIENCE, ISSUER, claims, claims_with, mint, mint_with};

/// What an app reads from its configuration: which store to use.
fn store_from_config(kind: &str) -> Arc<dyn RevocationStore> {
    match kind {
        // Built lazily: no connection is made until the first command.
        "redis" => Arc::new(RedisStore::from_url("redis://127.0.0.1:1").expect("a valid URL")),
        _ => Arc::new(InMemoryStore::new()),
    }
}

// Handlers name `Revoker` and `VerifiedToken`, never a store type.
async fn logout(State(revoker): State<Revoker>, token: VerifiedToken) -> Result<StatusCode, RevokeError> {
    revoker.revoke(&token).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn logout_everywhere(
    State(revoker): State<Revoker>,
    token: VerifiedToken,
) -> Result<StatusCode, RevokeError> {
    revoker.revoke_subject_of(&token).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct TenantClaims {
    sub: String,
    tenant: String,
}

async fn tenant(Claims(claims): Claims<TenantClaims>) -> String {
    format!("{}@{}", claims.sub, claims.tenant)
}

async fn me(token: VerifiedToken) -> String {
    token.subject().unwrap_or_default().to_owned()
}

/// The app: its layer is configured once, then may get a new verifier.
fn app(layer: RevocationLayer) -> Router {
    let layer = layer.with_rejection_response(|rejection| {
        (
            rejection.status(),
            Json(json!({ "error": rejection.to_string(), "status": rejection.status().as_u16() })),
        )
    });
    Router::new()
        .route("/me", get(me))
        .route("/tenant", get(tenant))
        .route("/logout", post(logout))
        .route("/logout-all", post(logout_everywhere))
        .route_layer(layer.clone())
        .with_state(layer.revoker())
}

fn layer(kind: &str, verifier: JwtVerifier) -> RevocationLayer {
    RevocationLayer::new(verifier, store_from_config(kind))
        .with_token_sources([TokenSource::cookie("session")])
        .with_check_timeout(Duration::from_millis(50))
        .with_failure_policy(FailurePolicy::FailClosed)
}

async fn call(app: &Router, method: &str, path: &str, token: &str) -> (StatusCode, String) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::COOKIE, format!("session={token}"))
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn the_store_comes_from_configuration_and_no_handler_names_it() {
    let app = app(layer("memory", common::verifier(0)));
    let token = mint(&claims("alice"));
    assert_eq!(
        call(&app, "GET", "/me", &token).await,
        (StatusCode::OK, "alice".into())
    );
    assert_eq!(
        call(&app, "POST", "/logout", &token).await.0,
        StatusCode::NO_CONTENT
    );
    let (status, body) = call(&app, "GET", "/me", &token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The closure's response, not the default one.
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body, json!({ "error": "token revoked", "status": 401 }));
}

#[tokio::test]
async fn a_store_outage_reaches_the_closure_as_a_503_with_the_same_settings() {
    // Nothing listens on port 1: every check fails, and the layer fails closed.
    let app = app(layer("redis", common::verifier(0)));
    let (status, body) = call(&app, "GET", "/me", &mint(&claims("alice"))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"],
        "revocation status unavailable"
    );
}

#[tokio::test]
async fn swapping_the_verifier_keeps_every_other_setting() {
    let configured = layer("memory", common::verifier(0));
    let rotated_secret = b"the rotated secret, 32 bytes long!";
    let rotated = JwtVerifier::builder()
        .key(VerificationKey::hmac(Algorithm::HS256, rotated_secret).unwrap())
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .build()
        .unwrap();
    let swapped = configured.clone().with_verifier(rotated);
    assert_eq!(swapped.token_sources(), configured.token_sources());
    assert_eq!(swapped.check_timeout(), Duration::from_millis(50));
    assert_eq!(swapped.failure_policy(), FailurePolicy::FailClosed);
    assert!(Arc::ptr_eq(swapped.store(), configured.store()));

    let app = app(swapped);
    let new_token = mint_with(
        &Header::new(Algorithm::HS256),
        &claims("bob"),
        &EncodingKey::from_secret(rotated_secret),
    );
    // Read from the cookie source configured before the swap.
    assert_eq!(
        call(&app, "GET", "/me", &new_token).await,
        (StatusCode::OK, "bob".into())
    );
    let (status, body) = call(&app, "GET", "/me", &mint(&claims("alice"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"],
        "invalid signature"
    );
}

#[tokio::test]
async fn any_handler_reads_its_own_claims_and_a_misfit_is_a_401_naming_no_type() {
    let app = app(layer("memory", common::verifier(0)));
    let with_tenant = mint(&claims_with("alice", json!({ "tenant": "acme" })));
    assert_eq!(
        call(&app, "GET", "/tenant", &with_tenant).await,
        (StatusCode::OK, "alice@acme".into())
    );
    // The same layer serves handlers with and without their own claims type.
    assert_eq!(call(&app, "GET", "/me", &with_tenant).await.0, StatusCode::OK);

    let without_tenant = mint(&claims("alice"));
    let request = Request::get("/tenant")
        .header(header::COOKIE, format!("session={without_tenant}"))
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers()[header::WWW_AUTHENTICATE],
        r#"Bearer error="invalid_token", error_description="token claims do not match what the application expects""#
    );
    let body = axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
    assert!(!String::from_utf8_lossy(&body).contains("TenantClaims"));
}

#[tokio::test]
async fn log_out_everywhere_without_a_subject_is_a_400_not_a_503() {
    let app = app(layer("memory", common::verifier(0)));
    let no_subject = mint(&claims_with("alice", json!({ "sub": null })));
    let (status, body) = call(&app, "POST", "/logout-all", &no_subject).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({ "error": "the token has no `sub` claim" })
    );
}

/// A tonic service of the application's, behind the layer.
mod grpc {
    use tonic::{Request, Response, Status};
    use tower_jwt_revoke::Revoker;
    use tower_jwt_revoke::tonic::RequestExt as _;

    #[allow(clippy::all, dead_code)]
    pub mod pb {
        include!("../examples/tonic_grpc/auth.v1.rs");
    }

    pub struct Session {
        pub revoker: Revoker,
    }

    #[tonic::async_trait]
    impl pb::session_server::Session for Session {
        async fn whoami(
            &self,
            request: Request<pb::WhoamiRequest>,
        ) -> Result<Response<pb::WhoamiResponse>, Status> {
            let token = request.verified_token()?;
            Ok(Response::new(pb::WhoamiResponse {
                sub: token.subject().unwrap_or_default().into(),
                jti: token.token_id().unwrap_or_default().into(),
                exp: token.expires_at(),
            }))
        }

        async fn logout(
            &self,
            request: Request<pb::LogoutRequest>,
        ) -> Result<Response<pb::LogoutResponse>, Status> {
            self.revoker.revoke(request.verified_token()?).await?;
            Ok(Response::new(pb::LogoutResponse {}))
        }

        type WatchStream =
            std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<pb::WatchEvent, Status>> + Send>>;

        /// A stream that never ends by itself: the layer ends it when the token is
        /// refused (`StreamEnding::Grpc`, the default).
        async fn watch(&self, _: Request<pb::WatchRequest>) -> Result<Response<Self::WatchStream>, Status> {
            let ticks = futures_util::stream::unfold(0, |n| async move {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                Some((Ok(pb::WatchEvent { n }), n + 1))
            });
            Ok(Response::new(Box::pin(ticks)))
        }
    }
}

#[tokio::test]
async fn a_tonic_service_behind_the_layer_reads_the_token_and_is_refused_after_logout() {
    use grpc::pb::session_client::SessionClient;
    use grpc::pb::session_server::SessionServer;
    use grpc::pb::{LogoutRequest, WhoamiRequest};

    let layer = RevocationLayer::new(common::verifier(0), store_from_config("memory"));
    let session = grpc::Session {
        revoker: layer.revoker(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = common::background::Background::spawn(|stopped| {
        tonic::transport::Server::builder()
            .layer(layer)
            .add_service(SessionServer::new(session))
            .serve_with_incoming_shutdown(tonic::transport::server::TcpIncoming::from(listener), stopped)
    });
    let mut client = SessionClient::connect(format!("http://{addr}")).await.unwrap();
    let token = mint(&claims("carol"));
    fn authorized<T>(message: T, token: &str) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        request
    }

    let me = client
        .whoami(authorized(WhoamiRequest {}, &token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(me.sub, "carol");
    client.logout(authorized(LogoutRequest {}, &token)).await.unwrap();
    let refused = client
        .whoami(authorized(WhoamiRequest {}, &token))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    assert_eq!(refused.message(), "token revoked");

    // A server stream whose handler never looks at the token again is ended by the
    // layer when the token is revoked.
    let token = mint(&claims("dave"));
    let mut stream = client
        .watch(authorized(grpc::pb::WatchRequest {}, &token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        stream.message().await.unwrap(),
        Some(grpc::pb::WatchEvent { n: 0 })
    );
    client.logout(authorized(LogoutRequest {}, &token)).await.unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match stream.message().await {
                Ok(Some(_)) => continue,
                other => return other,
            }
        }
    })
    .await
    .expect("the stream ends");
    let status = ended.expect_err("with a status");
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    assert_eq!(status.message(), "token revoked");
    server.stop().await;
}
