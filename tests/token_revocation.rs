//! The RFC 7009 revocation endpoint: what a client may revoke, what it is told, and
//! that a revoked token is refused afterwards.

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::header::{ALLOW, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Request, Response, StatusCode};
use serde_json::{Value, json};
use tower::Layer;
use tower_jwt_revoke::endpoints::{BuildError, ClientRequest, TokenRevocation, basic_auth};
use tower_jwt_revoke::jsonwebtoken::{Algorithm, EncodingKey, Header};
use tower_jwt_revoke::store::InMemoryStore;
use tower_jwt_revoke::{RevocationLayer, Revoker};

use common::broken_store::{BrokenStore, Failure};
use common::{bearer, claims_with, echo, mint, mint_with, now, send};

const WEB: (&str, &str) = ("web", "web secret");
const CLI: (&str, &str) = ("cli", "cli:secret+with/odd chars");

fn basic((id, secret): (&str, &str)) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

/// A token of `sub` issued to `client` (RFC 9068 `client_id`).
fn token_for(sub: &str, client: &str) -> String {
    mint(&claims_with(sub, json!({ "client_id": client })))
}

struct App {
    layer: RevocationLayer,
    endpoint: TokenRevocation,
}

impl App {
    fn new() -> Self {
        let layer = RevocationLayer::new(common::verifier(5), InMemoryStore::new());
        let clients = basic_auth(WEB.0, WEB.1).client(CLI.0, CLI.1);
        let endpoint = TokenRevocation::builder(layer.revoker(), clients)
            .build()
            .unwrap();
        Self { layer, endpoint }
    }

    async fn status(&self, token: &str) -> StatusCode {
        send(self.layer.layer(echo()), bearer(token)).await.status()
    }

    async fn revoke(&self, client: Option<(&str, &str)>, body: &str) -> Response<String> {
        send(self.endpoint.clone(), request(client, body)).await
    }
}

