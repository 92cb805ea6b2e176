//! A master, a replica and three Sentinels, no persistence: failovers to a replica that
//! missed the latest writes, a master paused past `down-after-milliseconds`, a master
//! restarted empty (its replica then copies the empty set), flushes.

use std::time::Duration;

use tower_jwt_revoke::store::{Acknowledgement, RedisStore, RedisStoreBuilder};

use super::super::faults::Fault;
use super::super::rng::Rng;
use super::{Topology, command, info, wait_until};
use crate::support;
use crate::support::sentinel::{Process, Sentinels};

/// How long an acknowledging store waits for the replica.
const ACK_TIMEOUT: Duration = Duration::from_millis(300);

pub struct Sentinel {
    deployment: Sentinels,
    /// The replica was stopped (SIGSTOP) for a fault: let it go on by then at the latest.
    stopped_replica: Option<u16>,
}

impl Sentinel {
    pub fn start() -> Option<Self> {
        Some(Self {
            deployment: Sentinels::start()?,
            stopped_replica: None,
        })
    }

    /// The data nodes as (master, replica), by what the Sentinels say.
    fn roles(&mut self) -> (&mut Process, &mut Process) {
        let master = self.deployment.master_port();
        let data = &mut self.deployment.data;
        if master == Some(data.replica.port) {
            (&mut data.replica, &mut data.master)
        } else {
            (&mut data.master, &mut data.replica)
        }
    }

    /// Waits until the Sentinels name `port` master and it says so itself.
    fn wait_for_promotion(&self, port: u16, within: Duration) -> Option<Duration> {
        let node = [&self.deployment.data.master, &self.deployment.data.replica]
            .into_iter()
            .find(|node| node.port == port)
            .expect("a data node");
        wait_until(within, || {
            self.deployment.master_port() == Some(port)
                && info(&node.client(), "replication", "role").as_deref() == Some("master")
        })
    }
}

