//! The tonic_grpc example's `Watch` server stream read by a client the crate did not
//! write: Python's `grpcio` (tests/python_grpc/watch_client.py, hand-encoded messages,
//! no generated code). It logs in, watches, and sees the stream end with
//! `UNAUTHENTICATED` once its token is logged out, on the same server or on another
//! replica mirroring the same redis-server.
//!
//! Without `python3` or its `grpc` module (`pip install grpcio`) the tests say so loudly
//! and pass, unless `TOWER_JWT_REVOKE_REQUIRE_PYTHON_GRPC=1` (set by `.ci/run`), where
//! they fail.

#![cfg(all(feature = "redis", feature = "tonic"))]

mod common;
mod support;

use common::background::Background;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tonic::Request;
use tonic::transport::Channel;
use tower_jwt_revoke::store::{InMemoryStore, MirrorStore, RevocationStore};

#[path = "../examples/tonic_grpc/main.rs"]
#[allow(dead_code)]
mod tonic_grpc;

use tonic_grpc::pb::LogoutRequest;
use tonic_grpc::pb::session_client::SessionClient;

const SECRET: &[u8] = b"python-grpc-test-secret-0123456789abcdef";
/// Python's start and `import grpc` on a loaded machine, then the login.
const STARTUP: Duration = Duration::from_secs(30);
/// From the logout's answer to the Python client's report of the status: immediate in
/// practice, generous for a loaded machine.
const ENDS_WITHIN: Duration = Duration::from_secs(5);

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python_grpc/watch_client.py")
}

fn skip(reason: &str) {
    if std::env::var("TOWER_JWT_REVOKE_REQUIRE_PYTHON_GRPC").is_ok_and(|value| value == "1") {
        panic!("TOWER_JWT_REVOKE_REQUIRE_PYTHON_GRPC=1 but {reason}");
    }
    // Straight to the process's stderr: the test harness captures `eprintln!` of a
    // passing test, and a skip must show where `cargo test` is read.
    let _ = writeln!(
        std::io::stderr(),
        "\n!!! SKIPPED a Python grpcio test: {reason}. Install python3 and `pip install grpcio`. !!!\n"
    );
}

/// Whether `python3` with `grpc` can run the client; says why not when it cannot.
async fn python_ready() -> bool {
    if !script().is_file() {
        skip("tests/python_grpc/watch_client.py is missing");
        return false;
    }
    let imported = Command::new("python3")
        .args(["-c", "import grpc"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .status();
    match tokio::time::timeout(STARTUP, imported).await {
        Ok(Ok(status)) if status.success() => true,
        Ok(Ok(_)) => {
            skip("python3 cannot `import grpc`");
            false
        }
        Ok(Err(error)) => {
            skip(&format!("python3 could not run ({error})"));
            false
        }
        Err(_) => panic!("`python3 -c 'import grpc'` did not finish within {STARTUP:?}"),
    }
}

/// The example's server on a free loopback port, aborted on drop.
struct Replica {
    addr: SocketAddr,
    channel: Channel,
    _server: Background<tonic::transport::Error>,
}

impl Replica {
    async fn start(store: Arc<dyn RevocationStore>) -> Self {
        let routes = tonic_grpc::routes(tonic_grpc::DemoConfig {
            secret: SECRET.to_vec(),
            access_ttl: Duration::from_secs(300),
            store,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = Background::spawn(|stopped| tonic_grpc::serve(listener, routes, stopped));
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .connect()
            .await
            .unwrap();
        Self {
            addr,
            channel,
            _server: server,
        }
    }

    async fn logout(&self, token: &str) {
        let mut request = Request::new(LogoutRequest {});
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        SessionClient::new(self.channel.clone())
            .logout(request)
            .await
            .unwrap();
    }
}

/// The Python client's process, killed on drop (a failed test included). Its stderr
/// goes to a file, shown when the test fails.
struct PythonWatch {
    child: Child,
    stdout: Lines<BufReader<ChildStdout>>,
    stderr: tempfile::NamedTempFile,
}

impl PythonWatch {
    fn spawn(replica: &Replica, username: &str) -> Self {
        let stderr = tempfile::NamedTempFile::new().unwrap();
        let mut child = Command::new("python3")
            .arg("-u")
            .arg(script())
            .arg(replica.addr.to_string())
            .arg(username)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr.reopen().unwrap())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 starts");
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        Self {
            child,
            stdout,
            stderr,
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.stderr.path()).unwrap_or_default()
    }

    /// The client's next line, within `limit`.
    async fn line(&mut self, limit: Duration) -> String {
        match tokio::time::timeout(limit, self.stdout.next_line()).await {
            Ok(Ok(Some(line))) => line,
            Ok(Ok(None)) => panic!("the Python client stopped early; stderr:\n{}", self.stderr()),
            Ok(Err(error)) => panic!("reading the Python client: {error}"),
            Err(_) => panic!(
                "the Python client printed nothing within {limit:?}; stderr:\n{}",
                self.stderr()
            ),
        }
    }

    /// Its `token <access_token>` line.
    async fn token(&mut self) -> String {
        let line = self.line(STARTUP).await;
        match line.strip_prefix("token ") {
            Some(token) => token.to_owned(),
            None => panic!("expected the token, got {line:?}; stderr:\n{}", self.stderr()),
        }
    }

    /// Waits for its `event 0` and `event 1` lines: the stream is open and counting.
    async fn two_events(&mut self) {
        for n in 0..2 {
            assert_eq!(self.line(Duration::from_secs(10)).await, format!("event {n}"));
        }
    }

    /// Reads events until the status line, which must come within [`ENDS_WITHIN`] and
    /// say `UNAUTHENTICATED`; then the client must exit 0.
    async fn ends_unauthenticated(mut self) {
        let status = tokio::time::timeout(ENDS_WITHIN, async {
            loop {
                let line = self.line(ENDS_WITHIN).await;
                if !line.starts_with("event ") {
                    return line;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("the Watch stream did not end within {ENDS_WITHIN:?}"));
        assert_eq!(status, "status UNAUTHENTICATED token revoked");
        let exited = tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .expect("the Python client exits after the status")
            .unwrap();
        assert!(exited.success(), "{exited}; stderr:\n{}", self.stderr());
    }
}

#[tokio::test]
async fn a_python_client_s_watch_ends_unauthenticated_at_logout() {
    if !python_ready().await {
        return;
    }
    let replica = Replica::start(Arc::new(InMemoryStore::new())).await;
    let mut python = PythonWatch::spawn(&replica, "alice");
    let token = python.token().await;
    python.two_events().await;
    replica.logout(&token).await;
    python.ends_unauthenticated().await;
}

#[tokio::test]
async fn on_two_mirrors_a_logout_on_one_ends_the_python_client_s_watch_on_the_other() {
    if !python_ready().await {
        return;
    }
    let Some(server) = support::RedisServer::start() else {
        return;
    };
    let prefix = format!("python-grpc-{}", uuid::Uuid::new_v4());
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let mirror = MirrorStore::builder(server.store(&prefix)).start();
        mirror.wait_until_synced(Duration::from_secs(10)).await.unwrap();
        replicas.push(Replica::start(Arc::new(mirror)).await);
    }
    let (a, b) = (&replicas[0], &replicas[1]);
    let mut python = PythonWatch::spawn(b, "bob");
    let token = python.token().await;
    python.two_events().await;
    a.logout(&token).await;
    python.ends_unauthenticated().await;
}
