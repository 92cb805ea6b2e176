//! [`InMemoryRefreshStore`]: refresh-token families in this process.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use parking_lot::Mutex;

use super::store::{NewFamily, RefreshStore, Rotation, RotationOutcome};
use super::token::RefreshHash;
use crate::RevocationKey;
use crate::store::StoreError;

/// Families kept between two sweeps of the expired ones, at least.
const SWEEP_EVERY: usize = 1024;

/// Refresh-token families in this process: for one replica, and tests. Each family
/// keeps the hash of its current token, 16-byte prefixes of the hashes it consumed
/// (to tell a reuse from a token it never issued), its sealed record, and, with a
/// grace window, the last token consumed and its sealed successor; an ended family is kept,
/// as a tombstone, until its absolute lifetime or idle timeout is over, so a reuse presented again is
/// reported again.
#[derive(Debug, Default)]
pub struct InMemoryRefreshStore {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    families: HashMap<[u8; 32], Family>,
    by_subject: HashMap<[u8; 32], HashSet<[u8; 32]>>,
    starts_since_sweep: usize,
}

#[derive(Debug)]
struct Family {
    subject: [u8; 32],
    current: RefreshHash,
    consumed: HashSet<[u8; 16]>,
    sealed: Vec<u8>,
    previous: Option<RefreshHash>,
    successor: Vec<u8>,
    last_used: u64,
    expires_at: u64,
    idle_secs: u64,
    ended: Option<Ended>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    Reused,
    LoggedOut,
}

impl Family {
    fn live_at(&self, now: u64) -> bool {
        now < self.expires_at && now < self.last_used.saturating_add(self.idle_secs)
    }
}

fn prefix(hash: &RefreshHash) -> [u8; 16] {
    let mut prefix = [0; 16];
    prefix.copy_from_slice(&hash.0[..16]);
    prefix
}

impl InMemoryRefreshStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Families held, ended and expired ones not yet reclaimed included.
    pub fn len(&self) -> usize {
        self.state.lock().families.len()
    }

    /// Whether no family is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl State {
    fn remove(&mut self, family: &[u8; 32]) {
        if let Some(removed) = self.families.remove(family)
            && let Some(families) = self.by_subject.get_mut(&removed.subject)
        {
            families.remove(family);
            if families.is_empty() {
                self.by_subject.remove(&removed.subject);
            }
        }
    }

    /// Drops families past their absolute lifetime or gone idle, ended ones too.
    fn sweep(&mut self, now: u64) {
        let gone: Vec<[u8; 32]> = self
            .families
            .iter()
            .filter(|(_, family)| !family.live_at(now))
            .map(|(key, _)| *key)
            .collect();
        for key in gone {
            self.remove(&key);
        }
    }
}

#[async_trait]
impl RefreshStore for InMemoryRefreshStore {
    async fn start_family(&self, new: &NewFamily) -> Result<(), StoreError> {
        let mut state = self.state.lock();
        state.starts_since_sweep += 1;
        if state.starts_since_sweep >= SWEEP_EVERY.max(state.families.len()) {
            state.starts_since_sweep = 0;
            state.sweep(new.now);
        }
        let family = *new.family.as_bytes();
        let subject = *new.subject.as_bytes();
        state.remove(&family);
        state.families.insert(
            family,
            Family {
                subject,
                current: new.token,
                consumed: HashSet::new(),
                sealed: new.sealed.clone(),
                previous: None,
                successor: Vec::new(),
                last_used: new.now,
                expires_at: new.expires_at,
                idle_secs: new.idle.as_secs(),
                ended: None,
            },
        );
        state.by_subject.entry(subject).or_default().insert(family);
        Ok(())
    }

    async fn rotate(&self, rotation: &Rotation) -> Result<RotationOutcome, StoreError> {
        let mut state = self.state.lock();
        let key = *rotation.family.as_bytes();
        let Some(family) = state.families.get_mut(&key) else {
            return Ok(RotationOutcome::Unknown);
        };
        if rotation.now >= family.expires_at {
            state.remove(&key);
            return Ok(RotationOutcome::Expired);
        }
        if !family.live_at(rotation.now) {
            state.remove(&key);
            return Ok(RotationOutcome::Expired);
        }
        let consumed = family.consumed.contains(&prefix(&rotation.presented));
        let ours = consumed || family.current == rotation.presented;
        match family.ended {
            // A consumed token is a reuse again (so the session is revoked again, in
            // case that failed the first time); the current one merely ended.
            Some(Ended::Reused) if consumed => return Ok(RotationOutcome::Reused),
            Some(_) if ours => return Ok(RotationOutcome::Ended),
            Some(_) => return Ok(RotationOutcome::Unknown),
            None => {}
        }
        let sealed = family.sealed.clone();
        if family.current == rotation.presented {
            family.consumed.insert(prefix(&rotation.presented));
            family.previous = Some(rotation.presented);
            family.successor.clone_from(&rotation.successor);
            family.current = rotation.next;
            family.last_used = rotation.now;
            Ok(RotationOutcome::Rotated { sealed })
        } else if consumed
            && family.previous == Some(rotation.presented)
            && !family.successor.is_empty()
            && rotation.now < family.last_used.saturating_add(rotation.grace.as_secs())
        {
            Ok(RotationOutcome::Repeated {
                sealed,
                successor: family.successor.clone(),
            })
        } else if consumed {
            family.ended = Some(Ended::Reused);
            Ok(RotationOutcome::Reused)
        } else {
            Ok(RotationOutcome::Unknown)
        }
    }

    async fn end_family(&self, family: &RevocationKey, subject: &RevocationKey) -> Result<(), StoreError> {
        let mut state = self.state.lock();
        if let Some(family) = state.families.get_mut(family.as_bytes())
            && family.subject == *subject.as_bytes()
        {
            family.ended.get_or_insert(Ended::LoggedOut);
        }
        Ok(())
    }

    async fn end_families_of(&self, subject: &RevocationKey) -> Result<(), StoreError> {
        let mut state = self.state.lock();
        let State {
            families, by_subject, ..
        } = &mut *state;
        for key in by_subject.get(subject.as_bytes()).into_iter().flatten() {
            if let Some(family) = families.get_mut(key) {
                family.ended.get_or_insert(Ended::LoggedOut);
            }
        }
        Ok(())
    }
}
