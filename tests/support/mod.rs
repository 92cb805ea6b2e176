//! Test support: a private `redis-server` per test, killed on drop.
//!
//! The binary is `REDIS_SERVER_BIN`, or `redis-server` on `PATH`. `REDIS_URL` points
//! tests at an existing server instead (tests that must kill the server are then
//! skipped). With neither, tests say why and are skipped, unless
//! `TOWER_JWT_REVOKE_REQUIRE_REDIS=1`, where they fail.

#![allow(dead_code)] // each test file uses part of it

#[macro_use]
pub mod cluster;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A Redis server for one test.
pub struct RedisServer {
    url: String,
    private: Option<Private>,
}

struct Private {
    child: Option<Child>,
    port: u16,
    binary: PathBuf,
    dir: tempfile::TempDir,
    append_only: bool,
}

fn required() -> bool {
    std::env::var("TOWER_JWT_REVOKE_REQUIRE_REDIS").is_ok_and(|value| value == "1")
}

fn skip(reason: &str) {
    if required() {
        panic!("TOWER_JWT_REVOKE_REQUIRE_REDIS=1 but {reason}");
    }
    // Straight to the process's stderr: the test harness captures `eprintln!` of a
    // passing test, and a skip must show where `cargo test` is read.
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr(),
        "\n!!! SKIPPED: {reason}. Install redis-server, or set REDIS_SERVER_BIN or REDIS_URL. !!!\n"
    );
}

fn binary() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("REDIS_SERVER_BIN") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("redis-server"))
        .find(|candidate| candidate.is_file())
}

impl RedisServer {
    /// A server for this test: a private one, or `REDIS_URL`'s. `None` when neither
    /// is available (after saying so loudly).
    pub fn start() -> Option<Self> {
        if let Ok(url) = std::env::var("REDIS_URL") {
            return Some(Self { url, private: None });
        }
        Self::start_private(false)
    }

    /// A private server this test may kill and restart; with `append_only`, it
    /// persists every write (AOF, fsync always) so a restart keeps them.
    pub fn start_private(append_only: bool) -> Option<Self> {
        let Some(binary) = binary() else {
            skip("no redis-server binary found (REDIS_SERVER_BIN unset, none on PATH)");
            return None;
        };
        let dir = tempfile::tempdir().expect("temp dir for redis-server");
        let mut server = Self {
            url: String::new(),
            private: Some(Private {
                child: None,
                port: 0,
                binary,
                dir,
                append_only,
            }),
        };
        for _ in 0..5 {
            let port = free_port();
            server.private.as_mut().unwrap().port = port;
            server.url = format!("redis://127.0.0.1:{port}/");
            if server.spawn() {
                return Some(server);
            }
        }
        panic!("redis-server did not start after 5 attempts");
    }

    /// Whether this test owns the server (and may kill it).
    pub fn is_private(&self) -> bool {
        self.private.is_some()
    }

