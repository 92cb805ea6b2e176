//! A store that always fails, for outage tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tower_jwt_revoke::RevocationKey;
use tower_jwt_revoke::store::{Lookup, RevocationQuery, RevocationStore, StoreError};

/// How a [`BrokenStore`] fails.
#[derive(Debug, Clone, Copy)]
pub enum Failure {
    /// Every call returns an error at once.
    Error,
    /// No call ever completes.
    Hang,
}

/// A store that always fails, and counts the lookups it is asked.
#[derive(Debug, Clone)]
pub struct BrokenStore {
    failure: Failure,
    lookups: Arc<AtomicUsize>,
}

impl BrokenStore {
    pub fn new(failure: Failure) -> Self {
        Self {
            failure,
            lookups: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// How many lookups it was asked.
    pub fn lookups(&self) -> usize {
        self.lookups.load(Ordering::SeqCst)
    }

    async fn fail<T>(&self) -> Result<T, StoreError> {
        match self.failure {
            Failure::Error => Err(StoreError::msg("the test store is broken")),
            Failure::Hang => std::future::pending().await,
        }
    }
}

#[tower_jwt_revoke::async_trait]
impl RevocationStore for BrokenStore {
    async fn lookup(&self, _query: &RevocationQuery) -> Result<Lookup, StoreError> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        self.fail().await
    }

    async fn revoke_token(&self, _token: &RevocationKey, _ttl: Duration) -> Result<(), StoreError> {
        self.fail().await
    }

    async fn revoke_session(&self, _session: &RevocationKey, _ttl: Duration) -> Result<(), StoreError> {
        self.fail().await
    }

    async fn raise_subject_watermark(
        &self,
        _subject: &RevocationKey,
        _issued_until: u64,
        _ttl: Duration,
    ) -> Result<(), StoreError> {
        self.fail().await
    }

    async fn raise_global_watermark(&self, _issued_until: u64, _ttl: Duration) -> Result<(), StoreError> {
        self.fail().await
    }
}