impl Topology for Sentinel {
    fn name(&self) -> &'static str {
        "sentinel"
    }

    /// `failover-paused-master` (a master frozen, failed over, then resumed) only with
    /// `TOWER_JWT_REVOKE_NEMESIS_SPLIT_BRAIN=1`: until the Sentinels demote the resumed
    /// master (about 10 s), what is written there is lost when it resyncs. That is the
    /// split brain the README's Durability section states as a remaining window (with
    /// `min-replicas-to-write` as its remedy), so it would fail every run it is drawn in.
    fn faults(&self) -> &'static [Fault] {
        const WITHOUT_SPLIT_BRAIN: &[Fault] = &[
            Fault::FailoverMissedWrites,
            Fault::RestartEmpty,
            Fault::Pause,
            Fault::FlushAll,
            Fault::MirrorRestart,
        ];
        const WITH_SPLIT_BRAIN: &[Fault] = &[
            Fault::FailoverMissedWrites,
            Fault::FailoverPausedMaster,
            Fault::RestartEmpty,
            Fault::Pause,
            Fault::FlushAll,
            Fault::MirrorRestart,
        ];
        if std::env::var("TOWER_JWT_REVOKE_NEMESIS_SPLIT_BRAIN").is_ok_and(|value| value == "1") {
            WITH_SPLIT_BRAIN
        } else {
            WITHOUT_SPLIT_BRAIN
        }
    }

    fn builder(&self, prefix: &str) -> RedisStoreBuilder {
        self.deployment.builder(prefix)
    }

    fn acknowledging(&self, prefix: &str) -> Option<RedisStore> {
        let store = self
            .deployment
            .builder(prefix)
            .acknowledge(Acknowledgement::replicas(1).with_timeout(ACK_TIMEOUT))
            .build()
            .expect("an acknowledging store");
        Some(store)
    }

    fn prepare(&mut self, fault: Fault, _rng: &mut Rng) {
        if fault == Fault::FailoverMissedWrites {
            // The replica stopped first, then its link cut: what the master writes from
            // now on reaches neither the replica's socket nor, once it runs again, the
            // replica (the master it would reconnect to is killed by then).
            let (master, replica) = self.roles();
            let pid = replica.pid().expect("a running replica");
            let replica_port = replica.port;
            support::signal(pid, "STOP");
            command(&master.client(), &["CLIENT", "KILL", "TYPE", "replica"]).expect("CLIENT KILL");
            self.stopped_replica = Some(replica_port);
        }
    }

    fn inject(&mut self, fault: Fault, rng: &mut Rng) -> String {
        match fault {
            Fault::FailoverMissedWrites => {
                let (master, replica) = self.roles();
                master.kill();
                support::signal(replica.pid().expect("a stopped replica"), "CONT");
                let port = replica.port;
                self.stopped_replica = None;
                let took = self.wait_for_promotion(port, Duration::from_secs(30));
                let took = took.expect("the Sentinels promoted the replica within 30 s");
                format!("master killed after writes its replica missed; replica promoted in {took:?}")
            }
            Fault::FailoverPausedMaster => {
                let (master, replica) = self.roles();
                let pid = master.pid().expect("a running master");
                let port = replica.port;
                support::signal(pid, "STOP");
                let took = self.wait_for_promotion(port, Duration::from_secs(30));
                support::signal(pid, "CONT");
                let took = took.expect("the Sentinels promoted the replica within 30 s");
                format!("master stopped; replica promoted in {took:?}; old master let go on")
            }
            Fault::RestartEmpty => {
                let (master, _) = self.roles();
                master.kill();
                master.restart();
                "master killed, started again empty (its replica copies it)".into()
            }
            Fault::Pause => {
                let (master, _) = self.roles();
                let pid = master.pid().expect("a running master");
                let paused = rng.millis(200, 700);
                support::signal(pid, "STOP");
                std::thread::sleep(paused);
                support::signal(pid, "CONT");
                format!("master SIGSTOP for {paused:?} (below down-after)")
            }
            Fault::FlushAll => {
                let (master, _) = self.roles();
                command(&master.client(), &["FLUSHALL"]).expect("FLUSHALL");
                "FLUSHALL on the master".into()
            }
            other => unreachable!("{other} is not a Sentinel fault"),
        }
    }

    fn answers(&self) -> bool {
        let Some(port) = self.deployment.master_port() else {
            return false;
        };
        let data = &self.deployment.data;
        [&data.master, &data.replica]
            .into_iter()
            .find(|node| node.port == port && node.is_running())
            .is_some_and(|node| info(&node.client(), "replication", "role").as_deref() == Some("master"))
    }

    fn heal(&mut self) {
        if let Some(port) = self.stopped_replica.take() {
            let data = &self.deployment.data;
            let replica = [&data.master, &data.replica]
                .into_iter()
                .find(|node| node.port == port);
            if let Some(pid) = replica.and_then(Process::pid) {
                support::signal(pid, "CONT");
            }
        }
        let master = wait_until(Duration::from_secs(30), || {
            self.deployment.master_port().is_some()
        })
        .and_then(|_| self.deployment.master_port())
        .expect("the Sentinels name a master");
        let data = &mut self.deployment.data;
        let replica = if data.master.port == master {
            &mut data.replica
        } else {
            &mut data.master
        };
        if !replica.is_running() {
            // Started again empty; the Sentinels make it a replica of the new master.
            replica.restart();
        }
        let replica = &*replica;
        let mut asked = std::time::Instant::now();
        let in_step = wait_until(Duration::from_secs(30), || {
            // What the Sentinels do within a few seconds; done by hand when they have not
            // (as an operator would), so that the next round finds a replica.
            if asked.elapsed() > Duration::from_secs(8)
                && info(&replica.client(), "replication", "role").as_deref() == Some("master")
            {
                let _ = command(
                    &replica.client(),
                    &["REPLICAOF", "127.0.0.1", &master.to_string()],
                );
                asked = std::time::Instant::now();
            }
            info(&replica.client(), "replication", "master_link_status").as_deref() == Some("up")
        });
        assert!(
            in_step.is_some(),
            "the replica :{} did not get in step with the master :{master} within 30 s (role {:?})",
            replica.port,
            info(&replica.client(), "replication", "role"),
        );
    }
}
