//! [`StoreError`]: a store failed to answer or to record — or recorded, without the
//! confirmation it was asked to wait for.

use super::BoxError;

/// A store failed to answer or to record.
///
/// The layer turns it into a 503 (fail closed) or lets the request through with a
/// warning (fail open); the revoking helpers return it, so the caller knows the
/// revocation was **not** recorded — unless [`is_unacknowledged`](Self::is_unacknowledged)
/// says it was, but not confirmed as durable as the store was asked to make it.
#[derive(Debug, thiserror::Error)]
#[error("revocation store failed: {context}")]
pub struct StoreError {
    context: &'static str,
    #[source]
    source: Option<BoxError>,
    kind: ErrorKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ErrorKind {
    Failed,
    Timeout,
    Unacknowledged,
}

impl StoreError {
    /// An error saying what failed, keeping its cause.
    pub fn new(context: &'static str, source: impl Into<BoxError>) -> Self {
        Self {
            context,
            source: Some(source.into()),
            kind: ErrorKind::Failed,
        }
    }

    /// An error with no underlying cause.
    pub fn msg(context: &'static str) -> Self {
        Self {
            context,
            source: None,
            kind: ErrorKind::Failed,
        }
    }

    /// The store did not answer in time (as opposed to answering with an error).
    pub fn timeout(context: &'static str) -> Self {
        Self {
            kind: ErrorKind::Timeout,
            ..Self::msg(context)
        }
    }

    /// The revocation **was** recorded, but the store could not confirm it as durable
    /// as it was configured to (replicas, or the append-only file: an
    /// `Acknowledgement` of a `RedisStore` that did not come in time). It
    /// refuses the token now, and may forget it in a failover or a restart.
    pub fn unacknowledged(context: &'static str, source: Option<BoxError>) -> Self {
        Self {
            context,
            source,
            kind: ErrorKind::Unacknowledged,
        }
    }

    /// Whether the store did not answer in time.
    pub fn is_timeout(&self) -> bool {
        self.kind == ErrorKind::Timeout
    }

    /// Whether the revocation was recorded but not confirmed durable (see
    /// [`unacknowledged`](Self::unacknowledged)).
    pub fn is_unacknowledged(&self) -> bool {
        self.kind == ErrorKind::Unacknowledged
    }
}
