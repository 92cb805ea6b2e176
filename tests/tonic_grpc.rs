//! The tonic_grpc example over a real loopback socket, driven by its generated client:
//! `Login` is open, `Session` is behind the layer, refusals are gRPC statuses.

#![cfg(all(feature = "redis", feature = "tonic"))]

mod common;

use common::background::Background;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tower_jwt_revoke::store::{InMemoryStore, RevocationStore};

#[path = "../examples/tonic_grpc/main.rs"]
#[allow(dead_code)]
mod tonic_grpc;

use tonic_grpc::pb::login_client::LoginClient;
use tonic_grpc::pb::session_client::SessionClient;
use tonic_grpc::pb::{LoginRequest, LogoutRequest, WhoamiRequest};

const ACCESS_TTL: Duration = Duration::from_secs(300);

/// The example's server on a free loopback port, stopped by [`Server::stop`] (or
/// aborted on drop when a test fails first).
struct Server {
    channel: Channel,
    server: Background<tonic::transport::Error>,
}

impl Server {
    async fn start(store: Arc<dyn RevocationStore>) -> Self {
        let routes = tonic_grpc::routes(tonic_grpc::DemoConfig {
            secret: b"tonic-grpc-test-secret-0123456789abcdef".to_vec(),
            access_ttl: ACCESS_TTL,
            store,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = Background::spawn(|stopped| tonic_grpc::serve(listener, routes, stopped));
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(5))
            .connect()
            .await
            .unwrap();
        Self { channel, server }
    }

    fn login_client(&self) -> LoginClient<Channel> {
        LoginClient::new(self.channel.clone())
    }

    fn session_client(&self) -> SessionClient<Channel> {
        SessionClient::new(self.channel.clone())
    }

    async fn login(&self, username: &str) -> String {
        let response = self
            .login_client()
            .login(LoginRequest {
                username: username.into(),
                password: "password".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(response.token_type, "Bearer");
        assert_eq!(response.expires_in, ACCESS_TTL.as_secs());
        response.access_token
    }

    /// Shuts the server down gracefully and checks it stopped cleanly.
    async fn stop(self) {
        self.server.stop().await;
    }
}

/// `message` with `authorization: Bearer <token>` metadata.
fn bearer<T>(message: T, token: &str) -> Request<T> {
    with_metadata(message, "authorization", &format!("Bearer {token}"))
}

fn with_metadata<T>(message: T, key: &'static str, value: &str) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(key, value.parse().unwrap());
    request
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

#[track_caller]
fn assert_status<T: std::fmt::Debug>(result: Result<T, Status>, code: Code, message: &str) {
    let status = result.expect_err("the call is refused");
    assert_eq!(status.code(), code, "{status:?}");
    assert_eq!(status.message(), message, "{status:?}");
}

#[tokio::test]
async fn logout_revokes_the_token_for_every_later_call() {
    let server = Server::start(Arc::new(InMemoryStore::new())).await;
    let mut session = server.session_client();
    let before = now();
    let token = server.login("alice").await;
    let after = now();

    let me = session
        .whoami(bearer(WhoamiRequest {}, &token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(me.sub, "alice");
    // The contract is a unique `jti`; TokenIssuer's are 128 random bits (22 base64url).
    assert!(
        me.jti.len() == 22
            && me
                .jti
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "jti is 128 random bits: {}",
        me.jti
    );
    let ttl = ACCESS_TTL.as_secs();
    assert!(
        (before + ttl..=after + ttl).contains(&me.exp),
        "exp {} is {ttl} s after login",
        me.exp
    );

    session.logout(bearer(LogoutRequest {}, &token)).await.unwrap();
    assert_status(
        session.whoami(bearer(WhoamiRequest {}, &token)).await,
        Code::Unauthenticated,
        "token revoked",
    );
    assert_status(
        session.logout(bearer(LogoutRequest {}, &token)).await,
        Code::Unauthenticated,
        "token revoked",
    );

    // Only that token: a fresh login works, with a different jti.
    let fresh = server.login("alice").await;
    let again = session
        .whoami(bearer(WhoamiRequest {}, &fresh))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.sub, "alice");
    assert_ne!(again.jti, me.jti);
    server.stop().await;
}

#[tokio::test]
async fn session_calls_without_a_valid_token_are_unauthenticated() {
    let server = Server::start(Arc::new(InMemoryStore::new())).await;
    let mut session = server.session_client();

    assert_status(
        session.whoami(WhoamiRequest {}).await,
        Code::Unauthenticated,
        "no bearer token",
    );
    assert_status(
        session.logout(LogoutRequest {}).await,
        Code::Unauthenticated,
        "no bearer token",
    );
    let forged = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJtYWxsb3J5In0.c2lnbmF0dXJl";
    let refused = session
        .whoami(bearer(WhoamiRequest {}, forged))
        .await
        .expect_err("a forged token is refused");
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    server.stop().await;
}

#[tokio::test]
async fn the_token_is_read_from_authorization_bearer_metadata() {
    let server = Server::start(Arc::new(InMemoryStore::new())).await;
    let mut session = server.session_client();
    let token = server.login("alice").await;

    // Set per call, with the scheme in any case…
    let me = session
        .whoami(with_metadata(
            WhoamiRequest {},
            "authorization",
            &format!("bearer {token}"),
        ))
        .await
        .unwrap();
    assert_eq!(me.into_inner().sub, "alice");

    // …or by an interceptor, as a real client would.
    let value: tonic::metadata::MetadataValue<_> = format!("Bearer {token}").parse().unwrap();
    let mut intercepted =
        SessionClient::with_interceptor(server.channel.clone(), move |mut request: Request<()>| {
            request.metadata_mut().insert("authorization", value.clone());
            Ok(request)
        });
    assert_eq!(
        intercepted
            .whoami(WhoamiRequest {})
            .await
            .unwrap()
            .into_inner()
            .sub,
        "alice"
    );

    // Anywhere else, the token is not seen.
    for (key, value) in [
        ("x-access-token", token.clone()),
        ("authorization", format!("Basic {token}")),
        ("authorization", token.clone()),
    ] {
        assert_status(
            session.whoami(with_metadata(WhoamiRequest {}, key, &value)).await,
            Code::Unauthenticated,
            "no bearer token",
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn login_is_open_and_checks_credentials() {
    let server = Server::start(Arc::new(InMemoryStore::new())).await;
    let mut login = server.login_client();
    let mut session = server.session_client();

    // No token needed, and a revoked one in the metadata does not get in the way.
    let token = server.login("alice").await;
    session.logout(bearer(LogoutRequest {}, &token)).await.unwrap();
    let request = LoginRequest {
        username: "alice".into(),
        password: "password".into(),
    };
    login.login(bearer(request, &token)).await.unwrap();

    let wrong_password = LoginRequest {
        username: "alice".into(),
        password: "hunter2".into(),
    };
    assert_status(
        login.login(wrong_password).await,
        Code::Unauthenticated,
        "invalid username or password",
    );
    let no_username = LoginRequest {
        username: " ".into(),
        password: "password".into(),
    };
    assert_status(
        login.login(no_username).await,
        Code::InvalidArgument,
        "username must not be empty",
    );
    server.stop().await;
}

#[tokio::test]
async fn a_store_outage_is_unavailable_never_unauthenticated() {
    let server = Server::start(Arc::new(common::broken_store::BrokenStore::new(
        common::broken_store::Failure::Error,
    )))
    .await;
    let mut session = server.session_client();

    // Login needs no store.
    let token = server.login("alice").await;
    assert_status(
        session.whoami(bearer(WhoamiRequest {}, &token)).await,
        Code::Unavailable,
        "revocation status unavailable",
    );
    assert_status(
        session.logout(bearer(LogoutRequest {}, &token)).await,
        Code::Unavailable,
        "revocation status unavailable",
    );
    // A request without a token is refused before the store is asked.
    assert_status(
        session.whoami(WhoamiRequest {}).await,
        Code::Unauthenticated,
        "no bearer token",
    );
    server.stop().await;
}
