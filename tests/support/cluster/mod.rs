//! Test support: a private Redis Cluster per test — 3 masters and 3 replicas, real
//! `redis-server` processes on free loopback ports, joined with `redis-cli --cluster
//! create`, killed on drop.
//!
//! Binaries: `REDIS_SERVER_BIN` (else `redis-server` on `PATH`) and `REDIS_CLI_BIN`
//! (else `redis-cli` beside the server binary, else on `PATH`). Without them the test
//! says why and is skipped, unless `TOWER_JWT_REVOKE_REQUIRE_REDIS=1`, where it fails.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{binary, ping, serves, skip};

mod inspect;

pub use self::inspect::node_command;

/// How long a node may be unreachable before the cluster fails it over. Short, so the
/// failover tests are quick; long enough for a loaded CI machine not to flap.
pub const NODE_TIMEOUT_MS: u64 = 1500;

/// One `redis-server` of the cluster.
pub struct Node {
    pub port: u16,
    bus_port: u16,
    child: Option<Child>,
    /// Stopped with SIGSTOP: its sockets stay open, and it answers nothing.
    frozen: bool,
    dir: PathBuf,
}

impl Node {
    /// Its URL, as a seed or for a direct connection.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// A plain (non-cluster) client of this one node.
    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).expect("valid url")
    }

    /// Whether the process is running (not killed, nor frozen, by the test).
    pub fn is_running(&self) -> bool {
        self.child.is_some() && !self.frozen
    }

    fn log(&self) -> PathBuf {
        self.dir.join("redis.log")
    }
}

/// A local Redis Cluster for one test.
pub struct RedisCluster {
    pub nodes: Vec<Node>,
    server: PathBuf,
    cli: PathBuf,
    append_only: bool,
    _dir: tempfile::TempDir,
}

fn cli_binary(server: &Path) -> Option<PathBuf> {
    if let Ok(path) = std::env::var("REDIS_CLI_BIN") {
        return Some(PathBuf::from(path));
    }
    let beside = server.with_file_name("redis-cli");
    if beside.is_file() {
        return Some(beside);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("redis-cli"))
        .find(|candidate| candidate.is_file())
}

/// Two distinct free ports (client and cluster bus), each probed by binding it.
fn free_ports(taken: &[u16]) -> (u16, u16) {
    loop {
        let a = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let b = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let (pa, pb) = (a.local_addr().unwrap().port(), b.local_addr().unwrap().port());
        if !taken.contains(&pa) && !taken.contains(&pb) {
            return (pa, pb);
        }
    }
}

impl RedisCluster {
    /// Starts six nodes and joins them into a cluster of 3 masters with a replica each.
    /// `None` (after saying so loudly) when the binaries are missing.
    pub fn start() -> Option<Self> {
        Self::start_with(false)
    }

    /// [`start`](Self::start), with every node persisting each write (AOF, fsync
    /// always) so that a node restarted keeps them.
    pub fn start_with(append_only: bool) -> Option<Self> {
        let Some(server) = binary() else {
            skip("no redis-server binary found (REDIS_SERVER_BIN unset, none on PATH)");
            return None;
        };
        let Some(cli) = cli_binary(&server) else {
            skip("no redis-cli binary found (REDIS_CLI_BIN unset, none beside redis-server or on PATH)");
            return None;
        };
        for _ in 0..3 {
            if let Some(cluster) = Self::try_start(&server, &cli, append_only) {
                return Some(cluster);
            }
        }
        panic!("the Redis cluster did not form after 3 attempts");
    }

