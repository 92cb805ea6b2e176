//! The tonic_grpc example's `Watch` server stream over a real loopback socket, read by
//! the generated tonic client: it ends with `UNAUTHENTICATED` when its token is logged
//! out, logged out everywhere, revoked with every other token, or expires; within
//! 100 ms of a logout on another replica when both mirror one redis-server, within the
//! watch interval on plain Redis.

#![cfg(all(feature = "redis", feature = "tonic"))]

mod common;
mod support;

use common::background::Background;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tonic::transport::Channel;
use tonic::{Code, Request, Streaming};
use tower_jwt_revoke::jsonwebtoken::{self, Algorithm, EncodingKey, Header};
use tower_jwt_revoke::store::{InMemoryStore, MirrorStore, RevocationStore};
use tower_jwt_revoke::{DEFAULT_LEEWAY_SECS, JwtVerifier, Revoker, VerificationKey};

#[path = "../examples/tonic_grpc/main.rs"]
#[allow(dead_code)]
mod tonic_grpc;

use tonic_grpc::pb::login_client::LoginClient;
use tonic_grpc::pb::session_client::SessionClient;
use tonic_grpc::pb::{LoginRequest, LogoutRequest, WatchEvent, WatchRequest};

const SECRET: &[u8] = b"tonic-streams-test-secret-0123456789abcdef";
const ACCESS_TTL: Duration = Duration::from_secs(300);
const AT_ONCE: Duration = Duration::from_secs(3);

struct Replica {
    channel: Channel,
    store: Arc<dyn RevocationStore>,
    _server: Background<tonic::transport::Error>,
}

