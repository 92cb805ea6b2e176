//! The schedule's randomness: splitmix64, seeded, so that a seed replays a run's
//! choices (which fault, when, which store, which scope) exactly; only the timing of the
//! processes themselves differs between runs.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The environment variable a run's seed is read from.
pub const SEED_VAR: &str = "TOWER_JWT_REVOKE_NEMESIS_SEED";

/// A small deterministic generator (splitmix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for one topology's schedule: the run's seed mixed with the
    /// topology's name, so that each test replays alone.
    pub fn for_topology(seed: u64, topology: &str) -> Self {
        let mut mixed = seed;
        for byte in topology.bytes() {
            mixed = mixed.rotate_left(5) ^ u64::from(byte);
        }
        Self(mixed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    /// A duration between `low` and `high` milliseconds.
    pub fn millis(&mut self, low: u64, high: u64) -> Duration {
        Duration::from_millis(low + self.next_u64() % (high - low + 1))
    }

    /// One of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// `items` in a random order.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

/// The run's seed: `TOWER_JWT_REVOKE_NEMESIS_SEED`, or the clock.
pub fn seed() -> u64 {
    match std::env::var(SEED_VAR) {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{SEED_VAR}={text:?} is not a number")),
        Err(_) => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|since| since.as_nanos() as u64)
            .unwrap_or(1),
    }
}