    fn try_start(server: &Path, cli: &Path, append_only: bool) -> Option<Self> {
        let dir = tempfile::tempdir().expect("temp dir for the cluster");
        let mut nodes: Vec<Node> = Vec::new();
        let mut taken = Vec::new();
        for n in 0..6 {
            let (port, bus_port) = free_ports(&taken);
            taken.extend([port, bus_port]);
            let node_dir = dir.path().join(format!("node{n}"));
            std::fs::create_dir_all(&node_dir).expect("node dir");
            nodes.push(Node {
                port,
                bus_port,
                child: None,
                frozen: false,
                dir: node_dir,
            });
        }
        let mut cluster = Self {
            nodes,
            server: server.to_owned(),
            cli: cli.to_owned(),
            append_only,
            _dir: dir,
        };
        for index in 0..cluster.nodes.len() {
            if !cluster.spawn(index) {
                return None; // a port was taken meanwhile: try again on others
            }
        }
        let addresses: Vec<String> = cluster
            .nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port))
            .collect();
        let created = Command::new(cli)
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run redis-cli --cluster create");
        if !created.success() {
            return None;
        }
        cluster.wait_until_ok(Duration::from_secs(20)).then_some(cluster)
    }

    fn spawn(&mut self, index: usize) -> bool {
        let persistence: &[&str] = if self.append_only {
            &["--appendonly", "yes", "--appendfsync", "always"]
        } else {
            &["--appendonly", "no"]
        };
        let node = &mut self.nodes[index];
        let mut child = Command::new(&self.server)
            .args(["--bind", "127.0.0.1", "--port", &node.port.to_string()])
            .args([
                "--cluster-enabled",
                "yes",
                "--cluster-port",
                &node.bus_port.to_string(),
            ])
            .args(["--cluster-node-timeout", &NODE_TIMEOUT_MS.to_string()])
            .args(["--cluster-config-file", "nodes.conf"])
            .args(["--save", "", "--daemonize", "no"])
            .args(persistence)
            .args(["--loglevel", "notice"])
            .arg("--dir")
            .arg(&node.dir)
            .arg("--logfile")
            .arg(node.log())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_exited)) = child.try_wait() {
                return false;
            }
            if ping(node.port) && serves(node.port, child.id()) {
                node.child = Some(child);
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// Seed node URLs, as an application is given them.
    pub fn seeds(&self) -> Vec<String> {
        self.nodes.iter().map(Node::url).collect()
    }

    /// `REDIS_CLUSTER_NODES` form: the seeds, comma-separated.
    pub fn seeds_env(&self) -> String {
        self.seeds().join(",")
    }

    /// A store on this cluster under `prefix`, with the test timeouts of
    /// [`RedisServer::store`](super::RedisServer::store).
    pub fn store(&self, prefix: &str) -> tower_jwt_revoke::store::RedisStore {
        self.builder(prefix).build().expect("a valid store configuration")
    }

    /// The builder of [`store`](Self::store), for tests that configure more.
    pub fn builder(&self, prefix: &str) -> tower_jwt_revoke::store::RedisStoreBuilder {
        tower_jwt_revoke::store::RedisStore::builder()
            .cluster_nodes(self.seeds())
            .prefix(prefix)
            .connect_timeout(Duration::from_millis(300))
            .command_timeout(Duration::from_millis(300))
    }

    /// Waits until every replica has every write its master acknowledged, so that a
    /// failover loses nothing (Redis replicates asynchronously: this is the test making
    /// sure, not the crate).
    pub fn wait_for_replication(&self) {
        for node in self.running() {
            let role = node_command(node, &["ROLE"]);
            if role.starts_with("master") {
                // `WAIT 1 5000`: until one replica acknowledged this master's writes.
                node_command(node, &["WAIT", "1", "5000"]);
            }
        }
    }

    /// Moves `slots` hash slots from master `from` to master `to` (indexes in `nodes`)
    /// with `redis-cli --cluster reshard`, key by key (`MIGRATE`), as an operator would.
    /// Blocks until done. redis-cli refuses to start while the nodes do not agree on the
    /// configuration yet (just after another reshard): it is tried again then.
    pub fn reshard(&self, from: usize, to: usize, slots: u32) -> Result<(), String> {
        let id = |index: usize| node_command(&self.nodes[index], &["CLUSTER", "MYID"]);
        let mut output = String::new();
        for _ in 0..20 {
            let run = Command::new(&self.cli)
                .arg("--cluster")
                .arg("reshard")
                .arg(format!("127.0.0.1:{}", self.nodes[from].port))
                .args(["--cluster-from", &id(from), "--cluster-to", &id(to)])
                .args(["--cluster-slots", &slots.to_string(), "--cluster-yes"])
                .args(["--cluster-pipeline", "10"])
                .output()
                .map_err(|error| error.to_string())?;
            if run.status.success() {
                return Ok(());
            }
            output = String::from_utf8_lossy(&run.stdout).into_owned();
            if !output.contains("don't agree") {
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        Err(output
            .lines()
            .filter(|line| line.contains("ERR"))
            .collect::<Vec<_>>()
            .join("\n"))
    }

    /// Starts node `index` again, on its ports and with its directory (its cluster
    /// configuration, and its data when persisted).
    pub fn restart(&mut self, index: usize) {
        assert!(
            self.spawn(index),
            "redis-server {index} did not restart on its port"
        );
    }

    /// Kills node `index` (SIGKILL).
    pub fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.nodes[index].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes node `index` (SIGSTOP): unlike a killed process, whose sockets the
    /// kernel resets, it keeps every connection open and answers nothing, as a hung
    /// server or a network partition does. Drop kills it all the same.
    pub fn freeze(&mut self, index: usize) {
        let node = &mut self.nodes[index];
        let pid = node.child.as_ref().expect("a running node").id().to_string();
        let stopped = Command::new("kill").args(["-STOP", &pid]).status();
        assert!(stopped.is_ok_and(|status| status.success()), "SIGSTOP {pid}");
        node.frozen = true;
    }

    /// The last `lines` lines of node `index`'s log, for a failure message.
    pub fn log_tail(&self, index: usize, lines: usize) -> String {
        let log = std::fs::read_to_string(self.nodes[index].log()).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Lets a frozen node `index` run again (SIGCONT).
    pub fn thaw(&mut self, index: usize) {
        let node = &mut self.nodes[index];
        let pid = node.child.as_ref().expect("a started node").id().to_string();
        let resumed = Command::new("kill").args(["-CONT", &pid]).status();
        assert!(resumed.is_ok_and(|status| status.success()), "SIGCONT {pid}");
        node.frozen = false;
    }

    /// Waits until the running nodes agree the cluster is whole again (`cluster_state:ok`
    /// everywhere, every slot served by a running master, as the first running node sees
    /// it).
    pub fn wait_until_ok(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            let all_ok = self
                .running()
                .all(|node| node_command(node, &["CLUSTER", "INFO"]).contains("cluster_state:ok"));
            // Served by a master that runs: a killed one is still named master (without
            // `fail`) until the others have noticed.
            let covered: u32 = self
                .masters()
                .iter()
                .filter(|(index, _)| self.nodes[*index].is_running())
                .flat_map(|(_, ranges)| ranges.iter().map(|(a, b)| u32::from(b - a) + 1))
                .sum();
            if all_ok && covered == 16384 {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    fn running(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|node| node.is_running())
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Takes a cluster for this test, or returns from the test (skipped).
#[macro_export]
macro_rules! cluster_or_skip {
    () => {
        match $crate::support::cluster::RedisCluster::start() {
            Some(cluster) => cluster,
            None => return,
        }
    };
}