    /// The URL to connect to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A plain client for inspecting the server.
    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url.as_str()).expect("valid redis url")
    }

    /// Creates the ACL user `user` (password `<user>-password`), allowed every command
    /// but `denied`, and answers the URL that logs in as it.
    pub async fn url_of_user(&self, user: &str, denied: &[&str]) -> String {
        let mut admin = self.client().get_multiplexed_async_connection().await.unwrap();
        let password = format!("{user}-password");
        let mut command = redis::cmd("ACL");
        command
            .arg("SETUSER")
            .arg(user)
            .arg("on")
            .arg(format!(">{password}"))
            .arg("~*")
            .arg("&*")
            .arg("+@all");
        for name in denied {
            command.arg(format!("-{name}"));
        }
        let _: () = command.query_async(&mut admin).await.unwrap();
        let port = self.url.trim_end_matches('/').rsplit(':').next().unwrap();
        format!("redis://{user}:{password}@127.0.0.1:{port}/")
    }

    /// A store on this server under `prefix`, with timeouts short enough for outage
    /// tests and long enough for a loaded CI machine.
    pub fn store(&self, prefix: &str) -> tower_jwt_revoke::store::RedisStore {
        self.builder(prefix).build().expect("a valid store configuration")
    }

    /// The builder of [`store`](Self::store), for tests that configure more.
    pub fn builder(&self, prefix: &str) -> tower_jwt_revoke::store::RedisStoreBuilder {
        tower_jwt_revoke::store::RedisStore::builder()
            .url(self.url())
            .prefix(prefix)
            .connect_timeout(Duration::from_millis(300))
            .command_timeout(Duration::from_millis(300))
    }

    /// Kills the server (SIGKILL: no shutdown save).
    pub fn kill(&mut self) {
        let private = self
            .private
            .as_mut()
            .expect("only a private server can be killed");
        if let Some(mut child) = private.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and directory.
    pub fn restart(&mut self) {
        assert!(self.spawn(), "redis-server did not restart on its port");
    }

    /// Starts the server again on the same port and directory, persisting every write
    /// this time (AOF, fsync always) or not at all: with `append_only`, it loads the
    /// append-only file it wrote before the kill (see `CONFIG SET appendonly yes`).
    pub fn restart_with(&mut self, append_only: bool) {
        self.private.as_mut().expect("private server").append_only = append_only;
        self.restart();
    }

    /// The server's process id while it runs, for a test that stops it (`SIGSTOP`).
    pub fn pid(&self) -> Option<u32> {
        self.private.as_ref()?.child.as_ref().map(Child::id)
    }

    fn spawn(&mut self) -> bool {
        let private = self.private.as_mut().expect("private server");
        let mut command = Command::new(&private.binary);
        command
            .args(["--bind", "127.0.0.1", "--port", &private.port.to_string()])
            .args(["--save", ""])
            .arg("--dir")
            .arg(private.dir.path())
            .args([
                "--daemonize",
                "no",
                "--protected-mode",
                "yes",
                "--loglevel",
                "warning",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if private.append_only {
            command.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            command.args(["--appendonly", "no"]);
        }
        let mut child = command.spawn().expect("spawn redis-server");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_exited)) = child.try_wait() {
                return false; // most likely the port was taken meanwhile
            }
            if ping(private.port) && serves(private.port, child.id()) {
                private.child = Some(child);
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(private) = self.private.as_mut()
            && let Some(mut child) = private.child.take()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sends `signal` (`STOP`, `CONT`) to process `pid`, one the test started.
pub fn signal(pid: u32, signal: &str) {
    let sent = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status();
    assert!(sent.is_ok_and(|status| status.success()), "kill -{signal} {pid}");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
}

/// Whether the server on `port` is process `pid` (and not another test's server that
/// took the port between our probe and our start).
fn serves(port: u16, pid: u32) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"INFO server\r\n").is_err() {
        return false;
    }
    let mut reply = Vec::new();
    let mut chunk = [0u8; 4096];
    let needle = format!("process_id:{pid}\r\n");
    while let Ok(read) = stream.read(&mut chunk) {
        if read == 0 {
            break;
        }
        reply.extend_from_slice(&chunk[..read]);
        let text = String::from_utf8_lossy(&reply);
        if text.contains(&needle) {
            return true;
        }
        if text.contains("process_id:") && text.contains("run_id:") {
            return false;
        }
    }
    false
}

/// A prefix no other test uses, so tests can share a server.
pub fn unique_prefix() -> String {
    format!("test-{}", uuid::Uuid::new_v4().simple())
}

/// A token marker in `bucket` expiring at `expires_ms` (Unix ms), with its member in
/// the bucket's index, written as the README's schema has another writer write them
/// (no event). Both keys share the bucket's slot, so a cluster takes them in one go.
pub async fn mark_as_another_writer<C: redis::aio::ConnectionLike + Send>(
    redis: &mut C,
    store: &tower_jwt_revoke::store::RedisStore,
    bucket: u32,
    token: &tower_jwt_revoke::RevocationKey,
    expires_ms: u64,
) {
    let () = redis::pipe()
        .cmd("SET")
        .arg(store.token_key(bucket, token))
        .arg("1")
        .arg("PXAT")
        .arg(expires_ms)
        .ignore()
        .cmd("ZADD")
        .arg(store.index_key(bucket))
        .arg(expires_ms)
        .arg(format!("t:{token}"))
        .ignore()
        .query_async(redis)
        .await
        .expect("another writer's SET and ZADD");
}

/// Takes a server for this test, or returns from the test (skipped).
#[macro_export]
macro_rules! redis_or_skip {
    () => {
        match $crate::support::RedisServer::start() {
            Some(server) => server,
            None => return,
        }
    };
    (private) => {
        match $crate::support::RedisServer::start_private(false) {
            Some(server) => server,
            None => return,
        }
    };
    (private, aof) => {
        match $crate::support::RedisServer::start_private(true) {
            Some(server) => server,
            None => return,
        }
    };
}

#[macro_use]
pub mod sentinel;
