//! What the test reads from the cluster's nodes: statistics, errors, the slot map.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Node, RedisCluster};

impl RedisCluster {
    /// `INFO <section>` of every running node, by port.
    pub fn info(&self, section: &str) -> BTreeMap<u16, String> {
        self.running()
            .map(|node| (node.port, node_command(node, &["INFO", section])))
            .collect()
    }

    /// Resets the statistics (`INFO commandstats`, `errorstats`) of every running node,
    /// once it has checked that no `CROSSSLOT` is among the errors it clears.
    pub fn reset_stats(&self) {
        let errors = self.crossslot_errors();
        assert!(errors.is_empty(), "CROSSSLOT seen before a reset: {errors:?}");
        for node in self.running() {
            node_command(node, &["CONFIG", "RESETSTAT"]);
        }
    }

    /// Calls per command, per node, from `INFO commandstats` (by port).
    pub fn command_calls(&self) -> BTreeMap<u16, BTreeMap<String, u64>> {
        self.info("commandstats")
            .into_iter()
            .map(|(port, stats)| {
                let calls = stats
                    .lines()
                    .filter_map(|line| line.strip_prefix("cmdstat_"))
                    .filter_map(|line| {
                        let (name, rest) = line.split_once(':')?;
                        let count = rest
                            .split(',')
                            .find_map(|kv| kv.strip_prefix("calls="))?
                            .parse()
                            .ok()?;
                        Some((name.to_owned(), count))
                    })
                    .collect();
                (port, calls)
            })
            .collect()
    }

    /// Every `CROSSSLOT` any node has seen: its error statistics, and its log.
    pub fn crossslot_errors(&self) -> Vec<String> {
        let mut found = Vec::new();
        for (port, stats) in self.info("errorstats") {
            found.extend(
                stats
                    .lines()
                    .filter(|line| line.contains("CROSSSLOT"))
                    .map(|line| format!("{port}: {line}")),
            );
        }
        for node in &self.nodes {
            let log = std::fs::read_to_string(node.log()).unwrap_or_default();
            found.extend(
                log.lines()
                    .filter(|line| line.contains("CROSSSLOT"))
                    .map(|line| format!("{} log: {line}", node.port)),
            );
        }
        found
    }

    /// The running masters, as (index in `nodes`, slot ranges served).
    pub fn masters(&self) -> Vec<(usize, Vec<(u16, u16)>)> {
        let Some(view) = self
            .running()
            .next()
            .map(|node| node_command(node, &["CLUSTER", "NODES"]))
        else {
            return Vec::new();
        };
        let mut masters = Vec::new();
        for line in view.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 8 || !fields[2].contains("master") || fields[2].contains("fail") {
                continue;
            }
            let port: u16 = fields[1]
                .split(['@', ':'])
                .nth(1)
                .and_then(|port| port.parse().ok())
                .unwrap_or(0);
            let Some(index) = self.nodes.iter().position(|node| node.port == port) else {
                continue;
            };
            let ranges = fields[8..]
                .iter()
                .filter(|range| !range.starts_with('['))
                .filter_map(|range| match range.split_once('-') {
                    Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                    None => range.parse().ok().map(|slot| (slot, slot)),
                })
                .collect();
            masters.push((index, ranges));
        }
        masters
    }

    /// The index of the master serving `slot` now.
    pub fn master_of(&self, slot: u16) -> Option<usize> {
        self.masters()
            .into_iter()
            .find(|(_, ranges)| ranges.iter().any(|(a, b)| (*a..=*b).contains(&slot)))
            .map(|(index, _)| index)
    }
}

/// Runs one command on one node (not through the cluster) and renders its answer as
/// text: a status, a bulk string, or an array's items one per line.
pub fn node_command(node: &Node, args: &[&str]) -> String {
    let Ok(mut connection) = node.client().get_connection_with_timeout(Duration::from_secs(2)) else {
        return String::new();
    };
    let _ = connection.set_read_timeout(Some(Duration::from_secs(10)));
    let mut command = redis::cmd(args[0]);
    for arg in &args[1..] {
        command.arg(*arg);
    }
    match command.query::<redis::Value>(&mut connection) {
        Ok(value) => render(&value),
        Err(error) => format!("error: {error}"),
    }
}

fn render(value: &redis::Value) -> String {
    match value {
        redis::Value::BulkString(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        redis::Value::SimpleString(text) => text.clone(),
        redis::Value::VerbatimString { text, .. } => text.clone(),
        redis::Value::Int(n) => n.to_string(),
        redis::Value::Array(items) | redis::Value::Set(items) => {
            items.iter().map(render).collect::<Vec<_>>().join("\n")
        }
        other => format!("{other:?}"),
    }
}
