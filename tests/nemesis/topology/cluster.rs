//! A Redis Cluster of 3 masters and 3 replicas, no persistence: a master killed (its
//! replica promoted), killed right after writes its replica never received, flushed.

use std::time::Duration;

use tower_jwt_revoke::store::{RedisStore, RedisStoreBuilder};

use super::super::faults::Fault;
use super::super::rng::Rng;
use super::{Topology, wait_until};
use crate::support::cluster::{RedisCluster, node_command};

pub struct Cluster {
    cluster: RedisCluster,
    /// The master the coming fault hits (an index in `nodes`).
    victim: Option<usize>,
    /// Its replica, stopped (SIGSTOP) until the master is killed.
    frozen_replica: Option<usize>,
    /// Killed, to start again when healing.
    killed: Option<usize>,
}

impl Cluster {
    pub fn start() -> Option<Self> {
        let cluster = RedisCluster::start()?;
        replicas_in_step(&cluster);
        Some(Self {
            cluster,
            victim: None,
            frozen_replica: None,
            killed: None,
        })
    }

    /// The index of the replica of master `master`.
    fn replica_of(&self, master: usize) -> Option<usize> {
        let id = node_command(&self.cluster.nodes[master], &["CLUSTER", "MYID"]);
        let view = node_command(&self.cluster.nodes[master], &["CLUSTER", "NODES"]);
        view.lines().find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 4 || !fields[2].contains("slave") || fields[3] != id {
                return None;
            }
            let port: u16 = fields[1].split([':', '@']).nth(1)?.parse().ok()?;
            self.cluster.nodes.iter().position(|node| node.port == port)
        })
    }

    /// The buckets of `store` whose slot master `master` serves.
    fn buckets_of(&self, master: usize, store: &RedisStore) -> Vec<u32> {
        (0..store.buckets())
            .filter(|&bucket| {
                let slot = node_command(
                    &self.cluster.nodes[master],
                    &["CLUSTER", "KEYSLOT", &store.bucket_tag(bucket)],
                );
                slot.parse().ok().and_then(|slot| self.cluster.master_of(slot)) == Some(master)
            })
            .collect()
    }
}

/// Waits until every replica has synced with its master. A replica's first sync waits
/// for Redis's diskless-sync delay (5 s): a master killed before it ends has a replica
/// that holds nothing and never takes over.
fn replicas_in_step(cluster: &RedisCluster) {
    let in_step = wait_until(Duration::from_secs(30), || {
        cluster.nodes.iter().filter(|node| node.is_running()).all(|node| {
            let replication = node_command(node, &["INFO", "replication"]);
            replication.contains("role:master") || replication.contains("master_link_status:up")
        })
    });
    assert!(in_step.is_some(), "the replicas did not sync within 30 s");
    cluster.wait_for_replication();
}

impl Topology for Cluster {
    fn name(&self) -> &'static str {
        "cluster"
    }

    fn faults(&self) -> &'static [Fault] {
        &[
            Fault::ClusterMasterKilled,
            Fault::ClusterMasterKilledMissedWrites,
            Fault::FlushAll,
            Fault::MirrorRestart,
        ]
    }

    fn builder(&self, prefix: &str) -> RedisStoreBuilder {
        self.cluster.builder(prefix)
    }

    fn prepare(&mut self, fault: Fault, rng: &mut Rng) {
        if fault == Fault::MirrorRestart {
            return;
        }
        let masters: Vec<usize> = self
            .cluster
            .masters()
            .into_iter()
            .map(|(index, _)| index)
            .collect();
        let victim = *rng.pick(&masters);
        self.victim = Some(victim);
        if fault == Fault::ClusterMasterKilledMissedWrites {
            let replica = self.replica_of(victim).expect("every master has a replica");
            self.cluster.freeze(replica);
            node_command(
                &self.cluster.nodes[victim],
                &["CLIENT", "KILL", "TYPE", "replica"],
            );
            self.frozen_replica = Some(replica);
        }
    }

    fn at_risk(&self, store: &RedisStore) -> Option<Vec<u32>> {
        Some(self.buckets_of(self.victim?, store))
    }

    fn inject(&mut self, fault: Fault, _rng: &mut Rng) -> String {
        let victim = self.victim.take().expect("prepared");
        let port = self.cluster.nodes[victim].port;
        match fault {
            Fault::ClusterMasterKilled | Fault::ClusterMasterKilledMissedWrites => {
                self.cluster.kill(victim);
                self.killed = Some(victim);
                if let Some(replica) = self.frozen_replica.take() {
                    self.cluster.thaw(replica);
                }
                let took = wait_until(Duration::from_secs(30), || {
                    self.cluster.wait_until_ok(Duration::from_millis(20))
                });
                let took = took.unwrap_or_else(|| {
                    let view = node_command(&self.cluster.nodes[(victim + 1) % 6], &["CLUSTER", "NODES"]);
                    let logs: Vec<String> = (0..6)
                        .filter(|&index| index != victim)
                        .map(|index| {
                            format!(
                                "node :{}:\n{}",
                                self.cluster.nodes[index].port,
                                self.cluster.log_tail(index, 15)
                            )
                        })
                        .collect();
                    panic!(
                        "the cluster did not promote the replica of :{port} within 30 s:\n{view}\n{}",
                        logs.join("\n")
                    )
                });
                format!("master :{port} killed; replica promoted in {took:?}")
            }
            Fault::FlushAll => {
                node_command(&self.cluster.nodes[victim], &["FLUSHALL"]);
                format!("FLUSHALL on master :{port}")
            }
            other => unreachable!("{other} is not a cluster fault"),
        }
    }

    fn answers(&self) -> bool {
        self.cluster.wait_until_ok(Duration::from_millis(20))
    }

    fn heal(&mut self) {
        if let Some(replica) = self.frozen_replica.take() {
            self.cluster.thaw(replica);
        }
        if let Some(killed) = self.killed.take() {
            // Back without its data, as a replica of the one promoted in its place.
            self.cluster.restart(killed);
        }
        assert!(
            self.cluster.wait_until_ok(Duration::from_secs(30)),
            "the cluster did not become whole again within 30 s"
        );
        replicas_in_step(&self.cluster);
    }
}
