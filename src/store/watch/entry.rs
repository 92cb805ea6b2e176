//! One waiter: what it watches, and what has happened to it since, in one atomic byte.

use std::sync::atomic::{AtomicU8, Ordering};
use std::task::Waker;

use crate::store::{RevocationQuery, RevokedBy};

/// Something changed that may refuse the token: check it again.
const DIRTY: u8 = 1;
/// The token reached the end of its acceptance.
const EXPIRED: u8 = 2;
/// A poller found the token refused; which revocation is in the high bits.
const REVOKED: u8 = 4;
const BY_SHIFT: u8 = 4;

/// The keys a waiter is woken by, as their 64-bit prefixes: the token's, the token's
/// bound to its subject (the key `Revoker` revokes a token with a `sub` under), the
/// session's and the subject's; `len` of them.
#[derive(Clone, Copy)]
pub(crate) struct Keys {
    pub(crate) prefixes: [u64; 4],
    pub(crate) len: u8,
}

impl Keys {
    pub(crate) fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.prefixes[..usize::from(self.len)].iter().copied()
    }
}

/// What a waiter learned, read once by its future.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum News {
    Nothing,
    /// Check the store again.
    Dirty,
    Expired,
    Revoked(RevokedBy),
}

/// A registered waiter, shared by its future and the registry's index.
pub(crate) struct Entry {
    /// The registry's number for it, which orders it among waiters of the same deadline.
    pub(crate) id: u64,
    pub(crate) query: RevocationQuery,
    /// The first Unix second in which the verifier refuses the token.
    pub(crate) deadline: u64,
    /// The 64-bit prefixes of the keys it is indexed under (see `index.rs`).
    pub(crate) keys: Keys,
    state: AtomicU8,
    waker: parking_lot::Mutex<Option<Waker>>,
}

impl Entry {
    pub(crate) fn new(id: u64, query: RevocationQuery, deadline: u64, keys: Keys, dirty: bool) -> Self {
        Self {
            id,
            query,
            deadline,
            keys,
            state: AtomicU8::new(if dirty { DIRTY } else { 0 }),
            waker: parking_lot::Mutex::new(None),
        }
    }

    /// Keeps `waker` to be woken by the next news. Called before reading the news, so
    /// news arriving in between wakes this waker rather than being lost.
    pub(crate) fn register(&self, waker: &Waker) {
        let mut kept = self.waker.lock();
        match &*kept {
            Some(kept) if kept.will_wake(waker) => {}
            _ => *kept = Some(waker.clone()),
        }
    }

    /// Takes the news: an end (expired, revoked) stays; "check again" is taken once.
    pub(crate) fn take_news(&self) -> News {
        let state = self.state.load(Ordering::Acquire);
        if state & REVOKED != 0 {
            return News::Revoked(by_from_bits(state >> BY_SHIFT));
        }
        if state & EXPIRED != 0 {
            return News::Expired;
        }
        if state & DIRTY != 0 && self.state.fetch_and(!DIRTY, Ordering::AcqRel) & DIRTY != 0 {
            return News::Dirty;
        }
        News::Nothing
    }

    /// Something may have refused the token: wakes the future to check.
    pub(crate) fn touch(&self) {
        self.state.fetch_or(DIRTY, Ordering::AcqRel);
        self.wake();
    }

    /// The token's acceptance ended.
    pub(crate) fn expire(&self) {
        self.state.fetch_or(EXPIRED, Ordering::AcqRel);
        self.wake();
    }

    /// A poller found the token refused by `by`.
    pub(crate) fn revoke(&self, by: RevokedBy) {
        self.state
            .fetch_or(REVOKED | (by_to_bits(by) << BY_SHIFT), Ordering::AcqRel);
        self.wake();
    }

    /// Whether the future already has its answer (a poller need not ask again).
    pub(crate) fn is_settled(&self) -> bool {
        self.state.load(Ordering::Acquire) & (REVOKED | EXPIRED) != 0
    }

    fn wake(&self) {
        // Woken by reference: the future keeps its waker for the next news.
        if let Some(waker) = &*self.waker.lock() {
            waker.wake_by_ref();
        }
    }
}

fn by_to_bits(by: RevokedBy) -> u8 {
    match by {
        RevokedBy::Token => 0,
        RevokedBy::Session => 1,
        RevokedBy::Subject => 2,
        RevokedBy::All => 3,
    }
}

fn by_from_bits(bits: u8) -> RevokedBy {
    match bits & 0b11 {
        0 => RevokedBy::Token,
        1 => RevokedBy::Session,
        2 => RevokedBy::Subject,
        _ => RevokedBy::All,
    }
}
