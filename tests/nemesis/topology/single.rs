//! One `redis-server`, without persistence unless a fault turns the AOF on: restarts,
//! pauses, flushes.

use std::time::Duration;

use tower_jwt_revoke::store::RedisStoreBuilder;

use super::super::faults::Fault;
use super::super::rng::Rng;
use super::{Topology, command, info, wait_until};
use crate::support::{self, RedisServer};

pub struct Single {
    server: RedisServer,
}

impl Single {
    pub fn start() -> Option<Self> {
        Some(Self {
            server: RedisServer::start_private(false)?,
        })
    }

    fn kill_and_restart(&mut self, down: Duration, append_only: bool) {
        self.server.kill();
        std::thread::sleep(down);
        self.server.restart_with(append_only);
    }
}

impl Topology for Single {
    fn name(&self) -> &'static str {
        "single"
    }

    fn faults(&self) -> &'static [Fault] {
        &[
            Fault::RestartEmpty,
            Fault::DownThenEmpty,
            Fault::RestartAof,
            Fault::Pause,
            Fault::FlushAll,
            Fault::FlushDb,
            Fault::MirrorRestart,
        ]
    }

    fn builder(&self, prefix: &str) -> RedisStoreBuilder {
        self.server.builder(prefix)
    }

    fn prepare(&mut self, fault: Fault, _rng: &mut Rng) {
        if fault == Fault::RestartAof {
            // Turned on at runtime, Redis writes its data into a new AOF first; once
            // that is done, every write is appended (and fsynced) before it answers.
            let client = self.server.client();
            for setting in [["appendfsync", "always"], ["appendonly", "yes"]] {
                command(&client, &["CONFIG", "SET", setting[0], setting[1]]).expect("CONFIG SET");
            }
            let written = wait_until(Duration::from_secs(20), || {
                info(&client, "persistence", "aof_enabled").as_deref() == Some("1")
                    && info(&client, "persistence", "aof_rewrite_in_progress").as_deref() == Some("0")
                    && info(&client, "persistence", "aof_rewrite_scheduled").as_deref() == Some("0")
            });
            assert!(written.is_some(), "the AOF was not written within 20 s");
        }
    }

    fn inject(&mut self, fault: Fault, rng: &mut Rng) -> String {
        match fault {
            Fault::RestartEmpty => {
                self.kill_and_restart(Duration::ZERO, false);
                "killed, started again empty".into()
            }
            Fault::DownThenEmpty => {
                let down = rng.millis(1000, 2500);
                self.kill_and_restart(down, false);
                format!("killed, down {down:?}, started again empty")
            }
            Fault::RestartAof => {
                self.kill_and_restart(Duration::ZERO, true);
                "killed, started again from its AOF".into()
            }
            Fault::Pause => {
                let pid = self.server.pid().expect("a running server");
                let paused = rng.millis(300, 2500);
                support::signal(pid, "STOP");
                std::thread::sleep(paused);
                support::signal(pid, "CONT");
                format!("SIGSTOP for {paused:?}")
            }
            Fault::FlushAll | Fault::FlushDb => {
                let name = if fault == Fault::FlushAll {
                    "FLUSHALL"
                } else {
                    "FLUSHDB"
                };
                command(&self.server.client(), &[name]).expect("flush");
                name.into()
            }
            other => unreachable!("{other} is not a single-server fault"),
        }
    }

    fn answers(&self) -> bool {
        command(&self.server.client(), &["PING"]).is_ok_and(|reply| reply == "PONG")
    }

    fn heal(&mut self) {}
}
