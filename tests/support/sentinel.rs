//! Test support: a replicated Redis per test — a master and a replica, and (for the
//! failover tests) three Sentinels watching them — real `redis-server` processes on
//! free loopback ports in a temp dir, killed on drop.
//!
//! Sentinels are `redis-server <config> --sentinel` (what `redis-sentinel` is), so the
//! one binary of [`RedisServer`](super::RedisServer) does: `REDIS_SERVER_BIN`, else
//! `redis-server` on `PATH`. Without it the test says why and is skipped, unless
//! `TOWER_JWT_REVOKE_REQUIRE_REDIS=1`, where it fails.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{binary, free_port, ping, serves, skip};

/// The name the Sentinels know the master by.
pub const MASTER_NAME: &str = "revocations";

/// How long the master may be unreachable before a Sentinel thinks it down. Short, so a
/// failover test takes seconds; long enough for a loaded CI machine not to flap.
pub const DOWN_AFTER_MS: u64 = 1000;

/// How long a failover may take before the Sentinels try another.
pub const FAILOVER_TIMEOUT_MS: u64 = 5000;

/// One process: a data node or a Sentinel.
pub struct Process {
    pub port: u16,
    child: Option<Child>,
    dir: PathBuf,
    /// How it was started, to start it again.
    server: PathBuf,
    args: Vec<String>,
}

