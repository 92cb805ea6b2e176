//! The coordinator's side of a worker process: starting it, its pipes, reading its
//! reports (see `worker.rs` for the protocol).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::worker::WORKER_ENV;

/// One worker process, and its pipes.
pub struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    pub mirrors: usize,
    /// From its `ready` line: load time (max, median) and RSS per mirror.
    pub load_ms: (u64, u64),
    pub rss_per_mirror: u64,
}

impl Worker {
    pub fn start(target: &str, prefix: &str, mirrors: usize, live: u64, first: bool) -> Self {
        let mut child = Command::new(std::env::current_exe().expect("this bench's path"))
            .env(
                WORKER_ENV,
                format!("{target}\t{prefix}\t{mirrors}\t{live}\t{}", u8::from(first)),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start a worker");
        let stdin = child.stdin.take().expect("stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("worker ready");
        let words: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|word| word.parse().ok())
            .collect();
        assert_eq!(words.len(), 4, "worker said {line:?}");
        Self {
            child,
            stdin,
            stdout,
            mirrors,
            load_ms: (words[1], words[2]),
            rss_per_mirror: words[3],
        }
    }

    pub fn send(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").expect("worker stdin");
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Each probe's (mirrors that refused it, last refusal ns), summed over the workers;
/// the first worker's check times.
pub type Seen = HashMap<u64, (usize, u64)>;

pub fn collect(workers: &Arc<Mutex<Vec<Worker>>>) -> (Seen, Option<(u64, u64, u64)>) {
    let mut seen: Seen = HashMap::new();
    let mut checks = None;
    let mut health = [0u64; 3];
    for worker in workers.lock().unwrap().iter_mut() {
        worker.send("report");
        loop {
            let mut line = String::new();
            if worker.stdout.read_line(&mut line).expect("worker report") == 0 {
                panic!("a worker stopped");
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.first().copied() {
                Some("probe") => {
                    let (id, count, last): (u64, usize, u64) = (
                        words[1].parse().unwrap(),
                        words[2].parse().unwrap(),
                        words[3].parse().unwrap(),
                    );
                    let entry = seen.entry(id).or_default();
                    entry.0 += count;
                    entry.1 = entry.1.max(last);
                }
                Some("health") => {
                    for (at, word) in words[1..].iter().enumerate() {
                        health[at] += word.parse::<u64>().unwrap_or(0);
                    }
                }
                Some("checks") => {
                    checks = Some((
                        words[2].parse().unwrap(),
                        words[3].parse().unwrap(),
                        words[4].parse().unwrap(),
                    ));
                }
                _ => break,
            }
        }
    }
    if health.iter().any(|&n| n > 0) {
        eprintln!(
            "fleet health so far: {} bucket reloads, {} data losses seen, {} records written back",
            health[0], health[1], health[2]
        );
    }
    (seen, checks)
}
