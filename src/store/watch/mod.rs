//! Revocation that reaches open connections: the waiters of a store ([`Watchers`]),
//! the future a handler awaits ([`Revoked`]), and what it answers ([`Refusal`]).
//!
//! A request is checked once, when it starts; a stream it opened (Server-Sent Events,
//! a WebSocket, a gRPC server stream) may outlive its token's logout by hours.
//! [`VerifiedToken::revoked`](crate::VerifiedToken::revoked) is a future that resolves
//! when the token becomes refused, so a handler can `select!` on it and end the stream.
//!
//! How the future learns of a revocation depends on the store:
//!
//! | store | how | delay |
//! |-------|-----|-------|
//! | `InMemoryStore` | woken by the write | immediate |
//! | `MirrorStore` | woken when the change feed's event is applied | the feed's delay (milliseconds) |
//! | `RedisStore`, custom stores | polled: every waiter of a layer in one [`lookup_many`](crate::store::RevocationStore::lookup_many) per tick | the layer's watch interval ([`DEFAULT_WATCH_INTERVAL`]) |
//!
//! A store that learns of every change as it applies it hands out its [`Watchers`] from
//! [`RevocationStore::watchers`](crate::store::RevocationStore::watchers) and wakes
//! them; for any other, the layer keeps the waiters and polls.
//!
//! In this folder: what a waiter holds (`entry.rs`), the index of waiters by key and by
//! deadline (`index.rs`), the registry with its expiry sweeper and poller
//! (`registry.rs`), and the future (`revoked.rs`). May use: what a check asks and
//! answers, the keys, the store trait. Used by: the stores (which wake their waiters),
//! the layer (which attaches a [`Watch`] to each verified token), `VerifiedToken`.

mod entry;
mod index;
mod registry;
mod revoked;

use std::sync::Arc;
use std::time::Duration;

pub(crate) use self::registry::Registration;
pub use self::registry::Watchers;
pub use self::revoked::Revoked;
use crate::store::{RevocationQuery, RevocationStore, RevokedBy};

/// How often a layer asks a store that does not wake its waiters (`RedisStore`, custom
/// stores) about the tokens of its open streams, unless configured with
/// [`RevocationLayer::with_watch_interval`](crate::RevocationLayer::with_watch_interval):
/// 1 s. Every tick asks about every open stream of the layer in one batched call.
pub const DEFAULT_WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// Why a token that was accepted is now refused: what [`Revoked`] resolves with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Refusal {
    /// A revocation covers it: the token's own, its session's, its subject's
    /// watermark, or the global one.
    Revoked(RevokedBy),
    /// It reached the end of its acceptance: `exp` plus the verifier's leeway (the
    /// verifier refuses it from second `exp + leeway + 1`).
    Expired,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refusal::Revoked(RevokedBy::Token) => "token revoked",
            Refusal::Revoked(RevokedBy::Session) => "session revoked",
            Refusal::Revoked(RevokedBy::Subject) => "token revoked (logged out everywhere)",
            Refusal::Revoked(RevokedBy::All) => "token revoked (every token revoked)",
            Refusal::Expired => "token expired",
        })
    }
}

/// How the tokens a layer checked are watched: the store to ask, and the registry
/// their futures join. Attached to every token the layer lets through.
pub(crate) struct Watch {
    store: Arc<dyn RevocationStore>,
    watchers: Watchers,
    /// `None`: the store wakes the waiters itself. `Some`: the layer polls it.
    poll_interval: Option<Duration>,
}

impl Watch {
    /// Watches `store`: through its own registry when it has one, otherwise by polling
    /// it every `interval`.
    pub(crate) fn new(store: Arc<dyn RevocationStore>, interval: Duration) -> Self {
        match store.watchers() {
            Some(watchers) => Self {
                store,
                watchers,
                poll_interval: None,
            },
            None => Self {
                store,
                watchers: Watchers::new(),
                poll_interval: Some(interval.max(Duration::from_millis(1))),
            },
        }
    }

    pub(crate) fn store(&self) -> &Arc<dyn RevocationStore> {
        &self.store
    }

    /// Whether the store wakes its waiters itself.
    pub(crate) fn pushed(&self) -> bool {
        self.poll_interval.is_none()
    }

    pub(crate) fn poll_interval(&self) -> Option<Duration> {
        self.poll_interval
    }

    pub(crate) fn register(&self, query: RevocationQuery, deadline: u64, dirty: bool) -> Registration {
        if let Some(interval) = self.poll_interval {
            self.watchers.start_poller(&self.store, interval);
        }
        self.watchers.register(query, deadline, dirty)
    }
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("store", &self.store.name())
            .field("poll_interval", &self.poll_interval)
            .finish_non_exhaustive()
    }
}
