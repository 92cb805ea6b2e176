//! The faults, and the schedule that picks them: every kind a topology supports once per
//! cycle, in a seeded order, with seeded timings.

use std::fmt;

use super::rng::Rng;

/// One fault, as the schedule names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    /// Redis killed (SIGKILL) and started again at once, without persistence: empty.
    RestartEmpty,
    /// Redis down for a while (the mirrors go stale), then started again empty.
    DownThenEmpty,
    /// `appendonly yes` switched on, then Redis killed and started again from its AOF.
    RestartAof,
    /// Redis stopped (SIGSTOP) for a while, then let go on (SIGCONT).
    Pause,
    /// `FLUSHALL` (on a cluster: on one master, and so its replica).
    FlushAll,
    /// `FLUSHDB`.
    FlushDb,
    /// One mirror dropped and a new one started in its place.
    MirrorRestart,
    /// Sentinel: the master killed right after writes its replica never received (the
    /// replica stopped and its link cut first); the Sentinels promote the replica.
    FailoverMissedWrites,
    /// Sentinel: the master stopped (SIGSTOP) past `down-after-milliseconds`; the
    /// Sentinels promote the replica, the old master comes back as a replica.
    FailoverPausedMaster,
    /// Cluster: a master killed; its replica promoted.
    ClusterMasterKilled,
    /// Cluster: a master killed right after writes its replica never received.
    ClusterMasterKilledMissedWrites,
}

impl Fault {
    pub fn name(self) -> &'static str {
        match self {
            Self::RestartEmpty => "restart-empty",
            Self::DownThenEmpty => "down-then-empty",
            Self::RestartAof => "restart-aof",
            Self::Pause => "sigstop",
            Self::FlushAll => "flushall",
            Self::FlushDb => "flushdb",
            Self::MirrorRestart => "mirror-restart",
            Self::FailoverMissedWrites => "failover-missed-writes",
            Self::FailoverPausedMaster => "failover-paused-master",
            Self::ClusterMasterKilled => "cluster-master-killed",
            Self::ClusterMasterKilledMissedWrites => "cluster-master-killed-missed-writes",
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The faults of a run, in order: every kind once per cycle, each cycle shuffled.
pub struct Schedule {
    kinds: Vec<Fault>,
    cycle: Vec<Fault>,
}

impl Schedule {
    pub fn new(kinds: &[Fault]) -> Self {
        Self {
            kinds: kinds.to_vec(),
            cycle: Vec::new(),
        }
    }

    pub fn next(&mut self, rng: &mut Rng) -> Fault {
        if self.cycle.is_empty() {
            self.cycle = self.kinds.clone();
            rng.shuffle(&mut self.cycle);
        }
        self.cycle.pop().expect("a topology has faults")
    }
}