impl Replica {
    async fn start(store: Arc<dyn RevocationStore>) -> Self {
        let routes = tonic_grpc::routes(tonic_grpc::DemoConfig {
            secret: SECRET.to_vec(),
            access_ttl: ACCESS_TTL,
            store: Arc::clone(&store),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = Background::spawn(|stopped| tonic_grpc::serve(listener, routes, stopped));
        // No request timeout: a stream stays open.
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .unwrap();
        Self {
            channel,
            store,
            _server: server,
        }
    }

    async fn login(&self, username: &str) -> String {
        LoginClient::new(self.channel.clone())
            .login(LoginRequest {
                username: username.into(),
                password: "password".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .access_token
    }

    async fn logout(&self, token: &str) {
        SessionClient::new(self.channel.clone())
            .logout(bearer(LogoutRequest {}, token))
            .await
            .unwrap();
    }

    /// `Watch`, its first event read.
    async fn watch(&self, token: &str) -> Streaming<WatchEvent> {
        let mut stream = SessionClient::new(self.channel.clone())
            .watch(bearer(WatchRequest {}, token))
            .await
            .unwrap()
            .into_inner();
        let first = tokio::time::timeout(AT_ONCE, stream.message())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first, Some(WatchEvent { n: 0 }));
        stream
    }

    fn revoker(&self) -> Revoker {
        let verifier = JwtVerifier::builder()
            .key(VerificationKey::hmac(Algorithm::HS256, SECRET).unwrap())
            .issuer("tonic_grpc")
            .max_token_lifetime(ACCESS_TTL)
            .build()
            .unwrap();
        Revoker::new(verifier, Arc::clone(&self.store))
    }
}

fn bearer<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

/// A token the example's verifier accepts for about two more seconds.
fn expiring_token(username: &str) -> String {
    let exp = common::now() - DEFAULT_LEEWAY_SECS + 1;
    let claims = json!({ "sub": username, "jti": uuid::Uuid::new_v4().to_string(), "iss": "tonic_grpc",
        "iat": exp - 60, "exp": exp });
    tower_jwt_revoke::install_crypto_provider();
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

/// Reads `stream` until it ends; it must end with `UNAUTHENTICATED` within `limit`.
/// Answers when it ended.
async fn ends_unauthenticated(mut stream: Streaming<WatchEvent>, limit: Duration) -> Instant {
    let read = async {
        loop {
            match stream.message().await {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("the stream ended without a status"),
                Err(status) => {
                    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
                    return Instant::now();
                }
            }
        }
    };
    tokio::time::timeout(limit, read)
        .await
        .unwrap_or_else(|_| panic!("the stream did not end within {limit:?}"))
}

async fn every_ending(streams: &Replica, writes: &Replica, bound: Duration) {
    // Logout, on the other replica.
    let token = streams.login("alice").await;
    let stream = streams.watch(&token).await;
    writes.logout(&token).await;
    ends_unauthenticated(stream, bound).await;

    // Log out everywhere.
    let token = streams.login("bob").await;
    let stream = streams.watch(&token).await;
    writes.revoker().revoke_subject("bob").await.unwrap();
    ends_unauthenticated(stream, bound).await;

    // Expiry mid-stream.
    let token = expiring_token("carol");
    let stream = streams.watch(&token).await;
    ends_unauthenticated(stream, Duration::from_secs(10)).await;

    // Every token (last: it refuses every token issued until now).
    let token = streams.login("dave").await;
    let stream = streams.watch(&token).await;
    writes.revoker().revoke_all().await.unwrap();
    ends_unauthenticated(stream, bound).await;
}

#[tokio::test]
async fn on_the_memory_store_every_refusal_ends_the_stream() {
    let replica = Replica::start(Arc::new(InMemoryStore::new())).await;
    every_ending(&replica, &replica, AT_ONCE).await;
}

#[tokio::test]
async fn on_two_mirrors_a_logout_on_one_ends_the_other_s_stream_within_100_ms() {
    let Some(server) = support::RedisServer::start() else {
        return;
    };
    let prefix = format!("tonic-streams-{}", uuid::Uuid::new_v4());
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let mirror = MirrorStore::builder(server.store(&prefix)).start();
        mirror.wait_until_synced(Duration::from_secs(10)).await.unwrap();
        replicas.push(Replica::start(Arc::new(mirror)).await);
    }
    let (a, b) = (&replicas[0], &replicas[1]);
    let mut delays = Vec::new();
    for _ in 0..5 {
        let token = b.login("erin").await;
        let stream = b.watch(&token).await;
        // From before the logout request: its own round trip is counted too.
        let started = Instant::now();
        a.logout(&token).await;
        delays.push(ends_unauthenticated(stream, AT_ONCE).await - started);
    }
    delays.sort();
    eprintln!("mirrors: Logout sent to A to the end of Watch on B: {delays:?}");
    assert!(delays[2] < Duration::from_millis(100), "{delays:?}");
    every_ending(b, a, AT_ONCE).await;
}

#[tokio::test]
async fn on_plain_redis_the_stream_ends_within_the_watch_interval() {
    let Some(server) = support::RedisServer::start() else {
        return;
    };
    let prefix = format!("tonic-streams-{}", uuid::Uuid::new_v4());
    let a = Replica::start(Arc::new(server.store(&prefix))).await;
    let b = Replica::start(Arc::new(server.store(&prefix))).await;
    let token = b.login("frank").await;
    let stream = b.watch(&token).await;
    let started = Instant::now();
    a.logout(&token).await;
    let ended = ends_unauthenticated(stream, AT_ONCE).await - started;
    eprintln!("plain Redis: Logout sent to A to the end of Watch on B: {ended:?}");
    assert!(ended < tower_jwt_revoke::store::DEFAULT_WATCH_INTERVAL + Duration::from_millis(500));
    every_ending(
        &b,
        &a,
        tower_jwt_revoke::store::DEFAULT_WATCH_INTERVAL + Duration::from_secs(1),
    )
    .await;
}

#[tokio::test]
async fn a_stream_whose_token_stays_good_keeps_counting() {
    let replica = Replica::start(Arc::new(InMemoryStore::new())).await;
    let token = replica.login("grace").await;
    let mut stream = replica.watch(&token).await;
    let revoker = replica.revoker();
    for n in 0..1000 {
        revoker.revoke_subject(&format!("user-{n}")).await.unwrap();
    }
    for expected in 1..=10 {
        let event = tokio::time::timeout(AT_ONCE, stream.message())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(event, Some(WatchEvent { n: expected }));
    }
}