impl Process {
    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// A plain client of this one process.
    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).expect("valid url")
    }

    /// Whether it is running (not killed by the test).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Runs one command and answers its reply as text (`redis-cli`'s view, roughly).
    pub fn command(&self, args: &[&str]) -> redis::RedisResult<redis::Value> {
        let mut connection = self
            .client()
            .get_connection_with_timeout(Duration::from_secs(2))?;
        connection.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut cmd = redis::cmd(args[0]);
        for arg in &args[1..] {
            cmd.arg(*arg);
        }
        cmd.query(&mut connection)
    }

    /// One field of `INFO <section>`.
    pub fn info(&self, section: &str, field: &str) -> Option<String> {
        let text: String = redis::from_redis_value(self.command(&["INFO", section]).ok()?).ok()?;
        let prefix = format!("{field}:");
        text.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .map(|value| value.trim().to_owned())
    }

    /// Stops the process (SIGKILL: no shutdown save).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Keeps the whole process busy for `seconds` (`DEBUG SLEEP`, sent without waiting
    /// for the answer): it answers nobody, a master asking for acknowledgements included.
    pub fn freeze(&self, seconds: f64) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to freeze");
        let command = format!("DEBUG SLEEP {seconds}\r\n");
        stream.write_all(command.as_bytes()).expect("send DEBUG SLEEP");
        // The connection is kept until the answer (the end of the sleep), on a thread of
        // its own, so that nothing cuts the sleep short.
        std::thread::spawn(move || {
            let _ = stream.set_read_timeout(Some(Duration::from_secs_f64(seconds + 10.0)));
            let _ = stream.read(&mut [0u8; 16]);
        });
    }

    /// Its process id while it runs, for a test that stops it (`SIGSTOP`).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Starts a killed process again, on its port, in its directory, with its arguments
    /// but as a master: a data node without persistence comes back empty, and the
    /// Sentinels make it a replica if they promoted another in its place (as they would
    /// rewrite its configuration file).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart a killed process only");
        let mut args = Vec::new();
        let mut given = self.args.iter();
        while let Some(arg) = given.next() {
            if arg == "--replicaof" {
                given.nth(1); // its host and port
            } else {
                args.push(arg.clone());
            }
        }
        let started = (0..50).any(|_| {
            if let Some(mut again) = start_on(&self.server, &self.dir, &args, self.port) {
                self.child = again.child.take();
                true
            } else {
                std::thread::sleep(Duration::from_millis(100)); // the port not free yet
                false
            }
        });
        assert!(started, "redis-server did not restart on port {}", self.port);
    }

    fn log(&self) -> PathBuf {
        self.dir.join("redis.log")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `redis-server` with `args` on a free port in `dir`; `None` when it did not come
/// up (most likely the port was taken meanwhile).
fn spawn(server: &Path, dir: &Path, args: &[String]) -> Option<Process> {
    start_on(server, dir, args, free_port())
}

fn start_on(server: &Path, dir: &Path, args: &[String], port: u16) -> Option<Process> {
    std::fs::create_dir_all(dir).expect("process dir");
    let mut process = Process {
        port,
        child: None,
        dir: dir.to_owned(),
        server: server.to_owned(),
        args: args.to_vec(),
    };
    let mut command = Command::new(server);
    command
        .args(args)
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--daemonize", "no", "--loglevel", "notice"])
        .arg("--dir")
        .arg(dir)
        .arg("--logfile")
        .arg(process.log())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = command.spawn().expect("spawn redis-server");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_exited)) = child.try_wait() {
            return None;
        }
        if ping(port) && serves(port, child.id()) {
            process.child = Some(child);
            return Some(process);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

fn retry(mut start: impl FnMut() -> Option<Process>) -> Process {
    for _ in 0..5 {
        if let Some(process) = start() {
            return process;
        }
    }
    panic!("redis-server did not start after 5 attempts");
}

/// Polls `done` every 50 ms for up to `within`.
fn wait_until(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A master and one replica of it.
pub struct Replicated {
    pub master: Process,
    pub replica: Process,
    server: PathBuf,
    dir: tempfile::TempDir,
}

impl Replicated {
    /// Starts a master and a replica, and waits until the replica is in step. `None`
    /// (after saying so loudly) without a `redis-server`.
    pub fn start() -> Option<Self> {
        let Some(server) = binary() else {
            skip("no redis-server binary found (REDIS_SERVER_BIN unset, none on PATH)");
            return None;
        };
        let dir = tempfile::tempdir().expect("temp dir for the replicated servers");
        // No persistence: what survives here survives by replication alone. `DEBUG` from
        // loopback, for a test to freeze a node.
        let data_node = [
            "--save",
            "",
            "--appendonly",
            "no",
            "--enable-debug-command",
            "local",
        ]
        .map(String::from);
        let master = retry(|| spawn(&server, &dir.path().join("master"), &data_node));
        let mut replica_args = data_node.to_vec();
        replica_args.extend(["--replicaof".into(), "127.0.0.1".into(), master.port.to_string()]);
        let replica = retry(|| spawn(&server, &dir.path().join("replica"), &replica_args));
        let replicated = Self {
            master,
            replica,
            server,
            dir,
        };
        assert!(
            wait_until(Duration::from_secs(20), || {
                replicated
                    .replica
                    .info("replication", "master_link_status")
                    .as_deref()
                    == Some("up")
            }),
            "the replica did not get in step with its master"
        );
        Some(replicated)
    }

    /// A store on the master directly (no Sentinel), with the test timeouts of
    /// [`RedisServer::store`](super::RedisServer::store).
    pub fn builder(&self, prefix: &str) -> tower_jwt_revoke::store::RedisStoreBuilder {
        tower_jwt_revoke::store::RedisStore::builder()
            .url(self.master.url())
            .prefix(prefix)
            .connect_timeout(Duration::from_millis(300))
            .command_timeout(Duration::from_millis(300))
    }
}

/// A master, a replica, and three Sentinels watching them (quorum 2).
pub struct Sentinels {
    pub data: Replicated,
    pub sentinels: Vec<Process>,
}

impl Sentinels {
    /// Starts the master and replica, then three Sentinels, and waits until every
    /// Sentinel knows the replica and the other two (else a failover could not be
    /// agreed on). `None` (after saying so loudly) without a `redis-server`.
    pub fn start() -> Option<Self> {
        let data = Replicated::start()?;
        let mut sentinels = Vec::new();
        for n in 0..3 {
            let dir = data.dir.path().join(format!("sentinel{n}"));
            std::fs::create_dir_all(&dir).expect("sentinel dir");
            let config = dir.join("sentinel.conf");
            // A Sentinel rewrites its configuration file (what it learns of the others),
            // so each has one of its own.
            std::fs::write(
                &config,
                format!(
                    "sentinel monitor {MASTER_NAME} 127.0.0.1 {master} 2\n\
                     sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n\
                     sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}\n\
                     sentinel parallel-syncs {MASTER_NAME} 1\n",
                    master = data.master.port
                ),
            )
            .expect("write sentinel.conf");
            let args = [config.to_string_lossy().into_owned(), "--sentinel".into()];
            sentinels.push(retry(|| spawn(&data.server, &dir, &args)));
        }
        let deployment = Self { data, sentinels };
        let ready = wait_until(Duration::from_secs(30), || {
            deployment.sentinels.iter().all(|sentinel| {
                let count = |what: &str| match sentinel.command(&["SENTINEL", what, MASTER_NAME]) {
                    Ok(redis::Value::Array(items)) => items.len(),
                    _ => 0,
                };
                count("REPLICAS") == 1 && count("SENTINELS") == 2
            })
        });
        assert!(ready, "the Sentinels did not find the replica and each other");
        Some(deployment)
    }

    /// The Sentinels' URLs, as an application is given them.
    pub fn urls(&self) -> Vec<String> {
        self.sentinels.iter().map(Process::url).collect()
    }

    /// A store through the Sentinels, with the test timeouts of
    /// [`RedisServer::store`](super::RedisServer::store).
    pub fn builder(&self, prefix: &str) -> tower_jwt_revoke::store::RedisStoreBuilder {
        tower_jwt_revoke::store::RedisStore::builder()
            .sentinel(self.urls(), MASTER_NAME)
            .prefix(prefix)
            .connect_timeout(Duration::from_millis(300))
            .command_timeout(Duration::from_millis(300))
    }

    /// The port of the master as the first Sentinel that answers names it.
    pub fn master_port(&self) -> Option<u16> {
        self.sentinels
            .iter()
            .filter(|s| s.is_running())
            .find_map(|sentinel| {
                let reply = sentinel
                    .command(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME])
                    .ok()?;
                let (_host, port): (String, u16) = redis::from_redis_value(reply).ok()?;
                Some(port)
            })
    }

    /// Kills the master (SIGKILL) and waits until the Sentinels have promoted the
    /// replica and it serves writes as master. Answers how long that took.
    pub fn kill_master_and_wait_for_failover(&mut self, within: Duration) -> Duration {
        let killed = Instant::now();
        self.data.master.kill();
        let replica = self.data.replica.port;
        let promoted = wait_until(within, || {
            self.master_port() == Some(replica)
                && self.data.replica.info("replication", "role").as_deref() == Some("master")
        });
        assert!(
            promoted,
            "the Sentinels did not promote the replica within {within:?}"
        );
        killed.elapsed()
    }
}

/// Takes a master and a replica for this test, or returns from the test (skipped).
#[macro_export]
macro_rules! replicated_or_skip {
    () => {
        match $crate::support::sentinel::Replicated::start() {
            Some(replicated) => replicated,
            None => return,
        }
    };
}

/// Takes a Sentinel deployment for this test, or returns from the test (skipped).
#[macro_export]
macro_rules! sentinels_or_skip {
    () => {
        match $crate::support::sentinel::Sentinels::start() {
            Some(sentinels) => sentinels,
            None => return,
        }
    };
}
