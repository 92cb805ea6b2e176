//! The waiters of one registry, indexed so that a revocation finds its own waiters
//! without looking at the others: by the first 64 bits of each key they watch (token,
//! token bound to its subject, session, subject), and by deadline for the expiry sweeper and global revocations.
//!
//! Two keys sharing 64 bits only make a waiter check the store once for nothing: the
//! verdict always comes from the store, never from the index.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use super::entry::{Entry, Keys};
use crate::store::RevocationQuery;
use crate::store::key::RevocationKey;

/// The waiters of one key: nearly always one (one connection per token), so no
/// collection; many (a user's devices, or a session's) by id, so that leaving is
/// logarithmic however many share the key.
enum Slot {
    One(Arc<Entry>),
    Many(BTreeMap<u64, Arc<Entry>>),
}

/// Keys are SHA-256 outputs: their first 64 bits are hash enough.
#[derive(Default)]
pub(crate) struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

#[derive(Default)]
pub(crate) struct Index {
    by_key: HashMap<u64, Slot, BuildHasherDefault<Identity>>,
    /// Every waiter, by `(deadline, id)`.
    by_deadline: BTreeMap<(u64, u64), Arc<Entry>>,
    next_id: u64,
}

/// The 64 bits a key is indexed under.
pub(crate) fn short(key: &RevocationKey) -> u64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&key.as_bytes()[..8]);
    u64::from_le_bytes(first)
}

/// The keys a waiter of `query` is woken by: its token's (under both keys a token is
/// revoked under), its session's and its subject's. Computed once per waiter (one
/// SHA-256 block for the bound key).
fn keys(query: &RevocationQuery) -> Keys {
    let bound = query.token_for_subject();
    let mut keys = Keys {
        prefixes: [0; 4],
        len: 0,
    };
    for key in [
        Some(&query.token),
        bound.as_ref(),
        query.session.as_ref(),
        query.subject.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        keys.prefixes[usize::from(keys.len)] = short(key);
        keys.len += 1;
    }
    keys
}

impl Index {
    /// Adds a waiter; says whether it is now the first to expire (the sweeper must
    /// wake earlier).
    pub(crate) fn insert(
        &mut self,
        query: RevocationQuery,
        deadline: u64,
        dirty: bool,
    ) -> (Arc<Entry>, bool) {
        let id = self.next_id;
        self.next_id += 1;
        let entry = Arc::new(Entry::new(id, query, deadline, keys(&query), dirty));
        for key in entry.keys.iter() {
            match self.by_key.remove(&key) {
                None => self.by_key.insert(key, Slot::One(Arc::clone(&entry))),
                Some(Slot::One(other)) => {
                    let many = BTreeMap::from([(other.id, other), (id, Arc::clone(&entry))]);
                    self.by_key.insert(key, Slot::Many(many))
                }
                Some(Slot::Many(mut many)) => {
                    many.insert(id, Arc::clone(&entry));
                    self.by_key.insert(key, Slot::Many(many))
                }
            };
        }
        let first = self
            .by_deadline
            .first_key_value()
            .is_none_or(|(&(first, _), _)| deadline < first);
        self.by_deadline.insert((deadline, id), Arc::clone(&entry));
        (entry, first)
    }

    /// Removes a waiter (its future was dropped or finished).
    pub(crate) fn remove(&mut self, entry: &Arc<Entry>) {
        self.by_deadline.remove(&(entry.deadline, entry.id));
        for key in entry.keys.iter() {
            let Some(slot) = self.by_key.get_mut(&key) else {
                continue;
            };
            match slot {
                Slot::One(one) if Arc::ptr_eq(one, entry) => {
                    self.by_key.remove(&key);
                }
                Slot::One(_) => {}
                Slot::Many(many) => {
                    many.remove(&entry.id);
                    if many.len() == 1 {
                        let (_, one) = many.pop_first().expect("one left");
                        *slot = Slot::One(one);
                    }
                }
            }
        }
    }

    /// Wakes the waiters of `key` to check the store again.
    pub(crate) fn touch(&self, key: &RevocationKey) {
        match self.by_key.get(&short(key)) {
            None => {}
            Some(Slot::One(one)) => one.touch(),
            Some(Slot::Many(many)) => many.values().for_each(|entry| entry.touch()),
        }
    }

    /// Wakes every waiter to check the store again (a global revocation, a reload).
    pub(crate) fn touch_all(&self) {
        self.by_deadline.values().for_each(|entry| entry.touch());
    }

    /// Ends every waiter whose deadline is at or before `now` (Unix seconds), and
    /// forgets them; answers the next deadline.
    pub(crate) fn expire_until(&mut self, now: u64) -> Option<u64> {
        while let Some(entry) = self.by_deadline.first_entry() {
            if entry.key().0 > now {
                return Some(entry.key().0);
            }
            entry.remove().expire();
        }
        None
    }

    /// The waiters still waiting, for a poller's batch.
    pub(crate) fn waiting(&self) -> Vec<Arc<Entry>> {
        self.by_deadline
            .values()
            .filter(|entry| !entry.is_settled())
            .cloned()
            .collect()
    }
}
