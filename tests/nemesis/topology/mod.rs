//! The deployments the nemesis runs against, and how each injects its faults. Every
//! method blocks (processes are killed, started, waited for): the runner calls them
//! from `block_in_place`.

pub mod cluster;
pub mod sentinel;
pub mod single;

use std::time::{Duration, Instant};

use tower_jwt_revoke::store::{RedisStore, RedisStoreBuilder};

use super::faults::Fault;
use super::rng::Rng;

/// A Redis deployment under test.
pub trait Topology: Send {
    fn name(&self) -> &'static str;

    /// The faults it can be given.
    fn faults(&self) -> &'static [Fault];

    /// A store on it under `prefix`, with the test timeouts.
    fn builder(&self, prefix: &str) -> RedisStoreBuilder;

    /// A store whose revocations a replica must confirm (`Acknowledgement`), where the
    /// deployment has replicas the store can wait for.
    fn acknowledging(&self, prefix: &str) -> Option<RedisStore> {
        let _ = prefix;
        None
    }

    /// Readies `fault`, before the revocations made right before it (a replica cut off,
    /// a master chosen).
    fn prepare(&mut self, fault: Fault, rng: &mut Rng);

    /// The buckets of `store` the prepared fault puts at risk when only some are (a
    /// cluster master's), so that the revocations before it are made there.
    fn at_risk(&self, store: &RedisStore) -> Option<Vec<u32>> {
        let _ = store;
        None
    }

    /// Injects `fault`; answers what it did, in words.
    fn inject(&mut self, fault: Fault, rng: &mut Rng) -> String;

    /// Whether every master answers now.
    fn answers(&self) -> bool;

    /// Makes the deployment whole for the next round (a killed process started again,
    /// replicas in step).
    fn heal(&mut self);
}

/// Polls `done` every 50 ms for up to `within`; answers how long it took.
pub fn wait_until(within: Duration, mut done: impl FnMut() -> bool) -> Option<Duration> {
    let started = Instant::now();
    loop {
        if done() {
            return Some(started.elapsed());
        }
        if started.elapsed() >= within {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs one command on the server behind `client` and renders its answer as text.
pub fn command(client: &redis::Client, args: &[&str]) -> Result<String, String> {
    let mut connection = client
        .get_connection_with_timeout(Duration::from_secs(1))
        .map_err(|error| error.to_string())?;
    connection
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|error| error.to_string())?;
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    match cmd.query::<redis::Value>(&mut connection) {
        Ok(redis::Value::BulkString(bytes)) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        Ok(redis::Value::SimpleString(text)) => Ok(text),
        Ok(redis::Value::VerbatimString { text, .. }) => Ok(text),
        Ok(other) => Ok(format!("{other:?}")),
        Err(error) => Err(error.to_string()),
    }
}

/// One field of `INFO <section>` of the server behind `client`.
pub fn info(client: &redis::Client, section: &str, field: &str) -> Option<String> {
    let text = command(client, &["INFO", section]).ok()?;
    let prefix = format!("{field}:");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map(|value| value.trim().to_owned())
}
