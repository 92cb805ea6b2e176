//! [`InMemoryStore`] as a [`RevocationStore`]: checks answered from the table at once,
//! writes applied to it (and the waiters of open streams woken) before they return.

use std::time::Duration;

use async_trait::async_trait;

use super::InMemoryStore;
use crate::store::key::{RevocationKey, token_record};
use crate::store::{Lookup, RevocationQuery, RevocationStore, StoreError, Watchers};

#[async_trait]
impl RevocationStore for InMemoryStore {
    async fn lookup(&self, query: &RevocationQuery) -> Result<Lookup, StoreError> {
        Ok(self.lookup_now(query))
    }

    fn lookup_immediate(&self, query: &RevocationQuery) -> Option<Lookup> {
        Some(self.lookup_now(query))
    }

    fn name(&self) -> &'static str {
        "memory"
    }

    /// Woken by every write, as it is applied.
    fn watchers(&self) -> Option<Watchers> {
        Some(self.shared.watchers.clone())
    }

    async fn health(&self) -> crate::store::StoreHealth {
        crate::store::StoreHealth {
            entries: Some(self.len()),
            ..crate::store::StoreHealth::ready("memory")
        }
    }

    async fn revoke_token(&self, token: &RevocationKey, ttl: Duration) -> Result<(), StoreError> {
        self.writes().mark(token, ttl);
        Ok(())
    }

    /// Records the token bound to its subject ([`RevocationKey::for_subject`]): it
    /// refuses that subject's token only, as on Redis.
    async fn revoke_token_of(
        &self,
        token: &RevocationKey,
        subject: Option<&RevocationKey>,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.writes().mark(&token_record(token, subject), ttl);
        Ok(())
    }

    async fn revoke_session(&self, session: &RevocationKey, ttl: Duration) -> Result<(), StoreError> {
        self.writes().mark(session, ttl);
        Ok(())
    }

    async fn raise_subject_watermark(
        &self,
        subject: &RevocationKey,
        issued_until: u64,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.writes().raise_subject(subject, issued_until, ttl);
        Ok(())
    }

    async fn raise_global_watermark(&self, issued_until: u64, ttl: Duration) -> Result<(), StoreError> {
        self.writes().raise_global(issued_until, ttl);
        Ok(())
    }
}