fn request(client: Option<(&str, &str)>, body: &str) -> Request<String> {
    let mut request =
        Request::post("/oauth/revoke").header(CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(client) = client {
        request = request.header(AUTHORIZATION, basic(client));
    }
    request.body(body.to_owned()).unwrap()
}

fn error_of(response: &Response<String>) -> (String, String) {
    let body: Value = serde_json::from_str(response.body())
        .unwrap_or_else(|_| panic!("not a JSON error body: {:?}", response.body()));
    let text = |name: &str| body[name].as_str().unwrap_or_default().to_owned();
    (text("error"), text("error_description"))
}

fn assert_error(response: &Response<String>, status: StatusCode, code: &str) {
    assert_eq!(response.status(), status, "{:?}", response.body());
    assert_eq!(error_of(response).0, code, "{:?}", response.body());
    assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
}

#[tokio::test]
async fn a_valid_token_is_revoked_and_refused_afterwards() {
    let app = App::new();
    let token = token_for("alice", WEB.0);
    let other = token_for("alice", WEB.0);
    assert_eq!(app.status(&token).await, StatusCode::OK);

    let response = app
        .revoke(Some(WEB), &format!("token={token}&token_type_hint=access_token"))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.body().is_empty());
    assert_eq!(response.headers()[CACHE_CONTROL], "no-store");

    assert_eq!(app.status(&token).await, StatusCode::UNAUTHORIZED);
    assert_eq!(app.status(&other).await, StatusCode::OK, "only that token");
    // Revoking it again is still a success (RFC 7009 §2.2: the purpose is achieved).
    assert_eq!(
        app.revoke(Some(WEB), &format!("token={token}")).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn unknown_invalid_or_expired_tokens_are_a_200() {
    let app = App::new();
    let now = now();
    let expired = mint(&claims_with("bob", json!({ "iat": now - 900, "exp": now - 600 })));
    let foreign = mint_with(
        &Header::new(Algorithm::HS256),
        &claims_with("bob", json!({})),
        &EncodingKey::from_secret(b"someone else's secret, 32 bytes+"),
    );
    for token in ["garbage", "a.b.c", expired.as_str(), foreign.as_str()] {
        let response = app.revoke(Some(WEB), &format!("token={token}")).await;
        assert_eq!(response.status(), StatusCode::OK, "{token}");
    }
}

#[tokio::test]
async fn an_unauthenticated_client_gets_401_invalid_client_and_revokes_nothing() {
    let app = App::new();
    let token = token_for("carol", WEB.0);
    let body = format!("token={token}");
    for client in [
        None,
        Some((WEB.0, "wrong")),
        Some((WEB.0, CLI.1)),
        Some(("nobody", WEB.1)),
    ] {
        let response = app.revoke(client, &body).await;
        assert_error(&response, StatusCode::UNAUTHORIZED, "invalid_client");
        let challenge = response.headers()[WWW_AUTHENTICATE].to_str().unwrap();
        assert!(challenge.starts_with("Basic "), "{challenge}");
    }
    assert_eq!(app.status(&token).await, StatusCode::OK);
}

#[tokio::test]
async fn a_token_issued_to_another_client_is_not_revoked() {
    let app = App::new();
    let token = token_for("dave", CLI.0);
    let response = app.revoke(Some(WEB), &format!("token={token}")).await;
    assert_error(&response, StatusCode::BAD_REQUEST, "unauthorized_client");
    assert_eq!(app.status(&token).await, StatusCode::OK);

    // Its own client may; credentials urlencoded as RFC 6749 §2.3.1 asks are accepted.
    let encoded = ("cli", "cli%3Asecret%2Bwith%2Fodd+chars");
    assert_eq!(
        app.revoke(Some(encoded), &format!("token={token}"))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(app.status(&token).await, StatusCode::UNAUTHORIZED);

    // `azp` names the client when `client_id` is absent.
    let by_azp = mint(&claims_with("dave", json!({ "azp": CLI.0 })));
    let response = app.revoke(Some(WEB), &format!("token={by_azp}")).await;
    assert_error(&response, StatusCode::BAD_REQUEST, "unauthorized_client");
    assert_eq!(app.status(&by_azp).await, StatusCode::OK);
}

#[tokio::test]
async fn a_token_naming_no_client_is_nobodys_unless_allowed() {
    let app = App::new();
    let unnamed = mint(&common::claims("dave"));
    let response = app.revoke(Some(WEB), &format!("token={unnamed}")).await;
    assert_error(&response, StatusCode::BAD_REQUEST, "unauthorized_client");
    assert!(
        error_of(&response).1.contains("names no client"),
        "{:?}",
        response.body()
    );
    let empty = mint(&claims_with("dave", json!({ "client_id": "" })));
    let response = app.revoke(Some(WEB), &format!("token={empty}")).await;
    assert_error(&response, StatusCode::BAD_REQUEST, "unauthorized_client");
    assert_eq!(app.status(&unnamed).await, StatusCode::OK, "not revoked");

    let permissive = TokenRevocation::builder(app.layer.revoker(), basic_auth(WEB.0, WEB.1))
        .allow_unowned_tokens()
        .build()
        .unwrap();
    let response = send(
        permissive.clone(),
        request(Some(WEB), &format!("token={unnamed}")),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK, "{:?}", response.body());
    assert_eq!(app.status(&unnamed).await, StatusCode::UNAUTHORIZED);
    // Allowing unowned tokens does not make another client's token ownerless.
    let cli_token = token_for("dave", CLI.0);
    let response = send(permissive, request(Some(WEB), &format!("token={cli_token}"))).await;
    assert_error(&response, StatusCode::BAD_REQUEST, "unauthorized_client");
}

/// Two authorization servers (tenants) behind one verifier, each with a client `web`.
fn two_tenants() -> RevocationLayer {
    let verifier = common::verifier_builder(5)
        .issuer("tenant-a")
        .issuer("tenant-b")
        .build()
        .unwrap();
    RevocationLayer::new(verifier, InMemoryStore::new())
}

#[tokio::test]
async fn ownership_is_the_issuer_and_the_client_id_not_the_client_id_alone() {
    let layer = two_tenants();
    let endpoint = TokenRevocation::builder(layer.revoker(), basic_auth(WEB.0, WEB.1))
        .client_issuer("tenant-a")
        .build()
        .unwrap();
    let of_tenant = |issuer: &str| mint(&claims_with("ivan", json!({ "iss": issuer, "client_id": WEB.0 })));
    let status = |token: String| send(layer.layer(echo()), bearer(&token));

    // Tenant B's client `web` is another client than tenant A's `web`.
    let theirs = of_tenant("tenant-b");
    let response = send(endpoint.clone(), request(Some(WEB), &format!("token={theirs}"))).await;
    assert_error(&response, StatusCode::BAD_REQUEST, "unauthorized_client");
    assert_eq!(status(theirs).await.status(), StatusCode::OK, "not revoked");

    let ours = of_tenant("tenant-a");
    let response = send(endpoint, request(Some(WEB), &format!("token={ours}"))).await;
    assert_eq!(response.status(), StatusCode::OK, "{:?}", response.body());
    assert_eq!(status(ours).await.status(), StatusCode::UNAUTHORIZED);
}

#[test]
fn a_verifier_of_several_issuers_needs_the_clients_issuer_named() {
    let layer = two_tenants();
    let error = TokenRevocation::builder(layer.revoker(), basic_auth(WEB.0, WEB.1))
        .build()
        .unwrap_err();
    assert_eq!(error, BuildError::NoClientIssuer);
    assert!(error.to_string().contains("client_issuer"), "{error}");
    // A check of its own says whose tokens are whose: nothing to guess.
    let custom = TokenRevocation::builder(layer.revoker(), basic_auth(WEB.0, WEB.1))
        .issued_to(|token, client| token.issuer() == Some("tenant-a") && client == WEB.0)
        .build();
    assert!(custom.is_ok());
}

#[tokio::test]
async fn token_type_hints_follow_rfc_7009() {
    let app = App::new();
    // An unknown hint is ignored (§2.2).
    let token = token_for("erin", WEB.0);
    let response = app
        .revoke(Some(WEB), &format!("token={token}&token_type_hint=banana"))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(app.status(&token).await, StatusCode::UNAUTHORIZED);

    // A wrong hint extends the search (§2.1): the access token is found and revoked.
    let token = token_for("erin", WEB.0);
    let response = app
        .revoke(Some(WEB), &format!("token={token}&token_type_hint=refresh_token"))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(app.status(&token).await, StatusCode::UNAUTHORIZED);

    // A refresh token cannot be revoked here, and the client is told so (§2.2.1)
    // rather than led to believe it is dead.
    let response = app
        .revoke(
            Some(WEB),
            "token=opaque-refresh-token&token_type_hint=refresh_token",
        )
        .await;
    assert_error(&response, StatusCode::BAD_REQUEST, "unsupported_token_type");
    let response = app
        .revoke(Some(WEB), "token=opaque-token&token_type_hint=access_token")
        .await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn bad_requests_are_4xx_with_a_clear_message() {
    let app = App::new();
    let token = token_for("frank", WEB.0);

    for body in ["", "token=", "token_type_hint=access_token"] {
        let response = app.revoke(Some(WEB), body).await;
        assert_error(&response, StatusCode::BAD_REQUEST, "invalid_request");
        assert!(error_of(&response).1.contains("missing token"), "{body:?}");
    }
    let repeated = app.revoke(Some(WEB), &format!("token={token}&token=other")).await;
    assert_error(&repeated, StatusCode::BAD_REQUEST, "invalid_request");
    assert!(error_of(&repeated).1.contains("`token` is repeated"));

    let json_body = Request::post("/oauth/revoke")
        .header(CONTENT_TYPE, "application/json")
        .header(AUTHORIZATION, basic(WEB))
        .body(json!({ "token": token }).to_string())
        .unwrap();
    let wrong_type = send(app.endpoint.clone(), json_body).await;
    assert_error(&wrong_type, StatusCode::UNSUPPORTED_MEDIA_TYPE, "invalid_request");

    let get = send(
        app.endpoint.clone(),
        Request::get("/oauth/revoke").body(String::new()).unwrap(),
    )
    .await;
    assert_eq!(get.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(get.headers()[ALLOW], "POST");

    let huge = format!("token={}", "a".repeat(1024 * 1024));
    assert_eq!(
        app.revoke(Some(WEB), &huge).await.status(),
        StatusCode::PAYLOAD_TOO_LARGE
    );

    assert_eq!(app.status(&token).await, StatusCode::OK, "nothing was revoked");
}

#[tokio::test]
async fn a_failing_store_is_a_503_with_retry_after_never_a_200() {
    for failure in [Failure::Error, Failure::Hang] {
        let revoker = Revoker::new(common::verifier(5), BrokenStore::new(failure))
            .with_timeout(std::time::Duration::from_millis(100));
        let endpoint = TokenRevocation::builder(revoker, basic_auth(WEB.0, WEB.1))
            .build()
            .unwrap();
        let response = send(
            endpoint,
            request(Some(WEB), &format!("token={}", token_for("gina", WEB.0))),
        )
        .await;
        assert_error(
            &response,
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
        );
        assert_eq!(response.headers()[RETRY_AFTER], "5", "{failure:?}");
    }
}

#[tokio::test]
async fn client_authentication_is_any_closure() {
    let layer = RevocationLayer::new(common::verifier(5), InMemoryStore::new());
    // client_secret_post (RFC 6749 §2.3.1), for one client.
    let clients = |request: &ClientRequest<'_>| {
        let id = request.param("client_id")?;
        (id == "poster" && request.param("client_secret") == Some("posted secret")).then(|| id.to_owned())
    };
    let endpoint = TokenRevocation::builder(layer.revoker(), clients)
        .build()
        .unwrap();
    let token = token_for("hank", "poster");

    let denied = send(
        endpoint.clone(),
        request(None, &format!("token={token}&client_id=poster")),
    )
    .await;
    assert_error(&denied, StatusCode::UNAUTHORIZED, "invalid_client");
    let body = format!("token={token}&client_id=poster&client_secret=posted+secret");
    assert_eq!(
        send(endpoint, request(None, &body)).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        send(layer.layer(echo()), bearer(&token)).await.status(),
        StatusCode::UNAUTHORIZED
    );
}
